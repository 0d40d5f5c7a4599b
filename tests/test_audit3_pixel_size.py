"""``level(pixel_size=...)`` on images whose stored scales are not all positive (audit of
issue 3): a negative scale (a flipped axis) is compared by its size, a zero one is named.
Both failed with a bare ``ValueError: math domain error`` from ``math.log``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _image(root: Path, y_scale: float) -> str:
    """A 3-level NGFF 0.4 image written with zarr-python, its y scale ``y_scale`` at level 0
    (doubling per level), x scale 0.5 (doubling)."""
    group = zarr.open_group(root, mode="w", zarr_format=2)
    datasets = []
    for i in range(3):
        group.create_array(str(i), shape=(2, 32 >> i, 32 >> i), dtype="uint8", chunks=(1, 16, 16))
        scale = [1.0, y_scale * 2**i, 0.5 * 2**i]
        datasets.append(
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": scale}]}
        )
    axes = [
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    attrs = {"multiscales": [{"version": "0.4", "axes": axes, "datasets": datasets}]}
    (root / ".zattrs").write_text(json.dumps(attrs))
    return str(root)


def test_a_negative_scale_is_compared_by_its_size(tmp_path: Path) -> None:
    with ngio_async.open(_image(tmp_path, -0.5)) as ds:
        assert ds.metadata.spatial_calibration[1].scale == (1.0, -1.0, 1.0)  # as stored
        assert ds.level(pixel_size=1.0).path == "1"
        assert ds.level(pixel_size=[2.0, 2.0]).path == "2"
        assert ds.metadata.nearest_level(0.5) == 0


def test_a_zero_scale_is_named(tmp_path: Path) -> None:
    with ngio_async.open(_image(tmp_path, 0.0)) as ds:
        with pytest.raises(
            ngio_async.MetadataError, match=r"level 0 has scale 0(\.0)? on axis 'y'"
        ):
            ds.level(pixel_size=1.0)
        assert ds.read(level=1).shape == (2, 16, 16)  # the pixels stay readable
