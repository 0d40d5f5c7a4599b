"""Remote whole-shard tile streams (``ordered=False``) whose runs are fetched ahead of their
bytes, on the layouts the first tests did not cover: shards compressed whole (a bytes->bytes
codec after ``sharding_indexed``), edge shards and shards never written (the fill value) at
levels 0 and 1, regions that cut shards, a ``prefetch_bytes`` smaller than one run, and a
loop body reading the same image. Every tile equals the image, nothing stays in flight; real
loopback HTTP, each stream within a deadline (a stream that stopped for good fails it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec, write_image
from servers import StaticServer
from test_shard_outer_codecs import write_peer_image

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.anyio

# 2 planes of 200 x 232: 4 x 4 shards of 64 x 64, the last row and column partial; only
# y < 120, x < 150 written (the other shards are not stored: fill value)
EDGE = Spec(
    version="0.5", shape=(2, 200, 232), chunks=(1, 16, 16), shards=(1, 64, 64), levels=2,
    written=(slice(0, 2), slice(0, 120), slice(0, 150)),
)  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Any]]:
    root = tmp_path_factory.mktemp("review26")
    levels = write_image(root / "edge.zarr", EDGE)
    compressed = write_peer_image(root / "comp.zarr", "zstd")
    server = StaticServer(root).start()
    try:
        yield server.url, levels, compressed
    finally:
        server.stop()


async def stream_checked(
    url: str, data: Any, prefetch_bytes: int, level: int, tile: Any, region: Any = None
) -> int:
    limits = Limits(prefetch_bytes=prefetch_bytes, max_requests=8)
    store = InstrumentedStore(open_store(url, limits=limits), 0.002)
    async with ngio_async.open_async(store) as ds:
        seen = np.zeros(data.shape, bool)
        n = 0
        with anyio.fail_after(30):
            async for t in ds.tiles(level=level, shape=tile, region=region, ordered=False):
                assert np.array_equal(t.data, data[t.region])
                assert not seen[t.region].any()
                seen[t.region] = True
                if n % 5 == 0:  # the loop body reads the same image
                    assert np.array_equal(await ds.read(level), data)
                n += 1
        assert store.in_flight == 0
    want = np.zeros(data.shape, bool)
    want[region or ...] = True
    assert np.array_equal(seen, want)
    return n


@pytest.mark.parametrize("level", [0, 1])
@pytest.mark.parametrize("prefetch_bytes", [300, 1 << 20])
async def test_edge_and_unwritten_shards(
    served: tuple[str, Any, Any], level: int, prefetch_bytes: int
) -> None:
    url, levels, _ = served
    assert await stream_checked(
        url + "edge.zarr", levels[level], prefetch_bytes, level, (1, 24, 40)
    )


@pytest.mark.parametrize("prefetch_bytes", [300, 1 << 20])
async def test_compressed_shards_and_a_region_cutting_them(
    served: tuple[str, Any, Any], prefetch_bytes: int
) -> None:
    url, _, data = served
    region = (slice(0, 2), slice(5, 60), slice(20, 90))
    assert await stream_checked(url + "comp.zarr", data, prefetch_bytes, 0, (1, 8, 8))
    assert await stream_checked(url + "comp.zarr", data, prefetch_bytes, 0, (1, 8, 8), region)
