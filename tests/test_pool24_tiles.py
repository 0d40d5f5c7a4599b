"""A tile stream recycles the arrays of big tiles its consumer dropped (``TilePool``), never one
that anything still holds, and ``Limits(reuse_tile_arrays=False)`` gives fresh arrays.

Most tests lower the pool's size threshold (``_tile_pool.MIN_BYTES``) so that small tiles take
the same paths as 32 MiB ones; one streams tiles of the default threshold.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, upload, write_image

import ngio_async
from ngio_async import Limits
from ngio_async.images import _tile_pool
from ngio_async.images._tile_pool import TilePool
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

# 40 tiles (one per plane) of one 64x64 shard of 32x32 inner chunks
SPEC = Spec(shape=(40, 64, 64), chunks=(1, 32, 32), shards=(1, 64, 64), levels=1)
# (tile shape, prefetch): whole-shard tiles one per read; two per worker-thread call; tiles
# sharing inner chunks, read in runs (read_many_blocking / read_many)
PATHS = [(None, 2), (None, 4), ((1, 16, 64), 4)]


@pytest.fixture
def small_tiles_pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tile_pool, "MIN_BYTES", 1)


@pytest.fixture
def dropped(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """The free arrays each pool (by ``id``) let go beyond its ``keep`` (counted, not changed).

    A consumer that catches up with its stream frees more than ``keep`` arrays at once; the
    pool lets those go and makes them again when the window fills up. How often that happens
    depends on how the threads are scheduled (a loaded machine: 7 of 13 made), so the pool's
    ``made`` is bounded by the arrays in use at once plus these."""
    counts: dict[int, int] = {}
    take = TilePool._take

    def counted(self: TilePool, shape: tuple[int, ...], dtype: np.dtype[Any]) -> Any:
        before = self.tracked
        got = take(self, shape, dtype)
        counts[id(self)] = counts.get(id(self), 0) + before - self.tracked
        return got

    monkeypatch.setattr(TilePool, "_take", counted)
    return counts


def most(prefetch: int) -> int:
    """Arrays in use at once in a stream whose consumer drops each tile: the window's, and a
    few batches or runs (of up to two tiles) more: the one being handed out, the ones being
    decoded, those a thread or task still refers to a moment longer."""
    return 2 * prefetch + 8


def address(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


async def drop_each(ds: Any, data: np.ndarray[Any, Any], **kwargs: Any) -> tuple[Any, set[int]]:
    """Stream, checking each tile against ``data`` and dropping it; the stream and the
    distinct buffer addresses its tiles came in."""
    stream = ds.tiles(**kwargs)
    seen: set[int] = set()
    n = 0
    async for tile in stream:
        np.testing.assert_array_equal(tile.data, data[tile.region])
        seen.add(address(tile.data))
        n += 1
    assert n == len(stream)
    return stream, seen


@pytest.mark.usefixtures("small_tiles_pooled")
@pytest.mark.parametrize(("shape", "prefetch"), PATHS)
async def test_a_consumer_dropping_each_tile_gets_a_few_buffers_over_and_over(
    tmp_path: Path, shape: Any, prefetch: int, dropped: dict[int, int]
) -> None:
    (data,) = write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        stream, seen = await drop_each(ds, data, shape=shape, prefetch=prefetch)
        pool = stream.array_pool
        assert pool is not None
        let_go = dropped.get(id(pool), 0)
        assert pool.made - let_go <= most(prefetch), (pool.made, let_go)
        assert len(seen) <= pool.made
        assert pool.made + pool.reused == len(stream)
        assert pool.reused > 0  # (each time arrays were let go, one of them was taken)
        assert pool.tracked == 0  # the stream ended: its arrays went with it


@pytest.mark.usefixtures("small_tiles_pooled")
@pytest.mark.parametrize("hold", ["tile", "view", "memoryview"])
async def test_a_consumer_keeping_its_tiles_gets_every_one_in_its_own_untouched_buffer(
    tmp_path: Path, hold: str
) -> None:
    write_image(tmp_path, SPEC)
    kept: list[tuple[tuple[slice, ...], Any]] = []
    async with ngio_async.open_async(tmp_path) as ds:
        stream = ds.tiles(prefetch=2)
        async for tile in stream:
            what: Any = tile
            if hold == "view":
                what = tile.data[:, 1:, :]
            elif hold == "memoryview":
                what = tile.data.data  # (a memoryview)
            kept.append((tile.region, what))
            del tile, what
        assert stream.array_pool is not None
        assert stream.array_pool.reused == 0
        for region, what in kept:  # as read again now: nothing was decoded over them
            got = what.data if hold == "tile" else np.asarray(what)
            want = await ds.levels[0].read(region)
            np.testing.assert_array_equal(got, want[:, 1:, :] if hold == "view" else want)
        bases = {address(np.asarray(w.data if hold == "tile" else w)) for _, w in kept}
        assert len(bases) == len(kept) == SPEC.shape[0]


@pytest.mark.usefixtures("small_tiles_pooled")
async def test_the_opt_out_gives_fresh_arrays_the_stream_keeps_no_hold_on(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, SPEC)

    def held_by_a_list(a: np.ndarray[Any, Any]) -> bool:
        return any(isinstance(r, list) for r in gc.get_referrers(a))

    async with ngio_async.open_async(tmp_path) as ds:
        stream = ds.tiles(prefetch=2)
        async for tile in stream:
            assert held_by_a_list(tile.data)  # tracked: taken again once dropped
            break
    async with ngio_async.open_async(tmp_path, limits=Limits(reuse_tile_arrays=False)) as ds:
        stream, _ = await drop_each(ds, data, prefetch=2)
        assert stream.array_pool is None
        async for tile in ds.tiles(prefetch=2):
            assert not held_by_a_list(tile.data)
    with pytest.raises(ValueError, match="reuse_tile_arrays must be True or False"):
        Limits(reuse_tile_arrays=1)  # type: ignore[arg-type]


@pytest.mark.usefixtures("small_tiles_pooled")
def test_the_blocking_loop_recycles_too(tmp_path: Path, dropped: dict[int, int]) -> None:
    (data,) = write_image(tmp_path, SPEC)
    with ngio_async.open(tmp_path) as ds:
        seen: set[int] = set()
        for tile in ds.tiles(prefetch=2):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            seen.add(address(tile.data))
        assert len(seen) <= most(2) + sum(dropped.values())
        kept = list(ds.tiles(prefetch=2))
        assert len({address(t.data) for t in kept}) == len(kept) == SPEC.shape[0]
        for t in kept:
            np.testing.assert_array_equal(t.data, data[t.region])


@pytest.mark.usefixtures("small_tiles_pooled")
@pytest.mark.parametrize(("shape", "prefetch"), [(None, 2), ((1, 48, 48), 4)])
async def test_s3_streams_recycle_and_keep_held_tiles_whole(
    tmp_path: Path, s3_server: S3Server, shape: Any, prefetch: int, dropped: dict[int, int]
) -> None:
    (data,) = write_image(tmp_path / "img", SPEC)
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(tmp_path / "img", store)
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        stream, seen = await drop_each(ds, data, shape=shape, prefetch=prefetch)
        pool = stream.array_pool
        assert pool is not None
        let_go = dropped.get(id(pool), 0)
        assert pool.made - let_go <= most(prefetch), (pool.made, let_go)
        assert pool.made + pool.reused == len(stream)
        assert len(seen) <= pool.made
        kept = [t async for t in ds.tiles(shape=shape, prefetch=prefetch)]
        assert len({address(t.data) for t in kept}) == len(kept)
        for t in kept:
            np.testing.assert_array_equal(t.data, data[t.region])


async def test_tiles_of_the_default_threshold_are_recycled(tmp_path: Path) -> None:
    # 4 tiles of 2048x4096 uint16: 16 MiB each
    spec = Spec(shape=(4, 2048, 4096), chunks=(1, 2048, 4096), levels=1, compressor=None)
    (data,) = write_image(tmp_path, spec)
    async with ngio_async.open_async(tmp_path) as ds:
        stream, _ = await drop_each(ds, data, prefetch=1)
        assert stream.array_pool is not None
        assert stream.array_pool.reused >= 1
        small = ds.tiles(shape=(1, 1024, 4096))  # 8 MiB: malloc reuses those itself
        assert small.array_pool is None


async def test_a_tile_the_consumer_dropped_is_freed_at_once(tmp_path: Path) -> None:
    """Nothing of the stream keeps a tile its consumer dropped (then its array is free for the
    pool, and its memory is not held past ``prefetch_bytes``): the worker task that read it
    kept it while waiting for its next item (38 of 40 tiles), the decode thread a moment
    longer (a few)."""
    write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        alive: list[bool] = []
        async for tile in ds.tiles(prefetch=2):
            ref = weakref.ref(tile.data)
            del tile
            alive.append(ref() is not None)
    assert alive == [False] * SPEC.shape[0], alive


# ------------------------------------------------------------------ the pool itself
def test_an_array_is_taken_again_only_when_nothing_else_holds_it() -> None:
    pool = TilePool(keep=4, min_bytes=1)
    dt = np.dtype("uint16")
    a = pool.empty((8, 8), dt)
    first = address(a)
    for holder in (
        lambda x: x[1:],
        lambda x: x.data,  # a memoryview
        weakref.ref,
        lambda x: x.ctypes,
        lambda x: np.asarray(x.data),
    ):
        held = holder(a)
        del a
        b = pool.empty((8, 8), dt)
        assert address(b) != first  # a fresh one
        del b
        a = pool.empty((8, 8), dt)  # (the fresh one is free now: reused, not the held one)
        assert address(a) != first
        del held
        a = pool.empty((8, 8), dt)
        assert address(a) == first  # released: taken again
    other = pool.empty((8, 9), dt)  # another shape: fresh
    assert address(other) != first
    assert pool.empty((8, 8), np.dtype("int16")) is not a


def test_the_pool_keeps_at_most_keep_free_arrays_and_drops_all_when_closed() -> None:
    pool = TilePool(keep=2, min_bytes=1)
    dt = np.dtype("uint8")
    arrays = [pool.empty((100,), dt) for _ in range(6)]
    assert pool.tracked == 6
    del arrays
    other = pool.empty((3,), dt)  # (another shape: each free one seen, two kept)
    free = [a for a in pool._arrays if sys.getrefcount(a) == 3]  # list, loop, argument
    assert len(free) == 2
    del other
    pool.close()
    assert pool.tracked == 0
    assert pool.empty((100,), dt) is not None
    assert pool.tracked == 0


def test_threads_never_get_an_array_another_thread_holds() -> None:
    pool = TilePool(keep=4, min_bytes=1)
    dt = np.dtype("int64")
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(300):
            a = pool.empty((64,), dt)
            a[...] = k * 1000 + i
            time.sleep(0)  # the other threads take arrays meanwhile
            if not (a == k * 1000 + i).all():
                errors.append(f"thread {k}: array {i} overwritten")
            del a

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert pool.reused > 0


@pytest.mark.usefixtures("small_tiles_pooled")
async def test_stream_recycles_the_tiles_its_consumer_dropped_never_those_it_returned(
    tmp_path: Path,
) -> None:
    (data,) = write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        tiles = ds.tiles(prefetch=2)
        async with ngio_async.stream(tiles, lambda a: int(a.sum())) as results:
            async for tile, total in results:
                assert total == int(data[tile.region].sum())
        assert tiles.array_pool is not None
        assert tiles.array_pool.reused > 0
        tiles = ds.tiles(prefetch=2)
        done = await ngio_async.stream(tiles, lambda a: a[:, 1:])  # (tile, view) pairs
        assert tiles.array_pool is not None
        assert done is not None
        assert len(done) == SPEC.shape[0]
        # (arrays the first stream left may be taken again: the dataset keeps them) never one
        # this stream returned: every tile has its own buffer
        assert len({address(tile.data) for tile, _ in done}) == len(done)
        for tile, view in done:
            np.testing.assert_array_equal(tile.data, data[tile.region])
            np.testing.assert_array_equal(view, data[tile.region][:, 1:])
