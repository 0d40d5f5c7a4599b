"""NGFF 0.1 - 0.3 images are read only: every write into one (pixels, levels, labels,
pyramid, tables, metadata edits) is refused before any I/O, naming the version and the way
out; ``convert`` writes them as 0.4 (by default) or 0.5, which ngio_async, ome-zarr-py and
ngio read with the same pixels and the scales derived from the level shapes."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from cli_run import run
from interop_writers import ngio_pixel_sizes, read_ngio, read_ome_zarr
from test_oldngff27_read import CHANNELS, write_old, write_old_labels

import ngio_async
from ngio_async import ReadOnlyError, UnsupportedError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _writes(ds: Any) -> dict[str, Callable[[], object]]:
    zeros = np.zeros((4, 4), "uint16")
    return {
        "setitem": lambda: ds.__setitem__((0, slice(0, 4), slice(0, 4)), zeros),
        "write": lambda: ds.write(zeros, c=0, y=slice(0, 4), x=slice(0, 4)),
        "labels.create": lambda: ds.labels.create("nuclei"),
        "build_pyramid": lambda: ds.build_pyramid(levels=4),
        "tables.write": lambda: ds.tables.write("t", {"a": [1, 2]}),
        "set_channels": lambda: ds.set_channels(labels=["a", "b", "c"]),
        "set_name": lambda: ds.set_name("new"),
        "set_scale": lambda: ds.set_scale({"x": 0.5}),
        "set_axes_names": lambda: ds.set_axes_names({"x": "col"}),
    }


@pytest.mark.parametrize("version", ["0.1", "0.3"])
def test_every_write_is_refused_naming_the_version(tmp_path: Path, version: str) -> None:
    axes = ["c", "y", "x"] if version == "0.3" else None
    write_old(tmp_path / "old.zarr", version, axes=axes)
    before = _snapshot(tmp_path / "old.zarr")
    with ngio_async.open(tmp_path / "old.zarr", mode="r+") as ds:
        np.testing.assert_array_equal(ds.read(level=2), ds.levels[2][...])  # reads work
        for name, attempt in _writes(ds).items():
            with pytest.raises(UnsupportedError) as info:
                attempt()
            message = str(info.value)
            assert f"NGFF {version} image" in message, name
            assert "ngio_async convert" in message, name
        # a level's own write (below the dataset) is refused too
        with pytest.raises(ReadOnlyError, match=rf"an NGFF {version} image is read only"):
            ds.levels[0][..., :4, :4] = 0
    assert _snapshot(tmp_path / "old.zarr") == before  # nothing written


def test_writes_to_an_old_label_image_are_refused(tmp_path: Path) -> None:
    write_old(tmp_path / "old.zarr", "0.3", axes=["c", "y", "x"])
    write_old_labels(tmp_path / "old.zarr", "0.3", ["c", "y", "x"])
    before = _snapshot(tmp_path / "old.zarr")
    with ngio_async.open(tmp_path / "old.zarr", mode="r+") as ds, ds.labels.open("cells") as lab:
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.3 image"):
            lab[:4, :4] = 1
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.3"):
            ds.labels.set_colors("cells", {1: "00FF00"})
    assert _snapshot(tmp_path / "old.zarr") == before


@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_convert_writes_04_by_default_and_05_on_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    levels = write_old(tmp_path / "old.zarr", "0.2", separator_in_zarray=False)
    labels = write_old_labels(tmp_path / "old.zarr", "0.2", None)
    code, out, err = run(["convert", str(tmp_path / "old.zarr"), str(tmp_path / "v4.zarr")], capsys)
    assert code == 0, err
    assert "NGFF 0.4" in out
    code, out, err = run(
        [
            "convert",
            str(tmp_path / "old.zarr"),
            str(tmp_path / "v5.zarr"),
            "--ngff-version",
            "0.5",
        ],
        capsys,
    )
    assert code == 0, err
    assert (tmp_path / "v4.zarr" / ".zattrs").exists()
    assert (tmp_path / "v5.zarr" / "zarr.json").exists()
    doc = json.loads((tmp_path / "v5.zarr" / "zarr.json").read_text())
    scales = [
        d["coordinateTransformations"][0]["scale"]
        for d in doc["attributes"]["ome"]["multiscales"][0]["datasets"]
    ]
    assert scales[1] == [1, 1, 1, pytest.approx(45 / 23), 2]
    for name, version in (("v4.zarr", "0.4"), ("v5.zarr", "0.5")):
        path = tmp_path / name
        with ngio_async.open(path) as ds:
            assert ds.metadata.ngff_version == version
            assert [c.label for c in ds.metadata.channels] == [n for n, _ in CHANNELS]
            assert [lvl.scale[-1] for lvl in ds.levels] == [1.0, 2.0, 4.0]
            for i, written in enumerate(levels):
                np.testing.assert_array_equal(ds.read(level=i), written)
            with ds.labels.open("cells") as lab:
                np.testing.assert_array_equal(lab.read(), labels[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for got, written in zip(read_ome_zarr(path), levels, strict=True):
                np.testing.assert_array_equal(got, written)
            for got, written in zip(read_ngio(path), levels, strict=True):
                np.testing.assert_array_equal(got, written)
            sizes = ngio_pixel_sizes(path)
        assert [s["x"] for s in sizes] == [1.0, 2.0, 4.0]
        assert sizes[1]["y"] == pytest.approx(45 / 23)


def _old_plate(root: Path) -> None:
    """A 0.2 plate (wells with paths only) of two wells, one 0.2 field each."""
    root.mkdir()
    (root / ".zgroup").write_text('{"zarr_format": 2}')
    plate = {
        "version": "0.2",
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}, {"name": "2"}],
        "wells": [{"path": "A/1"}, {"path": "A/2"}],
    }
    (root / ".zattrs").write_text(json.dumps({"plate": plate}))
    (root / "A").mkdir()
    (root / "A" / ".zgroup").write_text('{"zarr_format": 2}')
    for column in ("1", "2"):
        well = root / "A" / column
        well.mkdir()
        (well / ".zgroup").write_text('{"zarr_format": 2}')
        (well / ".zattrs").write_text(json.dumps({"well": {"images": [{"path": "0"}]}}))
        write_old(well / "0", "0.2")


def test_an_old_plate_reads_and_refuses_writes(tmp_path: Path) -> None:
    _old_plate(tmp_path / "plate.zarr")
    before = _snapshot(tmp_path / "plate.zarr")
    with ngio_async.open_plate(tmp_path / "plate.zarr", mode="r+") as plate:
        assert plate.version == "0.2"
        assert plate.wells == ["A/1", "A/2"]
        with plate.image("A", "2") as ds:
            assert ds.metadata.ngff_version == "0.2" and ds.shape == (2, 3, 1, 45, 40)
        for attempt in (
            lambda: plate.tables.write("t", {"a": [1, 2]}),
            lambda: plate.add_acquisition(1, "second"),
            lambda: plate.add_image("A", "1", field="1", shape=(2, 8, 8), axes="cyx"),
        ):
            with pytest.raises(UnsupportedError, match=r"NGFF 0\.2 plate.*ngio_async convert"):
                attempt()
    assert _snapshot(tmp_path / "plate.zarr") == before
