"""Remote tile streams in grid order fetching runs ahead (61ba0cc; shards fetched whole shared
by the runs fetched ahead, dd6d254) under what a consumer does: reads of the same image in the
loop body, a second stream of the same level inside it, stops at random points (repeated: races
hide there), another thread reading through the blocking API, a server failing mid-stream.
Every tile is the image's pixels in grid order, nothing is left in flight or shared once the
stream stops, and the dataset streams on in full. Real loopback servers, never timed (a hang
is a failure by ``anyio.fail_after``)."""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec, write_image
from servers import Faults, StaticServer
from test_shard_outer_codecs import write_peer_image

import ngio_async
from ngio_async import Limits, StoreError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio

TILE = (1, 16, 16)
# runs of one row of 16 x 16 tiles at most: rows of shards split into several runs
LIMITS = Limits(prefetch_bytes=4 * 6 * 16 * 16 * 2, max_requests=3)
# (2, 128, 192): 2 x 2 x 3 shards of 64 x 64, inner chunks of 16 x 16, plain
PLAIN = Spec(version="0.5", shape=(2, 128, 192), chunks=(1, 16, 16), shards=(1, 64, 64),
             levels=1, compressor=None)  # fmt: skip


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StaticServer, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("review27f")
    datas = {
        "plain.zarr": write_image(root / "plain.zarr", PLAIN)[0],
        "comp.zarr": write_peer_image(root / "comp.zarr", "zstd"),  # compressed whole
    }
    server = StaticServer(root).start()
    try:
        yield server, datas
    finally:
        server.stop()


async def settled(ds: Any, store: InstrumentedStore) -> None:
    """Nothing in flight nor shared once a stopped stream's work is cancelled (a dropped
    iterator's work is cancelled when it is collected: a few loop turns)."""
    level = ds.levels[0]

    def idle() -> bool:
        return not (
            store.in_flight
            or level._in_flight._pending
            or level._shards_in_flight._running
            or level._bodies_ahead._running
            or level._index_loading
        )

    with anyio.fail_after(5):
        while not idle():  # noqa: ASYNC110
            await anyio.sleep(0.005)


@pytest.mark.parametrize("name", ["plain.zarr", "comp.zarr"])
async def test_stopped_at_random_while_the_body_reads_the_same_image(
    served: tuple[StaticServer, dict[str, Any]], name: str
) -> None:
    server, datas = served
    data = datas[name]
    rng = random.Random(27)
    store = InstrumentedStore(open_store(server.url + name, limits=LIMITS), 0.001)
    async with ngio_async.open_async(store) as ds:
        for _ in range(30):
            with anyio.fail_after(20), anyio.move_on_after(rng.random() * 0.05):
                async for tile in ds.tiles(shape=TILE, overlap=rng.choice([0, 3])):
                    assert np.array_equal(tile.data, data[tile.region])
                    y = rng.randrange(0, 40)
                    got = await ds.read(0, y=slice(y, y + 24))
                    assert np.array_equal(got, data[:, y : y + 24])
                    if rng.random() < 0.2:  # a second stream of the level, left early
                        n = 0
                        async for inner in ds.tiles(shape=TILE):
                            assert np.array_equal(inner.data, data[inner.region])
                            n += 1
                            if n == 7:
                                break
            await settled(ds, store)
        with anyio.fail_after(20):
            tiles = [tile async for tile in ds.tiles(shape=TILE)]
        await settled(ds, store)
    order = [tile.index for tile in tiles]
    assert order == sorted(order) and len(set(order)) == len(order) == data.size // 256
    assert all(np.array_equal(tile.data, data[tile.region]) for tile in tiles)
    assert store.peak_in_flight <= LIMITS.max_requests


def test_another_thread_reads_through_the_blocking_api(
    served: tuple[StaticServer, dict[str, Any]],
) -> None:
    server, datas = served
    data = datas["comp.zarr"]
    ds = ngio_async.open(server.url + "comp.zarr", limits=LIMITS)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert np.array_equal(np.asarray(ds[:, 10:50, 20:90]), data[:, 10:50, 20:90])
        except BaseException as exc:  # noqa: BLE001 - the test's failure, from its thread
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        order = []
        for tile in ds.tiles(shape=TILE):
            assert np.array_equal(tile.data, data[tile.region])
            order.append(tile.index)
        for taken in (0, 3, 11):  # left early, then read on
            for n, _ in enumerate(ds.tiles(shape=TILE)):
                if n == taken:
                    break
    finally:
        stop.set()
        thread.join(30)
        ds.close()
    assert not thread.is_alive() and not errors
    assert order == sorted(order) and len(order) == data.size // 256


@pytest.mark.parametrize("backend", [None, "aiohttp"])
async def test_a_server_failing_mid_stream(
    served: tuple[StaticServer, dict[str, Any]], backend: str | None
) -> None:
    server, datas = served
    data = datas["plain.zarr"]
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    limits = Limits(prefetch_bytes=LIMITS.prefetch_bytes, max_requests=3, max_retries=1,
                    backoff_base=0.001)  # fmt: skip
    store = InstrumentedStore(open_store(server.url + "plain.zarr", limits=limits, **options))
    seen: list[tuple[int, ...]] = []
    try:
        async with ngio_async.open_async(store) as ds:

            async def stream() -> None:
                async for tile in ds.tiles(shape=TILE):
                    assert np.array_equal(tile.data, data[tile.region])
                    seen.append(tile.index)
                    if len(seen) == 40:  # every request fails from now on
                        server.faults = Faults(status=500, status_times=-1)

            with anyio.fail_after(20), pytest.raises(StoreError):
                await stream()
            await settled(ds, store)
            server.faults = Faults()
            with anyio.fail_after(20):
                tiles = [tile async for tile in ds.tiles(shape=TILE)]
            assert all(np.array_equal(tile.data, data[tile.region]) for tile in tiles)
            assert len(tiles) == data.size // 256
    finally:
        server.faults = Faults()
    assert seen == sorted(seen) and len(seen) >= 40
    assert server.in_flight == 0
