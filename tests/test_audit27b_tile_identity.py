"""Tiles and ROI reads compare and hash by identity (audit of issue 4): as frozen dataclasses
compared by value, their numpy arrays made ``tile in tiles``, ``tiles.remove(tile)`` and
``tiles.index(tile)`` raise "The truth value of an array ... is ambiguous", and ``{tile: ...}``
(a future per tile, a set of tiles pending) raise "unhashable type: 'numpy.ndarray'"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(version="0.5", shape=(2, 24, 20), chunks=(1, 8, 8), levels=1)


@pytest.mark.anyio
async def test_tiles_and_roi_reads_work_in_lists_sets_and_dicts(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        tiles = [tile async for tile in ds.tiles()]
        assert len(tiles) == 18
        assert tiles[5] in tiles and tiles.index(tiles[5]) == 5
        pending = {tile: tile.index for tile in tiles}
        assert len(pending) == len(set(tiles)) == 18
        tiles.remove(tiles[3])
        assert len(tiles) == 17
        # two reads of one tile are two tiles: equal regions, distinct objects
        again = [tile async for tile in ds.tiles()]
        assert again[0].region == tiles[0].region and again[0] != tiles[0]
        rois = [Roi.box("a", x=(0, 2.5), y=(0, 2.5)), Roi.box("b", x=(5, 10), y=(4, 10))]
        reads = [r async for r in ds.read_rois(rois)]
        assert reads[1] in reads and len(set(reads)) == 2
    with ngio_async.open(tmp_path) as blocking:
        tiles = list(blocking.tiles())
        assert tiles.index(tiles[-1]) == 17 and len(set(tiles)) == 18
