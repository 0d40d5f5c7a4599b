"""A converted TIFF's channels get display windows from their data, as a created image's do
when its pyramid is built: a 12-bit camera's uint16 image over the whole uint16 range shows
black in napari and in the viewer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _ome_tiff(path: Path, data: np.ndarray[Any, Any], names: list[str]) -> Path:
    tifffile.imwrite(
        path, data, tile=(64, 64), photometric="minisblack",
        metadata={"axes": "CYX", "Channel": {"Name": names}},
    )  # fmt: skip
    return path


def _windows(root: Path) -> list[dict[str, float]]:
    doc = json.loads((root / "zarr.json").read_text())
    return [c["window"] for c in doc["attributes"]["ome"]["omero"]["channels"]]


async def test_converted_channels_get_windows_from_the_lowest_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = np.stack(
        [rng.integers(100, 900, (300, 200)), rng.integers(2000, 4095, (300, 200))]
    ).astype("uint16")
    data[1, :, 100:] = 7  # a dark half: the lowest level's range, not level 0's
    src = _ome_tiff(tmp_path / "cells.ome.tif", data, ["DAPI", "GFP"])
    dst = tmp_path / "cells.ome.zarr"
    await ngio_async.convert(src, dst)
    async with ngio_async.open_async(dst) as ds:
        assert len(ds.levels) > 1
        lowest = await ds.read(level=len(ds.levels) - 1)
        assert [c.label for c in ds.metadata.channels] == ["DAPI", "GFP"]
        got = [c.window for c in ds.metadata.channels]
    want = [(float(lowest[i].min()), float(lowest[i].max())) for i in range(2)]
    assert got == want  # was: (0, 65535) for both
    stored = _windows(dst)
    assert [(w["start"], w["end"]) for w in stored] == want
    assert all(w["min"] == 0 and w["max"] == 65535 for w in stored)  # the dtype's range


async def test_a_channel_of_one_value_keeps_the_dtype_range(tmp_path: Path) -> None:
    data = np.zeros((2, 64, 64), dtype="uint8")
    data[0] = np.arange(64, dtype="uint8")[None, :] + 10
    src = _ome_tiff(tmp_path / "flat.ome.tif", data, ["a", "b"])
    dst = tmp_path / "flat.ome.zarr"
    ngio_async.convert_sync(src, dst, levels=1)
    windows = _windows(dst)
    assert (windows[0]["start"], windows[0]["end"]) == (10, 73)
    assert (windows[1]["start"], windows[1]["end"]) == (0, 255)  # nothing to derive


async def test_a_tiff_without_channels_gets_no_omero_block(tmp_path: Path) -> None:
    src = tmp_path / "plane.tif"
    tifffile.imwrite(src, np.arange(64 * 64, dtype="uint16").reshape(64, 64))
    dst = tmp_path / "plane.ome.zarr"
    await ngio_async.convert(src, dst)
    doc = json.loads((dst / "zarr.json").read_text())
    assert "omero" not in doc["attributes"]["ome"]


async def test_an_rgb_photo_keeps_the_whole_range(tmp_path: Path) -> None:
    rgb = np.zeros((64, 64, 3), dtype="uint8")
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 40, 90
    rgb[:8] = 30
    src = tmp_path / "photo.tif"
    tifffile.imwrite(src, rgb, photometric="rgb")
    dst = tmp_path / "photo.ome.zarr"
    await ngio_async.convert(src, dst)
    doc = json.loads((dst / "zarr.json").read_text())
    channels = doc["attributes"]["ome"]["omero"]["channels"]
    assert [c["label"] for c in channels] == ["red", "green", "blue"]
    # stretched to each channel's own range, the colors would change
    assert all((c["window"]["start"], c["window"]["end"]) == (0, 255) for c in channels)
