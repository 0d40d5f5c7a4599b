"""The blocking tile iterator over real servers (moto S3, loopback HTTP), as scripts use it.

Laziness (requests counted after the first tile), ``close()`` from the consumer and from another
thread, ``break``, several threads pulling from one iterator, the progress callback, and
``np.asarray(ds)`` / ``dask.array.from_array(ds)`` over sharded and unsharded 0.4 and 0.5 images.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from served import places

import ngio_async
from ngio_async import ClosedError, Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from servers import StaticServer


@pytest.fixture(params=["http", "aiohttp", "s3"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def remote(
    request: pytest.FixtureRequest, where: str, name: str, **options: Any
) -> tuple[InstrumentedStore, np.ndarray[Any, Any]]:
    """An instrumented store reading image ``name`` from the server ``where``, and its data;
    closed at the test's end (a dataset opened on a store leaves the store open)."""
    if where in ("http", "aiohttp"):
        server, datas = request.getfixturevalue("http_images")
        if where == "aiohttp":
            options["backend"] = "aiohttp"
        store = InstrumentedStore(open_store(server.url + name, **options))
        data = datas[name]
    else:
        s3 = request.getfixturevalue("s3_server")
        url, data = request.getfixturevalue("s3_images")[name]
        store = InstrumentedStore(open_store(url, **s3.options(), **options))
    request.addfinalizer(lambda: asyncio.run(store.aclose()))
    return store, data


def _quiet(store: InstrumentedStore) -> None:
    """Nothing in flight, and nothing starts for a while."""
    assert store.in_flight == 0
    requests = store.total_requests
    time.sleep(0.01)
    assert (store.total_requests, store.in_flight) == (requests, 0)


# ------------------------------------------------------------------------------ laziness
@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("ordered", [True, False])
def test_the_blocking_loop_reads_lazily(
    request: pytest.FixtureRequest, where: str, name: str, ordered: bool
) -> None:
    store, data = remote(request, where, name, limits=Limits(max_requests=8))
    with ngio_async.open(store) as ds:
        store.reset()
        with ds.tiles(shape=(16, 16), ordered=ordered) as tiles:  # the default window
            next(tiles)
            time.sleep(0.05)
            assert store.method_counts["get"] < 256 // 2  # not the whole stream
        _quiet(store)
        store.reset()
        with ds.tiles(shape=(16, 16), ordered=ordered, prefetch=4) as tiles:
            first = next(tiles)
            np.testing.assert_array_equal(first.data, data[first.region])
            time.sleep(0.05)  # the prefetching fills its window, and stops there
            gets = store.method_counts["get"]
            # a window of 4 tiles (or 4 runs of at most one shard, each with its index)
            assert gets <= (4 + 1) * (2 if name == "0.5-sharded" else 1) + 2, gets
            n = 1 + sum(1 for _ in tiles)
        assert n == 256
        _quiet(store)


# ------------------------------------------------------------------------------ stopping
def _take_five(ds: Any, how: str, ordered: bool, store: InstrumentedStore) -> int:
    """Take 5 tiles of a 256-tile stream, then leave the loop ``how``; return the tiles taken."""
    stream = ds.tiles(shape=(16, 16), ordered=ordered)
    taken = 0
    if how == "close":
        for _ in stream:
            taken += 1
            if taken == 5:
                stream.close()  # the loop then ends normally
    elif how == "with-break":
        with stream as tiles:
            for _ in tiles:
                taken += 1
                if taken == 5:
                    break
    elif how == "bare-break":
        for _ in stream:
            taken += 1
            if taken == 5:
                break
        del stream  # finalized at once (all 50 of a sweep stopped by the first poll); when
        for i in range(200):  # not, a collection on the second poll and every 10th finds it
            if i % 10 == 1:
                gc.collect()
            if store.in_flight == 0:
                break
            time.sleep(0.005)
    else:

        def body() -> None:
            nonlocal taken
            with stream as tiles:
                for _ in tiles:
                    taken += 1
                    if taken == 5:
                        raise KeyError(taken)

        with pytest.raises(KeyError):
            body()
    return taken


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("how", ["close", "with-break", "bare-break", "raise"])
@pytest.mark.parametrize(("where", "name"), places())
def test_leaving_a_blocking_loop_early_stops_it(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    where: str,
    name: str,
    how: str,
) -> None:
    store, _ = remote(request, where, name)
    caplog.set_level(logging.DEBUG)
    with ngio_async.open(store) as ds:
        for attempt in range(5):
            for ordered in (True, False):
                assert _take_five(ds, how, ordered, store) == 5, (attempt, ordered)
                _quiet(store)
    gc.collect()
    bad = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert not bad, [rec.getMessage() for rec in bad]


