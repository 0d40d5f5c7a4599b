"""``Roi.anchor``: a box found in a ROI's patch (pixel offsets) placed in the image, in its
units, as ngio 1.1.3's ``roi.anchor(local, pixel_size=)`` places it; read back at that place,
async and blocking, it holds the pixels found in the patch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

F32 = float(np.float32(10.4))  # as Fractal tables store it: 10.3999996..., 15.9999994 pixels

# (region in world units, pixel sizes, local pixel box): on pixel edges, between them, a start
# a float hair below an edge (F32), a start below 0
CASES: list[tuple[dict[str, tuple[float, float]], dict[str, float], dict[str, tuple[int, int]]]] = [
    ({"x": (0.0, 8.0), "y": (0.0, 8.0), "z": (0.0, 1.0)}, {"x": 0.5, "y": 0.5, "z": 1.0},
     {"x": (2, 5), "y": (1, 4)}),
    ({"x": (3.3, 9.0), "y": (1.7, 6.0), "z": (2.0, 6.0)}, {"x": 0.5, "y": 0.25, "z": 2.0},
     {"x": (0, 3), "y": (4, 9), "z": (1, 2)}),
    ({"x": (F32, 20.0), "y": (10.4, 20.0), "z": (0.0, 1.0)}, {"x": 0.65, "y": 0.65, "z": 1.0},
     {"x": (1, 2), "y": (3, 7)}),
    ({"x": (-1.0, 4.0), "y": (0.0, 4.0), "z": (0.0, 3.0)}, {"x": 1.0, "y": 1.0, "z": 1.0},
     {"x": (1, 3), "y": (0, 2)}),
]  # fmt: skip


@pytest.mark.parametrize(("region", "sizes", "local"), CASES)
def test_anchor_equals_ngios(
    region: dict[str, tuple[float, float]], sizes: dict[str, float], local: dict[str, Any]
) -> None:
    from ngio import PixelSize, Roi as NgioRoi

    theirs: Any = NgioRoi.from_values(
        {a: (lo, hi - lo) for a, (lo, hi) in region.items()}, name="FOV_1", space="world"
    ).anchor(
        NgioRoi.from_values(
            {a: (lo, hi - lo) for a, (lo, hi) in local.items()}, name="cell", space="pixel", label=3
        ),
        pixel_size=PixelSize(x=sizes["x"], y=sizes["y"], z=sizes["z"]),
    )
    roi = Roi("FOV_1", region, extra={"FieldIndex": "A"})
    got = roi.anchor(Roi("cell", dict(local), label=3), pixel_size=sizes)
    assert (got.name, got.label, got.extra) == ("cell", 3, {})
    for a in "xyz":
        s = theirs.get(a)
        assert got.ranges[a] == pytest.approx((s.start, s.start + s.length), abs=1e-12), a
    # a mapping of (start, stop) or slices: this ROI's name, the label given
    plain = roi.anchor({a: slice(*b) for a, b in local.items()}, pixel_size=sizes, label=7)
    assert (plain.name, plain.label, plain.ranges) == ("FOV_1", 7, got.ranges)
    for a in set(region) - set(local):  # axes the box does not name: this ROI's, as they are
        assert got.ranges[a] == region[a]


def _image(path: Path) -> None:
    data = np.zeros((2, 24, 32), np.uint8)
    data[1, 9:13, 14:19] = 200  # an object in plane 1
    with ngio_async.create(
        path, shape=data.shape, dtype="uint8", axes="zyx", scale=(2.0, 0.65, 0.65), levels=2
    ) as ds:
        ds.write(data, pyramid=True)


async def test_a_found_object_reads_back_at_its_anchored_box(tmp_path: Path) -> None:
    """Found in a FOV read at level 0, anchored with that level's calibration: the box read
    again (async; blocking at level 0 too) is the object, all of it."""
    path = tmp_path / "img.zarr"
    _image(path)
    fov = Roi.box("FOV", x=(6.6, 19.0), y=(3.3, 12.0), z=(0.0, 4.0))  # starts between pixels
    async with ngio_async.open_async(path) as ds:
        r = await ds.read_roi(fov)
        zs, ys, xs = np.nonzero(r.data)
        found = {"z": (zs.min(), zs.max() + 1), "y": (ys.min(), ys.max() + 1)}
        found["x"] = (xs.min(), xs.max() + 1)
        cal = ds.metadata.spatial_calibration[0]
        cell = fov.anchor(found, pixel_size=cal, name="obj", label=1)
        back = (await ds.read_roi(cell)).data
        assert back.shape == (1, 4, 5) and (back == 200).all()
        # a 2-D box keeps the FOV's z: the object's plane and the empty one
        flat = fov.anchor({"y": found["y"], "x": found["x"]}, pixel_size=cal)
        assert flat.ranges["z"] == fov.ranges["z"]
        assert (await ds.read_roi(flat)).data.shape == (2, 4, 5)
    with ngio_async.open(path) as sds:
        assert (sds.read_roi(cell).data == 200).all()


def test_refusals_name_the_roi_and_axis() -> None:
    fov = Roi.box("FOV_2", x=(0.0, 8.0), y=(0.0, 8.0))
    sizes = {"x": 0.5, "y": 0.5}
    with pytest.raises(ValueError, match=r"'FOV_2'.*'c'"):
        fov.anchor({"c": (0, 1)}, pixel_size=sizes)
    with pytest.raises(ValueError, match="axis 'z' needs a pixel size"):
        fov.anchor({"z": (0, 1)}, pixel_size=sizes)
    with pytest.raises(ValueError, match=r"axis 'x'.*empty"):
        fov.anchor({"x": (3, 3)}, pixel_size=sizes)
    with pytest.raises(ValueError, match=r"axis 'y'.*step 1"):
        fov.anchor({"y": slice(0, 4, 2)}, pixel_size=sizes)
    with pytest.raises(ValueError, match="axis 'x' needs a pixel size > 0"):
        fov.anchor({"x": (0, 1)}, pixel_size={"x": 0.0})
    with pytest.raises(TypeError, match="anchor takes a Roi"):
        fov.anchor([(0, 1)], pixel_size=sizes)  # type: ignore[arg-type]
