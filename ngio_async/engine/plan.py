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
        if not (
            isinstance(s, slice)
            and s.step in (None, 1)
            and _is_int(s.start)
            and _is_int(s.stop)
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
            array = array[
                tuple(
                    0 if ax in self.drop_axes else slice(None, None, st)
                    for ax, st in enumerate(self.steps)
                )
            ]
        if self.new_axes:
            array = np.expand_dims(array, self.new_axes)
        return array


def _is_int(x: object) -> bool:
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
        if _is_int(s):
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
        region=tuple(region), steps=tuple(steps), drop_axes=tuple(drop), new_axes=tuple(new)
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
    where = [i for i, s in enumerate(sel) if isinstance(s, list | np.ndarray)]
    if not where:
        return None
    if len(where) > 1:
        raise UnsupportedIndexError(
            f"one list or array index per selection is supported, got {len(where)}: "
            "index one axis at a time"
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
    raw = np.asarray(sel[at])
    n = shape[axis]
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
        indices = np.flatnonzero(raw).astype(np.intp)
    elif raw.size == 0 or np.issubdtype(raw.dtype, np.integer):
        indices = raw.astype(np.intp)
        bad = indices[(indices < -n) | (indices >= n)]
        if bad.size:
            raise IndexError(f"index {int(bad[0])} is out of bounds for axis {axis} with size {n}")
        indices = np.where(indices < 0, indices + n, indices)
    else:
        raise UnsupportedIndexError(
            f"a list or array index takes integers or booleans, got {raw.dtype} (axis {axis})"
        )
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    return ListIndex(basic, at, axis, indices, out_axis)


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
