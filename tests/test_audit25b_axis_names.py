"""An image whose x axis is named otherwise (NGFF names axes freely; ``set_axes_names`` renames
them as ngio's does) is downscaled in both plane axes: with ``y`` named and ``x`` not, the new
levels of ``build_pyramid(levels=)`` halved ``y`` alone (16 x 16 -> 8 x 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _peer_image(path: Path, version: str) -> None:
    """A 2 x 16 x 16 image written with zarr-python, its axes ``c``, ``y``, ``col``."""
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    extra: dict[str, Any] = {"dimension_names": ["c", "y", "col"]} if version == "0.5" else {}
    array = group.create_array("0", shape=(2, 16, 16), dtype="uint8", chunks=(1, 8, 8), **extra)
    array[...] = np.arange(512, dtype=np.uint8).reshape(2, 16, 16)
    multiscale: dict[str, Any] = {
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "col", "type": "space", "unit": "micrometer"},
        ],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]}
        ],
    }
    if version == "0.4":
        group.attrs.put({"multiscales": [{**multiscale, "version": "0.4"}]})
    else:
        group.attrs.put({"ome": {"version": "0.5", "multiscales": [multiscale]}})


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_new_levels_shrink_both_plane_axes(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.zarr"
    _peer_image(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=3)
        assert [lvl.shape for lvl in ds.levels] == [(2, 16, 16), (2, 8, 8), (2, 4, 4)]
        assert [lvl.scale for lvl in ds.levels] == [(1, 1, 1), (1, 2, 2), (1, 4, 4)]
        level0 = ds.levels[0][...].astype(float)
        mean = level0.reshape(2, 8, 2, 8, 2).mean(axis=(2, 4))
        np.testing.assert_array_equal(ds.levels[1][...], np.round(mean).astype(np.uint8))
    stored = zarr.open_group(path, mode="r")
    assert stored["2"].shape == (2, 4, 4)  # type: ignore[union-attr]


def test_a_renamed_x_axis_keeps_shrinking(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(1, 32, 32), dtype="uint8", axes="cyx") as ds:
        ds.set_axes_names({"x": "xx"})
        ds.build_pyramid(levels=2)
        assert [lvl.shape for lvl in ds.levels] == [(1, 32, 32), (1, 16, 16)]
