"""Reads of a whole (uncompressed) shard share their fetch and use the chunk cache passed.

A read of a remote, read-only, sharded level that needs every inner chunk of a shard whose
index it does not have reads the shard whole, in one GET. Such reads were neither shared (10
concurrent reads of one shard: 10 GETs and 10 full decodes) nor taken from or given to the
``reuse`` chunk cache of ``read_many`` (plane reads of chunks 8 planes deep: each shard
fetched whole once per plane). Now their inner chunks are claimed before the GET, as the
ranged reads' are: one GET, each inner chunk decoded once, each read its own array.
Counted on a real HTTP server (GETs) and at the codec (decodes).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec
from served import all_fail, cancelled_at_random, count_decodes, served_image

import ngio_async
from ngio_async import PermissionDeniedError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import StaticServer

pytestmark = pytest.mark.anyio

# one shard of 4 x 4 inner chunks of 32 x 32 (uncompressed shard: whole reads are plain GETs)
SHARDED = Spec(
    version="0.5", shape=(1, 1, 128, 128), chunks=(1, 1, 32, 32), shards=(1, 1, 128, 128), levels=1
)
WHOLE: tuple[slice, ...] = (slice(0, 1), slice(0, 1), slice(0, 128), slice(0, 128))
PART: tuple[slice, ...] = (slice(0, 1), slice(0, 1), slice(40, 88), slice(8, 56))  # 2 x 2 chunks
# a tile inside chunk (1, 1)
TILE: tuple[slice, ...] = (slice(0, 1), slice(0, 1), slice(36, 44), slice(36, 44))
DELAY = 0.2  # every answer waits this long: the reads of a burst all start before one ends


def _gets(server: StaticServer) -> tuple[int, int, int]:
    """(whole GETs, ranged GETs of chunks, GETs of the index) of the shard's data."""
    whole = ranged = index = 0
    for r in server.requests:
        if r.method != "GET" or "/0/c/" not in r.path:
            continue
        if r.range is None:
            whole += 1
        elif r.range.startswith("bytes=-"):
            index += 1
        else:
            ranged += 1
    return whole, ranged, index


def _want(data: NDArray[Any], region: tuple[slice, ...]) -> NDArray[Any]:
    return np.asarray(data[region])


@pytest.fixture
def image(tmp_path: Path) -> Any:
    with served_image(tmp_path, SHARDED) as both:
        yield both


