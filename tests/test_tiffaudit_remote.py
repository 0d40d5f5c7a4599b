"""Uncompressed TIFF planes stored as one strip (as ImageJ writes them) read over HTTP: a
region fetches its own rows, not the whole plane."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async
from ngio_async.convert import TiffReader

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = pytest.mark.anyio


def _fetched(server: StaticServer, name: str) -> int:
    """Bytes asked for by the ranged GETs of ``name`` so far."""
    total = 0
    for seen in server.requests:
        if seen.path.endswith(name) and seen.range:
            start, end = seen.range.removeprefix("bytes=").split("-")
            total += int(end) - int(start) + 1
    return total


async def test_a_region_of_a_one_strip_plane_fetches_its_rows(
    http_server: StaticServer, http_root: Path
) -> None:
    # the whole 8 MiB strip was fetched (and decoded) for a 128 KiB region: a 1 GiB ImageJ
    # plane on a store was fetched whole for every tile of a conversion
    data = np.random.default_rng(3).integers(0, 4000, (2, 2048, 2048)).astype(np.uint16)
    tifffile.imwrite(http_root / "ij.tif", data, imagej=True, metadata={"axes": "ZYX"})
    async with await TiffReader().open(http_server.url + "ij.tif") as source:
        http_server.reset()
        region = (slice(1, 2), slice(1000, 1256), slice(512, 768))
        np.testing.assert_array_equal(await source.read(region), data[region])
        fetched = _fetched(http_server, "ij.tif")
        assert fetched <= 256 * 2048 * 2 + 64 * 1024, fetched  # the 256 rows' span at most
        for region in [
            (slice(0, 2), slice(0, 2048), slice(0, 2048)),
            (slice(0, 1), slice(2047, 2048), slice(2000, 2048)),
        ]:
            np.testing.assert_array_equal(await source.read(region), data[region])


async def test_a_remote_one_strip_tiff_converts_exactly(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    data = np.random.default_rng(4).integers(0, 250, (3, 300, 200)).astype(np.uint8)
    tifffile.imwrite(http_root / "s.tif", data, imagej=True, metadata={"axes": "TYX"})
    await ngio_async.convert(http_server.url + "s.tif", tmp_path / "s.ome.zarr")
    async with ngio_async.open_async(tmp_path / "s.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data)
    async with ngio_async.open_async(http_server.url + "s.tif") as tiff:
        np.testing.assert_array_equal(await tiff.read(), data)


def _one_strip(path: Path, data: np.ndarray[Any, Any]) -> int:
    """``data`` as one deflate strip at ``path``; returns the strip's byte count."""
    tifffile.imwrite(
        path, data, rowsperstrip=data.shape[0], compression="zlib", photometric="minisblack"
    )
    with tifffile.TiffFile(path) as tif:
        (count,) = tif.pages.first.databytecounts
    return int(count)


@pytest.mark.parametrize("layout", ["even", "noisy-top"])
async def test_a_region_of_a_remote_compressed_strip_fetches_a_share_of_it(
    http_server: StaticServer, http_root: Path, layout: str
) -> None:
    # every region of a plane stored as one deflate strip fetched the whole strip: a
    # conversion's shards fetched it once each
    # (past the 256 KiB the open reads and keeps)
    data = np.random.default_rng(5).integers(0, 4000, (2048, 512)).astype(np.uint16)
    if layout == "noisy-top":  # the top quarter holds nearly all the bytes: the share misses
        data[512:] = 7
    count = _one_strip(http_root / "one.tif", data)
    async with await TiffReader().open(http_server.url + "one.tif") as source:
        http_server.reset()
        top = (slice(0, 512), slice(100, 300))
        np.testing.assert_array_equal(await source.read(top), data[top])
        fetched = _fetched(http_server, "one.tif")
        gets = len([r for r in http_server.requests if r.range])
        if layout == "even":
            assert fetched < count // 2, (fetched, count)
            assert gets == 1
        else:
            assert fetched <= count + 64 * 1024
            assert gets == 2  # the share, then the strip's rest at once
        bottom = (slice(2000, 2048), slice(0, 512))
        np.testing.assert_array_equal(await source.read(bottom), data[bottom])
