"""What ngio_async writes (tczyx, units of time and length, a translation, channels, a
pyramid, NGFF 0.4 and 0.5) ngff-zarr's reader reads with the same dimensions, per-level
scales, translations and units, channel labels and pixels, and tensorstore with the same pixels
(all held: no fix needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_written_image_read_by_ngff_zarr_and_tensorstore(tmp_path: Path, version: str) -> None:
    nz = pytest.importorskip("ngff_zarr")
    ts = pytest.importorskip("tensorstore")
    path = tmp_path / "img.ome.zarr"
    shape = (3, 2, 4, 40, 50)
    data = (np.arange(np.prod(shape)) % 4000).astype(np.uint16).reshape(shape)
    units = {"t": "millisecond", "z": "nanometer", "y": "nanometer", "x": "nanometer"}
    with ngio_async.create(
        path, shape=shape, dtype="uint16", axes="tczyx", scale=(1.5, 1, 2.0, 0.325, 0.325),
        translation=(10, 0, 1, 5, 7), units=units, channels=["DAPI", "GFP"], levels=3,
        ngff_version=version,
    ) as ds:  # fmt: skip
        ds.write(data, pyramid=True)
        levels = [lvl[...] for lvl in ds.levels]
        calibration = ds.metadata.spatial_calibration
        paths = ds.metadata.paths
    read = nz.from_ngff_zarr(str(path))
    assert len(read.images) == 3
    for i, image in enumerate(read.images):
        assert list(image.dims) == ["t", "c", "z", "y", "x"]
        np.testing.assert_array_equal(np.asarray(image.data), levels[i])
        for axis in "tzyx":
            mine = calibration[i][axis]
            assert image.scale[axis] == pytest.approx(mine.scale), (i, axis)
            assert image.translation[axis] == pytest.approx(mine.translation), (i, axis)
            assert image.axes_units[axis] == mine.unit == units[axis]
    assert read.metadata.omero is not None
    assert [c.label for c in read.metadata.omero.channels] == ["DAPI", "GFP"]
    driver = "zarr3" if version == "0.5" else "zarr"
    for i, level_path in enumerate(paths):
        spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path / level_path)}}
        array = ts.open(spec, open=True, read=True).result()
        np.testing.assert_array_equal(np.asarray(array.read().result()), levels[i])
