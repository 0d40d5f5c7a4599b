"""TIFFs compressed as microscopes and Fiji write them (LZW with and without predictor, ZSTD,
PackBits, JPEG grey and RGB; tiled and in strips) convert to exactly what tifffile reads, with
``imagecodecs`` installed (the ``tiff`` extra); without it they are refused at open, naming it.
A plane stored as one LZW strip is read with little more than its own size in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async
from ngio_async.convert import TiffReader

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

pytestmark = pytest.mark.anyio

#: name -> (tifffile.imwrite options, sample kind): "u2" / "u1" grey, "rgb" 8-bit RGB
KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "lzw": ({"compression": "lzw"}, "u2"),
    "lzw-predictor": ({"compression": "lzw", "predictor": True}, "u2"),
    "lzw-big-endian": ({"compression": "lzw", "predictor": True, "byteorder": ">"}, "u2"),
    "lzw-rgb": ({"compression": "lzw", "predictor": True}, "rgb"),
    "zstd": ({"compression": "zstd"}, "u2"),
    "packbits": ({"compression": "packbits"}, "u1"),
    "jpeg-grey": ({"compression": "jpeg"}, "u1"),
    "jpeg-rgb": ({"compression": "jpeg"}, "rgb"),
}
LAYOUTS: dict[str, dict[str, Any]] = {"tiled": {"tile": (32, 32)}, "strips": {"rowsperstrip": 16}}


def image(kind: str, planes: int = 3, height: int = 96, width: int = 80) -> NDArray[Any]:
    """A stack of smooth ramps with a little noise (compressible, as micrographs are):
    ``(planes, height, width)``, or ``(planes, height, width, 3)`` for ``"rgb"``."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:height, :width]
    ramp = (yy * 3 + xx * 2 + np.arange(planes)[:, None, None] * 40).astype(np.float64)
    if kind == "rgb":
        rgb = np.stack([ramp, ramp[:, ::-1], ramp[:, :, ::-1]], axis=-1)
        return ((rgb % 230) + rng.integers(0, 20, rgb.shape)).astype(np.uint8)
    top = 230 if kind == "u1" else 60000
    grey: NDArray[Any] = (ramp * 7) % top + rng.integers(0, 20, ramp.shape)
    return grey.astype(kind)


def write(path: Path, kind: str, layout: str, planes: int = 3, **shape: int) -> NDArray[Any]:
    """Write ``KINDS[kind]`` in ``LAYOUTS[layout]`` to ``path``; returns what tifffile reads of
    it, in NGFF axis order (an RGB stack's samples first: ``c, z, y, x``)."""
    options, samples = KINDS[kind]
    data = image(samples, planes, **shape)
    photometric = "rgb" if samples == "rgb" else "minisblack"
    tifffile.imwrite(path, data, photometric=photometric, **options, **LAYOUTS[layout])
    ref = tifffile.imread(path)
    return np.moveaxis(ref, -1, 0) if samples == "rgb" else ref


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_compressed_tiff_converts_as_tifffile_reads_it(
    tmp_path: Path, kind: str, layout: str
) -> None:
    src = tmp_path / f"{kind}.tif"
    ref = write(src, kind, layout)
    await ngio_async.convert(src, tmp_path / "out.ome.zarr")
    async with ngio_async.open_async(tmp_path / "out.ome.zarr") as ds:
        assert ds.shape == ref.shape
        np.testing.assert_array_equal(await ds.read(), ref)
    async with await TiffReader().open(src) as source:
        y, x = len(ref.shape) - 2, len(ref.shape) - 1
        regions = [
            (slice(1, 2), slice(17, 50), slice(5, 79)),  # inside strips and tiles
            (slice(0, 3), slice(16, 48), slice(0, 80)),  # whole strips, whole rows
            (slice(2, 3), slice(95, 96), slice(79, 80)),  # the last pixel
        ]
        for region in regions:
            full = (slice(None),) * (len(ref.shape) - 3) + region
            assert full[y].stop <= ref.shape[y] and full[x].stop <= ref.shape[x]
            np.testing.assert_array_equal(await source.read(full), ref[full])


