"""``stream(ds.read_rois(..., c="DAPI"), segment, out=<label>, pyramid=True)``: each ROI's
result written at level 0 and the label image's lower levels built as they land (one cascade
for the stream), equal to the label written whole with ``pyramid=True``; rebuilt over what
landed when the stream fails; ``out=`` a masked image and ``stream_sync`` the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
DATA = np.random.default_rng(7).integers(0, 200, (2, 3, 40, 48), dtype=np.uint16)
# four FOVs (pixel size 1): not on the 16-pixel chunks, nor on the downsampling windows
FOVS = [
    Roi(f"FOV_{i}", {"z": (0.0, 3.0), "y": (y0, y1), "x": (x0, x1)})
    for i, ((y0, y1), (x0, x1)) in enumerate(
        [((0, 21), (0, 25)), ((0, 21), (25, 48)), ((21, 40), (0, 25)), ((21, 40), (25, 48))]
    )
]


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = ((a > 100) * (1 + a % 5)).astype(np.uint16)
    return out


async def _image(path: Path) -> None:
    async with ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16),
        levels=3, channels=["DAPI", "GFP"],
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)
        await ds.tables.write_rois("FOV_ROI_table", FOVS)


async def _levels(lab: Any) -> list[np.ndarray[Any, Any]]:
    return [await lab.read(level=i) for i in range(len(lab.levels))]


async def _pyramid_of(ds: Any, name: str, level0: np.ndarray[Any, Any]) -> list[Any]:
    """Every level of a new label image ``name`` holding ``level0``, written with pyramid."""
    ref = await ds.labels.create(name, dtype="uint16")
    await ref.write(level0, pyramid=True)
    out = await _levels(ref)
    await ref.aclose()
    return out


def _same(got: list[Any], want: list[Any]) -> None:
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


async def test_roi_stream_builds_the_label_pyramid(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        want = await _pyramid_of(ds, "ref", segment(DATA[0]))
        lab = await ds.labels.create("seg", dtype="uint16")
        rois = ds.read_rois("FOV_ROI_table", c="DAPI")
        assert await ngio_async.stream(rois, segment, out=lab, pyramid=True) is None
        _same(await _levels(lab), want)
        # without pyramid=: level 0 alone (as before)
        plain = await ds.labels.create("plain", dtype="uint16")
        await ngio_async.stream(ds.read_rois("FOV_ROI_table", c="DAPI"), segment, out=plain)
        got = await _levels(plain)
        np.testing.assert_array_equal(got[0], want[0])
        assert not got[1].any() and not got[2].any()
        for d in (lab, plain):
            await d.aclose()


async def test_a_failing_roi_stream_leaves_the_pyramid_following_level_0(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr")

    def third_fails(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if a[0, 0, 0] == DATA[0, 0, 21, 0]:  # FOV_2's first pixel
            raise RuntimeError("segmentation failed")
        return segment(a)

    assert DATA[0, 0, 21, 0] not in (DATA[0, 0, 0, 0], DATA[0, 0, 0, 25], DATA[0, 0, 21, 25])
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.create("seg", dtype="uint16")
        rois = ds.read_rois("FOV_ROI_table", c="DAPI")
        with pytest.raises(RuntimeError, match="segmentation failed"):
            await ngio_async.stream(rois, third_fails, out=lab, pyramid=True, window=1)
        got = await _levels(lab)
        level0 = segment(DATA[0])
        level0[:, 21:, :] = 0  # FOV_2 failed, FOV_3 not read after (one ROI at a time)
        np.testing.assert_array_equal(got[0], level0)
        _same(got, await _pyramid_of(ds, "ref", level0))
        await lab.aclose()


async def test_masked_roi_stream_writes_inside_the_objects_with_the_pyramid(
    tmp_path: Path,
) -> None:
    """(ngio's MaskedSegmentationIterator: the result written only where each object is.)"""
    await _image(tmp_path / "a.zarr")
    nuclei = np.zeros(DATA.shape[1:], np.uint16)
    nuclei[:, 2:14, 3:20] = 1
    nuclei[1:, 18:37, 22:45] = 2
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        n = await ds.labels.create("nuclei", dtype="uint16")
        await n.write(nuclei, pyramid=True)
        await ds.tables.write_rois("nuclei_ROI_table", await n.masking_rois(), label="nuclei")
        seg = await ds.labels.create("seg", dtype="uint16")
        await seg.write(9, pyramid=True)  # what the objects' boxes keep outside them
        await seg.aclose()
        async with await ds.masked("nuclei", of="seg") as m:
            rois = ds.read_rois("nuclei_ROI_table", label=n, c="DAPI")
            await ngio_async.stream(rois, segment, out=m, pyramid=True)
        level0 = np.where(nuclei > 0, segment(DATA[0]), 9).astype(np.uint16)
        async with ds.labels.open("seg") as seg:
            _same(await _levels(seg), await _pyramid_of(ds, "ref", level0))
        await n.aclose()


def test_stream_sync_builds_the_pyramid(tmp_path: Path) -> None:
    import anyio

    anyio.run(_image, tmp_path / "a.zarr")
    with ngio_async.open(tmp_path / "a.zarr", mode="r+") as ds:
        with ds.labels.create("seg", dtype="uint16") as lab:
            rois = ds.read_rois("FOV_ROI_table", c="DAPI")
            assert ngio_async.stream_sync(rois, segment, out=lab, pyramid="nearest") is None
            got = [lab.read(level=i) for i in range(3)]
        with ds.labels.create("ref", dtype="uint16") as ref:
            ref.write(segment(DATA[0]), pyramid="nearest")
            _same(got, [ref.read(level=i) for i in range(3)])
