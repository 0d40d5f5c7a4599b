"""TIFFs as labs have them, converted: truncated or broken files, missing codecs, several
series (multi-position OME-TIFF)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import tifffile
from tiffs import ramp

import ngio_async
from ngio_async.convert import TiffSource

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
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


def _positions(path: Path) -> list[NDArray[Any]]:
    """A 3-position OME-TIFF (as multi-position acquisitions write them): different axes,
    shapes, pixel sizes and channel names per position."""
    images = [ramp((2, 40, 50)), ramp((3, 4, 60, 70))[::-1].copy(), ramp((30, 20), "uint8")]
    metadata: list[dict[str, Any]] = [
        {
            "axes": "CYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "Channel": {"Name": ["A", "B"]},
        },
        {"axes": "ZCYX", "PhysicalSizeX": 0.7, "PhysicalSizeY": 0.7, "PhysicalSizeZ": 3.0},
        {"axes": "YX", "PhysicalSizeX": 0.9, "PhysicalSizeY": 0.9},
    ]
    with tifffile.TiffWriter(path, ome=True) as tif:
        for i, (data, meta) in enumerate(zip(images, metadata, strict=True)):
            tif.write(data, metadata={**meta, "Name": f"pos{i}"}, photometric="minisblack")
    return images


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_every_position_of_a_multi_position_ome_tiff_converts(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    # only the first position was converted (series 0 of 3: two thirds of the data dropped,
    # and the output looked complete)
    from ngio_async.cli._validate import validate_hierarchy
    from ngio_async.convert import is_complete

    images = _positions(tmp_path / "multi.ome.tif")
    dst = tmp_path / "multi.ome.zarr"
    result = await ngio_async.convert(tmp_path / "multi.ome.tif", dst, ngff_version=version)
    assert result.series == ("0", "1", "2")
    assert result.shape == (2, 40, 50)  # the first one's
    expected = [images[0], images[1].transpose(1, 0, 2, 3), images[2]]  # NGFF axis order
    for i, data in enumerate(expected):
        async with ngio_async.open_async(dst / str(i)) as ds:
            np.testing.assert_array_equal(await ds.read(), data)
            assert ds.metadata.ome.multiscales[0].name == f"pos{i}"  # type: ignore[index]
            assert ds.metadata.spatial_calibration[0]["x"].scale == [0.5, 0.7, 0.9][i]
    async with ngio_async.open_async(dst) as ds:  # a container opens at its first series
        assert ds.shape == (2, 40, 50)
        assert [c.label for c in ds.metadata.channels] == ["A", "B"]
    assert [p.line() for p in (await validate_hierarchy(str(dst))).errors] == []
    assert await is_complete(dst)
    xml = (dst / "OME" / "METADATA.ome.xml").read_text()
    assert xml.count("MetadataOnly") == 3 and "TiffData" not in xml


async def test_one_chosen_position_converts_as_an_image(tmp_path: Path) -> None:
    images = _positions(tmp_path / "multi.ome.tif")
    dst = tmp_path / "pos2.ome.zarr"
    result = await ngio_async.convert(tmp_path / "multi.ome.tif", dst, src_options={"series": 2})
    assert result.series == ()
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), images[2])
    assert not (dst / "OME").exists()


async def test_the_name_of_a_single_channel_is_kept(
    tmp_path: Path, http_server: StaticServer, http_root: Path
) -> None:
    # tifffile squeezes a channel axis of one channel away: its OME-XML name ("DAPI") was lost
    data = ramp((3, 40, 50))
    src = http_root / "dapi.ome.tif"
    tifffile.imwrite(
        src, data, ome=True, tile=(16, 16), metadata={"axes": "ZYX", "Channel": {"Name": ["DAPI"]}}
    )
    await ngio_async.convert(src, tmp_path / "dapi.ome.zarr")
    async with ngio_async.open_async(tmp_path / "dapi.ome.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        assert [c.label for c in ds.metadata.channels] == ["DAPI"]
        np.testing.assert_array_equal(await ds.read(), data[None])
    async with ngio_async.open_async(http_server.url + "dapi.ome.tif") as ds:  # ranged reads
        np.testing.assert_array_equal(await ds.read(c=0, z=1, y=slice(5, 30)), data[1, 5:30])
    unnamed = tmp_path / "plain.ome.tif"
    tifffile.imwrite(unnamed, data, ome=True, metadata={"axes": "ZYX"})
    async with ngio_async.open_async(unnamed) as ds:  # no name to keep: no channel axis
        assert ds.axes == ("z", "y", "x")


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="Linux: bytes read per process")
async def test_a_region_of_an_uncompressed_strip_reads_only_its_bytes(tmp_path: Path) -> None:
    # ImageJ writes each plane as one uncompressed strip; tifffile's zarr view read the whole
    # strip for any region of it (a 1 GiB plane converted in 32 MiB shards: 2.4 GB resident,
    # every shard re-reading the plane)
    data = ramp((2048, 2048))
    src = tmp_path / "ij.tif"
    tifffile.imwrite(src, data, imagej=True)
    with tifffile.TiffFile(src) as tif:
        assert len(tif.pages[0].dataoffsets) == 1  # one 8 MiB strip
    async with TiffSource(src) as source:
        before = _rchar()
        part = await source.read((slice(1000, 1064), slice(500, 564)))
        assert _rchar() - before < 256 * 1024
        np.testing.assert_array_equal(part, data[1000:1064, 500:564])


@pytest.mark.parametrize(
    "kind",
    [
        "stack",
        "rgb",
        "planar-rgb",
        "big-endian",
        "imagej-tzcyx",
        "ome-tczyx",
        "shifted",
        "pages-apart",
    ],
)
async def test_uncompressed_regions_read_from_the_file_are_exact(tmp_path: Path, kind: str) -> None:
    src = tmp_path / f"{kind}.tif"
    if kind == "stack":
        tifffile.imwrite(src, ramp((3, 37, 41)), photometric="minisblack")
    elif kind == "rgb":
        tifffile.imwrite(src, ramp((37, 41, 3), "uint8"), photometric="rgb")
    elif kind == "planar-rgb":
        tifffile.imwrite(
            src, ramp((3, 37, 41), "uint8"), photometric="rgb", planarconfig="separate"
        )
    elif kind == "big-endian":
        tifffile.imwrite(src, ramp((3, 37, 41), ">u2"), byteorder=">", photometric="minisblack")
    elif kind == "imagej-tzcyx":
        tifffile.imwrite(src, ramp((2, 3, 2, 37, 41)), imagej=True, metadata={"axes": "TZCYX"})
    elif kind == "ome-tczyx":
        tifffile.imwrite(src, ramp((2, 2, 3, 37, 41)), ome=True, metadata={"axes": "TCZYX"})
    elif kind == "pages-apart":  # each page's IFD between the pages' pixels
        with tifffile.TiffWriter(src, bigtiff=True) as tif:
            for plane in ramp((4, 37, 41)):
                tif.write(plane, photometric="minisblack", metadata=None, description="p")
    else:  # a description before the pixels: the data does not start at the first page
        tifffile.imwrite(
            src, ramp((3, 37, 41)), photometric="minisblack", description="x" * 1001, metadata=None
        )
    async with TiffSource(src) as source:
        direct = source._direct[0]  # read from the file, not through the zarr view
        assert direct is not None
        assert (direct[3] > 0) == (kind == "pages-apart")  # located page by page
        whole = await source.read(tuple(slice(None) for _ in source.shape))
        rng = np.random.default_rng(0)
        for _ in range(20):
            region = []
            for n in source.shape:
                a = int(rng.integers(0, n))
                region.append(slice(a, int(rng.integers(a + 1, n + 1))))
            got = await source.read(tuple(region))
            np.testing.assert_array_equal(got, whole[tuple(region)])
        ref = tifffile.imread(src)
    assert whole.dtype.isnative
    assert sorted(whole.ravel().tolist()) == sorted(ref.ravel().tolist())


async def test_tiles_of_a_one_strip_plane_are_no_whole_plane(tmp_path: Path) -> None:
    # the dataset's chunks were the TIFF's strips: ds.tiles() over an ImageJ plane yielded
    # the whole plane as one tile (a 1 GiB tile for a 1 GiB image)
    data = ramp((1, 2048, 1500))
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True)
    async with ngio_async.open_async(tmp_path / "ij.tif") as ds:
        assert ds.levels[0].chunks == (1024, 1024)
        seen = np.zeros(data.shape[1:], int)
        async for tile in ds.tiles():
            assert tile.data.nbytes <= 1024 * 1024 * 2
            np.testing.assert_array_equal(tile.data, data[0][tile.region])
            seen[tile.region] += 1
        assert (seen == 1).all()


async def test_every_image_tifffile_wrote_to_one_file_converts(tmp_path: Path) -> None:
    # two images written to one file (tifffile's "shaped" series): the second was dropped
    first, second = ramp((3, 40, 50)), ramp((60, 70), "uint8")
    with tifffile.TiffWriter(tmp_path / "two.tif") as tif:
        tif.write(first, photometric="minisblack")
        tif.write(second, photometric="minisblack")
    dst = tmp_path / "two.ome.zarr"
    result = await ngio_async.convert(tmp_path / "two.tif", dst)
    assert result.series == ("0", "1")
    for i, data in enumerate((first, second)):
        async with ngio_async.open_async(dst / str(i)) as ds:
            np.testing.assert_array_equal(await ds.read(), data)
    assert not (dst / "OME" / "METADATA.ome.xml").exists()  # no OME-XML to keep
