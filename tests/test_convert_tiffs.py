"""TIFFs as labs have them, converted: truncated or broken files, missing codecs, several
series (multi-position OME-TIFF)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from tiffs import ramp

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = pytest.mark.anyio


def _truncated(path: Path, fraction: float) -> Path:
    """A 4-page tifffile stack (IFDs next to each page's pixels) cut to ``fraction``."""
    full = path.with_name("full.tif")
    tifffile.imwrite(full, ramp((4, 128, 128)), tile=(64, 64), photometric="minisblack")
    raw = full.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    return path


@pytest.mark.parametrize("fraction", [0.5, 0.99])
async def test_a_truncated_tiff_is_refused_before_the_destination_exists(
    tmp_path: Path, fraction: float
) -> None:
    # cut in the middle, tifffile finds the first pages only and read them as a smaller image
    # (a 4-page stack became one 2-D plane, converted "complete"); cut at the end, the last
    # page's pixels are missing (the conversion failed at its last tiles, output half-written)
    src = _truncated(tmp_path / "cut.tif", fraction)
    dst = tmp_path / "cut.ome.zarr"
    with pytest.raises(ngio_async.CodecError, match=r"cut\.tif is truncated"):
        await ngio_async.convert(src, dst)
    assert not dst.exists()


async def test_a_truncated_remote_tiff_is_a_codec_error(
    http_server: StaticServer, http_root: Path
) -> None:
    # the next IFD lies past the end: the server refuses the range (416), which is no store
    # failure but a broken file
    _truncated(http_root / "cut.tif", 0.5)
    with pytest.raises(ngio_async.CodecError, match=r"cut\.tif is truncated"):
        await ngio_async.open_async(http_server.url + "cut.tif")


async def test_an_intact_stack_still_converts(tmp_path: Path) -> None:
    data = ramp((4, 128, 128))
    tifffile.imwrite(tmp_path / "ok.tif", data, tile=(64, 64), photometric="minisblack")
    await ngio_async.convert(tmp_path / "ok.tif", tmp_path / "ok.ome.zarr")
    async with ngio_async.open_async(tmp_path / "ok.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data)


def _zstd_decodes() -> bool:
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("imagecodecs", "compression"))


@pytest.mark.skipif(_zstd_decodes(), reason="a ZSTD decoder is installed")
async def test_a_zstd_tiff_without_a_decoder_is_refused_at_open(tmp_path: Path) -> None:
    # tifffile has a ZSTD decoder that imports compression.zstd (Python 3.14) when called:
    # the conversion failed at its first tile ("No module named 'compression'", a CodecError)
    # after the destination was created
    src = tmp_path / "zstd.tif"
    tifffile.imwrite(src, ramp((2, 32, 32)), photometric="minisblack")
    with tifffile.TiffFile(src, mode="r+b") as tif:
        for page in tif.pages:
            page.tags["Compression"].overwrite(50000)  # as ZSTD writers mark their pages
    dst = tmp_path / "zstd.ome.zarr"
    with pytest.raises(ngio_async.UnsupportedError, match=r"ZSTD.*pip install imagecodecs"):
        await ngio_async.convert(src, dst)
    assert not dst.exists()
