"""ImageJ TIFFs as Fiji saves them, converted: a grey image's display range (``min`` /
``max``), a composite's ``Ranges`` and LUTs in every ``mode``, the calibration units ImageJ
writes, ``spacing`` and ``finterval``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _counts(shape: tuple[int, ...] = (24, 32), dtype: Any = np.uint16) -> np.ndarray[Any, Any]:
    return (np.arange(int(np.prod(shape))).reshape(shape) % 900 + 3).astype(dtype)


def _windows(ds: Any) -> list[tuple[float, float] | None]:
    return [c.window for c in ds.metadata.channels]


@pytest.mark.parametrize(
    ("axes", "dtype"), [("YX", np.uint16), ("ZYX", np.uint16), ("YX", np.float32)]
)
def test_a_grey_imagej_image_keeps_its_display_range(tmp_path: Path, axes: str, dtype: Any) -> None:
    # Fiji writes min/max for every 16-bit and 32-bit image: the display range it was shown
    # with. A grey image (no LUT) lost it (shown over its pixels' range instead)
    data = _counts((3, 24, 32) if axes == "ZYX" else (24, 32), dtype)
    src = tmp_path / "grey.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": axes, "min": 5.0, "max": 400.0})
    ngio_async.convert_sync(src, tmp_path / "grey.zarr")
    with ngio_async.open(tmp_path / "grey.zarr") as ds:
        assert ds.axes == ("c", *axes.lower())  # a channel axis of one carries the display
        np.testing.assert_array_equal(ds[...], data[None])
        assert _windows(ds) == [(5.0, 400.0)]
        assert [c.color for c in ds.metadata.channels] == ["FFFFFF"]
    with ngio_async.open(src) as tif:  # the TIFF read directly says the same
        assert tif.axes == ("c", *axes.lower())
        assert _windows(tif) == [(5.0, 400.0)]


def test_an_imagej_display_range_that_is_no_range_is_ignored(tmp_path: Path) -> None:
    src = tmp_path / "flat.tif"
    tifffile.imwrite(src, _counts(), imagej=True, metadata={"min": 7.0, "max": 7.0})
    ngio_async.convert_sync(src, tmp_path / "flat.zarr")
    with ngio_async.open(tmp_path / "flat.zarr") as ds:
        assert ds.axes == ("y", "x")


def _lut(rgb: tuple[int, int, int]) -> np.ndarray[Any, Any]:
    return np.round(np.outer(rgb, np.linspace(0.0, 1.0, 256))).astype(np.uint8)


@pytest.mark.parametrize("mode", ["composite", "color", "grayscale"])
@pytest.mark.parametrize("luts", [True, False])
def test_a_hyperstack_keeps_its_ranges_and_luts_in_every_mode(
    tmp_path: Path, mode: str, luts: bool
) -> None:
    data = _counts((2, 3, 24, 32))  # z, c
    metadata: dict[str, Any] = {
        "axes": "ZCYX",
        "mode": mode,
        "Ranges": (1.0, 100.0, 2.0, 200.0, 3.0, 300.0),
    }
    if luts:
        metadata["LUTs"] = [_lut((0, 255, 0)), _lut((255, 0, 255)), _lut((255, 255, 255))]
    src = tmp_path / "stack.tif"
    tifffile.imwrite(src, data, imagej=True, metadata=metadata)
    ngio_async.convert_sync(src, tmp_path / "stack.zarr")
    with ngio_async.open(tmp_path / "stack.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(ds[...], data.transpose(1, 0, 2, 3))
        assert _windows(ds) == [(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)]
        if luts:
            assert [c.color for c in ds.metadata.channels] == ["00FF00", "FF00FF", "FFFFFF"]


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("micron", "micrometer"),
        ("um", "micrometer"),
        ("\\u00B5m", "micrometer"),  # as ImageJ escapes the micro sign in its description
        ("nm", "nanometer"),
        ("pixel", None),  # uncalibrated
    ],
)
def test_imagej_calibration_units(tmp_path: Path, unit: str, expected: str | None) -> None:
    data = _counts((2, 3, 24, 32))
    src = tmp_path / "cal.tif"
    tifffile.imwrite(
        src,
        data,
        imagej=True,
        resolution=(1 / 0.5, 1 / 0.25),  # x, y: pixels per unit
        metadata={"axes": "TZYX", "spacing": 2.0, "finterval": 1.5, "unit": unit},
    )
    ngio_async.convert_sync(src, tmp_path / "cal.zarr")
    with ngio_async.open(tmp_path / "cal.zarr") as ds:
        assert ds.axes == ("t", "z", "y", "x")
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (1.5, 2.0, 0.25, 0.5)
        assert [a.unit for a in cal.axes] == ["second", expected, expected, expected]


def test_an_8_bit_lut_image_keeps_its_palette_color_and_display_range(tmp_path: Path) -> None:
    # Fiji saves an 8-bit image with a LUT as a palette TIFF, its display range as min/max:
    # the range must not turn the palette's green into grey
    green = np.zeros((3, 256), np.uint16)
    green[1] = np.arange(256) * 257
    data = _counts(dtype=np.uint8)
    src = tmp_path / "lut.tif"
    tifffile.imwrite(src, data, imagej=True, colormap=green, metadata={"min": 10.0, "max": 150.0})
    ngio_async.convert_sync(src, tmp_path / "lut.zarr")
    with ngio_async.open(tmp_path / "lut.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(ds[...], data[None])
        assert [c.color for c in ds.metadata.channels] == ["00FF00"]
        assert _windows(ds) == [(10.0, 150.0)]


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8"])
def test_the_imagej_unit_counts_the_resolution_whatever_the_resolution_unit(
    tmp_path: Path, encoding: str
) -> None:
    # ImageJ-format TIFFs from other writers keep the TIFF default ResolutionUnit (inch) beside
    # 'unit=µm': 0.25 um pixels became 6350 um (as inches). ImageJ reads the resolution in its
    # own unit, and so does the conversion
    data = _counts((2, 8, 10))
    description = "ImageJ=1.54f\nimages=2\nslices=2\nunit=µm\nspacing=2.5\nloop=false\n"
    src = tmp_path / "ij.tif"
    tifffile.imwrite(
        src,
        data,
        description=description.encode(encoding),
        metadata=None,
        resolution=(2.0, 4.0),  # x, y pixels per unit
        resolutionunit="INCH",
        photometric="minisblack",
    )
    ngio_async.convert_sync(src, tmp_path / "ij.zarr")
    with ngio_async.open(tmp_path / "ij.zarr") as ds:
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (2.5, 0.25, 0.5)
        assert [a.unit for a in cal.axes] == ["micrometer"] * 3


def test_a_one_channel_composite_keeps_its_ranges(tmp_path: Path) -> None:
    # a composite of one grey channel saves its display range as Ranges, not min/max
    data = _counts((3, 24, 32))
    src = tmp_path / "one.tif"
    metadata = {"axes": "ZYX", "mode": "composite", "Ranges": (5.0, 800.0)}
    tifffile.imwrite(src, data, imagej=True, metadata=metadata)
    ngio_async.convert_sync(src, tmp_path / "one.zarr")
    with ngio_async.open(tmp_path / "one.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(ds[...], data[None])
        assert _windows(ds) == [(5.0, 800.0)]
        assert [c.color for c in ds.metadata.channels] == ["FFFFFF"]
