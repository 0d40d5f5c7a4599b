"""The same ``segment`` over the same image through ngio 1.1.3's ``SegmentationIterator`` /
``MaskedSegmentationIterator`` and through ``ngio_async.stream`` gives the same label image:
level 0 equal; the lower levels are each library's own downsampling of it (ngio's labels:
order-0 resize; ngio_async's: 'mode' by default), equal once ngio consolidates ours."""

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
DATA = np.random.default_rng(11).integers(0, 200, (2, 3, 40, 48), dtype=np.uint16)
NUCLEI = np.zeros(DATA.shape[1:], np.uint32)
NUCLEI[:, 2:14, 3:20] = 1
NUCLEI[1:, 18:37, 22:45] = 2
NUCLEI[0, 30:38, 2:9] = 3
NUCLEI[:, 5:11, 6:16] = 0  # holes: the boxes hold pixels of no object
NUCLEI[1:, 18:28, 22:32] = 0


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Pixel by pixel: the same wherever the tile or ROI boundaries fall."""
    out: np.ndarray[Any, Any] = ((a > 100) * (1 + a % 5)).astype(np.uint32)
    return out


def _ngio_image(path: Path, version: str) -> Any:
    """The image (DAPI, GFP; 3 levels) and its label image ``nuclei``, written by ngio."""
    import ngio

    c: Any = ngio.create_ome_zarr_from_array(
        str(path), DATA, pixelsize=0.5, z_spacing=1.0, levels=3, axes_names="czyx",
        chunks=(1, 1, 16, 16), channels_meta=["DAPI", "GFP"],
        ngff_version=version,  # type: ignore[arg-type]
    )  # fmt: skip
    nuclei = c.derive_label("nuclei", dtype="uint32")
    nuclei.set_array(NUCLEI)
    nuclei.consolidate()
    return c


def _ngio_levels(path: Path, name: str) -> list[np.ndarray[Any, Any]]:
    import ngio

    c: Any = ngio.open_ome_zarr_container(str(path))
    return [np.asarray(c.get_label(name, path=str(i)).get_as_numpy()) for i in range(3)]


def _ngio_segment(path: Path, masked: bool) -> list[np.ndarray[Any, Any]]:
    """ngio's iterator writes label ``seg`` (ngio derives it; its pyramid: ngio's)."""
    import ngio
    from ngio.iterators import MaskedSegmentationIterator, SegmentationIterator

    c: Any = ngio.open_ome_zarr_container(str(path))
    seg = c.derive_label("seg", dtype="uint32")
    if masked:
        image = c.get_masked_image("nuclei")
        it: Any = MaskedSegmentationIterator(image, seg, channel_selection="DAPI", axes_order="zyx")
    else:
        image = c.get_image()
        it = SegmentationIterator(image, seg, channel_selection="DAPI", axes_order="zyx")
        it = it.by_chunks()
    it.map_as_numpy(segment)
    return _ngio_levels(path, "seg")


async def _ours(ds: Any, masked: bool) -> list[np.ndarray[Any, Any]]:
    """ngio_async writes label ``seg`` with the pyramid (default: 'mode')."""
    seg = await ds.labels.create("seg", dtype="uint32")
    await seg.aclose()
    if masked:
        async with await ds.masked("nuclei", of="seg") as m, ds.labels.open("nuclei") as n:
            rois = ds.read_rois([m.roi(v) for v in m.values], label=n, c="DAPI")
            await ngio_async.stream(rois, segment, out=m, pyramid=True)
    else:
        async with ds.labels.open("seg", mode="r+") as seg:
            await ngio_async.stream(ds.tiles(c="DAPI"), segment, out=seg, pyramid=True)
    async with ds.labels.open("seg") as seg:
        return [await seg.read(level=i) for i in range(len(seg.levels))]


async def _check(ours: list[Any], theirs: list[Any], ds: Any, ours_path: Path | None) -> None:
    """Level 0 equal; our lower levels our pyramid of it; ngio's consolidation of ours gives
    every level of ngio's."""
    np.testing.assert_array_equal(theirs[0], ours[0])
    ref = await ds.labels.create("ref", dtype="uint32")
    await ref.write(ours[0], pyramid=True)
    for i in (1, 2):
        np.testing.assert_array_equal(ours[i], await ref.read(level=i))
    await ref.aclose()
    assert ours[0].any()
    if ours_path is not None:
        import ngio

        ngio.open_ome_zarr_container(str(ours_path)).get_label("seg").consolidate()
        for got, want in zip(_ngio_levels(ours_path, "seg"), theirs, strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("masked", [False, True], ids=["tiles", "masked"])
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_same_label_image_as_ngio(tmp_path: Path, version: str, masked: bool) -> None:
    _ngio_image(tmp_path / "ngio.zarr", version)
    shutil.copytree(tmp_path / "ngio.zarr", tmp_path / "ours.zarr")
    theirs = _ngio_segment(tmp_path / "ngio.zarr", masked)
    want0 = segment(DATA[0])
    np.testing.assert_array_equal(theirs[0], np.where(NUCLEI > 0, want0, 0) if masked else want0)
    async with ngio_async.open_async(tmp_path / "ours.zarr", mode="r+") as ds:
        ours = await _ours(ds, masked)
        await _check(ours, theirs, ds, tmp_path / "ours.zarr")


async def test_same_label_image_as_ngio_on_s3(tmp_path: Path, s3_server: S3Server) -> None:
    from images import upload

    from ngio_async.stores import open_store

    _ngio_image(tmp_path / "ngio.zarr", "0.5")
    url = s3_server.fresh_url() + "/img.zarr"
    options = s3_server.options()
    async with open_store(url, **options) as store:
        await upload(tmp_path / "ngio.zarr", store)
    theirs = _ngio_segment(tmp_path / "ngio.zarr", masked=False)
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        ours = await _ours(ds, masked=False)
        await _check(ours, theirs, ds, None)
