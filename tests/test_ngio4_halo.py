"""ROIs read with a halo (``read_rois(..., halo=)``, ``m.stream(halo=)``), against ngio 1.1.3's
``SegmentationIterator(...).with_halo()`` and ``MaskedSegmentationIterator(...).with_halo()``
on the same images: each ROI read grown by the halo (clipped at the image's edges), ``func``
sees the grown pixels, only the ROI's own box of its result is written."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

HALO = {"x": 3, "y": 2}


def _neighbours(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Ids from each pixel and its 4 neighbours in y/x: a ROI's border pixels depend on the
    pixels around it (without the halo they would differ)."""
    a = np.asarray(a, dtype=np.int64)
    out = a.copy()
    out[..., 1:, :] += a[..., :-1, :]
    out[..., :-1, :] += a[..., 1:, :]
    out[..., :, 1:] += a[..., :, :-1]
    out[..., :, :-1] += a[..., :, 1:]
    return np.asarray(out % 5 + 1, dtype=np.uint32)


def _image(path: Path, version: str, axes: str = "yx") -> Any:
    import ngio

    rng = np.random.default_rng(1)
    shape = (40, 50) if axes == "yx" else (1, 40, 50)
    data = rng.integers(0, 100, shape, dtype=np.uint16)
    container = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=0.5,
        axes_names=axes,
        levels=2,
        ngff_version=version,  # type: ignore[arg-type]
    )
    nuclei = np.zeros((40, 50), np.uint32)
    nuclei[0:10, 0:12] = 1  # in the corner: its halo clipped on two sides
    nuclei[15:30, 20:35] = 2
    nuclei[18:22, 22:26] = 0  # a hole: not written by the masked stream
    nuclei[32:40, 40:50] = 3  # at the bottom-right edge
    label = container.derive_label("nuclei")
    label.set_array(nuclei)
    label.consolidate()
    container.add_table("nuclei_ROI_table", container.build_masking_roi_table("nuclei"))
    return container


def _ours(rois: list[Any]) -> list[Roi]:
    """ngio's ROIs (its grid's tiles) as ours: the same boxes and names."""
    out = []
    for r in rois:
        ranges = {a: (r.get(a).start, r.get(a).start + r.get(a).length) for a in "yx"}
        out.append(Roi(r.get_name(), ranges))
    return out


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_halo_rois_segment_as_ngios_with_halo(tmp_path: Path, version: str) -> None:
    import ngio
    from ngio.iterators import SegmentationIterator

    container = _image(tmp_path / "theirs.zarr", version, "cyx")
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    seg = container.derive_label("seg", dtype="uint32")
    table = container.build_image_roi_table("whole")
    iterator = (
        SegmentationIterator(
            container.get_image(), seg, channel_selection=[0], axes_order=["c", "y", "x"]
        )
        .product(table)
        .by_grid(size_x=16, size_y=16)
        .with_halo(**HALO)
    )
    iterator.map_as_numpy(_neighbours)
    grid = _ours(iterator.rois)  # 3 x 4 tiles, the last ones clipped (40 x 50)
    with ngio_async.open(tmp_path / "mine.zarr", mode="r+") as ds:
        with ds.labels.create("seg", dtype="uint32") as out:
            rois = ds.read_rois(grid, c=[0], halo=HALO, label="nuclei", axes_order="cyx")
            ngio_async.stream_sync(rois, _neighbours, out=out, pyramid="ngio")
        with ds.labels.create("plain", dtype="uint32") as out:
            ngio_async.stream_sync(ds.read_rois(grid, c=[0]), _neighbours, out=out)
            plain = out.read()
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr"))
    mine = ngio.open_ome_zarr_container(str(tmp_path / "mine.zarr"))
    for path in ("0", "1"):
        np.testing.assert_array_equal(
            mine.get_label("seg", path=path).get_as_numpy(),
            theirs.get_label("seg", path=path).get_as_numpy(),
        )
    # without the halo the tiles' borders differ: the halo is what made them equal
    assert (plain[0] != theirs.get_label("seg").get_as_numpy()).sum() > 100


@pytest.mark.parametrize("how", ["table", "masked_image"])
def test_masked_halo_rois_as_ngios_masked_iterator(tmp_path: Path, how: str) -> None:
    import ngio
    from ngio.iterators import MaskedSegmentationIterator

    container = _image(tmp_path / "theirs.zarr", "0.4")
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    seg = container.derive_label("seg", dtype="uint32")
    masked = container.get_masked_image("nuclei")
    MaskedSegmentationIterator(masked, seg).with_halo(**HALO).map_as_numpy(_neighbours)
    with (
        ngio_async.open(tmp_path / "mine.zarr", mode="r+") as ds,
        ds.labels.create("seg", dtype="uint32") as out,
    ):
        if how == "table":
            rois = ds.read_rois("nuclei_ROI_table", halo=HALO, label="nuclei")
            ngio_async.stream_sync(rois, _neighbours, out=out, masked=True, pyramid="ngio")
        else:
            with ds.masked("nuclei") as m:
                rois = m.stream(halo=HALO)
                ngio_async.stream_sync(rois, _neighbours, out=out, masked=True, pyramid="ngio")
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr"))
    mine = ngio.open_ome_zarr_container(str(tmp_path / "mine.zarr"))
    for path in ("0", "1"):
        got = mine.get_label("seg", path=path).get_as_numpy()
        np.testing.assert_array_equal(got, theirs.get_label("seg", path=path).get_as_numpy())
    nuclei = theirs.get_label("nuclei").get_as_numpy()
    got = mine.get_label("seg").get_as_numpy()
    assert (got > 0).sum() == (nuclei > 0).sum()
    assert not got[nuclei == 0].any()  # the hole and the boxes' corners not written


