"""``stream(..., stitch=StitchConfig(seam_matcher=m))``: a rule of one's own deciding which ids
across a seam are one object (ngio 1.1.3's ``StitchConfig(seam_matcher=...)``): the same
objects as ngio joins with the same matcher (and ngio's own ``IouSeamMatcher`` fits as
``stitch=`` a threshold does); a matcher that cannot take two patches is refused at the call,
a pair naming the background or an id absent from its patch stops the stream, naming the
tiles; ``stream`` and ``stream_sync`` take the same keywords."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngio4_stitch import HALO, TILE, _image, _segment, _whole

import ngio_async
from ngio_async import StitchConfig

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def by_overlap(
    patch_a: np.ndarray[Any, Any], patch_b: np.ndarray[Any, Any]
) -> list[tuple[int, int]]:
    """Two ids are one object when they share at least 12 pixels (IoU left aside)."""
    both = (patch_a > 0) & (patch_b > 0)
    pairs, n = np.unique(np.stack([patch_a[both], patch_b[both]]), axis=1, return_counts=True)
    return [
        (int(x), int(y)) for (x, y), k in zip(pairs.T.tolist(), n.tolist(), strict=True) if k >= 12
    ]


async def _mine(path: Path, stitch: Any) -> np.ndarray[Any, Any]:
    async with (
        ngio_async.open_async(path, mode="r+") as ds,
        await ds.labels.create("mine", dtype="uint32", overwrite=True) as lab,
    ):
        tiles = ds.tiles(shape=(TILE, TILE), overlap=HALO)
        await ngio_async.stream(tiles, _segment, out=lab, unique_labels=1000, stitch=stitch)
        return await lab.read()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_seam_matcher_joins_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio
    from ngio.iterators import (
        IouSeamMatcher,
        SegmentationIterator,
        StitchConfig as NgioStitchConfig,
    )

    path = tmp_path / "img.zarr"
    container = ngio.create_ome_zarr_from_array(
        str(path), _image(), pixelsize=0.5, axes_names="yx", levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )  # fmt: skip
    (
        SegmentationIterator(container.get_image(), container.derive_label("seg", dtype="uint32"))
        .by_grid(size_x=TILE, size_y=TILE)
        .with_halo(x=HALO, y=HALO)
        .with_stitch(NgioStitchConfig(block_size=1000, seam_matcher=by_overlap, compact=True))
        .segment(_segment)
    )
    theirs = ngio.open_ome_zarr_container(str(path)).get_label("seg").get_as_numpy()
    mine = await _mine(path, StitchConfig(seam_matcher=by_overlap, compact=True))
    np.testing.assert_array_equal(mine, theirs)  # compact: the same numbers too
    # the bar (a 6-pixel-high strip: its cuts share 6 x 9 pixels) and the discs are joined,
    # where an IoU of 0.5 leaves the cuts apart (each tile blind near its edges)
    assert len(np.unique(mine)) - 1 == 5
    assert len(np.unique(await _mine(path, 0.5))) - 1 == 7
    # ngio's own matcher fits: as the threshold given as a number
    iou = await _mine(path, StitchConfig(seam_matcher=IouSeamMatcher(0.4)))
    np.testing.assert_array_equal(iou, await _mine(path, 0.4))


async def test_a_bad_matcher_is_refused(tmp_path: Path) -> None:
    def one(a: Any) -> list[tuple[int, int]]:
        return []

    async def slow(a: Any, b: Any) -> list[tuple[int, int]]:
        return []

    for bad, match in [(3, "must be a function"), (one, "cannot take two"), (slow, "plain")]:
        with pytest.raises(TypeError, match=match):
            StitchConfig(seam_matcher=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"iou_threshold must be in \(0, 1\]"):
        StitchConfig(iou_threshold=0)
    img = _image()
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx"
    ) as ds:
        await ds.write(img)
        lab = await ds.labels.create("seg", dtype="uint32")
        bads: list[tuple[Any, str]] = [
            (lambda a, b: [(0, int(b.max()))], r"paired \(0, "),
            (lambda a, b: [(999_999, int(b.max()))], r"paired \(999999, "),
            (lambda a, b: [("x",)], "pairs of ints"),
        ]
        for pairs, match in bads:
            tiles = ds.tiles(shape=(TILE, TILE), overlap=HALO)
            run = ngio_async.stream(
                tiles, _whole, out=lab, unique_labels=100, stitch=StitchConfig(seam_matcher=pairs)
            )
            with pytest.raises((ValueError, TypeError), match=match) as err:
                await run
            assert "the tiles at [" in str(err.value)
        await lab.aclose()


def test_stream_and_stream_sync_take_the_same_keywords(tmp_path: Path) -> None:
    want = inspect.signature(ngio_async.stream).parameters
    got = inspect.signature(ngio_async.stream_sync).parameters
    kw = [n for n, p in want.items() if p.kind is p.KEYWORD_ONLY]
    assert "stitch" in kw and kw == [n for n, p in got.items() if p.kind is p.KEYWORD_ONLY]
    for name in kw:
        assert got[name].default == want[name].default, name
        if name not in ("out",):
            assert got[name].annotation == want[name].annotation, name
    img = _image()  # and stream_sync stitches with a matcher of one's own
    with ngio_async.create(tmp_path / "i.zarr", shape=(64, 64), dtype="uint16", axes="yx") as ds:
        ds.write(img)
        with ds.labels.create("seg", dtype="uint32") as lab:
            ngio_async.stream_sync(
                ds.tiles(shape=(TILE, TILE), overlap=HALO),
                _segment,
                out=lab,
                unique_labels=1000,
                stitch=StitchConfig(seam_matcher=by_overlap),
            )
            got_lab = lab.read()
    assert len(np.unique(got_lab)) - 1 == 5
