"""TIFF stacks of small planes converted: planes are grouped into chunks of about 1 MiB
(one stored object per 32 x 32 frame made a movie thousands of files); big planes keep their
chunks."""

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


def _objects(level: Path) -> list[Path]:
    return [p for p in level.rglob("*") if p.is_file() and p.name != "zarr.json"]


def _layout(level: Path) -> tuple[list[int], list[int] | None]:
    meta = json.loads((level / "zarr.json").read_text())
    outer = meta["chunk_grid"]["configuration"]["chunk_shape"]
    if meta["codecs"][0]["name"] == "sharding_indexed":
        return meta["codecs"][0]["configuration"]["chunk_shape"], outer
    return outer, None


async def test_a_movie_of_tiny_frames_is_a_few_objects(tmp_path: Path) -> None:
    # 2,000 frames of 32 x 32 were 2,000 chunks of 2 KiB (a file or a PUT each)
    data = (np.arange(2000 * 32 * 32) % 4093).astype(np.uint16).reshape(2000, 32, 32)
    tifffile.imwrite(tmp_path / "movie.tif", data, imagej=True, metadata={"axes": "TYX"})
    await ngio_async.convert(tmp_path / "movie.tif", tmp_path / "movie.ome.zarr")
    chunks, shards = _layout(tmp_path / "movie.ome.zarr" / "0")
    assert chunks == [512, 32, 32]  # 1 MiB
    assert shards is None
    assert len(_objects(tmp_path / "movie.ome.zarr" / "0")) == 4
    async with ngio_async.open_async(tmp_path / "movie.ome.zarr") as ds:
        assert ds.axes == ("t", "y", "x")
        np.testing.assert_array_equal(await ds.read(), data)


async def test_small_planes_stack_along_z_then_t(tmp_path: Path) -> None:
    data = (np.arange(6 * 5 * 64 * 64) % 251).astype(np.uint8).reshape(6, 5, 64, 64)
    tifffile.imwrite(tmp_path / "tz.tif", data, imagej=True, metadata={"axes": "TZYX"})
    await ngio_async.convert(tmp_path / "tz.tif", tmp_path / "tz.ome.zarr")
    chunks, _ = _layout(tmp_path / "tz.ome.zarr" / "0")
    assert chunks == [6, 5, 64, 64]  # 120 KiB: every plane in one chunk
    async with ngio_async.open_async(tmp_path / "tz.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data)


@pytest.mark.parametrize(
    ("shape", "dtype", "expected"),
    [
        ((3, 600, 600), "uint16", [1, 512, 512]),  # a plane of several chunks
        ((2, 1000, 1000), "uint8", [1, 1000, 1000]),  # ~1 MiB planes: one each
    ],
)
async def test_big_planes_keep_their_chunks(
    tmp_path: Path, shape: tuple[int, ...], dtype: Any, expected: list[int]
) -> None:
    data = np.zeros(shape, dtype)
    tifffile.imwrite(tmp_path / "big.tif", data, photometric="minisblack")
    await ngio_async.convert(tmp_path / "big.tif", tmp_path / "big.ome.zarr", levels=1)
    chunks, _ = _layout(tmp_path / "big.ome.zarr" / "0")
    assert chunks == expected


async def test_channels_are_not_stacked(tmp_path: Path) -> None:
    data = np.ones((4, 3, 32, 32), np.uint16)
    tifffile.imwrite(tmp_path / "cz.tif", data, imagej=True, metadata={"axes": "ZCYX"})
    await ngio_async.convert(tmp_path / "cz.tif", tmp_path / "cz.ome.zarr")
    chunks, _ = _layout(tmp_path / "cz.ome.zarr" / "0")
    assert chunks == [1, 4, 32, 32]
