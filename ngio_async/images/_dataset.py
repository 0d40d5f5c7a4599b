"""``Dataset``: an opened OME-Zarr image (levels, labels, metadata) and its awaitable reads."""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import operator
import re
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import numpy as np

from .._errors import (
    ChangedError,
    MetadataError,
    NotFoundError,
    ReadOnlyError,
    UnsupportedError,
)
from .._prefetch import first_error, prefetch as start_prefetch, start_deferred
from .._workers import Workers
from ..engine import (
    chunk_uses,
    default_tile_shape,
    halo,
    keys_ahead,
    normalize_selection,
    same_object_runs,
    tile_grid,
)
from ..engine.plan import coordinate_index, orthogonal_index, selection_span
from ..tables import Tables
from ._labels import Labels
from ._level import AsyncIndexer, Level
from ._metadata import ImageMetadata, LevelCalibration
from ._node import StoreNode
from ._open import (
    EarlyGet,
    first_level_key,
    join,
    read_group_metadata,
    read_level_metadata,
    refresh_image,
)
from ._opening import (
    Mode,
    _check_mode,
    _check_multiscale,
    _first_series,
    _multiscale_index,
    _not_an_image,
    _Opening,
    _url_of,
    open_node,
)
from ._reuse import ChunkPool, ChunkReuse
from ._tiles import Tile, TileBatch, TileOwner, TileStream, TileWork
from ._world import (
    Origin,
    Unit,
    absent_axes,
    extent,
    level_for as world_level_for,
    system_calibration,
    world_selection,
)
from ._write import fit_data, image_lock

if TYPE_CHECKING:
    import os
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskGroup
    from numpy.typing import ArrayLike, NDArray

    from .._limits import Limits
    from .._prefetch import Prefetch, ProgressCallback
    from ..engine import Region, TileSpec
    from ..engine.pyramid import Method
    from ..meta import Multiscale, OmeMetadata, Omero, Window
    from ..meta.zarr import ArrayMeta
    from ..stores import AsyncStore
    from ..tables import Roi
    from ._cascade import Cascade
    from ._merge import Merge
    from ._rois import MaskedImage, RoiRead, RoiStream
    from ._write import LevelWriter

__all__ = ["Dataset", "Labels", "open_async"]

Selector = int | slice | str | Sequence[int | str] | None
_S = TypeVar("_S")
_TILES_PER_CALL = 16  # small tiles read per worker-thread call on local stores, at most
_BATCH_BYTES = 8 << 20  # ... and at most this many decoded bytes per call
_TILES_TOGETHER = 4  # remote tiles inside one chunk each: read together per prefetch item
_RUN_TILES = 1024  # unordered remote shards: tiles of one shard read together, at most
_RUN_BYTES = 32 << 20  # ... and at most this many decoded bytes of them


