"""A Fractal-style task ported from ngio 1.1.3 to ngio_async name by name (docs/ngio_mapping.md):
per image of a plate, each FOV's DAPI read in ``zyx`` order, thresholded and numbered,
written into a new label image, its pyramid built, a masking ROI table and a feature table
(a regionprops-like DataFrame with a ``label`` column) written, then the plate's feature
tables joined. Run with ngio on one copy of the plate and with ngio_async on another, the
results read back by ngio are the same."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.filterwarnings("ignore")]

FIELDS = [("B", "03", "0"), ("C", "05", "0")]


def _segment(dapi: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    from scipy import ndimage  # type: ignore[import-untyped]

    numbered, _ = ndimage.label(dapi > 120)
    return np.asarray(numbered, dtype=np.uint32)


def _features(labels: np.ndarray[Any, Any]) -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    values, areas = np.unique(labels[labels > 0], return_counts=True)
    return pd.DataFrame({"label": values, "area": areas.astype(np.float64)})


def _plate(path: Path) -> None:
    import ngio

    images = [ngio.ImageInWellPath(row=r, column=c, path=p) for r, c, p in FIELDS]
    plate = ngio.create_empty_plate(str(path), "plate", images=images)
    rng = np.random.default_rng(7)
    for r, c, p in FIELDS:
        data = rng.integers(0, 100, (2, 2, 32, 48)).astype(np.uint16)
        for y, x in ((4, 5), (20, 30), (8, 40)):
            data[0, :, y : y + 6, x : x + 5] = 200
        container = ngio.create_ome_zarr_from_array(
            plate.get_image_store(r, c, p),
            data,
            pixelsize=0.5,
            axes_names="czyx",
            levels=2,
            channels_meta=["DAPI", "GFP"],
            overwrite=True,
        )
        fovs = ngio.RoiTable(
            rois=[
                ngio.Roi.from_values({"x": (0, 12), "y": (0, 16), "z": (0, 2)}, name="FOV_1"),
                ngio.Roi.from_values({"x": (12, 12), "y": (0, 16), "z": (0, 2)}, name="FOV_2"),
            ]
        )
        container.add_table("FOV_ROI_table", fovs)


def _with_ngio(root: Path) -> None:
    import ngio

    for r, c, p in FIELDS:
        container = ngio.open_ome_zarr_container(str(root / r / c / p))
        image = container.get_image()
        label = container.derive_label("nuclei", dtype="uint32")
        for k, roi in enumerate(container.get_roi_table("FOV_ROI_table").rois()):
            dapi = image.get_roi_as_numpy(roi, channel_selection="DAPI", axes_order="zyx")
            seg = _segment(dapi)
            label.set_roi(roi, np.where(seg > 0, seg + 100 * k, 0), axes_order="zyx")
        label.consolidate()
        container.add_table("nuclei_ROI_table", container.build_masking_roi_table("nuclei"))
        table = ngio.FeatureTable(_features(label.get_as_numpy()), reference_label="nuclei")
        container.add_table("nuclei_features", table)
    plate = ngio.open_ome_zarr_plate(str(root))
    plate.add_table("all_features", plate.concatenate_image_tables("nuclei_features"))


def _with_ngio_async(root: Path) -> None:
    for r, c, p in FIELDS:
        with (
            ngio_async.open(root / r / c / p, mode="r+") as ds,
            ds.labels.create("nuclei", dtype="uint32") as label,
        ):
            for k, roi in enumerate(ds.tables.rois("FOV_ROI_table")):
                dapi = ds.read_roi(roi, c="DAPI", axes_order="zyx").data
                seg = _segment(dapi)
                label.write_roi(roi, np.where(seg > 0, seg + 100 * k, 0), axes_order="zyx")
            label.build_pyramid()
            ds.tables.write_rois("nuclei_ROI_table", label.masking_rois(), label="nuclei")
            ds.tables.write_features("nuclei_features", _features(label.read()), label="nuclei")
    with ngio_async.open_plate(root, mode="r+") as plate:
        plate.tables.write("all_features", plate.tables.concatenate("nuclei_features"))


def test_a_segmentation_task_ported_to_ngio_async_gives_ngios_results(tmp_path: Path) -> None:
    import ngio
    import pandas as pd

    _plate(tmp_path / "theirs.zarr")
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    _with_ngio(tmp_path / "theirs.zarr")
    _with_ngio_async(tmp_path / "mine.zarr")
    for r, c, p in FIELDS:
        theirs = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr" / r / c / p))
        mine = ngio.open_ome_zarr_container(str(tmp_path / "mine.zarr" / r / c / p))
        labels = mine.get_label("nuclei").get_as_numpy()
        assert len(np.unique(labels)) == 4  # three objects and 0
        np.testing.assert_array_equal(labels, theirs.get_label("nuclei").get_as_numpy())
        for name in ("nuclei_ROI_table", "nuclei_features"):
            pd.testing.assert_frame_equal(
                mine.get_table(name).dataframe, theirs.get_table(name).dataframe
            )
    joined = [
        ngio.open_ome_zarr_plate(str(tmp_path / name)).get_table("all_features").dataframe
        for name in ("mine.zarr", "theirs.zarr")
    ]
    pd.testing.assert_frame_equal(joined[0], joined[1], check_like=True)
