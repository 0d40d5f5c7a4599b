"""``_LevelBase``: what every part of :class:`~ngio_async.images._level.Level` stands on: its
construction (the array's codec, the worker threads, the read window, the caches and locks of
the reads and writes in progress), its description (shape, dtype, chunks, ...), and how a read's
regions group into the stored objects (chunks, shards, inner chunks) it needs."""

from __future__ import annotations

import functools
import math
import weakref
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import anyio
import numpy as np

from .._errors import CodecError, MetadataError, ReadOnlyError, UnsupportedError, name_store
from .._prefetch import first_error, start_deferred
from ..codecs import ChunkCodec, ShardCodec, ShardIndex
from ..engine import plan_chunks, plan_shards, region_shape
from ..engine.plan import check_region
from ._chunk_decode import _CHUNKS_PER_CALL, Targets, _by_chunk
from ._index_cache import _NO_SHARDS, IndexCache, _Entry
from ._opening import read_only_advice
from ._reuse import InFlight, Keeper, SingleFlight
from ._shard_bytes import inner_chunk_name
from ._write import KeyLocks

P = TypeVar("P")
R = TypeVar("R")
J = TypeVar("J")
PS = ParamSpec("PS")
L = TypeVar("L", bound="_LevelBase")

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    from numpy.typing import NDArray

    from .._workers import Workers
    from ..engine import Region, ShardPlan
    from ..meta.zarr import ArrayMeta
    from ..stores import AsyncStore, Buffer
    from ._tile_pool import TilePool


def _inside_one(region: Region, grid: tuple[int, ...]) -> bool:
    """Whether a non-empty region lies inside one cell of a regular grid of ``grid`` cells."""
    return all(
        r.stop > r.start and (r.stop - 1) // c == r.start // c
        for r, c in zip(region, grid, strict=True)
    )


def names_store(
    fn: Callable[Concatenate[L, PS], Awaitable[R]],
) -> Callable[Concatenate[L, PS], Coroutine[Any, Any, R]]:
    """A level's read or write whose :class:`CodecError` names the level's store URL (the
    codecs name the key only: in a dask graph reading many images, ambiguous)."""

    @functools.wraps(fn)
    async def named(self: L, /, *args: PS.args, **kwargs: PS.kwargs) -> R:
        try:
            return await fn(self, *args, **kwargs)
        except (CodecError, BaseExceptionGroup) as exc:
            name_store(exc, self.store.url)
            raise

    return named


def names_store_blocking(fn: Callable[Concatenate[L, PS], R]) -> Callable[Concatenate[L, PS], R]:
    """:func:`names_store` of a blocking read (worker thread, or the calling thread)."""

    @functools.wraps(fn)
    def named(self: L, /, *args: PS.args, **kwargs: PS.kwargs) -> R:
        try:
            return fn(self, *args, **kwargs)
        except (CodecError, BaseExceptionGroup) as exc:
            name_store(exc, self.store.url)
            raise

    return named


class _LevelBase:
    """The construction, description and region grouping of a :class:`Level`."""

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
        #: why a level opened with ``mode="r+"`` is not writable (an NGFF 0.1 - 0.3 image)
        self.read_only_why: str | None = None
        # the dataset's read cache (read-only datasets) and the shard indexes kept with it
        self._read_cache: Keeper | None = None
        self._read_budget = 0
        self._kept_indexes: IndexCache | None = None
        # one-chunk reads in flight, for the identical ones that start meanwhile (read only)
        self._in_flight = InFlight()
        # shards compressed whole being fetched and opened, for the reads that need them too
        self._shards_in_flight: SingleFlight[tuple[Buffer, ShardIndex] | None] = SingleFlight()
        # shards fetched whole for tile streams' runs fetched ahead, for the runs that need them
        # too (a GET only: whichever run leads it, nothing waits for a consumer)
        self._bodies_ahead: SingleFlight[tuple[Buffer | None, str | None]] = SingleFlight()
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

    async def in_decode_thread(self, fn: Callable[[P], R], arg: P) -> R:
        """``fn(arg)`` in one of the dataset's decode threads."""
        return await self._workers.run(fn, arg)

    def decode_idle(self) -> bool:
        """Whether a decode thread is free (reads wait on I/O, not on the CPU)."""
        return self._workers.idle()

    def _check_writable(self) -> None:
        if not self.writable:
            where = f"{self.store.url.rstrip('/')}/{self.path}"
            why = self.read_only_why
            advice = read_only_advice(self.store) if why is None else f": {why}"
            raise ReadOnlyError(f"{where} is open read-only{advice}")

    def _empty(self, shape: tuple[int, ...], pool: TilePool | None) -> NDArray[Any]:
        """A new output array of ``shape``: from ``pool`` (a tile stream's), else fresh."""
        if pool is None:
            return np.empty(shape, dtype=self.dtype)
        return pool.empty(shape, self.dtype)

    def _outs(
        self,
        regions: Sequence[Region],
        into: Sequence[NDArray[Any]] | None,
        pool: TilePool | None = None,
    ) -> list[NDArray[Any]]:
        """An output array per (checked) region: ``into``'s, else new ones (from ``pool``)."""
        for region in regions:
            check_region(region, self.shape)
        if into is not None:
            return list(into)
        return [self._empty(region_shape(region), pool) for region in regions]

    def _shard_groups(
        self,
        regions: Sequence[Region],
        into: Sequence[NDArray[Any]] | None = None,
        pool: TilePool | None = None,
    ) -> tuple[list[NDArray[Any]], dict[str, list[tuple[ShardPlan, NDArray[Any]]]]]:
        """An output array per region (``into``'s, else new ones), and the shards of a sharded
        level they need, each with the plans of the regions' parts in it and their outputs."""
        outs = self._outs(regions, into, pool)
        shards: dict[str, list[tuple[ShardPlan, NDArray[Any]]]] = {}
        for region, out in zip(regions, outs, strict=True):
            for plan in plan_shards(self.meta, region):
                shards.setdefault(self._prefix + plan.key, []).append((plan, out))
        return outs, shards

    def _chunk_groups(
        self,
        regions: Sequence[Region],
        into: Sequence[NDArray[Any]] | None = None,
        pool: TilePool | None = None,
    ) -> tuple[list[NDArray[Any]], dict[str, Targets], dict[str, tuple[int, ...]]]:
        """An output array per region (``into``'s, else new ones), and the chunks of an
        unsharded level they need, each with its targets (its part in every output that needs
        it) and its coordinates."""
        outs = self._outs(regions, into, pool)
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

    def _one_chunk(self, region: Region) -> bool:
        return _inside_one(region, self.meta.chunks)

    def _one_object(self, region: Region) -> bool:
        return _inside_one(region, self.meta.stored_chunks)

    def _covers(self, codec: ShardCodec, plans: Sequence[ShardPlan]) -> bool:
        """Whether ``plans`` (of regions in one shard) need every inner chunk of it that holds
        pixels of the array (an edge shard's chunks past the array's end hold none)."""
        coords = plans[0].coords
        need = math.prod(
            min(n, -(-(size - sc * n * c) // c))
            for n, c, size, sc in zip(
                codec.chunks_per_shard, self.meta.chunks, self.shape, coords, strict=True
            )
        )
        if len(plans) == 1:
            return len(plans[0].chunks) >= need
        return len({inner.coords for plan in plans for inner in plan.chunks}) >= need

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
