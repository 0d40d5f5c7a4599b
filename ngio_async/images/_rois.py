"""Reads by ROI, as ngio and Fractal tasks read: one object of a masking ROI table (its box,
its pixels masked by its label value, masked writes back), and the ROIs of a table read one
after another with a bounded prefetch (``async for r in ds.read_rois("FOV_ROI_table")``).

ROI boxes are in the image's own units from its corner (ngio's rule): each read is
``read_world(origin="image", **roi.ranges)``. A label image is read at its
level nearest the image level's y/x pixel size and brought onto the image's grid (each image
pixel takes the label pixel holding its centre), so ``labels`` has the shape of ``data``.
"""

from __future__ import annotations

import asyncio
import numbers
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self, cast

import anyio
import numpy as np

from .._prefetch import _Deferred, prefetch as start_prefetch
from ._axes_order import check_order, from_order, kept_by_region, roi_read_in_order
from ._merge import rule_of
from ._world import is_world_axis

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup
    from numpy.typing import ArrayLike, NDArray

    from .._prefetch import Prefetch, PrefetchIterator
    from ..engine import Region
    from ..engine.pyramid import Method
    from ..tables import Roi, Table
    from ._cascade import Cascade
    from ._dataset import Dataset
    from ._merge import Merge

# a ROI, the plane of it to read (or all), and its position in the stream's ROIs
_Item = tuple["Roi", dict[str, int] | None, int]
_WORLD = ("x", "y", "z", "t")


def roi_box(roi: Roi) -> dict[str, Any]:
    """The ``read_world`` axes of ``roi``: its ranges, and ``t`` when it has a time range."""
    box: dict[str, Any] = dict(roi.ranges)
    if roi.time is not None:
        box["t"] = roi.time
    return box


@dataclass(frozen=True, eq=False)  # (by identity, as a Tile: by value its arrays raised)
class RoiRead:
    """One ROI read: ``data`` (the image pixels of its box), ``region`` (the level selection
    read), ``labels`` (the label image's pixels on ``data``'s grid, when a label was asked),
    ``index`` (the ROI's position in the ROIs of a stream: its planes share it)."""

    roi: Roi
    region: tuple[Any, ...]
    data: NDArray[Any]
    labels: NDArray[Any] | None = None
    index: int | None = None
    #: read with a halo: the level selection of the ROI's own box (``region`` is it grown),
    #: and where that box is in ``data`` (one slice per axis of ``data``, in its order)
    core: tuple[Any, ...] | None = None
    inner: tuple[slice, ...] | None = None

    @property
    def core_data(self) -> NDArray[Any]:
        """``data`` without the halo: the ROI's own box (``data`` itself without a halo)."""
        return self.crop(self.data)

    def crop(self, value: NDArray[Any]) -> NDArray[Any]:
        """``value`` (an array of ``data``'s shape, e.g. ``func``'s result) cut to the ROI's
        own box, as ``stream(..., out=...)`` writes it."""
        return value if self.inner is None else value[self.inner]

    @property
    def mask(self) -> NDArray[np.bool_]:
        """Where the ROI's object is: ``labels == roi.label`` (any non-zero label when the ROI
        has none)."""
        if self.labels is None:
            raise ValueError(f"ROI {self.roi.name!r} was read without a label image: no mask")
        if self.roi.label is None:
            return np.asarray(self.labels != 0)
        return np.asarray(self.labels == self.roi.label)

    def masked(self, fill: Any = 0) -> NDArray[Any]:
        """``data`` inside the object, ``fill`` elsewhere (ngio's ``get_roi_masked``)."""
        out = np.full_like(self.data, fill)
        np.copyto(out, self.data, where=self.mask)
        return out


def _units_of(image: Dataset, label: Dataset) -> dict[str, str] | None:
    """The image's units of the axes whose unit its label image does not share (a ROI's
    numbers are in the image's units), or ``None`` when it shares them all."""
    mine = {a.name: a.unit for a in image.metadata.spatial_calibration[0].axes}
    other = {a.name: a.unit for a in label.metadata.spatial_calibration[0].axes}
    differ = {a: u for a, u in mine.items() if a in _WORLD and u and a in other and other[a] != u}
    return differ or None


def label_level(image: Dataset, level: int | str, label: Dataset) -> int:
    """The level of ``label`` whose y/x pixel size is nearest the image ``level``'s."""
    cal = image.metadata.spatial_calibration[image.levels.index(image.level(level))]
    names = [n for n in ("y", "x") if n in image.axes and n in label.axes]
    if not names:
        return 0
    unit = cal[names[0]].unit
    same = label.metadata.spatial_calibration[0][names[0]].unit == unit
    return label.level_for([abs(cal[n].scale) for n in names], None if same else unit)


