"""Concurrent reads of one chunk share one fetch and decode (read-only remote datasets).

A viewer or a tile server asks for a burst of tiles smaller than the chunks, or many clients
for the same tile: each read inside one (inner) chunk used to fetch and decode that chunk on
its own, 16 times over for 16 tiles of one chunk. Now a read of a chunk that another read is
fetching waits for it and copies its part (``images._reuse.InFlight``); nothing is kept
afterwards. Counted on a real HTTP server (GETs) and at the codec (decodes).
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
from ngio_async import PermissionDeniedError

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import StaticServer

pytestmark = pytest.mark.anyio

CHUNKED = Spec(version="0.5", shape=(1, 1, 64, 64), chunks=(1, 1, 32, 32), levels=1)
SHARDED = Spec(
    version="0.5", shape=(1, 1, 64, 64), chunks=(1, 1, 32, 32), shards=(1, 1, 64, 64), levels=1
)
DELAY = 0.2  # every answer waits this long: the reads of a burst all start before one ends


def _chunk_gets(server: StaticServer) -> int:
    """GETs of chunk data (a sharded image: ranged GETs of inner chunks, not of the index)."""
    return sum(
        1
        for r in server.requests
        if r.method == "GET" and "/0/c/" in r.path and not _index_range(r.range)
    )


def _index_range(header: str | None) -> bool:
    return header is not None and header.startswith("bytes=-")


@pytest.fixture(params=["chunked", "sharded"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with served_image(tmp_path, CHUNKED if request.param == "chunked" else SHARDED) as both:
        yield both


async def test_identical_reads_make_one_request_and_one_decode(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        server.reset()
        server.faults.delay = DELAY
        got = await _burst(ds, [(slice(0, 32), slice(32, 64))] * 24)
        for g in got:
            np.testing.assert_array_equal(g, data[:, :, 0:32, 32:64])
        assert _chunk_gets(server) == 1
        assert len(decoded) == 1
        assert ds.levels[0]._in_flight.shared == 23
        # each read has an array of its own
        assert len({id(g) for g in got}) == 24
        got[0][...] = 0
        np.testing.assert_array_equal(got[1], data[:, :, 0:32, 32:64])


async def test_a_burst_of_tiles_smaller_than_the_chunks_fetches_each_chunk_once(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A viewer's 8 x 8 tiles over the whole 64 x 64 image (16 per chunk), in random order."""
    server, data = image
    decoded = count_decodes(monkeypatch)
    tiles = [(slice(y, y + 8), slice(x, x + 8)) for y in range(0, 64, 8) for x in range(0, 64, 8)]
    random.Random(4).shuffle(tiles)
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        server.reset()
        server.faults.delay = DELAY
        got = await _burst(ds, tiles)
        for (y, x), g in zip(tiles, got, strict=True):
            np.testing.assert_array_equal(g, data[:, :, y, x])
        assert _chunk_gets(server) == 4  # (it was 64)
        assert len(decoded) == 4
        # the burst is over: nothing is held, a later read fetches again
        server.reset()
        np.testing.assert_array_equal(
            await ds.read(y=slice(0, 8), x=slice(0, 8)), data[..., :8, :8]
        )
        assert _chunk_gets(server) == 1


async def test_reads_that_joined_a_cancelled_read_read_the_chunk_themselves(
    image: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = image
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        flight = ds.levels[0]._in_flight
        server.reset()
        server.faults.delay = DELAY
        got: list[NDArray[Any]] = []
        leader = anyio.CancelScope()

        async def lead() -> None:
            with leader:
                await ds.read(y=slice(32, 64), x=slice(0, 32))

        async def join() -> None:
            got.append(await ds.read(y=slice(32, 48), x=slice(0, 16)))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lead)
                while not flight._pending:  # noqa: ASYNC110 - polls state no event reports
                    await anyio.sleep(0.001)
                for _ in range(3):
                    tg.start_soon(join)
                while flight.shared < 3:  # noqa: ASYNC110 - the three wait for the chunk
                    await anyio.sleep(0.001)
                leader.cancel()
        assert leader.cancelled_caught
        assert len(got) == 3
        for g in got:
            np.testing.assert_array_equal(g, data[:, :, 32:48, 0:16])
        assert len(decoded) == 1  # one of the three read it, for the other two
        assert flight.shared == 2
        assert not flight._pending


