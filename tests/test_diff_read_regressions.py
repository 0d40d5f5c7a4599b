"""Plain regression tests for what the differential read tests (``test_diff_read.py``) found."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.engine import tile_grid

if TYPE_CHECKING:
    from pathlib import Path


def test_a_none_tile_size_is_one_tile_of_the_whole_extent() -> None:
    """``None`` in a tile shape is the region's whole extent: one tile along that axis, also
    when the region does not start at a multiple of its length (it was cut at multiples of
    the extent counted from the origin: slice(3, 5) gave tiles 3:4 and 4:5)."""
    grid, specs = tile_grid((10, 10), (slice(3, 5), slice(1, 8)), (None, None))
    assert grid == (1, 1)
    assert [s.core for s in specs] == [(slice(3, 5), slice(1, 8))]
    # a sized axis beside it keeps its origin-aligned tiles
    grid, specs = tile_grid((10, 10), (slice(3, 5), slice(1, 8)), (None, 4), overlap=1)
    assert grid == (1, 2)
    assert [(s.core, s.region) for s in specs] == [
        ((slice(3, 5), slice(1, 4)), (slice(2, 6), slice(0, 5))),
        ((slice(3, 5), slice(4, 8)), (slice(2, 6), slice(3, 9))),
    ]


@pytest.mark.parametrize("ordered", [True, False])
def test_tiles_with_none_sizes_over_a_region(tmp_path: Path, ordered: bool) -> None:
    root = tmp_path / "img.ome.zarr"
    data = write_image(root, Spec(shape=(3, 20, 24), chunks=(1, 8, 8), levels=1))[0]
    with ngio_async.open(root) as ds:
        tiles = list(
            ds.tiles(shape=(1, None, None), region=(slice(0, 3), slice(3, 5), slice(1, 8)),
                     ordered=ordered)
        )  # fmt: skip
        assert len(tiles) == 3
        for tile in tiles:
            assert tile.region[1:] == (slice(3, 5), slice(1, 8))
            np.testing.assert_array_equal(tile.data, data[tile.region])
        tiles = list(ds.tiles(shape=(None, None, 5), y=slice(5, 7), x=slice(2, 12)))
        assert [t.region for t in tiles] == [
            (slice(0, 3), slice(5, 7), slice(2, 5)),
            (slice(0, 3), slice(5, 7), slice(5, 10)),
            (slice(0, 3), slice(5, 7), slice(10, 12)),
        ]


@pytest.mark.anyio
async def test_region_of_an_empty_channel_list_is_empty(tmp_path: Path) -> None:
    """``region_of(c=[])`` covers nothing, as ``read(c=[])`` reads nothing (it raised
    ``ValueError: min() arg is an empty sequence``)."""
    root = tmp_path / "img.ome.zarr"
    write_image(root, Spec(shape=(3, 20, 24), chunks=(1, 8, 8), levels=1, channels=("a", "b", "c")))
    async with ngio_async.open_async(root) as ds:
        assert ds.region_of(c=[]) == (slice(0, 0), slice(0, 20), slice(0, 24))
        assert (await ds.read(c=[])).shape == (0, 20, 24)
        assert ds.region_of(c=[2, 0], y=slice(-5, None)) == (
            slice(0, 3),
            slice(15, 20),
            slice(0, 24),
        )


@pytest.mark.anyio
@pytest.mark.parametrize("level", [True, 1.0, b"0", None])
async def test_a_level_that_is_no_int_is_a_clear_type_error(tmp_path: Path, level: object) -> None:
    """``level=True`` read level 1; ``1.0`` failed inside the bounds check (``list indices
    must be integers``); ``None`` said "not both". A str names a level by its path."""
    root = tmp_path / "img.ome.zarr"
    write_image(root, Spec(shape=(1, 16, 16), chunks=(1, 8, 8), levels=2))
    async with ngio_async.open_async(root) as ds:
        match = "exactly one" if level is None else "level must be an int or a level's path"
        with pytest.raises(TypeError, match=match):
            await ds.read(level=level)  # type: ignore[arg-type]
        np.testing.assert_array_equal(
            await ds.read(level=np.int64(1)),  # type: ignore[arg-type]
            await ds.levels[1][...],
        )


@pytest.mark.anyio
async def test_a_level_is_also_named_by_its_path(tmp_path: Path) -> None:
    """``level="s1"`` (the path in the multiscales, as ngio and ome-zarr-py name levels)
    reads, tiles and limits regions on that level; an unknown path lists the paths."""
    root = tmp_path / "img.ome.zarr"
    datas = write_image(root, Spec(shape=(1, 16, 16), chunks=(1, 8, 8), levels=2))
    async with ngio_async.open_async(root) as ds:
        paths = [lvl.path for lvl in ds.levels]
        assert ds.level(paths[1]) is ds.levels[1] and ds.level(paths[0]) is ds.levels[0]
        np.testing.assert_array_equal(await ds.read(level=paths[1]), datas[1])
        tiles = [t async for t in ds.tiles(level=paths[1], shape=(4, 4))]
        assert len(tiles) == 4 and {t.level for t in tiles} == {1}
        assert ds.region_of(level=paths[1]) == ds.region_of(level=1)
        with pytest.raises(KeyError, match=r"no level with path 'nope': the levels are \["):
            await ds.read(level="nope")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"shape": 8},
            TypeError,
            "tile shape must be one int",
        ),  # was: 'int' object is not iterable
        ({"region": slice(0, 5)}, ValueError, "region must be 3 slices"),  # was: slice has no len()
    ],
)
def test_tiles_name_a_shape_or_region_of_the_wrong_kind(
    tmp_path: Path, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    root = tmp_path / "img.ome.zarr"
    write_image(root, Spec(shape=(3, 20, 24), chunks=(1, 8, 8), levels=1))
    with ngio_async.open(root) as ds, pytest.raises(error, match=match):
        ds.tiles(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_read_into_an_array_of_another_shape_is_refused(tmp_path: Path) -> None:
    """``level.read_into(region, out)`` with an ``out`` larger than the region filled part of
    it and returned as if it had read everything."""
    root = tmp_path / "img.ome.zarr"
    data = write_image(root, Spec(shape=(2, 20, 24), chunks=(1, 8, 8), levels=1))[0]
    async with ngio_async.open_async(root) as ds:
        level = ds.levels[0]
        region = (slice(0, 2), slice(3, 17), slice(5, 21))
        out = np.zeros((2, 14, 16), dtype=level.dtype)
        await level.read_into(region, out)
        np.testing.assert_array_equal(out, data[region])
        with pytest.raises(ValueError, match="out has shape"):
            await level.read_into(region, np.zeros((2, 20, 24), dtype=level.dtype))


def test_the_tile_grid_of_a_huge_region_is_lazy() -> None:
    """A grid of 2**40 tiles per axis: the first tiles come at once (each axis's tile starts
    were a list: MemoryError)."""
    from itertools import islice

    from ngio_async.engine.tiles import tile_grid

    n = 2**40
    grid, tiles = tile_grid((n, n), (slice(0, n), slice(0, n)), (1, 1))
    assert grid == (n, n)
    first = list(islice(tiles, 3))
    assert [t.core for t in first] == [(slice(0, 1), slice(i, i + 1)) for i in range(3)]


@pytest.mark.anyio
async def test_writes_name_a_level_by_its_path(tmp_path: Path) -> None:
    """``write``, ``write_at`` and ``writer`` take a level's path as reads do; a negative
    index naming level 0 may build the pyramid (it was refused as "not 0")."""
    root = tmp_path / "img.ome.zarr"
    write_image(root, Spec(shape=(1, 16, 16), chunks=(1, 8, 8), levels=2))
    async with ngio_async.open_async(root, mode="r+") as ds:
        top, low = (lvl.path for lvl in ds.levels)
        await ds.write(np.full((1, 8, 8), 3, "uint16"), level=low)
        np.testing.assert_array_equal(await ds.read(level=1), np.full((1, 8, 8), 3))
        await ds.write_at((0, slice(0, 2), slice(0, 2)), 5, level=low)
        assert (await ds.read(level=low))[0, :2, :2].tolist() == [[5, 5], [5, 5]]
        async with ds.writer(level=top) as w:
            await w.write(((slice(0, 1), slice(0, 8), slice(0, 8)), np.full((1, 8, 8), 7)))
        assert ((await ds.read(level=top))[0, :8, :8] == 7).all()
        await ds.write(np.full((1, 16, 16), 9, "uint16"), level=-2, pyramid=True)
        np.testing.assert_array_equal(await ds.read(level=low), np.full((1, 8, 8), 9))
        with pytest.raises(KeyError, match="no level with path 'nope'"):
            await ds.write(np.zeros((1, 8, 8), "uint16"), level="nope")
