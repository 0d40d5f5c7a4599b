"""Writing one result of a stream: a tile's (its core, broadcast or cropped as a write takes
it) to a tile writer or the stitch, a ROI's to an image, a label or a masked image; and
the names of the items their errors give."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._prefetch import to_the_end
from ..engine.plan import region_shape
from ._rois import MaskedImage, RoiRead, RoiStream, _inner, read_roi, roi_region, roi_span
from ._stream_out import _AxisMap, _roi_region, _shared_axes
from ._tiles import Tile
from ._write import LevelWriter

if TYPE_CHECKING:
    from ..engine import Region
    from ._cascade import Cascade
    from ._stitch import RoiStitch, Stitch


def _tile_name(tile: Tile) -> str:
    core = "" if tile.core == tile.region else f" (core {_where(tile.core)})"
    return f"the tile at {_where(tile.region)} of shape {tile.shape}{core}"


async def _write_tile(
    out: Any,
    tile: Tile,
    value: Any,
    axis_map: _AxisMap | None,
    written: list[Region] | None = None,
) -> None:
    """Write ``value``, ``func``'s result for ``tile``, to the tile writer ``out`` (its errors
    name the tile; ``axis_map``: onto the writer's axes; ``written``: its region noted there):
    a level writer's writes run to their end by themselves, another writer's ``write`` (maybe
    the I/O itself) is run to its end here."""
    result = _result_tile(tile, value)
    try:
        if axis_map is not None:
            result = axis_map.tile(result)
        if written is not None:
            written.append(result.core)
        if isinstance(out, LevelWriter):
            await out.write(result)
        else:
            what = f"stream(): the write of the result of {_tile_name(tile)}"
            await to_the_end(_awaited_write, out, result, what=what)
    except Exception as exc:
        if not any(exc is f for f in getattr(out, "_failures", ())):  # (not an earlier write's)
            exc.add_note(f"stream(): writing the result of {_tile_name(tile)}")
        raise


async def _awaited_write(out: Any, tile: Tile) -> None:
    """``await out.write(tile)``; a ``write`` that returned no awaitable (a plain function)
    is named, not left to "NoneType can't be used in 'await' expression"."""
    pending = out.write(tile)
    if not inspect.isawaitable(pending):
        raise TypeError(
            f"stream(..., out=...) awaits out.write(tile), which returned {pending!r} for "
            f"{out!r}: out needs `async def write(tile)` (a plain write ran, once)"
        )
    await pending


def _stitch_add(stitch: Stitch, tile: Tile, value: Any, axis_map: _AxisMap | None) -> None:
    """Hand ``func``'s result for ``tile`` to the stream's stitch (its errors name the tile)."""
    pred = np.asarray(value)
    if pred.shape != tile.shape and _unsqueezes(pred.shape, tile.shape):
        pred = pred.reshape(tile.shape)  # (its unit axes left out: f(a[0]) on plane tiles)
    keep = None if axis_map is None else axis_map.keep
    core = tile.core if keep is None else tuple(tile.core[i] for i in keep)
    stitch.add(tile, pred, core, keep)


def _stitch_add_roi(
    stitch: RoiStitch, out: Any, r: RoiRead, value: Any, rois: RoiStream, index: int
) -> None:
    """Hand ``func``'s result for ROI read ``r`` (in the stream's ``axes_order``), whole, to
    the stream's stitch, on ``out``'s axes at its level ``index`` (errors name the ROI)."""
    whole, pred = rois.natural(replace(r, core=None, inner=None), value)
    data = whole.data
    pred = np.asarray(pred)
    if pred.shape != data.shape and _unsqueezes(pred.shape, data.shape):
        pred = pred.reshape(data.shape)
    where = _roi_name(r)
    if pred.shape != data.shape:
        raise ValueError(
            f"stream(..., stitch=...): func returned shape {pred.shape} for {where} of shape "
            f"{data.shape}: stitching compares the labels of the whole ROI, its halo included "
            "(return the read's shape)"
        )
    kept = [a for a, s in zip(rois._image.axes, r.region, strict=True) if not isinstance(s, int)]
    inner = tuple(slice(0, n) for n in data.shape) if r.core is None else _inner(r.region, r.core)
    core = _roi_region(out, r, rois, index)
    grown, take = [], []
    for a, c in zip(out.axes, core, strict=True):
        if a in kept:
            i = kept.index(a)
            lo = c.start - (inner[i].start or 0)
            grown.append(slice(lo, lo + data.shape[i]))
            take.append(i)
        else:
            grown.append(c)
    extra = [i for i, a in enumerate(kept) if a not in out.axes]
    if any(data.shape[i] != 1 for i in extra) or any(
        c.stop - c.start != 1 for a, c in zip(out.axes, core, strict=True) if a not in kept
    ):
        raise ValueError(
            f"stream(..., stitch=...): {where} read axes {kept}, out ({out.url}) has "
            f"{list(out.axes)}: the axes one lacks must have length 1"
        )
    on_out = np.transpose(
        np.squeeze(pred, axis=tuple(extra)),
        [[i for i in range(len(kept)) if i not in extra].index(i) for i in take],
    )
    on_out = on_out.reshape(tuple(g.stop - g.start for g in grown))
    stitch.add_roi(
        r.index if r.index is not None else 0, r.roi.name, tuple(grown), on_out, tuple(core)
    )


async def _plan_roi_stitch(stitch: RoiStitch, out: Any, rois: RoiStream, index: int) -> None:
    """Tell ``stitch`` the grown box of each ROI of ``rois`` in ``out``'s level ``index`` (a
    pixel wider), so it holds each result only until the last ROI meeting it has landed; a
    ROI it cannot place (its read will say why) leaves it holding them all."""
    listed = rois._rois
    if isinstance(listed, str):  # (read once: the stream reads it from here)
        listed = rois._rois = await rois._image.tables.rois(listed)
    shape = out.levels[index].shape
    boxes = []
    try:
        for roi in listed:
            if out is rois._image:
                core = roi_span(out, rois._level, roi, rois._axes)
            else:
                core = roi_span(out, index, roi, _shared_axes(out, rois, index))
            boxes.append(
                tuple(
                    slice(
                        max(0, c.start - rois._halo.get(a, 0) - 1),
                        min(n, c.stop + rois._halo.get(a, 0) + 1),
                    )
                    for a, c, n in zip(out.axes, core, shape, strict=True)
                )
            )
    except Exception:  # noqa: BLE001 - the read of that ROI raises it where it belongs
        return
    stitch.plan(boxes)


def _roi_name(r: RoiRead) -> str:
    sel = ", ".join(f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s) for s in r.region)
    return f"ROI {r.roi.name!r} (region [{sel}])"


async def _write_roi(
    out: Any,
    r: RoiRead,
    value: Any,
    rois: RoiStream,
    index: int,
    cascade: Cascade | None = None,
    masked: bool = False,
) -> None:
    """Write ``value``, ``func``'s result for ROI read ``r``, to ``out`` (errors name the ROI):
    to the image read, the same selection (``c=...``); to another one (a label image), the
    ROI's box at its level ``index`` (of the ROIs' pixel size); ``masked``: only where the
    ROI's object is (ngio's ``MaskedSegmentationIterator``). ``cascade``: the stream's, fed by
    the write."""
    pyramid: Any = False if cascade is None else cascade
    label = rois._label
    inside = None  # ``masked``: ``out`` masked by the ROIs' label image
    if masked and not isinstance(out, MaskedImage) and label is not None:
        assert not isinstance(label, str)  # (opened by the stream)
        inside = MaskedImage(out, label, [], index)
    if value is None:
        raise TypeError(f"stream(..., out=...): func returned None for {_roi_name(r)}")
    try:
        if inside is not None:  # the ROI's box of ``out`` and its labels (as read: the image's)
            if out is rois._image and r.labels is not None:
                await inside.write_read(r, value, pyramid)
            else:
                shared = _shared_axes(out, rois, index)  # (c="DAPI": that channel alone)
                got = _as_read_of(out, r, rois, index) or await read_roi(
                    out, r.roi, index, inside.label_image, None, None, **shared
                )
                await inside.write_read(got, value, pyramid)
        elif isinstance(out, MaskedImage):
            if r.roi.label is None:
                raise ValueError("it has no label value; out=<masked image> takes masked ROIs")
            if out.image is rois._image and out.label_image is rois._label and r.labels is not None:
                # its box and labels as read: not read again
                await out.write_read(r, value, pyramid)
            else:
                await out.write_read(await out.read_roi(int(r.roi.label)), value, pyramid)
        elif out is rois._image:
            await out.write_roi(r.roi, value, rois._level, pyramid=pyramid, **rois._axes)
        else:  # (the ROIs' selection of other axes, where out has them: c="DAPI")
            shared = _shared_axes(out, rois, index)
            await out.write_roi(r.roi, value, index, pyramid=pyramid, **shared)
    except Exception as exc:
        exc.add_note(f"stream(): writing the result of {_roi_name(r)}")
        raise


def _as_read_of(out: Any, r: RoiRead, rois: RoiStream, index: int) -> RoiRead | None:
    """``r`` (the image's box, read with its labels) as a read of ``out``'s box, when the
    axes ``r.data`` keeps are ``out``'s and its box there has ``r.data``'s shape (the pixels
    are the same: ``_check_roi_out``), so its labels are not read again; else ``None``."""
    if r.labels is None:
        return None
    kept = [
        a for a, sel in zip(rois._image.axes, r.region, strict=True) if not isinstance(sel, int)
    ]
    if kept != list(out.axes):
        return None
    region = roi_region(out, index, r.roi, {})
    if not all(isinstance(sel, slice) for sel in region) or region_shape(region) != r.data.shape:
        return None
    return replace(r, region=region)


def _result_tile(tile: Tile, value: Any) -> Tile:
    """The tile to write for ``value``: the core of a halo'd result, or the value as is; a
    scalar (or another shape that broadcasts to the core) is broadcast, as writes do."""
    if value is None:
        raise TypeError(_NO_RESULT.format(_where(tile.core)))
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > len(tile.shape):
        extra = len(shape) - len(tile.shape)
        if all(n == 1 for n in shape[:extra]):  # dropped, as numpy assignment (and write) does
            value = np.reshape(value, tuple(shape)[extra:])
            shape = value.shape
    if shape is not None and tile.core != tile.region and _unsqueezes(tuple(shape), tile.shape):
        # the halo'd tile's result, maybe without its unit axes (``f(a[0])`` on plane tiles)
        value = np.reshape(value, tile.shape)
        cropped = Tile(value, tile.region, tile.index, tile.core, tile.level).core_data
        return Tile(cropped, tile.core, tile.index, tile.core, tile.level)
    core = region_shape(tile.core)
    if shape is None or tuple(shape) != core:
        value = np.asarray(value)
        try:
            value = np.broadcast_to(value, core)
        except ValueError:
            if value.ndim == len(core):  # the writer says which shapes differ
                return Tile(value, tile.core, tile.index, tile.core, tile.level)
            raise ValueError(
                f"stream(..., out=...): func returned shape {value.shape} for the tile at "
                f"{_where(tile.region)} of shape {tile.shape} (core {_where(tile.core)}, shape "
                f"{core}); it must return the tile's shape, its core's (unit axes may be left "
                "out), or a value that broadcasts to the core"
            ) from None
    return Tile(value, tile.core, tile.index, tile.core, tile.level)


def _unsqueezes(shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    """Whether ``shape`` is ``full`` with (some of) its leading unit axes left out."""
    lead = len(full) - len(shape)
    return lead >= 0 and shape == full[lead:] and all(n == 1 for n in full[:lead])


def _where(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{r.start}:{r.stop}" for r in region) + "]"


_NO_RESULT = (
    "stream(..., out=...): func returned None for the tile at {}; it must return the tile's "
    "new data (an array of the tile's shape, or a value that broadcasts to it)"
)
