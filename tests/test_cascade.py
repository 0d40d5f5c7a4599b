"""The pyramid cascade: ``write(..., pyramid=True)`` and ``writer(pyramid=True)`` build the lower
levels from memory while level 0 is written, and equal ``write`` + ``build_pyramid`` whatever the
alignment, order, overlap or memory bound of the writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
from test_pyramid import LAYOUTS, SHAPE, data_for, is_chunk, model

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def create(
    where: Any, version: Literal["0.4", "0.5"], chunks: Any, shards: Any, dtype: Any, **kw: Any
) -> Any:
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    return ngio_async.create_async(
        where,
        shape=kw.pop("shape", SHAPE),
        dtype=dtype,
        axes="cyx",
        chunks=chunks,
        levels=kw.pop("levels", 4),
        ngff_version=version,
        **options,
        **kw,
    )


def data_gets(store: InstrumentedStore) -> int:
    """GETs of stored objects (chunks / shards) of any level."""
    return sum(
        n
        for (method, key), n in store.calls.items()
        if method == "get" and any(is_chunk(key, str(i)) for i in range(8))
    )


@pytest.mark.parametrize("method", ["mean", "mode"])
@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_write_pyramid_equals_model_without_reading_back(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any, method: str
) -> None:
    data = data_for(method)
    store = InstrumentedStore(open_store(tmp_path, mkdir=True))
    async with create(store, version, chunks, shards, data.dtype) as ds:
        store.reset()
        await ds.write(data, pyramid=method)
        assert data_gets(store) == 0  # everything came from memory
        ours = [await lvl[...] for lvl in ds.levels]
        with pytest.raises(ValueError, match="pyramid"):
            await ds.write(data, pyramid="median")
    for i, want in enumerate(model(data, 4, method)):
        np.testing.assert_array_equal(ours[i], want, err_msg=f"level {i}")


@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_unaligned_and_partial_writes_equal_a_full_rebuild(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any
) -> None:
    data = data_for("mean", seed=1)
    patch = data_for("mean", (2, 13, 17), seed=2)
    async with create(tmp_path / "a", version, chunks, shards, data.dtype) as ds:
        await ds.write(data, pyramid=True)
        # odd offsets: not aligned to the 2x2 windows; rebuilt from the store at the end
        await ds.write(patch, pyramid=True, y=slice(5, 18), x=slice(9, 26))
        # one channel only, aligned: the other channel's pixels complete no accumulator
        await ds.write(patch[1], pyramid=True, c=0, y=slice(8, 21), x=slice(16, 33))
        ours = [await lvl[...] for lvl in ds.levels]
    expect = data.copy()
    expect[:, 5:18, 9:26] = patch
    expect[0, 8:21, 16:33] = patch[1]
    for i, want in enumerate(model(expect, 4, "mean")):
        np.testing.assert_array_equal(ours[i], want, err_msg=f"level {i}")


@pytest.mark.parametrize("max_bytes", [None, 1])
@pytest.mark.parametrize(("version", "chunks", "shards"), LAYOUTS)
async def test_writer_any_order_overlaps_and_memory_bound(
    tmp_path: Path, version: Literal["0.4", "0.5"], chunks: Any, shards: Any, max_bytes: int | None
) -> None:
    data = data_for("mean", seed=3)
    rng = np.random.default_rng(4)
    tiles = [
        (slice(c, c + 1), slice(y, min(y + 8, SHAPE[1])), slice(x, min(x + 8, SHAPE[2])))
        for c in range(SHAPE[0])
        for y in range(0, SHAPE[1], 8)
        for x in range(0, SHAPE[2], 8)
    ]
    order = rng.permutation(len(tiles))
    overlap = (slice(0, 2), slice(3, 12), slice(3, 12))  # written again (other values) at the end
    extra = data_for("mean", (2, 9, 9), seed=5)
    limits = Limits() if max_bytes is None else Limits(prefetch_bytes=max_bytes)
    store = InstrumentedStore(open_store(tmp_path, mkdir=True, limits=limits))
    async with create(store, version, chunks, shards, data.dtype) as ds:
        peak = 0
        async with ds.writer(pyramid=True) as w:
            cascade = w.cascade
            assert cascade is not None
            for k in order:
                await w.write((tiles[k], data[tiles[k]]))
                peak = max(peak, cascade.held_bytes)
            await w.write((overlap, extra))
        ours = [await lvl[...] for lvl in ds.levels]
    if max_bytes == 1:
        largest = max(int(np.prod(lvl.meta.stored_chunks)) for lvl in ds.levels[1:]) * 2
        assert peak <= largest  # one accumulator at a time (the one being filled)
    else:
        assert cascade.cascaded > 0
    expect = data.copy()
    expect[overlap] = extra
    for i, want in enumerate(model(expect, 4, "mean")):
        np.testing.assert_array_equal(ours[i], want, err_msg=f"level {i}")


async def test_sharded_full_write_writes_each_object_once(tmp_path: Path) -> None:
    data = data_for("mean", (2, 64, 96), seed=6)
    store = InstrumentedStore(open_store(tmp_path, mkdir=True))
    async with create(store, "0.5", (1, 8, 8), (1, 16, 16), data.dtype, shape=data.shape) as ds:
        store.reset()
        await ds.write(data, pyramid=True)
        puts = [key for (method, key) in store.calls if method == "put"]
        assert all(n == 1 for (method, _), n in store.calls.items() if method == "put")
        for i, lvl in enumerate(ds.levels):
            grid = [-(-n // s) for n, s in zip(lvl.shape, lvl.meta.stored_chunks, strict=True)]
            assert sum(is_chunk(k, str(i)) for k in puts) == int(np.prod(grid)), f"level {i}"
        assert data_gets(store) == 0


async def test_pyramid_needs_level_0_and_a_single_level_is_a_plain_write(tmp_path: Path) -> None:
    data = data_for("mean", seed=7)
    async with create(tmp_path / "a", "0.5", (1, 8, 8), None, data.dtype) as ds:
        with pytest.raises(ValueError, match="level 0"):
            await ds.write(data[:, ::2, ::2], level=1, pyramid=True)
    async with create(tmp_path / "b", "0.5", (1, 8, 8), None, data.dtype, levels=1) as ds:
        await ds.write(data, pyramid=True)
        np.testing.assert_array_equal(await ds[...], data)


def test_sync_write_and_writer_with_pyramid(tmp_path: Path) -> None:
    data = data_for("mean", seed=8)
    with ngio_async.create(
        tmp_path / "a", shape=SHAPE, dtype=data.dtype, axes="cyx", chunks=(1, 8, 8), levels=3
    ) as ds:
        ds.write(data, pyramid=True)
        with ds.writer(pyramid=True) as w:
            w.write(((slice(0, 2), slice(0, 16), slice(0, 16)), data[:, :16, :16] // 2))
        got = [lvl[...] for lvl in ds.levels]
    expect = data.copy()
    expect[:, :16, :16] //= 2
    for i, want in enumerate(model(expect, 3, "mean")):
        np.testing.assert_array_equal(got[i], want, err_msg=f"level {i}")


async def test_an_object_cascaded_twice_ends_like_level_0_whatever_finishes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two writes of one region: the first one's downsampling finishes last (a slow worker
    # thread); level 1 must still hold the second one's pixels, as level 0 does
    import threading

    from ngio_async.images import _cascade, _pyramid

    second_done = threading.Event()
    reduce = _pyramid._reduce  # the one _cascade imports

    def second_waits_for_first() -> bool:  # the writer holds an overlapping write back
        return any(done.statistics().tasks_waiting for _, done in list(w._in_flight.values()))

    def racing_reduce(block: Any, *args: Any) -> Any:
        if block.flat[0] == 1:  # the first write waits until the second one is reduced
            for _ in range(10_000):  # ... or waits for the first one: no race to lose
                if second_done.wait(0.001) or second_waits_for_first():
                    break
        out = reduce(block, *args)
        if block.flat[0] == 2:
            second_done.set()
        return out

    monkeypatch.setattr(_cascade, "_reduce", racing_reduce)
    region = (slice(0, 1), slice(32, 34), slice(32, 34))  # one level-1 object: [16:17, 16:17]
    async with create(
        tmp_path / "img",
        "0.5",
        (1, 16, 16),
        False,
        "uint8",
        shape=(1, 34, 34),
        levels=2,
        limits=Limits(decode_threads=4),
    ) as ds:
        async with ds.writer(pyramid=True, max_pending=2) as w:
            await w.write((region, np.full((1, 2, 2), 1, np.uint8)))
            await w.write((region, np.full((1, 2, 2), 2, np.uint8)))
        assert second_done.is_set()
        assert (await ds.levels[0][region]).tolist() == [[[2, 2], [2, 2]]]
        assert int(await ds.levels[1][0, 16, 16]) == 2


async def test_concurrent_pyramid_writes_end_like_level_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # write A (aligned: level 1 from memory) is downsampled while write B changes part of the
    # same level-1 object in level 0 and rebuilds it; A must not write its older pixels over B's
    import threading

    import anyio

    from ngio_async.images import _cascade, _pyramid

    a_reducing, b_done = threading.Event(), threading.Event()
    reduce = _pyramid._reduce  # the one _cascade imports

    def slow_reduce(block: Any, *args: Any) -> Any:
        if block.flat[0] == 1 and not a_reducing.is_set():  # A's first object: waits for B
            a_reducing.set()
            b_done.wait(timeout=10)
        return reduce(block, *args)

    monkeypatch.setattr(_cascade, "_reduce", slow_reduce)
    async with create(
        tmp_path / "img",
        "0.5",
        (1, 8, 8),
        False,
        "uint8",
        shape=(1, 16, 16),
        levels=2,
        limits=Limits(decode_threads=4),
    ) as ds:

        async def write_b() -> None:
            await anyio.to_thread.run_sync(a_reducing.wait, 10)
            await ds.write_at((0, slice(1, 3), slice(1, 3)), 9, pyramid=True)  # unaligned
            b_done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(write_b)
            await ds.write_at((slice(0, 1), slice(0, 16), slice(0, 16)), 1, pyramid=True)
        level0 = await ds.levels[0][...]
        assert (level0[0, 1:3, 1:3] == 9).all()
        for i, want in enumerate(model(level0, 2, "mean")):
            np.testing.assert_array_equal(await ds.levels[i][...], want, err_msg=f"level {i}")


async def test_concurrent_rebuilds_of_one_tile_end_like_level_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two unaligned pyramid writes rebuild the same level-1 tile from the store; the one that
    # read level 0 first must not write last (it did: level 1 kept stale pixels)
    import threading
    import time

    import anyio

    from ngio_async.images import _pyramid

    reduce = _pyramid._reduce
    a_reducing, b_reduced = threading.Event(), threading.Event()

    def racing_reduce(block: Any, *args: Any) -> Any:
        if (block == 2).any():
            b_reduced.set()
        elif (block == 1).any():  # A's rebuild: wait until B reduced or waits for the tile
            a_reducing.set()
            for _ in range(10_000):
                locks = ds.levels[1]._write_locks._locks
                if b_reduced.is_set() or any(users > 1 for _, users in locks.values()):
                    break
                if ds.structure_lock().statistics().tasks_waiting:  # B's rebuild waits for A's
                    break
                time.sleep(0.001)
        return reduce(block, *args)

    monkeypatch.setattr(_pyramid, "_reduce", racing_reduce)
    async with create(
        tmp_path / "img",
        "0.5",
        (1, 16, 16),
        False,
        "uint16",
        shape=(1, 32, 32),
        levels=2,
        limits=Limits(decode_threads=4),
    ) as ds:

        async def write_b() -> None:
            await anyio.to_thread.run_sync(a_reducing.wait, 10)  # A's rebuild has read level 0
            await ds.write_at((0, slice(9, 13), slice(9, 13)), 2, pyramid=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write_b)
            await ds.write_at((0, slice(1, 5), slice(1, 5)), 1, pyramid=True)
        level0 = await ds.levels[0][...]
        for i, want in enumerate(model(level0, 2, "mean")):
            np.testing.assert_array_equal(await ds.levels[i][...], want, err_msg=f"level {i}")


async def test_a_failed_writer_leaves_later_cascades_writing_from_memory(tmp_path: Path) -> None:
    async with create(tmp_path / "img", "0.5", (1, 8, 8), False, "uint8", levels=2) as ds:
        with pytest.raises(RuntimeError, match="producer failed"):
            async with ds.writer(pyramid=True) as failed:
                raise RuntimeError("producer failed")
        assert failed.cascade is not None  # still referenced, but no longer alive
        async with ds.writer(pyramid=True) as w:
            assert w.cascade is not None
            assert not w.cascade.shared  # not alive together with the failed one
            await w.write(((slice(0, 1), slice(0, 16), slice(0, 16)), np.ones((1, 16, 16))))
        assert w.cascade.cascaded > 0  # written from memory, not rebuilt from the store
