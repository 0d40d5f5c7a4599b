"""TIFF layouts and sample formats as files hold them, converted and compared with what
tifffile reads: BigTIFF, tiles and strips, planar RGB, bilevel, float16/32/64 and signed ints
with their predictors, JPEG-compressed YCbCr (whole-slide images) as RGB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from tiffs import write_lsm, write_qptiff, write_svs

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

_RNG = np.random.default_rng(7)
_U16 = _RNG.integers(0, 60000, (3, 40, 50), dtype=np.uint16)
_RGB = _RNG.integers(0, 255, (40, 50, 3), dtype=np.uint8)
_F16 = _RNG.normal(size=(2, 40, 50)).astype(np.float16)
_F64 = _RNG.normal(size=(2, 40, 50))
_I16 = _RNG.integers(-30000, 30000, (2, 40, 50), dtype=np.int16)
_I32 = _RNG.integers(-(2**30), 2**30, (2, 40, 50), dtype=np.int32)
_BITS = _RNG.integers(0, 2, (40, 50)).astype(bool)

CASES: dict[str, tuple[np.ndarray[Any, Any], dict[str, Any]]] = {
    "bigtiff-tiled-zlib": (_U16, {"bigtiff": True, "tile": (16, 16), "compression": "zlib"}),
    "stripped-lzw": (_U16, {"rowsperstrip": 7, "compression": "lzw"}),
    "rgb-contig-predictor2": (_RGB, {"photometric": "rgb", "compression": "zlib", "predictor": 2}),
    "rgb-planar-separate-tiled": (
        _RGB.transpose(2, 0, 1).copy(),
        {"photometric": "rgb", "planarconfig": "separate", "tile": (16, 16)},
    ),
    "bilevel": (_BITS, {}),
    "float16-predictor3": (_F16, {"compression": "zlib", "predictor": 3, "rowsperstrip": 9}),
    "float64-tiled-predictor3": (_F64, {"compression": "zlib", "predictor": 3, "tile": (16, 16)}),
    "int16-predictor2-big-endian": (
        _I16,
        {"compression": "lzw", "predictor": 2, "byteorder": ">", "rowsperstrip": 9},
    ),
    "int32-predictor2": (_I32, {"compression": "zlib", "predictor": 2}),
}


def _as_tifffile_reads(path: Path) -> tuple[np.ndarray[Any, Any], str]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.asarray(), series.axes


@pytest.mark.parametrize("case", list(CASES))
def test_the_converted_pixels_are_what_tifffile_reads(tmp_path: Path, case: str) -> None:
    data, options = CASES[case]
    options = {"photometric": "minisblack", **options}
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, data, metadata=None, **options)
    expected, axes = _as_tifffile_reads(src)
    if axes.endswith("S"):  # samples last in the file: the channel axis first in NGFF
        expected = np.moveaxis(expected, -1, 0)
    ngio_async.convert_sync(src, tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        got = ds[...]
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    with ngio_async.open(src) as tif:  # the TIFF read directly
        np.testing.assert_array_equal(tif[...], expected)


def test_jpeg_ycbcr_reads_as_rgb_and_its_channels_say_so(tmp_path: Path) -> None:
    # whole-slide images store RGB as JPEG in YCbCr: the decoder gives RGB, but the channels
    # were left grey and windowless (photometric was not 'RGB'), a photo shown as 3 grey planes
    pytest.importorskip("imagecodecs")
    src = tmp_path / "slide.tif"
    tifffile.imwrite(src, _RGB, photometric="rgb", compression="jpeg", tile=(16, 16))
    with tifffile.TiffFile(src) as tif:
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.YCBCR  # the premise
    expected = np.moveaxis(_as_tifffile_reads(src)[0], -1, 0)
    ngio_async.convert_sync(src, tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        np.testing.assert_array_equal(ds[...], expected)
        channels = ds.metadata.channels
        assert [c.label for c in channels] == ["red", "green", "blue"]
        assert [c.color for c in channels] == ["FF0000", "00FF00", "0000FF"]
        assert [c.window for c in channels] == [(0.0, 255.0)] * 3


def test_an_axis_ngff_has_no_room_for_is_refused_naming_the_file_and_axes(
    tmp_path: Path,
) -> None:
    # a FLIM stack (a lifetime axis beside t, c, z): the error named neither the file
    src = tmp_path / "flim.ome.tif"
    tifffile.imwrite(src, np.zeros((2, 2, 2, 2, 8, 10), np.uint16), metadata={"axes": "TCZHYX"})
    with pytest.raises(ngio_async.UnsupportedError) as info:
        ngio_async.convert_sync(src, tmp_path / "flim.zarr")
    assert str(info.value).startswith(f"{src}: TIFF axes TCZHYX (2, 2, 2, 2, 8, 10): ")
    assert "'H'" in str(info.value)
    assert not (tmp_path / "flim.zarr").exists()


@pytest.mark.parametrize("name", ["slide.svs", "slide.tif"])
def test_an_aperio_svs_converts_with_its_pixel_size(tmp_path: Path, name: str) -> None:
    # '.svs' had no reader, and the slide's MPP (in its image description, no resolution
    # tags) was lost: a whole-slide image without a pixel size
    rgb = _RNG.integers(0, 255, (256, 320, 3), dtype=np.uint8)
    src = write_svs(tmp_path / name, rgb, mpp=0.499)
    result = ngio_async.convert_sync(src, tmp_path / "slide.zarr")
    assert result.series == ()  # the baseline alone: no label, macro or thumbnail
    with ngio_async.open(tmp_path / "slide.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(ds[...], np.moveaxis(rgb, -1, 0))
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (1.0, 0.499, 0.499)
        assert [a.unit for a in cal.axes] == [None, "micrometer", "micrometer"]
        assert [c.color for c in ds.metadata.channels] == ["FF0000", "00FF00", "0000FF"]


def test_an_akoya_qptiff_keeps_its_channel_names_colors_and_pixel_size(tmp_path: Path) -> None:
    # '.qptiff' had no reader; its channels (each page's XML) were unnamed, default-colored
    planes = _RNG.integers(0, 4000, (3, 64, 96), dtype=np.uint16)
    names, colors = ["DAPI", "CD8", "PanCK"], ["0,0,255", "255,0,0", "0,255,0"]
    src = write_qptiff(tmp_path / "tissue.qptiff", planes, names, colors, per_cm=20000.0)
    ngio_async.convert_sync(src, tmp_path / "tissue.zarr")
    with ngio_async.open(tmp_path / "tissue.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(ds[...], planes)
        assert [c.label for c in ds.metadata.channels] == names
        assert [c.color for c in ds.metadata.channels] == ["0000FF", "FF0000", "00FF00"]
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 0.5, 0.5)


def test_a_zeiss_lsm_converts_with_its_voxel_size(tmp_path: Path) -> None:
    # '.lsm' had no reader (and its voxel size, in CZ_LSMINFO, no reading)
    stack = _RNG.integers(0, 4000, (3, 32, 40), dtype=np.uint16)
    src = write_lsm(tmp_path / "cells.lsm", stack, voxel=(1.5e-6, 0.2e-6, 0.2e-6))
    result = ngio_async.convert_sync(src, tmp_path / "cells.zarr")
    assert result.series == ()  # the image alone, not its thumbnails
    with ngio_async.open(tmp_path / "cells.zarr") as ds:
        assert ds.axes == ("z", "y", "x")
        np.testing.assert_array_equal(ds[...], stack)
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (1.5, 0.2, 0.2)
        assert [a.unit for a in cal.axes] == ["micrometer"] * 3