def roi_region(image: Dataset, level: int | str, roi: Roi, axes: dict[str, Any]) -> tuple[Any, ...]:
    """The level selection ``roi``'s box covers (errors name the ROI). A ROI's numbers are in
    the image's own units, as ngio reads them (its ``x_micrometer`` columns hold micrometres
    for an image in micrometres, nanometres for one in nanometres)."""
    try:
        return image.world_region(level, origin="image", **{**roi_box(roi), **axes})
    except (IndexError, ValueError) as exc:
        if type(exc) not in (IndexError, ValueError):  # (MetadataError: as it is)
            raise
        raise type(exc)(f"ROI {roi.name!r}: {exc}") from exc


def _kept(axes: Sequence[str], region: Sequence[Any]) -> list[str]:
    return [a for a, s in zip(axes, region, strict=True) if not isinstance(s, int)]


def _indices(s: Any, n: int) -> NDArray[np.intp]:
    """The level indices one entry of a selection reads (a slice, a list of ints)."""
    if isinstance(s, slice):
        return np.arange(*s.indices(n), dtype=np.intp)
    return np.asarray(s, dtype=np.intp)


def centre_picks(
    image: tuple[Sequence[Any], Sequence[int], Sequence[float]],
    label: tuple[Sequence[Any], Sequence[int], Sequence[float]],
    names: tuple[Sequence[str], Sequence[str]],
) -> dict[str, NDArray[np.intp]]:
    """Per space / time axis both read: the label pixel (index into the label read) holding
    the centre of each image pixel read. Each side is (selection, level shape, pixel sizes)."""
    (reg, shape, scale), (lreg, lshape, lscale) = image, label
    picks = {}
    for i, a in enumerate(names[0]):
        if a not in _WORLD or a not in names[1] or isinstance(reg[i], int):
            continue
        j = list(names[1]).index(a)
        if isinstance(lreg[j], int):
            continue
        mine, theirs = _indices(reg[i], shape[i]), _indices(lreg[j], lshape[j])
        at = np.floor((mine + 0.5) * abs(scale[i]) / abs(lscale[j]) + 1e-9).astype(np.intp)
        picks[a] = np.clip(np.searchsorted(theirs, at), 0, max(len(theirs) - 1, 0))
    return picks


def on_grid(
    labels: NDArray[Any],
    names: Sequence[str],
    to: Sequence[str],
    shape: Sequence[int],
    picks: dict[str, NDArray[np.intp]] | None = None,
) -> NDArray[Any]:
    """``labels`` (axes ``names``) on the grid of an array of axes ``to`` and ``shape``:
    axes reordered, missing ones broadcast; ``picks[axis]``: the label index of each pixel
    along it (else sizes matched by nearest pixel)."""
    extra = [a for a in names if a not in to]
    if extra:
        raise ValueError(f"the label image has axes {extra} the image read does not have")
    out = np.transpose(labels, [names.index(a) for a in to if a in names])
    out = np.expand_dims(out, tuple(i for i, a in enumerate(to) if a not in names))
    for i, (n, m) in enumerate(zip(out.shape, shape, strict=True)):
        pick = (picks or {}).get(to[i])
        if pick is None and n != m and to[i] in names:
            pick = np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.intp), n - 1)
        if pick is not None and not (n == m and np.array_equal(pick, np.arange(m))):
            out = np.take(out, pick, axis=i)
    return np.broadcast_to(out, tuple(shape))


def roi_planes(
    image: Dataset, level: int | str, roi: Roi, axes: dict[str, Any], along: Sequence[str]
) -> list[dict[str, int]]:
    """The planes of ``roi``'s box along ``along`` (``("z", "t")``): one ``{axis: k}`` per
    plane, ``k`` counted from the box's first pixel (ngio's ``by_yx``)."""
    region = roi_region(image, level, roi, axes)
    slices = {a: region[image.axes.index(a)] for a in along if a in image.axes}
    spans = [(a, range(s.stop - s.start)) for a, s in slices.items() if isinstance(s, slice)]
    out: list[dict[str, int]] = [{}]
    for a, ks in spans:
        out = [{**p, a: k} for p in out for k in ks]
    return out


