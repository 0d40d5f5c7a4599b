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
"""

from __future__ import annotations

import contextlib
import math
import weakref
from functools import partial
from itertools import islice, product
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import numpy as np

from .._errors import MetadataError, ReadOnlyError, StoreError, UnsupportedError
from .._prefetch import first_error, start_deferred
from ..codecs import ChunkCodec, ShardCodec, ShardIndex, past_end_error
from ..engine import (
    BasicSelection,
    list_index,
    normalize_selection,
    plan_chunks,
    plan_shards,
    region_shape,
    strided_parts,
)
from ..engine.plan import (
    axis_pieces,
    check_region,
    coordinate_index,
    fancy_kind,
    orthogonal_index,
    part_cells,
    point_groups,
)
from ..stores import ChangedError, RangeByteRequest, SuffixByteRequest
from ._chunk_decode import (
    _CHUNKS_PER_CALL,
    Decode,
    Targets,
    _by_chunk,
    _claim_chunks,
    _decode_all,
    _decode_for_all,
    _grid_coords,
    _keep_chunks,
    _own,
    _Ready,
    _waits,
)
from ._index_cache import _CHANGED_RETRIES, _MISSING, _NO_SHARDS, IndexCache, _Entry
from ._reuse import Fetch, InFlight, Keeper, Pending, SingleFlight
from ._run_all import _run_all
from ._shard_bytes import (
    _chunk_jobs,
    _decode_shard_into,
    _fetch_decode,
    _fetch_decode_shard,
    _get_range_blocking,
    _inner_bytes,
    _open_shard,
    _range_jobs,
    _stored_pieces,
    inner_chunk_name,
)
from ._write import KeyLocks, fit_data, write_at, write_region

P = TypeVar("P")
R = TypeVar("R")
J = TypeVar("J")

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence

    from numpy.typing import ArrayLike, NDArray

    from .._workers import Workers
    from ..engine import ChunkPlan, InnerChunkPlan, ListIndex, Region, ShardPlan
    from ..engine.plan import AxisPiece, CoordinateIndex, OrthogonalIndex
    from ..meta.zarr import ArrayMeta
    from ..stores import AsyncStore, Buffer
    from ._write import AfterWrite

__all__ = ["AsyncIndexer", "Level"]


_BATCH = 8  # chunks read + decoded per worker-thread call on local stores, at most
_TOGETHER = 4  # remote chunks per store.get_many and decode hand-off (GETs started together)
_PART_BYTES = 8 << 20  # a strided read covering more is read in blocks of about this size
_STRIDED_BYTES = 64 << 20  # and holds about this much of such blocks at once


class Level:
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

    def __init__(
        self,
        store: AsyncStore,
        path: str,
        meta: ArrayMeta,
        *,
        scale: tuple[float, ...],
        translation: tuple[float, ...],
        workers: Workers,
        window: int,
    ) -> None:
        self.store = store
        self.path = path.strip("/")
        self.meta = meta
        self.scale = scale
        self.translation = translation
        if meta.dtype.kind == "O":  # tables hold string arrays; an image never does
            kind = meta.data_type if meta.zarr_format == 3 else meta.dtype_json
            raise UnsupportedError(
                f"{self._where()}: the array holds strings (data type {kind!r}); an image "
                "level holds numbers or booleans"
            )
        try:
            self.codec: ChunkCodec | ShardCodec = ChunkCodec.from_meta(meta)
        except MetadataError as exc:  # say which array's metadata
            raise MetadataError(f"{self._where()}: {exc.rule}", exc.path) from None
        except UnsupportedError as exc:
            raise UnsupportedError(f"{self._where()}: {exc}") from None
        # a read inside one chunk is one GET, except in one-chunk shards (a whole-shard GET
        # beats an index + a range) and in compressed shards (read whole); never while
        # writing (shard reads take the write lock)
        self._whole_shards = isinstance(self.codec, ShardCodec) and self.codec.compressed
        self._chunk_reads = not (
            isinstance(self.codec, ShardCodec)
            and (math.prod(self.codec.chunks_per_shard) == 1 or self._whole_shards)
        )
        self._workers = workers
        self._window = window
        self._prefix = f"{self.path}/" if self.path else ""
        # the index caches of the read operations in progress (a write forgets its shard there)
        self._caches: weakref.WeakSet[IndexCache] = weakref.WeakSet()
        # index fetches in flight: concurrent readers of one shard share one request
        self._index_loading: dict[str, tuple[anyio.Event, list[_Entry]]] = {}
        #: whether writes are allowed (set by the dataset: ``mode="r+"``)
        self.writable = False
        # the dataset's read cache (read-only datasets) and the shard indexes kept with it
        self._read_cache: Keeper | None = None
        self._read_budget = 0
        self._kept_indexes: IndexCache | None = None
        # one-chunk reads in flight, for the identical ones that start meanwhile (read only)
        self._in_flight = InFlight()
        # shards compressed whole being fetched and opened, for the reads that need them too
        self._shards_in_flight: SingleFlight[tuple[Buffer, ShardIndex] | None] = SingleFlight()
        self._write_locks = KeyLocks(store.url)  # shared by every open of the image
        #: writes of stored objects begun through this level so far (a failed write that
        #: changed it may have landed parts, whether or not it got to tell: ``Cascade.settle``)
        self.begun = 0

    # ---------------------------------------------------------------- description
    @property
    def shape(self) -> tuple[int, ...]:
        return self.meta.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.meta.dtype

    @property
    def ndim(self) -> int:
        return len(self.meta.shape)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The read chunk shape (the inner chunk of a sharded array)."""
        return self.meta.chunks

    @property
    def shards(self) -> tuple[int, ...] | None:
        return self.meta.shards

    @property
    def fill_value(self) -> Any:
        return self.meta.fill_value

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __bool__(self) -> bool:  # a level is a level, whatever its first axis' length
        return True

    def __repr__(self) -> str:
        shards = f", shards={self.shards}" if self.shards else ""
        return (
            f"Level({self.path!r}, shape={self.shape}, dtype={self.dtype}, "
            f"chunks={self.chunks}{shards})"
        )

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

    def _where(self) -> str:
        """The URL of this array's metadata document."""
        doc = "zarr.json" if self.meta.zarr_format == 3 else ".zarray"
        return "/".join(p for p in (self.store.url.rstrip("/"), self.path, doc) if p)

    @property
    def reads_locally(self) -> bool:
        """Whether a region inside one stored object is read in one worker-thread call
        (``_read_local``); subclasses that read elsewhere return False."""
        return self.store.blocking_reads and not self.writable

    def index_cache(self) -> IndexCache:
        """A new shard-index cache for one read operation (pass it to every read of it); an
        unsharded level reads no index: one shared, always empty cache, nothing allocated."""
        if not isinstance(self.codec, ShardCodec):
            return _NO_SHARDS
        cache = IndexCache()
        self._caches.add(cache)
        return cache

    def use_read_cache(self, keeper: Keeper | None, budget: int = 0) -> None:
        """Region reads of at most a quarter of ``budget`` bytes take their decoded chunks
        from ``keeper`` and keep them there, and the shard indexes they read here (a
        read-only dataset's ``Limits.read_cache_bytes``); ``None``: neither."""
        self._read_cache, self._read_budget = keeper, budget
        self._kept_indexes = None if keeper is None else self.index_cache()

    def forget_index(self, key: str) -> None:
        """Drop shard ``key``'s index from every operation in progress (it was rewritten)."""
        for cache in list(self._caches):
            cache.pop(key)

    async def read(self, region: Region, indexes: IndexCache | None = None) -> NDArray[Any]:
        """Read a normalised region (step-1 slices inside the bounds, one per axis).

        ``indexes``: the shard indexes of the operation this read is part of (a tile stream);
        default: fetched for this read alone.
        """
        check_region(region, self.shape)  # a remote one-chunk read would return chunk padding
        shape = region_shape(region)
        keeper = self._read_cache
        if (
            keeper is not None
            and not self.writable
            and not self._whole_shards  # (their inner chunks are not kept: each read fetches)
            and math.prod(shape) * self.dtype.itemsize <= self._read_budget // 4
        ):  # a small read of a read-only dataset: through its read cache
            if indexes is None:
                indexes = self.index_cache() if self._kept_indexes is None else self._kept_indexes
            if self.reads_locally:
                return await self._read_kept_locally(region, shape, keeper, indexes)
            if not isinstance(self.codec, ShardCodec) or self.reads_shards_together:
                return (await self.read_many([region], indexes, keeper))[0]
            # (one-chunk shards: read_many reads each region by read, as below)
        if indexes is None:
            indexes = self.index_cache()
        if self.reads_locally and self._one_object(region):
            # local, one stored object (a tile): plan, read and decode in one worker-thread call
            return await self._workers.run(self._read_local, region, shape, indexes)
        out: NDArray[Any] = np.empty(shape, dtype=self.dtype)
        if out.size == 0:
            return out
        if self._chunk_reads and not self.writable and self._one_chunk(region):
            await self._read_in_chunk(region, out, indexes)  # a remote tile: no task group
            return out
        await self.read_into(region, out, indexes)
        return out

    async def _read_kept_locally(
        self, region: Region, shape: tuple[int, ...], keeper: Keeper, indexes: IndexCache
    ) -> NDArray[Any]:
        """A local region through the read cache: its (inner) chunks' parts split among the
        decode threads (one thread call decoded a plane's 16 chunks one after another)."""
        pieces = _chunk_pieces(region, self.chunks)
        size = -(-len(pieces) // self._workers.threads)
        if size >= len(pieces):
            return (await self._workers.run(self.read_many_blocking, [region], keeper, indexes))[0]
        out: NDArray[Any] = np.empty(shape, dtype=self.dtype)

        async def some(batch: list[tuple[Region, Region]]) -> None:
            regions = [piece for piece, _ in batch]
            into = [out[at] for _, at in batch]
            await self._workers.run(self.read_many_blocking, regions, keeper, indexes, into)

        async with anyio.create_task_group() as tg:
            for k in range(0, len(pieces), size):
                tg.start_soon(some, pieces[k : k + size])
        return out

    async def read_many(
        self,
        regions: Sequence[Region],
        indexes: IndexCache | None = None,
        reuse: Keeper | None = None,
    ) -> list[NDArray[Any]]:
        """Read several normalised regions, each into its own array.

        On a remote level read in shard parts, the inner chunks the regions need of one shard
        are fetched together: one coalesced set of ranged reads per shard, not one per region
        (a tile stream reads a row of small tiles of one shard so); compressed shards: each
        fetched whole once for all the regions. On a remote unsharded
        level, every chunk the regions need is fetched (one ``store.get_many``) and decoded
        once, or taken from ``reuse`` (the decoded chunks a tile stream keeps for its later
        runs). Elsewhere each region is read on its own.
        """
        if indexes is None:
            indexes = self.index_cache()
        codec = self.codec
        if not isinstance(codec, ShardCodec) and not self.reads_locally and not self.writable:
            return await self._read_many_chunks(codec, regions, reuse)
        if not isinstance(codec, ShardCodec) or not self.reads_shards_together:
            return [await self.read(region, indexes) for region in regions]
        outs, groups = self._shard_groups(regions)

        async def one_shard(item: tuple[str, list[tuple[ShardPlan, NDArray[Any]]]]) -> None:
            await self._read_shard_parts(codec, *item, indexes, reuse)

        await _run_all(iter(groups.items()), one_shard, self._window)
        return outs

    async def _read_many_chunks(
        self, codec: ChunkCodec, regions: Sequence[Region], reuse: Keeper | None
    ) -> list[NDArray[Any]]:
        """Regions of a remote unsharded level, each into its own array: the chunks they need,
        each fetched and decoded once into every region's part of it (or taken from
        ``reuse``)."""
        outs, groups, coords = self._chunk_groups(regions)
        await self._fetch_decode_groups(codec, groups, reuse, coords)
        return outs

    def read_many_blocking(
        self,
        regions: Sequence[Region],
        reuse: Keeper | None = None,
        indexes: IndexCache | None = None,
        into: Sequence[NDArray[Any]] | None = None,
    ) -> list[NDArray[Any]]:
        """Blocking :meth:`read_many` of a level that :attr:`reads_locally`, for a worker
        thread: every (inner) chunk the regions need read and decoded once, or taken from
        ``reuse``; a sharded level's indexes are read once into ``indexes``. ``into``: the
        arrays to read the regions into (default: new ones)."""
        codec = self.codec
        if not self.reads_locally:
            raise RuntimeError(f"{self!r}: read_many_blocking reads local levels")
        if isinstance(codec, ShardCodec):
            return self._read_many_shards_blocking(
                codec, regions, reuse, self.index_cache() if indexes is None else indexes, into
            )
        outs, groups, coords = self._chunk_groups(regions, into)
        get = self.store.get_blocking
        self._claim_decode_blocking(
            codec, groups, coords, reuse, lambda name: get(name), self.fill_value
        )
        return outs

    def _read_many_shards_blocking(
        self,
        codec: ShardCodec,
        regions: Sequence[Region],
        reuse: Keeper | None,
        indexes: IndexCache,
        into: Sequence[NDArray[Any]] | None = None,
    ) -> list[NDArray[Any]]:
        outs, shards = self._shard_groups(regions, into)
        for key, parts in shards.items():
            if self._whole_shards:  # each fetched and decoded once for all the regions
                _fetch_decode_shard(self.store, codec, key, parts)
                continue

            def read(
                index: ShardIndex,
                version: str | None,
                key: str = key,
                parts: list[tuple[ShardPlan, NDArray[Any]]] = parts,
            ) -> None:
                groups, ranges = self._inner_groups(key, index, parts)

                def get(name: str) -> Buffer:
                    inner, rng = ranges[name]
                    return _get_range_blocking(self.store, key, rng, inner, version)

                coords = _grid_coords(codec, parts, ranges)
                self._claim_decode_blocking(
                    codec.inner, groups, coords, reuse, get, self.fill_value
                )

            self._versioned_blocking(codec, key, parts, indexes, read)
        return outs

    def _versioned_blocking(
        self,
        codec: ShardCodec,
        key: str,
        parts: Sequence[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        read: Callable[[ShardIndex, str | None], None],
    ) -> None:
        """Blocking ``read(index, version)`` of what ``parts`` need of shard ``key`` (the fill
        value where it is absent); a shard rewritten since its index was read has its index
        read again, up to ``_CHANGED_RETRIES`` times, then is read whole (one version)."""
        for _ in range(_CHANGED_RETRIES + 1):
            index, version = self._index_blocking(codec, key, indexes)
            if index is None:
                for plan, out in parts:
                    out[plan.out_selection] = self.fill_value
                return
            try:
                read(index, version)
            except ChangedError:  # rewritten since its index was read: the index again
                indexes.pop_version(key, version)
                continue
            return
        _fetch_decode_shard(self.store, codec, key, parts)  # changed on every try: whole

    def _index_blocking(self, codec: ShardCodec, key: str, indexes: IndexCache) -> _Entry:
        """Blocking :meth:`_shard_entry`: the index of shard ``key`` (``None``: no shard) and
        the version of the shard it was read from, cached in ``indexes`` or read into it."""
        index = indexes.get(key)
        if index is not _MISSING:
            return index, indexes.version(key)
        buf, version = self.store.get_blocking_versioned(key, self._index_request(codec))
        index = None if buf is None else codec.decode_index(buf, key)
        indexes.put(key, index, version)
        return index, version

    def _inner_groups(
        self, key: str, index: ShardIndex, parts: Sequence[tuple[ShardPlan, NDArray[Any]]]
    ) -> tuple[dict[str, Targets], dict[str, tuple[tuple[int, ...], tuple[int, int]]]]:
        """The inner chunks of shard ``key`` that ``parts`` need and it stores, each once by
        name with its targets, and with its coordinates in the shard and byte range; those
        it does not store fill their targets with the fill value."""
        groups: dict[str, Targets] = {}
        ranges: dict[str, tuple[tuple[int, ...], tuple[int, int]]] = {}
        for inner, targets in _by_chunk(
            (c, out) for plan, out in parts for c in plan.chunks
        ).items():
            rng = index.chunk_range(inner)
            if rng is None:
                for _, target in targets:
                    target[...] = self.fill_value
                continue
            name = inner_chunk_name(key, inner)
            groups[name], ranges[name] = targets, (inner, rng)
        return groups, ranges

    @staticmethod
    def _claim_decode_blocking(
        codec: ChunkCodec,
        groups: dict[str, Targets],
        coords: dict[str, tuple[int, ...]],
        reuse: Keeper | None,
        get: Callable[[str], Buffer | None],
        fill_value: Any,
    ) -> None:
        """The chunks of ``groups`` decoded into their targets (worker thread): each read
        with ``get(name)`` or taken from ``reuse``; this run's own first, then those other
        runs in flight were reading (read here if that failed)."""
        claimed, keep = _claim_chunks(groups, reuse, coords)
        kept: dict[str, NDArray[Any] | None] = {}
        try:
            decodes: list[Decode] = [
                (get(k) if isinstance(b, Fetch) else b, k, t) for b, k, t in _own(claimed)
            ]
            _decode_all(codec, decodes, fill_value, keep, kept)
        finally:
            _keep_chunks(reuse, keep, kept)
        waited = [(p.wait_blocking(), k, t) for p, k, t in _waits(claimed)]
        decodes = [(get(k) if isinstance(c, Fetch) else c, k, t) for c, k, t in waited]
        _decode_all(codec, decodes, fill_value)

    def _outs(
        self, regions: Sequence[Region], into: Sequence[NDArray[Any]] | None
    ) -> list[NDArray[Any]]:
        """An output array per (checked) region: ``into``'s, else new ones."""
        for region in regions:
            check_region(region, self.shape)
        if into is not None:
            return list(into)
        return [np.empty(region_shape(region), dtype=self.dtype) for region in regions]

    def _shard_groups(
        self, regions: Sequence[Region], into: Sequence[NDArray[Any]] | None = None
    ) -> tuple[list[NDArray[Any]], dict[str, list[tuple[ShardPlan, NDArray[Any]]]]]:
        """An output array per region (``into``'s, else new ones), and the shards of a sharded
        level they need, each with the plans of the regions' parts in it and their outputs."""
        outs = self._outs(regions, into)
        shards: dict[str, list[tuple[ShardPlan, NDArray[Any]]]] = {}
        for region, out in zip(regions, outs, strict=True):
            for plan in plan_shards(self.meta, region):
                shards.setdefault(self._prefix + plan.key, []).append((plan, out))
        return outs, shards

    def _chunk_groups(
        self, regions: Sequence[Region], into: Sequence[NDArray[Any]] | None = None
    ) -> tuple[list[NDArray[Any]], dict[str, Targets], dict[str, tuple[int, ...]]]:
        """An output array per region (``into``'s, else new ones), and the chunks of an
        unsharded level they need, each with its targets (its part in every output that needs
        it) and its coordinates."""
        outs = self._outs(regions, into)
        groups: dict[str, Targets] = {}
        coords: dict[str, tuple[int, ...]] = {}
        for region, out in zip(regions, outs, strict=True):
            for plan in plan_chunks(self.meta, region):
                key = self._prefix + plan.key
                target = (plan.chunk_selection, out[plan.out_selection])
                targets = groups.get(key)
                if targets is None:
                    groups[key] = [target]
                    coords[key] = plan.coords
                else:
                    targets.append(target)
        return outs, groups, coords

    async def _fetch_decode_groups(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        reuse: Keeper | None = None,
        coords: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        """The chunks named in ``groups`` fetched with one ``store.get_many`` and decoded once
        each into all their targets, in worker threads (a missing one: the fill value); with
        ``reuse``, the chunks it keeps are copied from it, and it keeps those it asks for."""
        if groups:
            await self._claim_decode(codec, groups, coords, reuse, self._fetched)

    async def _claim_decode(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        coords: dict[str, tuple[int, ...]] | None,
        reuse: Keeper | None,
        fetched: Callable[[Sequence[_Ready]], Awaitable[list[Decode]]],
        share: bool = False,
    ) -> None:
        """The chunks of ``groups`` decoded into their targets in worker threads: each
        fetched with ``fetched`` (one call for all) or taken from ``reuse``; this run's own
        first, then those other runs in flight were reading (fetched here if that failed).
        ``share`` (a region read of a read-only level, without ``reuse``): shared with the
        reads in flight instead (:meth:`_share_decode`). The async twin of
        :meth:`_claim_decode_blocking`."""
        if share and reuse is None:
            await self._share_decode(codec, groups, fetched)
            return
        claimed, keep = _claim_chunks(groups, reuse, coords)
        kept: dict[str, NDArray[Any] | None] = {}
        decode = partial(_decode_all, codec, fill_value=self.fill_value)
        try:  # this run's own chunks first: those other runs wait for among them
            decodes = await fetched(_own(claimed))
            await self._in_threads(partial(decode, keep=keep, kept=kept), decodes)
        finally:
            _keep_chunks(reuse, keep, kept)
        waits = list(_waits(claimed))
        if waits:  # chunks other runs in flight were reading (fetched again if that failed)
            waited = [(await p.wait(), k, t) for p, k, t in waits]
            await self._in_threads(decode, await fetched(waited))

    async def _share_decode(
        self,
        codec: ChunkCodec,
        groups: dict[str, Targets],
        fetched: Callable[[Sequence[_Ready]], Awaitable[list[Decode]]],
    ) -> None:
        """The chunks of ``groups`` (by name, as :meth:`_read_in_chunk` names them) decoded
        into their targets, shared with the other reads of this read-only level in flight
        (:class:`InFlight`): the chunks no read is fetching, this read leads: fetched with
        ``fetched`` (one call for all: one batch of GETs, one coalesced set of ranges) and
        decoded, each closed to more reads once decoded and handed to those that joined (a
        copy, made only if one did). Then the chunks other reads were fetching, waited for
        and copied; a chunk whose leader failed or was cancelled (it hands nothing over) is
        claimed again: one of the reads that joined leads it."""
        flight = self._in_flight
        decode = partial(_decode_all, codec, fill_value=self.fill_value)
        while groups:
            led, joined = flight.claim_all(groups)  # (no await from the claims to the try)
            kept: dict[str, NDArray[Any] | None] = {}
            try:
                if led:
                    decodes = await fetched([(Fetch.ONCE, n, groups[n]) for n in led])

                    def close(name: str, led: dict[str, Pending] = led) -> int:
                        return flight.close(name, led[name])

                    await self._in_threads(partial(decode, kept=kept, close=close), decodes)
            finally:  # (failed or cancelled: nothing handed over; they claim it again)
                flight.finish_all(led, kept)
            if not joined:
                return
            again: dict[str, Targets] = {}
            ready: list[Decode] = []
            for name, pending in joined:
                chunk = await pending.wait()
                if isinstance(chunk, Fetch):
                    again[name] = groups[name]
                else:
                    ready.append((chunk, name, groups[name]))
            if ready:
                await self._in_threads(decode, ready)
            groups = again

    async def _fetched(self, claimed: Sequence[_Ready]) -> list[Decode]:
        """``claimed`` with each chunk still to fetch (``Fetch``) fetched: one ``get_many``."""
        wanted = [key for buf, key, _ in claimed if isinstance(buf, Fetch)]
        got = iter(await self.store.get_many(wanted) if wanted else ())
        return [(next(got) if isinstance(b, Fetch) else b, k, t) for b, k, t in claimed]

    @property
    def reads_shards_together(self) -> bool:
        """Whether :meth:`read_many` fetches the regions' inner chunks shard by shard: remote
        shards read in parts, and compressed shards, local ones too (each fetched whole and
        decompressed once for all the regions; :meth:`read_many_blocking` likewise)."""
        if self.writable:
            return False
        return self._whole_shards or (self.reads_shards_in_parts and not self.reads_locally)

    def _one_chunk(self, region: Region) -> bool:
        return _inside_one(region, self.meta.chunks)

    async def _read_in_chunk(self, region: Region, out: NDArray[Any], indexes: IndexCache) -> None:
        """Read a region inside one (inner) chunk: one GET (of a byte range of a shard whose
        index is cached or fetched once), decoded in a worker thread straight into ``out``.
        A read of a chunk that another read is fetching waits for that one instead (a level
        read only: :class:`InFlight`)."""
        chunks = self.meta.chunks
        coords = tuple(r.start // c for r, c in zip(region, chunks, strict=True))
        chunk_sel = tuple(
            slice(r.start - i * c, r.stop - i * c)
            for r, i, c in zip(region, coords, chunks, strict=True)
        )
        codec = self.codec
        inner: tuple[int, ...] | None = None
        if isinstance(codec, ShardCodec):
            cps = codec.chunks_per_shard
            key = self._prefix + self.meta.chunk_key(
                tuple(i // n for i, n in zip(coords, cps, strict=True))
            )
            inner = tuple(i % n for i, n in zip(coords, cps, strict=True))
            name = inner_chunk_name(key, inner)
        else:
            key = name = self._prefix + self.meta.chunk_key(coords)
        while True:
            pending, lead = self._in_flight.claim(name)
            if lead:
                break
            chunk = await pending.wait()
            if chunk is None:
                out[...] = self.fill_value
                return
            if not isinstance(chunk, Fetch):
                out[...] = chunk[chunk_sel]
                return
            # its read failed or was cancelled: again (one of the reads that joined leads)
        got: NDArray[Any] | Fetch | None = Fetch.FAILED
        try:
            got = await self._fetch_in_chunk(
                key, inner, region, chunk_sel, out, indexes, (name, pending)
            )
        finally:
            self._in_flight.finish(name, pending, got)

    async def _fetch_in_chunk(
        self,
        key: str,
        inner: tuple[int, ...] | None,
        region: Region,
        chunk_sel: Region,
        out: NDArray[Any],
        indexes: IndexCache,
        share: tuple[str, Pending],
    ) -> NDArray[Any] | Fetch | None:
        """:meth:`_read_in_chunk`'s fetch and decode of chunk ``key`` (inner chunk ``inner``
        of shard ``key``), and what the reads that joined it (``share``: its name and
        ``Pending``) take: the chunk (a copy), ``None`` (missing) or ``Fetch.FAILED`` (none
        joined: nothing to copy; or read whole: they read it themselves)."""
        codec = self.codec
        if isinstance(codec, ShardCodec):
            assert inner is not None
            for _ in range(_CHANGED_RETRIES + 1):
                index, version = await self._shard_entry(key, indexes)
                rng = None if index is None else index.chunk_range(inner)
                if index is None or rng is None:
                    out[...] = self.fill_value
                    return None
                try:
                    async with self._past_end_as_corrupt(key, index, [inner]):
                        buf = await self.store.get(key, RangeByteRequest(*rng), if_match=version)
                except ChangedError:  # rewritten since its index was read: the index again
                    buf = None
                if buf is None:  # (or deleted since: its index then says so)
                    indexes.pop_version(key, version)
                    continue
                return await self._decode_shared(codec.inner, buf, share[0], chunk_sel, out, share)
            (plan,) = plan_shards(self.meta, region)  # changed on every try: whole, one version
            await self._read_whole(codec, key, [(plan, out)], indexes)
            return Fetch.FAILED  # (the reads that joined read it themselves)
        buf = await self.store.get(key)
        if buf is None:
            out[...] = self.fill_value
            return None
        return await self._decode_shared(codec, buf, key, chunk_sel, out, share)

    async def _decode_shared(
        self,
        codec: ChunkCodec,
        buf: Buffer,
        key: str,
        chunk_sel: Region,
        out: NDArray[Any],
        share: tuple[str, Pending],
    ) -> NDArray[Any] | Fetch:
        """Decode a chunk into ``out`` in a worker thread, and a copy of the whole chunk for
        the reads that joined ``share`` (``Fetch.FAILED``: none did)."""
        close = partial(self._in_flight.close, *share)
        got: NDArray[Any] | None = await self._workers.run(
            _decode_for_all, codec, buf, key, chunk_sel, out, close
        )
        return Fetch.FAILED if got is None else got

    @property
    def reads_chunks_together(self) -> bool:
        """Whether :meth:`read_in_chunks` fetches its chunks in one step: a remote unsharded
        level (read only) whose store starts GETs together (``store.gets_together``)."""
        return (
            not isinstance(self.codec, ShardCodec)
            and not self.reads_locally
            and not self.writable
            and self.store.gets_together
        )

    async def read_in_chunks(self, regions: Sequence[Region]) -> list[NDArray[Any]]:
        """Read normalised regions that each lie inside one chunk of an unsharded level, each
        into its own array: their chunks fetched with one ``store.get_many`` (a chunk that
        several regions share, once) and decoded in one worker-thread call.

        A tile stream reads small remote tiles so, a few per prefetch item: one hand-off to
        the decode threads and one store call per few tiles instead of per tile.
        """
        codec = self.codec
        if isinstance(codec, ShardCodec):
            raise ValueError(f"{self!r} is sharded: read_in_chunks reads unsharded levels")
        chunks = self.meta.chunks
        groups: dict[str, Targets] = {}  # each chunk fetched and decoded once, however many
        outs: list[NDArray[Any]] = []  # regions need it
        shape, dtype, chunk_key = self.shape, self.dtype, self.meta.chunk_key
        for region in regions:
            check_region(region, shape)
            dims: list[int] = []
            coords_l: list[int] = []
            sel: list[slice] = []
            for r, c in zip(region, chunks, strict=True):  # one pass: tiles come by the 1000
                i, first = divmod(r.start, c)
                dims.append(r.stop - r.start)
                coords_l.append(i)
                sel.append(slice(first, first + r.stop - r.start))
                if r.stop > r.start and first + r.stop - r.start > c:
                    raise ValueError(f"region {region} of {self!r} is not inside one chunk")
            out: NDArray[Any] = np.empty(dims, dtype=dtype)
            outs.append(out)
            if out.size == 0:
                continue
            key = self._prefix + chunk_key(tuple(coords_l))
            groups.setdefault(key, []).append((tuple(sel), out))
        await self._fetch_decode_groups(codec, groups)
        return outs

    def read_blocking(self, region: Region, indexes: IndexCache | None = None) -> NDArray[Any]:
        """Blocking read of a normalised region, for a worker thread; needs :attr:`reads_locally`.

        The tile iterator reads several small tiles per worker-thread call with it (one thread
        hand-off per batch instead of per tile).
        """
        if not self.reads_locally:
            raise RuntimeError(f"{self!r} does not read locally; use await level.read()")
        return self._read_local(
            region, region_shape(region), self.index_cache() if indexes is None else indexes
        )

    async def in_decode_thread(self, fn: Callable[[P], R], arg: P) -> R:
        """``fn(arg)`` in one of the dataset's decode threads."""
        return await self._workers.run(fn, arg)

    def decode_idle(self) -> bool:
        """Whether a decode thread is free (reads wait on I/O, not on the CPU)."""
        return self._workers.idle()

    def _one_object(self, region: Region) -> bool:
        return _inside_one(region, self.meta.stored_chunks)

    def _read_local(
        self, region: Region, shape: tuple[int, ...], indexes: IndexCache
    ) -> NDArray[Any]:
        """Blocking read of a region inside one stored object (worker thread, local stores)."""
        out: NDArray[Any] = np.empty(shape, dtype=self.dtype)
        codec = self.codec
        if not isinstance(codec, ShardCodec):
            jobs = _chunk_jobs(self._prefix, plan_chunks(self.meta, region), out)
            _fetch_decode(self.store, codec, jobs, self.fill_value)
            return out
        for plan in plan_shards(self.meta, region):
            key = self._prefix + plan.key
            index = indexes.get(key)
            if self._whole_shards or (
                index is _MISSING and len(plan.chunks) == math.prod(codec.chunks_per_shard)
            ):
                _fetch_decode_shard(self.store, codec, key, [(plan, out)])
                continue

            def read(
                index: ShardIndex, version: str | None, key: str = key, plan: ShardPlan = plan
            ) -> None:
                wanted, pieces = _stored_pieces(index, plan, out, self.fill_value)
                jobs = _range_jobs(key, wanted, [(p, out) for p in pieces])
                _fetch_decode(self.store, codec.inner, jobs, self.fill_value, version)

            self._versioned_blocking(codec, key, [(plan, out)], indexes, read)
        return out

    async def read_into(
        self, region: Region, out: NDArray[Any], indexes: IndexCache | None = None
    ) -> None:
        """Read ``region`` into ``out`` (an array of the region's shape)."""
        check_region(region, self.shape)
        if tuple(out.shape) != region_shape(region):  # a larger one would be filled in part
            raise ValueError(f"out has shape {out.shape}, the region {region_shape(region)}")
        if isinstance(self.codec, ShardCodec):
            codec = self.codec
            cache = self.index_cache() if indexes is None else indexes

            async def one_shard(plan: ShardPlan) -> None:
                if self.writable:  # index + ranges must see one version of a shard being written
                    async with self._write_locks.hold(self._prefix + plan.key):
                        await self._read_shard(codec, plan, out, cache)
                    return
                await self._read_shard(codec, plan, out, cache)

            await _run_all(plan_shards(self.meta, region), one_shard, self._window)
        else:
            chunk_codec = self.codec
            plans = plan_chunks(self.meta, region)
            if self.store.blocking_reads:
                # local: read + decode in worker-thread calls, several chunks per call when
                # there are many (fewer hops)
                count = math.prod(
                    -(-r.stop // c) - r.start // c for r, c in zip(region, self.chunks, strict=True)
                )
                threads = self._workers.threads
                per_call = max(1, min(_BATCH, count // (4 * threads)))
                batches = iter(lambda: list(islice(plans, per_call)), [])

                async def one_batch(batch: list[ChunkPlan]) -> None:
                    await self._workers.run(
                        _fetch_decode,
                        self.store,
                        chunk_codec,
                        _chunk_jobs(self._prefix, batch, out),
                        self.fill_value,
                    )

                await _run_all(batches, one_batch, self._window)
                return

            # remote: a few chunks per store call and per decode hand-off when the store
            # starts GETs together, as many requests in flight; read only: the chunks shared
            # with the reads of them in flight
            together = max(1, min(_TOGETHER, self._window)) if self.store.gets_together else 1
            batches = iter(lambda: list(islice(plans, together)), [])
            share = not self.writable

            async def some_chunks(batch: list[ChunkPlan]) -> None:
                groups = {
                    self._prefix + p.key: [(p.chunk_selection, out[p.out_selection])] for p in batch
                }
                await self._claim_decode(chunk_codec, groups, None, None, self._fetched, share)

            await _run_all(batches, some_chunks, max(1, self._window // together))

    async def _read_shard(
        self, codec: ShardCodec, plan: ShardPlan, out: NDArray[Any], indexes: IndexCache
    ) -> None:
        key = self._prefix + plan.key
        if self.store.blocking_reads and (
            self._whole_shards or (self._covers(codec, [(plan, out)]) and key not in indexes)
        ):
            await self._workers.run(_fetch_decode_shard, self.store, codec, key, [(plan, out)])
            return
        share = not self.writable  # (inner chunks shared with the reads of them in flight)
        await self._read_shard_parts(codec, key, [(plan, out)], indexes, None, share)

    def _vanished(self, key: str) -> ChangedError:
        """A shard deleted since its index was read: read again (its index then says no
        shard, so the fill value)."""
        url = self.store.url
        return ChangedError(
            f"shard {key!r} at {url} disappeared while it was read", url=url, key=key
        )

    async def _read_shard_parts(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        reuse: Keeper | None = None,
        share: bool = False,
    ) -> None:
        """Read the inner chunks of shard ``key`` that ``parts`` (plans of regions, each with
        its output) need: the whole shard in one request when they need all of it and its
        index is not known yet, else via its (cached) index in one coalesced set of ranged
        reads (those ``reuse`` holds taken from it; ``share``: those the reads in flight are
        fetching waited for, :meth:`_share_decode`). A shard found rewritten between its index
        and its chunks is read again from its index, up to ``_CHANGED_RETRIES`` times, then
        whole (one version by construction: a shard rewritten on every try, or a server whose
        ETags differ from node to node; neither shared nor taken from ``reuse``). A compressed
        shard is always read whole. Whole reads of a read-only level are shared with the reads
        in flight whether or not ``share`` is set (:meth:`_read_whole`)."""
        if self._whole_shards or (
            key not in indexes and key not in self._index_loading and self._covers(codec, parts)
        ):  # one request, not two
            await self._read_whole(codec, key, parts, indexes, reuse, not self.writable)
            return
        for _ in range(_CHANGED_RETRIES + 1):
            try:
                await self._read_parts_once(codec, key, parts, indexes, reuse, share)
                return
            except ChangedError:  # (its index was dropped)
                continue
        await self._read_whole(codec, key, parts, indexes)

    async def _read_whole(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        reuse: Keeper | None = None,
        share: bool = False,
    ) -> None:
        """Read shard ``key`` whole in one request and decode what ``parts`` need of it; its
        index goes into ``indexes`` with the version read (later reads of parts of it, such
        as the halos of neighbouring tiles, need no index request). A compressed shard is
        decompressed in a worker thread first (its index is not kept: never read by range;
        the reads of a read-only level that need it meanwhile share that one). A remote plain
        shard's inner chunks are claimed before the request (:meth:`_whole_claimed`): taken
        from ``reuse`` and kept there, or (``share``, a read-only level) shared with the reads
        of them in flight, whole or by range."""
        if codec.compressed:
            fetch = partial(self._open_compressed, codec, key)
            got = await (fetch() if self.writable else self._shards_in_flight.run(key, fetch))
        elif (share or reuse is not None) and not self.store.blocking_reads:
            await self._whole_claimed(codec, key, parts, indexes, reuse, share)
            return
        else:
            whole, version = await self.store.get_with_version(key)
            got = None if whole is None else _open_shard(codec, whole, key)
            if got is not None:
                indexes.put(key, got[1], version)
        if got is None:
            indexes.put(key, None)
            for plan, out in parts:
                out[plan.out_selection] = self.fill_value
            return
        plain, index = got
        groups = _by_chunk((inner, out) for plan, out in parts for inner in plan.chunks)
        decode = partial(_decode_shard_into, codec, plain, key, index)
        await self._in_threads(decode, list(groups.items()))

    async def _whole_claimed(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        reuse: Keeper | None,
        share: bool,
    ) -> None:
        """:meth:`_read_whole` of a remote plain shard, its inner chunks claimed first (named
        as :meth:`_inner_groups` names them): those ``reuse`` holds are taken from it and it
        keeps those it asks for; else (``share``) those other reads are fetching are waited
        for (:meth:`_share_decode`). The shard is fetched whole (one GET, with its version)
        only if some chunk is still to fetch: the chunks a read leads are decoded once, each
        read getting its own copy."""
        groups: dict[str, Targets] = {}
        inner_of: dict[str, tuple[int, ...]] = {}
        for inner, targets in _by_chunk(
            (c, out) for plan, out in parts for c in plan.chunks
        ).items():
            name = inner_chunk_name(key, inner)
            groups[name], inner_of[name] = targets, inner
        coords: dict[str, tuple[int, ...]] | None = None
        if reuse is not None:
            first = [s * n for s, n in zip(parts[0][0].coords, codec.chunks_per_shard, strict=True)]
            coords = {
                name: tuple(f + i for f, i in zip(first, inner, strict=True))
                for name, inner in inner_of.items()
            }

        async def fetched(claimed: Sequence[_Ready]) -> list[Decode]:
            if not any(isinstance(buf, Fetch) for buf, _, _ in claimed):  # all from ``reuse``
                return [(b, n, t) for b, n, t in claimed if not isinstance(b, Fetch)]
            whole, version = await self.store.get_with_version(key)
            if whole is None:
                indexes.put(key, None)
                return [(None if isinstance(b, Fetch) else b, n, t) for b, n, t in claimed]
            plain, index = _open_shard(codec, whole, key)
            indexes.put(key, index, version)
            mv = memoryview(plain).cast("B")
            out: list[Decode] = []
            for b, n, t in claimed:
                buf = (
                    _inner_bytes(codec, mv, key, index, inner_of[n]) if isinstance(b, Fetch) else b
                )
                out.append((buf, n, t))
            return out

        await self._claim_decode(codec.inner, groups, coords, reuse, fetched, share)

    async def _open_compressed(
        self, codec: ShardCodec, key: str
    ) -> tuple[Buffer, ShardIndex] | None:
        """Shard ``key`` compressed whole, fetched and decompressed (in a worker thread): its
        plain bytes and index; ``None``: missing."""
        whole, _ = await self.store.get_with_version(key)  # (as the other whole reads: with
        # ``get``, a body starting as gzip data is asked of aiohttp again over HTTP)
        return None if whole is None else await self._workers.run(_open_shard, codec, whole, key)

    def _covers(self, codec: ShardCodec, parts: Sequence[tuple[ShardPlan, NDArray[Any]]]) -> bool:
        """Whether ``parts`` (plans of regions in one shard) need every inner chunk of it that
        holds pixels of the array (an edge shard's chunks past the array's end hold none)."""
        coords = parts[0][0].coords
        need = math.prod(
            min(n, -(-(size - sc * n * c) // c))
            for n, c, size, sc in zip(
                codec.chunks_per_shard, self.meta.chunks, self.shape, coords, strict=True
            )
        )
        if len(parts) == 1:
            return len(parts[0][0].chunks) >= need
        return len({inner.coords for plan, _ in parts for inner in plan.chunks}) >= need

    async def _read_parts_once(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        reuse: Keeper | None = None,
        share: bool = False,
    ) -> None:
        """One try of :meth:`_read_shard_parts` via the shard's index (``ChangedError``: the
        shard changed since, and its index is dropped)."""
        index, version = await self._shard_entry(key, indexes)
        if index is None:
            for plan, out in parts:
                out[plan.out_selection] = self.fill_value
            return
        if self.store.blocking_reads:  # local: read and decode in one worker-thread call
            wanted: list[tuple[int, int]] = []
            jobs: list[tuple[InnerChunkPlan, NDArray[Any]]] = []
            for plan, out in parts:
                ranges, pieces = _stored_pieces(index, plan, out, self.fill_value)
                wanted += ranges
                jobs += [(p, out) for p in pieces]
            if wanted:
                try:
                    await self._workers.run(
                        _fetch_decode,
                        self.store,
                        codec.inner,
                        _range_jobs(key, wanted, jobs),
                        self.fill_value,
                        version,
                    )
                except ChangedError:
                    indexes.pop_version(key, version)  # (unless another read fetched it anew)
                    raise
            return
        # each inner chunk fetched and decoded once, however many of the regions need it
        groups, stored = self._inner_groups(key, index, parts)
        if not stored:
            return

        async def fetched(claimed: Sequence[_Ready]) -> list[Decode]:
            return await self._fetched_ranges(key, claimed, stored, index, indexes, version)

        coords = _grid_coords(codec, parts, stored) if reuse is not None else None
        await self._claim_decode(codec.inner, groups, coords, reuse, fetched, share)

    async def _fetched_ranges(
        self,
        key: str,
        claimed: Sequence[_Ready],
        stored: dict[str, tuple[tuple[int, ...], tuple[int, int]]],
        index: ShardIndex,
        indexes: IndexCache,
        version: str | None,
    ) -> list[Decode]:
        """``claimed`` inner chunks of shard ``key`` with those still to fetch (``Fetch``)
        fetched: one coalesced set of ranged reads, of the version ``index`` was read from."""
        wanted = {name: stored[name] for buf, name, _ in claimed if isinstance(buf, Fetch)}
        bufs: list[Buffer] = []
        if wanted:
            ranges = [rng for _, rng in wanted.values()]
            try:
                async with self._past_end_as_corrupt(key, index, [c for c, _ in wanted.values()]):
                    got = await self.store.get_ranges(key, ranges, if_match=version)
                if got is None:  # deleted since its index was read (all fill value now, say)
                    raise self._vanished(key)
            except ChangedError:
                indexes.pop_version(key, version)  # (unless another read fetched it anew)
                raise
            bufs = list(got)
        it = iter(bufs)
        return [(next(it) if isinstance(b, Fetch) else b, n, t) for b, n, t in claimed]

    async def _in_threads(self, fn: Callable[[list[J]], None], items: list[J]) -> None:
        """``fn(part)`` for parts of ``items`` in worker threads: several items per call (fewer
        hand-offs), on every decode thread when there are many (a whole shard; a tile stream
        has other reads in flight to keep the threads busy)."""
        calls = max(1, min(self._workers.threads, len(items) // _CHUNKS_PER_CALL))
        if calls == 1:
            await self._workers.run(fn, items)
            return
        with first_error():
            async with anyio.create_task_group() as tg:
                for i in range(calls):
                    start_deferred(tg, self._workers.run, fn, items[i::calls])

    @property
    def reads_shards_in_parts(self) -> bool:
        """Whether reads may fetch a shard's index, then some of its inner chunks (not in
        one-chunk shards, nor in compressed ones: read whole)."""
        return isinstance(self.codec, ShardCodec) and self._chunk_reads

    def object_keys(self, region: Region) -> list[str]:
        """The keys of the stored objects (chunks, or shards) holding ``region``."""
        return [self._prefix + plan.key for plan in plan_shards(self.meta, region)]

    def index_keys(self, region: Region) -> list[str]:
        """The shards whose index a remote read of ``region`` fetches (those it needs only
        part of; a whole shard is one GET without its index)."""
        codec = self.codec
        if not isinstance(codec, ShardCodec) or not self.reads_shards_in_parts:
            return []
        if self._one_chunk(region):  # a tile: one inner chunk of a many-chunk shard
            shards = self.meta.stored_chunks
            coords = tuple(r.start // s for r, s in zip(region, shards, strict=True))
            return [self._prefix + self.meta.chunk_key(coords)]
        # counted, not planned: a whole-shard tile would plan 64-1024 inner chunks here
        per_shard = math.prod(codec.chunks_per_shard)
        chunks, shards = self.meta.chunks, self.meta.stored_chunks
        check_region(region, self.shape)
        if any(r.stop <= r.start for r in region):
            return []
        touched = [  # per axis: the inner chunks the region touches, as [first, last + 1)
            (r.start // c, (r.stop - 1) // c + 1) for r, c in zip(region, chunks, strict=True)
        ]
        keys = []
        for scoords in product(
            *(
                range(r.start // s, (r.stop - 1) // s + 1)
                for r, s in zip(region, shards, strict=True)
            )
        ):
            inside = math.prod(
                min((sc + 1) * n, hi) - max(sc * n, lo)
                for sc, n, (lo, hi) in zip(scoords, codec.chunks_per_shard, touched, strict=True)
            )
            if inside < per_shard:
                keys.append(self._prefix + self.meta.chunk_key(scoords))
        return keys

    async def load_index(self, key: str, indexes: IndexCache) -> None:
        """Fetch the index of shard ``key`` into ``indexes`` ahead of the reads that need it.
        A failure is left for those reads to raise (nothing is cached for a failed load)."""
        try:
            await self.shard_index(key, indexes)
        except Exception:  # noqa: BLE001 - the read that needs the index raises it
            return

    async def shard_index(self, key: str, indexes: IndexCache) -> ShardIndex | None:
        """The decoded index of shard ``key`` (``None`` if the shard does not exist), kept in
        ``indexes`` (the read operation's cache). Concurrent readers share a single request."""
        return (await self._shard_entry(key, indexes))[0]

    async def _shard_entry(self, key: str, indexes: IndexCache) -> _Entry:
        """``shard_index``, and the version of the shard it was read from (``None``: unknown)."""
        while True:
            index = indexes.get(key)
            if index is not _MISSING:
                return index, indexes.version(key)  # the pair as cached: no await between
            loading = self._index_loading.get(key)
            if loading is None:
                break
            event, result = loading
            await event.wait()
            if result:  # fetched by another reader while this one waited: fresh
                indexes.put(key, *result[0])
                return result[0]
        event, result = anyio.Event(), []
        self._index_loading[key] = (event, result)
        try:
            entry = await self._fetch_index(key)
            result.append(entry)
            indexes.put(key, *entry)
            return entry
        finally:
            del self._index_loading[key]
            event.set()

    @contextlib.asynccontextmanager
    async def _past_end_as_corrupt(
        self, key: str, index: ShardIndex, inner: Iterable[tuple[int, ...]]
    ) -> AsyncIterator[None]:
        """Ranged reads of the ``inner`` chunks of shard ``key``: a store's refusal of a range
        (HTTP 416; a local store's invalid range) that comes of ``index`` pointing past the
        shard's end is raised as that corruption (the store answered right)."""
        try:
            yield
        except StoreError as exc:
            if type(exc) is not StoreError:  # timeouts, permissions, changes: not the data
                raise
            try:
                size = await self.store.size(key)
            except Exception:  # noqa: BLE001 - the first error is the one to raise
                size = None
            hit = None if size is None else index.past_end(size, inner)
            if hit is None:
                raise
            assert size is not None
            raise past_end_error(key, *hit, size) from exc

    @staticmethod
    def _index_request(codec: ShardCodec) -> RangeByteRequest | SuffixByteRequest:
        n = codec.index_nbytes
        return RangeByteRequest(0, n) if codec.index_location == "start" else SuffixByteRequest(n)

    async def _fetch_index(self, key: str) -> _Entry:
        codec = self.codec
        assert isinstance(codec, ShardCodec)
        buf, version = await self.store.get_with_version(key, self._index_request(codec))
        if buf is None:
            return None, None
        return codec.decode_index(buf, key), version

    # ---------------------------------------------------------------- writing
    def _check_writable(self) -> None:
        if not self.writable:
            where = f"{self.store.url.rstrip('/')}/{self.path}"
            raise ReadOnlyError(f"{where} is open read-only; open it with mode='r+' to write")

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


def _chunk_pieces(region: Region, chunks: tuple[int, ...]) -> list[tuple[Region, Region]]:
    """``region`` cut along the chunk grid: each piece's region in the level and in the
    region's own array, in C order."""
    per_axis = []
    for s, c in zip(region, chunks, strict=True):
        spans = []
        a = s.start
        while a < s.stop:
            b = min(s.stop, (a // c + 1) * c)
            spans.append((slice(a, b), slice(a - s.start, b - s.start)))
            a = b
        per_axis.append(spans)
    return [
        (tuple(p for p, _ in combo), tuple(q for _, q in combo)) for combo in product(*per_axis)
    ]


def _inside_one(region: Region, grid: tuple[int, ...]) -> bool:
    """Whether a non-empty region lies inside one cell of a regular grid of ``grid`` cells."""
    return all(
        r.stop > r.start and (r.stop - 1) // c == r.start // c
        for r, c in zip(region, grid, strict=True)
    )
