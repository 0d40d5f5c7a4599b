"""NGFF 0.6rc0: channel and label-color edits are refused before any read, naming what is
refused; tables are read and written on 0.6 images and plates alike (a table write leaves the
image's or plate's NGFF metadata alone: only the ``tables`` group and its listing change)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr
from test_ngff06_read import SHAPES, _attrs, _write

import ngio_async
from ngio_async import UnsupportedError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

IMAGE = "zarr_json/valid/example-image-multiscales_example.json"


def _with_label(path: Path) -> None:
    attrs = _attrs("image/valid/example-multiscales_reference_to_label.json")
    _write(path, attrs, ((4, 8, 8),))
    labels = zarr.open_group(str(path / "labels"), mode="w", zarr_format=3)
    labels.attrs.update({"ome": {"version": "0.6rc0", "labels": ["cells"]}})
    label_attrs = _attrs("zarr_json/valid/example-label-colors_properties.json")
    _write(path / "labels" / "cells", label_attrs, ((4, 8, 8),), "uint8")


async def test_set_colors_refused_before_any_read(tmp_path: Path) -> None:
    path = tmp_path / "img06.zarr"
    _with_label(path)
    before = (path / "labels" / "cells" / "zarr.json").read_bytes()
    store = InstrumentedStore(open_store(path))
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        with pytest.raises(
            UnsupportedError,
            match=r"label image .cells. of .*: cannot edit the metadata of an NGFF 0\.6rc0 image to set the colors",
        ):
            await ds.labels.set_colors("cells")
        assert store.total_requests == 0
    assert (path / "labels" / "cells" / "zarr.json").read_bytes() == before


async def test_auto_windows_refused_before_any_read(tmp_path: Path) -> None:
    path = tmp_path / "img06.zarr"
    _write(path, _attrs(IMAGE), SHAPES)
    before = (path / "zarr.json").read_bytes()
    store = InstrumentedStore(open_store(path))
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        for windows in ("auto", "percentiles"):
            with pytest.raises(UnsupportedError, match=r"NGFF 0\.6rc0 image to set the channels"):
                await ds.set_channels(windows=windows)
        assert store.total_requests == 0
    assert (path / "zarr.json").read_bytes() == before


def _plate06(root: Path) -> list[str]:
    plate_attrs = _attrs("zarr_json/valid/example-plate-plate_2wells.json")
    zarr.open_group(str(root), mode="w", zarr_format=3).attrs.update(plate_attrs)
    wells: list[str] = [w["path"] for w in plate_attrs["ome"]["plate"]["wells"]]
    for w in wells:
        well = zarr.open_group(str(root / w), mode="w", zarr_format=3)
        well.attrs.update({"ome": {"version": "0.6rc0", "well": {"images": [{"path": "0"}]}}})
        _write(root / w / "0", _attrs(IMAGE), SHAPES)
    return wells


def test_tables_on_06_plate_and_image(tmp_path: Path) -> None:
    root = tmp_path / "plate.zarr"
    wells = _plate06(root)
    docs = [root / "zarr.json", *(root / w / "0" / "zarr.json" for w in wells)]
    before = [d.read_bytes() for d in docs]
    with ngio_async.open_plate(str(root), mode="r+") as plate:
        plate.tables.write("summary", {"n": np.arange(3)})
        assert plate.tables.names() == ["summary"]
        np.testing.assert_array_equal(plate.tables.read("summary").columns["n"], np.arange(3))
        for i, w in enumerate(wells):
            row, col = w.split("/")
            with plate.image(row, col, field="0", mode="r+") as fov:
                fov.tables.write("per_fov", {"area": np.array([1.0, 2.0]) * (i + 1)})
        both = plate.tables.concatenate("per_fov")
        assert sorted(both.columns["area"].tolist()) == [1.0, 2.0, 2.0, 4.0]
        plate.tables.delete("summary")
        assert plate.tables.names() == []
        row, col = wells[0].split("/")
        with pytest.raises(UnsupportedError, match=r"cannot write to an NGFF 0\.6rc0 plate"):
            plate.add_image(row, col, field="1", shape=(8, 8), dtype="uint8")
    assert [d.read_bytes() for d in docs] == before
    with ngio_async.open_plate(str(root)) as plate, pytest.raises(ngio_async.ReadOnlyError):
        plate.tables.write("summary", {"n": np.arange(3)})
