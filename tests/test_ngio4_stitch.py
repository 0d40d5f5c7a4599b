"""``stream(ds.tiles(overlap=...), segment, out=label, unique_labels=n, stitch=...)``: objects
cut by a tile seam (in x, in y, at a corner, across several tiles) get one id, as ngio 1.1.3's
``SegmentationIterator(...).with_halo().with_stitch(StitchConfig(...))`` joins them (IoU over
the halos, union-find), on the same image and segment function: the same objects on every
level, at IoU thresholds 0.4 and 0.5 (where they differ)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

TILE, HALO = 24, 9  # seams at 24 and 48 in y and x


def _image() -> np.ndarray[Any, Any]:
    yy, xx = np.mgrid[0:64, 0:64]
    img = np.zeros((64, 64), np.uint16)
    for cy, cx, r in [(10, 24, 5), (24, 10, 5), (24, 24, 6), (38, 38, 4)]:  # x, y, corner, none
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 100
    img[52:58, 4:60] = 100  # a bar across three tiles in x
    return img


def _segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Connected components, blind within 5 pixels of the tile's edge (as a model is): two
    tiles' predictions of one object agree over their halos with IoU 4/9 (0.44), so 0.4
    joins them and 0.5 does not."""
    lab = np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)
    m = 5
    lab[:m] = 0
    lab[-m:] = 0
    lab[:, :m] = 0
    lab[:, -m:] = 0
    return lab


def _whole(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


def _same_objects(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    """Whether two labellings have the same objects (ids one to one; 0 with 0)."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs}) and all(
        (x == 0) == (y == 0) for x, y in pairs
    )


@pytest.mark.parametrize(
    ("version", "threshold", "objects", "rewrites"), [("0.4", 0.4, 5, 1), ("0.5", 0.5, 7, 1)]
)
async def test_stitched_tiles_join_objects_as_ngio(
    tmp_path: Path, version: str, threshold: float, objects: int, rewrites: int
) -> None:
    import ngio
    from ngio.iterators import SegmentationIterator, StitchConfig

    container = ngio.create_ome_zarr_from_array(
        str(tmp_path / "theirs.zarr"),
        _image(),
        pixelsize=0.5,
        axes_names="yx",
        levels=2,
        ngff_version=version,  # type: ignore[arg-type]
    )
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    config = StitchConfig(block_size=1000, iou_threshold=threshold, compact=False)
    (
        SegmentationIterator(container.get_image(), container.derive_label("seg", dtype="uint32"))
        .by_grid(size_x=TILE, size_y=TILE)
        .with_halo(x=HALO, y=HALO)
        .with_stitch(config)
        .segment(_segment)
    )
    async with ngio_async.open_async(tmp_path / "mine.zarr", mode="r+") as ds:
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            run = ngio_async.stream(
                ds.tiles(shape=(TILE, TILE), overlap=HALO),
                _segment,
                out=lab,
                unique_labels=1000,
                stitch=threshold,
                pyramid="ngio",
            )
            await run
            mine = [await lab.read(level=k) for k in (0, 1)]
        async with await ds.labels.create("unstitched", dtype="uint32") as lab:
            tiles = ds.tiles(shape=(TILE, TILE), overlap=HALO)
            await ngio_async.stream(tiles, _segment, out=lab, unique_labels=1000)
            unstitched = await lab.read()
    theirs = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr"))
    for k in (0, 1):
        assert _same_objects(mine[k], theirs.get_label("seg", path=str(k)).get_as_numpy())
    assert len(np.unique(mine[0])) - 1 == objects
    assert len(np.unique(unstitched)) - 1 == 12  # each tile's part its own id
    # the final pass rewrote the boxes of the ids joined alone: tiles holding a cut object
    assert run.stitched is not None
    assert run.stitched.rewrites == rewrites  # the label's one stored object, once
    assert len(run.stitched.mapping()) == 12 - objects


async def test_stitched_tiles_on_s3_are_the_whole_images_objects(s3_server: S3Server) -> None:
    img = _image()
    url = f"{s3_server.fresh_url()}/img.zarr"
    opts = s3_server.options()
    async with ngio_async.create_async(
        url, shape=img.shape, dtype="uint16", axes="yx", scale=0.5, levels=2, **opts
    ) as ds:
        await ds.write(img, pyramid=True)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            tiles = ds.tiles(shape=(TILE, TILE), overlap=HALO)
            await ngio_async.stream(
                tiles, _whole, out=lab, unique_labels=100, stitch=True, pyramid=True
            )
            got = await lab.read()
            level1 = await lab.read(level=1)
            await lab.build_pyramid()  # the pyramid kept right: rebuilding it changes nothing
            np.testing.assert_array_equal(await lab.read(level=1), level1)
    assert _same_objects(got, _whole(img))
    assert len(np.unique(got)) - 1 == 5


async def test_stitch_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(64, 64), dtype="uint16", axes="yx"
    ) as ds:
        lab = await ds.labels.create("seg", dtype="uint32")
        cases: list[tuple[dict[str, Any], Any, type[Exception], str]] = [
            ({"unique_labels": 100}, ds.tiles(shape=(24, 24)), ValueError, "overlap="),
            ({}, ds.tiles(shape=(24, 24), overlap=4), ValueError, "unique_labels=n"),
            (
                {"unique_labels": 100},
                ds.tiles(shape=(24, 24), overlap=13),
                ValueError,
                "at most half",
            ),
        ]
        for kwargs, items, error, match in cases:
            with pytest.raises(error, match=match):
                ngio_async.stream(items, _whole, out=lab, stitch=True, **kwargs)
        tiles = ds.tiles(shape=(24, 24), overlap=4)
        bads: list[tuple[Any, type[Exception]]] = [
            (0.0, ValueError),
            (1.5, ValueError),
            ("yes", TypeError),
        ]
        for bad, wrong in bads:
            with pytest.raises(wrong, match="threshold"):
                ngio_async.stream(tiles, _whole, out=lab, unique_labels=9, stitch=bad)
        assert not (await lab.read()).any()
        await lab.aclose()


async def test_channel_tiles_stitched_into_a_yx_label(tmp_path: Path) -> None:
    img = _image()
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(2, 64, 64), dtype="uint16", axes="cyx", levels=2
    ) as ds:
        await ds.write(np.stack([img, img * 0]), pyramid=True)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            tiles = ds.tiles(shape=(1, TILE, TILE), overlap=HALO, c=0)
            run = ngio_async.stream(  # the result of each (1, y, x) tile as its plane
                tiles, lambda a: _whole(a[0]), out=lab, unique_labels=100, stitch=True
            )
            await run
            got = await lab.read()
    assert got.shape == (64, 64) and _same_objects(got, _whole(img))
    assert run.stitched is not None and run.stitched.rewrites == 1  # one stored object