async def test_a_halo_read_grows_the_box_clipped_at_the_edges(tmp_path: Path) -> None:
    _image(tmp_path / "img.zarr", "0.5", "cyx")
    rois = [
        Roi("corner", {"y": (0.0, 5.0), "x": (0.0, 6.0)}),
        Roi("middle", {"y": (5.0, 10.0), "x": (8.0, 12.0)}),
        Roi("edge", {"y": (15.0, 20.0), "x": (20.0, 25.0)}),
    ]
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        whole = await ds.read(c=0)
        labels = await (await ds.labels.open("nuclei")).read()
        got = [r async for r in ds.read_rois(rois, c=0, halo=HALO, label="nuclei")]
        assert [r.region for r in got] == [
            (0, slice(0, 12), slice(0, 15)),
            (0, slice(8, 22), slice(13, 27)),
            (0, slice(28, 40), slice(37, 50)),
        ]
        assert [r.core for r in got] == [
            (0, slice(0, 10), slice(0, 12)),
            (0, slice(10, 20), slice(16, 24)),
            (0, slice(30, 40), slice(40, 50)),
        ]
        for r in got:
            assert r.core is not None and r.labels is not None
            np.testing.assert_array_equal(r.data, whole[r.region[1:]])
            np.testing.assert_array_equal(r.labels, labels[r.region[1:]])
            np.testing.assert_array_equal(r.core_data, whole[r.core[1:]])
            np.testing.assert_array_equal(r.crop(r.labels), labels[r.core[1:]])
        # in an axes order, the grown read and its core are in that order too
        ordered = [r async for r in ds.read_rois(rois[1:2], halo=HALO, axes_order="xyc")]
        assert ordered[0].data.shape == (14, 14, 1)
        np.testing.assert_array_equal(ordered[0].core_data[..., 0], whole[10:20, 16:24].T)
        # level 1: the halo counts that level's pixels
        (one,) = [r async for r in ds.read_rois(rois[1:2], 1, c=0, halo={"x": 1})]
        assert one.region == (0, slice(5, 10), slice(7, 13))
        assert one.core == (0, slice(5, 10), slice(8, 12))
        # no halo: region is the box
        (bare,) = [r async for r in ds.read_rois(rois[1:2], c=0)]
        assert bare.core is None and bare.region == got[1].core
        cases: list[tuple[Any, str]] = [
            ({"q": 2}, "'q' is not an axis"),
            ({"c": 2}, "not a space or time axis"),
            ({"x": -1}, "pixels >= 0"),
            ({"x": 1.5}, "pixels >= 0"),
        ]
        for bad, match in cases:
            with pytest.raises(ValueError, match=match):
                ds.read_rois(rois, halo=bad)
        with pytest.raises(TypeError, match="pixels per axis name"):
            ds.read_rois(rois, halo=3)  # type: ignore[arg-type]


async def test_halo_rois_streamed_to_s3(tmp_path: Path, s3_server: S3Server) -> None:
    container = _image(tmp_path / "img.zarr", "0.5")
    image = container.get_image().get_as_numpy()
    url = f"{s3_server.fresh_url()}/img.zarr"
    rois = [
        Roi(f"t{i}{j}", {"y": (i * 10.0, i * 10.0 + 10), "x": (j * 12.5, j * 12.5 + 12.5)})
        for i in range(2)
        for j in range(2)
    ]
    opts = s3_server.options()
    async with ngio_async.create_async(
        url, shape=image.shape, dtype="uint16", axes="yx", scale=0.5, levels=2, **opts
    ) as ds:
        await ds.write(image, pyramid=True)
        async with await ds.labels.create("seg", dtype="uint32") as out:
            await ngio_async.stream(
                ds.read_rois(rois, halo={"y": 4, "x": 4}), _neighbours, out=out, pyramid=True
            )
            got = await out.read()
    np.testing.assert_array_equal(got, _neighbours(image))  # as if computed whole


async def test_a_halo_stream_into_the_image_read_is_refused(tmp_path: Path) -> None:
    _image(tmp_path / "img.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        before = await ds.read()
        rois = ds.read_rois("nuclei_ROI_table", halo=HALO, label="nuclei")
        with pytest.raises(ValueError, match="depend on the order"):
            ngio_async.stream(rois, _neighbours, out=ds)
        async with ds.masked("nuclei") as m:
            with pytest.raises(ValueError, match="depend on the order"):
                ngio_async.stream(m.stream(halo=HALO), _neighbours, out=m)
        np.testing.assert_array_equal(await ds.read(), before)
