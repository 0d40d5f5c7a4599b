"""ngio's ROI idioms in ngio_async, on images ngio 1.1.3 writes: a masked image (one object's
box, its pixels alone, masked writes back) and the ROIs of a table read as a prefetched stream,
async and blocking, compared with ngio's ``MaskedImage`` and ``get_roi`` on the same data."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import NotFoundError, ReadOnlyError
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _labels() -> Any:
    lab = np.zeros((3, 32, 40), np.uint16)
    lab[0:2, 4:12, 6:18] = 7
    lab[1:3, 18:30, 22:38] = 12
    lab[2, 0:4, 0:4] = 3
    lab[1, 10:14, 14:20] = 9  # touches 7's box: writing 7 must leave 9's pixels alone
    return lab


def _image(path: Path, version: str = "0.5") -> Any:
    import ngio

    data = np.arange(2 * 3 * 32 * 40, dtype=np.uint16).reshape(2, 3, 32, 40)
    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=0.5,
        z_spacing=2.0,
        levels=2,
        axes_names="czyx",
        channels_meta=["DAPI", "GFP"],
        ngff_version=version,  # type: ignore[arg-type]
    )
    label = c.derive_label("nuclei")
    label.set_array(_labels())
    label.consolidate()
    c.add_table("nuclei_ROI_table", c.build_masking_roi_table("nuclei"))
    return c


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_masked_reads_match_ngio_at_two_levels(tmp_path: Path, version: str) -> None:
    c = _image(tmp_path / "img.zarr", version)
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        for level in (0, 1):
            theirs: Any = c.get_masked_image("nuclei", path=str(level))
            async with ds.masked("nuclei", level=level) as m:
                assert sorted(m.values) == [3, 7, 9, 12]
                for v in m.values:
                    np.testing.assert_array_equal(await m.read(v), theirs.get_roi(v))
                    got = await m.read(v, masked=True)
                    np.testing.assert_array_equal(got, theirs.get_roi_masked(v))
                    gfp = await m.read(v, masked=True, c="GFP")
                    want = theirs.get_roi_masked(v, channel_selection="GFP")
                    np.testing.assert_array_equal(gfp, want)  # the channel axis dropped
                    if level == 0:  # the whole object, nothing else
                        lab = await m.read_label(v)
                        assert (lab == v).sum() == 2 * (_labels() == v).sum()  # 2 channels
                        for z in (1.5, 3.0):  # ngio's zoom_factor (3 runs past a corner)
                            want = theirs.get_roi(v, zoom_factor=z)
                            np.testing.assert_array_equal(await m.read(v, zoom=z), want)
                            want = theirs.get_roi_masked(v, zoom_factor=z)
                            got = await m.read(v, masked=True, zoom=z)
                            np.testing.assert_array_equal(got, want)
            assert m.label_image.closed


async def test_masked_write_matches_ngio_set_roi_masked(tmp_path: Path) -> None:
    c = _image(tmp_path / "a.zarr")
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    theirs: Any = c.get_masked_image("nuclei")
    for v, fill in ((7, 1000), (12, 2000)):
        patch = np.full(theirs.get_roi(v).shape, fill, np.uint16)
        theirs.set_roi_masked(v, patch)
    async with (
        ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds,
        ds.masked("nuclei") as m,
    ):
        box = await m.read(7)
        await m.write(7, np.full(box.shape, 1000, np.uint16))
        await m.write(12, 2000)  # a scalar broadcasts to the box
        with pytest.raises(ValueError, match=r"object 7: data of shape \(1, 2\)"):
            await m.write(7, np.zeros((1, 2), np.uint16))
        mine = await ds.read()
    np.testing.assert_array_equal(mine, c.get_image().get_array())
    assert (mine[:, 1, 10:14, 14:20] != 1000).all()  # object 9 kept its pixels


async def test_masked_errors_name_what_is_missing(tmp_path: Path) -> None:
    _image(tmp_path / "img.zarr")
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        await ds.tables.write_rois("fov", [Roi.box("FOV_1", x=(0.0, 4.0), y=(0.0, 4.0))])
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        with pytest.raises(NotFoundError, match="cells"):  # no such label image
            await ds.masked("cells")
        with pytest.raises(ValueError, match="'fov' is a roi_table, not a masking_roi_table"):
            await ds.masked(table="fov")
        async with ds.masked(table="nuclei_ROI_table") as m:  # the label from the table
            assert m.label_image.url.endswith("labels/nuclei")
            with pytest.raises(KeyError, match=r"label value 5 is not an object .*3, 7, 9, 12"):
                await m.read(5)
            with pytest.raises(ReadOnlyError):
                await m.write(7, np.zeros((2, 2, 8, 12), np.uint16))


async def test_read_rois_streams_a_table_as_ngio_reads_it(tmp_path: Path) -> None:
    c = _image(tmp_path / "img.zarr")
    fovs = [
        Roi.box(f"FOV_{i}", x=(10.0 * i, 10.0 * i + 10.0), y=(0.0, 16.0), z=(0.0, 6.0))
        for i in range(2)
    ]
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        await ds.tables.write_rois("FOV_ROI_table", fovs)
    c = __import__("ngio").open_ome_zarr_container(str(tmp_path / "img.zarr"))
    ngio_rois = c.get_roi_table("FOV_ROI_table").rois()
    image, label = c.get_image(), c.get_label("nuclei")
    async with (
        ngio_async.open_async(tmp_path / "img.zarr") as ds,
        ds.labels.open("nuclei") as lab,
    ):
        got = [r async for r in ds.read_rois("FOV_ROI_table", label=lab, prefetch=1)]
        assert [r.roi.name for r in got] == ["FOV_0", "FOV_1"]
        for r, theirs in zip(got, ngio_rois, strict=True):
            np.testing.assert_array_equal(r.data, image.get_roi(theirs))
            assert r.labels is not None
            np.testing.assert_array_equal(r.labels[0], label.get_roi(theirs))
            np.testing.assert_array_equal(r.masked(), np.where(r.labels != 0, r.data, 0))
        async with ds.read_rois(fovs, level=1, c="DAPI", ordered=False) as rois:
            names = {r.roi.name: r.data.shape async for r in rois}
        assert names == {"FOV_0": (3, 16, 10), "FOV_1": (3, 16, 10)}
        stream = ds.read_rois("FOV_ROI_table")
        first = await stream.__aiter__().__anext__()  # then left: the dataset stops it
        with pytest.raises(RuntimeError, match="iterated once"):
            async with stream:
                pass
        with pytest.raises(ValueError, match="without a label image"):
            _ = first.mask
        outside = Roi.box("far", x=(100.0, 102.0), y=(0.0, 2.0), z=(0.0, 2.0))
        async with ds.read_rois([fovs[0], outside]) as both:
            assert (await both.__anext__()).roi.name == "FOV_0"  # the ROIs before it come
            with pytest.raises(IndexError, match=r"ROI 'far': axis 'x': the world range \(100"):
                await both.__anext__()


async def test_blocking_twin_masked_and_stream(tmp_path: Path) -> None:
    c = _image(tmp_path / "img.zarr")
    theirs: Any = c.get_masked_image("nuclei")
    with ngio_async.open(tmp_path / "img.zarr", mode="r+") as ds:
        with ds.masked("nuclei") as m:
            reads = {int(r.roi.label or 0): r for r in m.stream()}
            assert sorted(reads) == [3, 7, 9, 12]
            for v, r in reads.items():
                np.testing.assert_array_equal(r.masked(), theirs.get_roi_masked(v))
                np.testing.assert_array_equal(m.read(v, masked=True), r.masked())
            m.write(3, np.full(m.read(3).shape, 5, np.uint16))
        theirs.set_roi_masked(3, np.full(theirs.get_roi(3).shape, 5, np.uint16))
        np.testing.assert_array_equal(ds.read(), c.get_image().get_array())
        rois = ds.tables.rois("nuclei_ROI_table")
        with ds.labels.open("nuclei") as lab:
            seen = [(r.roi.label, int(r.mask.sum())) for r in ds.read_rois(rois, label=lab)]
            one = ds.read_roi(rois[0], label=lab, c="GFP")
            np.testing.assert_array_equal(one.masked(), theirs.get_roi_masked(rois[0].label)[1])
        ds.write_roi(rois[0], 0, c="GFP")  # a scalar fills the box, as write() takes it
        np.testing.assert_array_equal(ds.read_roi(rois[0], c="GFP").data, 0)
        assert seen == [(r.label, 2 * int((_labels() == r.label).sum())) for r in rois]


async def test_masking_rois_from_a_label_image_as_ngio_builds_them(tmp_path: Path) -> None:
    c = _image(tmp_path / "img.zarr")
    theirs = {r.label: r for r in c.build_masking_roi_table("nuclei").rois()}
    async with (
        ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds,
        ds.labels.open("nuclei") as lab,
    ):
        mine = await lab.masking_rois()
        assert [r.label for r in mine] == [3, 7, 9, 12]
        for r in mine:
            t = theirs[r.label]
            for a in ("x", "y", "z"):
                want = (t.get(a).start, t.get(a).start + t.get(a).length)
                assert r.ranges[a] == pytest.approx(want), (r.label, a)
        coarse = await lab.masking_rois(level=1)  # the same objects at 1 um pixels
        assert [r.label for r in coarse] == [3, 7, 9, 12]
        assert coarse[1].ranges["x"] == (3.0, 9.0)
        # no masking ROI table for a label image: its boxes are computed, as ngio does
        await ds.tables.delete("nuclei_ROI_table")
        async with ds.masked("nuclei") as m:
            assert m.values == [3, 7, 9, 12]
            masked: Any = c.get_masked_image("nuclei")
            for v in m.values:
                np.testing.assert_array_equal(
                    await m.read(v, masked=True), masked.get_roi_masked(v)
                )


async def test_a_coarser_label_image_lands_on_the_images_pixels(tmp_path: Path) -> None:
    c = _image(tmp_path / "img.zarr")
    coarse = _labels()[:, ::2, ::2]  # 1 um pixels under the image's 0.5 um
    lab_c: Any = c.derive_label("coarse", shape=coarse.shape, pixelsize=1.0)
    lab_c.set_array(coarse)
    c.add_table("coarse_ROI_table", c.build_masking_roi_table("coarse"))
    fine = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)  # on the image's grid
    theirs: Any = c.get_masked_image("coarse")
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        async with ds.masked("coarse") as m:
            assert m.label_image.levels[0].shape == (3, 16, 20)
            for v in m.values:
                np.testing.assert_array_equal(
                    await m.read(v, masked=True), theirs.get_roi_masked(v)
                )
        # a box off the label's pixel edges: each image pixel takes the label pixel at its centre
        box = Roi("odd", {"x": (2.5, 9.0), "y": (1.5, 7.0), "z": (0.0, 6.0)})
        async with ds.labels.open("coarse") as lab:
            (r,) = [r async for r in ds.read_rois([box], label=lab, c="DAPI")]
        assert r.region[2:] == (slice(3, 14), slice(5, 18))
        assert r.labels is not None
        np.testing.assert_array_equal(r.labels, fine[:, 3:14, 5:18])


async def test_masked_and_streams_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img é.zarr"
    options = s3_server.options()
    data = np.arange(2 * 32 * 40, dtype=np.uint16).reshape(2, 32, 40)
    lab = _labels()[1]  # objects 7, 9, 12
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="cyx", scale=0.5, chunks=(1, 8, 8), **options
    ) as ds:
        await ds.write(data)
        nuclei = await ds.labels.create("nuclei", dtype="uint16")
        await nuclei.write(lab)
        rois = await nuclei.masking_rois()
        await nuclei.aclose()
        await ds.tables.write_rois("nuclei_ROI_table", rois, label="nuclei")
    want = data.copy()
    async with (
        ngio_async.open_async(url, mode="r+", **options) as ds,
        ds.masked("nuclei") as m,
    ):
        assert m.values == [7, 9, 12]
        async with m.stream(prefetch=2) as objects:
            async for r in objects:
                v = int(r.roi.label or 0)
                np.testing.assert_array_equal(r.masked(), np.where(r.mask, r.data, 0))
                assert int(r.mask.sum()) == 2 * int((lab == v).sum())
                await m.write(v, np.full(r.data.shape, v, np.uint16))
                want[:, lab == v] = v
        np.testing.assert_array_equal(await ds.read(), want)
        fov = [Roi.box("all", x=(0.0, 20.0), y=(0.0, 16.0))]
        async with ds.labels.open("nuclei") as nuclei_lab:
            (r,) = [r async for r in ds.read_rois(fov, label=nuclei_lab, c=1)]
        np.testing.assert_array_equal(r.data, want[1])
        assert r.labels is not None
        np.testing.assert_array_equal(r.labels, lab)


async def test_a_segmentation_loop_over_fovs_as_ngio_writes_it(tmp_path: Path) -> None:
    import ngio

    _image(tmp_path / "a.zarr")
    fovs = [
        Roi.box(f"FOV_{i}", x=(10.0 * i, 10.0 * i + 10.0), y=(2.0, 15.5), z=(0.0, 6.0))
        for i in range(2)
    ]
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        await ds.tables.write_rois("FOV_ROI_table", fovs)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")

    def segment(pixels: Any) -> Any:
        return (pixels[0] % 7 == 0).astype(np.uint16) * (1 + pixels[0] % 3)

    c: Any = ngio.open_ome_zarr_container(str(tmp_path / "a.zarr"))
    out: Any = c.derive_label("seg", overwrite=True)
    for roi in c.get_roi_table("FOV_ROI_table").rois():
        out.set_roi(roi, segment(c.get_image().get_roi(roi)))
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint32")
        async for r in ds.read_rois("FOV_ROI_table", prefetch=1):
            await seg.write_roi(r.roi, segment(r.data))
        back = await seg.read_roi(fovs[1])
        np.testing.assert_array_equal(
            back.data, out.get_roi(c.get_roi_table("FOV_ROI_table").rois()[1])
        )
        mine = await seg.read()
        await seg.aclose()
    np.testing.assert_array_equal(mine, out.get_array())
    assert mine.any()


async def test_masked_writes_of_overlapping_boxes_run_at_once(tmp_path: Path) -> None:
    import anyio

    c = _image(tmp_path / "img.zarr")
    want = c.get_image().get_array().copy()
    lab = _labels()
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        views = [await ds.masked("nuclei") for _ in range(4)]  # boxes of 7 and 9 overlap
        async with anyio.create_task_group() as tg:
            for m, v in zip(views, (7, 9, 12, 3), strict=True):
                tg.start_soon(m.write, v, 100 + v)
                want[:, lab == v] = 100 + v
        for m in views:
            await m.aclose()
        np.testing.assert_array_equal(await ds.read(), want)


def test_closing_the_blocking_dataset_stops_its_roi_stream(tmp_path: Path) -> None:
    _image(tmp_path / "img.zarr")
    ds = ngio_async.open(tmp_path / "img.zarr")
    rois = ds.tables.rois("nuclei_ROI_table")
    it = ds.read_rois(rois, prefetch=1)
    first = next(it)
    assert first.roi == rois[0]
    ds.close()
    with pytest.raises(ngio_async.ClosedError, match="was closed"):
        next(it)


async def test_masked_over_http_reads_as_ngio_and_refuses_writes(
    http_root: Path, http_server: StaticServer
) -> None:
    c = _image(http_root / "img.zarr")
    theirs: Any = c.get_masked_image("nuclei")
    async with (
        ngio_async.open_async(http_server.url + "img.zarr") as ds,
        ds.masked("nuclei") as m,
    ):
        got = {int(r.roi.label or 0): r.masked() async for r in m.stream()}
        assert sorted(got) == [3, 7, 9, 12]
        for v, pixels in got.items():
            np.testing.assert_array_equal(pixels, theirs.get_roi_masked(v))
        with pytest.raises(ReadOnlyError):
            await m.write(7, 0)


async def test_a_label_image_masked_by_another_as_ngio(tmp_path: Path) -> None:
    c = _image(tmp_path / "a.zarr")
    cells = (np.arange(3 * 32 * 40, dtype=np.uint16).reshape(3, 32, 40) // 97) % 5
    c.derive_label("cells").set_array(cells)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    theirs: Any = c.get_masked_label("cells", "nuclei")
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        async with ds.masked("nuclei", of="cells") as m:
            assert m.image.url.endswith("labels/cells")
            for v in m.values:
                got = await m.read(v, masked=True)
                np.testing.assert_array_equal(got, theirs.get_roi_masked(v))
            await m.write(7, 40)
            theirs.set_roi_masked(7, np.full(theirs.get_roi(7).shape, 40, np.uint16))
            want = c.get_label("cells").get_array()
            np.testing.assert_array_equal(await m.image.read(), want)
        assert m.image.closed and m.label_image.closed  # both opened for it
        assert not ds.closed and (await ds.read()).shape == (2, 3, 32, 40)


async def test_rois_plane_by_plane_as_ngio_reads_them(tmp_path: Path) -> None:
    c = _image(tmp_path / "img.zarr")
    theirs: Any = c.get_masked_image("nuclei")
    label = c.get_label("nuclei")
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        rois = await ds.tables.rois("nuclei_ROI_table")
        async with ds.labels.open("nuclei") as lab:
            got = [r async for r in ds.read_rois(rois, label=lab, planes=("z",), prefetch=2)]
        want = [(r, k) for r in rois for k in range(label.get_roi(_ngio_roi(c, r)).shape[0])]
        assert [(r.roi.name, r.region[1]) for r in got] == [
            (r.name, int(r.ranges["z"][0] / 2) + k) for r, k in want
        ]
        for r, (roi, k) in zip(got, want, strict=True):
            assert r.data.ndim == 3 and r.labels is not None  # c, y, x: z dropped
            np.testing.assert_array_equal(r.data, theirs.get_roi(roi.label)[:, k])
            np.testing.assert_array_equal(r.labels[0], label.get_roi(_ngio_roi(c, roi))[k])
        async with ds.masked("nuclei") as m:
            planes = [r async for r in m.stream([12], planes=["z"], c="GFP")]
        assert [p.data.shape for p in planes] == [(12, 16), (12, 16)]  # object 12: z 1 and 2
        for k, p in enumerate(planes):
            np.testing.assert_array_equal(p.masked(), theirs.get_roi_masked(12)[1, k])
        with pytest.raises(ValueError, match="planes takes a sequence of 'z' and 't'"):
            ds.read_rois(rois, planes="z")


def _ngio_roi(c: Any, roi: Roi) -> Any:
    return c.get_masking_roi_table("nuclei_ROI_table").get_label(roi.label)
