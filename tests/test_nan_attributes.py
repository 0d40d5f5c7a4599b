"""Attributes zarr-python wrote with a bare NaN or Infinity (Python's json): every edit keeps
them as they were, and nothing that reads documents fails on them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _nan_attrs(path: Path) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update({"temperature": float("nan"), "range": [1.5, float("inf")]})


def _kept(path: Path) -> None:
    import zarr

    attrs: dict[str, Any] = dict(zarr.open_group(str(path), mode="r").attrs)
    assert math.isnan(attrs["temperature"])  # not None: null would change the attribute
    assert attrs["range"] == [1.5, math.inf]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_image_edits_keep_nan_attributes(tmp_path: Path, version: str) -> None:
    """set_channels failed with msgspec's "JSON is malformed" (the document was read with a
    strict decoder), and a tolerant read would have written the NaN back as null."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(
        path, shape=(2, 16, 16), dtype="uint8", axes="cyx", channels=["a", "b"],
        ngff_version=version,
    ) as ds:  # fmt: skip
        ds.write(np.ones((2, 16, 16), "uint8"))
    _nan_attrs(path)
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_channels(labels=["x", "y"])
        ds.set_scale(0.5)
        ds.labels.create("cells").close()
        ds.build_pyramid(levels=2)
    _kept(path)
    with ngio_async.open(path) as ds:
        assert [c.label for c in ds.metadata.channels] == ["x", "y"]
        assert ds.labels.names() == ["cells"]
    ngio_async.convert_sync(path, tmp_path / "copy.zarr")
    _kept(tmp_path / "copy.zarr")


def test_plate_edits_keep_nan_attributes(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["A"], columns=["1", "2"]) as plate:
        plate.add_image("A", "1", shape=(1, 8, 8), dtype="uint8", axes="cyx").close()
    _nan_attrs(path)
    _nan_attrs(path / "A" / "1")
    with ngio_async.open_plate(path, mode="r+") as plate:
        plate.add_image("A", "2", shape=(1, 8, 8), dtype="uint8", axes="cyx").close()
        plate.add_image("A", "1", field="1", shape=(1, 8, 8), dtype="uint8", axes="cyx").close()
        assert plate.wells == ["A/1", "A/2"]
    _kept(path)
    _kept(path / "A" / "1")


def test_validate_reads_nan_attributes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ngio_async.cli import main

    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(8, 8), dtype="uint8") as ds:
        ds.write(np.ones((8, 8), "uint8"))
    _nan_attrs(path)
    assert main(["validate", str(path)]) == 0, capsys.readouterr()
