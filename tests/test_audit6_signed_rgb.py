"""A signed-integer RGB TIFF's channels keep the dtype's whole range as their window, from its
minimum: they started at 0 (int16 red/green/blue windows 0..32767 hid every negative value)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("dtype", ["int8", "int16", "uint8", "uint16"])
def test_rgb_windows_span_the_dtype(tmp_path: Path, dtype: str) -> None:
    info = np.iinfo(dtype)
    data = np.random.default_rng(0).integers(info.min, info.max, (20, 30, 3), dtype=dtype)
    tifffile.imwrite(tmp_path / "rgb.tif", data, photometric="rgb")
    ngio_async.convert_sync(tmp_path / "rgb.tif", tmp_path / "out.zarr")
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        assert np.array_equal(ds[...], data.transpose(2, 0, 1))
        windows = [c.window for c in ds.metadata.channels]
    assert windows == [(float(info.min), float(info.max))] * 3