def _tiles_per_call(
    lvl: Level, prefetch: int | None, tile_bytes: int, max_bytes: int, *, in_chunks: bool
) -> int:
    """Tiles per prefetch item: several small ones on local stores; a few on remote unsharded
    levels whose store starts GETs together, when every tile lies inside one chunk
    (``in_chunks``); else one (remote reads overlap round trips per tile).

    Each batch costs one thread hand-off and ~0.1 ms of event-loop time, which the tiles of a
    CPU-bound disk stream share: 16 tiles of 512x512 uint16 a batch streamed 17-23% faster than
    8, and 8 faster than 4 (2 cores). Remote chunks fetched 4 together (one store call, one
    decode hand-off) streamed 20 ms HTTP 25-35% faster than one by one, 2 together 15-25%, 8
    no faster than 4 (event-loop CPU 0.43 -> 0.18 s per 537 MB). A batch stays within a
    quarter of the byte bound (the consumer may still hold the tiles of the last batch handed
    over), and within half of a ``prefetch`` the caller named (two batches in flight at least).
    """
    by_bytes = min(_BATCH_BYTES, max_bytes // 4) // tile_bytes
    half = None if prefetch is None else prefetch // 2
    if lvl.reads_locally:
        most = _TILES_PER_CALL if half is None else half
    elif in_chunks and lvl.reads_chunks_together:
        most = _TILES_TOGETHER if half is None else min(_TILES_TOGETHER, half)
    else:
        return 1
    return max(1, min(most, by_bytes))


def _tiles_in_chunks(
    region: Sequence[slice],
    tile_shape: Sequence[int | None],
    halos: Sequence[int],
    chunks: Sequence[int],
) -> bool:
    """Whether every tile of ``region`` lies inside one chunk: no halos, and on every axis
    tiles whose size divides the chunk's (tiles are aligned to multiples of their size from
    the origin, then clipped), or one tile of the whole extent inside one chunk."""
    for r, t, h, c in zip(region, tile_shape, halos, chunks, strict=True):
        if h:
            return False
        if t is None:
            if r.stop > r.start and r.start // c != (r.stop - 1) // c:
                return False
        elif t > c or c % t:
            return False
    return True


def _grouped(items: Iterator[list[TileSpec] | str]) -> Iterator[TileWork]:
    """``items`` with each stretch of keys between two batches as one tuple (their indexes
    are then fetched together: one item of the prefetch window, however many shards a run of
    tiles meets)."""
    keys: list[str] = []
    for item in items:
        if isinstance(item, str):
            keys.append(item)
            continue
        if keys:
            yield tuple(keys)
            keys = []
        yield item
    if keys:
        yield tuple(keys)


def _consecutive(per_axis: Sequence[int], grid: Sequence[int]) -> int:
    """How many tiles of one block come one after another in grid (C) order: the block's
    tiles along the last axes, out to the first axis the block does not span whole."""
    n = 1
    for k, g in zip(reversed(per_axis), reversed(grid), strict=True):
        n *= k
        if k < g:
            break
    return n


def _spans(extent: int, size: int) -> int:
    """How many pieces of ``size`` (tiles, shards) ``extent`` pixels from a multiple of
    ``size`` meet; one more when they do not divide each other (a piece across the border)."""
    size = max(1, size)
    return -(-extent // size) + (1 if extent % size and size % extent else 0)


class Dataset(StoreNode):
    """An OME-Zarr image: ``levels`` (largest first), ``metadata``, ``labels``; reads with ``await``.

    Open with :func:`ngio_async.open_async`. Reading::

        arr = await ds.read(level=0, c="DAPI", y=slice(0, 512), x=slice(0, 512))
        arr = await ds[0, :, 100:200, 150:250]      # numpy basic indexing on level 0
    """

    _what = "dataset"

    def __init__(
        self,
        store: AsyncStore,
        root: str,
        metadata: ImageMetadata,
        levels: list[Level],
        *,
        limits: Limits,
        workers: Workers,
        owns_store: bool,
    ) -> None:
        self.store = store
        self.root = root
        self.metadata = metadata
        self.levels = levels
        self.limits = limits
        self._workers = workers
        self._owns_store = owns_store
        self.labels = Labels(self)
        self.tables = Tables(self)
        self._tile_owner = TileOwner()  # runs bare ``async for`` tile streams
        self.mode: Mode = "r"
        self._meta_lock: anyio.Lock | None = None
        # build_pyramid, set_scale and labels.create, one at a time: each plans from the levels
        # and scales it reads, and the labels follow the image only if none plans from stale ones
        self._structure_lock: anyio.Lock | None = None
        # channels whose display window follows the data (created without one, or set "auto")
        self._auto_windows: set[int] = set()
        # per plane of the lowest level (its indices on the axes other than y and x): the
        # lowest and highest value there, for the channels ``_extents_of`` names
        self._extents: dict[tuple[int, ...], tuple[float, float] | None] = {}
        self._extents_of: tuple[int, ...] = ()
        self._read_cache: ChunkPool | None = None

    # ---------------------------------------------------------------- opening / closing
    @classmethod
    async def open_in(
        cls,
        store: AsyncStore,
        root: str = "",
        *,
        limits: Limits | None = None,
        workers: Workers | None = None,
        owns_store: bool = False,
        mode: Mode = "r",
        parent_version: str | None = None,
        multiscale: int | str = 0,
    ) -> Dataset:
        """Open the image at ``root`` of an open store (metadata only; no pixel is read).

        ``mode="r+"`` allows writes (pixels and metadata); the default ``"r"`` refuses them.
        ``parent_version``: the NGFF version of the enclosing group (a plate's well), whose
        documents are read first. ``multiscale``: which of the group's multiscales, by index
        or ``name`` (default the first).
        """
        _check_mode(mode)
        _check_multiscale(multiscale)
        if store.blocking_reads:  # local: no round trip to save
            return await cls._open_in(
                store, root, limits, workers, owns_store, mode, None, None, multiscale
            )
        # remote: once the store opened an image, the first level's metadata (named as that
        # image's) is asked for along with the group's (a plate's fields, labels)
        early = EarlyGet(store, first_level_key(root, parent_version))
        with first_error():  # the opening's own error, plainly (the early GET raises none)
            async with anyio.create_task_group() as tg:
                start_deferred(tg, early.run)
                dataset = await cls._open_in(
                    store,
                    root,
                    limits,
                    workers,
                    owns_store,
                    mode,
                    parent_version,
                    early,
                    multiscale,
                )
                # a wrong guess is not waited for (on failure the group cancels it itself, and
                # a cancellation from outside stays one: never taken for this scope's own)
                tg.cancel_scope.cancel()
        return dataset

    @classmethod
    async def _open_in(
        cls,
        store: AsyncStore,
        root: str,
        limits: Limits | None,
        workers: Workers | None,
        owns_store: bool,
        mode: Mode,
        parent_version: str | None,
        early: EarlyGet | None,
        multiscale: int | str = 0,
    ) -> Dataset:
        limits = limits or store.limits
        ome = await read_group_metadata(store, root, parent_version=parent_version)
        if ome.multiscales is None and ome.bioformats2raw_layout is not None and not ome.plate:
            root = join(root, await _first_series(store, root, ome.version))  # bioformats2raw
            # series "0"'s group document is the key guessed for a first level: already read
            ome = await read_group_metadata(store, root, early=early)
        if ome.multiscales is None:
            raise UnsupportedError(_not_an_image(ome, _url_of(store, root)))
        index = _multiscale_index(ome, multiscale, _url_of(store, root))
        paths = tuple(d.path for d in ome.multiscales[index].datasets)
        arrays = await read_level_metadata(
            store, root, ome, paths, early, multiscale=index, consolidated=mode == "r"
        )
        return cls.from_plan(
            store,
            root,
            ome,
            arrays,
            limits=limits,
            workers=workers,
            owns_store=owns_store,
            mode=mode,
            multiscale=index,
        )

    @classmethod
    def from_plan(
        cls,
        store: AsyncStore,
        root: str,
        ome: OmeMetadata,
        arrays: list[ArrayMeta],
        *,
        limits: Limits | None = None,
        workers: Workers | None = None,
        owns_store: bool = False,
        mode: Mode = "r+",
        multiscale: int = 0,
        auto_windows: Sequence[int] = (),
    ) -> Dataset:
        """A dataset over metadata already known (just written by ``create``): no I/O.
        ``multiscale``: the index of the multiscale ``arrays`` belong to; ``auto_windows``: the
        channels whose display windows follow the data when the pyramid is built."""
        _check_mode(mode)
        limits = limits or store.limits
        try:
            metadata = ImageMetadata(ome, multiscale)
            calibration = metadata.spatial_calibration
        except MetadataError as exc:  # a rule the schema leaves to the reader: name the doc
            doc = join(root, ".zattrs" if (ome.version or "0.5") == "0.4" else "zarr.json")
            raise MetadataError(f"{store.url.rstrip('/')}/{doc}: {exc.rule}", exc.path) from None
        workers = workers or Workers(limits.decode_threads)
        window = max(2 * limits.max_requests, 2 * limits.decode_threads)
        levels = [
            Level(
                store,
                join(root, path),
                arr,
                scale=cal.scale,
                translation=cal.translation,
                workers=workers,
                window=window,
            )
            for path, arr, cal in zip(metadata.paths, arrays, calibration, strict=True)
        ]
        dataset = cls(
            store,
            root,
            metadata,
            levels,
            limits=limits,
            workers=workers,
            owns_store=owns_store,
        )
        dataset._set_mode(mode)
        dataset._auto_windows = set(auto_windows)
        return dataset

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        for lvl in self.levels:
            lvl.writable = mode == "r+"
        self._attach_read_cache()

    def _attach_read_cache(self) -> None:
        """(Re)start the read cache of a read-only dataset over its current levels, empty."""
        if self._read_cache is not None:
            self._read_cache.clear()
        budget = self.limits.read_cache_bytes
        pool = ChunkPool(budget) if budget > 0 and self.mode == "r" else None
        self._read_cache = pool
        for lvl in self.levels:
            chunk_bytes = math.prod(lvl.chunks) * lvl.dtype.itemsize
            view = None if pool is None else pool.level(chunk_bytes, lvl.reads_locally)
            lvl.use_read_cache(view, budget)

    @property
    def read_cache(self) -> ChunkPool | None:
        """The decoded chunks this read-only dataset keeps across region reads
        (``Limits.read_cache_bytes``; ``None``: off, or a writable dataset): ``hits``,
        ``held_bytes``, ``peak_bytes``; ``clear()`` drops them (so do ``refresh`` and
        closing)."""
        return self._read_cache

    async def _close_own(self) -> None:
        """Stop the background fetches of bare ``async for`` loops (the store closes next)."""
        await self._tile_owner.aclose()
        if self._read_cache is not None:
            self._read_cache.clear()

    # ---------------------------------------------------------------- description
    @property
    def url(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.root}" if self.root else self.store.url

    @property
    def axes(self) -> tuple[str, ...]:
        return self.metadata.axis_names

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.levels[0].dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<Dataset{state} {self.url} ngff={self.metadata.ngff_version} "
            f"axes={''.join(self.axes)} shape={self.shape} dtype={self.dtype} "
            f"levels={len(self.levels)}>"
        )

    def level(
        self,
        index: int | str | None = None,
        *,
        pixel_size: float | Sequence[float] | None = None,
        unit: str | None = None,
    ) -> Level:
        """A level by index (negative counts from the smallest), by its path in the
        multiscales (``"0"``, ``"s0"``: a str), or nearest to ``pixel_size`` (in ``unit``:
        :meth:`level_for`'s rule)."""
        if (index is None) == (pixel_size is None):
            raise TypeError(
                f"a level is an index, a path or pixel_size=: exactly one of them, got {index!r}"
            )
        if pixel_size is not None:
            return self.levels[self.level_for(pixel_size, unit)]
        assert index is not None
        if isinstance(index, str):
            # the path in the multiscales ("0"; a label image's levels are stored under
            # labels/<name>/, their store paths taken too)
            prefix = f"{self.root}/" if self.root else ""
            stored = [lvl.path for lvl in self.levels]
            paths = [p.removeprefix(prefix) for p in stored]
            want = index.strip("/")
            for names in (paths, stored):
                if want in names:
                    return self.levels[names.index(want)]
            raise KeyError(f"no level with path {index!r}: the levels are {paths}")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"level must be an int or a level's path, got {index!r}")
        index = int(index)
        if not -len(self.levels) <= index < len(self.levels):
            raise IndexError(f"level {index} out of range: the image has {len(self.levels)} levels")
        return self.levels[index]

    def _level_index(self, level: int | str) -> int:
        """The index in :attr:`levels` of ``level`` (an index, negative too, or a path)."""
        return self.levels.index(self.level(level))

    # ---------------------------------------------------------------- reading
    def __getitem__(self, selection: Any) -> Coroutine[Any, Any, NDArray[Any]]:
        """``await ds[...]``: :meth:`Level.getitem` on level 0 (numpy basic indexing, lists
        as zarr-python 3 reads them)."""
        return self.getitem(selection)

    def __setitem__(self, selection: Any, data: Any) -> None:
        raise TypeError(
            "an assignment cannot be awaited: write with await ds.write_at(selection, data)"
        )

    async def getitem(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        self._check_open()
        return await self.level(level).getitem(selection)

    @property
    def oindex(self) -> AsyncIndexer:
        """``await ds.oindex[sel]``: :meth:`read_orthogonal` on level 0."""
        return AsyncIndexer(self.read_orthogonal, "ds.write_orthogonal")

    @property
    def vindex(self) -> AsyncIndexer:
        """``await ds.vindex[sel]``: :meth:`read_points` on level 0."""
        return AsyncIndexer(self.read_points, "ds.write_points")

    async def read_orthogonal(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        """zarr-python's ``oindex[selection]`` on a level: see :meth:`Level.read_orthogonal`."""
        self._check_open()
        return await self.level(level).read_orthogonal(selection)

    async def read_points(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        """zarr-python's ``vindex[selection]`` on a level: see :meth:`Level.read_points`."""
        self._check_open()
        return await self.level(level).read_points(selection)

    async def read(
        self, level: int | str = 0, *, axes_order: Sequence[str] | None = None, **axes: Selector
    ) -> NDArray[Any]:
        """Read by axis name: ``await ds.read(level=0, c="DAPI", z=3, y=slice(0, 512))``.

        Each axis takes an int (the axis is dropped, as in numpy), a slice (any step), ``None``
        (everything) or a list of ints; the channel axis also takes channel labels (a label or a
        list of labels). Axes not named are read whole. ``axes_order=("c", "z", "y", "x")``:
        the array with those axes, in that order (ngio's ``axes_order``: axes the image lacks
        or the read dropped added with size 1; others left out only if of size 1, else a
        ``ValueError`` naming the axis, as for a name given twice).
        """
        data = await self._read(level, axes)
        if axes_order is None:
            return data
        from ._axes_order import kept_axes, to_order

        return to_order(data, kept_axes(self.axes, axes), axes_order)

    async def _read(self, level: int | str, axes: dict[str, Selector]) -> NDArray[Any]:
        self._check_open()
        lvl = self.level(level)
        selection, pick = self._selection(lvl, axes)
        if pick is None:
            return await lvl.getitem(tuple(selection))
        axis, indices = pick
        if not indices:  # an empty list: nothing along that axis, as numpy gives
            selection[axis] = slice(0, 0)
            return await lvl.getitem(tuple(selection))
        # the level's list read: the picks one chunk (or shard) holds are read together, each
        # chunk once (a read per pick fetched a chunk 4 planes deep 4 times for z=[0, 1, 2, 3])
        selection[axis] = list(indices)
        return await lvl.getitem(tuple(selection))

    def _selection(
        self, lvl: Level, axes: dict[str, Selector]
    ) -> tuple[list[Any], tuple[int, list[int]] | None]:
        names = self.axes
        at = next((k for k, each in enumerate(self.levels) if each is lvl), 0)  # (for errors)
        unknown = [k for k in axes if k not in names]
        if unknown:
            raise ValueError(f"unknown axis {unknown[0]!r}: the image's axes are {list(names)}")
        selection: list[Any] = [slice(None)] * len(names)
        pick: tuple[int, list[int]] | None = None
        for i, name in enumerate(names):
            value = axes.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                selection[i] = self._channel(i, value)
            elif isinstance(value, bool):
                raise TypeError(f"axis {name!r}: expected int, slice, label or list, got {value!r}")
            elif isinstance(value, numbers.Integral):
                selection[i] = _in_bounds(name, int(value), lvl.shape[i], at)
            elif isinstance(value, slice):
                selection[i] = value
            elif isinstance(value, Sequence | np.ndarray):
                if pick is not None:
                    raise ValueError("a list selection is allowed on one axis only")
                if isinstance(value, np.ndarray) and value.ndim != 1:
                    raise TypeError(f"axis {name!r}: a list selection must be 1-D")
                indices = [
                    self._channel(i, v) if isinstance(v, str) else _index(name, v) for v in value
                ]
                size = lvl.shape[i]
                pick = (i, [_in_bounds(name, v, size, at) % size for v in indices])
            else:
                raise TypeError(f"axis {name!r}: expected int, slice, label or list, got {value!r}")
        return selection, pick

    def _channel(self, axis: int, label: str) -> int:
        if axis != self.metadata.channel_axis:
            raise ValueError(
                f"axis {self.axes[axis]!r} is not the channel axis; labels select channels"
            )
        index = self.metadata.channel_index(label)
        if index >= self.shape[axis]:  # omero lists more channels than the image has
            raise IndexError(
                f"channel {label!r} is channel {index} of the omero metadata, but the image "
                f"has {self.shape[axis]} channels"
            )
        return index

    # ---------------------------------------------------------------- streaming
    def tiles(
        self,
        level: int | str = 0,
        shape: Sequence[int | None] | None = None,
        region: Sequence[slice] | None = None,
        overlap: int | Sequence[int] = 0,
        prefetch: int | None = None,
        ordered: bool = True,
        progress: ProgressCallback | None = None,
        **axes: Selector,
    ) -> TileStream:
        """Stream the tiles of a level: ``async for tile in ds.tiles(): tile.data, tile.region``.

        :param shape: tile shape, one value per axis (``None``: the whole extent) or ``(y, x)``;
            default: one shard (else one chunk) in y/x and one plane of the other axes.
        :param region: slices into the level limiting the iteration; named axes (``c="DAPI"``,
            ``z=slice(0, 4)``, ``t=0``) limit it too (both given: their intersection), without
            squeezing any axis. A region reaching outside the level raises :class:`IndexError`.
        :param overlap: a halo around each tile (int: y and x; or per axis), clipped at the
            level borders; ``tile.core`` is the tile without it.
        :param prefetch: tiles fetched ahead of the consumer (default ``limits.prefetch_tiles``,
            on remote stores at least ``limits.max_requests``, growing while the consumer waits on I/O and each widening raises the tile rate by
            10%: doubling until a widening does not pay, then by half; up to twice
            ``limits.max_requests`` on remote stores and what ``limits.prefetch_bytes`` allows;
            a fixed window if given).
            On local stores several small tiles are read per worker-thread call; on remote
            unsharded levels, chunk-sized tiles are read four at a time (their chunks in one
            ``store.get_many``, one decode hand-off). Tiles smaller than a shard (remote
            sharded levels) or a chunk (unsharded levels, local or remote: smaller tiles, or
            plane tiles of chunks several planes deep), or sharing inner chunks (local
            sharded levels) are read in runs: the tiles of one row of shards or chunks
            (ordered) or of one shard or chunk (unordered) together, each shard one coalesced
            request and each chunk fetched and decoded once per run instead of once per tile;
            the window then counts runs, within the same bounds. The decoded chunks later runs
            need (the next planes of deep chunks, a halo's) are kept within
            ``limits.cache_bytes`` (``TileStream.chunk_cache``).
        :param ordered: yield in grid order (default; a list selection in its own order:
            ``c=[2, 0]`` yields channel 2's tiles first) or as tiles complete (fastest; remote
            sharded levels then go shard by shard, each shard read whole in one request).
        :param progress: ``progress(done, total)`` after each tile.
        """
        self._check_open()
        lvl = self.level(level)
        level_index = self.levels.index(lvl)
        if shape is not None and not isinstance(shape, Sequence | np.ndarray):
            raise TypeError(
                f"tile shape must be one int (or None) per axis, or (y, x), got {shape!r}"
            )
        if shape is not None and not all(_size_or_none(t) for t in shape):
            raise TypeError(f"tile shape must be ints or None, got {tuple(shape)}")
        if prefetch is not None and (not _size_or_none(prefetch) or prefetch < 1):
            raise ValueError(f"prefetch must be a positive integer, got {prefetch!r}")
        # numpy integers as Python ints (np.uint8 sizes overflowed in the grid's arithmetic,
        # and the prefetch engine takes ints only)
        if prefetch is not None:
            prefetch = int(prefetch)
        if shape is not None:
            shape = tuple(None if t is None else int(t) for t in shape)
        if not isinstance(ordered, bool | np.bool_):
            raise TypeError(f"ordered must be True or False, got {ordered!r}")
        check_progress(progress)
        base, picks = self._tile_region(lvl, level_index, region, axes)
        tile_shape = (
            default_tile_shape(lvl.shape, lvl.chunks, lvl.shards) if shape is None else shape
        )
        if shape is not None and len(tile_shape) == 2 and lvl.ndim > 2:
            tile_shape = (1,) * (lvl.ndim - 2) + tuple(tile_shape)
        if len(tile_shape) != lvl.ndim:
            raise ValueError(
                f"tile shape needs {lvl.ndim} values (one per axis) or 2 (y, x), got {shape}"
            )
        for i, t in enumerate(tile_shape):
            if t is not None and t < 1:
                raise ValueError(
                    f"tile shape {shape}: axis {self.axes[i]!r} must be >= 1 pixels (or None, "
                    f"the whole extent), got {t}"
                )
        for axis in picks:
            if tile_shape[axis] != 1:
                raise ValueError(
                    f"a list selection on axis {self.axes[axis]!r} needs tiles of 1 along it, "
                    f"got tile shape {tuple(tile_shape)}"
                )
        # tiles smaller than the shards of a remote level (or of compressed shards, local
        # ones too: each decompressed whole once per run) are read in runs: the tiles of one
        # shard (unordered: shard by shard) or of one row of shards (ordered: in grid order)
        # together, one coalesced request per shard instead of one per tile. Halos reach into
        # the neighbour shards: rows then, in either order (shard by shard, each neighbour's
        # halo chunks were a request apart: 116 GETs for 16 shards, against 56)
        shards = lvl.shards
        halos = halo(overlap, lvl.ndim)
        rows = ordered or any(h > 0 for h in halos)
        # tiles that share (inner) chunks: each chunk is needed by several tiles
        shared = any(h > 0 for h in halos) or any(
            t is not None and t % c for t, c in zip(tile_shape, lvl.chunks, strict=True)
        )
        # a level that reads its regions itself (a TIFF, a format plugin's source: nothing in
        # its store) is read tile by tile: the runs and batches below read the store's chunks
        # (they read the empty stand-in store's fill value: tiles of zeros)
        own_reads = type(lvl).read is not Level.read
        runs_of: tuple[int, ...] | None = None
        if own_reads:
            pass
        elif (
            shards is not None
            and lvl.reads_shards_together
            and any(t is not None and t < s for t, s in zip(tile_shape, shards, strict=True))
        ):
            runs_of = shards if not rows else (*shards[:-1], max(1, lvl.shape[-1]))
        elif (
            shards is None
            and not lvl.writable
            and any(t is not None and t < c for t, c in zip(tile_shape, lvl.chunks, strict=True))
        ):  # tiles smaller than the chunks (small tiles, or plane tiles of chunks several
            # planes deep): the same runs, of one chunk or one row of chunks, each chunk
            # fetched and decoded once per run (it was once per tile, or per batch of four
            # along x: 16 times over for the planes of chunks 16 deep)
            runs_of = lvl.chunks if not rows else (*lvl.chunks[:-1], max(1, lvl.shape[-1]))
        elif shards is not None and lvl.reads_locally and shared:
            # local shards, tiles that share inner chunks (smaller ones, plane tiles of chunks
            # several planes deep, halos): the same runs (each inner chunk decoded once per
            # stream, not once per tile)
            runs_of = lvl.chunks if not rows else (*lvl.chunks[:-1], max(1, lvl.shape[-1]))
        grid, specs = tile_grid(
            lvl.shape, base, tile_shape, overlap, block=None if rows else runs_of, picks=picks
        )
        total = math.prod(grid)
        if picks:
            across = math.prod(grid[a] for a in picks)  # 0 for an empty list
            total = total // across * math.prod(len(k) for k in picks.values()) if across else 0
        itemsize = lvl.dtype.itemsize
        limits = self.limits
        window = limits.prefetch_tiles
        if not lvl.reads_locally:  # remote: start with every request in flight (at 20-50
            # ms round trips half as many cost 5-10% of a 537 MB stream while the window grew)
            window = max(window, limits.max_requests)
        if prefetch is not None:
            window = prefetch
        tile_bytes = max(
            1,
            math.prod(min(t or n, n) for t, n in zip(tile_shape, lvl.shape, strict=True))
            * itemsize,
        )
        # more tiles ahead than twice the requests in flight hide no more latency, they only
        # hold memory; the byte bound caps the window as well
        cap = 1024 if lvl.reads_locally else 2 * limits.max_requests
        max_window = max(window, min(cap, limits.prefetch_bytes // tile_bytes))
        if prefetch is not None:
            max_window = window

        indexes = lvl.index_cache()  # each shard index is read once per stream
        in_chunks = runs_of is None and _tiles_in_chunks(
            base, tile_shape, halo(overlap, lvl.ndim), lvl.chunks
        )
        per_call = (
            1  # a run per prefetch item (or a level reading its regions itself)
            if runs_of is not None or own_reads
            else _tiles_per_call(
                lvl, prefetch, tile_bytes, limits.prefetch_bytes, in_chunks=in_chunks
            )
        )
        if per_call > 1:  # several tiles per prefetch item: the window in batches (two at
            # least: one decoded while the consumer takes the other)
            window, max_window = -(-window // per_call), -(-max_window // per_call)
            if prefetch is None:
                window = max(2, window)
                max_window = max(window, max_window)
        # runs keep the decoded (inner) chunks later runs need (a chunk several
        # planes deep read plane by plane in grid order, a halo's neighbour chunks) within
        # limits.cache_bytes, each dropped at its last use
        reuse = None
        if runs_of is not None and limits.cache_bytes > 0 and shared:
            # (tiles of whole chunks each read theirs alone: nothing to keep)
            uses = chunk_uses(lvl.shape, base, tile_shape, overlap, lvl.chunks, picks)
            chunk_bytes = math.prod(lvl.chunks) * itemsize
            reuse = ChunkReuse(limits.cache_bytes, uses, chunk_bytes, lvl.reads_locally)
        if lvl.reads_locally and (per_call > 1 or runs_of is not None):
            # one worker-thread call reads and decodes (a run: each chunk once)

            def read_batch(batch: list[TileSpec]) -> TileBatch:
                datas: list[NDArray[Any]] | None = None
                if runs_of is not None:
                    try:
                        regions = [spec.region for spec in batch]
                        datas = lvl.read_many_blocking(regions, reuse, indexes)
                    except Exception:  # noqa: BLE001 - tile by tile: those before the failing one,
                        datas = None  # then its error
                    if datas is not None:
                        return TileBatch(
                            [
                                Tile(data, spec.region, spec.index, spec.core, level_index)
                                for data, spec in zip(datas, batch, strict=True)
                            ]
                        )
                tiles: list[Tile] = []
                for spec in batch:
                    try:
                        data = lvl.read_blocking(spec.region, indexes)
                    except Exception as exc:  # noqa: BLE001 - raised after the tiles before it
                        return TileBatch(tiles, exc)
                    tiles.append(Tile(data, spec.region, spec.index, spec.core, level_index))
                return TileBatch(tiles)

            async def fetch(batch: TileWork) -> TileBatch:
                assert not isinstance(batch, tuple)  # local reads fetch no index ahead
                return await lvl.in_decode_thread(read_batch, batch)

        else:

            async def fetch(batch: TileWork) -> TileBatch:
                if isinstance(batch, tuple):  # shard indexes, loaded ahead of their tiles
                    if len(batch) == 1:
                        await lvl.load_index(batch[0], indexes)
                        return TileBatch([])
                    async with anyio.create_task_group() as tg:  # (load_index raises nothing)
                        for key in batch:
                            start_deferred(tg, lvl.load_index, key, indexes)
                    return TileBatch([])
                if runs_of is not None or per_call > 1:
                    # a run of tiles of one shard (one request for all), or tiles inside one
                    # chunk each (their chunks fetched together)
                    regions = [spec.region for spec in batch]
                    try:
                        datas = await (
                            lvl.read_many(regions, indexes, reuse)
                            if runs_of is not None
                            else lvl.read_in_chunks(regions)
                        )
                    except Exception:  # noqa: BLE001 - the tiles before the failing one first
                        return await read_singly(batch)
                    return TileBatch(
                        [
                            Tile(data, spec.region, spec.index, spec.core, level_index)
                            for data, spec in zip(datas, batch, strict=True)
                        ]
                    )
                (spec,) = batch
                data = await lvl.read(spec.region, indexes)
                return TileBatch([Tile(data, spec.region, spec.index, spec.core, level_index)])

        async def read_singly(batch: list[TileSpec]) -> TileBatch:
            """A failed run's tiles one by one: those before the failing tile, then its error
            (raised once they are consumed), as the plain path has them."""
            tiles: list[Tile] = []
            for spec in batch:
                try:
                    data = await lvl.read(spec.region, indexes)
                except Exception as exc:  # noqa: BLE001 - raised after the tiles before it
                    return TileBatch(tiles, exc)
                tiles.append(Tile(data, spec.region, spec.index, spec.core, level_index))
            return TileBatch(tiles)

        max_bytes = limits.prefetch_bytes
        if runs_of is not None:  # the window in runs of tiles (fewer, larger requests)
            # the tiles one run can hold: those of one block (a shard, or a row of shards) that
            # come one after another: all of it block by block; in grid order only the last
            # axes' (a row of shards holds the next planes too, but they come a row later)
            per_axis = [
                min(g, _spans(b, t or n))
                for g, b, t, n in zip(grid, runs_of, tile_shape, lvl.shape, strict=True)
            ]
            block_tiles = math.prod(per_axis) if not rows else _consecutive(per_axis, grid)
            run_elements = max(1, min(_RUN_BYTES, limits.prefetch_bytes // 4) // itemsize)
            per_run = max(1, min(_RUN_TILES, run_elements * itemsize // tile_bytes, block_tiles))
            if prefetch is not None:  # the caller's bound in tiles holds: two runs or more
                per_run = max(1, min(per_run, prefetch // 2))
            run_bytes = per_run * tile_bytes
            # the consumer holds the rest of the last run handed over: bound the runs ahead so
            # that both stay within prefetch_bytes
            max_bytes = max(run_bytes, limits.prefetch_bytes - run_bytes)
            if prefetch is not None:
                window = max_window = max(1, prefetch // per_run)
            else:  # as many requests as tiles would make (each run is one per shard), but only
                # the bytes they would hold, at least a round trip's worth of a fast link: big
                # runs (whole shards) go two at a time, a third absorbing jitter
                fits = max(2, max_bytes // run_bytes)
                start = max(window * tile_bytes, _RUN_BYTES // 4)
                most = max(max_window * tile_bytes, _RUN_BYTES)
                window = min(fits, window, max(2, -(-start // run_bytes)))
                max_window = min(fits, max_window, max(window + 1, -(-most // run_bytes)))

        # remote shards read in parts: each index is fetched `max_window` tiles before the
        # shard's first tile, while the tiles before it are in flight (not on its critical path)
        # (unordered runs without halos read whole shards in one request each, no index).
        # A stream that keeps chunks for later tiles (``reuse``) fetches the index of every
        # shard its tiles touch, unless each shard is one run (unordered, whole): a tile (or
        # run) needing every inner chunk of its shard read it whole, without its index and
        # past the kept chunks, once per tile or run (plane tiles of chunks 16 planes deep
        # fetched each shard 16 times; the chunks the later planes claimed stayed held)
        split = runs_of is not None and not rows and per_run < block_tiles
        index_ahead = (
            lvl.reads_shards_in_parts
            and not lvl.reads_locally
            and not lvl.writable
            and (runs_of is None or rows or (reuse is not None and split))
        )

        def index_keys(batch: list[TileSpec]) -> list[str]:
            keys = lvl.object_keys if reuse is not None else lvl.index_keys
            return [key for spec in batch for key in keys(spec.region)]

        def make(owner: TaskGroup | None) -> Prefetch[TileWork, TileBatch]:
            spec_iter = iter(specs)
            batches: Iterator[list[TileSpec]]
            if runs_of is not None:
                batches = same_object_runs(spec_iter, runs_of, per_run, run_elements)
            else:
                batches = iter(lambda: list(islice(spec_iter, per_call)), [])
            work: Iterator[TileWork] = batches
            if index_ahead:  # the keys met between two batches: one item, loaded together
                ahead = keys_ahead(batches, index_keys, max_window)
                work = _grouped(ahead)
            return start_prefetch(
                work,
                fetch,
                window=window,
                max_window=max_window,
                max_bytes=max_bytes,
                size_of=lambda batch: (
                    0 if isinstance(batch, tuple) else sum(s.size for s in batch) * itemsize
                ),
                ordered=ordered,
                owner=owner,
                can_grow=lvl.decode_idle,
            )

        return TileStream(
            make,
            self._background,
            grid=grid,
            total=total,
            progress=progress,
            tiles_per_call=per_call,
            max_bytes=limits.prefetch_bytes,
            reuse=reuse,
            level_shape=lvl.shape,
            axes=self.axes,
            level=level_index,
            calibration=self.metadata.spatial_calibration[level_index],
            overlap=halos,
            tile_shape=tuple(tile_shape),
            source=self,
        )

    def _tile_region(
        self,
        lvl: Level,
        level_index: int,
        region: Sequence[slice] | None,
        axes: dict[str, Selector],
    ) -> tuple[tuple[slice, ...], dict[int, list[int]]]:
        names = self.axes
        if region is not None:
            if (
                not isinstance(region, Sequence)
                or len(region) != lvl.ndim
                or not all(isinstance(s, slice) for s in region)
            ):
                raise ValueError(f"region must be {lvl.ndim} slices, one per axis, got {region!r}")
            if any(s.step not in (None, 1) for s in region):
                raise ValueError(f"region {tuple(region)}: tiles take step-1 slices")
            base = [
                _inside(s, n, f"region[{i}] ({names[i]!r})", level_index)
                for i, (s, n) in enumerate(zip(region, lvl.shape, strict=True))
            ]
        else:
            base = [slice(0, n) for n in lvl.shape]
        selection, pick = self._selection(lvl, axes)
        for i, sel in enumerate(selection):
            n = lvl.shape[i]
            if isinstance(sel, int):  # (inside the axis: checked by _selection)
                limit = slice(sel % n, sel % n + 1)
            elif isinstance(sel, slice) and sel != slice(None):
                if sel.step not in (None, 1):
                    raise ValueError(
                        f"tiles take step-1 slices; axis {names[i]!r} has step {sel.step} "
                        "(read() takes steps)"
                    )
                # as read() and numpy take it: clipped to the axis (``region=`` must fit)
                limit = slice(*sel.indices(n)[:2])
            else:
                continue
            start = max(base[i].start, limit.start)  # both limit the iteration
            base[i] = slice(start, max(start, min(base[i].stop, limit.stop)))
        picks: dict[int, list[int]] = {}
        if pick is not None:  # (in the caller's order, each index once)
            axis, indices = pick
            within = base[axis]
            keep = list(dict.fromkeys(v for v in indices if within.start <= v < within.stop))
            base[axis] = (
                slice(min(keep), max(keep) + 1) if keep else slice(within.start, within.start)
            )
            picks[axis] = keep
        return tuple(base), picks

    async def _background(self) -> TaskGroup:
        """The dataset's own task group (started on first use; ends with ``aclose`` or when the
        dataset is garbage-collected)."""
        self._check_open()
        return await self._tile_owner.task_group(self)

    # ---------------------------------------------------------------- writing
    @property
    def writable(self) -> bool:
        """Whether the dataset was opened (or created) with ``mode="r+"``."""
        return self.mode == "r+"

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode != "r+":
            raise ReadOnlyError(
                f"{self.url} is open read-only (mode='r'); open it with mode='r+' to write"
            )

    async def write(
        self,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
        *,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Selector,
    ) -> None:
        """Write by axis name: ``await ds.write(arr, c="DAPI", z=3, y=slice(0, 512))``.

        Axes take what :meth:`read` takes (ints drop the axis from ``data``'s expected shape,
        slices, channel labels, a list on one axis); ``data`` is broadcast to the selection's
        shape like numpy assignment and cast to the level's dtype. Partly covered chunks or
        shards are read, patched and written back, safely across processes (see
        :mod:`ngio_async.images._write`); objects left all fill value are deleted, or stored
        as such where a delete cannot be conditional (S3, GCS, Azure, memory).

        :param pyramid: also update the lower levels (of level 0; a label image's level
            ``k``: below): they are computed from the written pixels in memory while level 0
            is written (no read back; regions that are not aligned to the downsampling are
            rebuilt from the store at the end). The result
            equals ``write`` followed by ``build_pyramid(regions=...)``. ``True`` downsamples
            with the default method of :meth:`build_pyramid`; or name one (``"mean"``,
            ``"nearest"``, ``"mode"``, ``"ngio"``). Concurrent pyramid writes of disjoint regions
            keep the lower tiles they share right, in this process and across processes.
            Level ``k`` > 0 of a label image (ngio's ``set_array`` there, then
            ``consolidate()``): the coarser levels built from it as above, the finer ones
            upsampled from it over the region written (nearest), as
            ``build_pyramid(from_level=k, regions=...)``; refused for other images.
        :param axes_order: ``data``'s axes, as :meth:`read` gives them with it (default: the
            selection's axes in the image's order; ``ValueError`` as there).
        :param merge: combine ``data`` with the stored pixels (ngio's ``merge``): ``"max"``,
            ``"min"``, ``"sum"``, ``"keep_nonzero"`` (the patch where it is not 0) or
            ``f(stored, patch)``; default ``None``: ``data`` replaces them. Merges through
            one dataset object run one at a time; see :mod:`ngio_async.images._merge`. An
            unknown rule is a ``ValueError``, a function that cannot be called with two
            arguments a ``TypeError``, both before any I/O; a ``"sum"`` the data type
            cannot hold is a ``ValueError`` (ngio wraps it).
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        self._check_writable()
        if axes_order is not None:
            from ._axes_order import from_order, kept_axes

            data = from_order(data, kept_axes(self.axes, axes), axes_order)
        if merge is not None:
            from ._merge import merge_write

            return await merge_write(self, data, level, pyramid, axes, merge)
        level = self._level_index(level)
        lvl = self.levels[level]
        own = not _is_cascade(pyramid)  # a stream's cascade (pyramid=): the stream finishes it
        cascade = self._cascade(level, pyramid)
        after = None if cascade is None else partial(cascade.add, 0)
        landed = lvl.begun
        try:
            selection, pick = self._selection(lvl, axes)
            if pick is None:
                await lvl.setitem(tuple(selection), data, after)
            else:
                axis, indices = pick
                selection[axis] = slice(0, 1)
                one_shape = normalize_selection(tuple(selection), lvl.shape).shape
                at = axis - sum(1 for s in selection[:axis] if isinstance(s, int))
                full = list(one_shape)
                full[at] = len(indices)
                value = fit_data(data, tuple(full), lvl.dtype, f"level {lvl.path!r}")
                for k, i in enumerate(indices):
                    selection[axis] = slice(i, i + 1)
                    one = value[(slice(None),) * at + (slice(k, k + 1),)]
                    await lvl.setitem(tuple(selection), one, after)
        except BaseException as exc:
            if cascade is not None and own:  # the lower levels follow what level 0 got
                unsure = [self.region_of(level, **axes)] if lvl.begun != landed else []
                await cascade.settle(exc, unsure)
            raise
        if cascade is None or not own:
            self._extents.clear()  # the lowest level may have changed: scanned again
        else:
            await cascade.finish()
            await self._follow_data_windows(self.region_of(level, **axes))

    def _cascade(self, level: int, pyramid: bool | Method | None) -> Cascade | None:
        if pyramid is False or pyramid is None:
            return None
        if _is_cascade(pyramid):
            return pyramid  # type: ignore[return-value]
        if level != 0:  # a label image's finer levels upsampled from it (ngio's consolidate)
            from ._cascade import level_cascade

            return level_cascade(self, level, pyramid)
        from ._cascade import Cascade

        self._check_first_multiscale("pyramid=")
        return Cascade(self, None if pyramid is True else pyramid)

    def _check_first_multiscale(self, what: str) -> None:
        """Refuse ``what`` (pyramid building, label images) on a multiscale other than the
        group's first."""
        if self.metadata.index != 0:
            raise UnsupportedError(
                f"{what} works on the first multiscale of {self.url}; this dataset is "
                f"multiscale {self.metadata.index} ({self.metadata.name!r})"
            )

    async def write_at(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """``ds[selection] = data`` on a level (default 0) with numpy basic indexing, plus lists,
        integer arrays or boolean masks as zarr-python 3 takes them (see :meth:`Level.setitem`).

        :param pyramid: also update the lower levels, as in :meth:`write`.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("setitem", selection, data, level, pyramid)

    async def write_orthogonal(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """zarr-python's ``oindex[selection] = data`` on a level (default 0): see
        :meth:`Level.write_orthogonal`; ``pyramid`` as in :meth:`write`.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("orthogonal", selection, data, level, pyramid)

    async def write_points(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """zarr-python's ``vindex[selection] = data`` on a level (default 0): see
        :meth:`Level.write_points`; ``pyramid`` as in :meth:`write`.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("points", selection, data, level, pyramid)

    async def _write_selection(
        self,
        how: Literal["setitem", "orthogonal", "points"],
        selection: Any,
        data: ArrayLike,
        level: int | str,
        pyramid: bool | Method | None,
    ) -> None:
        self._check_writable()
        level = self._level_index(level)
        own = not _is_cascade(pyramid)  # a stream's cascade (pyramid=): the stream finishes it
        cascade = self._cascade(level, pyramid)
        after = None if cascade is None else partial(cascade.add, 0)
        lvl = self.level(level)
        if how == "points" and cascade is not None and level > 0:  # finer: its pixels alone
            _note_points(cascade, selection, lvl)
        landed = lvl.begun
        try:
            if how == "orthogonal":
                await lvl.write_orthogonal(selection, data, after)
            elif how == "points":
                await lvl.write_points(selection, data, after)
            else:
                await lvl.setitem(selection, data, after)
        except BaseException as exc:
            if cascade is not None and own:  # the lower levels follow what level 0 got
                unsure = [self._span(how, selection, lvl)] if lvl.begun != landed else []
                await cascade.settle(exc, unsure)
            raise
        if cascade is None or not own:
            self._extents.clear()  # the lowest level may have changed: scanned again
        else:
            await cascade.finish()
            await self._follow_data_windows(self._span(how, selection, lvl))

    @staticmethod
    def _span(how: str, selection: Any, lvl: Level) -> Region:
        """The box of the pixels a ``write_*`` selection covers."""
        if how == "orthogonal":
            return orthogonal_index(selection, lvl.shape).span()
        if how == "points":
            return coordinate_index(selection, lvl.shape).span()
        return selection_span(selection, lvl.shape)

    def writer(
        self,
        level: int | str = 0,
        max_pending: int | None = None,
        pyramid: bool | Method | None = False,
    ) -> AbstractAsyncContextManager[LevelWriter]:
        """A tile writer with bounded memory: ``async with ds.writer() as w: await w.write(t)``.

        ``w.write`` takes a :class:`Tile` (its core is written) or ``(region, data)`` and returns
        once the write has started; at most ``max_pending`` writes (default
        ``2 * limits.decode_threads``, at least 4) are in flight, so a fast producer waits.
        Writes to regions that do not overlap run concurrently; a write overlapping one still
        pending starts after it, so overlapping writes land in the order given (the last write
        of a pixel wins). Leaving the block waits for every pending write and raises the first
        failure. ``w``
        satisfies :class:`~ngio_async.images.TileWriter`: ``await stream(src.tiles(), f,
        out=w)``.

        :param pyramid: also build the lower levels from the written tiles, in memory, as they
            arrive (level 0; a label image's level ``k`` too, see :meth:`write`). Held bytes stay within
            ``limits.prefetch_bytes`` (what does not fit, or is not aligned, is rebuilt from
            the store when the block exits).
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._write import checked_max_pending, open_writer

        self._check_writable()
        pending = (
            max(4, 2 * self.limits.decode_threads)
            if max_pending is None
            else checked_max_pending(max_pending)  # at the call, not when the block is entered
        )
        level = self._level_index(level)
        cascade = self._cascade(level, pyramid)
        inner = open_writer(self.levels[level], pending, cascade, self.axes)
        if cascade is None:
            self._extents.clear()  # the lowest level may change: scanned again
        if cascade is None or not self._auto_windows:
            return inner

        @contextlib.asynccontextmanager
        async def following() -> AsyncIterator[LevelWriter]:
            async with inner as w:
                yield w
            await self._follow_data_windows()

        return following()

    async def build_pyramid(
        self,
        levels: int | None = None,
        method: Method | None = None,
        regions: Sequence[Sequence[Any]] | None = None,
        tile: Sequence[int | None] | None = None,
        *,
        source: Literal["previous", "level0"] = "previous",
        window: int | None = None,
        progress: Callable[[int, int], object] | None = None,
        from_level: int | str = 0,
    ) -> None:
        """Compute the lower levels from level 0, tile by tile, streaming and concurrently.

        Level ``L`` is built from level ``L - 1`` once ``L - 1`` is complete (level by level);
        at most ``window`` tiles are in progress and their source bytes stay within
        ``limits.prefetch_bytes``. Every write covers whole stored objects (no read-modify-write).
        Factors between levels come from their shapes (``downscale`` of ``create_async``).

        :param levels: the number of levels after the build; ``None``: the existing ones. More
            than exist adds levels (y/x downscaled like the last pair, 2 for a single level):
            array metadata first, then the pixels, then the group's NGFF metadata.
        :param method: ``"mean"``, ``"nearest"``, ``"mode"`` or ``"ngio"`` (the pixels ngio's
            ``Label.consolidate()`` writes: its nearest zoom, the last pixel of each 2x2 window,
            the second along each axis, where the factor divides the level; refused for
            images that are no label image, before any write); default ``"mode"`` for a label image
            (``image-label`` metadata), else ``"mean"``.
        :param regions: level-0 regions that changed (tuples of slices): only the target tiles
            depending on them are rebuilt (new levels are built whole). Processes may each
            build the regions they wrote at once: a tile depending on pixels outside them is
            rebuilt under its lock file, or put conditional on its version (one GET more).
        :param tile: target tile per axis (or ``(y, x)``), in target-level pixels, rounded up
            to whole shards (else chunks); default one shard (else chunk).
        :param source: ``"previous"`` (default) or ``"level0"`` (each level from level 0 with
            the cumulative factor: larger source reads).
        :param window: tiles in progress at once (default ``limits.prefetch_tiles``).
        :param progress: ``progress(done, total)`` after each tile.
        :param from_level: a label image's level to build every other from (ngio's
            ``consolidate()`` of a label set at that level): the coarser levels downsampled
            from it as above, the finer ones upsampled (nearest: finer pixel ``i`` takes its
            pixel ``i // f``); ``regions`` are then of its pixels. Refused for other images
            (their finer levels hold pixels no upsampling gives back) and with ``levels``.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._pyramid import build_pyramid

        self._check_writable()  # before the group document is read again
        self._check_first_multiscale("build_pyramid")
        start = self._level_index(from_level)
        if start:
            from ._upsample import build_from, check_build_from

            check_build_from(self, start, levels)
        if self.metadata.ngff_version not in ("0.4", "0.5"):  # before a level is created
            raise UnsupportedError(
                f"{self.store.url}: cannot build the pyramid of an NGFF "
                f"{self.metadata.ngff_version} image (it writes the group's metadata; "
                "ngio_async writes NGFF 0.4 and 0.5)"
            )
        async with self.structure_lock():
            await refresh_image(self)  # levels another dataset or process added since the open
            if start:
                await build_from(
                    self,
                    start,
                    method,
                    regions,
                    tile,
                    source=source,
                    window=window,
                    progress=progress,
                )
            else:
                await build_pyramid(
                    self,
                    levels,
                    method,
                    regions,
                    tile,
                    source=source,
                    window=window,
                    progress=progress,
                )
        self._extents.clear()
        await self._follow_data_windows()

    async def _follow_data_windows(self, region: Sequence[slice] | None = None) -> None:
        """Derive the display windows of the channels that follow the data (see
        :meth:`set_channels`) from the lowest level, once the pyramid is built (``region``: the
        level-0 region written; only the planes of the lowest level below it are read again
        when the others are known). The metadata is written when a window changes."""
        if not self._auto_windows:
            return
        # one at a time, scanned once the lock is held: of two writes' scans, the later one
        # saw both writes' pixels and sets the windows last (an earlier scan set them last)
        async with image_lock(self.store.url, f"{self.root}#windows"):
            omero = self.metadata.ome.omero
            auto = sorted(i for i in self._auto_windows if omero and i < len(omero.channels))
            if not auto or omero is None:
                return
            windows = followed_windows(omero, await self._data_windows(auto, region))
            if any(w is not None for w in windows):
                await self.set_channels(windows=windows)
                self._auto_windows.update(auto)  # still following the data

    async def _data_windows(
        self, channels: Sequence[int], region: Sequence[slice] | None = None
    ) -> dict[int, tuple[float, float]]:
        """Per channel in ``channels``: the (lowest, highest) value of the lowest level (NaN
        and infinities left out); a channel of one value (or none) is left out. Read tile by tile: every
        plane, or with ``region`` (level 0) those below it when the others are known."""
        from ._stream import stream

        c = self.metadata.channel_axis
        index = len(self.levels) - 1
        lowest = self.levels[index]
        axes: dict[str, Any] = {} if c is None else {self.axes[c]: list(channels)}
        planes = [i for i, a in enumerate(self.axes) if a not in ("y", "x")]
        base = [slice(0, n) for n in lowest.shape]
        if region is None or self._extents_of != tuple(channels) or not self._extents:
            self._extents.clear()
            self._extents_of = tuple(channels)
        else:
            for i in planes:  # the planes below the region (t, c, z are rarely downscaled)
                factor = self.shape[i] / max(1, lowest.shape[i])
                start = min(lowest.shape[i], int(region[i].start // factor))
                stop = min(lowest.shape[i], math.ceil(region[i].stop / factor))
                base[i] = slice(start, max(start, stop))
        seen: dict[tuple[int, ...], tuple[float, float] | None] = {}

        def extent(data: NDArray[Any]) -> tuple[float, float] | None:
            if data.dtype.kind == "c":
                return None
            if data.dtype.kind == "f":  # NaN and infinities (other tools write them) left out
                finite = np.isfinite(data)
                if not finite.all():
                    data = data[finite]
            if data.size == 0:
                return None
            return float(data.min()), float(data.max())

        async with stream(self.tiles(level=index, region=base, **axes), extent) as results:
            async for tile, value in results:
                key = tuple(tile.region[i].start for i in planes)
                now = seen.get(key, value)
                if now is not None and value is not None:
                    now = (min(now[0], value[0]), max(now[1], value[1]))
                seen[key] = now if value is not None else seen.get(key)
        self._extents.update(seen)
        found: dict[int, tuple[float, float]] = {}
        at = planes.index(c) if c is not None else None
        for key, value in self._extents.items():
            if value is None:
                continue
            channel = 0 if at is None else key[at]
            lo, hi = found.get(channel, value)
            found[channel] = (min(lo, value[0]), max(hi, value[1]))
        return {ch: (lo, hi) for ch, (lo, hi) in found.items() if hi > lo}

    def structure_lock(self) -> anyio.Lock:
        """The lock of changes to the image's levels, scales and label images (``build_pyramid``,
        ``set_scale``, ``labels.create``): each plans from what it reads, so they run one at a
        time on one dataset object."""
        if self._structure_lock is None:
            self._structure_lock = anyio.Lock()
        return self._structure_lock

    # ---------------------------------------------------------------- metadata edits
    async def set_channels(
        self,
        labels: Sequence[str | None] | None = None,
        colors: Sequence[str] | None = None,
        windows: Sequence[
            tuple[float, float] | Mapping[str, float] | Window | Literal["auto"] | None
        ]
        | Literal["auto", "percentiles"]
        | None = None,
        active: Sequence[bool] | None = None,
        *,
        percentiles: tuple[float, float] | Sequence[tuple[float, float]] = (0.1, 99.9),
        wavelength_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Set channel labels, colors (``RRGGBB``), display windows (``(start, end)`` or
        ``{min, max, start, end}``), ``active`` flags and/or ``wavelength_ids`` (the ids
        Fractal and ngio select channels by; ngio's ``set_channel_meta(wavelength_id=)``):
        one value per channel, ``None`` keeps the current ones. Creates ``omero`` if the
        image has none.

        A window ``"auto"`` (or ``windows="auto"``: every channel) takes ``start``/``end`` from
        the data (lowest and highest value of the lowest level, read tile by tile; a channel
        of one value keeps its window) and ``min``/``max`` from the data type's range; the
        channel's window then follows the data whenever the pyramid is built through this
        dataset object (as for channels created without a window), until a window is set.

        ``windows="percentiles"`` takes every channel's ``start``/``end`` from the
        ``percentiles`` (one ``(start, end)`` pair, or one per channel) of its values above
        zero in the lowest level, read tile by tile: ngio's
        ``set_channel_windows_with_percentiles``, the same numbers.

        One metadata document is rewritten; keys this library does not model are kept (the
        document is read again right before it is written).

        :raises ValueError: a list of another length than the channels (named).
        :raises TypeError: a ``labels`` or ``wavelength_ids`` item that is no string or
            ``None``.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from msgspec.structs import replace

        from ..meta import Omero, Window
        from ._create import check_unique_channels, make_channel, make_window
        from ._metadata import check_editable

        self._check_writable()
        check_editable(self.metadata, "set the channels", self.url)  # before any read
        c_axis = self.metadata.channel_axis
        size = self.shape[c_axis] if c_axis is not None else None
        from_percentiles = isinstance(windows, str) and windows == "percentiles"
        if isinstance(windows, str):
            if windows not in ("auto", "percentiles"):
                raise ValueError(
                    "windows must be 'auto', 'percentiles' or one value per channel, "
                    f"got {windows!r}"
                )
            omero = self.metadata.ome.omero
            count = size if size is not None else (len(omero.channels) if omero else 0)
            windows = [None if from_percentiles else "auto"] * count  # (None: see below)
        for name, values in (
            ("labels", labels),
            ("colors", colors),
            ("windows", windows),
            ("active", active),
            ("wavelength_ids", wavelength_ids),
        ):
            if isinstance(values, str | bytes):  # (windows="auto" is a list by now)
                # a string has a length, and would be taken as one value per letter
                raise TypeError(f"{name} must be one value per channel, got {values!r}")
            if values is not None and size is not None and len(values) != size:
                raise ValueError(f"{name}: {len(values)} values for {size} channels")
        for i, label in enumerate(() if labels is None else labels):
            if label is not None and not isinstance(label, str):  # np.str_ is a str
                raise TypeError(f"labels[{i}] must be a string or None, got {label!r}")
        for i, wid in enumerate(() if wavelength_ids is None else wavelength_ids):
            if wid is not None and (not isinstance(wid, str) or not wid):
                raise TypeError(f"wavelength_ids[{i}] must be a string or None, got {wid!r}")
        for i, color in enumerate(() if colors is None else colors):
            if not isinstance(color, str) or not _HEX_COLOR.fullmatch(color.lstrip("#")):
                raise TypeError(
                    f"colors[{i}] must be a color as hex 'RRGGBB' (or '#RRGGBB'), got {color!r}"
                )
        for i, flag in enumerate(() if active is None else active):
            if not isinstance(flag, bool | np.bool_):
                raise TypeError(f"active[{i}] must be True or False, got {flag!r}")
        if from_percentiles:  # every argument checked: now the lowest level is read
            from ._image_ops import percentile_windows

            windows = list(await percentile_windows(self, percentiles))
        new_windows = (  # checked before any I/O
            None
            if windows is None
            else [
                None
                if w is None or (isinstance(w, str) and w == "auto")
                else make_window(w, self.dtype, f"windows[{i}]")
                for i, w in enumerate(windows)
            ]
        )
        auto = [i for i, w in enumerate(windows or ()) if isinstance(w, str) and w == "auto"]
        if auto and new_windows is not None:
            base = make_window(None, self.dtype)
            self._extents.clear()  # read every plane
            for i, (lo, hi) in (await self._data_windows(auto)).items():
                new_windows[i] = Window(
                    min=min(base.min, lo), max=max(base.max, hi), start=lo, end=hi
                )

        def edit(ome: OmeMetadata) -> OmeMetadata:
            old = list(ome.omero.channels) if ome.omero is not None else []
            n = size if size is not None else len(old)
            if n == 0:
                raise ValueError(f"{self.url} has no channel axis and no channels")
            channels = []
            for i in range(n):
                base = old[i] if i < len(old) else make_channel({}, i, self.dtype)
                changes: dict[str, Any] = {}
                if labels is not None:
                    changes["label"] = None if labels[i] is None else str(labels[i])
                if colors is not None:
                    changes["color"] = colors[i].lstrip("#").upper()
                if new_windows is not None and new_windows[i] is not None:
                    changes["window"] = new_windows[i]
                if active is not None:
                    changes["active"] = bool(active[i])
                channel = _with_extra(replace(base, **changes), base)
                if wavelength_ids is not None and wavelength_ids[i] is not None:
                    channel.extra["wavelength_id"] = str(wavelength_ids[i])
                channels.append(channel)
            given = [
                k
                for k, v in (("label", labels), ("wavelength_id", wavelength_ids))
                if v is not None
            ]
            # (only what is given: duplicates another tool wrote are not ours to refuse)
            check_unique_channels(channels, f"set_channels on {self.url}", given)
            omero = (
                _with_extra(replace(ome.omero, channels=channels), ome.omero)
                if ome.omero is not None
                else Omero(channels=channels)
            )
            return _with_extra(replace(ome, omero=omero), ome)

        await self._edit_metadata(edit)
        for i, w in enumerate(windows or ()):
            if isinstance(w, str) and w == "auto":
                self._auto_windows.add(i)
            elif w is not None:
                self._auto_windows.discard(i)  # a window set: never overridden

    async def set_name(self, name: str) -> None:
        """Set the image's ``name`` in its multiscale metadata (ngio's ``set_name``; no path
        changes). One metadata edit.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._meta_edits import set_name

        await set_name(self, name)

    async def set_axes_names(
        self, names: Sequence[str] | Mapping[str, str], *, labels: bool = True
    ) -> None:
        """Rename the axes (ngio's ``set_axes_names``): one name per axis, or a mapping old ->
        new; types and units stay. NGFF 0.5 levels get the new ``dimension_names`` first.
        ``labels``: label images rename the axes they share with the image.

        :raises ValueError: names not unique, or breaking an NGFF axis rule (before any write).
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._meta_edits import set_axes_names

        await set_axes_names(self, names, labels=labels)

    def image_roi(self, name: str = "image") -> Roi:
        """The ROI covering the whole image (ngio's ``build_image_roi_table``: x, y, z in
        the image's units from its origin, and the time when it has a ``t`` axis), for
        ``await ds.tables.write_rois("image_ROI_table", [ds.image_roi()])``."""
        from ._image_ops import image_roi

        return image_roi(self, name)

    async def set_scale(
        self,
        scale: float | Sequence[float] | Mapping[str, float] | None = None,
        *,
        units: str | Sequence[str | None] | Mapping[str, str] | None = None,
        translation: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        """Set the level-0 pixel size (a number for every space axis, one value per axis, or a
        mapping axis -> value; lower levels keep their ratios to level 0, and their offsets
        from level 0's translation scale with them), the axis ``units``
        (one for the space axes, one per axis, or a mapping) and/or the ``translation`` of every
        level (per axis or a mapping). ``None`` keeps the current value.

        One metadata document is rewritten; keys this library does not model are kept. Label
        images follow the image (their level-0 pixel size by the same ratio, units and
        translation); when one of their documents cannot be written, the documents already
        rewritten are put back as they were (best effort) and the error raised, so that the
        call can simply be made again.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._set_scale(scale, units=units, translation=translation)

    async def _set_scale(
        self,
        scale: float | Sequence[float] | Mapping[str, float] | None = None,
        *,
        units: str | Sequence[str | None] | Mapping[str, str] | None = None,
        translation: Sequence[float] | Mapping[str, float] | None = None,
    ) -> Multiscale:
        """:meth:`set_scale`; returns the multiscale as it was before (for an undo)."""
        from msgspec.structs import replace

        from ..meta import Scale, Translation
        from ._create import _per_axis, _units, is_scalar

        self._check_writable()
        names = self.axes
        # every value checked (finite; scales > 0; known axes) before any I/O
        scale_in = None if scale is None else _per_axis(scale, names, 1.0, "scale", positive=True)
        trans_in = (
            None if translation is None else _per_axis(translation, names, 0.0, "translation")
        )
        units_in = None if units is None else _units(units, names)
        applied: dict[str, float] = {}  # new / old level-0 pixel size per axis, as written
        before: list[Multiscale] = []  # the multiscale as the edit that was written read it

        def edit(ome: OmeMetadata) -> OmeMetadata:
            assert ome.multiscales is not None
            index = self.metadata.index
            ms = ome.multiscales[index]
            before[:] = [ms]
            current = ImageMetadata(ome, index).spatial_calibration
            datasets = list(ms.datasets)
            if scale_in is not None:
                new0 = scale_in
                if is_scalar(scale):  # a number: space axes only
                    new0 = [
                        v if a.type == "space" else c
                        for v, a, c in zip(new0, ms.axes, current[0].scale, strict=True)
                    ]
                elif isinstance(scale, Mapping):
                    new0 = [
                        v if a in scale else c
                        for v, a, c in zip(new0, names, current[0].scale, strict=True)
                    ]
                ratio = [n / o for n, o in zip(new0, current[0].scale, strict=True)]
                applied.update(zip(names, ratio, strict=True))
                t0 = current[0].translation
                for i, d in enumerate(datasets):
                    if d.scale is None:
                        raise UnsupportedError(f"level {d.path!r}: scale stored by path")
                    s = [v * r for v, r in zip(d.scale, ratio, strict=True)]
                    ts = []
                    for t in d.coordinate_transformations:
                        if isinstance(t, Scale):
                            t = _with_extra(replace(t, scale=s), t)
                        elif (
                            isinstance(t, Translation)
                            and t.translation is not None
                            and trans_in is None
                        ):  # a level's offset from level 0 (half a pixel, say) scales too
                            moved = [
                                a + (v - a) * r
                                for v, a, r in zip(t.translation, t0, ratio, strict=True)
                            ]
                            t = _with_extra(replace(t, translation=moved), t)
                        ts.append(t)
                    datasets[i] = _with_extra(replace(d, coordinate_transformations=ts), d)
            if trans_in is not None:
                if ms.coordinate_transformations is not None:
                    raise UnsupportedError(
                        "cannot set the translation of a multiscale with its own transforms"
                    )
                tr = trans_in
                if isinstance(translation, Mapping):
                    tr = [
                        v if a in translation else c
                        for v, a, c in zip(tr, names, current[0].translation, strict=True)
                    ]
                for i, d in enumerate(datasets):
                    ts = [t for t in d.coordinate_transformations if not isinstance(t, Translation)]
                    ts.append(Translation(translation=list(tr)))
                    datasets[i] = _with_extra(replace(d, coordinate_transformations=ts), d)
            axes = list(ms.axes)
            if units_in is not None:
                unit_list = units_in
                if isinstance(units, str):
                    unit_list = [
                        u if a.type == "space" else a.unit
                        for u, a in zip(unit_list, axes, strict=True)
                    ]
                elif isinstance(units, Mapping):
                    unit_list = [units.get(a.name, a.unit) for a in axes]
                axes = [
                    _with_extra(replace(a, unit=u), a) for a, u in zip(axes, unit_list, strict=True)
                ]
            new_ms = _with_extra(replace(ms, datasets=datasets, axes=axes), ms)
            multiscales = list(ome.multiscales)
            multiscales[index] = new_ms
            return _with_extra(replace(ome, multiscales=multiscales), ome)

        async with self.structure_lock():
            await self._edit_metadata(edit)
            await self._sync_calibration()
            if self.metadata.ome.image_label is None and self.metadata.index == 0:
                # label images follow their image (its first multiscale)
                ratio = applied if scale_in is not None else None
                try:
                    await self._calibrate_labels(ratio, units_in is not None, trans_in)
                except BaseException as exc:
                    # a retry derives the labels' scale from the image's: put it back
                    await _undo(exc, self.store.url, self._restore_multiscale(before[0]))
                    raise
        return before[0]

    async def _sync_calibration(self) -> None:
        """The levels' scale and translation from the metadata just written."""
        paths = [join(self.root, p) for p in self.metadata.paths]
        if [lvl.path for lvl in self.levels] != paths:
            await refresh_image(self)  # another dataset or process changed the levels
        for lvl, cal in zip(self.levels, self.metadata.spatial_calibration, strict=True):
            lvl.scale = cal.scale
            lvl.translation = cal.translation

    async def _restore_multiscale(self, old: Multiscale) -> None:
        """Put back the levels' transformations and the axes of ``old`` (what
        :meth:`_set_scale` changed), leaving the rest of the document as it is now."""
        from msgspec.structs import replace

        def edit(ome: OmeMetadata) -> OmeMetadata:
            assert ome.multiscales is not None
            multiscales = list(ome.multiscales)
            ms = multiscales[self.metadata.index]
            if [d.path for d in ms.datasets] != [d.path for d in old.datasets]:
                raise ChangedError(f"{self.store.url}: the levels changed meanwhile")
            multiscales[self.metadata.index] = _with_extra(
                replace(ms, datasets=old.datasets, axes=old.axes), ms
            )
            return _with_extra(replace(ome, multiscales=multiscales), ome)

        await self._edit_metadata(edit)
        await self._sync_calibration()

    async def _calibrate_labels(
        self, ratio: dict[str, float] | None, units: bool, translation: Any
    ) -> None:
        """Scale every label image's level-0 pixel size by ``ratio`` (the image's new / old
        one per axis: a label stored at another resolution stays aligned) and give it this
        image's units and/or translation, on the axes they share (their lower levels keep
        their own ratios)."""
        cal = self.metadata.spatial_calibration[0]
        done: list[tuple[str, Multiscale]] = []  # label images rewritten, as they were
        try:
            for name in await self.labels.names():
                label = await self.labels.open(name, mode="r+")
                try:
                    shared = [a for a in label.axes if a in self.axes]
                    own = label.metadata.spatial_calibration[0]
                    unit_of: dict[str, str] = {}
                    for a in shared:
                        unit = cal[a].unit
                        if unit is not None:
                            unit_of[a] = unit
                    old = await label._set_scale(
                        {a: own[a].scale * ratio[a] for a in shared} if ratio else None,
                        units=unit_of if units and unit_of else None,
                        translation={a: cal[a].translation for a in shared}
                        if translation is not None
                        else None,
                    )
                    done.append((name, old))
                finally:
                    await label.aclose()
        except BaseException as exc:
            for name, old in reversed(done):
                await _undo(exc, f"{self.store.url}/labels/{name}", self._restore_label(name, old))
            raise

    async def _restore_label(self, name: str, old: Multiscale) -> None:
        label = await self.labels.open(name, mode="r+")
        try:
            await label._restore_multiscale(old)
        finally:
            await label.aclose()

    async def _edit_metadata(self, edit: Any) -> None:
        """Re-read the group document, apply ``edit`` to its NGFF model, write it back (once).

        An invalid ``omero`` block (the image opened without it) or ``image-label`` block (its
        colors / properties opened mended) is kept untouched by edits that leave it alone and
        replaced, with a ``MetadataWarning``, by those that set it."""
        import warnings

        from ..meta import MetadataWarning, read_document, to_attrs, validate, write_document
        from ._create import metadata_lock, update_consolidated

        version = self.metadata.ngff_version
        if version not in ("0.4", "0.5"):  # 0.6 is read, not written: never rewrite it as 0.5
            raise UnsupportedError(
                f"{self.store.url}: cannot edit the metadata of an NGFF {version} image "
                "(ngio_async writes NGFF 0.4 and 0.5; convert it to 0.5 to edit it)"
            )
        if self._meta_lock is None:
            self._meta_lock = anyio.Lock()
        v3 = self.metadata.ngff_version != "0.4"
        key = join(self.root, "zarr.json" if v3 else ".zattrs")
        # the last run's validated metadata, warnings to show, and whether it changed anything
        result: list[Any] = []

        async def edited(raw: Any) -> bytes:
            # a compare-and-swap edit (store.update): it may run again on what another
            # process wrote meanwhile, so it depends on ``raw`` alone
            if raw is None:
                raise NotFoundError(f"{self.store.url}/{key} is gone", url=self.store.url, key=key)
            doc: dict[str, Any] = read_document(raw)
            attrs: dict[str, Any] = doc.get("attributes", {}) if v3 else doc
            with warnings.catch_warnings(record=True) as before:  # shown at open already
                warnings.simplefilter("always", MetadataWarning)
                current, bad = _lenient(attrs)
            ome = edit(current)
            new_attrs = to_attrs(ome, "0.5" if v3 else "0.4")
            with warnings.catch_warnings(record=True) as after:
                warnings.simplefilter("always", MetadataWarning)
                checked = validate(new_attrs)  # never write a document that does not validate
            seen = {str(w.message) for w in before}
            # what the edit brings in (other warnings pass through)
            shown = [
                (w.message, w.category)
                for w in after
                if not issubclass(w.category, MetadataWarning) or str(w.message) not in seen
            ]
            for block, stored, rule in bad:
                attr = block.replace("-", "_")
                if getattr(ome, attr) == getattr(current, attr):  # not an edit: kept untouched
                    (new_attrs["ome"] if v3 else new_attrs)[block] = stored
                else:
                    message = (
                        f"{self.store.url}/{key}: replaced the invalid '{block}' block ({rule})"
                    )
                    shown.append((message, MetadataWarning))
            # (models compare without the keys they do not model: a wavelength_id edit)
            unchanged = (
                ome == current
                and not bad
                and new_attrs == to_attrs(current, "0.5" if v3 else "0.4")
            )
            result[:] = [checked, shown, not unchanged]
            if unchanged:  # an edit that changes nothing writes nothing: the document stays
                return bytes(raw)  # as stored, byte for byte (another tool's layout too)
            if v3:
                doc["attributes"] = {**attrs, **new_attrs}
            else:
                ngff = ("multiscales", "omero", "image-label", "labels", "plate", "well")
                doc = {k: v for k, v in doc.items() if k not in ngff} | new_attrs
            return write_document(doc)

        async with self._meta_lock, metadata_lock(self.store):
            data = await self.store.update(key, edited)  # other processes' edits are kept
            checked, shown, changed = result
            for message, category in shown:
                warnings.warn(message, category, stacklevel=3)
            if data is not None and changed:
                await update_consolidated(
                    self.store, [(key, bytes(data))], locked=True, shared=[key]
                )
            self.metadata = ImageMetadata(checked, self.metadata.index)

    def region_of(self, level: int | str = 0, **axes: Selector) -> tuple[slice, ...]:
        """The level region (one step-1 slice per axis) a named selection covers."""
        lvl = self.level(level)
        selection, pick = self._selection(lvl, axes)
        if pick is not None:
            axis, indices = pick  # an empty list covers nothing along its axis
            selection[axis] = slice(min(indices), max(indices) + 1) if indices else slice(0, 0)
        return normalize_selection(tuple(selection), lvl.shape).region

    # ---------------------------------------------------------------- world coordinates
    def world_region(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        **axes: Any,
    ) -> tuple[Any, ...]:
        """The level selection (one entry per axis) of a box in world coordinates.

        Space and time axes take ``(start, stop)`` (the half-open world range: a slice of
        every pixel it overlaps, clipped to the image) or a number (the index of the pixel
        holding it: the axis is dropped, as an int in :meth:`read`); other axes take what
        :meth:`read` takes; axes not named are whole. Pixel ``i`` covers ``[translation +
        i*scale, translation + (i+1)*scale)`` (see :mod:`ngio_async.images._world`).

        :param unit: the unit of the values (``"micrometer"``, ``"nanometer"``, ``"second"``,
            ...; or a mapping axis -> unit), converted to each axis's stored unit; ``None``:
            as stored.
        :param origin: ``"image"``: coordinates from the level's first pixel corner, the
            translation ignored (ngio's and Fractal ROI tables' rule).
        :param system: NGFF 0.6: the coordinate system the values are in, named as the
            multiscale names it (axes too take its names); ``None``: the intrinsic one. It
            must be linked to the intrinsic one by an identity, scale, translation, mapAxis or
            a sequence of them (``UnsupportedError`` names any other transformation type).
        :raises IndexError: a range or point wholly outside the image (names the axis, the
            range and the image's world extent there).
        :raises ValueError: a non-finite, empty or reversed range, a unit the axis's unit
            cannot be converted from.
        """
        lvl = self.level(level)
        index = self.levels.index(lvl)
        cal = self._world_calibration(index, system)
        names = tuple(a.name for a in cal.axes)  # the system's (else the image's) names
        absent = absent_axes(axes, names)
        axes = {k: v for k, v in axes.items() if k not in absent}
        world = world_selection(cal, lvl.shape, axes, unit, index, origin=origin)
        other = {
            self.axes[names.index(k)] if k in names else k: v
            for k, v in axes.items()
            if k not in names or names.index(k) not in world
        }
        selection, pick = self._selection(lvl, other)
        for i, s in world.items():
            selection[i] = s
        for i, s in enumerate(selection):
            if isinstance(s, int):
                selection[i] = s % lvl.shape[i]
            elif s == slice(None):
                selection[i] = slice(0, lvl.shape[i])
        if pick is not None:
            selection[pick[0]] = list(pick[1])
        return tuple(selection)

    def world_extent(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
    ) -> dict[str, tuple[float, float]]:
        """Per space and time axis: the world interval ``(start, stop)`` a level covers, in
        the stored unit (``unit``: in that one); ``system``: in that NGFF 0.6 coordinate
        system (see :meth:`world_region`)."""
        index = self._level_index(level)
        cal = self._world_calibration(index, system)
        return extent(cal, self.levels[index].shape, unit, index, origin)

    def _world_calibration(self, index: int, system: str | None) -> LevelCalibration:
        """Level ``index``'s calibration in coordinate system ``system`` (``None``: as read)."""
        if system is None:
            return self.metadata.spatial_calibration[index]
        cals = self.metadata.spatial_calibration
        return system_calibration(self.metadata.ngff06, cals, system, self.url)[index]

    def level_for(
        self,
        pixel_size: float | Sequence[float],
        unit: str | None = None,
        *,
        not_coarser: bool = False,
        exact: bool = False,
    ) -> int:
        """The index of the level whose y/x pixel size is nearest ``pixel_size`` (in ``unit``;
        ``None``: as stored), as ngio's ``get_image(pixel_size=...)`` (the Euclidean distance
        over y and x; a tie goes to the finer level); ``not_coarser=True``: the coarsest level
        whose pixels are at most that size (``ValueError`` when none is); ``exact=True``: a
        level of exactly that size (ngio's ``strict=True``; ``ValueError`` naming the nearest)."""
        return world_level_for(
            self.metadata.spatial_calibration,
            pixel_size,
            unit,
            not_coarser=not_coarser,
            exact=exact,
        )

    async def read_world(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> NDArray[Any]:
        """Read a box in world coordinates: ``await ds.read_world(c="DAPI", y=(40, 70),
        x=(105.5, 125.5), unit="micrometer")``; the pixels of :meth:`world_region`, axes
        dropped as :meth:`read` drops them (``system``: see there; ``axes_order``: see
        :meth:`read`)."""
        self._check_open()
        region = self.world_region(level, unit=unit, origin=origin, system=system, **axes)
        data = await self.level(level).getitem(region)
        if axes_order is None:
            return data
        from ._axes_order import kept_by_region, to_order

        return to_order(data, kept_by_region(self.axes, region), axes_order)

    async def write_world(
        self,
        data: ArrayLike,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        pyramid: bool | Method | None = False,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write a box in world coordinates (see :meth:`read_world`, :meth:`write`): each
        range must lie inside the image with its bounds on pixel edges of the level (within
        1/100 pixel), so ``data`` fills whole pixels; ``ValueError`` / ``IndexError`` name the
        axis otherwise. ``axes_order``, ``merge`` and ``pyramid``: as :meth:`write`."""
        self._check_writable()
        lvl = self.level(level)
        index = self.levels.index(lvl)
        cal = self.metadata.spatial_calibration[index]
        whole = {k: v for k, v in axes.items() if k not in absent_axes(axes, self.axes)}
        world_selection(cal, lvl.shape, whole, unit, index, origin=origin, whole=True)
        region = self.world_region(level, unit=unit, origin=origin, **axes)
        named = dict(zip(self.axes, region, strict=True))
        await self.write(data, level, pyramid, axes_order=axes_order, merge=merge, **named)

    def channel_index(self, label: str | None = None, *, wavelength_id: str | None = None) -> int:
        """The index of the channel labelled ``label``, or whose omero ``wavelength_id`` (as
        Fractal writes it) is that: ``ds.read(c=ds.channel_index(wavelength_id="A01_C01"))``
        (ngio's ``get_channel_idx``); ``KeyError`` lists the channels."""
        from ._channel_select import channel_index

        return channel_index(self, label, wavelength_id)

    # ---------------------------------------------------------------- ROIs (ngio's idiom)
    def masked(
        self,
        label: str | None = None,
        *,
        table: str | None = None,
        level: int | str = 0,
        of: str | None = None,
    ) -> _Opening[MaskedImage]:
        """The image masked by label image ``label``, object by object (ngio's
        ``get_masked_image``): ``async with ds.masked("nuclei") as m: await m.read(7,
        masked=True)``. ``table``: the masking ROI table (default: the first whose region is
        ``label``; none: the boxes are computed from the label image, as ngio does); ``of``:
        a label image of this one to mask instead (ngio's ``get_masked_label``). See
        :class:`~ngio_async.images.MaskedImage`."""
        from ._rois import open_masked

        return _Opening(lambda: open_masked(self, label, table, level, of))

    async def masking_rois(self, level: int | str = 0) -> list[Roi]:
        """On a label image: one ``Roi`` per object (non-zero value), its bounding box in
        the image's units from its corner, as ngio's ``build_masking_roi_table`` (read tile
        by tile); ``ds.tables.write_rois(name, rois, label=...)`` stores them."""
        from ._rois import masking_rois

        self._check_open()
        return await masking_rois(self, level)

    async def read_roi(
        self,
        roi: Roi,
        level: int | str = 0,
        *,
        label: Dataset | str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> RoiRead:
        """Read one ROI (a ``Roi`` of ``ds.tables.rois(name)``; ngio's ``get_roi``): ``r.data``,
        ``r.region``, and ``r.labels`` of ``label`` (an open label image, or the name of one
        of this image's) on the same grid (``axes_order``: both so, see :meth:`read`)."""
        from ._rois import read_roi

        self._check_open()
        if isinstance(label, str):
            async with self.labels.open(label) as lab:
                read = await read_roi(self, roi, level, lab, **axes)
        else:
            read = await read_roi(self, roi, level, label, **axes)
        if axes_order is None:
            return read
        from ._axes_order import roi_read_in_order

        return roi_read_in_order(read, self.axes, axes_order)

    async def write_roi(
        self,
        roi: Roi,
        data: ArrayLike,
        level: int | str = 0,
        *,
        pyramid: bool | Method | None = False,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write ``data`` to the pixels :meth:`read_roi` reads for ``roi`` (ngio's ``set_roi``:
        a segmentation of a FOV into its label image); see :meth:`write` (``axes_order``:
        ``data``'s axes, as :meth:`read_roi` gives them with it; ``merge``: as there)."""
        from ._rois import write_roi

        self._check_writable()
        if axes_order is not None:
            from ._axes_order import roi_data_from_order

            data = roi_data_from_order(self, roi, data, level, axes, axes_order)
        if merge is not None:
            from ._merge import merge_write_roi

            return await merge_write_roi(self, roi, data, level, pyramid, axes, merge)
        await write_roi(self, roi, data, level, pyramid, **axes)

    def read_rois(
        self,
        rois: str | Sequence[Roi],
        level: int | str = 0,
        *,
        label: Dataset | str | None = None,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
        **axes: Any,
    ) -> RoiStream:
        """``async for r in ds.read_rois("FOV_ROI_table")``: each ROI of a table (a name, or
        ``Roi`` values) read at ``level`` ahead of the consumer, as ``r.roi``, ``r.data``
        (and ``r.labels`` of ``label``, an open label image or the name of one of this
        image's, on the same grid); ``axes``
        select other axes (``c="DAPI"``); ``planes=("z",)``: each ROI plane by plane, the axis
        dropped (ngio's ``by_yx``); ``axes_order``: ``r.data`` and ``r.labels`` in that
        order (see :meth:`read`; ``stream(..., out=...)`` takes results in it too, as ngio's
        iterators' ``axes_order``); ``halo={"y": 16, "x": 16}``: each box grown by that many
        pixels of the level per axis, clipped at its edges (ngio's ``with_halo``):
        ``r.region`` is the grown box, ``r.core`` the ROI's own (``r.core_data``,
        ``r.crop(a)``), and ``stream(..., out=...)`` writes only the ROI's own box of each
        result (into another image than this one: ``out`` this image is refused). ``halo``
        default ``None`` (none); an axis not of the image, not space or time, or a count
        that is not an int >= 0 is a ``ValueError``. See :class:`~ngio_async.images.RoiStream`."""
        from ._rois import RoiStream

        self._check_open()
        return RoiStream(
            self,
            rois,
            level,
            label,
            axes,
            prefetch=prefetch,
            ordered=ordered,
            planes=planes,
            axes_order=axes_order,
            halo=halo,
        )


def _note_points(cascade: Cascade, selection: Any, lvl: Level) -> None:
    """Tell a level cascade (a write above level 0) the points written: the finer levels
    follow those pixels alone (a masked write leaves the rest of its box as stored)."""
    from ._cascade import LevelCascade

    if not isinstance(cascade, LevelCascade):
        return
    span = coordinate_index(selection, lvl.shape).span()
    points = np.broadcast_arrays(*(np.asarray(p) for p in selection))
    mask = np.zeros(tuple(s.stop - s.start for s in span), dtype=bool)
    mask[tuple(p % n - s.start for p, n, s in zip(points, lvl.shape, span, strict=True))] = True
    cascade.note(span, mask)


def _is_cascade(pyramid: object) -> bool:
    """Whether ``pyramid`` is a :class:`Cascade` (a stream's, fed by each of its writes)."""
    from ._cascade import Cascade

    return isinstance(pyramid, Cascade)


def _lenient(attrs: dict[str, Any]) -> tuple[OmeMetadata, list[tuple[str, Any, str]]]:
    """The validated model of group ``attrs``; when only its display metadata breaks rules
    (``omero``, ``image-label`` colors / properties: the image opened without or with them
    mended), the model of the mended document. And per block mended: (its key, the block as
    stored, the rule it breaks)."""
    from ..meta import validate
    from ._open import lenient_doc

    bad: list[tuple[str, Any, str]] = []
    doc: dict[str, Any] = attrs
    while True:
        try:
            return validate(doc), bad
        except MetadataError as exc:
            lenient = lenient_doc(doc, exc.path)
            if lenient is None:
                raise
            doc, block, _ = lenient
            if block not in (b for b, _, _ in bad):
                bad.append((block, attrs.get("ome", attrs)[block], f"{exc.rule} - at `{exc.path}`"))


def open_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    mode: Mode = "r",
    multiscale: int | str = 0,
    **store_options: Any,
) -> _Opening[Dataset]:
    """Open an OME-Zarr image: ``ds = await open_async(url)`` or ``async with open_async(url) as ds``.

    :param url: a path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``az://``, ``http(s)://``
        URL, an obstore store or an :class:`~ngio_async.stores.AsyncStore`.
    :param limits: concurrency, prefetch, timeout and retry bounds (:class:`~ngio_async.Limits`).
        With an open store the requests keep the store's own (``max_requests``, ``timeout``,
        retries, ``coalesce_gap``: given to ``open_store``); ``limits`` sets the dataset's
        (prefetch, caches, ``decode_threads``).
    :param path: the image's path inside the store (default: the URL is the image).
    :param mode: ``"r"`` (default: read-only; writes raise :class:`~ngio_async.ReadOnlyError`)
        or ``"r+"`` (read and write pixels and metadata).
    :param multiscale: which multiscale of a group holding several: its index or its ``name``
        (default ``0``, the first). An unknown one raises an error listing those there are.
        ``build_pyramid`` and ``pyramid=`` writes build the first one only.
    :param store_options: backend options (S3 ``endpoint``, ``region``, credentials, ...) of
        a URL; with an open store they raise ``ValueError`` (give them to ``open_store``).
    Only metadata is read: for NGFF 0.5 one GET for the group and one per level, concurrently
    (read-only opens of a group whose ``zarr.json`` consolidates its levels: that one GET).
    """
    _check_multiscale(multiscale)
    return open_node(
        partial(Dataset.open_in, multiscale=multiscale), url, limits, path, mode, store_options
    )


def followed_windows(omero: Omero, found: Mapping[int, tuple[float, float]]) -> list[Window | None]:
    """Per channel of ``omero``: its display window following the data, ``found``
    (channel -> lowest, highest value; see ``Dataset._data_windows``), or ``None`` where that
    changes nothing. ``min``/``max`` widen to hold the data."""
    from msgspec.structs import replace

    windows: list[Window | None] = [None] * len(omero.channels)
    for i, (lo, hi) in found.items():
        old = omero.channels[i].window
        if (old.start, old.end) != (lo, hi):
            windows[i] = replace(old, min=min(old.min, lo), max=max(old.max, hi), start=lo, end=hi)
    return windows


async def _undo(exc: BaseException, where: str, undo: Coroutine[Any, Any, None]) -> None:
    """Run ``undo`` (shielded) while ``exc`` propagates; a failing undo is noted on ``exc``."""
    with anyio.CancelScope(shield=True):
        try:
            await undo
        except Exception as failed:  # noqa: BLE001 - the first error is the one raised
            exc.add_note(f"{where}: could not be put back as it was ({failed!r})")


_HEX_COLOR = re.compile(r"[0-9A-Fa-f]{6}")


def _with_extra(new: _S, old: object) -> _S:
    """``new`` (a ``msgspec.structs.replace`` of ``old``) with ``old``'s unknown keys kept."""
    extra = old.__dict__.get("_extra")
    if extra:
        new.__dict__["_extra"] = dict(extra)
    return new


def check_progress(progress: object) -> None:
    """Refuse a ``progress=`` that is not a ``progress(done, total)`` callable (the blocking
    API checks it too, before wrapping it)."""
    from ..progress import rich_progress

    if progress is rich_progress or (
        progress is not None and hasattr(progress, "__enter__")  # rich_progress() itself
    ):
        raise TypeError(
            "progress must be a callable progress(done, total), not a context manager: "
            "use `with rich_progress() as bar: ds.tiles(progress=bar)`"
        )
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total), got {progress!r}")
    if inspect.iscoroutinefunction(progress):  # called, never awaited: it would never run
        raise TypeError(
            f"progress must be a plain function progress(done, total), got {progress!r} (an "
            "async function: it is called after each tile, never awaited)"
        )


def _size_or_none(value: object) -> bool:
    return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _inside(s: slice, n: int, what: str, level: int) -> slice:
    """The step-1 slice ``s`` of an axis of ``n`` pixels as ``slice(start, stop)`` (negative
    values count from the end, ``None`` is the edge); reaching outside the axis is an error."""
    start = 0 if s.start is None else operator.index(s.start)
    stop = n if s.stop is None else operator.index(s.stop)
    lo, hi = start + n if start < 0 else start, stop + n if stop < 0 else stop
    if not (0 <= lo <= n and 0 <= hi <= n):
        raise IndexError(
            f"{what} {start}:{stop} reaches outside level {level}, which has {n} pixels there"
        )
    return slice(lo, max(lo, hi))


def _in_bounds(axis: str, index: int, size: int, level: int) -> int:
    """``index`` if it is one of an axis of ``size`` (negative: from the end) of level
    ``level``; else an ``IndexError`` naming the axis."""
    if not -size <= index < size:
        raise IndexError(
            f"axis {axis!r}: index {index} is out of bounds for level {level} (size {size})"
        )
    return index


def _index(axis: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"axis {axis!r}: list items must be ints or channel labels, got {value!r}")
    return int(value)
