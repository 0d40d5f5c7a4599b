"""Concurrent region reads over several chunks share the chunks in flight (read-only remote).

``InFlight`` made reads inside one (inner) chunk share one GET and one decode; a region over
several chunks (a tile server asked for the same large tile by many clients, overlapping
viewer reads) still fetched and decoded every chunk once per read. Now such a read leads the
chunks no read is fetching (in one batch of GETs, or one coalesced set of ranges of a shard)
and waits for the others. Counted on a real HTTP server (GETs) and at the codec (decodes).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec
from served import all_fail, burst as _burst, cancelled_at_random, count_decodes, served_image

import ngio_async
from ngio_async import Limits, PermissionDeniedError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import StaticServer

pytestmark = pytest.mark.anyio

# 4 x 4 chunks of 32 x 32; sharded: one shard of them, its inner chunks read by range
CHUNKED = Spec(version="0.5", shape=(1, 1, 128, 128), chunks=(1, 1, 32, 32), levels=1)
SHARDED = Spec(
    version="0.5", shape=(1, 1, 128, 128), chunks=(1, 1, 32, 32), shards=(1, 1, 128, 128), levels=1
)
# (separate ranges: a read's GETs are its chunks, not merged)
LIMITS = Limits(coalesce_gap=0)
DELAY = 0.2  # every answer waits this long: the reads of a burst all start before one ends
REGION = (slice(40, 88), slice(8, 56))  # 2 x 2 chunks: rows 1-2, columns 0-1, not aligned


def _chunk_gets(server: StaticServer) -> int:
    """GETs of chunk data (a sharded image: ranged GETs of inner chunks, not of the index)."""
    return sum(
        1
        for r in server.requests
        if r.method == "GET"
        and "/0/c/" in r.path
        and not (r.range is not None and r.range.startswith("bytes=-"))
    )


def _fetched_once(server: StaticServer) -> bool:
    """Whether no byte of chunk data was fetched twice (whole chunks; ranges of a shard)."""
    seen: dict[str, list[tuple[int, int]]] = {}
    for r in server.requests:
        if r.method != "GET" or "/0/c/" not in r.path:
            continue
        if r.range is None:
            span = (0, 1 << 62)
        elif r.range.startswith("bytes=-"):
            continue  # (a shard's index)
        else:
            lo, hi = r.range.removeprefix("bytes=").split("-")
            span = (int(lo), int(hi) + 1)
        spans = seen.setdefault(r.path, [])
        if any(a < span[1] and span[0] < b for a, b in spans):
            return False
        spans.append(span)
    return True


@pytest.fixture(params=["chunked", "sharded"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with served_image(tmp_path, CHUNKED if request.param == "chunked" else SHARDED) as both:
        yield both


async def test_identical_multichunk_reads_fetch_each_chunk_once(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=LIMITS) as ds:
        y, x = REGION
        server.reset()
        await ds.read(y=y, x=x)
        one = _chunk_gets(server)  # 4 chunks; a shard's: 3 ranges (two chunks are adjacent)
        assert one == (3 if ds.levels[0].shards else 4)
        server.reset()
        decoded.clear()
        server.faults.delay = DELAY
        got = await _burst(ds, [REGION] * 10)
        for g in got:
            np.testing.assert_array_equal(g, data[:, :, y, x])
        assert _chunk_gets(server) == one  # (it was 10 times as many)
        assert _fetched_once(server)
        assert len(decoded) == 4
        assert ds.levels[0]._in_flight.shared == 36
        assert not ds.levels[0]._in_flight._pending
        # each read has an array of its own
        assert len({id(g) for g in got}) == 10
        got[0][...] = 0
        np.testing.assert_array_equal(got[1], data[:, :, y, x])
        # the burst is over: nothing is held, a later read fetches again
        server.reset()
        np.testing.assert_array_equal(await ds.read(y=y, x=x), data[:, :, y, x])
        assert _chunk_gets(server) == one


async def test_overlapping_reads_share_their_common_chunks(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regions of 2 x 2, 1 x 3, 2 x 3 and 4 x 1 chunks and a tile inside one chunk, all over chunk
    (1, 1): 10 distinct chunks between them."""
    server, data = image
    decoded = count_decodes(monkeypatch)
    regions = [
        (slice(40, 88), slice(8, 56)),  # rows 1-2, columns 0-1
        (slice(33, 63), slice(40, 120)),  # row 1, columns 1-3
        (slice(40, 70), slice(60, 100)),  # rows 1-2, columns 1-3
        (slice(0, 100), slice(40, 50)),  # rows 0-3, column 1
        (slice(36, 44), slice(36, 44)),  # inside chunk (1, 1)
    ]
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=LIMITS) as ds:
        await ds.read(y=slice(0, 1), x=slice(0, 1))
        server.reset()
        decoded.clear()
        server.faults.delay = DELAY
        got = await _burst(ds, regions)
        for (y, x), g in zip(regions, got, strict=True):
            np.testing.assert_array_equal(g, data[:, :, y, x])
        assert _fetched_once(server)
        assert len(decoded) == 10  # (it was 4 + 3 + 6 + 4 + 1 = 18)
        if not ds.levels[0].shards:
            assert _chunk_gets(server) == 10
        assert not ds.levels[0]._in_flight._pending


