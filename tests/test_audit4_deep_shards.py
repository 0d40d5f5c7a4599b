"""Plane tiles of remote shards whose chunks are several planes deep (audit of issue 4).

Each tile of one plane needs every inner chunk of its shard, so it read the shard whole
(no index, "one GET"), once per plane: 16 planes of chunks 16 deep fetched each shard 16
times over (67 MB for a 4.2 MB image over HTTP), and the stream's chunk cache, which such
whole reads bypass, was left holding the chunks the later planes claimed (never released).
The stream now fetches the indexes of the shards ahead when it keeps chunks for later tiles,
so each inner chunk is fetched and decoded once and dropped at its last use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image
from servers import StaticServer

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio
# 2 x 2 x 2 shards of 2 x 2 inner chunks (4 planes deep); the last z shard is partial
SPEC = Spec(
    version="0.5",
    shape=(1, 10, 64, 64),
    chunks=(1, 4, 16, 16),
    shards=(1, 4, 32, 32),
    levels=1,
    compressor=None,
)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StaticServer, Any, Path]]:
    root = tmp_path_factory.mktemp("deep")
    data = write_image(root / "img", SPEC)[0]
    server = StaticServer(root).start()
    try:
        yield server, data, root
    finally:
        server.stop()


def fetched_bytes(server: StaticServer, root: Path, prefix: str) -> tuple[int, int]:
    """(bytes served, whole-object GETs) of the GETs of keys under ``prefix``."""
    total = whole = 0
    for seen in server.requests:
        if seen.method != "GET" or not seen.path.lstrip("/").startswith(prefix):
            continue
        size = (root / seen.path.lstrip("/")).stat().st_size
        match = _RANGE.match(seen.range or "")
        if match is None:
            total, whole = total + size, whole + 1
        elif match[1]:
            last = min(int(match[2]), size - 1) if match[2] else size - 1
            total += last - int(match[1]) + 1
        else:
            total += min(size, int(match[2]))
    return total, whole


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"prefetch": 3},
        {"shape": (1, 1, 16, 32)},
        {"overlap": 2},
        {"ordered": False},  # each shard one run, read whole once
        {"ordered": False, "prefetch": 2},  # a shard split over runs
    ],
    ids=["default", "prefetch3", "small", "halo", "unordered", "unordered-split"],
)
async def test_plane_tiles_of_deep_shards_fetch_each_chunk_once(
    served: tuple[StaticServer, Any, Path], kw: dict[str, Any]
) -> None:
    server, data, root = served
    shards = [p for p in (root / "img" / "0" / "c").rglob("*") if p.is_file()]
    stored = sum(p.stat().st_size for p in shards)
    async with ngio_async.open_async(f"{server.url}img") as ds:
        server.reset()
        stream = ds.tiles(**kw)
        count = 0
        async for tile in stream:
            np.testing.assert_array_equal(tile.data, data[tile.region])
            count += 1
        assert count == len(stream)
        cache = stream.chunk_cache
        assert cache is not None  # tiles thinner than the chunks: the stream keeps them
        # every kept chunk was released at its last use (was: 90-130 KB left held)
        assert cache.held_bytes == 0
        if kw.get("ordered", True):  # (unordered whole-shard runs need no chunk kept)
            assert cache.hits > 0
    got, whole = fetched_bytes(server, root, "img/0/c/")
    # each inner chunk fetched once, plus the shard indexes and the gaps of coalesced ranges
    # (was: each shard whole once per plane, 4x the stored bytes here; 16x for 16 planes)
    assert got <= 1.5 * stored, (got, stored, whole)
    assert whole <= len(shards)