@pytest.mark.parametrize(("where", "name"), places())
def test_close_from_another_thread_stops_the_consumer_with_closederror(
    request: pytest.FixtureRequest, where: str, name: str
) -> None:
    store, _ = remote(request, where, name)
    with ngio_async.open(store) as ds:
        for _ in range(10):
            tiles = ds.tiles(shape=(16, 16), ordered=False)
            fifth = threading.Event()
            got: list[Any] = []

            def consume(tiles: Any = tiles, fifth: threading.Event = fifth, got: Any = got) -> None:
                try:
                    for tile in tiles:
                        got.append(tile)
                        if len(got) == 5:
                            fifth.set()
                            time.sleep(0.02)
                except ClosedError as exc:
                    got.append(exc)

            t = threading.Thread(target=consume)
            t.start()
            assert fifth.wait(5)
            tiles.close()
            _quiet(store)
            t.join(5)
            assert not t.is_alive()
            assert isinstance(got[-1], ClosedError), got[-1]


# ------------------------------------------------------------------------------ many threads
@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("ordered", [True, False])
def test_threads_pulling_from_one_iterator_share_the_tiles(
    request: pytest.FixtureRequest, where: str, name: str, ordered: bool
) -> None:
    store, data = remote(request, where, name)
    counts: list[int] = []
    with ngio_async.open(store) as ds:
        for _ in range(5):
            counts.clear()
            lock = threading.Lock()
            tiles = ds.tiles(
                shape=(16, 16),
                ordered=ordered,
                y=slice(0, 96),
                progress=lambda done, _total: counts.append(done),
            )

            def pull(tiles: Any = tiles) -> list[Any]:
                out = []
                for tile in tiles:
                    np.testing.assert_array_equal(tile.data, data[tile.region])
                    out.append(tile.index)
                return out

            with ThreadPoolExecutor(4) as pool:
                parts = [f.result() for f in [pool.submit(pull) for _ in range(4)]]
            with lock:
                indexes = [i for part in parts for i in part]
            assert sorted(indexes) == [(0, y, x) for y in range(6) for x in range(16)]
            assert sorted(counts) == list(range(1, 97))
        _quiet(store)


# ------------------------------------------------------------------------------ numpy, dask
@pytest.mark.parametrize(("where", "name"), places())
def test_numpy_and_dask_read_a_remote_image_whole(
    request: pytest.FixtureRequest, where: str, name: str
) -> None:
    import dask.array as da

    store, data = remote(request, where, name)
    with ngio_async.open(store) as ds:
        np.testing.assert_array_equal(np.asarray(ds), data)
        arr = da.from_array(ds, chunks=(1, 64, 48))  # type: ignore[no-untyped-call]
        assert int(arr.sum(dtype="uint64").compute()) == int(data.sum(dtype="uint64"))
        np.testing.assert_array_equal(arr[:, 10:200:3, 5:].compute(), data[:, 10:200:3, 5:])
        _quiet(store)


# ------------------------------------------------------------------------------ memory bound
@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("ordered", [True, False])
def test_a_slow_blocking_consumer_holds_tiles_within_prefetch_bytes(
    request: pytest.FixtureRequest, where: str, name: str, ordered: bool
) -> None:
    tile_bytes = 16 * 16 * 2
    bound = 24 * tile_bytes
    store, data = remote(request, where, name, limits=Limits(prefetch_bytes=bound))
    with ngio_async.open(store) as ds:
        level: Any = ds.levels[0]._level  # the async level the stream reads
        started = 0
        read_many, read = level.read_many, level.read

        async def counted_many(regions: Any, indexes: Any = None) -> Any:
            nonlocal started
            started += len(regions)
            return await read_many(regions, indexes)

        async def counted_one(region: Any, indexes: Any = None) -> Any:
            nonlocal started
            started += 1
            return await read(region, indexes)

        level.read_many, level.read = counted_many, counted_one
        consumed = held = 0
        for tile in ds.tiles(shape=(16, 16), ordered=ordered, y=slice(0, 96)):
            consumed += 1
            np.testing.assert_array_equal(tile.data, data[tile.region])
            time.sleep(0.002)
            held = max(held, (started - consumed) * tile_bytes)  # ahead of the loop
        assert consumed == 96
        assert held <= bound


# ------------------------------------------------------------------------------ failures
def test_a_failed_stream_is_no_normal_end_for_the_other_threads(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    from servers import Faults

    server, _ = http_images
    store = InstrumentedStore(
        open_store(server.url + "0.5-plain", limits=Limits(max_retries=0, max_requests=4))
    )
    try:
        with ngio_async.open(store) as ds:
            tiles = ds.tiles(shape=(16, 16), prefetch=4)
            next(tiles)
            server.faults = Faults(status=500, status_times=-1)

            with ThreadPoolExecutor(1) as pool, pytest.raises(ngio_async.StoreError):
                pool.submit(lambda: sum(1 for _ in tiles)).result()  # one worker sees the 500
            # another worker asks for the next tile: the stream did not end, it failed
            with ThreadPoolExecutor(1) as pool:
                other = pool.submit(lambda: next(tiles, "normal end"))
                with pytest.raises(ngio_async.NgioError):
                    other.result()
    finally:
        server.faults = Faults()
        asyncio.run(store.aclose())
