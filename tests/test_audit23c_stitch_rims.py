"""stream(ds.tiles(shape=(1, y, x), overlap=(0, h, h)), f, out=label, stitch=...) over a
z-stack keeps the rims of the tiles a neighbour still needs within one plane: a tile's rim
waited for the tiles of the next plane too (their regions only abut, never compared), so a
plane's rims were held until the next plane landed (up to 7 of the 12 tiles' rims held, now
at most 3); the labels are the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async
from ngio_async.images._stitch import Stitch

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _planes(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.zeros(a.shape, np.uint32)
    for z in range(a.shape[0]):
        out[z] = ndimage.label(a[z] > 50)[0]
    return out


async def test_plane_tiles_hold_the_rims_of_one_plane(tmp_path: Path) -> None:
    img = np.zeros((3, 32, 32), np.uint16)
    img[:, 10:22, 12:20] = 100  # across the seams at y 16 and x 16 in every plane
    img[1, 2:5, 24:30] = 100
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="zyx"
    ) as ds:
        await ds.write(img)
        tiles = ds.tiles(shape=(1, 16, 16), overlap=(0, 4, 4))
        stitch = Stitch.of(0.3, tiles)
        held = []
        async for tile in tiles:  # the stream's stitch fed as stream() feeds it
            k = int(np.ravel_multi_index(tile.index, tiles.grid)) * 100
            pred = _planes(tile.data)
            stitch.add(tile, np.where(pred > 0, pred + k, 0), tile.core, None)
            held.append(len(stitch.rims))
        assert max(held) <= 3 and not stitch.rims, held
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            tiles = ds.tiles(shape=(1, 16, 16), overlap=(0, 4, 4))
            await ngio_async.stream(tiles, _planes, out=lab, unique_labels=100, stitch=True)
            got = await lab.read()
    assert [len(np.unique(got[z])) - 1 for z in range(3)] == [1, 2, 1]
    assert np.array_equal(got > 0, img > 0)
