"""Region planning (pure, no I/O): which stored objects a region needs, and where each piece goes.

A *region* is a tuple of ``slice(start, stop)`` (step 1), one per dimension, inside the array's
bounds; :func:`normalize_selection` turns numpy basic indexing into one.

- :func:`plan_chunks` yields one :class:`ChunkPlan` per chunk (of ``meta.chunks``, the inner chunk
  for sharded arrays) that the region touches.
- :func:`plan_shards` groups those chunks by the stored object that holds them: one
  :class:`ShardPlan` per shard (sharded arrays) or per chunk (others, with the single inner chunk
  ``(0, ..., 0)``), with the stored object's key.

The reader copies ``decoded[chunk_selection]`` into ``out[out_selection]`` for each piece, and
fills the pieces of missing chunks with the fill value.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from itertools import product
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

__all__ = [
    "is_int",
    "strided_parts",
    "BasicSelection",
    "ChunkPlan",
    "GridMeta",
    "InnerChunkPlan",
    "Region",
    "ShardPlan",
    "check_region",
    "chunk_grid_range",
    "nchunks",
    "list_index",
    "normalize_selection",
    "part_cells",
    "plan_chunks",
    "plan_shards",
    "region_shape",
    "ListIndex",
    "UnsupportedIndexError",
    "CoordinateIndex",
    "OrthogonalIndex",
    "coordinate_index",
    "fancy_kind",
    "orthogonal_index",
    "selection_span",
    "AxisPiece",
    "axis_pieces",
    "point_groups",
]

Region = tuple[slice, ...]


class GridMeta(Protocol):
    """What the planner needs from array metadata (both zarr Structs provide it)."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def chunks(self) -> tuple[int, ...]: ...

    @property
    def shards(self) -> tuple[int, ...] | None: ...

    def chunk_key(self, coords: tuple[int, ...]) -> str: ...


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """One chunk's share of a region."""

    #: chunk coordinates in the array's chunk grid (``meta.chunks``)
    coords: tuple[int, ...]
    #: key of the stored object holding the chunk (the shard's key for sharded arrays)
    key: str
    #: where the piece lies inside the decoded chunk
    chunk_selection: Region
    #: where the piece goes in the region's output array
    out_selection: Region


@dataclass(frozen=True, slots=True)
class InnerChunkPlan:
    """One inner chunk of a shard: coordinates within the shard and the two selections."""

    coords: tuple[int, ...]
    chunk_selection: Region
    out_selection: Region


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """One stored object (shard, or plain chunk) and the inner chunks of it a region needs."""

    #: coordinates in the grid of stored objects
    coords: tuple[int, ...]
    key: str
    #: inner chunks touched, in C order
    chunks: tuple[InnerChunkPlan, ...]
    #: the part of the output this object covers (the union of its chunks' out selections)
    out_selection: Region


def region_shape(region: Region) -> tuple[int, ...]:
    """Shape of the output array for a (normalised, step 1) region."""
    return tuple(s.stop - s.start for s in region)


