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


def _peer_image(path: Path, version: str, y: str = "y") -> None:
    """A 2 x 16 x 16 image written with zarr-python, its axes ``c``, ``y`` (or ``y``'s name),
    ``col``."""
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    extra: dict[str, Any] = {"dimension_names": ["c", y, "col"]} if version == "0.5" else {}
    array = group.create_array("0", shape=(2, 16, 16), dtype="uint8", chunks=(1, 8, 8), **extra)
    array[...] = np.arange(512, dtype=np.uint8).reshape(2, 16, 16)
    multiscale: dict[str, Any] = {
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": y, "type": "space", "unit": "micrometer"},
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


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_set_scale_by_one_number_sets_every_space_axis(tmp_path: Path, version: str) -> None:
    """A number (and a unit name) is for the space axes, whatever their names: ``col``'s
    pixel size became 1 (the default of an axis create does not know) and its unit none."""
    path = tmp_path / "img.zarr"
    _peer_image(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=2)
        ds.set_scale(0.25, units="nanometer")
        assert [lvl.scale for lvl in ds.levels] == [(1, 0.25, 0.25), (1, 0.5, 0.5)]
        assert [a.unit for a in ds.metadata.axes] == [None, "nanometer", "nanometer"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_create_like_an_image_of_other_axis_names(tmp_path: Path, version: str) -> None:
    """``create_like`` copies axes of any name (it refused them: "expected 2 or 3 axes of
    type 'space'"), their types, and a zarr v3 level's ``dimension_names``."""
    path = tmp_path / "img.zarr"
    _peer_image(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=2)
    with ngio_async.open(path) as src:
        cases: list[tuple[dict[str, Any], int, float]] = [
            ({}, 2, 1.0),
            ({"levels": 3, "scale": {"col": 0.5}}, 3, 0.5),
        ]
        for overrides, n, col in cases:
            copy_url = tmp_path / "copy.zarr"
            with ngio_async.create_like(src, copy_url, overwrite=True, **overrides) as ds:
                assert ds.axes == ("c", "y", "col")
                assert [a.type for a in ds.metadata.axes] == ["channel", "space", "space"]
                assert [lvl.shape for lvl in ds.levels] == [(2, 16 >> i, 16 >> i) for i in range(n)]
                assert ds.levels[1].scale == (1, 2, 2 * col)
        copy = zarr.open_group(tmp_path / "copy.zarr", mode="r")
        if version == "0.5":
            assert copy["1"].metadata.dimension_names == ("c", "y", "col")  # type: ignore[union-attr]
    with ngio_async.create(
        tmp_path / "renamed.zarr", shape=(1, 8, 8), dtype="uint8", axes="cyx"
    ) as ds:
        ds.set_axes_names({"x": "xx"})
        with ngio_async.create_like(ds, tmp_path / "copy2.zarr") as copy2:
            assert copy2.axes == ("c", "y", "xx")


def test_convert_to_more_levels_of_other_axis_names(tmp_path: Path) -> None:
    """``convert(levels=3)`` of a one-level image whose plane axes are named ``row`` / ``col``
    builds them (it refused: "a 2x16x16 image stops shrinking at level 0")."""
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    _peer_image(src, "0.5", y="row")
    ngio_async.convert_sync(src, dst, levels=3)
    with ngio_async.open(dst) as ds:
        assert ds.axes == ("c", "row", "col")
        assert [lvl.shape for lvl in ds.levels] == [(2, 16, 16), (2, 8, 8), (2, 4, 4)]


def test_create_like_one_pixel_size_for_other_axis_names(tmp_path: Path) -> None:
    """``create_like(src, scale=0.25)`` of an ome-zarr-py-like pyramid (``floor(n / 2)``
    levels, exact scales) whose plane axes are ``row`` / ``col``: the number is their pixel
    size, each level keeping its ratio (it failed: "level_scales[0] [1.0, 1.0, 1.0] is not the
    scale [1.0, 0.25, 0.25] of level 0")."""
    path = tmp_path / "img.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=3)
    names = ["c", "row", "col"]
    for i, shape in enumerate([(2, 33, 45), (2, 16, 22)]):
        group.create_array(
            str(i), shape=shape, dtype="uint8", chunks=(1, 16, 16), dimension_names=names
        )
    scales = [[1, 0.5, 0.5], [1, 0.5 * 33 / 16, 0.5 * 45 / 22]]
    multiscale: dict[str, Any] = {
        "axes": [{"name": "c", "type": "channel"}]
        + [{"name": n, "type": "space", "unit": "micrometer"} for n in names[1:]],
        "datasets": [
            {"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": s}]}
            for i, s in enumerate(scales)
        ],
    }
    group.attrs.put({"ome": {"version": "0.5", "multiscales": [multiscale]}})
    with (
        ngio_async.open(path) as src,
        ngio_async.create_like(src, tmp_path / "copy.zarr", scale=0.25) as ds,
    ):
        assert ds.axes == ("c", "row", "col")
        assert [lvl.shape for lvl in ds.levels] == [(2, 33, 45), (2, 16, 22)]
        assert ds.levels[0].scale == (1, 0.25, 0.25)
        assert ds.levels[1].scale == pytest.approx((1, 0.25 * 33 / 16, 0.25 * 45 / 22))
