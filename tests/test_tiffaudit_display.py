"""TIFFs whose stored values are not what a viewer should show as they are: MinIsWhite
(0 is white) and palette (a colormap over the values) TIFFs, converted."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _pixels() -> np.ndarray[Any, np.dtype[np.uint8]]:
    return (np.arange(48 * 64).reshape(48, 64) % 200 + 20).astype(np.uint8)


def _attrs(path: Path) -> dict[str, Any]:
    root = json.loads((path / "zarr.json").read_text())
    return dict(root["attributes"]["ome"])


async def test_a_minis_white_tiff_keeps_its_values_and_says_they_show_inverted(
    tmp_path: Path,
) -> None:
    # converted raw with no word about it: 0 (white in the TIFF) shown black, the picture a
    # negative of what any TIFF viewer shows
    data = _pixels()
    tifffile.imwrite(tmp_path / "mw.tif", data, photometric="miniswhite")
    await ngio_async.convert(tmp_path / "mw.tif", tmp_path / "mw.ome.zarr")
    async with ngio_async.open_async(tmp_path / "mw.ome.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(await ds.read(), data[None])  # the stored values
    (channel,) = _attrs(tmp_path / "mw.ome.zarr")["omero"]["channels"]
    assert channel["inverted"] is True
    assert channel["color"] == "FFFFFF"
    assert (channel["window"]["start"], channel["window"]["end"]) == (20, 219)


async def test_a_minis_white_stack_marks_every_channel_inverted(tmp_path: Path) -> None:
    data = np.stack([_pixels(), 255 - _pixels()])
    tifffile.imwrite(tmp_path / "mw.tif", data, photometric="miniswhite", metadata={"axes": "CYX"})
    await ngio_async.convert(tmp_path / "mw.tif", tmp_path / "mw.ome.zarr")
    channels = _attrs(tmp_path / "mw.ome.zarr")["omero"]["channels"]
    assert [c["inverted"] for c in channels] == [True, True]


async def test_a_minis_black_tiff_has_no_inverted_channel(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "mb.tif", _pixels(), photometric="minisblack")
    await ngio_async.convert(tmp_path / "mb.tif", tmp_path / "mb.ome.zarr")
    assert "omero" not in _attrs(tmp_path / "mb.ome.zarr")


def _ramp_palette(rgb: tuple[int, int, int], reverse: bool = False) -> np.ndarray[Any, Any]:
    steps = np.linspace(0.0, 1.0, 256)[::-1] if reverse else np.linspace(0.0, 1.0, 256)
    return np.round(np.outer(np.array(rgb) * 257, steps)).astype(np.uint16)


@pytest.mark.parametrize(
    ("palette", "color", "inverted"),
    [
        (_ramp_palette((0, 255, 0)), "00FF00", None),  # ImageJ's "Green" LUT
        (_ramp_palette((255, 0, 255)), "FF00FF", None),
        (_ramp_palette((255, 255, 255), reverse=True), "FFFFFF", True),  # "Inverted LUT"
    ],
)
async def test_a_palette_of_one_color_becomes_the_channel_color(
    tmp_path: Path, palette: np.ndarray[Any, Any], color: str, inverted: bool | None
) -> None:
    # ImageJ saves an 8-bit image with a LUT as a palette TIFF: the values are intensities,
    # the palette their display; it was dropped (a green channel shown grey)
    data = _pixels()
    tifffile.imwrite(tmp_path / "p.tif", data, photometric="palette", colormap=palette)
    await ngio_async.convert(tmp_path / "p.tif", tmp_path / "p.ome.zarr")
    async with ngio_async.open_async(tmp_path / "p.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data[None])  # the indices kept
    (channel,) = _attrs(tmp_path / "p.ome.zarr")["omero"]["channels"]
    assert channel["color"] == color
    assert channel.get("inverted") is inverted
    # the palette's whole ramp: values shown as the palette showed them
    assert (channel["window"]["start"], channel["window"]["end"]) == (0, 255)


async def test_a_palette_of_several_colors_keeps_its_values_and_its_brightest_color(
    tmp_path: Path,
) -> None:
    # a "Fire"-like palette has no one color: the values stay (they are the measurement),
    # the channel takes the palette's brightest entry, as ImageJ LUTs in metadata do
    palette = np.zeros((3, 256), np.uint16)
    palette[0] = np.minimum(np.arange(256) * 2, 255) * 257
    palette[1] = np.maximum(np.arange(256) * 2 - 255, 0) * 257
    palette[2, 200:] = 40 * 257
    data = _pixels()
    tifffile.imwrite(tmp_path / "f.tif", data, photometric="palette", colormap=palette)
    await ngio_async.convert(tmp_path / "f.tif", tmp_path / "f.ome.zarr")
    async with ngio_async.open_async(tmp_path / "f.ome.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data[None])
    (channel,) = _attrs(tmp_path / "f.ome.zarr")["omero"]["channels"]
    assert channel["color"] == "FFFF28"
    assert (channel["window"]["start"], channel["window"]["end"]) == (0, 255)


async def test_the_tiff_dataset_shows_the_same_channels(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "mw.tif", _pixels(), photometric="miniswhite")
    async with ngio_async.open_async(tmp_path / "mw.tif") as ds:
        omero = ds.metadata.ome.omero
        assert omero is not None
        assert [c.inverted for c in omero.channels] == [True]
        assert ds.shape == (1, 48, 64)


def _lut(rgb: tuple[int, int, int], reverse: bool = False) -> np.ndarray[Any, Any]:
    """An ImageJ LUT (3 x 256, 8-bit) ramping from black to ``rgb`` (or back)."""
    steps = np.linspace(0.0, 1.0, 256)[::-1] if reverse else np.linspace(0.0, 1.0, 256)
    return np.round(np.outer(rgb, steps)).astype(np.uint8)


def _counts() -> np.ndarray[Any, np.dtype[np.uint16]]:
    return (np.arange(48 * 64).reshape(48, 64) % 900 + 3).astype(np.uint16)


@pytest.mark.parametrize(
    ("lut", "color", "inverted"),
    [(_lut((0, 255, 0)), "00FF00", None), (_lut((255, 255, 255), reverse=True), "FFFFFF", True)],
)
async def test_a_one_channel_imagej_image_keeps_its_lut_and_display_range(
    tmp_path: Path, lut: np.ndarray[Any, Any], color: str, inverted: bool | None
) -> None:
    # a 16-bit Fiji image with a Green (or inverted) LUT and a display range: both dropped,
    # shown grey over the pixels' range
    tifffile.imwrite(
        tmp_path / "ij.tif",
        _counts(),
        imagej=True,
        metadata={"LUTs": [lut], "min": 5.0, "max": 800.0},
    )
    await ngio_async.convert(tmp_path / "ij.tif", tmp_path / "ij.ome.zarr")
    async with ngio_async.open_async(tmp_path / "ij.ome.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(await ds.read(), _counts()[None])
    (channel,) = _attrs(tmp_path / "ij.ome.zarr")["omero"]["channels"]
    assert channel["color"] == color
    assert channel.get("inverted") is inverted
    assert (channel["window"]["start"], channel["window"]["end"]) == (5, 800)


async def test_a_grey_one_channel_imagej_image_without_a_display_range_stays_two_dimensional(
    tmp_path: Path,
) -> None:
    # with a display range it keeps it on a channel axis of one (tests/test_tiff2_imagej.py)
    tifffile.imwrite(
        tmp_path / "ij.tif", _counts(), imagej=True, metadata={"LUTs": [_lut((255, 255, 255))]}
    )
    await ngio_async.convert(tmp_path / "ij.tif", tmp_path / "ij.ome.zarr")
    async with ngio_async.open_async(tmp_path / "ij.ome.zarr") as ds:
        assert ds.axes == ("y", "x")


async def test_an_inverted_lut_of_a_composite_channel_is_kept(tmp_path: Path) -> None:
    # its last LUT entry is black: the channel got no color and no word of the inversion
    data = np.stack([_counts(), _counts() + 1])
    tifffile.imwrite(
        tmp_path / "c.tif",
        data,
        imagej=True,
        metadata={
            "axes": "CYX",
            "mode": "composite",
            "LUTs": [_lut((255, 0, 255)), _lut((255, 255, 255), reverse=True)],
        },
    )
    await ngio_async.convert(tmp_path / "c.tif", tmp_path / "c.ome.zarr")
    channels = _attrs(tmp_path / "c.ome.zarr")["omero"]["channels"]
    assert [c["color"] for c in channels] == ["FF00FF", "FFFFFF"]
    assert [c.get("inverted") for c in channels] == [None, True]
