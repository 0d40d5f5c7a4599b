"""Reading and writing by world coordinates: ``read_world`` is ``read`` of ``world_region``
(async, sync, on S3), ``write_world`` writes whole-pixel boxes, and a label image of another
pixel size read at the same world box lines up with its image."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from test_world_mapping import CYX, write_calibrated

import ngio_async
from ngio_async import ReadOnlyError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


def _image(root: Path) -> list[np.ndarray[Any, Any]]:
    return write_calibrated(
        root, "0.5", CYX,
        [((2, 24, 32), (1, 0.65, 0.65), (0, 5.0, -1.3)),
         ((2, 12, 16), (1, 1.3, 1.3), (0, 5.325, -0.975))],
        extra={"omero": {"channels": [
            {"label": n, "color": "FFFFFF", "window": {"min": 0, "max": 9, "start": 0, "end": 9}}
            for n in ("DAPI", "GFP")
        ]}},
    )  # fmt: skip


BOXES: list[dict[str, Any]] = [
    {"c": "GFP", "y": (6.0, 9.1), "x": (0.0, 4.0)},
    {"y": (4.0, 100.0), "x": 2.0},  # clipped; x a point
    {"c": ["GFP", "DAPI"], "y": 7.3, "x": (-1.3, 19.5)},
    {"x": (3.0, 3.01)},
]


@pytest.mark.parametrize("level", [0, 1])
async def test_read_world_is_read_of_world_region(tmp_path: Path, level: int) -> None:
    data = _image(tmp_path / "i.zarr")[level]
    async with ngio_async.open_async(tmp_path / "i.zarr") as ds:
        for box in BOXES:
            region = ds.world_region(level, unit="micrometer", **box)
            got = await ds.read_world(level, unit="micrometer", **box)
            np.testing.assert_array_equal(got, data[region])
            named = dict(zip(ds.axes, region, strict=True))
            np.testing.assert_array_equal(got, await ds.read(level, **named))
        # by hand: y (6 - 5)/0.65 = 1.54 .. (9.1 - 5)/0.65 = 6.31 -> 1:7; x 2.0 .. 8.15 -> 2:9
        if level == 0:
            np.testing.assert_array_equal(
                await ds.read_world(0, **BOXES[0]), data[1, 1:7, 2:9]
            )  # fmt: skip


def test_sync_mirror(tmp_path: Path) -> None:
    data = _image(tmp_path / "i.zarr")
    with ngio_async.open(tmp_path / "i.zarr") as ds:
        level = ds.level_for(1.3, unit="micrometer")
        assert level == 1
        for box in BOXES:
            region = ds.world_region(level, **box)
            assert region == ds.async_dataset.world_region(level, **box)
            np.testing.assert_array_equal(ds.read_world(level, **box), data[1][region])
        assert ds.world_extent(1, unit="nanometer") == {
            "y": pytest.approx((5325.0, 20925.0)), "x": pytest.approx((-975.0, 19825.0)),
        }  # fmt: skip
        with pytest.raises(IndexError, match=r"axis 'x': the world range \(30, 40\) micrometer"):
            ds.read_world(0, x=(30, 40))
        # origin="image": from the first pixel's corner
        np.testing.assert_array_equal(
            ds.read_world(0, origin="image", y=(0, 1.3), x=(0.65, 1.3)), data[0][:, 0:2, 1:2]
        )


def test_write_world(tmp_path: Path) -> None:
    url = tmp_path / "w.zarr"
    with ngio_async.create(
        url, shape=(20, 30), dtype="uint16", scale=0.65, translation=[5.0, -1.3], levels=2
    ) as ds:
        ds.write_world(
            np.full((4, 3), 7, "uint16"), y=(5.0 + 2 * 0.65, 5.0 + 6 * 0.65), x=(0, 1.95)
        )
        expect = np.zeros((20, 30), "uint16")
        expect[2:6, 2:5] = 7
        np.testing.assert_array_equal(ds.read(), expect)
        # a point drops the axis; nanometres; the pyramid follows
        ds.write_world(
            np.arange(3, dtype="uint16"), unit="nanometer", y=5000.0, x=(-1300, 650), pyramid=True
        )
        expect[0, 0:3] = [0, 1, 2]
        np.testing.assert_array_equal(ds.read(), expect)
        assert ds.read(level=1)[0, 0] == round(np.mean(expect[:2, :2]))
        with pytest.raises(ValueError, match=r"axis 'x': the world bound 0.1 micrometer is not on"):
            ds.write_world(np.ones((4, 3), "uint16"), y=(6.3, 8.9), x=(0.1, 2.05))
        with pytest.raises(IndexError) as e:
            ds.write_world(np.ones((3, 3), "uint16"), unit="nanometer", y=(4350, 6300), x=(0, 1950))
        assert str(e.value) == (
            "axis 'y': the world range (4350, 6300) nanometer reaches outside the image, whose "
            "world extent there is [5, 18) micrometer at level 0: a write must lie inside it"
        )
        with pytest.raises(ValueError, match=r"axis .x.: the world bound 0.1 micrometer is not"):
            ds.write_world(np.ones((1, 1), "uint16"), unit="nanometer", y=5000.0, x=(100, 650))
        # a shape mismatch says what write says
        with pytest.raises(ValueError) as by_world:
            ds.write_world(np.ones((5, 3), "uint16"), y=(6.3, 8.9), x=(0, 1.95))
        with pytest.raises(ValueError) as by_index:
            ds.write(np.ones((5, 3), "uint16"), y=slice(2, 6), x=slice(2, 5))
        assert str(by_world.value) == str(by_index.value)
        np.testing.assert_array_equal(ds.read(), expect)  # nothing written by the failures
    with ngio_async.open(url) as ro, pytest.raises(ReadOnlyError):
        ro.write_world(np.ones((1, 1), "uint16"), y=5.0, x=0.0)


def _label(root: Path) -> list[np.ndarray[Any, Any]]:
    """Label ``coarse`` of the image of :func:`_image`, coarser than it (1.5 um pixels
    against 0.65, from the same corner; level 1: 3 um); value = 100 * row + column + 1."""
    shapes = [(11, 15), (6, 8)]
    datas = [
        (100 * np.arange(n)[:, None] + np.arange(m)[None, :] + 1).astype("uint32")
        for n, m in shapes
    ]
    out = write_calibrated(
        root / "labels" / "coarse", "0.5", CYX[1:],
        [(shapes[0], (1.5, 1.5), (5.0, -1.3)), (shapes[1], (3.0, 3.0), (5.75, -0.55))],
        extra={"image-label": {"source": {"image": "../../"}}},
        dtype="uint32", data=datas,
    )  # fmt: skip
    group = zarr.open_group(root / "labels", mode="a", zarr_format=3)
    group.attrs.update({"ome": {"version": "0.5", "labels": ["coarse"]}})
    return out


@pytest.mark.parametrize(("level", "label_level"), [(0, 0), (0, 1), (1, 0)])
def test_label_of_another_pixel_size_lines_up(tmp_path: Path, level: int, label_level: int) -> None:
    _image(tmp_path / "i.zarr")
    _label(tmp_path / "i.zarr")
    box: dict[str, Any] = {"y": (6.1, 13.7), "x": (2.2, 11.9)}
    with ngio_async.open(tmp_path / "i.zarr") as ds, ds.labels.open("coarse") as lab:
        img_region = ds.world_region(level, **box)
        lab_region = lab.world_region(label_level, **box)
        got = lab.read_world(label_level, **box)
        assert got.shape == tuple(s.stop - s.start for s in lab_region)
        img_cal = ds.metadata.spatial_calibration[level]
        lab_cal = lab.metadata.spatial_calibration[label_level]
        for k, name in enumerate("yx"):
            img_s, lab_s = img_region[k + 1], lab_region[k]
            a, b = img_cal[name], lab_cal[name]
            # every image pixel read has its centre in a label pixel read, holding its value
            for i in range(img_s.start, img_s.stop):
                centre = a.translation + (i + 0.5) * a.scale
                j = math.floor((centre - b.translation) / b.scale)
                assert lab_s.start <= j < lab_s.stop, (name, i, j)
            # and both cover the box within one of their own pixels
            for s, c in ((img_s, a), (lab_s, b)):
                lo, hi = c.translation + s.start * c.scale, c.translation + s.stop * c.scale
                assert lo <= box[name][0] < lo + c.scale and hi - c.scale < box[name][1] <= hi
        rows = np.arange(lab_region[0].start, lab_region[0].stop)[:, None]
        cols = np.arange(lab_region[1].start, lab_region[1].stop)[None, :]
        np.testing.assert_array_equal(got, 100 * rows + cols + 1)


async def test_read_world_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = s3_server.options()
    data = np.arange(3 * 40 * 50, dtype="uint16").reshape(3, 40, 50)
    async with await ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="zyx", scale={"z": 2.0, "y": 0.325, "x": 0.325},
        units={"z": "micrometer", "y": "micrometer", "x": "micrometer"}, levels=2, **options,
    ) as ds:  # fmt: skip
        await ds.write(data, pyramid=True)
    async with ngio_async.open_async(url, **options) as ds:
        # z 3 um -> 1; y 1000..2000 nm -> 3.08..6.15 -> 3:7; x 0..3.25 um -> 0:10
        got = await ds.read_world(unit="nanometer", z=3000.0, y=(1000, 2000), x=(0, 3250))
        np.testing.assert_array_equal(got, data[1, 3:7, 0:10])
        level1 = await ds.read_world(1, z=(0, 6), y=(1.3, 2.6))
        np.testing.assert_array_equal(level1, (await ds.read(1))[:, 2:4, :])
