"""Unordered remote tile streams with a halo read rows of shards, as ordered ones do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from served import count_decodes, served_image
from test_tiles_runs import IMAGE

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("ordered", [False, True])
async def test_halo_tiles_cost_an_index_and_a_ranged_get_per_shard(
    tmp_path: Path, ordered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """256 tiles of 16x16 with a 3-pixel halo over 16 shards of 64x64: without a chunk cache,
    each shard's index and one ranged GET per (row of shards, shard) it or a halo reaches: 56
    GETs in either order (unordered, shard by shard, each shard whole and each neighbour's
    halo chunks apart, took 116). With it (the default), the halo chunks the row above read
    are kept: fewer GETs, and each of the 256 inner chunks decoded once (was up to 4 times)."""
    with served_image(tmp_path, IMAGE) as (server, data):
        for cache in (0, None):
            limits = ngio_async.Limits() if cache is None else ngio_async.Limits(cache_bytes=0)
            async with ngio_async.open_async(server.url + "img.zarr", limits=limits) as ds:
                server.requests.clear()
                decoded = count_decodes(monkeypatch)
                seen: set[Any] = set()
                async for tile in ds.tiles(shape=(16, 16), overlap=3, ordered=ordered):
                    np.testing.assert_array_equal(tile.data, data[tile.region])
                    seen.add(tile.index)
            assert seen == {(0, y, x) for y in range(16) for x in range(16)}
            gets = [r for r in server.requests if r.method == "GET" and "/0/c/" in r.path]
            if cache == 0:
                assert len(gets) == 56, [(r.path, r.range) for r in gets]
                assert len(decoded) > 256
            else:
                assert 16 < len(gets) < 56
                assert len(decoded) == len(set(decoded)) == 256
            monkeypatch.undo()
