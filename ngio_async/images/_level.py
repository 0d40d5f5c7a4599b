"""``Level``: one zarr array of a pyramid, read region by region (the execution half of the engine).

Planning (:mod:`ngio_async.engine.plan`) says which stored objects a region needs; here they are
fetched through the store (its limiter bounds requests in flight), decoded and copied into the
output in worker threads (so network and CPU overlap), with at most ``window`` objects in progress
(:func:`ngio_async._prefetch.prefetch`). Sharded arrays: a shard's index is fetched once per read
operation (one ranged request; a tile stream is one operation, so another writer's rewrite is
seen by the next read), and only the inner chunks the region needs are fetched (coalesced).
Shards whose whole object is compressed (bytes->bytes codecs after ``sharding_indexed``) have
no index or inner chunk readable by range: every read of one fetches it whole (one GET) and
decodes it with :meth:`ShardCodec.unwrap` before its index and inner chunks.

A shard rewritten between its index read and its chunk reads never mixes versions on stores that
know versions (S3, GCS, Azure, HTTP servers sending strong ETags; local files: the inode, mtime
and size of the open file each read takes its bytes from): the index read keeps the answer's
version beside the cached index, the chunk reads are conditional on it (``If-Match``; local: the
file read must be that version), and a changed shard's index is dropped and read again (up to
``_CHANGED_RETRIES`` times, then the shard is read whole in one request: one version by
construction, also from servers whose ETags differ per node). Blocking local reads do the same.
Memory stores have no versions: a reader there relies on shards not being rewritten under it
(writers through one dataset hold its per-shard locks).

``Level`` here holds the indexing (basic, list, orthogonal and pointwise selections) and the
write entry points; it stands on a chain of mixins, one concern each: :mod:`._level_reads` (the
path each region read takes), :mod:`._level_shard_reads` (a shard by its index or whole),
:mod:`._level_decodes` (chunks fetched, shared or taken from a read cache, and decoded),
:mod:`._level_indexes` (shard indexes) and :mod:`._level_base` (construction, description).
"""

from __future__ import annotations

import math
from itertools import product
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ..engine import BasicSelection, list_index, normalize_selection, strided_parts
from ..engine.plan import (
    axis_pieces,
    coordinate_index,
    fancy_kind,
    orthogonal_index,
    part_cells,
    point_groups,
)
from ._level_base import names_store
from ._level_reads import _LevelReads
from ._run_all import _run_all
from ._write import fit_data, write_at, write_region

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from numpy.typing import ArrayLike, NDArray

    from ..engine import ListIndex, Region
    from ..engine.plan import AxisPiece, CoordinateIndex, OrthogonalIndex
    from ._write import AfterWrite

__all__ = ["AsyncIndexer", "Level"]


_PART_BYTES = 8 << 20  # a strided read covering more is read in blocks of about this size
_STRIDED_BYTES = 64 << 20  # and holds about this much of such blocks at once


