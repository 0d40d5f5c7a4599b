"""NGFF 0.6rc0 world coordinates in a named coordinate system (``system=``): corpus images
whose multiscale-level transformation links the intrinsic system to another one (scale,
scale inverted, a sequence with mapAxis, scale and translation) read the box that system
names; other transformation types (affine, rotation) are refused naming the type."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngff06_read import SHAPES, _attrs, _write

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

SCALED = "zarr_json/valid/example-image-multiscales_transformations.json"


def _two_levels(attrs: dict[str, Any]) -> dict[str, Any]:
    """The corpus image with a second level (pixels twice the size)."""
    ms = attrs["ome"]["multiscales"][0]
    s1 = copy.deepcopy(ms["datasets"][0])
    s1["path"] = "s1"
    s1["coordinateTransformations"][0].update(scale=[2, 2], input={"path": "s1"})
    ms["datasets"].append(s1)
    return attrs


def test_scale_to_physical(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    data, _ = _write(path, _two_levels(_attrs(SCALED)), ((16, 16), (8, 8)))
    with ngio_async.open(str(path)) as ds:  # the blocking twins
        assert ds.world_extent() == {"y": (0.0, 16.0), "x": (0.0, 16.0)}
        assert ds.world_extent(system="physical") == {"y": (0.0, 160.0), "x": (0.0, 160.0)}
        assert ds.world_extent(1, system="physical") == {"y": (0.0, 160.0), "x": (0.0, 160.0)}
        assert ds.world_extent(system="intrinsic") == ds.world_extent()
        got = ds.read_world(system="physical", y=(20, 40), x=(0, 30))
        np.testing.assert_array_equal(got, data[2:4, 0:3])
        assert ds.world_region(1, system="physical", y=(20, 40), x=50) == (slice(1, 2), 2)
        assert ds.world_region(system="physical", y=(20, 40)) == (slice(2, 4), slice(0, 16))


async def test_scale_inverted_time_axis(tmp_path: Path) -> None:
    """strict-multiscales_example: the scale runs from "world" to the intrinsic system."""
    path = tmp_path / "img.zarr"
    data = _write(path, _attrs("image/valid/strict-multiscales_example.json"), SHAPES)
    async with ngio_async.open_async(path) as ds:
        ext = ds.world_extent(system="world")
        assert ext["t"] == (0.0, 10.0) and ext["z"] == (0.0, 2.0)  # t: 0.1 ms -> 1 ms
        got = await ds.read_world(system="world", t=(0, 9.9), z=(0.5, 1.0), c=1)
        np.testing.assert_array_equal(got, data[0][0:1, 1, 1:2])


async def test_sequence_with_axis_permutation(tmp_path: Path) -> None:
    """u = 10 x + 5, v = 20 y + 7 (mapAxis [1, 0], then scale, then translation)."""
    attrs = _attrs(SCALED)
    ms = attrs["ome"]["multiscales"][0]
    physical = ms["coordinateSystems"][0]
    physical["axes"] = [{"name": "u", "type": "space"}, {"name": "v", "type": "space"}]
    ms["coordinateTransformations"][0] = {
        "type": "sequence",
        "input": {"name": "intrinsic"},
        "output": {"name": "physical"},
        "transformations": [
            {"type": "mapAxis", "mapAxis": [1, 0]},
            {"type": "scale", "scale": [10, 20]},
            {"type": "translation", "translation": [5, 7]},
        ],
    }
    path = tmp_path / "img.zarr"
    (data,) = _write(path, attrs, ((16, 8),))
    async with ngio_async.open_async(path) as ds:
        assert ds.world_extent(system="physical") == {"v": (7.0, 327.0), "u": (5.0, 85.0)}
        assert ds.world_region(system="physical", u=(25, 45), v=(27, 87)) == (
            slice(1, 4),
            slice(2, 4),
        )
        got = await ds.read_world(system="physical", u=(25, 45), v=(27, 87))
        np.testing.assert_array_equal(got, data[1:4, 2:4])
        with pytest.raises(ValueError, match=r"'nowhere' is not a coordinate system"):
            ds.world_extent(system="nowhere")


@pytest.mark.parametrize(
    ("doc", "system", "kind"),
    [("affine.json", "sheared", "affine"), ("rotation.json", "rotated", "rotation")],
)
async def test_other_types_refused(tmp_path: Path, doc: str, system: str, kind: str) -> None:
    path = tmp_path / "img.zarr"
    attrs = _attrs(f"image/valid/{doc}")
    n = len(attrs["ome"]["multiscales"][0]["datasets"])
    _write(path, attrs, tuple((8 >> k, 8 >> k) for k in range(n)))
    async with ngio_async.open_async(path) as ds:
        assert ds.world_extent()  # the intrinsic system reads
        with pytest.raises(UnsupportedError, match=rf"a '{kind}' transformation"):
            ds.world_extent(system=system)
        with pytest.raises(UnsupportedError, match=rf"a '{kind}' transformation"):
            await ds.read_world(system=system, y=(0, 2))


async def test_05_image_has_no_named_systems(tmp_path: Path) -> None:
    path = tmp_path / "img05.zarr"
    async with await ngio_async.create_async(path, shape=(4, 4), dtype="uint8") as ds:
        with pytest.raises(ValueError, match=r"NGFF 0\.4 / 0\.5, with one unnamed"):
            ds.world_region(system="physical", y=(0, 1))