def check_region(region: Region, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``region`` is one ``slice(start, stop)`` (step 1, int bounds,
    ``0 <= start <= stop <= size``) per axis of ``shape``."""
    if len(region) != len(shape):
        raise ValueError(f"region has {len(region)} dimensions, the array has {len(shape)}")
    for s, n in zip(region, shape, strict=True):
        if (
            type(s) is slice
            and type(s.start) is int  # plain ints (not bool): no ABC check, the usual case
            and type(s.stop) is int
            and s.step in (None, 1)
            and 0 <= s.start <= s.stop <= n
        ):
            continue
        if not (
            isinstance(s, slice)
            and s.step in (None, 1)
            and is_int(s.start)
            and is_int(s.stop)
            and 0 <= s.start <= s.stop <= n
        ):
            raise ValueError(
                f"region {tuple(region)} is not a normalised step-1 region of {shape}: one "
                "slice(start, stop) per axis with 0 <= start <= stop <= size (level[...] takes "
                "numpy indexing)"
            )


def chunk_grid_range(region: Region, chunks: tuple[int, ...]) -> tuple[range, ...]:
    """The range of chunk indices per dimension that a region touches (empty if the region is)."""
    return tuple(
        range(s.start // c, -(-s.stop // c)) if s.stop > s.start else range(0)
        for s, c in zip(region, chunks, strict=True)
    )


def _piece(lo: int, hi: int, i: int, c: int) -> tuple[slice, slice]:
    """(chunk selection, out selection) in one dimension for chunk ``i`` of size ``c``."""
    a = max(lo, i * c)
    b = min(hi, (i + 1) * c)
    return slice(a - i * c, b - i * c), slice(a - lo, b - lo)


def _pieces(region: Region, chunks: tuple[int, ...]) -> list[dict[int, tuple[slice, slice]]]:
    out = []
    for s, c, rng in zip(region, chunks, chunk_grid_range(region, chunks), strict=True):
        out.append({i: _piece(s.start, s.stop, i, c) for i in rng})
    return out


def plan_chunks(meta: GridMeta, region: Region) -> Iterator[ChunkPlan]:
    """Every chunk (of ``meta.chunks``) the region touches, in C order."""
    check_region(region, meta.shape)
    chunks = meta.chunks
    shards = meta.shards
    if shards is None and all(
        r.stop > r.start and r.start // c == (r.stop - 1) // c
        for r, c in zip(region, chunks, strict=True)
    ):  # inside one chunk, as a tile of an unsharded level is: the plan without the search
        coords = tuple(r.start // c for r, c in zip(region, chunks, strict=True))
        yield ChunkPlan(
            coords=coords,
            key=meta.chunk_key(coords),
            chunk_selection=tuple(
                slice(r.start - i * c, r.stop - i * c)
                for r, i, c in zip(region, coords, chunks, strict=True)
            ),
            out_selection=tuple(slice(0, r.stop - r.start) for r in region),
        )
        return
    per_dim = _pieces(region, chunks)
    for coords in product(*(sorted(d) for d in per_dim)):
        sel = [per_dim[d][i] for d, i in enumerate(coords)]
        if shards is None:
            key = meta.chunk_key(coords)
        else:
            cps = tuple(s // c for s, c in zip(shards, chunks, strict=True))
            key = meta.chunk_key(tuple(map(operator.floordiv, coords, cps)))
        yield ChunkPlan(
            coords=coords,
            key=key,
            chunk_selection=tuple(p[0] for p in sel),
            out_selection=tuple(p[1] for p in sel),
        )


def plan_shards(meta: GridMeta, region: Region) -> Iterator[ShardPlan]:
    """Stored objects the region touches (C order), each with the inner chunks it needs.

    For an unsharded array each object is one chunk whose single inner chunk is ``(0,)*ndim``.
    """
    check_region(region, meta.shape)
    chunks = meta.chunks
    shards = meta.shards if meta.shards is not None else chunks
    cps = tuple(s // c for s, c in zip(shards, chunks, strict=True))
    gcoords = tuple(s.start // c for s, c in zip(region, chunks, strict=True))
    if all(
        s.stop > s.start and (s.stop - 1) // c == g
        for s, c, g in zip(region, chunks, gcoords, strict=True)
    ):  # inside one (inner) chunk, as a tile often is: the plan without the general search
        scoords = tuple(g // n for g, n in zip(gcoords, cps, strict=True))
        out_sel = tuple(slice(0, s.stop - s.start) for s in region)
        inner = InnerChunkPlan(
            coords=tuple(g - sc * n for g, sc, n in zip(gcoords, scoords, cps, strict=True)),
            chunk_selection=tuple(
                slice(s.start - g * c, s.stop - g * c)
                for s, g, c in zip(region, gcoords, chunks, strict=True)
            ),
            out_selection=out_sel,
        )
        yield ShardPlan(scoords, meta.chunk_key(scoords), (inner,), out_sel)
        return
    outer_dims = _pieces(region, shards)
    inner_dims = _pieces(region, chunks)
    inner_grid = chunk_grid_range(region, chunks)  # the inner chunks the region touches
    for scoords in product(*(sorted(d) for d in outer_dims)):
        inner_ranges = [  # those of this shard: the two ranges' intersection
            range(max(sc * n, touched.start), min((sc + 1) * n, touched.stop))
            for sc, n, touched in zip(scoords, cps, inner_grid, strict=True)
        ]
        plans = []
        for gcoords in product(*inner_ranges):
            sel = [inner_dims[d][i] for d, i in enumerate(gcoords)]
            plans.append(
                InnerChunkPlan(
                    coords=tuple(
                        g - sc * n for g, sc, n in zip(gcoords, scoords, cps, strict=True)
                    ),
                    chunk_selection=tuple(p[0] for p in sel),
                    out_selection=tuple(p[1] for p in sel),
                )
            )
        yield ShardPlan(
            coords=scoords,
            key=meta.chunk_key(scoords),
            chunks=tuple(plans),
            out_selection=tuple(outer_dims[d][sc][1] for d, sc in enumerate(scoords)),
        )


# --------------------------------------------------------------------------------------------
# numpy basic indexing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BasicSelection:
    """A normalised numpy basic index.

    Read :attr:`region` (step 1, inside bounds), then :meth:`apply` takes every ``step``-th element
    (backwards for a negative step), drops the integer-indexed axes and inserts the ``None``
    (newaxis) axes, giving exactly ``numpy_array[selection]``.
    """

    region: Region
    #: one step per array axis; negative: the axis is read backwards
    steps: tuple[int, ...]
    #: axes indexed by an integer (dropped from the result)
    drop_axes: tuple[int, ...]
    #: positions in the result of the length-1 axes that ``None`` (newaxis) adds
    new_axes: tuple[int, ...] = ()
    #: the index had a ``...``: a result of no axes is a 0-d array, not a scalar (as numpy)
    ellipsis: bool = False

    @property
    def is_region(self) -> bool:
        """Whether the selection is its region: step-1 slices, no integer or ``None``."""
        return all(st == 1 for st in self.steps) and not self.drop_axes and not self.new_axes

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the final result."""
        kept = [
            -(-(s.stop - s.start) // abs(st))
            for ax, (s, st) in enumerate(zip(self.region, self.steps, strict=True))
            if ax not in self.drop_axes
        ]
        for pos in self.new_axes:
            kept.insert(pos, 1)
        return tuple(kept)

    def apply(self, array: NDArray[Any]) -> NDArray[Any]:
        """Turn the array read for :attr:`region` into the result of the original selection."""
        if any(st != 1 for st in self.steps) or self.drop_axes:
            index = tuple(
                0 if ax in self.drop_axes else slice(None, None, st)
                for ax, st in enumerate(self.steps)
            )
            array = array[(*index, ...) if self.ellipsis else index]
        if self.new_axes:
            array = np.expand_dims(array, self.new_axes)
        return array


def is_int(x: object) -> bool:
    """An integer as numpy indexing takes it (``__index__``), booleans excluded."""
    if isinstance(x, bool | np.bool_):
        return False
    try:
        operator.index(x)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


class UnsupportedIndexError(IndexError, TypeError):
    """An index that is no basic index: an ``IndexError`` as numpy raises for floats and
    strings, and a ``TypeError`` (advanced indexing is not supported)."""


def normalize_selection(selection: object, shape: tuple[int, ...]) -> BasicSelection:
    """Normalise numpy basic indexing (ints, slices, ``...``, ``None``) to a region.

    Negative indices count from the end; slices clamp like numpy's, and a negative step reads
    backwards. The region of a slice is the covering step-1 range, trimmed to the elements taken.

    :raises IndexError: an integer out of range, or too many indices.
    :raises UnsupportedIndexError: an unsupported index (arrays, lists, booleans, floats, ...):
        advanced indexing is not supported (both an ``IndexError`` and a ``TypeError``).
    :raises ValueError: a slice step of zero.
    """
    sel: tuple[object, ...] = selection if isinstance(selection, tuple) else (selection,)
    n_ellipsis = sum(1 for s in sel if s is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(1 for s in sel if s is not Ellipsis and s is not None)
    if n_real > len(shape):
        raise IndexError(
            f"too many indices for array: array is {len(shape)}-dimensional, "
            f"but {n_real} were indexed"
        )
    if n_ellipsis:
        i = next(i for i, s in enumerate(sel) if s is Ellipsis)
        sel = sel[:i] + (slice(None),) * (len(shape) - n_real) + sel[i + 1 :]
    else:
        sel = sel + (slice(None),) * (len(shape) - n_real)

    region: list[slice] = []
    steps: list[int] = []
    drop: list[int] = []
    new: list[int] = []
    out_ax = 0  # position in the result
    ax = 0  # array axis
    for s in sel:
        if s is None:
            new.append(out_ax)
            out_ax += 1
            continue
        n = shape[ax]
        if is_int(s):
            i = operator.index(s)  # type: ignore[arg-type]
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {ax} with size {n}")
            i %= n
            region.append(slice(i, i + 1))
            steps.append(1)
            drop.append(ax)
        elif isinstance(s, slice):
            start, stop, step = s.indices(n)  # ValueError for a zero step
            count = len(range(start, stop, step))
            if count == 0:
                lo = min(start, n) if step > 0 else min(stop + 1, n)
                region.append(slice(lo, lo))
            else:
                last = start + (count - 1) * step
                region.append(slice(min(start, last), max(start, last) + 1))
            steps.append(step)
            out_ax += 1
        else:
            raise UnsupportedIndexError(
                "only integers, slices, '...' and None are supported (numpy basic indexing), "
                f"got {type(s).__name__} (axis {ax})"
            )
        ax += 1
    return BasicSelection(
        region=tuple(region),
        steps=tuple(steps),
        drop_axes=tuple(drop),
        new_axes=tuple(new),
        ellipsis=n_ellipsis > 0,
    )


class ListIndex(NamedTuple):
    """A selection with one list / integer array / boolean mask on one axis (numpy's advanced
    indexing, as zarr-python takes it): ``basic`` with that entry (at ``position``) made
    ``slice(None)``, the ``axis`` it indexes, its ``indices`` (in range, in the order given)
    and the result axis ``out_axis`` they make."""

    basic: tuple[object, ...]
    position: int
    axis: int
    indices: NDArray[np.intp]
    out_axis: int

    def span(self) -> tuple[object, ...]:
        """The basic selection over the indices' span (what a write may change)."""
        lo, hi = (
            (int(self.indices.min()), int(self.indices.max()) + 1) if self.indices.size else (0, 0)
        )
        return (*self.basic[: self.position], slice(lo, hi), *self.basic[self.position + 1 :])


def list_index(selection: object, shape: tuple[int, ...]) -> ListIndex | None:
    """The one list, integer array or boolean mask of ``selection`` (``None``: there is none).

    :raises UnsupportedIndexError: more than one, or one of more than one dimension.
    :raises IndexError: an index out of range, or a mask of another length (as numpy).
    """
    sel: tuple[object, ...] = selection if isinstance(selection, tuple) else (selection,)
    where = [i for i, s in enumerate(sel) if _is_array_index(s)]  # a 0-d array: an integer
    if not where:
        return None
    if len(where) > 1:
        raise UnsupportedIndexError(
            f"one list or array index per selection is supported here, got {len(where)}: "
            "use .oindex[...] (orthogonal: each axis on its own, as np.ix_) or .vindex[...] "
            "(pointwise: one integer array per axis, broadcast together)"
        )
    (at,) = where
    n_real = sum(1 for s in sel if s is not Ellipsis and s is not None)
    if n_real > len(shape) or sum(1 for s in sel if s is Ellipsis) > 1:
        return None  # normalize_selection says what is wrong
    if any(s is Ellipsis for s in sel[:at]):  # its place once '...' stands for its axes
        e = next(i for i, s in enumerate(sel) if s is Ellipsis)
        before = (*sel[:e], *(slice(None),) * (len(shape) - n_real), *sel[e + 1 : at])
    else:
        before = sel[:at]
    axis = sum(1 for s in before if s is not None and s is not Ellipsis)
    out_axis = sum(1 for s in before if s is None or isinstance(s, slice))
    indices = _axis_indices(sel[at], axis, shape[axis])
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    return ListIndex(basic, at, axis, indices, out_axis)


def _axis_indices(index: object, axis: int, n: int) -> NDArray[np.intp]:
    """One list, integer array or boolean mask on ``axis`` (of size ``n``) as in-range indices,
    in the order given (negative ones counted from the end, a mask's ``True`` positions).

    :raises UnsupportedIndexError: an array of more than one dimension, or not of integers
        or booleans.
    :raises IndexError: an index out of range, or a mask of another length (as numpy).
    """
    raw = np.asarray(index)
    if raw.ndim != 1:
        raise UnsupportedIndexError(
            f"a list or array index must have one dimension, got {raw.ndim} (axis {axis})"
        )
    if raw.dtype == bool:
        if raw.shape[0] != n:
            raise IndexError(
                f"boolean index did not match indexed array along axis {axis}; size of axis "
                f"is {n} but size of corresponding boolean axis is {raw.shape[0]}"
            )
        return np.flatnonzero(raw).astype(np.intp)
    if raw.size == 0 or np.issubdtype(raw.dtype, np.integer):
        return _in_range(raw, axis, n)
    raise UnsupportedIndexError(
        f"a list or array index takes integers or booleans, got {raw.dtype} (axis {axis})"
    )


def _in_range(indices: NDArray[Any] | int, axis: int, n: int) -> NDArray[np.intp]:
    """Integer ``indices`` (an array of any integer dtype, or one int) as ``intp``, negative
    ones counted from the end; an ``IndexError`` naming the axis and its size for one out of
    range (checked before the cast: an uint64 index of 2**64 - 1 is not -1)."""
    if isinstance(indices, int):
        if not -n <= indices < n:
            raise IndexError(f"index {indices} is out of bounds for axis {axis} with size {n}")
        return np.array(indices % n, dtype=np.intp)
    bad = indices[(indices < -n) | (indices >= n)]
    if bad.size:
        raise IndexError(f"index {int(bad.flat[0])} is out of bounds for axis {axis} with size {n}")
    ints = indices.astype(np.intp)
    return np.where(ints < 0, ints + n, ints)


def _is_array_index(s: object) -> bool:
    """A list or an array of at least one dimension (an index of many coordinates)."""
    return isinstance(s, list) or (isinstance(s, np.ndarray) and s.ndim > 0)


def _is_integer_array_index(s: object) -> bool:
    """A list of integers (empty too) or an integer array: booleans excluded."""
    if isinstance(s, np.ndarray):
        return s.ndim > 0 and (s.dtype.kind in "ui" or (s.size == 0 and s.dtype.kind == "f"))
    return isinstance(s, list) and all(is_int(x) for x in s)


def fancy_kind(selection: object, ndim: int) -> str | None:
    """How ``array[selection]`` reads a selection of several list or array indices, as
    zarr-python 3 does: ``"coordinate"`` (pointwise, ``vindex``) for one integer or integer
    array per axis with at least one array (numpy's fancy indexing), or for one boolean mask
    of the array's shape; ``"orthogonal"`` (``oindex``) for one list or array per axis, some
    of them boolean. ``None``: anything else (basic indexing, or one list on one axis, which
    :func:`list_index` reads; a single 1-d list among integers reads the same either way).
    """
    sel: tuple[object, ...] = selection if isinstance(selection, tuple) else (selection,)
    if len(sel) == 1 and isinstance(sel[0], np.ndarray) and sel[0].dtype == bool:
        return "coordinate" if ndim > 1 and sel[0].ndim == ndim else None
    arrays = [s for s in sel if _is_array_index(s)]
    if not arrays or len(sel) != ndim:
        return None
    if all(is_int(s) or _is_integer_array_index(s) for s in sel):
        first = arrays[0]  # (a list here is one of integers: one dimension)
        if len(arrays) > 1 or (isinstance(first, np.ndarray) and first.ndim != 1):
            return "coordinate"
        return None
    if len(arrays) > 1 and len(arrays) == ndim:
        return "orthogonal"
    return None


def _expand_ellipsis(selection: object, ndim: int) -> tuple[object, ...]:
    """The selection as a tuple with ``...`` replaced by the full slices it stands for (and
    missing trailing axes added); ``IndexError`` for too many indices or two ellipses."""
    sel: tuple[object, ...] = selection if isinstance(selection, tuple) else (selection,)
    n_ellipsis = sum(1 for s in sel if s is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    n_real = sum(1 for s in sel if s is not Ellipsis and s is not None)
    if n_real > ndim:
        raise IndexError(
            f"too many indices for array: array is {ndim}-dimensional, but {n_real} were indexed"
        )
    if n_ellipsis:
        i = next(i for i, s in enumerate(sel) if s is Ellipsis)
        return sel[:i] + (slice(None),) * (ndim - n_real) + sel[i + 1 :]
    return sel + (slice(None),) * (ndim - n_real)


def _span_of(indices: NDArray[np.intp]) -> slice:
    return slice(int(indices.min()), int(indices.max()) + 1) if indices.size else slice(0, 0)


@dataclass(frozen=True, slots=True)
class OrthogonalIndex:
    """An orthogonal selection (zarr-python's ``oindex``; numpy's ``np.ix_``): each axis
    indexed on its own by an integer, a slice (any step), or a list / integer array /
    boolean mask; the result has one axis per non-integer index, in order, plus the
    ``None`` (newaxis) axes."""

    #: per array axis, the coordinates taken in the order given (in range; repeats kept)
    indices: tuple[NDArray[np.intp], ...]
    #: per array axis, whether its coordinates are one ascending step-1 run (a slice)
    runs: tuple[bool, ...]
    #: axes indexed by an integer (dropped from the result)
    drop_axes: tuple[int, ...]
    #: positions in the result of the length-1 axes ``None`` adds
    new_axes: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the result."""
        kept = [len(ix) for ax, ix in enumerate(self.indices) if ax not in self.drop_axes]
        for pos in self.new_axes:
            kept.insert(pos, 1)
        return tuple(kept)

    def span(self) -> Region:
        """The region covering every selected element (what a write may change)."""
        return tuple(_span_of(ix) for ix in self.indices)


def orthogonal_index(selection: object, shape: tuple[int, ...]) -> OrthogonalIndex:
    """Normalise an orthogonal selection: integers, slices, lists, integer arrays and boolean
    masks (one dimension each), ``...`` and ``None``.

    :raises IndexError: an index out of range (naming the axis and its size), a mask of
        another length, too many indices.
    :raises UnsupportedIndexError: an index of another kind (a float, a 2-d array, ...).
    :raises ValueError: a slice step of zero.
    """
    sel = _expand_ellipsis(selection, len(shape))
    indices: list[NDArray[np.intp]] = []
    runs: list[bool] = []
    drop: list[int] = []
    new: list[int] = []
    out_ax = 0
    for s in sel:
        if s is None:
            new.append(out_ax)
            out_ax += 1
            continue
        ax = len(indices)
        n = shape[ax]
        if _is_array_index(s):
            indices.append(_axis_indices(s, ax, n))
            runs.append(False)
        elif is_int(s):
            i = operator.index(s)  # type: ignore[arg-type]
            indices.append(_in_range(i, ax, n).reshape(1))
            runs.append(True)
            drop.append(ax)
            continue
        elif isinstance(s, slice):
            start, stop, step = s.indices(n)
            indices.append(np.arange(start, stop, step, dtype=np.intp))
            runs.append(step == 1)
        else:
            raise UnsupportedIndexError(
                "oindex takes integers, slices, lists, integer arrays and boolean masks, "
                f"'...' and None; got {type(s).__name__} (axis {ax})"
            )
        out_ax += 1
    return OrthogonalIndex(tuple(indices), tuple(runs), tuple(drop), tuple(new))


@dataclass(frozen=True, slots=True)
class CoordinateIndex:
    """A coordinate selection (zarr-python's ``vindex``; numpy's integer-array indexing): the
    points ``(coords[0][k], coords[1][k], ...)``, the result of ``shape`` (the indices'
    broadcast shape, or the count of a mask's ``True`` elements)."""

    #: per array axis, the points' coordinates (in range, one dimension, C order of the result)
    coords: tuple[NDArray[np.intp], ...]
    shape: tuple[int, ...]

    def span(self) -> Region:
        """The region covering every point."""
        return tuple(_span_of(c) for c in self.coords)


def coordinate_index(selection: object, shape: tuple[int, ...]) -> CoordinateIndex:
    """Normalise a coordinate selection: one integer or integer array (list) per axis,
    broadcast together as numpy does, or one boolean mask of the array's shape.

    :raises IndexError: a coordinate out of range (naming the axis and its size), a mask of
        another shape, not one index per axis, indices that do not broadcast together.
    :raises UnsupportedIndexError: an index of another kind (a slice, floats, ...).
    """
    sel: tuple[object, ...] = selection if isinstance(selection, tuple) else (selection,)
    if len(sel) == 1 and _is_array_index(sel[0]):
        mask = np.asarray(sel[0])
        if mask.dtype == bool:
            if mask.shape != shape:
                raise IndexError(
                    f"a boolean mask selects points of the whole array: its shape is "
                    f"{mask.shape}, the array's {shape}"
                )
            points = np.nonzero(mask)
            return CoordinateIndex(tuple(p.astype(np.intp) for p in points), (points[0].size,))
    if len(sel) != len(shape):
        raise IndexError(
            f"vindex takes one integer or integer array per axis ({len(shape)}), or one "
            f"boolean mask of the array's shape; got {len(sel)} indices"
        )
    arrays: list[NDArray[np.intp]] = []
    for ax, (s, n) in enumerate(zip(sel, shape, strict=True)):
        if _is_array_index(s):
            raw = np.asarray(s)
            if not (raw.dtype.kind in "ui" or (raw.size == 0 and raw.dtype.kind == "f")):
                raise UnsupportedIndexError(
                    f"vindex takes integer arrays, got an array of {raw.dtype} (axis {ax}); "
                    "a boolean mask must have the array's shape (or use .oindex[...])"
                )
            arrays.append(_in_range(raw, ax, n))
        elif is_int(s):
            i = operator.index(s)  # type: ignore[arg-type]
            arrays.append(_in_range(i, ax, n))
        else:
            raise UnsupportedIndexError(
                f"vindex takes integers and integer arrays, got {type(s).__name__} (axis {ax}): "
                "use .oindex[...] for slices"
            )
    try:
        together = np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = " ".join(str(a.shape) for a in arrays)
        raise IndexError(
            f"shape mismatch: indexing arrays could not be broadcast together with shapes {shapes}"
        ) from None
    return CoordinateIndex(tuple(a.ravel() for a in together), together[0].shape)


class AxisPiece(NamedTuple):
    """One axis's share of an orthogonal read: the step-1 ``region`` read along it (inside
    one chunk, unless the axis is a run), the positions ``take`` of the wanted coordinates in
    it, and where they go (``out``) among the axis's sorted distinct coordinates."""

    region: slice
    take: slice | NDArray[np.intp]
    out: slice


def axis_pieces(unique: NDArray[np.intp], chunk: int, run: bool) -> list[AxisPiece]:
    """The pieces of one axis whose sorted distinct coordinates are ``unique``: one per chunk
    (of size ``chunk``) holding some of them, never the span between chunks; or one for a
    ``run`` (a step-1 slice: every coordinate of its span is wanted)."""
    if unique.size == 0:
        return []
    if run:
        lo, hi = int(unique[0]), int(unique[-1]) + 1
        return [AxisPiece(slice(lo, hi), slice(None), slice(0, hi - lo))]
    pieces = []
    start = 0
    for group in np.split(unique, np.flatnonzero(np.diff(unique // chunk)) + 1):
        lo, hi = int(group[0]), int(group[-1]) + 1
        take: slice | NDArray[np.intp] = slice(None) if hi - lo == group.size else group - lo
        pieces.append(AxisPiece(slice(lo, hi), take, slice(start, start + group.size)))
        start += group.size
    return pieces


def point_groups(
    coords: tuple[NDArray[np.intp], ...], chunks: tuple[int, ...]
) -> list[NDArray[np.intp]]:
    """The positions of the points ``coords`` (one array per axis) grouped by the chunk (of
    ``chunks``) holding them, chunks in C order, points in the order given within each."""
    if not coords or coords[0].size == 0:
        return []
    cells = [c // k for c, k in zip(coords, chunks, strict=True)]
    flat = np.ravel_multi_index(cells, [int(c.max()) + 1 for c in cells])
    order = np.argsort(flat, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(flat[order])) + 1)


def selection_span(selection: object, shape: tuple[int, ...]) -> Region:
    """The region covering what ``array[selection] = ...`` writes, for any selection
    ``Level.setitem`` takes."""
    kind = fancy_kind(selection, len(shape))
    if kind == "coordinate":
        return coordinate_index(selection, shape).span()
    if kind == "orthogonal":
        return orthogonal_index(selection, shape).span()
    picked = list_index(selection, shape)
    basic = selection if picked is None else picked.span()
    return normalize_selection(basic, shape).region


def nchunks(meta: GridMeta, region: Region) -> int:
    """How many chunks (of ``meta.chunks``) a region touches."""
    return math.prod(len(r) for r in chunk_grid_range(region, meta.chunks))


def part_cells(
    region: Region, stored: tuple[int, ...], itemsize: int, budget: int
) -> tuple[int, ...]:
    """The grid a large read is cut into: stored objects, grouped along the last axes first
    into blocks of at most ``budget`` bytes of ``region`` (at least one stored object)."""
    cells = list(stored)
    extents = [r.stop - r.start for r in region]
    for ax in range(len(cells) - 1, -1, -1):
        sizes = [min(c, e) for c, e in zip(cells, extents, strict=True)]
        others = math.prod(sizes[:ax] + sizes[ax + 1 :])
        fit = budget // max(1, others * itemsize)  # the extent along ``ax`` that fits
        if fit >= region[ax].stop:
            cells[ax] = max(1, region[ax].stop)  # the whole axis in one cell
            continue
        cells[ax] = max(stored[ax], fit // stored[ax] * stored[ax])
        break
    return tuple(cells)


def strided_parts(
    region: Region,
    steps: tuple[int, ...],
    chunks: tuple[int, ...],
    cells: tuple[int, ...] | None = None,
) -> list[tuple[Region, tuple[slice, ...]]] | None:
    """How to read a strided selection piece by piece: ``(sub_region, out_slices)`` pairs.

    Reading the covering region whole would hold all of it in memory for a result that can be
    far smaller (``level[::16, ::16]``), so the selection is cut at the boundaries of the grid
    ``cells`` (multiples of the stored objects, see :func:`part_cells`; default ``chunks``),
    each ``sub_region`` inside one cell and trimmed to its selected coordinates. On an axis
    whose step is at least its chunk size and where at least half of the covering chunks hold
    no selected coordinate, every selected coordinate is read alone (one plane of its chunk):
    the other chunks are never read.

    ``sub_region`` is step-1; taking every ``abs(step)``-th element of it gives the
    ``out_slices`` part of the result in increasing order (reversing the negative-step axes is
    the caller's). ``None`` when a single covering read does: no step other than +-1, or
    one piece.
    """
    if all(abs(st) == 1 for st in steps):
        return None
    grid = chunks if cells is None else cells
    per_axis: list[list[tuple[slice, slice]]] = []
    for r, step, c, cell in zip(region, steps, chunks, grid, strict=True):
        st = abs(step)  # a negative step reads the same elements (reversed by the caller)
        n = -(-(r.stop - r.start) // st)
        covering = -(-r.stop // c) - r.start // c
        if st >= c and n > 1 and covering >= 2 * n:  # at least half the chunks are skipped
            per_axis.append(
                [(slice(r.start + k * st, r.start + k * st + 1), slice(k, k + 1)) for k in range(n)]
            )
            continue
        pieces: list[tuple[slice, slice]] = []
        k = 0
        while k < n:  # the selected coordinates of one cell at a time
            first = r.start + k * st
            end = min(r.stop, (first // cell + 1) * cell)  # the cell's end
            count = -(-(end - first) // st)
            pieces.append((slice(first, first + (count - 1) * st + 1), slice(k, k + count)))
            k += count
        per_axis.append(pieces)
    if all(len(p) == 1 for p in per_axis):
        return None
    return [
        (tuple(sub for sub, _ in combo), tuple(out for _, out in combo))
        for combo in itertools.product(*per_axis)
    ]
