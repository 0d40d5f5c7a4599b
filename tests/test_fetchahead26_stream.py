"""Remote whole-shard tile streams fetch the next shards while earlier ones decode.

``ds.tiles(ordered=False)`` over a remote sharded level with tiles smaller than a shard reads
each shard whole in one GET, as one run of tiles. A run's decoded bytes were reserved when its
GET started, so the window was ``prefetch_bytes // run`` runs fetched, decoded *and* consumed
(three 32 MiB runs: 0-3 GETs in flight, none while they decoded or waited for a slow
consumer). Now a run reserves its bytes once its shard is fetched, before decoding: as many
runs again are fetched ahead (their bodies within another ``prefetch_bytes``), while the
decoded tiles held stay within ``prefetch_bytes``.

The GETs are held at the store until the test lets them go, the decodes counted at the codec
(each inner chunk once): counted on a real loopback server, never timed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from served import count_decodes

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from servers import StaticServer

    from ngio_async.stores import ByteRequest

pytestmark = pytest.mark.anyio

NAME = "0.5-sharded"  # (1, 256, 256): 4 x 4 shards of 64 x 64, inner chunks of 16 x 16, uint16
TILE = (1, 32, 32)  # four tiles a shard: one run of 4 x 2048 bytes
RUN = 4 * 32 * 32 * 2
CHUNK = 16 * 16 * 2
# the runs ahead of the consumer, which holds one: max_bytes = 3 runs (the old window), and
# as many runs fetched ahead as fit in prefetch_bytes again (4)
LIMITS = Limits(prefetch_bytes=4 * RUN, max_requests=16)
FITS = 3


class HeldStore(InstrumentedStore):
    """Shard GETs wait at the store until :meth:`let_go` (fault injection: a slow link)."""

    def __init__(self, inner: Any, latency: float = 0.0) -> None:
        super().__init__(inner, latency)
        self.held = True
        self.gate = anyio.Event()
        self.asking = 0  # shard GETs started and not answered (held ones too)
        self.peak_asking = 0
        self.keys: list[str] = []

    def let_go(self) -> None:
        self.gate.set()
        self.gate = anyio.Event()

    def release_all(self) -> None:
        self.held = False
        self.gate.set()

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Any, str | None]]]:
        inner = super()._checked_attempts(key, byte_range, if_match)
        if "/c/" not in key:
            return inner

        async def attempt() -> tuple[Any, str | None]:
            self.asking += 1
            self.peak_asking = max(self.peak_asking, self.asking)
            self.keys.append(key)
            try:
                if self.held:
                    await self.gate.wait()
                return await inner()
            finally:
                self.asking -= 1

        return attempt


def held_store(http_images: tuple[StaticServer, dict[str, Any]], **options: Any) -> HeldStore:
    server, _ = http_images
    return HeldStore(open_store(server.url + NAME, limits=LIMITS, **options))


async def until(check: Callable[[], bool]) -> None:
    """Poll (the state is the store's and the engine's counters: no event to wait on)."""
    with anyio.fail_after(10):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.002)


async def still(check: Callable[[], bool]) -> None:
    """``check()`` holds, and still holds after the other tasks had their turns."""
    assert check()
    for _ in range(20):
        await anyio.sleep(0.001)
    assert check()


@pytest.mark.parametrize("backend", [None, "aiohttp"])
async def test_next_shards_are_fetched_while_earlier_ones_wait_for_the_consumer(
    http_images: tuple[StaticServer, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    backend: str | None,
) -> None:
    data = http_images[1][NAME]
    store = held_store(http_images, **({} if backend is None else {"backend": backend}))
    decoded = count_decodes(monkeypatch)
    consumed = 0
    worst = 0  # most decoded bytes not yet handed to the consumer

    async with ngio_async.open_async(store) as ds:
        real = ds.levels[0].read_many

        async def read_many(*args: Any, **kw: Any) -> Any:  # (counts after each run decoded)
            nonlocal worst
            out = await real(*args, **kw)
            worst = max(worst, len(decoded) * CHUNK - consumed * TILE[1] * TILE[2] * 2)
            return out

        ds.levels[0].read_many = read_many  # type: ignore[method-assign]
        got = np.zeros_like(data)
        async with ds.tiles(shape=TILE, ordered=False) as tiles:
            # four shards asked for at once: more than the three runs whose bytes fit
            await until(lambda: store.asking == 4)
            await still(lambda: store.asking == 4 and not decoded)
            store.let_go()
            # three runs decoded (their bytes reserved: the bound); the fourth shard fetched,
            # waiting for bytes; and three more GETs under way meanwhile
            await until(lambda: len(decoded) == 3 * 16 and store.asking == 3)
            await still(lambda: len(decoded) == 3 * 16 and store.asking == 3)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
                consumed += 1
                await anyio.lowlevel.checkpoint()  # a slow consumer
    assert consumed == 64
    assert np.array_equal(got, data)
    assert len(decoded) == 16 * 16  # each inner chunk decoded once
    assert sorted(set(store.keys)) == sorted(store.keys) and len(store.keys) == 16  # one GET each
    assert worst <= LIMITS.prefetch_bytes
    assert store.peak_asking > FITS


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
    store = InstrumentedStore(inner, latency=0.01)
    decoded = count_decodes(monkeypatch)
    held = 0
    async with ngio_async.open_async(store) as ds:
        region = (slice(0, 1), slice(0, 256), slice(64, 256))  # 12 shards
        want = await ds.read(0, x=slice(64, 256))  # the region read at once
        decoded.clear()
        store.reset()
        seen = np.zeros_like(data)
        n = 0
        async for tile in ds.tiles(shape=TILE, region=region, ordered=False):
            seen[tile.region] = tile.data
            n += 1
            held = max(held, len(decoded) * CHUNK - n * TILE[1] * TILE[2] * 2)
            await anyio.sleep(0.002)
    assert n == 48
    assert np.array_equal(seen[region], want)
    assert np.array_equal(want, data[region])
    assert held <= LIMITS.prefetch_bytes
    assert store.peak_in_flight > FITS  # shard GETs ahead of the decoded window
    assert store.in_flight == 0


@pytest.mark.parametrize("form", ["block", "bare"])
async def test_break_after_tile_five_leaves_nothing_in_flight(
    http_images: tuple[StaticServer, dict[str, Any]], form: str
) -> None:
    store = held_store(http_images)
    store.release_all()
    store.latency = 0.01
    async with ngio_async.open_async(store) as ds:
        n = 0
        if form == "block":
            async with ds.tiles(shape=TILE, ordered=False) as tiles:
                async for _ in tiles:
                    n += 1
                    if n == 5:
                        break
            assert store.asking == 0 and store.in_flight == 0
        else:
            it = ds.tiles(shape=TILE, ordered=False).__aiter__()
            async for _ in it:
                n += 1
                if n == 5:
                    break
            await it.aclose()
            assert store.asking == 0 and store.in_flight == 0
        assert n == 5
        # the dataset reads on: nothing was left reserved or running
        tiles_after = [t async for t in ds.tiles(shape=TILE, ordered=False)]
    assert len(tiles_after) == 64


async def test_a_failing_shard_comes_after_the_tiles_read_and_stops_the_fetches(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    server, datas = http_images
    bad = "0/c/0/2/1"  # (the store is opened at the image)

    def fail(method: str, key: str) -> BaseException | None:
        return PermissionError(f"denied: {key}") if key.endswith(bad) else None

    store = InstrumentedStore(open_store(server.url + NAME, limits=LIMITS), 0.005, fail)
    data = datas[NAME]
    n = 0

    async def stream(ds: Any) -> None:
        nonlocal n
        async for tile in ds.tiles(shape=TILE, ordered=False):
            assert np.array_equal(tile.data, data[tile.region])
            n += 1

    async with ngio_async.open_async(store) as ds:
        with pytest.raises(Exception, match="0/2/1"):
            await stream(ds)
        assert store.in_flight == 0
    assert n < 64