async def test_a_failing_read_fails_each_read_of_the_burst(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    server, _ = image
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        flight = ds.levels[0]._in_flight
        server.faults.delay = 0.05
        server.faults.status, server.faults.status_times = 403, -1
        errors = await all_fail(
            lambda: ds.read(y=slice(0, 16), x=slice(0, 16)), 8, PermissionDeniedError
        )
        assert len(errors) == 8
        assert flight.shared == 0 and not flight._pending


async def test_a_missing_chunk_is_the_fill_value_for_every_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with served_image(tmp_path, CHUNKED) as (server, _):
        (tmp_path / "img.zarr" / "0" / "c" / "0" / "0" / "1" / "0").unlink()
        decoded = count_decodes(monkeypatch)
        async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
            fill = ds.levels[0].fill_value
            # (the HTTP store asks aiohttp about the first miss obstore's client reports)
            assert (await ds.read(y=slice(32, 34), x=slice(0, 2)) == fill).all()
            server.reset()
            server.faults.delay = DELAY
            got = await _burst(ds, [(slice(32 + 4 * i, 40 + 4 * i), slice(0, 9)) for i in range(6)])
            for g in got:
                assert g.shape == (1, 1, 8, 9)
                assert (g == fill).all()
            assert _chunk_gets(server) == 1
            assert not decoded


async def test_reads_in_one_shard_compressed_whole_share_its_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Such a shard has no part readable by range: each read fetched and decompressed all of
    it. A burst of 16 reads in one shard (and 4 in another) now makes one GET per shard."""
    from servers import StaticServer
    from test_shard_outer_codecs import write_peer_image

    from ngio_async.images import _level_shard_reads, _shard_bytes

    data = write_peer_image(tmp_path / "img.zarr", "zstd")  # (2, 64, 96), shards (1, 32, 32)
    opened: list[str] = []
    real = _shard_bytes._open_shard

    def counted(*args: Any) -> Any:
        opened.append(args[2])
        return real(*args)

    monkeypatch.setattr(_level_shard_reads, "_open_shard", counted)
    server = StaticServer(tmp_path).start()
    try:
        async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
            server.reset()
            server.faults.delay = DELAY
            tiles = [
                (slice(y, y + 8), slice(x, x + 8))
                for y in range(0, 32, 8)
                for x in range(32, 64, 8)
            ]
            tiles += [(slice(40, 44), slice(x, x + 4)) for x in range(0, 16, 4)]
            got = await _burst(ds, tiles)
            for (y, x), g in zip(tiles, got, strict=True):
                np.testing.assert_array_equal(g, data[:, y, x])
            # each read spans both channels' shards: 4 shards in all, each fetched and
            # decompressed once (it was once per read: 40 each)
            gets = [r.path for r in server.requests if r.method == "GET" and "/0/c/" in r.path]
            assert sorted(gets) == [
                f"/img.zarr/0/c/{c}/{y}/{x}" for c in (0, 1) for y, x in ((0, 1), (1, 0))
            ]
            assert sorted(opened) == sorted(g.removeprefix("/img.zarr/") for g in gets)
    finally:
        server.stop()


async def test_reads_cancelled_at_random_points_leave_nothing_pending(
    image: tuple[StaticServer, NDArray[Any]],
) -> None:
    """Bursts of tile reads (several of each chunk) cancelled at random points: the reads
    that were not cancelled are right, no chunk stays claimed, and later reads are right."""
    server, data = image
    server.faults.delay = 0.01
    rng = random.Random(11)
    cancelled = 0
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        flight = ds.levels[0]._in_flight
        for _ in range(25):
            tiles: list[tuple[slice, slice]] = []
            for _ in range(8):
                y0, x0 = rng.randrange(0, 64, 8), rng.randrange(0, 64, 8)
                tiles.append((slice(y0, y0 + 8), slice(x0, x0 + 8)))
            done, stopped = await cancelled_at_random(lambda t: ds.read(y=t[0], x=t[1]), tiles, rng)
            cancelled += stopped
            for (y, x), got in done:
                np.testing.assert_array_equal(got, data[:, :, y, x])
            assert not flight._pending
        assert 0 < cancelled < 25 * 8 and flight.shared > 0  # all of it happened
        with anyio.fail_after(20):
            whole = await _burst(ds, [(slice(0, 64), slice(0, 64))])
        np.testing.assert_array_equal(whole[0], data)
