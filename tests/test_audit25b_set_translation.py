"""``set_scale(translation={axis: value})`` on an ome-zarr-py pyramid (each level's pixels
centred: level 1 sits half a level-0 pixel in) changes the named axes only: the axes a mapping
leaves out keep each level's own translation (their offset from level 0 scaled with the pixel
size when ``scale`` is given too). Level 1's ``y`` became level 0's (10.25 -> 10.0), moving
it half a pixel although ``y`` was not asked for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _peer_pyramid(path: Path, version: str) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]
    from ome_zarr.writer import write_multiscale  # type: ignore[import-untyped]

    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    data = np.arange(32 * 48, dtype=np.uint16).reshape(32, 48)
    write_multiscale(
        [data, data[::2, ::2].copy()],
        group,
        fmt=FormatV04() if version == "0.4" else FormatV05(),
        axes="yx",
        coordinate_transformations=[
            [
                {"type": "scale", "scale": [0.5, 0.5]},
                {"type": "translation", "translation": [10, 20]},
            ],
            [
                {"type": "scale", "scale": [1, 1]},
                {"type": "translation", "translation": [10.25, 20.25]},
            ],
        ],
    )


def _stored(path: Path, version: str) -> list[list[float]]:
    attrs: Any = zarr.open_group(path, mode="r").attrs.asdict()
    body = attrs if version == "0.4" else attrs["ome"]
    return [
        next(t["translation"] for t in d["coordinateTransformations"] if t["type"] == "translation")
        for d in body["multiscales"][0]["datasets"]
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_axis_left_out_keeps_each_levels_translation(tmp_path: Path, version: str) -> None:
    path = tmp_path / "img.zarr"
    _peer_pyramid(path, version)
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_scale(translation={"x": 21.0})
        assert [lvl.translation for lvl in ds.levels] == [(10.0, 21.0), (10.25, 21.0)]
    assert _stored(path, version) == [[10.0, 21.0], [10.25, 21.0]]
    with ngio_async.open(path, mode="r+") as ds:  # a new pixel size: the offset scales with it
        ds.set_scale(0.25, translation={"x": 5.0})
        assert [lvl.translation for lvl in ds.levels] == [(10.0, 5.0), (10.125, 5.0)]
        assert [lvl.scale for lvl in ds.levels] == [(0.25, 0.25), (0.5, 0.5)]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_multiscale_scale_leaves_level_0_where_it_was(tmp_path: Path, version: str) -> None:
    """A multiscale-level ``scale`` (NGFF allows one; ome-zarr-models writes it) applies after
    the levels' own transforms: ``set_scale`` moved level 0's origin (5, 10) to (3.75, 7.5),
    taking its world translation for its stored one."""
    path = tmp_path / "img.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    extra: dict[str, Any] = {"dimension_names": ["y", "x"]} if version == "0.5" else {}
    for i, n in enumerate((32, 16)):
        group.create_array(str(i), shape=(n, n), dtype="uint8", chunks=(n, n), **extra)
    multiscale: dict[str, Any] = {
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [s, s]},
                    {"type": "translation", "translation": [t, 10 + t]},
                ],
            }
            for i, (s, t) in enumerate(((1, 10), (2, 10.5)))
        ],
        "coordinateTransformations": [{"type": "scale", "scale": [0.5, 0.5]}],
    }
    if version == "0.4":
        group.attrs.put({"multiscales": [{**multiscale, "version": "0.4"}]})
    else:
        group.attrs.put({"ome": {"version": "0.5", "multiscales": [multiscale]}})
    with ngio_async.open(path, mode="r+") as ds:
        assert [lvl.translation for lvl in ds.levels] == [(5.0, 10.0), (5.25, 10.25)]
        ds.set_scale(0.25)
    with ngio_async.open(path) as ds:
        assert [lvl.scale for lvl in ds.levels] == [(0.25, 0.25), (0.5, 0.5)]
        assert [lvl.translation for lvl in ds.levels] == [(5.0, 10.0), (5.125, 10.125)]