class Level(_LevelReads):
    """One array of a multiscale image: ``shape``, ``dtype``, ``chunks``, ``shards``, ``scale``.

    ``await level.read(region)`` returns a numpy array equal to zarr-python's ``array[region]``;
    ``await level[...]`` takes numpy basic indexing, one list on one axis, and several lists
    as zarr-python 3 reads them (one integer array per axis: pointwise; one list per axis:
    orthogonal).

    zarr-python's ``oindex`` and ``vindex``: ``await level.oindex[sel]`` (or
    ``await level.read_orthogonal(sel)``) is the orthogonal selection, lists, integer arrays
    or boolean masks on any number of axes, each axis on its own (``np.ix_``);
    ``await level.vindex[sel]`` (or ``await level.read_points(sel)``) the pointwise one, one
    integer array per axis broadcast together, or one boolean mask of the level's shape.
    Writes: ``await level.write_orthogonal(sel, data)``, ``await level.write_points(sel,
    data)`` (an assignment cannot be awaited; the blocking API takes ``level.oindex[sel] = v``).
    """

    # ---------------------------------------------------------------- reading
    def __getitem__(self, selection: Any) -> Coroutine[Any, Any, NDArray[Any]]:
        """``await level[...]``: numpy basic indexing (ints, slices with any step, ``...``,
        ``None``), plus one list, integer array or boolean mask on one axis (as zarr-python),
        and several as zarr-python 3 reads them: one integer or integer array per axis (at
        least one array) or a mask of the level's shape is :meth:`read_points`; one list per
        axis, some of booleans, :meth:`read_orthogonal`; other mixes of lists and slices are
        an ``UnsupportedIndexError`` (use ``level.oindex`` / ``level.vindex``)."""
        return self.getitem(selection)

    def __setitem__(self, selection: Any, data: Any) -> None:
        raise TypeError(
            "an assignment cannot be awaited: write with await level.setitem(selection, data)"
        )

    @names_store
    async def getitem(self, selection: Any) -> NDArray[Any]:
        kind = fancy_kind(selection, self.ndim)  # several lists: as zarr-python 3 reads them
        if kind == "coordinate":
            return await self._read_points(coordinate_index(selection, self.shape))
        if kind == "orthogonal":
            return await self._read_orthogonal(orthogonal_index(selection, self.shape))
        picked = list_index(selection, self.shape)
        if picked is not None:
            return await self._getitem_list(picked)
        sel = normalize_selection(selection, self.shape)
        cells = part_cells(sel.region, self.meta.stored_chunks, self.dtype.itemsize, _PART_BYTES)
        parts = strided_parts(sel.region, sel.steps, self.meta.chunks, cells)
        if parts is None:
            return sel.apply(await self.read(sel.region))
        # strided: blocks of stored objects (or selected planes of chunks) one at a time, never
        # a large covering region in memory, and no chunk without a selected element
        full = tuple(
            -(-(r.stop - r.start) // abs(st)) for r, st in zip(sel.region, sel.steps, strict=True)
        )
        out: NDArray[Any] = np.empty(full, dtype=self.dtype)
        indexes = self.index_cache()
        every = tuple(slice(None, None, abs(st)) for st in sel.steps)

        async def one(part: tuple[Region, tuple[slice, ...]]) -> None:
            sub, target = part
            out[target] = (await self.read(sub, indexes))[every]

        part = math.prod(min(c, r.stop - r.start) for c, r in zip(cells, sel.region, strict=True))
        window = max(2, min(self._window, _STRIDED_BYTES // max(1, part * self.dtype.itemsize)))
        await _run_all(parts, one, window)
        backwards = tuple(-1 if st < 0 else 1 for st in sel.steps)
        return BasicSelection(
            tuple(slice(0, n) for n in full), backwards, sel.drop_axes, sel.new_axes
        ).apply(out)

    async def _getitem_list(self, picked: ListIndex) -> NDArray[Any]:
        """A selection with one list index: per chunk along its axis that holds some of the
        indices, the basic selection over their span in it (never the span of them all), then
        the indices taken in the order given (repeats too)."""
        unique, inverse = np.unique(picked.indices, return_inverse=True)
        size = self.meta.chunks[picked.axis]
        groups = (
            np.split(unique, np.flatnonzero(np.diff(unique // size)) + 1) if unique.size else []
        )
        spans = [(int(g[0]), int(g[-1]) + 1) for g in groups] or [(0, 0)]
        parts: dict[int, NDArray[Any]] = {}

        async def one(i: int) -> None:
            lo, hi = spans[i]
            sel = list(picked.basic)
            sel[picked.position] = slice(lo, hi)
            block = await self.getitem(tuple(sel))
            parts[i] = np.take(block, groups[i] - lo, axis=picked.out_axis) if groups else block

        await _run_all(range(len(spans)), one, self._window)
        joined = np.concatenate(  # (its own dtype: numpy's promotion drops a big-endian order)
            [parts[i] for i in range(len(spans))], axis=picked.out_axis, dtype=self.dtype
        )
        if unique.size == picked.indices.size and np.array_equal(unique, picked.indices):
            return joined
        return np.take(joined, inverse.reshape(-1), axis=picked.out_axis)

    async def _setitem_list(
        self, picked: ListIndex, data: ArrayLike, after: AfterWrite | None
    ) -> None:
        """``level[...] = data`` with one list index: per stored object (chunk or shard) along
        its axis, the selected pixels written inside that object's own read-modify-write (one
        read of it, and no other writer's pixels lost)."""
        axis, idx = picked.out_axis, picked.indices
        shape = list(normalize_selection(picked.basic, self.shape).shape)
        shape[axis] = idx.size
        value = fit_data(data, tuple(shape), self.dtype, f"level {self.path!r}")
        if idx.size == 0:
            return
        # each index once, with the position of its last value (numpy: the last one wins)
        unique, last = _last_of_each(idx, False)
        if last is None:
            last = np.arange(idx.size)
        size = self.meta.stored_chunks[picked.axis]  # a shard is rewritten once
        cuts = np.flatnonzero(np.diff(unique // size)) + 1
        groups = list(zip(np.split(unique, cuts), np.split(last, cuts), strict=True))

        async def one(group: tuple[NDArray[np.intp], NDArray[np.intp]]) -> None:
            indices, positions = group
            lo, hi = int(indices[0]), int(indices[-1]) + 1
            sel = list(picked.basic)
            sel[picked.position] = slice(lo, hi)
            span = normalize_selection(tuple(sel), self.shape)
            # the values in the span's own axes: None's axes out, integer-indexed ones back in
            part = np.take(value, positions, axis=axis)
            if span.new_axes:
                part = np.squeeze(part, axis=span.new_axes)
            if span.drop_axes:
                part = np.expand_dims(part, span.drop_axes)
            at = tuple(
                indices - lo if ax == picked.axis else slice(None, None, step)
                for ax, step in enumerate(span.steps)
            )
            await write_at(self, span.region, at, part, after)

        await _run_all(groups, one, self._window)

    # ---------------------------------------------------------------- oindex / vindex
    @property
    def oindex(self) -> AsyncIndexer:
        """``await level.oindex[sel]``: :meth:`read_orthogonal`."""
        return AsyncIndexer(self.read_orthogonal, "level.write_orthogonal")

    @property
    def vindex(self) -> AsyncIndexer:
        """``await level.vindex[sel]``: :meth:`read_points`."""
        return AsyncIndexer(self.read_points, "level.write_points")

    @names_store
    async def read_orthogonal(self, selection: Any) -> NDArray[Any]:
        """The orthogonal selection, as zarr-python's ``array.oindex[selection]``: each axis
        indexed on its own by an integer (dropped), a slice (any step), or a list, integer
        array or boolean mask (``np.ix_``); ``...`` and ``None`` too. Repeats and any order,
        as numpy.

        Only the chunks holding selected elements are read, each once and concurrently (an
        axis indexed by a list or a strided slice is read chunk by chunk, the span of its
        coordinates in each chunk, never the span between chunks).

        :raises IndexError: an index out of range (naming the axis and its size), a mask of
            another length.
        :raises UnsupportedIndexError: an index of another kind.
        """
        return await self._read_orthogonal(orthogonal_index(selection, self.shape))

    @names_store
    async def read_points(self, selection: Any) -> NDArray[Any]:
        """The coordinate (pointwise) selection, as zarr-python's ``array.vindex[selection]``
        and numpy's integer-array indexing: one integer or integer array per axis, broadcast
        together (the result has their broadcast shape), or one boolean mask of the level's
        shape (a 1-d result, C order).

        The points are grouped by chunk: one read per chunk holding some, concurrently.

        :raises IndexError: a coordinate out of range (naming the axis and its size), a mask
            of another shape, arrays that do not broadcast together, not one index per axis.
        :raises UnsupportedIndexError: a slice, floats, a boolean array that is no mask.
        """
        return await self._read_points(coordinate_index(selection, self.shape))

    @names_store
    async def write_orthogonal(
        self, selection: Any, data: ArrayLike, after: AfterWrite | None = None
    ) -> None:
        """``level.oindex[selection] = data`` (see :meth:`read_orthogonal`): ``data`` broadcast
        to the selection's shape; repeated indices: the last value wins (numpy). Each stored
        object (chunk or shard) holding selected pixels is read once and rewritten with only
        those pixels changed, inside its own read-modify-write (nothing is read where a piece
        covers its span whole).

        :raises ReadOnlyError: the level is not writable (before any I/O).
        """
        self._check_writable()
        await self._write_orthogonal(orthogonal_index(selection, self.shape), data, after)

    @names_store
    async def write_points(
        self, selection: Any, data: ArrayLike, after: AfterWrite | None = None
    ) -> None:
        """``level.vindex[selection] = data`` (see :meth:`read_points`): ``data`` broadcast to
        the selection's shape; a point given twice takes its last value (numpy). Each stored
        object (chunk or shard) holding points is read once and rewritten with only those
        pixels changed, inside its own read-modify-write.

        :raises ReadOnlyError: the level is not writable (before any I/O).
        """
        self._check_writable()
        await self._write_points(coordinate_index(selection, self.shape), data, after)

    async def _read_orthogonal(self, picked: OrthogonalIndex) -> NDArray[Any]:
        distinct = [_distinct(ix, run) for ix, run in zip(picked.indices, picked.runs, strict=True)]
        out: NDArray[Any] = np.empty(tuple(u.size for u, _ in distinct), dtype=self.dtype)
        if out.size:
            indexes = self.index_cache()
            per_axis = [
                axis_pieces(u, c, run)
                for (u, _), c, run in zip(distinct, self.meta.chunks, picked.runs, strict=True)
            ]

            async def one(combo: tuple[AxisPiece, ...]) -> None:
                block = await self.read(tuple(p.region for p in combo), indexes)
                out[tuple(p.out for p in combo)] = _take(block, [p.take for p in combo])

            await _run_all(product(*per_axis), one, self._window)
        for ax, (_, inverse) in enumerate(distinct):
            if inverse is not None:  # repeats, or another order than ascending
                out = np.take(out, inverse, axis=ax)
        return out.reshape(picked.shape)  # integer-indexed axes have length 1: dropped

    async def _write_orthogonal(
        self, picked: OrthogonalIndex, data: ArrayLike, after: AfterWrite | None
    ) -> None:
        value = fit_data(data, picked.shape, self.dtype, f"level {self.path!r}")
        value = value.reshape(tuple(ix.size for ix in picked.indices))  # dropped axes: 1
        if value.size == 0:
            return
        distinct: list[NDArray[np.intp]] = []
        for ax, (ix, run) in enumerate(zip(picked.indices, picked.runs, strict=True)):
            unique, last = _last_of_each(ix, run)
            distinct.append(unique)
            if last is not None:  # each index once, with its last value
                value = np.take(value, last, axis=ax)
        # per stored object (a shard: one rewrite, not one per inner chunk it holds)
        per_axis = [
            axis_pieces(u, c, run)
            for u, c, run in zip(distinct, self.meta.stored_chunks, picked.runs, strict=True)
        ]

        async def one(combo: tuple[AxisPiece, ...]) -> None:
            region = tuple(p.region for p in combo)
            part = value[tuple(p.out for p in combo)]
            if all(isinstance(p.take, slice) for p in combo):  # the whole region: no read
                await write_region(self, region, part, after)
                return
            await write_at(self, region, _ix(region, [p.take for p in combo]), part, after)

        await _run_all(product(*per_axis), one, self._window)

    async def _read_points(self, picked: CoordinateIndex) -> NDArray[Any]:
        coords = picked.coords
        out: NDArray[Any] = np.empty(coords[0].size, dtype=self.dtype)
        indexes = self.index_cache()

        async def one(group: NDArray[np.intp]) -> None:
            region, at = _points_box(coords, group)
            out[group] = (await self.read(region, indexes))[at]

        await _run_all(point_groups(coords, self.meta.chunks), one, self._window)
        return out.reshape(picked.shape)

    async def _write_points(
        self, picked: CoordinateIndex, data: ArrayLike, after: AfterWrite | None
    ) -> None:
        value = fit_data(data, picked.shape, self.dtype, f"level {self.path!r}").reshape(-1)
        if value.size == 0:
            return
        # each point once, with its last value (numpy: the last one wins)
        _, keep = _last_of_each(np.ravel_multi_index(picked.coords, self.shape), False)
        coords = picked.coords if keep is None else tuple(c[keep] for c in picked.coords)
        value = value if keep is None else value[keep]

        async def one(group: NDArray[np.intp]) -> None:
            region, at = _points_box(coords, group)
            await write_at(self, region, at, value[group], after)

        # per stored object (a shard: one rewrite, not one per inner chunk it holds)
        await _run_all(point_groups(coords, self.meta.stored_chunks), one, self._window)

    # ---------------------------------------------------------------- writing
    @names_store
    async def write(
        self, region: Sequence[slice], data: ArrayLike, after: AfterWrite | None = None
    ) -> None:
        """Write ``data`` (broadcast to the region's shape, cast to :attr:`dtype`) into ``region``.

        ``region``: one step-1 slice per axis (``None`` bounds allowed). Partly covered chunks or
        shards are read, patched and written back, safely across processes (see
        :mod:`ngio_async.images._write`); objects left all fill value are deleted, or stored
        as such where a delete cannot be conditional (S3, GCS, Azure, memory).
        Concurrent writes to distinct regions are safe, also when they share a stored object.
        ``after(part, pixels)`` is awaited after each stored object is written (the pyramid
        cascade uses it).

        :raises ReadOnlyError: the level is not writable (before any I/O).
        """
        self._check_writable()
        sel = normalize_selection(tuple(region), self.shape)
        if not sel.is_region or len(tuple(region)) != self.ndim:
            raise ValueError(
                f"a region needs one step-1 slice per axis ({self.ndim}), got {region}"
            )
        await write_region(self, sel.region, data, after)

    @names_store
    async def setitem(
        self, selection: Any, data: ArrayLike, after: AfterWrite | None = None
    ) -> None:
        """``level[selection] = data`` with numpy basic indexing and broadcasting, plus one
        list, integer array or boolean mask on one axis (as zarr-python; repeated indices: the
        last value wins, as numpy), and several as :meth:`getitem` reads them
        (:meth:`write_points`, :meth:`write_orthogonal`).

        Strided selections (steps > 1) and a list index write only the selected pixels, inside
        each stored object's own read-modify-write (one read of it; another writer's pixels
        in between are kept).

        :raises ReadOnlyError: the level is not writable (before any I/O).
        """
        self._check_writable()
        kind = fancy_kind(selection, self.ndim)
        if kind == "coordinate":
            await self._write_points(coordinate_index(selection, self.shape), data, after)
            return
        if kind == "orthogonal":
            await self._write_orthogonal(orthogonal_index(selection, self.shape), data, after)
            return
        picked = list_index(selection, self.shape)
        if picked is not None:
            await self._setitem_list(picked, data, after)
            return
        sel = normalize_selection(selection, self.shape)
        value = fit_data(data, sel.shape, self.dtype, f"level {self.path!r}")
        if sel.new_axes:  # None (newaxis) adds length-1 axes that are not stored
            value = np.squeeze(value, axis=sel.new_axes)
        if all(st == 1 for st in sel.steps):
            if sel.drop_axes:
                value = np.expand_dims(value, sel.drop_axes)
            await write_region(self, sel.region, value, after)
            return
        index = tuple(
            0 if ax in sel.drop_axes else slice(None, None, st) for ax, st in enumerate(sel.steps)
        )
        await write_at(self, sel.region, index, value, after)

    # ``__getitem__`` returns coroutines: without these, ``list(level)``, ``for row in level``
    # and ``np.asarray(level)`` would take the old sequence protocol (``level[0]``,
    # ``level[1]``, ... for ever: no coroutine raises IndexError) or make a 0-d object array
    def __iter__(self) -> NoReturn:
        raise TypeError(_not_blocking(f"level {self.path!r} of {self.store.url}", "iterable"))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NoReturn:
        raise TypeError(_not_blocking(f"level {self.path!r} of {self.store.url}", "an array"))


def _not_blocking(what: str, kind: str) -> str:
    return (
        f"the async {what} is not {kind}: its reads are awaited (`await level[...]`, "
        "`await level.read(...)`); for numpy, dask and loops open the image with the blocking "
        "API (ngio_async.open)"
    )


class AsyncIndexer:
    """``level.oindex`` / ``level.vindex`` (and a dataset's): ``await indexer[selection]``
    reads; an assignment cannot be awaited, so it raises, naming the method that writes."""

    __slots__ = ("_read", "_write")

    def __init__(self, read: Callable[[Any], Coroutine[Any, Any, NDArray[Any]]], write: str):
        self._read = read
        self._write = write

    def __getitem__(self, selection: Any) -> Coroutine[Any, Any, NDArray[Any]]:
        return self._read(selection)

    def __iter__(self) -> NoReturn:
        raise TypeError(_not_blocking("oindex / vindex", "iterable"))

    def __setitem__(self, selection: Any, data: Any) -> None:
        raise TypeError(
            f"an assignment cannot be awaited: write with await {self._write}(selection, data)"
        )


def _distinct(
    indices: NDArray[np.intp], run: bool
) -> tuple[NDArray[np.intp], NDArray[np.intp] | None]:
    """The sorted distinct coordinates of an axis, and how to take the ones asked for from
    them (``None``: they are the ones asked for)."""
    if run:
        return indices, None
    unique, inverse = np.unique(indices, return_inverse=True)
    if unique.size == indices.size and np.array_equal(unique, indices):
        return unique, None
    return unique, inverse.reshape(-1)


def _points_box(
    coords: tuple[NDArray[np.intp], ...], group: NDArray[np.intp]
) -> tuple[Region, tuple[NDArray[np.intp], ...]]:
    """The region spanning the points ``group`` of ``coords``, and their places in it."""
    points = tuple(c[group] for c in coords)
    region = tuple(slice(int(p.min()), int(p.max()) + 1) for p in points)
    return region, tuple(p - r.start for p, r in zip(points, region, strict=True))


def _last_of_each(
    indices: NDArray[np.intp], run: bool
) -> tuple[NDArray[np.intp], NDArray[np.intp] | None]:
    """The sorted distinct coordinates of an axis, and the position of each one's last
    occurrence among the ones given (``None``: they are the ones given)."""
    if run:
        return indices, None
    unique, first_of_reversed = np.unique(indices[::-1], return_index=True)
    if unique.size == indices.size and np.array_equal(unique, indices):
        return unique, None
    return unique, indices.size - 1 - first_of_reversed


def _take(block: NDArray[Any], takes: Sequence[slice | NDArray[np.intp]]) -> NDArray[Any]:
    """``block`` with each axis indexed on its own by a slice or an array of positions."""
    block = block[tuple(t if isinstance(t, slice) else slice(None) for t in takes)]
    for ax, t in enumerate(takes):
        if not isinstance(t, slice):
            block = np.take(block, t, axis=ax)
    return block


def _ix(region: Region, takes: Sequence[slice | NDArray[np.intp]]) -> tuple[NDArray[np.intp], ...]:
    """``np.ix_`` of the positions ``takes`` picks in ``region`` (a slice: all of them)."""
    return np.ix_(
        *(
            np.arange(r.stop - r.start) if isinstance(t, slice) else t
            for r, t in zip(region, takes, strict=True)
        )
    )
