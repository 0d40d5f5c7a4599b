"""A pyramidal TIFF's own resolution levels (SubIFDs) as the dataset's levels: shapes, scales,
regions, tiles; flat TIFFs keep one level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from tiffs import ramp, write_pyramid, write_tiled

import ngio_async
from ngio_async.convert import TiffSource
from ngio_async.convert._tiffds import level_factor

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("ome", [True, False])
async def test_subifd_levels_are_the_dataset_levels(tmp_path: Path, ome: bool) -> None:
    data = ramp((3, 300, 260))
    path = tmp_path / ("pyr.ome.tif" if ome else "pyr.tif")
    pyramid = write_pyramid(path, data, 3, ome=ome)
    async with ngio_async.open_async(path) as ds:
        assert [lvl.shape[-2:] for lvl in ds.levels] == [(300, 260), (150, 130), (75, 65)]
        assert [lvl.chunks[-2:] for lvl in ds.levels] == [(64, 64)] * 3  # the TIFF tiles
        assert ds.axes == (("c", "y", "x") if ome else ("z", "y", "x"))
        pixel = 0.5 if ome else 1.0
        for i, lvl in enumerate(ds.levels):
            assert lvl.scale == (1.0, pixel * 2**i, pixel * 2**i)
            np.testing.assert_array_equal(await ds.read(level=i), pyramid[i])
        region = await ds.read(level=1, y=slice(37, 120), x=slice(5, 129))
        np.testing.assert_array_equal(region, pyramid[1][:, 37:120, 5:129])
        np.testing.assert_array_equal(await ds.levels[2][1, 10:20, 60:], pyramid[2][1, 10:20, 60:])
        tiles = [t async for t in ds.tiles(level=1)]
        assert len(tiles) == 3 * 3 * 3  # 150x130 in 64x64 tiles, one plane each
        for t in tiles:
            np.testing.assert_array_equal(t.data, pyramid[1][t.region])
        datasets = ds.metadata.ome.multiscales[0].datasets  # type: ignore[index]
        assert [d.path for d in datasets] == ["0", "1", "2"]


def test_sync_open_exposes_the_levels(tmp_path: Path) -> None:
    data = ramp((2, 200, 170))
    pyramid = write_pyramid(tmp_path / "p.ome.tif", data, 2, tile=(32, 32))
    with ngio_async.open(tmp_path / "p.ome.tif") as ds:
        assert len(ds.levels) == 2
        assert ds.levels[1].shape == (2, 100, 85)
        np.testing.assert_array_equal(ds.read(level=1, c=1), pyramid[1][1])


async def test_flat_tiff_has_one_level(tmp_path: Path) -> None:
    data = ramp((2, 100, 90))
    write_tiled(tmp_path / "flat.tif", data, tile=(32, 32))
    async with ngio_async.open_async(tmp_path / "flat.tif") as ds:
        assert len(ds.levels) == 1
        np.testing.assert_array_equal(await ds.read(), data)


async def test_source_reads_levels_and_refuses_missing_ones(tmp_path: Path) -> None:
    data = ramp((2, 128, 96))
    pyramid = write_pyramid(tmp_path / "p.ome.tif", data, 3, tile=(32, 32))
    async with TiffSource(tmp_path / "p.ome.tif") as src:
        assert src.levels == 3
        assert src.level_shapes == [(2, 128, 96), (2, 64, 48), (2, 32, 24)]
        part = await src.read((slice(0, 2), slice(3, 30), slice(0, 24)), level=2)
        np.testing.assert_array_equal(part, pyramid[2][:, 3:30, :])
        with pytest.raises(IndexError):
            await src.read((slice(0, 1), slice(0, 1), slice(0, 1)), level=3)


async def test_odd_sizes_keep_integer_factors(tmp_path: Path) -> None:
    assert level_factor(301, 151) == 2.0  # rounded up
    assert level_factor(301, 150) == 2.0  # rounded down
    assert level_factor(300, 75) == 4.0
    assert level_factor(300, 120) == 2.5  # not an integer step: the exact ratio
    data = ramp((1, 301, 199))
    path = tmp_path / "odd.ome.tif"
    pyramid = write_pyramid(path, data, 2, tile=(32, 32), pixel=0.25)
    async with ngio_async.open_async(path) as ds:
        assert ds.levels[1].shape == (151, 100)  # the channel axis of size 1 is dropped
        assert ds.levels[1].scale == (0.5, 0.5)
        np.testing.assert_array_equal(await ds.read(level=1), pyramid[1][0])


async def test_reduced_pages_pyramid(tmp_path: Path) -> None:
    """A pyramid stored as reduced-resolution pages after level 0 (no SubIFDs)."""
    data = ramp((160, 120))
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(data, tile=(32, 32))
        tif.write(data[::2, ::2], tile=(32, 32), subfiletype=1)
    async with ngio_async.open_async(path) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(160, 120), (80, 60)]
        np.testing.assert_array_equal(await ds.read(level=1), data[::2, ::2])


async def test_convert_copies_the_tiff_levels_when_the_pyramid_matches(tmp_path: Path) -> None:
    data = ramp((2, 256, 192))
    sub = data[:, ::2, ::2]  # level 1 by subsampling: distinguishable from a computed mean
    path = tmp_path / "p.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(data, subifds=1, tile=(64, 64), metadata={"axes": "CYX"})
        tif.write(sub, subfiletype=1, tile=(64, 64))
    async with TiffSource(path) as src:
        await ngio_async.convert(src, tmp_path / "same.zarr", levels=2, chunks=(1, 64, 64))
        assert src.bytes_read == data.nbytes + sub.nbytes  # both levels read once
    async with ngio_async.open_async(tmp_path / "same.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(level=1), sub)  # copied, not computed
    # three levels requested: the TIFF has two, so the pyramid is built (2x2 means)
    await ngio_async.convert(path, tmp_path / "built.zarr", levels=3, chunks=(1, 64, 64))
    async with ngio_async.open_async(tmp_path / "built.zarr") as ds:
        assert len(ds.levels) == 3
        assert not np.array_equal(await ds.read(level=1), sub)