def check_halo(
    image: Dataset, halo: Mapping[str, int] | None, planes: Sequence[str] = ()
) -> dict[str, int]:
    """``halo`` (pixels per axis name) checked against ``image``'s axes: space and time axes
    only, not the axes read plane by plane; zero margins left out."""
    if halo is None:
        return {}
    if not isinstance(halo, Mapping):
        raise TypeError(f"halo takes pixels per axis name, {{'y': 16, 'x': 16}}, got {halo!r}")
    cal = {a.name: a for a in image.metadata.spatial_calibration[0].axes}
    out: dict[str, int] = {}
    for name, n in halo.items():
        if name not in image.axes:
            raise ValueError(f"halo: {name!r} is not an axis of {image.url} (axes {image.axes})")
        if not is_world_axis(cal[name]) or name in planes:
            why = "it is read plane by plane" if name in planes else "not a space or time axis"
            raise ValueError(f"halo: axis {name!r} of {image.url} cannot grow ({why})")
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise ValueError(f"halo: axis {name!r} takes a number of pixels >= 0, got {n!r}")
        if n:
            out[name] = int(n)
    return out


def grown(
    region: Sequence[Any], axes: Sequence[str], shape: Sequence[int], halo: Mapping[str, int]
) -> tuple[Any, ...]:
    """``region`` (a level selection) grown by ``halo`` pixels per axis name on each side,
    clipped at the level's edges (as ngio's ``with_halo``); axes not selected by a slice keep
    their selection."""
    out = list(region)
    for a, n in halo.items():
        i = list(axes).index(a)
        s = out[i]
        if isinstance(s, slice) and s.step in (None, 1):
            start, stop, _ = s.indices(shape[i])
            out[i] = slice(max(0, start - n), min(shape[i], stop + n))
    return tuple(out)


def _inner(region: Sequence[Any], core: Sequence[Any]) -> tuple[slice, ...]:
    """Where ``core`` is in an array read of ``region`` (one slice per axis it keeps)."""
    return tuple(
        slice(c.start - r.start, c.stop - r.start) if isinstance(r, slice) else slice(None)
        for r, c in zip(region, core, strict=True)
        if not isinstance(r, int)
    )


def _label_grown(
    lregion: list[Any],
    region: Sequence[Any],
    names: tuple[Sequence[str], Sequence[str]],
    scales: tuple[Sequence[float], Sequence[float]],
    lshape: Sequence[int],
    halo: Mapping[str, int],
) -> None:
    """``lregion`` (the label selection of a ROI's box) grown to the label pixels holding the
    centres of the image pixels of ``region`` (the box grown by ``halo``), in place."""
    for a in halo:
        i, j = list(names[0]).index(a), list(names[1]).index(a) if a in names[1] else -1
        s, ls = region[i], lregion[j] if j >= 0 else None
        if not isinstance(s, slice) or not isinstance(ls, slice):
            continue
        ratio = abs(scales[0][i]) / abs(scales[1][j])
        lo = int(np.floor((s.start + 0.5) * ratio + 1e-9))
        hi = int(np.floor((s.stop - 0.5) * ratio + 1e-9)) + 1
        lregion[j] = slice(max(0, min(ls.start, lo)), min(lshape[j], max(ls.stop, hi)))


async def read_roi(
    image: Dataset,
    roi: Roi,
    level: int | str = 0,
    label: Dataset | None = None,
    plane: dict[str, int] | None = None,
    halo: Mapping[str, int] | None = None,
    /,
    **axes: Any,
) -> RoiRead:
    """Read ``roi``'s box of ``image`` at ``level`` (``axes``: other selections, ``c="DAPI"``),
    and of ``label`` on the same grid when given: each image pixel gets the label pixel that
    holds its centre. ``plane``: ``{axis: k}``, only the box's ``k``-th plane, the axis
    dropped. ``halo``: the box grown by that many pixels of the level per axis name
    (:func:`check_halo`), clipped at its edges; ``core`` is the box itself."""
    box = {**roi_box(roi), **axes}
    region = list(roi_region(image, level, roi, axes))
    lvl = image.level(level)
    for a, k in (plane or {}).items():
        i = image.axes.index(a)
        region[i] = region[i].start + k
    core: tuple[Any, ...] | None = None
    if halo:
        core, region = tuple(region), list(grown(region, image.axes, lvl.shape, halo))
        if tuple(region) == core:
            core = None  # (clipped away at every edge: nothing grown)
    inner = None if core is None else _inner(region, core)
    data = await lvl.getitem(tuple(region))
    if label is None:
        return RoiRead(roi, tuple(region), data, core=core, inner=inner)
    at = label_level(image, level, label)
    lbox = {k: v for k, v in box.items() if k in _WORLD and k in label.axes}
    lregion = list(label.world_region(at, unit=_units_of(image, label), origin="image", **lbox))
    llvl = label.level(at)
    cal = image.metadata.spatial_calibration[image.levels.index(lvl)]
    lcal = label.metadata.spatial_calibration[at]
    for a in plane or {}:
        if a in label.axes and isinstance(region[image.axes.index(a)], int):
            p, j = region[image.axes.index(a)], label.axes.index(a)
            ratio = abs(cal[a].scale) / abs(lcal[a].scale)
            lregion[j] = min(int(np.floor((p + 0.5) * ratio + 1e-9)), llvl.shape[j] - 1)
    if core is not None and halo:
        names = (image.axes, label.axes)
        _label_grown(lregion, region, names, (cal.scale, lcal.scale), llvl.shape, halo)
    raw = await llvl.getitem(tuple(lregion))
    picks = centre_picks(
        (region, lvl.shape, cal.scale),
        (lregion, llvl.shape, lcal.scale),
        (image.axes, label.axes),
    )
    kept = _kept(image.axes, region)
    grid = on_grid(raw, _kept(label.axes, lregion), kept, data.shape, picks)
    return RoiRead(roi, tuple(region), data, grid, core=core, inner=inner)


