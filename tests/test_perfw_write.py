"""Whole inner chunks of a shard are encoded straight from the written pixels: the stored
shards stay byte for byte what zarr-python writes for the same data."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Literal

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def stored_objects(level: Path) -> dict[str, bytes]:
    return {
        p.relative_to(level).as_posix(): p.read_bytes()
        for p in sorted(level.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize("compressor", ["blosc-zstd", "zstd"])
async def test_whole_shard_writes_store_what_zarr_python_stores(
    tmp_path: Path, compressor: Literal["blosc-zstd", "zstd"]
) -> None:
    # edge shards and edge inner chunks (40 = 32 + 8, 72 = 64 + 8), chunks all fill value
    # (left out), an edge chunk whose in-bounds pixels are all fill, a non-contiguous source
    rng = np.random.default_rng(1)
    big = rng.integers(1, 4000, size=(2, 2, 44, 80), dtype=np.uint16)
    data = big[:, :, 2:42, 5:77]  # a strided view of a bigger array
    assert not data.flags.c_contiguous
    data[0, 0, :16, :32] = 0  # one whole shard of fill value: no object
    data[0, 1, 8:16, 16:32] = 0  # one inner chunk of fill: not in its shard
    data[1, 0, 32:, 64:] = 0  # the corner edge chunk: fill inside the image
    root = tmp_path / "img.zarr"
    ds = await ngio_async.create_async(
        root,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        chunks=(1, 1, 8, 16),
        shards=(1, 1, 16, 32),
        compressor=compressor,
    )
    async with ds:
        await ds.write(data)
        np.testing.assert_array_equal(await ds.read(), data)

    ref = tmp_path / "ref"
    (ref / "0").mkdir(parents=True)
    shutil.copy(root / "0" / "zarr.json", ref / "0" / "zarr.json")
    arr = zarr.open_array(ref / "0", mode="r+")
    arr[...] = data
    ours, theirs = stored_objects(root / "0"), stored_objects(ref / "0")
    assert "c/0/0/0/0" not in ours
    assert sorted(ours) == sorted(theirs)
    assert ours == theirs


async def test_a_piece_of_another_dtype_is_cast_as_before(tmp_path: Path) -> None:
    # int32 values into a uint16 image: the same pixels as a uint16 write of them
    data = np.arange(2 * 32 * 48, dtype=np.int32).reshape(1, 2, 32, 48) % 3000
    root = tmp_path / "img.zarr"
    ds = await ngio_async.create_async(
        root,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        chunks=(1, 1, 8, 16),
        shards=(1, 1, 16, 16),
    )
    async with ds:
        await ds.write(data)
        got = await ds.read()
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, data.astype(np.uint16))