async def test_concurrent_whole_shard_reads_make_one_get(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        level = ds.levels[0]
        flight = level._in_flight
        server.reset()
        server.faults.delay = DELAY
        got: list[NDArray[Any]] = []

        async def one() -> None:
            got.append(await level.read(WHOLE))  # (its own index cache: none known)

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(one)
        for g in got:
            np.testing.assert_array_equal(g, _want(data, WHOLE))
        assert _gets(server) == (1, 0, 0)  # (was 10 whole GETs)
        assert len(decoded) == 16  # each inner chunk once (was 160)
        assert flight.shared == 9 * 16
        assert not flight._pending
        # each read has an array of its own
        assert len({id(g) for g in got}) == 10
        got[0][...] = 0
        np.testing.assert_array_equal(got[1], _want(data, WHOLE))
        # the burst is over: nothing is held, a later read fetches again
        server.reset()
        np.testing.assert_array_equal(await level.read(WHOLE), _want(data, WHOLE))
        assert _gets(server) == (1, 0, 0)


@pytest.mark.parametrize("whole_first", [True, False], ids=["whole-first", "parts-first"])
async def test_whole_and_partial_reads_share_their_chunks(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch, whole_first: bool
) -> None:
    """Whole-shard reads (no index known: one GET) and reads of a part of the shard (its
    index known: ranged GETs) at once: each inner chunk decoded once among them."""
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        level = ds.levels[0]
        flight = level._in_flight
        indexes = level.index_cache()  # the partial reads' (the whole reads have none)
        for key in level.index_keys(PART):
            await level.load_index(key, indexes)
        server.reset()
        decoded.clear()
        server.faults.delay = DELAY
        jobs: list[tuple[tuple[slice, ...], Any]] = [(WHOLE, None)] * 3
        jobs = (
            [*jobs, (PART, indexes), (PART, indexes), (TILE, indexes)]
            if whole_first
            else [(PART, indexes), (TILE, indexes), *jobs, (PART, indexes)]
        )
        got: list[tuple[tuple[slice, ...], NDArray[Any]]] = []

        async def one(region: tuple[slice, ...], cache: Any) -> None:
            got.append((region, await level.read(region, cache)))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                for region, cache in jobs:
                    tg.start_soon(one, region, cache)
                    await anyio.sleep(0.01)  # (claimed in this order)
        assert len(got) == len(jobs)
        for region, g in got:
            np.testing.assert_array_equal(g, _want(data, region))
        assert len(decoded) == 16  # (was 16 + 4 + 1: the whole reads shared with no one)
        whole, ranged, index = _gets(server)
        assert whole == 1 and index == 0
        # whole first: the partial reads wait for its chunks; else the whole read waits for
        # theirs (4 chunks: one coalesced range) and decodes the other 12
        assert ranged == (0 if whole_first else 1)
        assert not flight._pending


async def test_whole_reads_cancelled_at_random_points_leave_no_chunk_claimed(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    """Bursts of whole-shard and partial reads cancelled at random points: the reads that
    were not cancelled are right, no chunk stays claimed, and later reads are right."""
    server, data = image
    server.faults.delay = 0.01
    rng = random.Random(11)
    cancelled = whole_done = 0
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        level = ds.levels[0]
        flight = level._in_flight
        indexes = level.index_cache()  # the partial reads' (a whole read: none known, no load)
        for key in level.index_keys(PART):
            await level.load_index(key, indexes)
        server.reset()
        # (reset() clears the faults: without the delay again, a burst took 2-5 ms, and whether
        # its 2.5 ms deadline cut it was a race: no read cancelled in 1 run of 6)
        server.faults.delay = 0.01
        for _ in range(25):
            regions: list[tuple[slice, ...]] = [WHOLE] * 3
            for _ in range(3):
                y0, x0 = rng.randrange(0, 96, 8), rng.randrange(0, 96, 8)
                h, w = rng.randrange(8, 72, 8), rng.randrange(8, 72, 8)
                y, x = slice(y0, min(128, y0 + h)), slice(x0, min(128, x0 + w))
                regions.append((slice(0, 1), slice(0, 1), y, x))
            rng.shuffle(regions)
            done, stopped = await cancelled_at_random(
                lambda r: level.read(r, None if r == WHOLE else indexes), regions, rng, 0.06
            )
            cancelled += stopped
            whole_done += sum(1 for region, _ in done if region == WHOLE)
            for region, got in done:
                np.testing.assert_array_equal(got, _want(data, region))
            assert not flight._pending
        assert 0 < cancelled < 25 * 6  # (both happened)
        # the whole reads of a burst shared their GETs (each made its own before)
        assert _gets(server)[0] < whole_done
        with anyio.fail_after(20):
            again = [await level.read(WHOLE), await level.read(PART)]
        np.testing.assert_array_equal(again[0], _want(data, WHOLE))
        np.testing.assert_array_equal(again[1], _want(data, PART))
        assert not flight._pending


async def test_a_refused_whole_shard_fails_every_read(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    server, data = image
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        level = ds.levels[0]
        flight = level._in_flight
        server.reset()
        server.faults.delay = 0.05
        server.faults.status, server.faults.status_times = 403, -1
        errors = await all_fail(lambda: level.read(WHOLE), 8, PermissionDeniedError)
        assert len(errors) == 8
        assert flight.shared == 0 and not flight._pending
        # one read at a time asked for the shard, the others waited for it (was 8 at once)
        assert server.peak_in_flight <= 2
        server.faults.status = None
        np.testing.assert_array_equal(await level.read(WHOLE), _want(data, WHOLE))


# 4 x 4 shards of 2 x 2 inner chunks 8 planes deep
DEEP = Spec(
    version="0.5",
    shape=(1, 8, 128, 128),
    chunks=(1, 8, 16, 16),
    shards=(1, 8, 32, 32),
    levels=1,
    compressor=None,
)


async def test_read_many_hands_whole_shard_chunks_to_reuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plane after plane, each plane one ``read_many`` with no index known (every shard read
    whole) and the same chunk cache: each shard fetched once, each inner chunk decoded once
    and dropped at its last use."""
    from ngio_async.images._reuse import ChunkReuse

    with served_image(tmp_path, DEEP) as (server, data):
        decoded = count_decodes(monkeypatch)
        async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
            level = ds.levels[0]
            chunk_bytes = 8 * 16 * 16 * 2
            reuse = ChunkReuse(64 * chunk_bytes, lambda coords: 8, chunk_bytes)
            server.reset()
            decoded.clear()
            for z in range(8):
                region = (slice(0, 1), slice(z, z + 1), slice(0, 128), slice(0, 128))
                (got,) = await level.read_many([region], None, reuse)
                np.testing.assert_array_equal(got, data[region])
            assert _gets(server) == (16, 0, 0)  # (was 128: every shard once per plane)
            assert len(decoded) == 64  # (was 8 x 64)
            assert reuse.hits == 7 * 64
            assert reuse.held_bytes == 0  # each released at its last use
