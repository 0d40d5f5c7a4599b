"""A TIFF plane stored as one LZW (or ZSTD, PackBits) strip, read over HTTP region by region:
such a strip decodes only from its start, so a region needs the whole strip; it is fetched
once and reused by the plane's other regions (a conversion reads one shard or chunk at a
time, several at once), not fetched again for each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import tifffile

import ngio_async
from ngio_async.convert import TiffReader

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = pytest.mark.anyio


def _one_strip(path: Path, compression: str) -> tuple[np.ndarray[Any, Any], list[tuple[int, int]]]:
    """2 planes of 512 x 512 uint16, each one ``compression`` strip, at ``path``: the data
    and each strip's ``(start, end)``."""
    rng = np.random.default_rng(7)
    data = (rng.integers(0, 60, (2, 512, 512)) + np.arange(512) // 4).astype(np.uint16)
    tifffile.imwrite(path, data, compression=compression, rowsperstrip=512)
    with tifffile.TiffFile(path) as tif:
        strips = [
            (int(o), int(o) + int(n))
            for page in tif.pages
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)
        ]
    assert len(strips) == 2  # one strip per plane
    return data, strips


def _ranged(server: StaticServer) -> list[tuple[int, int]]:
    """``(start, end)`` of the ranged GETs since the last reset."""
    out = []
    for seen in server.requests:
        if seen.range:
            start, end = seen.range.removeprefix("bytes=").split("-")
            out.append((int(start), int(end) + 1))
    return out


@pytest.mark.parametrize("compression", ["lzw", "zstd"])
async def test_the_regions_of_a_one_strip_plane_fetch_it_once(
    http_server: StaticServer, http_root: Path, tmp_path: Path, compression: str
) -> None:
    data, strips = _one_strip(http_root / "s.tif", compression)
    url = http_server.url + "s.tif"
    async with await TiffReader().open(url) as source:
        http_server.reset()
        for y in range(0, 512, 128):  # 16 regions of plane 1, one after another
            for x in range(0, 512, 128):
                region = (slice(1, 2), slice(y, y + 128), slice(x, x + 128))
                np.testing.assert_array_equal(await source.read(region), data[region])
        # the strip once (it was fetched 16 times: 16x its bytes)
        assert _ranged(http_server) == [strips[1]]
        whole = (slice(0, 2), slice(0, 512), slice(0, 512))
        np.testing.assert_array_equal(await source.read(whole), data)

    async with await TiffReader().open(url) as source:  # 16 regions of plane 0 at once
        http_server.reset()
        out = np.zeros_like(data[0])

        async def one(y: int, x: int) -> None:
            out[y : y + 128, x : x + 128] = await source.read(
                (slice(0, 1), slice(y, y + 128), slice(x, x + 128))
            )

        async with anyio.create_task_group() as tg:
            for y in range(0, 512, 128):
                for x in range(0, 512, 128):
                    tg.start_soon(one, y, x)
        np.testing.assert_array_equal(out, data[0])
        assert _ranged(http_server) == [strips[0]]  # (a read waits for the one under way)

    # a conversion: one region per chunk (no shards), 16 per plane, several read at once
    http_server.reset()
    out = tmp_path / "s.ome.zarr"
    await ngio_async.convert(url, out, chunks=(1, 128, 128), shards=False, levels=1)
    got = _ranged(http_server)
    # each strip once (each was fetched 16 times), besides the open's 256 KiB + 64 KiB
    assert sorted(r for r in got if r in strips) == strips, got
    opening = [r for r in got if r not in strips]
    assert len(opening) <= 2 and sum(b - a for a, b in opening) <= 320 * 1024, got
    async with ngio_async.open_async(out) as ds:
        np.testing.assert_array_equal(await ds.read(), data)
