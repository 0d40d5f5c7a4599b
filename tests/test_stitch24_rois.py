"""``stream(ds.read_rois(rois, halo=...), f, out=label, unique_labels=n, stitch=...)``: objects
cut by the edges of ROIs (FOVs read with a halo, or overlapping FOVs as a microscope takes
them) get one id, as ngio 1.1.3's ``SegmentationIterator(...).product(rois).with_halo(...)
.with_stitch(...)`` joins them: the same objects, on 0.4 and 0.5, with the pyramid following;
the ids joined rewritten in one pass (each stored object once); refused at the call where it
cannot stitch (masked=True, without unique_labels), nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngio4_stitch import _image, _same_objects, _whole

import ngio_async
from ngio_async import StitchConfig
from ngio_async.images._stitch import RoiStitch
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

FOVS = [(y, x, 32) for y in (0, 32) for x in (0, 32)]  # 4 FOVs of 32 x 32 pixels, abutting
OVERLAPPING = [(y, x, 40) for y in (0, 24) for x in (0, 24)]  # 4 of 40 x 40, 16 shared


def _rois(boxes: list[tuple[int, int, int]]) -> list[Roi]:
    return [
        Roi(f"FOV_{i}", {"y": (y * 0.5, (y + n) * 0.5), "x": (x * 0.5, (x + n) * 0.5)})
        for i, (y, x, n) in enumerate(boxes)
    ]


def _ngio(path: Path, name: str, boxes: list[tuple[int, int, int]], halo: int) -> Any:
    import ngio
    from ngio import Roi as NgioRoi
    from ngio.iterators import SegmentationIterator, StitchConfig as NgioStitchConfig

    container = ngio.open_ome_zarr_container(str(path))
    rois = [
        NgioRoi.from_values(
            {"y": slice(y * 0.5, (y + n) * 0.5), "x": slice(x * 0.5, (x + n) * 0.5)},
            name=f"FOV_{i}",
        )
        for i, (y, x, n) in enumerate(boxes)
    ]
    it = SegmentationIterator(
        container.get_image(), container.derive_label(name, dtype="uint32")
    ).product(rois)
    if halo:
        it = it.with_halo(x=halo, y=halo)
    config = NgioStitchConfig(block_size=1000, iou_threshold=0.4, compact=False)
    it.with_stitch(config).segment(_whole)
    return ngio.open_ome_zarr_container(str(path)).get_label(name).get_as_numpy()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_stitched_rois_join_objects_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    path = tmp_path / "img.zarr"
    ngio.create_ome_zarr_from_array(
        str(path), _image(), pixelsize=0.5, axes_names="yx", levels=2,
        ngff_version=version,  # type: ignore[arg-type]
    )  # fmt: skip
    cases = [("halo", FOVS, 8), ("overlap", OVERLAPPING, 0)]
    theirs = {name: _ngio(path, name, boxes, halo) for name, boxes, halo in cases}
    async with ngio_async.open_async(path, mode="r+") as ds:
        for name, boxes, halo in cases:
            async with await ds.labels.create(f"mine_{name}", dtype="uint32") as lab:
                rois = ds.read_rois(_rois(boxes), halo={"y": halo, "x": halo} if halo else None)
                run = ngio_async.stream(
                    rois, _whole, out=lab, unique_labels=1000, stitch=0.4, pyramid=True
                )
                await run
                mine = await lab.read()
                level1 = await lab.read(level=1)
                await lab.build_pyramid()  # the pyramid followed the rewrite
                np.testing.assert_array_equal(await lab.read(level=1), level1)
            assert _same_objects(mine, theirs[name]), name
            assert _same_objects(mine, _whole(_image())), name  # 5 objects, each one id
            assert run.stitched is not None and run.stitched.rewrites == 1  # one stored object
            assert len(run.stitched.mapping()) == 9, name
        # without stitch: each FOV's part of an object its own id
        async with await ds.labels.create("plain", dtype="uint32") as lab:
            rois = ds.read_rois(_rois(FOVS), halo={"y": 8, "x": 8})
            await ngio_async.stream(rois, _whole, out=lab, unique_labels=1000)
            assert len(np.unique(await lab.read())) - 1 == 6  # the bar: 2 ids


async def test_stitched_rois_on_s3_and_blocking(s3_server: S3Server, tmp_path: Path) -> None:
    img = _image()
    url = f"{s3_server.fresh_url()}/img.zarr"
    async with ngio_async.create_async(
        url, shape=img.shape, dtype="uint16", axes="yx", scale=0.5, chunks=(32, 32),
        shards=False, **s3_server.options(),
    ) as ds:  # fmt: skip
        await ds.write(img)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            rois = ds.read_rois(_rois(FOVS), halo={"y": 8, "x": 8})
            run = ngio_async.stream(
                rois,
                _whole,
                out=lab,
                unique_labels=100,
                stitch=StitchConfig(iou_threshold=0.5),
            )
            await run
            got = await lab.read()
            chunks = lab.levels[0].meta.stored_chunks
    assert _same_objects(got, _whole(img))
    assert chunks == (32, 32), chunks
    # the bar's part in FOV 3 took FOV 2's id: the one stored object holding it rewritten
    assert run.stitched is not None and run.stitched.rewrites == 1
    with ngio_async.create(
        tmp_path / "b.zarr", shape=img.shape, dtype="uint16", axes="yx", scale=0.5
    ) as sds:
        sds.write(img)
        with sds.labels.create("seg", dtype="uint16") as slab:
            ngio_async.stream_sync(
                sds.read_rois(_rois(OVERLAPPING)), _whole, out=slab, unique_labels=100,
                stitch=True,
            )  # fmt: skip
            assert _same_objects(slab.read(), _whole(img))


async def test_roi_results_held_until_their_neighbours_landed(tmp_path: Path) -> None:
    img = _image()
    strips = [(0, x, 8) for x in range(0, 64, 8)]  # 8 FOVs of 64 x 8 pixels side by side
    rois = [
        Roi(f"S{i}", {"y": (0.0, 32.0), "x": (x * 0.5, (x + n) * 0.5)})
        for i, (_, x, n) in enumerate(strips)
    ]
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx", scale=0.5
    ) as ds:
        await ds.write(img)
        await ds.tables.write_rois("strips", rois)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            run = ngio_async.stream(
                ds.read_rois("strips", halo={"x": 3}),
                _whole,
                out=lab,
                unique_labels=100,
                stitch=True,
                threads=1,
            )
            await run
            got = await lab.read()
    assert _same_objects(got, _whole(img))  # the bar across all 8: one id
    stitch = run.stitched
    assert isinstance(stitch, RoiStitch) and stitch.partners is not None
    assert stitch.partners[3] == {2, 4}  # each strip meets its two neighbours alone
    assert not stitch.landed and stitch.held_peak <= 3  # (not all 8 results held)


async def test_roi_stitch_refused_at_the_call(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(64, 64), dtype="uint16", axes="yx", scale=0.5
    ) as ds:
        await ds.write(_image())
        lab = await ds.labels.create("seg", dtype="uint32")
        rois = ds.read_rois(_rois(FOVS), halo={"y": 8, "x": 8})
        cases: list[tuple[dict[str, Any], type[Exception], str]] = [
            ({"stitch": True, "unique_labels": None}, ValueError, "unique_labels=n"),
        ]
        for kwargs, error, match in cases:
            args = {"unique_labels": 100, **kwargs}
            with pytest.raises(error, match=match):
                ngio_async.stream(rois, _whole, out=lab, **args)
        plain = ds.read_rois(_rois(FOVS), label=lab)
        with pytest.raises(ValueError, match="one or the other"):
            ngio_async.stream(plain, _whole, out=lab, unique_labels=9, stitch=True, masked=True)
        assert not (await lab.read()).any()
        await lab.aclose()
