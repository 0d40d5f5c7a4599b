"""``for tile in ds.tiles(...)`` on the blocking dataset: the async one's parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_sync_tiles_take_the_async_parameters_positionally(tmp_path: Path) -> None:
    datas = write_image(tmp_path, Spec(version="0.5", shape=(2, 40, 40), chunks=(1, 16, 16)))
    with ngio_async.open(tmp_path) as ds:
        # level, shape, region, overlap, prefetch, ordered (was: level only, TypeError)
        region = (slice(0, 1), slice(0, 20), slice(None))
        tiles = list(ds.tiles(1, (10, 10), region, 2, 4, False, None))
        assert len(tiles) == 2 * 2
        for t in tiles:
            np.testing.assert_array_equal(t.data, datas[1][t.region])
            assert t.level == 1
        named = list(ds.tiles(0, (20, 20), None, 0, None, True, None, z=1))
        assert [t.index for t in named] == [(0, y, x) for y in range(2) for x in range(2)]
        assert all(t.region[0] == slice(1, 2) for t in named)


def test_sync_progress_counts_the_tiles_the_loop_has_taken(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 8, 8), levels=1))
    seen: list[int] = []
    with ngio_async.open(tmp_path) as ds:
        stream = ds.tiles(prefetch=32, progress=lambda done, _: seen.append(done))
        for i, _ in enumerate(stream, start=1):
            # was: a whole batch of tiles read together counted at once (ahead of the loop)
            assert seen[-1] == i
        assert seen == list(range(1, 65))
