"""axes_order= on reads and writes, against ngio 1.1.3's get_as_numpy / get_roi / set_array /
set_roi on the same images (NGFF 0.4 and 0.5, and one on moto's S3): the axes a read keeps in
the order named, axes it lacks added with size 1, size-1 axes left out dropped, anything else
refused; a write takes its data in that order."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

DATA = np.arange(2 * 3 * 8 * 10, dtype=np.uint16).reshape(2, 3, 8, 10)

# (selection, axes_order): what a Fractal task asks of a czyx image
CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({}, ["x", "y", "z", "c"]),
    ({"c": 0}, ["x", "y", "z", "c"]),  # an int drops c, axes_order adds it back (size 1)
    ({"z": 1}, ["t", "c", "y", "x"]),  # t added; z dropped by the int
    ({"c": [1]}, ["c", "y", "x", "z"]),
    ({"z": slice(1, 2), "y": slice(2, 7)}, ["c", "y", "x"]),  # size-1 z left out: dropped
    ({"c": 1, "z": 2}, ["y", "x"]),
]


def _ngio_image(path: Path, version: str) -> Any:
    import ngio

    container = ngio.create_ome_zarr_from_array(
        str(path),
        DATA,
        pixelsize=0.5,
        z_spacing=2.0,
        axes_names="czyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )
    labels = np.zeros((3, 8, 10), np.uint32)
    labels[:, 2:6, 3:9] = 4
    labels[0, 2:4, 3:5] = 0  # not a box: masked reads and writes leave that corner
    container.derive_label("nuclei").set_array(labels)
    return container


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_reads_in_axes_order_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    container = _ngio_image(tmp_path / "img.zarr", version)
    image = container.get_image()
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        for selection, order in CASES:
            theirs = image.get_as_numpy(axes_order=order, **selection)
            mine = await ds.read(axes_order=order, **selection)
            assert mine.shape == theirs.shape, (selection, order)
            np.testing.assert_array_equal(mine, theirs)
        with pytest.raises(ngio.NgioValueError):
            image.get_as_numpy(axes_order=["y", "x"])
        with pytest.raises(ValueError, match=r"'c' \(size 2\), 'z' \(size 3\)"):
            await ds.read(axes_order=["y", "x"])
        with pytest.raises(ValueError, match="twice"):
            await ds.read(axes_order=["y", "x", "y"])

        roi = container.build_image_roi_table().rois()[0].zoom(0.5)
        mine_roi = ds.image_roi().zoom(0.5)
        order = ["x", "y", "z", "c"]
        theirs = image.get_roi(roi, axes_order=order, c=1)
        read = await ds.read_roi(mine_roi, axes_order=order, c=1, label="nuclei")
        np.testing.assert_array_equal(read.data, theirs)
        assert read.labels is not None and read.labels.shape == theirs.shape
        label = container.get_label("nuclei")
        np.testing.assert_array_equal(
            read.labels[..., 0], label.get_roi(roi, axes_order=["x", "y", "z"])
        )
        box: dict[str, Any] = dict(mine_roi.ranges)
        world = await ds.read_world(origin="image", axes_order=order, c=1, **box)
        np.testing.assert_array_equal(world, theirs)
    # the blocking twin takes it too
    with ngio_async.open(tmp_path / "img.zarr") as sync:
        np.testing.assert_array_equal(
            sync.read(axes_order=["z", "c", "y", "x"], y=3),
            image.get_as_numpy(axes_order=["z", "c", "y", "x"], y=3),
        )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_writes_in_axes_order_as_ngio(tmp_path: Path, version: str) -> None:
    container = _ngio_image(tmp_path / "theirs.zarr", version)
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    image = container.get_image()
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 1000, (10, 8, 1), dtype=np.uint16)  # x, y, c for plane z=1
    image.set_array(patch, axes_order=["x", "y", "c"], z=1, c=[0])
    roi = container.build_image_roi_table().rois()[0].zoom(0.5)
    roi_patch = rng.integers(0, 1000, (1, 6, 4, 3), dtype=np.uint16)  # t, x, y, z of c=1
    image.set_roi(roi, roi_patch, axes_order=["t", "x", "y", "z"], c=1)
    async with ngio_async.open_async(tmp_path / "mine.zarr", mode="r+") as ds:
        await ds.write(patch, axes_order=["x", "y", "c"], z=1, c=[0])
        mine_roi = ds.image_roi().zoom(0.5)
        await ds.write_roi(mine_roi, roi_patch, axes_order=["t", "x", "y", "z"], c=1)
        np.testing.assert_array_equal(await ds.read(), image.get_as_numpy())
        with pytest.raises(ValueError, match=r"'t' \(size 2\)"):
            await ds.write(np.zeros((2, 3, 8, 10)), axes_order=["t", "z", "y", "x"], c=0)
        await ds.write(9, axes_order=["x", "y"], c=0, z=0)  # a single value: any order
        assert int((await ds.read(c=0, z=0)).min()) == 9
        with pytest.raises(ValueError, match="axes_order names 3"):
            await ds.write(np.zeros((3, 8)), axes_order=["z", "y", "x"], c=0)


async def test_s3_read_and_write_in_axes_order(tmp_path: Path, s3_server: S3Server) -> None:
    container = _ngio_image(tmp_path / "img.zarr", "0.5")
    image = container.get_image()
    url = f"{s3_server.fresh_url()}/img.zarr"
    order = ["y", "x", "c", "z"]
    async with ngio_async.create_async(
        url, shape=DATA.shape, dtype="uint16", axes="czyx", levels=1, **s3_server.options()
    ) as ds:
        await ds.write(image.get_as_numpy(axes_order=order), axes_order=order)
        for selection, wanted in CASES:
            np.testing.assert_array_equal(
                await ds.read(axes_order=wanted, **selection),
                image.get_as_numpy(axes_order=wanted, **selection),
            )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_masked_reads_and_writes_in_axes_order_as_ngio(tmp_path: Path, version: str) -> None:
    container = _ngio_image(tmp_path / "theirs.zarr", version)
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    masked = container.get_masked_image("nuclei")
    order = ["x", "y", "c", "z"]
    theirs_box = masked.get_roi(label=4, c=1, axes_order=order, zoom_factor=1.5)
    theirs_masked = masked.get_roi_masked(label=4, axes_order=["z", "y", "x", "c"], c=[0])
    patch = np.full((6, 4, 1, 3), 77, np.uint16)  # x, y, c, z of object 4's box, channel 1
    masked.set_roi_masked(label=4, patch=patch, c=[1], axes_order=order)
    async with (
        ngio_async.open_async(tmp_path / "mine.zarr", mode="r+") as ds,
        ds.masked("nuclei") as m,
    ):
        box = await m.read(4, c=1, axes_order=order, zoom=1.5)
        np.testing.assert_array_equal(box, theirs_box)
        alone = await m.read(4, masked=True, axes_order=["z", "y", "x", "c"], c=[0])
        np.testing.assert_array_equal(alone, theirs_masked)
        await m.write(4, patch, c=[1], axes_order=order)
        np.testing.assert_array_equal(await ds.read(), container.get_image().get_as_numpy())


def _numbered(patch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Ids that depend on the position along the patch's first axis (a transposed patch or
    result would be written differently)."""
    ramp = (np.arange(patch.shape[0]) % 3 + 1).reshape((-1,) + (1,) * (patch.ndim - 1))
    return np.asarray((patch % 7 > 2) * ramp, dtype=np.uint32)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_roi_stream_in_axes_order_segments_as_ngios_iterator(
    tmp_path: Path, version: str
) -> None:
    import ngio
    from ngio.iterators import SegmentationIterator

    container = _ngio_image(tmp_path / "theirs.zarr", version)
    container.add_table("FOV_ROI_table", container.build_image_roi_table("whole"))
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    order = ["x", "y", "z", "c"]
    seg = container.derive_label("seg", dtype="uint32")
    table = container.get_roi_table("FOV_ROI_table")
    iterator = SegmentationIterator(
        container.get_image(), seg, channel_selection=[0], axes_order=order
    ).product(table)
    iterator.map_as_numpy(_numbered)
    with ngio_async.open(tmp_path / "mine.zarr", mode="r+") as ds:
        with ds.labels.create("seg", dtype="uint32") as out:
            rois = ds.read_rois("FOV_ROI_table", c=[0], axes_order=order, label="nuclei")
            ngio_async.stream_sync(rois, _numbered, out=out, pyramid=True)
        for r in ds.read_rois("FOV_ROI_table", c=0, axes_order="zyx", label="nuclei"):
            assert r.data.shape == (3, 8, 10) and r.labels is not None
            assert r.labels.shape == r.data.shape and r.mask.shape == r.data.shape
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr")).get_label("seg")
    mine = ngio.open_ome_zarr_container(str(tmp_path / "mine.zarr")).get_label("seg")
    assert len(np.unique(mine.get_as_numpy())) == 4
    np.testing.assert_array_equal(mine.get_as_numpy(), theirs.get_as_numpy())