async def write_roi(
    image: Dataset,
    roi: Roi,
    data: ArrayLike,
    level: int | str = 0,
    pyramid: bool | Method | Cascade | None = False,
    **axes: Any,
) -> None:
    """Write ``data`` to the pixels :func:`read_roi` reads for ``roi`` (ngio's ``set_roi``);
    ``pyramid``: a :class:`Cascade` too (a stream's: fed, finished by the stream)."""
    region = roi_region(image, level, roi, axes)
    named = dict(zip(image.axes, region, strict=True))
    await image.write(data, level, cast("Any", pyramid), **named)


def roi_span(image: Dataset, level: int | str, roi: Roi, axes: dict[str, Any]) -> Region:
    """The level region (step-1 slices) :func:`write_roi` writes for ``roi``."""
    region = roi_region(image, level, roi, axes)
    return image.region_of(level, **dict(zip(image.axes, region, strict=True)))


def _in_order(read: RoiRead, axes: Sequence[str], order: Sequence[str]) -> RoiRead:
    """``read`` in ``order`` (:func:`roi_read_in_order`), its ``inner`` too."""
    got = roi_read_in_order(read, axes, order)
    if read.inner is None:
        return got
    kept = kept_by_region(axes, read.region)
    inner = tuple(read.inner[kept.index(a)] if a in kept else slice(None) for a in order)
    return replace(got, inner=inner)


def _cut(r: RoiRead, value: Any) -> tuple[RoiRead, Any]:
    """A halo'd read and its result (in the read's natural axes) cut to the ROI's own box:
    ``value`` of the grown box's shape (or without its leading unit axes) cropped (another
    shape, a core-sized one or a scalar, as it is: the write broadcasts it or names the
    shapes)."""
    if r.core is None or r.inner is None:
        return r, value
    shape = tuple(getattr(value, "shape", None) or ())
    full = r.data.shape
    lead = len(full) - len(shape)
    if shape and lead >= 0 and shape == full[lead:] and all(n == 1 for n in full[:lead]):
        value = value[r.inner[lead:]]  # (maybe without the leading unit axes: f(a[0]))
    labels = None if r.labels is None else r.labels[r.inner]
    cut = replace(r, region=r.core, data=r.data[r.inner], labels=labels, core=None, inner=None)
    return cut, value


def _size(
    image: Dataset,
    level: int | str,
    item: _Item,
    axes: dict[str, Any],
    label: Dataset | None,
    halo: Mapping[str, int] | None = None,
) -> int:
    """The bytes one ROI's (or plane's) read holds (its labels counted at the image's size;
    ``halo``: its box grown)."""
    roi, plane, _ = item
    lvl = image.level(level)
    region = grown(roi_region(image, level, roi, axes), image.axes, lvl.shape, halo or {})
    n = 1
    for a, s, size in zip(image.axes, region, lvl.shape, strict=True):
        if isinstance(s, int) or a in (plane or {}):
            continue
        n *= len(s) if isinstance(s, list) else len(range(size)[s])
    return n * (lvl.dtype.itemsize + (0 if label is None else label.levels[0].dtype.itemsize))


