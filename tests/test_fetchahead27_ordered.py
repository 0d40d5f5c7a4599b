"""Remote sharded tile streams in grid order (``ds.tiles()``'s default) fetch the next runs
while earlier ones decode or wait for the consumer.

In grid order, tiles smaller than a shard are read in runs of one row of shards, each needing
part of its shards (their inner chunks by range, the shard indexes fetched ahead). A run's
decoded bytes were reserved when it started, so only ``prefetch_bytes // run`` runs were
fetched, decoded and consumed at a time. Now a run reserves its bytes once its ranges are
fetched (grants in grid order), as many runs again are fetched ahead, and a run fetched ahead
holds its bodies alone (its tiles' arrays are made once its bytes are reserved).

Data GETs are held at the store until the test lets them go (the shard indexes, fetched
ahead either way, are not), decodes counted at the codec: counted on a real loopback server,
never timed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from served import count_decodes
from test_fetchahead26_stream import LIMITS, NAME, HeldStore, still, until

import ngio_async
from ngio_async import StoreError
from ngio_async.stores import InstrumentedStore, SuffixByteRequest, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from servers import StaticServer

    from ngio_async.stores import ByteRequest

pytestmark = pytest.mark.anyio

TILE = (1, 32, 32)  # a run: four tiles of one row (32 x 128), half of two shards' height
RUN_TILES = 4
TILE_BYTES = 32 * 32 * 2
CHUNK = 16 * 16 * 2
RUN_CHUNKS = 16  # inner chunks of 16 x 16 a run decodes (8 in each of its two shards)
FITS = 3  # runs whose decoded bytes fit at once (prefetch_bytes less the consumer's run)
RUN_GETS = 2  # a run's data GETs: one coalesced range in each of its two shards


class DataHeld(HeldStore):
    """:class:`HeldStore` holding the GETs of shard data only (whole or ranged): the shard
    indexes (suffix ranges) pass."""

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Any, str | None]]]:
        if isinstance(byte_range, SuffixByteRequest):  # (an index: HeldStore's parent's)
            return super(HeldStore, self)._checked_attempts(key, byte_range, if_match)
        return super()._checked_attempts(key, byte_range, if_match)


def data_held(http_images: tuple[StaticServer, dict[str, Any]]) -> DataHeld:
    server, _ = http_images
    return DataHeld(open_store(server.url + NAME, limits=LIMITS))


async def test_next_runs_are_fetched_while_earlier_ones_decode_and_wait(
    http_images: tuple[StaticServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = http_images[1][NAME]
    store = data_held(http_images)
    decoded = count_decodes(monkeypatch)
    consumed = 0
    worst = 0  # most decoded bytes not yet handed to the consumer
    order: list[tuple[int, ...]] = []
    async with ngio_async.open_async(store) as ds:
        real = ds.levels[0].read_many

        async def read_many(*args: Any, **kw: Any) -> Any:  # (counts after each run decoded)
            nonlocal worst
            out = await real(*args, **kw)
            worst = max(worst, len(decoded) * CHUNK - consumed * TILE_BYTES)
            return out

        ds.levels[0].read_many = read_many  # type: ignore[method-assign]
        got = np.zeros_like(data)
        async with ds.tiles(shape=TILE) as tiles:
            # the data GETs of more runs than fit in the decoded window, none decoded yet
            await until(lambda: store.asking > FITS * RUN_GETS)
            await still(lambda: store.asking > FITS * RUN_GETS and not decoded)
            store.let_go()
            # the runs that fit decoded (their bytes reserved: the bound), the later ones
            # fetched and waiting for their bytes
            await until(lambda: len(decoded) == FITS * RUN_CHUNKS)
            await still(lambda: len(decoded) == FITS * RUN_CHUNKS)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
                order.append(tile.index)
                consumed += 1
                await anyio.lowlevel.checkpoint()  # a slow consumer
    assert consumed == 64 and order == sorted(order)  # grid order
    assert np.array_equal(got, data)
    assert len(decoded) == 16 * 16  # each inner chunk decoded once
    assert worst <= LIMITS.prefetch_bytes
    assert store.peak_asking > FITS * RUN_GETS


async def test_runs_fetched_ahead_hold_no_tile_arrays(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    store = data_held(http_images)
    data = http_images[1][NAME]
    made: list[int] = []  # the runs whose tile arrays were made
    async with ngio_async.open_async(store) as ds:
        level = ds.levels[0]
        real = level._shard_groups

        def shard_groups(regions: Any, *args: Any, **kw: Any) -> Any:
            made.append(len(regions))
            return real(regions, *args, **kw)

        level._shard_groups = shard_groups  # type: ignore[method-assign]
        got = np.zeros_like(data)
        async with ds.tiles(shape=TILE) as tiles:
            await until(lambda: store.asking > FITS * RUN_GETS)  # more runs than fit
            await still(lambda: not made)  # their arrays not made while they fetch
            store.let_go()
            await until(lambda: len(made) == FITS)  # those whose bytes are reserved
            await still(lambda: len(made) == FITS)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
    assert np.array_equal(got, data)
    assert len(made) == 16 and set(made) == {RUN_TILES}


@pytest.mark.parametrize("where", ["http", "s3"])
async def test_a_slow_consumer_holds_the_bound_and_the_tiles_are_the_region(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    if where == "http":
        server, datas = request.getfixturevalue("http_images")
        inner = open_store(server.url + NAME, limits=LIMITS)
        data = datas[NAME]
    else:
        s3 = request.getfixturevalue("s3_server")
        url, data = request.getfixturevalue("s3_images")[NAME]
        inner = open_store(url, limits=LIMITS, **s3.options())
    store = DataHeld(inner)
    store.release_all()
    store.latency = 0.01
    decoded = count_decodes(monkeypatch)
    held = 0
    # cutting shards and tiles (along the inner chunks: the chunks decoded are the tiles)
    region = (slice(0, 1), slice(16, 240), slice(48, 256))
    reading = peak = 0  # runs being read at once
    async with ngio_async.open_async(store) as ds:
        want = await ds.read(0, y=slice(16, 240), x=slice(48, 256))
        decoded.clear()
        level = ds.levels[0]
        real = level.read_many

        async def read_many(*args: Any, **kw: Any) -> Any:
            nonlocal reading, peak
            reading += 1
            peak = max(peak, reading)
            try:
                return await real(*args, **kw)
            finally:
                reading -= 1

        level.read_many = read_many  # type: ignore[method-assign]
        seen: list[tuple[int, ...]] = []
        n = taken = 0
        async for tile in ds.tiles(shape=TILE, region=region):
            local = tuple(slice(s.start - r.start, s.stop - r.start) for s, r in zip(
                tile.region, region, strict=True))  # fmt: skip
            assert np.array_equal(tile.data, want[local])
            seen.append(tile.index)
            n += 1
            taken += tile.data.nbytes
            held = max(held, len(decoded) * CHUNK - taken)
            await anyio.sleep(0.002)
        assert store.in_flight == 0 and store.asking == 0
    assert n == 8 * 7 and seen == sorted(seen)  # (edge tiles clipped)
    assert np.array_equal(want, data[region])
    assert held <= LIMITS.prefetch_bytes
    assert peak > FITS  # runs fetched ahead of the decoded window


@pytest.mark.parametrize("backend", [None, "aiohttp"])
async def test_the_loop_body_reads_what_the_stream_fetches_ahead(
    http_images: tuple[StaticServer, dict[str, Any]], backend: str | None
) -> None:
    """A loop body reading the same image (every shard, those the stream's runs fetched
    ahead are reading too) must not wait for a run that waits for the consumer."""
    server, datas = http_images
    data = datas[NAME]
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    store = DataHeld(open_store(server.url + NAME, limits=LIMITS, **options))
    store.release_all()
    store.latency = 0.01
    n = 0
    async with ngio_async.open_async(store) as ds:
        with anyio.fail_after(30):
            async for tile in ds.tiles(shape=TILE):
                assert np.array_equal(tile.data, data[tile.region])
                if n % 8 == 0:
                    assert np.array_equal(await ds.read(0), data)
                    assert np.array_equal(await ds.read(0, y=slice(100, 200)), data[:, 100:200])
                n += 1
        assert store.in_flight == 0
    assert n == 64


@pytest.mark.parametrize("form", ["block", "bare"])
async def test_break_after_tile_five_leaves_nothing_in_flight(
    http_images: tuple[StaticServer, dict[str, Any]], form: str
) -> None:
    store = data_held(http_images)
    store.release_all()
    store.latency = 0.01
    async with ngio_async.open_async(store) as ds:
        n = 0
        if form == "block":
            async with ds.tiles(shape=TILE) as tiles:
                async for _ in tiles:
                    n += 1
                    if n == 5:
                        break
        else:
            it = ds.tiles(shape=TILE).__aiter__()
            async for _ in it:
                n += 1
                if n == 5:
                    break
            await it.aclose()
        assert store.asking == 0 and store.in_flight == 0
        assert n == 5
        # the dataset reads on: nothing was left reserved or running
        tiles_after = [t async for t in ds.tiles(shape=TILE)]
    assert len(tiles_after) == 64


async def test_a_failing_shard_comes_after_the_tiles_before_it_in_grid_order(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    server, datas = http_images
    bad = "0/c/0/2/1"  # (the store is opened at the image): rows 128-192, x 64-128

    def fail(method: str, key: str) -> BaseException | None:
        return PermissionError(f"denied: {key}") if key.endswith(bad) else None

    store = InstrumentedStore(open_store(server.url + NAME, limits=LIMITS), 0.005, fail)
    data = datas[NAME]
    seen: list[tuple[int, ...]] = []

    async def stream(ds: Any) -> None:
        async for tile in ds.tiles(shape=TILE):
            assert np.array_equal(tile.data, data[tile.region])
            seen.append(tile.index)

    async with ngio_async.open_async(store) as ds:
        with pytest.raises(StoreError, match="denied: 0/c/0/2/1"):
            await stream(ds)
        assert store.in_flight == 0
    # every tile before the first of that shard (row 4 of tiles, column 2), in grid order
    assert seen == [(0, y, x) for y in range(8) for x in range(8)][: 4 * 8 + 2]
