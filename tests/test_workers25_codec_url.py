"""workers25: a chunk or shard index that fails to decode names the image's store URL and the
key (``exc.url``, ``exc.key`` and the message), whichever way it was read: async, blocking in
the calling thread or through the loop, tiles, a dask graph; the error still pickles."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers import StaticServer

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")


def _image(root: Path, name: str, *, sharded: bool) -> tuple[Path, str]:
    """A 32x32 uint16 image of 16x16 chunks (in one 32x32 shard if ``sharded``) whose
    last-written stored object is corrupted; its path and that object's key."""
    url = root / name
    shards: dict[str, Any] = {"shards": (32, 32) if sharded else False}
    with ngio_async.create(
        url, shape=(32, 32), dtype="uint16", axes="yx", chunks=(16, 16), levels=1, **shards
    ) as ds:
        ds[...] = np.arange(32 * 32, dtype="uint16").reshape(32, 32)
    if sharded:  # the index (at the end: its checksum then fails)
        obj = url / "0" / "c" / "0" / "0"
        data = bytearray(obj.read_bytes())
        data[-6] ^= 0xFF
        obj.write_bytes(bytes(data))
        return url, "0/c/0/0"
    (url / "0" / "c" / "1" / "1").write_bytes(b"\x00" * 512)
    return url, "0/c/1/1"


def _check(exc: BaseException, store_url: str, key: str) -> None:
    assert isinstance(exc, ngio_async.CodecError), repr(exc)
    assert exc.url == store_url
    assert exc.key == key
    assert f"{key!r} at {store_url}" in str(exc)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert (back.url, back.key) == (exc.url, exc.key)


@pytest.fixture(params=[False, True], ids=["chunk", "shard-index"])
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, str]:
    url, key = _image(tmp_path, "img.ome.zarr", sharded=request.param)
    with ngio_async.open(url) as ds:
        store_url = ds.levels[0]._level.store.url
    return url, key, store_url


async def test_async_reads_name_the_store(broken: tuple[Path, str, str]) -> None:
    url, key, store_url = broken
    async with await ngio_async.open_async(url) as ds:
        level = ds.levels[0]
        for read in (
            level[...],
            level[16:, 16:],
            level.read_orthogonal(([17, 20], slice(None))),
        ):
            with pytest.raises(ngio_async.CodecError) as info:
                await read
            _check(info.value, store_url, key)


def test_blocking_reads_name_the_store(broken: tuple[Path, str, str]) -> None:
    url, key, store_url = broken
    with ngio_async.open(url) as ds:
        level = ds.levels[0]
        reads: list[Callable[[], object]] = [
            lambda: level[16:, 16:],  # the calling thread (one stored object / few chunks)
            lambda: level[::2, ::2],  # through the loop (a strided read)
            lambda: level[...],
        ]
        for read in reads:
            with pytest.raises(ngio_async.CodecError) as info:
                read()
            _check(info.value, store_url, key)
        with pytest.raises(ngio_async.CodecError) as info:
            for _ in ds.tiles(shape=(16, 16)):
                pass
        _check(info.value, store_url, key)


def test_a_read_cache_read_names_the_store(broken: tuple[Path, str, str]) -> None:
    url, key, store_url = broken
    with ngio_async.open(url, limits=ngio_async.Limits(read_cache_bytes=2**22)) as ds:
        with pytest.raises(ngio_async.CodecError) as info:
            ds.levels[0][16:, 16:]
        _check(info.value, store_url, key)


def test_a_dask_graph_over_two_images_names_the_broken_one(tmp_path: Path) -> None:
    good, _ = _image(tmp_path, "good.ome.zarr", sharded=False)
    (good / "0" / "c" / "1" / "1").unlink()  # (reads as fill value)
    bad, key = _image(tmp_path, "bad.ome.zarr", sharded=False)
    with ngio_async.open(good) as a, ngio_async.open(bad) as b:
        store_url = b.levels[0]._level.store.url
        total = da.from_array(a, chunks=(16, 16)).sum() + da.from_array(b, chunks=(16, 16)).sum()
        with dask.config.set(scheduler="threads"), pytest.raises(ngio_async.CodecError) as info:
            total.compute()
    _check(info.value, store_url, key)
    assert "bad.ome.zarr" in str(info.value) and "good.ome.zarr" not in str(info.value)


async def test_a_remote_read_names_the_url(
    tmp_path: Path, http_root: Path, http_server: StaticServer
) -> None:
    _, key = _image(http_root, "img.ome.zarr", sharded=False)
    url = f"{http_server.url}img.ome.zarr"
    async with await ngio_async.open_async(url) as ds:
        store_url = ds.levels[0].store.url
        assert "127.0.0.1" in store_url
        with pytest.raises(ngio_async.CodecError) as info:
            await ds.levels[0][...]
    _check(info.value, store_url, key)


def test_name_store_leaves_a_named_error_and_other_errors_alone() -> None:
    from ngio_async._errors import name_store

    err = ngio_async.CodecError("cannot decode chunk '0/c/0': bad", key="0/c/0")
    name_store(err, "file:///a.zarr")
    name_store(err, "file:///b.zarr")  # (an outer layer: the first, innermost, name stays)
    assert (err.url, str(err)) == (
        "file:///a.zarr",
        "cannot decode chunk '0/c/0' at file:///a.zarr: bad",
    )
    group = ExceptionGroup("g", [ngio_async.CodecError("no key here"), ValueError("v")])
    name_store(group, "s3://b/x.zarr")
    assert str(group.exceptions[0]) == "s3://b/x.zarr: no key here"
    assert str(group.exceptions[1]) == "v"


def test_a_write_over_a_broken_object_names_the_store(broken: tuple[Path, str, str]) -> None:
    url, key, store_url = broken
    with ngio_async.open(url, mode="r+") as ds:
        writes: list[Callable[[], object]] = [
            lambda: ds.levels[0].__setitem__((slice(20, 22), slice(20, 22)), 7),
            lambda: ds.write(
                np.ones((2, 2), "uint16"), y=slice(20, 22), x=slice(20, 22), merge="max"
            ),  # (the merge writes straight to the stored objects, not through the level)
        ]
        for write in writes:
            with pytest.raises(ngio_async.CodecError) as info:
                write()
            _check(info.value, store_url, key)


def test_a_table_chunk_that_does_not_decode_names_the_store(tmp_path: Path) -> None:
    url = tmp_path / "img.ome.zarr"
    with ngio_async.create(url, shape=(16, 16), dtype="uint8", axes="yx", levels=1) as ds:
        ds.tables.write_features(
            "feats", {"area": [float(i) for i in range(64)]}, labels=list(range(1, 65))
        )
        store_url = ds.levels[0]._level.store.url
    (url / "tables" / "feats" / "X" / "c" / "0" / "0").write_bytes(b"\x01" * 40)  # the values
    with ngio_async.open(url) as ds, pytest.raises(ngio_async.CodecError) as info:
        ds.tables.read("feats")
    assert info.value.url == store_url
    assert info.value.key is not None and "X/c/0/0" in info.value.key
    assert f"at {store_url}" in str(info.value)
