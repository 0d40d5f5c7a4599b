"""Pyramidal OME-TIFFs (SubIFDs, as bfconvert and QuPath write them) converted with no
``levels`` asked: their own levels are the pyramid."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _pyramid_tiff(path: Path, base: np.ndarray[tuple[int, ...], np.dtype[np.uint16]]) -> None:
    # sub-resolutions by decimation, unlike the mean a conversion computes: a copied level
    # and a computed one differ
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            base,
            subifds=2,
            tile=(128, 128),
            compression="zlib",
            metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
        )
        tif.write(base[:, ::2, ::2], subfiletype=1, tile=(128, 128), compression="zlib")
        tif.write(base[:, ::4, ::4], subfiletype=1, tile=(128, 128), compression="zlib")


async def test_a_pyramidal_ome_tiff_keeps_its_own_levels(tmp_path: Path) -> None:
    # 3 levels (512, 256, 128) became 2 computed ones (512, 256: the default stops at 256):
    # the file's own pyramid was dropped and recomputed
    base = (np.arange(2 * 512 * 512) % 4001).astype(np.uint16).reshape(2, 512, 512)
    _pyramid_tiff(tmp_path / "pyr.ome.tif", base)
    await ngio_async.convert(tmp_path / "pyr.ome.tif", tmp_path / "pyr.ome.zarr")
    async with ngio_async.open_async(tmp_path / "pyr.ome.zarr") as ds:
        assert [lvl.shape for lvl in ds.levels] == [(2, 512, 512), (2, 256, 256), (2, 128, 128)]
        for lvl, step in zip(ds.levels, (1, 2, 4), strict=True):
            np.testing.assert_array_equal(await lvl[...], base[:, ::step, ::step])
    root = json.loads((tmp_path / "pyr.ome.zarr" / "zarr.json").read_text())
    datasets = root["attributes"]["ome"]["multiscales"][0]["datasets"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in datasets]
    assert scales == [[1.0, 0.5, 0.5], [1.0, 1.0, 1.0], [1.0, 2.0, 2.0]]


async def test_a_pyramid_of_other_factors_still_reaches_the_default_depth(tmp_path: Path) -> None:
    # levels 4x apart (2048, 512, 128: as whole-slide scanners write them) cannot be copied
    # into a pyramid of halvings: it is computed, as deep as by default (down to 256 px), not
    # cut at the file's level count (2048, 1024, 512)
    base = (np.arange(2048 * 2048) % 251).astype(np.uint8).reshape(2048, 2048)
    with tifffile.TiffWriter(tmp_path / "x4.tif") as tif:
        tif.write(base, subifds=2, tile=(256, 256), photometric="minisblack")
        tif.write(base[::4, ::4], subfiletype=1, tile=(256, 256), photometric="minisblack")
        tif.write(base[::16, ::16], subfiletype=1, tile=(128, 128), photometric="minisblack")
    async with ngio_async.open_async(tmp_path / "x4.tif") as tiff:
        assert [lvl.shape for lvl in tiff.levels] == [(2048, 2048), (512, 512), (128, 128)]
    await ngio_async.convert(tmp_path / "x4.tif", tmp_path / "x4.ome.zarr")
    async with ngio_async.open_async(tmp_path / "x4.ome.zarr") as ds:
        assert [lvl.shape[-1] for lvl in ds.levels] == [2048, 1024, 512, 256]


@pytest.mark.parametrize("levels", [1, 2])
async def test_fewer_levels_asked_are_the_files_first_levels(tmp_path: Path, levels: int) -> None:
    # levels= of a 3-level file wins, and the levels kept are the file's, copied (levels=2
    # computed both anew by mean)
    base = (np.arange(2 * 512 * 512) % 4001).astype(np.uint16).reshape(2, 512, 512)
    _pyramid_tiff(tmp_path / "pyr.ome.tif", base)
    await ngio_async.convert(tmp_path / "pyr.ome.tif", tmp_path / "few.ome.zarr", levels=levels)
    async with ngio_async.open_async(tmp_path / "few.ome.zarr") as ds:
        assert len(ds.levels) == levels
        for i, lvl in enumerate(ds.levels):
            np.testing.assert_array_equal(await lvl[...], base[:, :: 2**i, :: 2**i])


async def test_each_pyramidal_position_of_an_ome_tiff_keeps_its_levels(tmp_path: Path) -> None:
    base = (np.arange(512 * 512) % 4001).astype(np.uint16).reshape(512, 512)
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tif:
        for k in range(2):
            tif.write(base + k, subifds=2, tile=(128, 128), metadata={"axes": "YX"})
            tif.write((base + k)[::2, ::2], subfiletype=1, tile=(128, 128))
            tif.write((base + k)[::4, ::4], subfiletype=1, tile=(128, 128))
    result = await ngio_async.convert(tmp_path / "two.ome.tif", tmp_path / "two.ome.zarr")
    assert result.series == ("0", "1")
    for k in range(2):
        async with ngio_async.open_async(tmp_path / "two.ome.zarr", path=str(k)) as ds:
            assert len(ds.levels) == 3
            np.testing.assert_array_equal(await ds.levels[2][...], (base + k)[::4, ::4])
