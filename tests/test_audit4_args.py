"""``ds.tiles()`` arguments as numpy gives them (audit of issue 4): numpy integers work
wherever ints do (tile shape, prefetch, overlap), async and through the sync shim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 70, 53), chunks=(1, 16, 16), shards=(1, 32, 32), levels=1)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, np.ndarray[Any, Any]]:
    return tmp_path, write_image(tmp_path, SPEC)[0]


@pytest.mark.parametrize("ordered", [True, False])
async def test_numpy_integers_are_taken_as_ints(
    image: tuple[Path, np.ndarray[Any, Any]], ordered: bool
) -> None:
    root, data = image
    async with ngio_async.open_async(root) as ds:
        # was: prefetch=np.int64(3) passed the call, then the first tile raised "window must be
        # a positive integer, got np.int64(3)"; a tile shape of np.uint8 overflowed
        # ("Python integer -53 out of bounds for uint8") in the grid's arithmetic
        cases: list[dict[str, Any]] = [
            {"prefetch": np.int64(3)},
            {"prefetch": np.int32(1), "shape": (7, 9)},
            {"shape": (np.uint8(7), np.uint8(9))},
            {"shape": np.array([1, 20, 20], dtype=np.uint8), "overlap": np.uint8(3)},
        ]
        for kw in cases:
            stream = ds.tiles(ordered=ordered, **kw)
            tiles = [t async for t in stream]
            assert len(tiles) == len(stream) > 0, kw
            cover = np.zeros(data.shape, int)
            for t in tiles:
                np.testing.assert_array_equal(t.data, data[t.region])
                cover[t.core] += 1
            assert (cover == 1).all(), kw
    sync_kw: dict[str, Any] = {"prefetch": np.int64(2), "shape": (np.uint8(40), 40)}
    with ngio_async.open(root) as sync_ds:
        assert len(list(sync_ds.tiles(**sync_kw))) == 8


async def test_tile_shape_errors_name_shape_and_value(
    image: tuple[Path, np.ndarray[Any, Any]],
) -> None:
    root, _ = image
    async with ngio_async.open_async(root) as ds:
        # was: "tile size must be >= 1, got 0 for axis 2" (which parameter; axis 2 is 'x')
        with pytest.raises(ValueError, match=r"shape \(0, 5\): axis 'y' .*>= 1.*got 0"):
            ds.tiles(shape=(0, 5))
        with pytest.raises(ValueError, match=r"shape \(1, 8, -2\): axis 'x' .*>= 1.*got -2"):
            ds.tiles(shape=(1, 8, -2))
        # was: "tile shape needs 3 values (one per axis) or 2 (y, x)" (what was given?)
        with pytest.raises(ValueError, match=r"shape needs 3 values .* got \(5,\)"):
            ds.tiles(shape=(5,))
        # was: "a list selection on axis 'z' needs tiles of 1" (the shape given?)
        with pytest.raises(ValueError, match=r"axis 'z' needs tiles of 1 .*shape \(2, 8, 8\)"):
            ds.tiles(shape=(2, 8, 8), z=[1, 0])


async def test_default_tiles_of_an_empty_axis(tmp_path: Path) -> None:
    """No tile, no error: the default tile is 0 pixels along an empty axis."""
    url = str(tmp_path / "empty.zarr")
    async with ngio_async.create_async(
        url, shape=(1, 0, 64), dtype="uint16", axes="cyx", chunks=(1, 16, 16)
    ) as ds:
        for kw in ({}, {"ordered": False}, {"overlap": 2}, {"shape": (8, 8)}):
            stream = ds.tiles(**kw)
            assert len(stream) == 0
            assert [t async for t in stream] == []
