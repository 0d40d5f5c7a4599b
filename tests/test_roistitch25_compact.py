"""``stream(ds.read_rois(...), f, out=label, unique_labels=n, stitch=StitchConfig(compact=True))``:
a ROI stream's objects joined and renumbered 1..N as ngio 1.1.3's ``with_stitch(StitchConfig(
compact=True))`` numbers them (its order: stored objects in grid order, ids ascending in each;
the whole label walked, objects no ROI wrote renumbered too, with a warning), pixel for pixel on
both levels, FOVs with a halo and overlapping FOVs; each stored object written at most once by
the final pass; exact where overlapping ROIs overwrite each other in any landing order."""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngio4_stitch import _image, _same_objects, _whole

import ngio_async
from ngio_async import StitchConfig
from ngio_async.images._stitch import RoiStitch
from ngio_async.stores import open_store
from ngio_async.stores._instrumented import InstrumentedStore
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::FutureWarning")]

Box = tuple[int, int, int, int]  # y, x, height, width in pixels (0.5 each)
FOVS: list[Box] = [(0, x, 32, 32) for x in (0, 32)]  # the top half, with a halo
OVERLAPPING: list[Box] = [(y, x, 40, 40) for y in (0, 24) for x in (0, 24)]  # 16 shared


def _prefill() -> np.ndarray[Any, Any]:
    """Objects the label held before the stream, where (FOVS) no ROI writes (ids past the
    ROIs' blocks: the first ROI's ids are not moved, 1..n-1, as ngio's UniqueLabelsTransform)."""
    pre = np.zeros((64, 64), np.uint32)
    pre[44:50, 2:10] = 7000
    pre[56:60, 40:50] = 5000
    return pre


def _rois(boxes: list[Box]) -> list[Roi]:
    return [
        Roi(f"FOV_{i}", {"y": (y * 0.5, (y + h) * 0.5), "x": (x * 0.5, (x + w) * 0.5)})
        for i, (y, x, h, w) in enumerate(boxes)
    ]


