"""``read_world`` against ngio 1.1.3's ROI reads: the same image and the same ROI in
micrometres give the same pixels; ngio's level choice by pixel size is ``level_for``'s.

ngio maps a ROI to pixels as ``start / pixel_size`` (the NGFF translation ignored: Fractal
ROI tables count from the image's corner), snaps within 1/100 pixel, then floors the start
and ceils the stop and clips to the array: ngio_async's rule, with ``origin="image"`` where
an image has a translation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

ngio = pytest.importorskip("ngio")

# (y start, y length, x start, x length) in micrometres: aligned to the 0.65 um pixels,
# between them, thin, float32 values as ROI tables store them, clipped at the far edges
ROIS = [
    (0.0, 13.0, 0.0, 26.0),
    (1.0, 5.2, 3.3, 10.1),
    (0.65 * 7, 0.65 * 9, 0.65 * 3, 0.65 * 11),
    (float(np.float32(0.65 * 13)), float(np.float32(0.65 * 5)), 0.1, 0.2),
    (30.0, 20.0, 40.0, 30.0),
    (12.99, 0.02, 7.0, 0.66),  # thin, but not under 1/100 of a pixel of levels 0 and 1
]


def _create(path: Path, version: str, translation: tuple[float, ...] | None = None) -> Any:
    data = np.arange(2 * 3 * 64 * 80, dtype="uint16").reshape(2, 3, 64, 80)
    return ngio.create_ome_zarr_from_array(
        store=str(path), array=data, pixelsize=0.65, z_spacing=1.0, levels=3,
        axes_names="czyx", channels_meta=["DAPI", "GFP"], ngff_version=version,
        translation=translation, chunks=(1, 1, 32, 32), consolidation_mode="numpy",
    )  # fmt: skip


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_roi_reads_match_ngio(tmp_path: Path, version: str) -> None:
    container = _create(tmp_path / "n.zarr", version)
    label = container.derive_label("seg")
    label.set_array(np.arange(3 * 64 * 80, dtype="uint32").reshape(3, 64, 80) % 251)
    label.consolidate(mode="numpy")
    with ngio_async.open(tmp_path / "n.zarr") as ds, ds.labels.open("seg") as lab:
        for level in range(3):
            image = container.get_image(path=str(level))
            ngio_label = container.get_label("seg", path=str(level))
            for y0, ly, x0, lx in ROIS[: None if level < 2 else -1]:
                roi = ngio.Roi.from_values({"y": (y0, ly), "x": (x0, lx)}, name=None)
                box: dict[str, Any] = {"y": (y0, y0 + ly), "x": (x0, x0 + lx)}
                expect = image.get_roi(roi)
                got = ds.read_world(level, unit="micrometer", **box)
                assert got.shape == expect.shape, (level, box)
                np.testing.assert_array_equal(got, expect)
                np.testing.assert_array_equal(
                    ds.read_world(level, c="GFP", **box), image.get_roi(roi, channel_selection="GFP")
                )  # fmt: skip
                np.testing.assert_array_equal(lab.read_world(level, **box), ngio_label.get_roi(roi))


def test_where_ngio_reads_nothing(tmp_path: Path) -> None:
    """Two deliberate differences: a ROI under 1/100 pixel thin at a pixel edge (its length
    snaps to 0) reads nothing in ngio and one pixel here; a ROI wholly outside the image
    reads an empty array in ngio and is an IndexError here, naming the axis."""
    container = _create(tmp_path / "d.zarr", "0.5")
    image = container.get_image(path="2")  # 2.6 um pixels
    with ngio_async.open(tmp_path / "d.zarr") as ds:
        thin = ngio.Roi.from_values({"y": (12.99, 0.02), "x": (7.0, 0.66)}, name=None)
        assert image.get_roi(thin).shape == (2, 3, 0, 1)
        got = ds.read_world(2, y=(12.99, 13.01), x=(7.0, 7.66))
        np.testing.assert_array_equal(got, ds.read(2, y=slice(5, 6), x=slice(2, 3)))
        outside = ngio.Roi.from_values({"y": (100.0, 5.0), "x": (0.0, 5.0)}, name=None)
        assert image.get_roi(outside).shape == (2, 3, 0, 2)
        with pytest.raises(IndexError, match=r"axis 'y': the world range \(100, 105\) micro"):
            ds.read_world(2, y=(100, 105), x=(0, 5))


def test_translated_image_reads_as_ngio_with_origin_image(tmp_path: Path) -> None:
    """ngio ignores the image's translation (y 10, x 20 um): its ROIs count from the first
    pixel's corner. ngio_async places pixels by the translation (NGFF); origin="image" reads
    what ngio reads."""
    container = _create(tmp_path / "t.zarr", "0.5", translation=(0, 0, 10.0, 20.0))
    with ngio_async.open(tmp_path / "t.zarr") as ds:
        image = container.get_image(path="1")
        roi = ngio.Roi.from_values({"y": (1.0, 5.2), "x": (3.3, 10.1)}, name=None)
        box: dict[str, Any] = {"y": (1.0, 6.2), "x": (3.3, 13.4)}
        np.testing.assert_array_equal(ds.read_world(1, origin="image", **box), image.get_roi(roi))
        with pytest.raises(IndexError, match=r"axis 'y': the world range \(1, 6.2\) micrometer"):
            ds.read_world(1, **box)  # the image starts at y 10 um
        shifted: dict[str, Any] = {"y": (11.0, 16.2), "x": (23.3, 33.4)}
        np.testing.assert_array_equal(ds.read_world(1, **shifted), image.get_roi(roi))


def test_level_for_picks_ngios_level(tmp_path: Path) -> None:
    container = _create(tmp_path / "p.zarr", "0.5")
    with ngio_async.open(tmp_path / "p.zarr") as ds:
        for size in (0.1, 0.65, 0.9, 0.975, 1.0, 1.3, 1.9, 2.0, 2.6, 50):
            ngio_size = ngio.PixelSize(x=size, y=size, z=1.0)
            expect = container.get_image(pixel_size=ngio_size).path
            assert ds.level_for(size, unit="micrometer") == int(expect), size


def test_roi_z_on_a_2d_image(tmp_path: Path) -> None:
    """A Fractal ROI of a 2-D image has z (0, 1): ngio reads the image's one plane, and so
    does read_world; a z selecting another plane is an error in both."""
    data = np.arange(2 * 40 * 50, dtype="uint16").reshape(2, 40, 50)
    container = ngio.create_ome_zarr_from_array(
        store=str(tmp_path / "m.zarr"), array=data, pixelsize=0.65, levels=1, axes_names="cyx",
        consolidation_mode="numpy",
    )  # fmt: skip
    image = container.get_image()
    with ngio_async.open(tmp_path / "m.zarr") as ds:
        roi = ngio.Roi.from_values({"x": (3.3, 10.1), "y": (1.0, 5.2), "z": (0.0, 1.0)}, name=None)
        got = ds.read_world(unit="micrometer", y=(1.0, 6.2), x=(3.3, 13.4), z=(0.0, 1.0))
        np.testing.assert_array_equal(got, image.get_roi(roi))
        assert ds.world_region(z=0.0, t=(0, 1)) == (slice(0, 2), slice(0, 40), slice(0, 50))
        far = ngio.Roi.from_values({"x": (3.3, 10.1), "y": (1.0, 5.2), "z": (5.0, 1.0)}, name=None)
        with pytest.raises(ngio.NgioValueError):
            image.get_roi(far)
        with pytest.raises(ValueError, match=r"axis 'z' is not an axis of the image \(axes: c, "):
            ds.read_world(y=(1.0, 6.2), z=(5.0, 6.0))
        with pytest.raises(ValueError, match="unknown axis 'w'"):
            ds.read_world(w=(0.0, 1.0))
