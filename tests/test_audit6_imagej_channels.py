"""An ImageJ hyperstack's channels keep their display settings: the color of each channel's
LUT and its display range (``Ranges``), as Fiji saved them; they were dropped (no ``omero``),
and a viewer showed a composite in default colors over the dtype's whole range."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _lut(r: bool, g: bool, b: bool) -> np.ndarray:
    ramp = np.arange(256, dtype=np.uint8)
    return np.stack([ramp * r, ramp * g, ramp * b]).astype(np.uint8)


def test_luts_and_ranges_become_colors_and_windows(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 4000, (3, 2, 40, 50), dtype=np.uint16)
    src = tmp_path / "composite.tif"
    tifffile.imwrite(
        src,
        data,
        imagej=True,
        metadata={
            "axes": "ZCYX",
            "mode": "composite",
            "Ranges": (10.0, 900.0, 5.0, 3000.0),
            "LUTs": [_lut(False, True, False), _lut(True, False, True)],
        },
    )
    for version in ("0.4", "0.5"):
        dst = tmp_path / f"out{version}.zarr"
        ngio_async.convert_sync(src, dst, ngff_version=version)
        with ngio_async.open(dst) as ds:
            assert ds.axes == ("c", "z", "y", "x")
            assert np.array_equal(ds[...], data.transpose(1, 0, 2, 3))
            channels = ds.metadata.channels
            assert [c.color for c in channels] == ["00FF00", "FF00FF"]
            assert [c.window for c in channels] == [(10.0, 900.0), (5.0, 3000.0)]
        with ngio_async.open(src) as tif:  # the TIFF read directly says the same
            assert [c.color for c in tif.metadata.channels] == ["00FF00", "FF00FF"]


def test_without_display_settings_the_windows_follow_the_data(tmp_path: Path) -> None:
    data = np.zeros((2, 40, 50), dtype=np.uint16)
    data[0, 0, 0], data[1, 0, 0] = 100, 2000
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, data, imagej=True, metadata={"axes": "CYX"})
    ngio_async.convert_sync(src, tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        assert [c.window for c in ds.metadata.channels] == [(0.0, 100.0), (0.0, 2000.0)]


def test_settings_that_do_not_fit_the_channels_are_ignored(tmp_path: Path) -> None:
    data = np.ones((2, 40, 50), dtype=np.uint16)
    data[1] = 7
    src = tmp_path / "odd.tif"
    tifffile.imwrite(
        src,
        data,
        imagej=True,
        metadata={"axes": "CYX", "Ranges": (1.0, 2.0, 3.0), "LUTs": [_lut(True, False, False)]},
    )
    ngio_async.convert_sync(src, tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        assert np.array_equal(ds[...], data)
        assert len(ds.metadata.channels) == 2
