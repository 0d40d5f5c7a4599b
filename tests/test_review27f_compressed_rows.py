"""A remote tile stream in grid order over shards compressed whole, each row of shards split
into several runs (its tiles more than a run holds): the runs fetched ahead that need a shard
at the same time share one GET of it.

Each run fetched ahead fetched its shards whole on its own (since 61ba0cc: a run fetched
ahead leads no fetch the consumer's reads could wait for), so a row of shards split into two
runs was fetched twice (12 shard GETs of the first channel's 6 shards, 24 of the image's 12;
before 61ba0cc, 14). A GET alone waits for no consumer: whichever run leads it, the others
wait for nothing but it. GETs held at the store until every run has asked, counted on a
loopback HTTP server, never timed.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from servers import StaticServer
from test_fetchahead26_stream import HeldStore, still, until
from test_shard_outer_codecs import write_peer_image

import ngio_async
from ngio_async import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

TILE = (1, 16, 16)
RUN = 6 * 16 * 16 * 2  # one row of tiles: a row of three shards (32 x 32) in two runs
LIMITS = Limits(prefetch_bytes=4 * RUN, max_requests=16)


@pytest.mark.parametrize("backend", [None, "aiohttp"])
async def test_runs_of_one_row_of_compressed_shards_share_its_gets(
    tmp_path: Path, backend: str | None
) -> None:
    data = write_peer_image(tmp_path / "comp.zarr", "zstd")  # (2, 64, 96): 12 shards of 32
    server = StaticServer(tmp_path).start()
    try:
        options: dict[str, Any] = {} if backend is None else {"backend": backend}
        store = HeldStore(open_store(server.url + "comp.zarr", limits=LIMITS, **options))
        async with ngio_async.open_async(store) as ds:
            got = np.zeros_like(data[:1])
            order = []
            async with ds.tiles(shape=TILE, c=0) as tiles:  # four runs, all fetched ahead
                # the first channel's six shards (one not stored): one GET each
                await until(lambda: store.asking >= 6)
                await still(lambda: store.asking == 6)
                store.release_all()
                async for tile in tiles:
                    got[tile.region] = tile.data
                    order.append(tile.index)
            assert store.in_flight == 0
        assert np.array_equal(got, data[:1]) and order == sorted(order) and len(order) == 24
        gets = Counter(store.keys)
        assert len(gets) == 6 and set(gets.values()) == {1}
    finally:
        server.stop()
