"""Whole inner chunks of a shard are encoded straight from the written pixels: the stored
shards stay byte for byte what zarr-python writes for the same data."""

from __future__ import annotations

import shutil
import threading
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async._errors import CodecError
from ngio_async.codecs import ChunkCodec
from ngio_async.images import _write

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


async def test_a_whole_shard_is_encoded_in_groups_on_several_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4x6 inner chunks per shard (the last shard an edge one), 5 per worker call: every group
    # runs in a worker thread; the shards are byte for byte zarr-python's
    monkeypatch.setattr(_write, "ENCODE_GROUP", 5)
    threads: list[int] = []
    encode_inner = _write._encode_inner

    def counted(*args: Any) -> None:
        threads.append(threading.get_ident())
        encode_inner(*args)

    monkeypatch.setattr(_write, "_encode_inner", counted)
    rng = np.random.default_rng(2)
    data = rng.integers(0, 3, size=(1, 1, 40, 88), dtype=np.uint16)  # some chunks all 0
    data[0, 0, :8, :8] = 0
    root = tmp_path / "img.zarr"
    ds = await ngio_async.create_async(
        root,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        chunks=(1, 1, 8, 8),
        shards=(1, 1, 32, 48),
    )
    async with ds:
        await ds.write(data)
        np.testing.assert_array_equal(await ds.read(), data)
    # shards: 4x6 chunks (24: 5 groups), 4x5 (edge, 20: 4), 1x6 (6: 2), 1x5 (5: one call)
    assert len(threads) == 5 + 4 + 2 + 1
    assert threading.get_ident() not in threads
    ref = tmp_path / "ref"
    (ref / "0").mkdir(parents=True)
    shutil.copy(root / "0" / "zarr.json", ref / "0" / "zarr.json")
    zarr.open_array(ref / "0", mode="r+")[...] = data
    assert stored_objects(root / "0") == stored_objects(ref / "0")


async def test_a_failed_group_raises_its_codec_error_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_write, "ENCODE_GROUP", 4)
    data = np.ones((1, 1, 32, 32), dtype=np.uint16)
    root = tmp_path / "img.zarr"
    ds = await ngio_async.create_async(
        root,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        chunks=(1, 1, 8, 8),
        shards=(1, 1, 32, 32),
    )
    encode = ChunkCodec.encode

    def failing(self: ChunkCodec, array: Any, key: str) -> bytes:  # fault injection
        if key.endswith("[0, 0, 2, 3]"):
            raise CodecError(f"cannot encode chunk {key!r}: injected", key=key)
        return encode(self, array, key)

    monkeypatch.setattr(ChunkCodec, "encode", failing)
    async with ds:
        with pytest.raises(CodecError, match=r"c/0/0/0/0\[0, 0, 2, 3\]"):
            await ds.write(data)
    assert not (root / "0" / "c" / "0" / "0" / "0" / "0").exists()
