"""Unordered remote tile streams with a halo read rows of shards, as ordered ones do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from served import served_image
from test_tiles_runs import IMAGE

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("ordered", [False, True])
async def test_halo_tiles_cost_an_index_and_a_ranged_get_per_shard(
    tmp_path: Path, ordered: bool
) -> None:
    """256 tiles of 16x16 with a 3-pixel halo over 16 shards of 64x64: each shard's index and
    one ranged GET per (row of shards, shard) it or a halo reaches: 56 GETs in either order.
    Unordered, shard by shard (each shard whole, each neighbour's halo chunks apart) took 116."""
    with served_image(tmp_path, IMAGE) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.requests.clear()
            seen: set[Any] = set()
            async for tile in ds.tiles(shape=(16, 16), overlap=3, ordered=ordered):
                np.testing.assert_array_equal(tile.data, data[tile.region])
                seen.add(tile.index)
        assert seen == {(0, y, x) for y in range(16) for x in range(16)}
        gets = [r for r in server.requests if r.method == "GET" and "/0/c/" in r.path]
        assert len(gets) == 56, [(r.path, r.range) for r in gets]
