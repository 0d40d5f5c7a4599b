"""Runs a remote whole-shard tile stream fetches ahead of its decoded window lead no fetch that
other reads wait for, and hold no tile arrays until their bytes are reserved.

A run fetched ahead waits, after its GET, until its bytes fit: until the consumer took earlier
tiles. A read of the same image in the loop body (the consumer itself) that joined that run's
fetch of a shard waited for it, and the run waited for the consumer: the stream stopped for
good (``anyio.fail_after`` here). Such a run now fetches for itself alone. Its tiles' arrays
are made once its bytes are reserved, so the runs fetched ahead hold their bodies only.
Counted on the loopback HTTP server (both clients), never timed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_fetchahead26_stream import FITS, LIMITS, NAME, TILE, held_store, still, until

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from servers import StaticServer

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", [None, "aiohttp"])
async def test_the_loop_body_reads_shards_the_stream_fetches_ahead(
    http_images: tuple[StaticServer, dict[str, Any]], backend: str | None
) -> None:
    server, datas = http_images
    data = datas[NAME]
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    store = InstrumentedStore(open_store(server.url + NAME, limits=LIMITS, **options), 0.01)
    n = 0
    async with ngio_async.open_async(store) as ds:
        with anyio.fail_after(30):
            async for tile in ds.tiles(shape=TILE, ordered=False):
                assert np.array_equal(tile.data, data[tile.region])
                if n % 8 == 0:  # every shard, those whose GETs are under way too
                    assert np.array_equal(await ds.read(0), data)
                n += 1
        assert store.in_flight == 0
    assert n == 64


async def test_runs_fetched_ahead_hold_no_tile_arrays(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
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
        async with ds.tiles(shape=TILE, ordered=False) as tiles:
            await until(lambda: store.asking == FITS + 1)  # more GETs than runs that fit
            await still(lambda: not made)  # their arrays not made while they fetch
            store.let_go()
            # the runs that fit decoded into their arrays; the fetched one waiting for its
            # bytes has none yet
            await until(lambda: len(made) == FITS)
            await still(lambda: len(made) == FITS)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
    assert np.array_equal(got, data)
    assert len(made) == 16 and set(made) == {4}  # one run per shard, its four tiles
