"""What ngio 1.1.3 does that a plain ROI stream does not, as options of ``stream``:
``masked=True`` (``MaskedSegmentationIterator`` hands the function the object's pixels alone)
and ``unique_labels=n`` (``UniqueLabelsTransform(n)``: each ROI's ids in a block of their
own); same label image as ngio's, level 0 (the lower levels: see test_segflow_ngio)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_segflow_ngio import DATA, NUCLEI, _ngio_image

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def otsu_ish(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Not pixel by pixel: above the box's mean (what the box holds outside the object
    matters), numbered 1 (dim) and 2 (bright)."""
    out: np.ndarray[Any, Any] = ((a > a.mean()).astype(np.uint32) * (1 + (a > 150))).astype(
        np.uint32
    )
    return out


def _ngio_masked(path: Path, block: int | None) -> np.ndarray[Any, Any]:
    import ngio
    from ngio.iterators import MaskedSegmentationIterator
    from ngio.transforms import UniqueLabelsTransform

    c: Any = ngio.open_ome_zarr_container(str(path))
    seg = c.derive_label("seg", dtype="uint32")
    transforms = None if block is None else [UniqueLabelsTransform(block)]
    it = MaskedSegmentationIterator(
        c.get_masked_image("nuclei"), seg, channel_selection="DAPI", axes_order="zyx",
        output_transforms=transforms,
    )  # fmt: skip
    it.map_as_numpy(otsu_ish)
    got: np.ndarray[Any, Any] = np.asarray(c.get_label("seg").get_as_numpy())
    return got


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_masked_and_unique_labels_as_ngio(tmp_path: Path, version: str) -> None:
    _ngio_image(tmp_path / "ngio.zarr", version)
    for name in ("a", "b", "c"):
        shutil.copytree(tmp_path / "ngio.zarr", tmp_path / f"{name}.zarr")
    theirs = _ngio_masked(tmp_path / "a.zarr", None)
    theirs_unique = _ngio_masked(tmp_path / "b.zarr", 10)
    assert theirs.any() and set(np.unique(theirs_unique)) - {0, 1, 2} >= {11, 12}
    async with ngio_async.open_async(tmp_path / "c.zarr", mode="r+") as ds:
        await (await ds.labels.create("seg", dtype="uint32")).aclose()
        for kw, want in (({}, None), ({"masked": True}, theirs), ({"masked": True, "unique_labels": 10}, theirs_unique)):  # fmt: skip
            async with ds.labels.open("seg", mode="r+") as seg:
                await seg.write(0)
            async with await ds.masked("nuclei", of="seg") as m, ds.labels.open("nuclei") as n:
                # the image's DAPI pixels of each object's box, with the object's labels
                rois = ds.read_rois([m.roi(v) for v in m.values], label=n, c="DAPI")
                await ngio_async.stream(rois, otsu_ish, out=m, pyramid=True, **kw)
            async with ds.labels.open("seg") as seg:
                got = await seg.read()
            if want is None:  # the box's pixels outside the object count: not ngio's
                assert not np.array_equal(got, theirs)
            else:
                np.testing.assert_array_equal(got, want)
        assert NUCLEI.any()


async def test_unique_labels_of_tiles_and_table_rois(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=DATA.shape, dtype="uint16", axes="czyx",
        chunks=(1, 1, 16, 16), levels=2, channels=["DAPI", "GFP"],
    ) as ds:  # fmt: skip
        await ds.write(DATA)
        seg = await ds.labels.create("seg", dtype="uint32")

        def ones(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:  # one object per tile
            return np.ones(a.shape, np.uint32)

        tiles = ds.tiles(c="DAPI", shape=(1, 3, 20, 24))  # a 2 x 2 grid
        await ngio_async.stream(tiles, ones, out=seg, unique_labels=100, pyramid=True)
        got = await seg.read()
        assert got[0, 0, 0] == 1 and got[0, 0, 24] == 101  # block k * 100 + id
        assert got[0, 20, 0] == 201 and got[0, 20, 24] == 301
        rois = [Roi("r0", {"y": (0.0, 10.0), "x": (0.0, 10.0)}), Roi("r1", {"y": (10.0, 20.0), "x": (0.0, 10.0)})]  # fmt: skip
        await ngio_async.stream(ds.read_rois(rois, c="DAPI"), ones, out=seg, unique_labels=5)
        got = await seg.read()
        assert got[0, 0, 0] == 1 and got[0, 10, 0] == 6
        with pytest.raises(ValueError, match=r"ids 0..7 for ROI 'r0'.*must be in 0..4"):
            await ngio_async.stream(
                ds.read_rois(rois, c="DAPI"), lambda a: a % 8, out=seg, unique_labels=5
            )
        with pytest.raises(ValueError, match=r"unique_labels must be a positive integer"):
            ngio_async.stream(ds.read_rois(rois, c="DAPI"), ones, out=seg, unique_labels=0)
        with pytest.raises(ValueError, match=r"masked=True.*label=lab"):
            ngio_async.stream(ds.read_rois(rois, c="DAPI"), ones, out=seg, masked=True)
        await seg.aclose()