def _ngio_compact(path: Path, boxes: list[Box], halo: int) -> list[np.ndarray[Any, Any]]:
    """ngio's stitched, compacted label "theirs" of the image at ``path``."""
    import ngio
    from ngio import Roi as NgioRoi
    from ngio.iterators import SegmentationIterator, StitchConfig as NgioStitchConfig

    container = ngio.open_ome_zarr_container(str(path))
    rois = [
        NgioRoi.from_values(
            {"y": slice(y * 0.5, (y + h) * 0.5), "x": slice(x * 0.5, (x + w) * 0.5)},
            name=f"FOV_{i}",
        )
        for i, (y, x, h, w) in enumerate(boxes)
    ]
    it = SegmentationIterator(container.get_image(), container.get_label("theirs")).product(rois)
    if halo:
        it = it.with_halo(x=halo, y=halo)
    config = NgioStitchConfig(block_size=1000, iou_threshold=0.4, compact=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it.with_stitch(config).segment(_whole)
    opened = ngio.open_ome_zarr_container(str(path))
    return [opened.get_label("theirs", path=str(k)).get_as_numpy() for k in (0, 1)]


def _image_with_labels(path: Path, version: str, pre: np.ndarray[Any, Any]) -> None:
    """``_image()`` in chunks of 32 x 32, two levels, and labels "theirs" and "mine" holding
    ``pre``, made by ngio."""
    import ngio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        container = ngio.create_ome_zarr_from_array(
            str(path), _image(), pixelsize=0.5, axes_names="yx", levels=2, chunks=(32, 32),
            ngff_version=version,  # type: ignore[arg-type]
        )  # fmt: skip
        for name in ("theirs", "mine"):
            label = container.derive_label(name, dtype="uint32")
            label.set_array(pre)
            label.consolidate()


@pytest.mark.parametrize(("version", "boxes", "halo"), [("0.4", FOVS, 8), ("0.5", OVERLAPPING, 0)])
async def test_roi_compact_numbers_objects_as_ngio(
    tmp_path: Path, version: str, boxes: list[Box], halo: int
) -> None:
    path = tmp_path / "img.zarr"
    pre = _prefill() if boxes is FOVS else np.zeros((64, 64), np.uint32)
    _image_with_labels(path, version, pre)
    theirs = _ngio_compact(path, boxes, halo)
    store = InstrumentedStore(open_store(path / "labels" / "mine"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with (
            await ngio_async.open_async(path) as ds,
            await ngio_async.open_async(store, mode="r+") as lab,
        ):
            rois = ds.read_rois(_rois(boxes), halo={"y": halo, "x": halo} if halo else None)
            run = ngio_async.stream(
                rois,
                _whole,
                out=lab,
                unique_labels=1000,
                stitch=StitchConfig(iou_threshold=0.4, compact=True),
                pyramid="ngio",
            )
            await run
            mine = [await lab.read(level=k) for k in (0, 1)]
    for k in (0, 1):  # the same numbers, not only the same objects
        np.testing.assert_array_equal(mine[k], theirs[k])
    rows = slice(0, 32) if boxes is FOVS else slice(None)  # (FOVS: the top half)
    assert _same_objects(mine[0][rows], _whole(_image())[rows])
    stitch = run.stitched
    assert isinstance(stitch, RoiStitch)
    foreign = [w for w in caught if "no ROI of the stream wrote" in str(w.message)]
    puts: Counter[str] = Counter()
    for (method, key), n in store.calls.items():
        if method == "put" and key.startswith("0/") and not key.endswith(".json"):
            puts[key] += n
    if boxes is FOVS:
        # the two top objects written by their FOV alone: known, not read; the bottom two
        # (the label's own objects) read, renumbered (warned of: 2 ids)
        assert (
            stitch.scanned == 2 and len(foreign) == 1 and "renumbered 2 " in str(foreign[0].message)
        )
        ours = {k: n for k, n in puts.items() if k in ("0/0.0", "0/0.1", "0/0/0", "0/0/1")}
        assert all(n <= 2 for n in ours.values()), puts  # its FOV's write, the final pass
    else:
        assert not foreign

    # each stored object written by the ROIs whose box meets it, then at most once more by
    # the final pass
    def writes(key: str) -> int:
        cy, cx = (int(v) for v in key.split("/")[-2:])
        return sum(
            y < (cy + 1) * 32 and cy * 32 < y + h and x < (cx + 1) * 32 and cx * 32 < x + w
            for y, x, h, w in boxes
        )

    # (a ROI's all-zero part of an object never stored is not written: at most)
    assert all(n <= writes(k) + 1 for k, n in puts.items()), puts
    assert sum(puts.values()) <= sum(writes(k) for k in puts) + stitch.rewrites, puts
    if boxes is FOVS:
        assert stitch.rewrites == 2
    else:  # how many objects the finish rewrites depends on which ROI landed first
        assert 1 <= stitch.rewrites <= 3
    if boxes is FOVS:  # the FOV's object (its ids 1..3 already its numbers) not rewritten;
        # the label's own two, read, renumbered: once each
        assert puts == Counter({"0/0/0": 1, "0/1/0": 1, "0/1/1": 1}), puts


def _sequential(a: np.ndarray[Any, Any], chunk: int) -> np.ndarray[Any, Any]:
    """``a`` renumbered as ngio's ``relabel_sequential`` numbers it (chunks in grid order,
    ids ascending in each, each id its number when first met)."""
    numbers: dict[int, int] = {}
    for cy, cx in itertools.product(range(0, a.shape[0], chunk), range(0, a.shape[1], chunk)):
        for v in np.unique(a[cy : cy + chunk, cx : cx + chunk]).tolist():
            if v:
                numbers.setdefault(v, len(numbers) + 1)
    lut = np.zeros(int(a.max()) + 1, a.dtype)
    for v, n in numbers.items():
        lut[v] = n
    return np.asarray(lut[a])


async def test_overlapping_rois_overwritten_in_any_order(tmp_path: Path) -> None:
    """Overlapping FOVs whose objects are never joined (a matcher pairing nothing): each
    overwrites the others' shared pixels in its landing order, and the ids it left are the
    ones numbered: 1..N without a gap, in ngio's order, whatever the order (2 threads)."""
    img = _image()
    boxes: list[Box] = [(y, x, 28, 28) for y in (0, 18, 36) for x in (0, 18, 36)]
    for attempt in range(3):
        async with ngio_async.create_async(
            tmp_path / f"img{attempt}.zarr", shape=img.shape, dtype="uint16", axes="yx",
            scale=0.5, chunks=(16, 16), shards=False,
        ) as ds:  # fmt: skip
            await ds.write(img)
            async with await ds.labels.create("seg", dtype="uint32") as lab:
                run = ngio_async.stream(
                    ds.read_rois(_rois(boxes)),
                    _whole,
                    out=lab,
                    unique_labels=100,
                    threads=2,
                    stitch=StitchConfig(seam_matcher=lambda a, b: [], compact=True),
                )
                await run
                got = await lab.read()
        ids = np.unique(got).tolist()
        assert ids == list(range(len(ids))), ids  # 0, 1..N: none noted that was overwritten
        np.testing.assert_array_equal(_sequential(got, 16), got)  # ngio's order
        assert (got > 0).sum() == (img > 50).sum()
        assert isinstance(run.stitched, RoiStitch) and run.stitched.scanned == 0  # all covered


def test_roi_compact_blocking_twin(tmp_path: Path) -> None:
    img = _image()
    with ngio_async.create(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx", scale=0.5
    ) as ds:
        ds.write(img)
        with ds.labels.create("seg", dtype="uint16") as lab:
            ngio_async.stream_sync(
                ds.read_rois(_rois(OVERLAPPING)), _whole, out=lab, unique_labels=100,
                stitch=StitchConfig(compact=True),
            )  # fmt: skip
            got = lab.read()
    assert _same_objects(got, _whole(img))
    assert np.unique(got).tolist() == [0, 1, 2, 3, 4, 5]


async def test_roi_compact_refused_with_keyed_colors(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(64, 64), dtype="uint16", axes="yx", scale=0.5
    ) as ds:
        await ds.write(_image())
        lab = await ds.labels.create("seg", dtype="uint32", colors={5: (255, 0, 0, 255)})
        with pytest.raises(ValueError, match=r"image-label colors or properties .*\[5\]"):
            ngio_async.stream(
                ds.read_rois(_rois(FOVS), halo={"y": 8, "x": 8}), _whole, out=lab,
                unique_labels=9, stitch=StitchConfig(compact=True),
            )  # fmt: skip
        assert not (await lab.read()).any()
        await lab.aclose()