@pytest.mark.parametrize("compression", ["jpeg2000", "webp", "lzma"])
async def test_other_codecs_convert_as_tifffile_reads_them(
    tmp_path: Path, compression: str
) -> None:
    data = image("rgb" if compression == "webp" else "u1", planes=2)
    src = tmp_path / "c.tif"
    tifffile.imwrite(src, data, compression=compression, rowsperstrip=32)
    ref = tifffile.imread(src)
    ref = np.moveaxis(ref, -1, 0) if compression == "webp" else ref
    await ngio_async.convert(src, tmp_path / "c.ome.zarr")
    async with ngio_async.open_async(tmp_path / "c.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), ref)


async def test_a_corrupt_zstd_strip_names_the_file(tmp_path: Path) -> None:
    src = tmp_path / "bad.tif"
    write(src, "zstd", "strips")
    with tifffile.TiffFile(src) as tif:
        offset, count = int(tif.pages[1].dataoffsets[2]), int(tif.pages[1].databytecounts[2])
    raw = bytearray(src.read_bytes())
    raw[offset : offset + count] = b"\x5a" * count
    src.write_bytes(bytes(raw))
    with pytest.raises(ngio_async.CodecError, match=r"bad\.tif"):
        await ngio_async.convert(src, tmp_path / "bad.ome.zarr")


@pytest.mark.parametrize("compression", ["zstd", "packbits", "lzw"])
async def test_a_last_strip_written_whole_reads_its_rows(tmp_path: Path, compression: str) -> None:
    # writers that compress the last strip with all its rows (past the image's end): ZSTD and
    # PackBits refuse to decode it into a buffer of the rows left (tifffile fails on it)
    import imagecodecs

    data = image("u1", planes=1, height=96, width=40)[0]
    src = tmp_path / "pad.tif"
    tifffile.imwrite(src, data, rowsperstrip=64, compression=compression, photometric=1)
    padded = np.zeros((64, 40), np.uint8)
    padded[:32] = data[64:]
    blob = getattr(imagecodecs, f"{compression}_encode")(padded.tobytes())
    with src.open("ab") as f:
        at = f.tell()
        f.write(blob)
    with tifffile.TiffFile(src, mode="r+") as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        page.tags["StripOffsets"].overwrite([page.dataoffsets[0], at])
        page.tags["StripByteCounts"].overwrite([page.databytecounts[0], len(blob)])
    async with await TiffReader().open(src) as source:
        np.testing.assert_array_equal(await source.read((slice(None), slice(None))), data)
        region = (slice(70, 96), slice(3, 9))
        np.testing.assert_array_equal(await source.read(region), data[region])


def _noise(shape: tuple[int, ...]) -> NDArray[Any]:
    """A 12-bit camera's noise (what LZW squeezes least: its strip is about the plane's size)."""
    return np.random.default_rng(7).integers(0, 4096, shape).astype(np.uint16)


@pytest.mark.parametrize("predictor", [False, True], ids=["plain", "predictor"])
async def test_a_one_strip_lzw_plane_is_read_with_its_compressed_bytes_beside_it(
    tmp_path: Path, predictor: bool
) -> None:
    # read through tifffile: the strip's compressed bytes, the decoded strip, zarr's copy of
    # it and the output were alive together (3.2x the plane); now the compressed strip and
    # the output the strip is decoded into (1.16x + 1x: noise does not compress)
    data = _noise((1024, 1024))
    src = tmp_path / "one.tif"
    tifffile.imwrite(
        src, data, rowsperstrip=1024, compression="lzw", predictor=predictor, photometric=1
    )
    with tifffile.TiffFile(src) as tif:
        (compressed,) = tif.pages.first.databytecounts
    async with await TiffReader().open(src) as source:
        await source.read((slice(0, 1), slice(0, 1)))  # the read path's first imports
        tracemalloc.start()
        try:
            out = await source.read((slice(None), slice(None)))
            _, whole = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            top = await source.read((slice(0, 256), slice(None)))
            _, quarter = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(top, data[:256])
    slack = 0.1 * data.nbytes
    assert whole <= data.nbytes + compressed + slack, f"{whole / data.nbytes:.2f}x the plane"
    # LZW stops where the region's last row is: the top quarter decodes a quarter of it
    assert quarter <= out.nbytes + compressed + 0.5 * data.nbytes + slack, (
        f"{quarter / data.nbytes:.2f}x the plane"
    )


_WITHOUT = """
import sys
sys.modules["imagecodecs"] = None  # as if not installed: importing it fails
import anyio, ngio_async, json

async def main():
    out = {}
    for name in sys.argv[1:]:
        try:
            await ngio_async.convert(name, name + ".ome.zarr")
            out[name] = "converted"
        except ngio_async.UnsupportedError as exc:
            out[name] = str(exc)
    print(json.dumps(out))

anyio.run(main)
"""


def test_without_imagecodecs_such_tiffs_are_refused_at_open_naming_it(tmp_path: Path) -> None:
    files = {}
    for kind in ("lzw", "zstd", "jpeg-grey"):
        files[kind] = tmp_path / f"{kind}.tif"
        write(files[kind], kind, "strips", planes=1, height=32, width=32)
    files["deflate"] = tmp_path / "deflate.tif"
    tifffile.imwrite(files["deflate"], image("u2", 1, 32, 32), compression="zlib")
    files["packbits"] = tmp_path / "packbits.tif"  # tifffile decodes PackBits itself
    write(files["packbits"], "packbits", "strips", planes=1, height=32, width=32)
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT, *(str(p) for p in files.values())],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(run.stdout)
    for kind in ("lzw", "zstd", "jpeg-grey"):
        text = result[str(files[kind])]
        assert f"{kind}.tif" in text and "imagecodecs" in text, text
        assert "ngio_async[tiff]" in text, text
        assert not (tmp_path / f"{kind}.tif.ome.zarr").exists()  # refused before writing
    assert result[str(files["deflate"])] == "converted"
    assert result[str(files["packbits"])] == "converted"