async def test_reads_cancelled_at_random_points_leave_no_chunk_claimed(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    """Bursts of overlapping multi-chunk reads cancelled at random points: the reads that
    were not cancelled are right, no chunk stays claimed, and later reads are right."""
    server, data = image
    server.faults.delay = 0.01
    rng = random.Random(7)
    cancelled = 0
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=LIMITS) as ds:
        flight = ds.levels[0]._in_flight
        for _ in range(25):
            regions: list[tuple[slice, slice]] = []
            for _ in range(6):
                y0, x0 = rng.randrange(0, 96, 8), rng.randrange(0, 96, 8)
                h, w = rng.randrange(24, 72, 8), rng.randrange(24, 72, 8)
                regions.append((slice(y0, min(128, y0 + h)), slice(x0, min(128, x0 + w))))
            done, stopped = await cancelled_at_random(
                lambda r: ds.read(y=r[0], x=r[1]), regions, rng
            )
            cancelled += stopped
            for (y, x), got in done:
                np.testing.assert_array_equal(got, data[:, :, y, x])
            assert not flight._pending
        assert 0 < cancelled < 25 * 6 and flight.shared > 0  # all of it happened
        with anyio.fail_after(20):
            again = await _burst(ds, [(slice(0, 128), slice(0, 128)), REGION])
        np.testing.assert_array_equal(again[0], data)
        np.testing.assert_array_equal(again[1], data[:, :, REGION[0], REGION[1]])
        assert not flight._pending


async def test_reads_that_joined_a_cancelled_read_read_its_chunks_themselves(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=LIMITS) as ds:
        level = ds.levels[0]
        flight = level._in_flight
        # one shard index for all (the joiners must not fetch theirs while the leader reads)
        indexes = level.index_cache()
        for key in level.index_keys((slice(0, 1), slice(0, 1), *REGION)):
            await level.load_index(key, indexes)
        server.reset()
        decoded.clear()
        server.faults.delay = DELAY
        got: list[NDArray[Any]] = []
        leader = anyio.CancelScope()
        y, x = REGION

        async def lead() -> None:
            with leader:
                await level.read((slice(0, 1), slice(0, 1), y, x), indexes)

        async def join() -> None:
            got.append(await level.read((slice(0, 1), slice(0, 1), y, x), indexes))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lead)
                while len(flight._pending) < 4:  # noqa: ASYNC110 - polls state no event reports
                    await anyio.sleep(0.001)
                for _ in range(3):
                    tg.start_soon(join)
                while flight.shared < 12:  # noqa: ASYNC110 - the three wait for the 4 chunks
                    await anyio.sleep(0.001)
                leader.cancel()
        assert leader.cancelled_caught
        assert len(got) == 3
        for g in got:
            np.testing.assert_array_equal(g, data[:, :, y, x])
        assert len(decoded) == 4  # one of the three read them, for the other two
        assert flight.shared == 8
        assert not flight._pending


async def test_a_failing_read_fails_each_read_of_the_burst(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    server, data = image
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=LIMITS) as ds:
        level = ds.levels[0]
        flight = level._in_flight
        region = (slice(0, 1), slice(0, 1), *REGION)
        indexes = level.index_cache()  # (a shard's index read before: its chunks fail)
        for key in level.index_keys(region):
            await level.load_index(key, indexes)
        server.reset()
        server.faults.delay = 0.05
        server.faults.status, server.faults.status_times = 403, -1
        errors = await all_fail(lambda: level.read(region, indexes), 8, PermissionDeniedError)
        assert len(errors) == 8
        assert flight.shared == 0 and not flight._pending
        # one read at a time led the chunks, the others waited for it (it was 8 x 4 GETs at
        # once; a failed leader's other GETs may still wait at the server as the next starts)
        assert server.peak_in_flight <= 8
        server.faults.status = None
        y, x = REGION
        np.testing.assert_array_equal(await ds.read(y=y, x=x), data[:, :, y, x])


async def test_missing_chunks_are_the_fill_value_for_every_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served_image(tmp_path, CHUNKED) as (server, data):
        (tmp_path / "img.zarr" / "0" / "c" / "0" / "0" / "1" / "0").unlink()
        decoded = count_decodes(monkeypatch)
        async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
            fill = ds.levels[0].fill_value
            # (the HTTP store asks aiohttp about the first miss obstore's client reports)
            assert (await ds.read(y=slice(32, 34), x=slice(0, 2)) == fill).all()
            server.reset()
            decoded.clear()
            server.faults.delay = DELAY
            got = await _burst(ds, [REGION] * 6)
            want = data[:, :, REGION[0], REGION[1]].copy()
            want[:, :, :24, :24] = fill  # (chunk (1, 0): rows 40-63, columns 8-31)
            for g in got:
                np.testing.assert_array_equal(g, want)
            assert _chunk_gets(server) == 4
            assert len(decoded) == 3
