"""ROI tables with z and t, and masking ROI tables used to read one object: the boxes ngio
1.1.3 writes select, through ``read_world(unit="micrometer", origin="image", **roi.ranges)``,
the pixels ngio's own ROI readers give (NGFF 0.4 and 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _labels() -> Any:
    lab = np.zeros((3, 16, 20), np.uint16)
    lab[0:2, 2:6, 3:9] = 7
    lab[1:3, 9:15, 11:19] = 12
    lab[2, 0:2, 0:2] = 3
    return lab


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_masking_rois_read_one_objects_pixels_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    path = tmp_path / "img.zarr"
    image = np.arange(2 * 3 * 16 * 20, dtype=np.uint16).reshape(2, 3, 16, 20)
    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        image,
        pixelsize=0.5,
        z_spacing=2.0,
        levels=1,
        axes_names="czyx",
        ngff_version=version,  # type: ignore[arg-type]
    )
    label = c.derive_label("nuclei")
    label.set_array(_labels())
    c.add_table("nuclei_ROI_table", c.build_masking_roi_table("nuclei"))
    masked: Any = c.get_masked_image("nuclei")
    async with (
        ngio_async.open_async(path) as ds,
        ds.labels.open("nuclei") as lab,
    ):
        table = await ds.tables.read("nuclei_ROI_table")
        assert table.type == "masking_roi_table" and table.region == "../labels/nuclei"
        rois = {int(r.label or 0): r for r in table.rois()}
        assert sorted(rois) == [3, 7, 12]
        for value, roi in rois.items():
            box: dict[str, Any] = {"unit": "micrometer", "origin": "image", **roi.ranges}
            pixels = await ds.read_world(**box)
            labels = await lab.read_world(**box)
            np.testing.assert_array_equal(pixels, masked.get_roi(value))
            np.testing.assert_array_equal(labels, c.get_label("nuclei").get_roi(roi_for(c, value)))
            inside = np.where(labels == value, pixels, 0)
            want = masked.get_roi_masked(value)
            np.testing.assert_array_equal(inside, want)
            assert (labels == value).sum() == (_labels() == value).sum()  # the whole object


def roi_for(c: Any, value: int) -> Any:
    return c.get_masking_roi_table("nuclei_ROI_table").get_label(value)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_rois_with_z_and_t_both_ways(tmp_path: Path, version: str) -> None:
    import ngio
    from ngio import Roi as NgioRoi
    from ngio.tables import RoiTable

    path = tmp_path / "img.zarr"
    data = np.arange(4 * 3 * 8 * 8, dtype=np.uint16).reshape(4, 3, 8, 8)
    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=0.5,
        z_spacing=1.0,
        time_spacing=2.0,
        levels=1,
        axes_names="tzyx",
        ngff_version=version,  # type: ignore[arg-type]
    )
    slices = {"x": (1.0, 2.0), "y": (0.5, 1.0), "z": (1.0, 2.0), "t": (2.0, 4.0)}
    theirs = NgioRoi.from_values(name="r", slices=slices, space="world")
    c.add_table("ngio_rois", RoiTable(rois=[theirs]))
    mine = Roi("mine", {"x": (0.0, 1.0), "y": (1.0, 3.0), "z": (0.0, 2.0)}, time=(4.0, 8.0))
    async with ngio_async.open_async(path, mode="r+") as ds:
        (roi,) = await ds.tables.rois("ngio_rois")
        assert roi.ranges == {"x": (1.0, 3.0), "y": (0.5, 1.5), "z": (1.0, 3.0)}
        assert roi.time == (2.0, 6.0)
        box: dict[str, Any] = {"t": roi.time, **roi.ranges}
        got = await ds.read_world(unit="micrometer", origin="image", **box)
        np.testing.assert_array_equal(got, c.get_image().get_roi(theirs))
        assert got.shape == (2, 2, 2, 4)
        await ds.tables.write_rois("mine", [mine])
    c = ngio.open_ome_zarr_container(str(path))
    back = c.get_roi_table("mine").rois()[0]
    assert (back.get("t").start, back.get("t").length) == (4.0, 4.0)
    assert (back.get("z").start, back.get("z").length) == (0.0, 2.0)
    async with ngio_async.open_async(path) as ds:
        box = {"t": mine.time, **mine.ranges}
        got = await ds.read_world(unit="micrometer", origin="image", **box)
    np.testing.assert_array_equal(got, c.get_image().get_roi(back))
