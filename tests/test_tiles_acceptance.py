"""Acceptance sweep of tile streams as users run them, on moto S3 and loopback HTTP (both clients).

Sharded and unsharded images, NGFF 0.4 and 0.5: early exits (``break``, an exception in the loop
body, ``anyio.fail_after``, a cancelled consumer) leave nothing in flight and start nothing new,
with warnings as errors and logging captured; the request and byte bounds hold; tiles cover the
region once and equal plain reads; the progress callback counts each tile once.
"""

from __future__ import annotations

import gc
import logging
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec
from served import CountingReads, burst, places, served_image

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from servers import StaticServer

pytestmark = pytest.mark.anyio


class Remote:
    """An image on a real server, read through an :class:`InstrumentedStore`."""

    def __init__(self, store: InstrumentedStore, data: np.ndarray[Any, Any]) -> None:
        self.store = store
        self.data = data


@pytest.fixture(params=["http", "aiohttp", "s3"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def remote(request: pytest.FixtureRequest, where: str, name: str, **store_options: Any) -> Remote:
    if where in ("http", "aiohttp"):
        server, datas = request.getfixturevalue("http_images")
        if where == "aiohttp":
            store_options["backend"] = "aiohttp"
        inner = open_store(server.url + name, **store_options)
        return Remote(InstrumentedStore(inner), datas[name])
    s3 = request.getfixturevalue("s3_server")
    url, data = request.getfixturevalue("s3_images")[name]
    return Remote(InstrumentedStore(open_store(url, **s3.options(), **store_options)), data)


# ------------------------------------------------------------------------------ early exits
class Stop(Exception):
    """Raised by a loop body."""


async def _settle(store: InstrumentedStore) -> None:
    """Give a bare loop's abandoned generator the chance to stop: dropped, it is finalized at
    once (all 120 of a sweep stopped by the first poll); when not, a collection on the second
    poll and every 10th after finds it (one on every poll was a tenth of the sweep's time)."""
    for i in range(100):
        if i % 10 == 1:
            gc.collect()
        await anyio.sleep(0.002)
        if store.in_flight == 0:
            return


async def _exit_early(ds: Any, how: str, form: str, ordered: bool) -> int:
    """Take 5 tiles of a 256-tile stream, then leave the loop ``how``; return the tiles taken."""
    taken = 0
    deadline = anyio.CancelScope()  # replaced by fail_after's scope
    fifth = anyio.Event()

    async def loop(tiles: AsyncIterator[Any]) -> None:
        nonlocal taken
        async for _ in tiles:
            taken += 1
            if taken == 5:
                if how == "break":
                    break
                if how == "raise":
                    raise Stop
                fifth.set()
                deadline.deadline = anyio.current_time()  # no-op unless it is fail_after's
                await anyio.sleep(30)  # fail_after / cancel end this

    async def run() -> None:
        stream = ds.tiles(shape=(16, 16), ordered=ordered)
        if form == "with":
            async with stream as tiles:
                await loop(tiles)
        else:
            await loop(stream)

    if how == "break":
        await run()
    elif how == "raise":
        with pytest.raises(Stop):
            await run()
    elif how == "timeout":
        with pytest.raises(TimeoutError):
            with anyio.fail_after(30) as deadline:
                await run()
    else:  # cancel the consuming task once it holds its fifth tile
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await fifth.wait()
            tg.cancel_scope.cancel()
    return taken


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("how", ["break", "raise", "timeout", "cancel"])
async def test_leaving_a_remote_stream_early_stops_it_quietly(
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    where: str,
    name: str,
    how: str,
) -> None:
    r = remote(request, where, name)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with ngio_async.open_async(r.store) as ds:
            for attempt in range(3):
                for form in ("bare", "with"):
                    for ordered in (True, False):
                        case = (attempt, form, ordered)
                        assert await _exit_early(ds, how, form, ordered) == 5, case
                        if form == "bare":
                            await _settle(r.store)
                        assert r.store.in_flight == 0, case
                        requests = r.store.total_requests
                        await anyio.sleep(0.005)
                        assert r.store.total_requests == requests, case  # nothing new starts
                        assert r.store.in_flight == 0, case
        await r.store.aclose()
        gc.collect()
    bad = [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
    assert not bad, [rec.getMessage() for rec in bad]


# ------------------------------------------------------------------------------ the bounds
@pytest.mark.parametrize(("where", "name"), places("0.5-plain", "0.4"))
@pytest.mark.parametrize("ordered", [True, False])
async def test_a_remote_stream_fills_max_requests_and_no_more(
    request: pytest.FixtureRequest, where: str, name: str, ordered: bool
) -> None:
    limits = Limits(max_requests=6)
    r = remote(request, where, name, limits=limits)
    r.store.latency = 0.003  # requests overlap however fast the server
    async with ngio_async.open_async(r.store) as ds:
        r.store.reset()
        n = 0
        async for tile in ds.tiles(shape=(16, 16), ordered=ordered):
            np.testing.assert_array_equal(tile.data, r.data[tile.region])
            n += 1
        assert n == 256
        assert r.store.peak_in_flight == limits.max_requests
    await r.store.aclose()


# 64 shards of 4 x 4 chunks in 8 rows; tiles of one chunk: runs of 16 tiles (one shard)
MANY_SHARDS = Spec(
    version="0.5", shape=(1, 512, 512), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1
)


class StartLog(InstrumentedStore):
    """Also records, for each request started, its key and the requests then in flight."""

    started: list[tuple[str, int]]

    def _start(self, method: str, key: str) -> None:
        super()._start(method, key)
        self.started.append((key, self.in_flight))


@pytest.fixture(scope="module")
def many_shards(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StaticServer, np.ndarray[Any, Any]]]:
    """:data:`MANY_SHARDS` served once for the two tests that read it."""
    with served_image(tmp_path_factory.mktemp("many"), MANY_SHARDS) as both:
        yield both


async def test_unordered_runs_fill_max_requests(
    many_shards: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = many_shards
    limits = Limits(max_requests=8)
    store = InstrumentedStore(open_store(server.url + "img.zarr", limits=limits), latency=0.005)
    async with ngio_async.open_async(store) as ds:
        store.reset()
        n = 0
        async for tile in ds.tiles(shape=(16, 16), ordered=False):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            n += 1
        assert n == 1024
        assert store.method_counts["get"] == 64  # one GET per shard
        assert store.peak_in_flight == limits.max_requests  # was 3
    await store.aclose()


async def test_ordered_runs_fetch_a_rows_shard_indexes_together(
    many_shards: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = many_shards
    limits = Limits(max_requests=8)
    store = StartLog(open_store(server.url + "img.zarr", limits=limits), latency=0.005)
    store.started = []
    async with ngio_async.open_async(store) as ds:
        store.reset()
        store.started = []
        n = 0
        async for tile in ds.tiles(shape=(16, 16), y=slice(0, 64)):  # one row of 8 shards
            np.testing.assert_array_equal(tile.data, data[tile.region])
            n += 1
        assert n == 128
        keys = [key for key, _ in store.started]
        assert len(keys) == 16  # 8 indexes, then 8 data reads
        # the 8 indexes are all started before the first of them ends
        assert [in_flight for _, in_flight in store.started[:8]] == list(range(1, 9))
    await store.aclose()


@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("ordered", [True, False])
async def test_a_slow_remote_consumer_holds_tiles_within_prefetch_bytes(
    request: pytest.FixtureRequest, where: str, name: str, ordered: bool
) -> None:
    tile_bytes = 16 * 16 * 2
    bound = 24 * tile_bytes
    r = remote(request, where, name, limits=Limits(prefetch_bytes=bound))
    async with ngio_async.open_async(r.store) as ds:
        reads = CountingReads(ds.levels[0])
        consumed = held = 0
        async for tile in ds.tiles(shape=(16, 16), ordered=ordered, y=slice(0, 128)):
            consumed += 1
            np.testing.assert_array_equal(tile.data, r.data[tile.region])
            await anyio.sleep(0.002)
            held = max(held, (reads.started - consumed) * tile_bytes)  # ahead of the loop
        assert consumed == 128
        assert held <= bound
    await r.store.aclose()


# ------------------------------------------------------------------------------ the contents
@pytest.mark.parametrize(("where", "name"), places())
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(
    ("shape", "overlap", "region"),
    [
        ((1, 24, 40), 0, None),
        ((1, 50, 16), 3, (slice(0, 1), slice(7, 201), slice(30, 256))),
        (None, 0, None),  # one shard or one chunk
    ],
)
async def test_remote_tiles_cover_the_region_once_and_equal_reads(
    request: pytest.FixtureRequest,
    where: str,
    name: str,
    ordered: bool,
    shape: tuple[int, ...] | None,
    overlap: int,
    region: tuple[slice, ...] | None,
) -> None:
    r = remote(request, where, name)
    seen: list[tuple[int, int | None]] = []
    async with ngio_async.open_async(r.store) as ds:
        stream = ds.tiles(
            shape=shape,
            region=region,
            overlap=overlap,
            ordered=ordered,
            progress=lambda done, total: seen.append((done, total)),
        )
        tiles = [t async for t in stream]
        # each tile's region read again, all at once (one by one, these round trips were most
        # of the test's time)
        reads = await burst(ds, [(t.region[1], t.region[2]) for t in tiles])
        for t, read in zip(tiles, reads, strict=True):
            np.testing.assert_array_equal(t.data, r.data[t.region])
            np.testing.assert_array_equal(t.data, read)
            np.testing.assert_array_equal(t.core_data, r.data[t.core])
    indexes = [t.index for t in tiles]
    assert len(indexes) == len(set(indexes)) == len(stream)
    if ordered:
        assert indexes == sorted(indexes)
    covered = np.zeros(r.data.shape, dtype=np.int32)
    for t in tiles:
        covered[t.core] += 1
    want = np.zeros(r.data.shape, dtype=np.int32)
    want[region if region is not None else ...] = 1
    np.testing.assert_array_equal(covered, want)
    assert seen == [(i, len(tiles)) for i in range(1, len(tiles) + 1)]
    await r.store.aclose()


async def test_the_rich_progress_bar_counts_a_remote_stream(
    request: pytest.FixtureRequest, where: str
) -> None:
    import io

    from rich.console import Console

    from ngio_async.progress import rich_progress

    r = remote(request, where, "0.5-sharded")
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    async with ngio_async.open_async(r.store) as ds:
        with rich_progress("level 0", nbytes_per_item=512, console=console) as bar:
            n = len([t async for t in ds.tiles(shape=(16, 16), ordered=False, progress=bar)])
    assert n == 256
    assert "256/256" in out.getvalue()
    await r.store.aclose()
