"""The runs a remote whole-shard tile stream (``ordered=False``) fetches ahead of its decoded
window stay within twice the requests a store has in flight, as the decoded window does.

They were bounded by ``prefetch_bytes`` of their tiles alone: small shards (a 2 KiB run of
four 16 x 16 tiles) at the default 128 MiB made every shard of the image a run fetched ahead at
once (1024 runs in flight, each a task waiting for its GET and then for its bytes, all woken
at every tile the consumer took), where twice the requests in flight hide all the round trips
there are. Counted on a real loopback server (the runs a level is reading at once), not timed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec, write_image
from servers import StaticServer
from test_fetchahead26_stream import FITS, NAME, HeldStore, held_store, still, until
from test_shard_outer_codecs import write_peer_image

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio

# 32 x 32 shards of 32 x 32 pixels (inner chunks of 16 x 16): 1024 shards, 2 KiB runs
SPEC = Spec(
    version="0.5", shape=(1, 1024, 1024), chunks=(1, 16, 16), shards=(1, 32, 32), levels=1,
    compressor=None,
)  # fmt: skip
REQUESTS = 8


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    root: Path = tmp_path_factory.mktemp("small_shards")
    data = write_image(root / "img.zarr", SPEC)[0]
    server = StaticServer(root).start()
    try:
        yield server.url + "img.zarr", data
    finally:
        server.stop()


async def test_runs_fetched_ahead_stay_within_twice_the_requests(
    small_shards: tuple[str, Any],
) -> None:
    url, data = small_shards
    store = InstrumentedStore(open_store(url, limits=Limits(max_requests=REQUESTS)), 0.002)
    reading = peak = 0
    async with ngio_async.open_async(store) as ds:
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
        got = np.zeros_like(data)
        n = 0
        with anyio.fail_after(60):
            async for tile in ds.tiles(shape=(1, 16, 16), ordered=False):
                got[tile.region] = tile.data
                n += 1
                if n % 64 == 0:
                    await anyio.sleep(0.001)  # a consumer slower than the link
    assert n == 4096 and np.array_equal(got, data)
    # the decoded window (at most 2 x requests runs) and as many again fetched ahead
    assert 0 < peak <= 4 * REQUESTS
    assert store.in_flight == 0


async def test_runs_of_tiles_smaller_than_the_inner_chunks_fetched_ahead_hold_no_arrays(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    """Tiles of 8 x 8 in inner chunks of 16 x 16 (a stream that kept chunks for later tiles):
    the runs fetched ahead made their tiles' arrays before their GETs were answered."""
    store = held_store(http_images)
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
        async with ds.tiles(shape=(1, 8, 8), ordered=False) as tiles:
            await until(lambda: store.asking == FITS + 1)  # more GETs than runs that fit
            await still(lambda: not made)  # their arrays not made while they fetch
            store.let_go()
            await until(lambda: len(made) == FITS)
            await still(lambda: len(made) == FITS)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
    assert np.array_equal(got, data)
    assert len(made) == 16 and set(made) == {64}  # one run per shard, its 64 tiles


async def test_runs_of_shards_compressed_whole_fetched_ahead_hold_no_arrays(
    tmp_path: Path,
) -> None:
    """Shards compressed whole (zstd after ``sharding_indexed``): the runs fetched ahead made
    their tiles' arrays before their GETs were answered."""
    data = write_peer_image(tmp_path / "comp.zarr", "zstd")  # 12 shards, 10 stored
    server = StaticServer(tmp_path).start()
    try:
        run = 4 * 16 * 16 * 2  # a shard of 32 x 32: four tiles of 16 x 16
        limits = Limits(prefetch_bytes=4 * run, max_requests=16)
        store = HeldStore(open_store(server.url + "comp.zarr", limits=limits))
        made: list[int] = []
        async with ngio_async.open_async(store) as ds:
            level = ds.levels[0]
            real = level._shard_groups

            def shard_groups(regions: Any, *args: Any, **kw: Any) -> Any:
                made.append(len(regions))
                return real(regions, *args, **kw)

            level._shard_groups = shard_groups  # type: ignore[method-assign]
            got = np.zeros_like(data)
            async with ds.tiles(shape=(1, 16, 16), ordered=False) as tiles:
                await until(lambda: store.asking == FITS + 1)  # more GETs than runs that fit
                await still(lambda: not made)  # their arrays not made while they fetch
                store.release_all()
                async for tile in tiles:
                    got[tile.region] = tile.data
        assert np.array_equal(got, data)
        assert len(made) == 12 and set(made) == {4}
    finally:
        server.stop()
