"""``for tile in ds.tiles(...)`` on the blocking dataset: the async one's parameters."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
from images import Spec, write_image
from processes import run_in_fork

import ngio_async
from ngio_async import ClosedError

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


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(30)
def test_a_tile_iterator_inherited_through_fork_is_closed_in_the_child(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(2, 40, 30), chunks=(1, 16, 16), levels=1))
    with ngio_async.open(tmp_path) as ds:
        tiles = ds.tiles()
        first = next(tiles)  # the stream now holds tiles read ahead with this one

        def child() -> None:
            with pytest.raises(ClosedError, match="fork"):
                next(tiles)  # was: a tile read ahead in the parent, as if the loop ran here
            tiles.close()  # a no-op here, like closing an inherited dataset
            ds.close()

        run_in_fork(child)
        rest = list(tiles)  # the parent's iterator is unaffected
        assert first.region not in [t.region for t in rest]
        assert len(rest) == 2 * 3 * 2 - 1


def test_the_blocking_tiles_have_len_total_and_grid(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(100, 100), dtype="uint8", axes="yx", levels=1) as ds:
        tiles = ds.tiles(shape=(50, 40))
        assert (len(tiles), tiles.total, tiles.grid) == (6, 6, (2, 3))
        assert sum(1 for _ in tiles) == 6
        with ds.tiles(shape=(50, None)) as whole_rows:
            assert (len(whole_rows), whole_rows.grid) == (2, (2, 1))
