"""LZW, ZSTD, PackBits and JPEG TIFFs over HTTP and S3 (``imagecodecs`` installed): they read and
convert as tifffile reads them, and a region fetches only the strips or tiles it overlaps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from test_tiffcodecs_local import write

import ngio_async
from ngio_async.convert import TiffReader
from ngio_async.convert._tiffremote import RemoteTiffSource
from ngio_async.stores import InstrumentedStore, RangeByteRequest, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from servers import S3Server, StaticServer

    from ngio_async.stores import Buffer, ByteRequest

pytestmark = pytest.mark.anyio

#: a region of plane 1 (y 40:60, x 10:30): one 32 x 32 tile, or two 16-row strips
REGION = (slice(1, 2), slice(40, 60), slice(10, 30))


def _segments(path: Path, page: int) -> set[tuple[int, int]]:
    """``(start, end)`` of the tiles / strips of page ``page`` of ``path`` that
    :data:`REGION` overlaps."""
    with tifffile.TiffFile(path) as tif:
        p = tif.pages[page]
        assert isinstance(p, tifffile.TiffPage)
        y0, y1, x0, x1 = REGION[1].start, REGION[1].stop, REGION[2].start, REGION[2].stop
        if p.is_tiled:
            th, tw = p.tilelength, p.tilewidth
            across = -(-p.imagewidth // tw)
            cells = [
                ty * across + tx
                for ty in range(y0 // th, (y1 - 1) // th + 1)
                for tx in range(x0 // tw, (x1 - 1) // tw + 1)
            ]
        else:
            rows = p.rowsperstrip
            cells = list(range(y0 // rows, (y1 - 1) // rows + 1))
        return {
            (int(p.dataoffsets[c]), int(p.dataoffsets[c]) + int(p.databytecounts[c])) for c in cells
        }


def _pixel_bytes(path: Path) -> int:
    with tifffile.TiffFile(path) as tif:
        return sum(int(n) for page in tif.pages for n in page.databytecounts)


def _fetched(server: StaticServer) -> set[tuple[int, int]]:
    """``(start, end)`` of the ranged GETs seen since the last reset."""
    out = set()
    for seen in server.requests:
        if seen.range:
            start, end = seen.range.removeprefix("bytes=").split("-")
            out.add((int(start), int(end) + 1))
    return out


@pytest.mark.parametrize(
    ("kind", "layout"),
    [
        ("lzw", "strips"),
        ("lzw-predictor", "tiled"),
        ("zstd", "strips"),
        ("packbits", "tiled"),
        ("jpeg-grey", "strips"),
        ("jpeg-rgb", "tiled"),
    ],
)
async def test_a_region_over_http_fetches_only_its_strips_or_tiles(
    http_server: StaticServer, http_root: Path, tmp_path: Path, kind: str, layout: str
) -> None:
    src = http_root / "c.tif"
    ref = write(src, kind, layout, height=160, width=128)
    url = http_server.url + "c.tif"
    lead = (slice(None),) * (ref.ndim - 3)  # an RGB image's samples
    async with await TiffReader().open(url) as source:
        http_server.reset()
        np.testing.assert_array_equal(await source.read((*lead, *REGION)), ref[(*lead, *REGION)])
        needed = _segments(src, 1)
        fetched = _fetched(http_server)
        # the overlapped segments, each whole (adjacent ones in one request), nothing more
        assert sum(b - a for a, b in fetched) == sum(b - a for a, b in needed), (fetched, needed)
        assert all(any(a <= s and e <= b for a, b in fetched) for s, e in needed)
        assert sum(b - a for a, b in fetched) < _pixel_bytes(src) // 8
        np.testing.assert_array_equal(await source.read((slice(None),) * ref.ndim), ref)
    await ngio_async.convert(url, tmp_path / "c.ome.zarr")
    async with ngio_async.open_async(tmp_path / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), ref)


class _Ranges(InstrumentedStore):
    """Keeps the byte range of every GET."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.ranges: list[tuple[int, int]] = []

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        assert isinstance(byte_range, RangeByteRequest)
        self.ranges.append((byte_range.start, byte_range.end))
        return await super()._get_once(key, byte_range)

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        assert isinstance(byte_range, RangeByteRequest)  # (a read of the version first read)
        self.ranges.append((byte_range.start, byte_range.end))
        return super()._checked_attempts(key, byte_range, if_match)


@pytest.mark.parametrize(("kind", "layout"), [("lzw", "strips"), ("jpeg-rgb", "tiled")])
async def test_a_region_on_s3_fetches_only_its_strips_or_tiles(
    s3_server: S3Server, tmp_path: Path, kind: str, layout: str
) -> None:
    src = tmp_path / "c.tif"
    ref = write(src, kind, layout, height=160, width=128)
    base = s3_server.fresh_url()
    async with open_store(base, **s3_server.options()) as store:
        await store.put("c.tif", src.read_bytes())
    url = base + "/c.tif"
    lead = (slice(None),) * (ref.ndim - 3)
    async with await TiffReader().open(url, **s3_server.options()) as source:
        assert isinstance(source, RemoteTiffSource)
        source.store = counted = _Ranges(source.store)
        np.testing.assert_array_equal(await source.read((*lead, *REGION)), ref[(*lead, *REGION)])
        needed = _segments(src, 1)
        assert len(counted.ranges) == 1  # adjacent strips, or one tile: one request
        assert sum(b - a for a, b in counted.ranges) == sum(b - a for a, b in needed)
    await ngio_async.convert(url, tmp_path / "c.ome.zarr", src_options=s3_server.options())
    async with ngio_async.open_async(tmp_path / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), ref)


def test_a_fetched_strip_is_decoded_from_the_fetched_bytes_not_a_copy() -> None:
    # a remote strip decoded whole (LZW, ZSTD...) was copied out of the fetched range first:
    # a one-strip plane over HTTP held its compressed bytes twice beside the output
    from ngio_async.convert._tiffremote import RangeFile

    file = RangeFile("mem://x.tif", size=1000)
    fetched = bytearray(range(200))
    file.add(100, memoryview(fetched), pin=True)
    view = file.view_at(150, 100)
    assert bytes(view) == bytes(range(50, 150))
    assert np.shares_memory(np.frombuffer(view, np.uint8), np.frombuffer(fetched, np.uint8))
    file.add(300, b"\x01" * 50)  # bytes spread over two ranges: copied together
    assert bytes(file.view_at(290, 20)) == bytes(range(190, 200)) + b"\x01" * 10