class RoiStream:
    """The ROIs of a table read ahead of the consumer (``Limits.prefetch_tiles`` ROIs, within
    ``prefetch_bytes``), yielded as :class:`RoiRead` in table order (``ordered=False``: as
    they complete).

    ``async for r in ds.read_rois(...)``: the work runs in the dataset's task group and stops
    at the end, on an error, on ``aclose()`` or when the dataset closes; ``async with
    ds.read_rois(...) as rois: async for r in rois``: leaving the block stops it at once.
    """

    def __init__(
        self,
        image: Dataset,
        rois: str | Sequence[Roi],
        level: int | str,
        label: Dataset | str | None,
        axes: dict[str, Any],
        *,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
    ) -> None:
        if prefetch is not None and (isinstance(prefetch, bool) or prefetch < 1):
            raise ValueError(f"prefetch must be a positive int, got {prefetch!r}")
        if isinstance(planes, str) or any(a not in ("z", "t") for a in planes or ()):
            raise ValueError(f"planes takes a sequence of 'z' and 't', got {planes!r}")
        self._planes = tuple(planes or ())
        # each ROI read grown by these pixels per axis (ngio's with_halo); its core written
        self._halo = check_halo(image, halo, self._planes)
        # each read's data and labels in this order (ngio's iterators' axes_order)
        self._axes_order = None if axes_order is None else check_order(axes_order)
        image.level(level)  # a bad level fails here, not at the first ROI
        self._image, self._rois, self._level = image, rois, level
        self._label, self._axes = label, axes
        self._window = prefetch or image.limits.prefetch_tiles
        self._ordered = ordered
        self._used = False
        self._cm: Prefetch[_Item, RoiRead] | None = None
        self._opened: Dataset | None = None  # the label image it opened by name: it closes it
        self._holds = 0  # stream(out=...) keeps the label open for its writes (_held_label)

    async def _items(self) -> Iterator[_Item]:
        rois = self._rois
        if isinstance(rois, str):
            rois = await self._image.tables.rois(rois)
        if not self._planes:
            return ((roi, None, k) for k, roi in enumerate(list(rois)))
        image, level, axes = self._image, self._level, self._axes
        return (
            (roi, plane, k)
            for k, roi in enumerate(list(rois))
            for plane in roi_planes(image, level, roi, axes, self._planes)
        )

    async def _make(self, owner: TaskGroup | None) -> Prefetch[_Item, RoiRead]:
        if self._used:
            raise RuntimeError("a ROI stream can be iterated once; call read_rois() again")
        self._used = True
        image, level, axes = self._image, self._level, self._axes
        label = self._label
        if isinstance(label, str):  # a label image of this one, by name (shares its store)
            label = self._label = self._opened = await image.labels.open(label)

        halo = self._halo

        async def read(item: _Item) -> RoiRead:
            got = await read_roi(image, item[0], level, label, item[1], halo, **axes)
            if self._axes_order is not None:
                got = _in_order(got, image.axes, self._axes_order)
            return replace(got, index=item[2])

        return start_prefetch(
            await self._items(),
            read,
            window=self._window,
            max_bytes=image.limits.prefetch_bytes,
            size_of=lambda item: _size(image, level, item, axes, label, halo),
            ordered=self._ordered,
            owner=owner,
        )

    def natural(self, r: RoiRead, value: Any) -> tuple[RoiRead, Any]:
        """A read of this stream and a result for it (in ``axes_order``, as ``r`` is) in the
        axes the image's read keeps, cut to the ROI's own box when read with a halo: what
        ``stream(..., out=...)`` writes."""
        order = self._axes_order
        if order is not None:
            kept = kept_by_region(self._image.axes, r.region)
            labels = None if r.labels is None else from_order(r.labels, kept, order)
            try:
                value = from_order(value, kept, order)
            except ValueError as exc:
                raise ValueError(f"the result of ROI {r.roi.name!r}: {exc}") from None
            data = from_order(r.data, kept, order)
            inner = None if r.core is None else _inner(r.region, r.core)
            r = replace(r, data=data, labels=labels, inner=inner)
        return _cut(r, value)

    async def _release(self) -> None:
        """Close the label image the stream opened (its image and store stay open), unless
        :meth:`_held_label` still holds it."""
        opened = self._opened
        if opened is not None and not self._holds:
            self._opened = None
            with anyio.CancelScope(shield=True):
                await opened.aclose()

    @asynccontextmanager
    async def _held_label(self) -> AsyncIterator[None]:
        """The label image the stream opens kept open past the stream's end, to the block's."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            await self._release()

    def __aiter__(self) -> AsyncIterator[RoiRead]:
        return _OwnedRois(self)

    async def __aenter__(self) -> PrefetchIterator[RoiRead]:
        try:
            self._cm = await self._make(None)
            return await self._cm.__aenter__()
        except BaseException:
            self._cm = None
            await self._release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        cm, self._cm = self._cm, None
        try:
            return None if cm is None else await cm.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            await self._release()


class _OwnedRois(AsyncIterator[RoiRead]):
    """``async for`` over a :class:`RoiStream`: started in the dataset's task group on the
    first ``__anext__`` (the table is read then). The label image the stream opened closes
    at the end, on an error, on ``aclose()`` and when the iterator is dropped (a ``break``)."""

    def __init__(self, stream: RoiStream) -> None:
        self._stream = stream
        self._it: PrefetchIterator[RoiRead] | None = None

    async def __anext__(self) -> RoiRead:
        try:
            if self._it is None:
                owner = await self._stream._image._background()
                self._it = (await self._stream._make(owner)).__aiter__()
            return await self._it.__anext__()
        except (StopAsyncIteration, Exception):
            await self._stream._release()
            raise

    async def aclose(self) -> None:
        try:
            if self._it is not None:
                await self._it.aclose()
        finally:
            await self._stream._release()

    def __del__(self) -> None:
        # a ``break`` out of ``async for`` drops the iterator (its prefetch stops itself)
        opened = getattr(self, "_stream", None) and self._stream._opened
        if opened is not None and not self._stream._holds:
            self._stream._opened = None
            _close_soon(opened)


_closing: set[asyncio.Task[None]] = set()  # (a task the loop holds only weakly)


def _close_soon(ds: Dataset) -> None:
    """Close ``ds`` in a task of the running event loop (from a finalizer, which cannot
    await); without one (the loop has ended), nothing is left to close."""
    try:
        task = asyncio.get_running_loop().create_task(_Deferred(ds.aclose))
    except RuntimeError:
        return
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _label_name(table: Table) -> str | None:
    region = table.region
    if not region:
        return None
    return region.rstrip("/").rpartition("labels/")[2] or None


async def masking_table(image: Dataset, label: str | None, table: str | None) -> Table | None:
    """The masking ROI table ``table``, or the first one whose region is label ``label``
    (``None``: there is none)."""
    if table is not None:
        found = await image.tables.read(table)
        if found.type != "masking_roi_table":
            raise ValueError(f"table {table!r} is a {found.type}, not a masking_roi_table")
        if label is not None and _label_name(found) not in (None, label):
            raise ValueError(
                f"table {table!r} has the boxes of label image {_label_name(found)!r}, "
                f"not {label!r}"
            )
        return found
    if label is None:
        raise TypeError("masked() takes a label image name, a masking ROI table name or both")
    for name in await image.tables.names(type="masking_roi_table"):
        found = await image.tables.read(name)
        if _label_name(found) == label:
            return found
    return None


def _bounds(data: NDArray[Any], offset: Sequence[int], into: dict[int, list[list[int]]]) -> None:
    """Merge the pixel bounds ``[lo..., hi...]`` (inclusive) of each non-zero value of
    ``data`` (a block at ``offset``) into ``into``."""
    where = np.nonzero(data)
    if not where[0].size:
        return
    values, inverse = np.unique(data[where], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(values.size))
    lows = [np.minimum.reduceat(w[order], starts) + o for w, o in zip(where, offset, strict=True)]
    highs = [np.maximum.reduceat(w[order], starts) + o for w, o in zip(where, offset, strict=True)]
    for i, v in enumerate(values.tolist()):
        lo, hi = [int(a[i]) for a in lows], [int(a[i]) for a in highs]
        old = into.get(v)
        if old is not None:
            lo = [min(a, b) for a, b in zip(lo, old[0], strict=True)]
            hi = [max(a, b) for a, b in zip(hi, old[1], strict=True)]
        into[v] = [lo, hi]


async def masking_rois(label: Dataset, level: int | str = 0) -> list[Roi]:
    """One box per object (non-zero value) of label image ``label``, its bounding box in
    the image's units from its corner (ngio's ``build_masking_roi_table``): the level is
    read tile by tile, never whole."""
    from ..tables import Roi

    found: dict[int, list[list[int]]] = {}
    async with label.tiles(level) as tiles:
        async for tile in tiles:
            _bounds(tile.data, [s.start for s in tile.region], found)
    cal = label.metadata.spatial_calibration[label.levels.index(label.level(level))]
    out = []
    for value in sorted(found):
        lo, hi = found[value]
        ranges: dict[str, tuple[float, float]] = {}
        time = None
        for a, start, stop in zip(label.axes, lo, hi, strict=True):
            if a in ("x", "y", "z", "t"):
                scale = abs(cal[a].scale)
                box = (start * scale, (stop + 1) * scale)
                if a == "t":
                    time = box
                else:
                    ranges[a] = box
        out.append(Roi(str(value), ranges, label=value, time=time))
    return out


class MaskedImage:
    """An image masked by a label image, object by object, as ngio's ``MaskedImage``:
    ``await m.read(7)`` is object 7's box, ``await m.read(7, masked=True)`` its pixels alone
    (``fill`` elsewhere), ``await m.write(7, data)`` writes ``data`` only where the object is.
    Made by :meth:`ngio_async.images.Dataset.masked`; closing it closes the label image."""

    def __init__(
        self,
        image: Dataset,
        label: Dataset,
        rois: Sequence[Roi],
        level: int | str,
        *,
        owns_image: bool = False,
    ) -> None:
        self.image, self.label_image, self.level = image, label, level
        self._owns_image = owns_image  # a label image masked by another: closed with this
        self._rois = {int(r.label): r for r in rois if r.label is not None}

    def __repr__(self) -> str:
        return (
            f"<MaskedImage {self.image.url} by {self.label_image.url} ({len(self._rois)} objects)>"
        )

    @property
    def values(self) -> list[int]:
        """The label values of the table's objects, in table order."""
        return list(self._rois)

    def roi(self, value: int, zoom: float = 1.0) -> Roi:
        """The box of object ``value``; ``zoom``: grown (or shrunk) in y and x about its
        centre by that factor, as ngio's ``zoom_factor`` (a start below 0 is moved to 0)."""
        try:
            roi = self._rois[int(value)]
        except KeyError:
            raise KeyError(
                f"label value {value} is not an object of {self.label_image.url} (values: "
                f"{_shown(self.values)})"
            ) from None
        return roi if zoom == 1.0 else zoomed(roi, zoom)

    async def read_roi(
        self,
        value: int,
        *,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> RoiRead:
        """Object ``value``'s box: image pixels and labels (``axes``: ``c="DAPI"``, ...;
        ``axes_order``: both so, as :meth:`Dataset.read` orders them)."""
        roi = self.roi(value, zoom)
        got = await read_roi(self.image, roi, self.level, self.label_image, **axes)
        return got if axes_order is None else roi_read_in_order(got, self.image.axes, axes_order)

    async def read(
        self,
        value: int,
        *,
        masked: bool = False,
        fill: Any = 0,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> NDArray[Any]:
        """Object ``value``'s box (ngio's ``get_roi``); ``masked=True``: only its pixels,
        ``fill`` elsewhere (``get_roi_masked``); ``axes_order``: as :meth:`Dataset.read`."""
        if not masked:
            got = await read_roi(self.image, self.roi(value, zoom), self.level, None, **axes)
            if axes_order is not None:
                got = roi_read_in_order(got, self.image.axes, axes_order)
            return got.data
        got = await self.read_roi(value, zoom=zoom, axes_order=axes_order, **axes)
        return got.masked(fill)

    async def read_label(self, value: int, *, zoom: float = 1.0, **axes: Any) -> NDArray[Any]:
        """The label pixels of object ``value``'s box, on the image's grid."""
        got = await self.read_roi(value, zoom=zoom, **axes)
        assert got.labels is not None
        return got.labels

    async def write(
        self,
        value: int,
        data: ArrayLike,
        *,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write ``data`` (the shape :meth:`read` gives, or one that broadcasts to it) where
        object ``value`` is (ngio's ``set_roi_masked``): only the object's pixels are written,
        as points (each chunk read, patched and written back as one), so the rest of its box
        keeps what is stored and masked writes of objects whose boxes overlap may run at once.
        ``axes_order``: ``data``'s axes, as :meth:`read` gives them with it. ``merge``: the
        object's pixels combined with the stored ones, as :meth:`Dataset.write` takes it
        (ngio's ``set_roi_masked(..., merge=)``); the rest of the box is left alone."""
        self.image._check_writable()
        if merge is not None:
            rule_of(merge)  # an unknown rule: refused before the box is read
        got = await self.read_roi(value, zoom=zoom, **axes)
        if axes_order is not None:
            data = from_order(data, kept_by_region(self.image.axes, got.region), axes_order)
        await self.write_read(got, data, merge=merge)

    async def write_read(
        self,
        got: RoiRead,
        data: ArrayLike,
        pyramid: bool | Method | Cascade | None = False,
        *,
        merge: Merge | None = None,
    ) -> None:
        """:meth:`write` to a box already read (``got``: from :meth:`read_roi` or
        :meth:`stream` of this masked image), without reading it again; ``pyramid``: as
        :meth:`Dataset.write_points` takes it (or a stream's :class:`Cascade`); ``merge``:
        as :meth:`write` takes it."""
        self.image._check_writable()
        if merge is not None:
            rule_of(merge)
        value = got.roi.label
        arr = np.asarray(data)
        extra = arr.ndim - got.data.ndim
        if extra > 0 and all(n == 1 for n in arr.shape[:extra]):  # dropped, as ds.write does
            arr = arr.reshape(arr.shape[extra:])
        try:
            new = np.broadcast_to(arr, got.data.shape)
        except ValueError:
            raise ValueError(
                f"object {value}: data of shape {np.shape(data)} for a box of shape "
                f"{got.data.shape}"
            ) from None
        mask = got.mask
        inside = np.nonzero(mask)
        if not inside[0].size:
            return
        if merge is not None:  # merged in each stored object's read-modify-write
            where = self.image._write_where
            await where(tuple(got.region), new, mask, self.level, pyramid, merge)
            return
        shape = self.image.level(self.level).shape
        points, k = [], 0
        for s, n in zip(got.region, shape, strict=True):
            if isinstance(s, int):
                points.append(np.full(inside[0].size, s, dtype=np.intp))
            else:
                points.append(_indices(s, n)[inside[k]])
                k += 1
        await self.image.write_points(tuple(points), new[mask], self.level, cast("Any", pyramid))

    def stream(
        self,
        values: Sequence[int] | None = None,
        *,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
        **axes: Any,
    ) -> RoiStream:
        """The objects (``values``, default all) read ahead of the consumer, each a
        :class:`RoiRead` with its labels (``r.masked()``: its pixels alone); ``planes``,
        ``axes_order``, ``halo``: as :meth:`Dataset.read_rois` (``r.masked()`` of a halo'd
        read: the object's pixels in the grown box; ``stream(..., out=m)`` writes the ROI's
        own box, only where its object is)."""
        if "level" in axes:  # (the level is the masked image's: ds.masked(..., level=))
            raise TypeError(
                f"m.stream() reads at the masked image's level ({self.level!r}), and takes no "
                "level=: give it to ds.masked(label, level=...)"
            )
        rois = [self.roi(v) for v in (self.values if values is None else values)]
        return RoiStream(
            self.image,
            rois,
            self.level,
            self.label_image,
            axes,
            prefetch=prefetch,
            ordered=ordered,
            planes=planes,
            axes_order=axes_order,
            halo=halo,
        )

    async def aclose(self) -> None:
        """Close the label image (the image stays open; a masked label image is closed)."""
        try:
            await self.label_image.aclose()
        finally:
            if self._owns_image:
                await self.image.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_masked(
    image: Dataset,
    label: str | None,
    table: str | None,
    level: int | str,
    of: str | None = None,
) -> MaskedImage:
    """Find the masking ROI table (none: the boxes are computed from the label image, as ngio
    does), open its label image (and label image ``of``, the one masked): a
    :class:`MaskedImage`."""
    found = await masking_table(image, label, table)
    name = label if found is None else label or _label_name(found)
    if name is None:
        raise ValueError(f"table {table!r} names no label image (region); pass label=")
    opened: list[Dataset] = []
    try:
        target = image
        if of is not None:
            target = await image.labels.open(of)
            opened.append(target)
        target.level(level)
        lab = await image.labels.open(name, "r")
        opened.append(lab)
        rois = found.rois() if found is not None else await masking_rois(lab)
    except BaseException:
        for ds in opened:
            await ds.aclose()
        raise
    return MaskedImage(target, lab, rois, level, owns_image=of is not None)


def zoomed(roi: Roi, factor: float, axes: Sequence[str] = ("x", "y")) -> Roi:
    """``roi`` grown by ``factor`` about its centre along ``axes``: :meth:`Roi.zoom`."""
    return roi.zoom(factor, axes)


def _shown(values: Sequence[int]) -> str:
    return ", ".join(map(str, values[:10])) + (", ..." if len(values) > 10 else "")


__all__ = [
    "MaskedImage",
    "check_halo",
    "grown",
    "RoiRead",
    "RoiStream",
    "masking_rois",
    "open_masked",
    "read_roi",
    "roi_box",
    "roi_span",
    "write_roi",
    "zoomed",
]
