"""``_DatasetTiles``: ``Dataset.tiles()``, the tile stream of a level (runs, batches and the
prefetch window sized for the store), and the checks of its arguments."""

from __future__ import annotations

import inspect
import math
import numbers
import operator
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from .._prefetch import prefetch as start_prefetch, reserve_decoded, start_deferred
from ..engine import chunk_uses, default_tile_shape, halo, keys_ahead, same_object_runs, tile_grid
from ._dataset_base import Selector, _DatasetBase
from ._level import Level
from ._reuse import ChunkReuse
from ._tile_pool import pool_for
from ._tiles import Tile, TileBatch, TileStream, TileWork

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from numpy.typing import NDArray

    from .._prefetch import Prefetch, ProgressCallback
    from ..engine import TileSpec

__all__ = ["check_progress"]

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


class _DatasetTiles(_DatasetBase):
    """:meth:`tiles` of a :class:`Dataset`."""

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
            ``c=[2, 0]`` yields channel 2's tiles first) or as tiles complete (remote sharded
            levels then go shard by shard, each shard read whole in one request). Either way
            the runs of tiles of remote sharded levels are fetched ahead while earlier ones
            decode or wait for the consumer: their bodies held, for at most another
            ``limits.prefetch_bytes`` of their tiles (not where runs share chunks through
            ``TileStream.chunk_cache``).
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
        # big tiles are decoded into the arrays of earlier ones the consumer dropped, at most
        # the window's worth kept free (Limits.reuse_tile_arrays; a level reading its regions
        # itself makes its own arrays)
        keep = min(limits.prefetch_tiles if prefetch is None else prefetch, max_window * per_call)
        keep = max(1, min(keep, limits.prefetch_bytes // tile_bytes))
        pool = None
        if not own_reads:  # (the arrays of the dataset's ended streams taken again too)
            pool = pool_for(keep, tile_bytes, limits.reuse_tile_arrays, self, limits.prefetch_bytes)
        pooled: dict[str, Any] = {} if pool is None else {"pool": pool}  # (when one is used)
        if lvl.reads_locally and (per_call > 1 or runs_of is not None):
            # one worker-thread call reads and decodes (a run: each chunk once)

            def read_batch(batch: list[TileSpec]) -> TileBatch:
                datas: list[NDArray[Any]] | None = None
                if runs_of is not None:
                    try:
                        regions = [spec.region for spec in batch]
                        datas = lvl.read_many_blocking(regions, reuse, indexes, **pooled)
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
                        data = lvl.read_blocking(spec.region, indexes, **pooled)
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
                            lvl.read_many(regions, indexes, read_reuse, **pooled)
                            if runs_of is not None
                            else lvl.read_in_chunks(regions, **pooled)
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
                data = await lvl.read(spec.region, indexes, **pooled)
                return TileBatch([Tile(data, spec.region, spec.index, spec.core, level_index)])

        async def read_singly(batch: list[TileSpec]) -> TileBatch:
            """A failed run's tiles one by one: those before the failing tile, then its error
            (raised once they are consumed), as the plain path has them."""
            await reserve_decoded()  # (a run fetched ahead: its bytes before its tiles)
            tiles: list[Tile] = []
            for spec in batch:
                try:
                    data = await lvl.read(spec.region, indexes, **pooled)
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
        # remote sharded runs: each run's tiles' bytes are reserved once what it needs of its
        # shards is fetched, before decoding (not when its GETs start), so the GETs of the next
        # runs go on while earlier ones decode or wait for the consumer: as many runs again
        # fetched ahead, within prefetch_bytes more of their tiles. Shard by shard (unordered:
        # each shard read whole): 3 runs of 32 MiB, 14 MB stored each, had 0-3 GETs in
        # flight; at 70 MB/s a connection (nginx limit_rate, 20 ms) 373-409 MB/s before,
        # 588-607 after, peak RSS +26-28 MB. In grid order (rows of shards, their parts read
        # by range, grants in that order) likewise: 512 tiles of 4096 shards at 70 MB/s a
        # connection, 630-849 MB/s before, 1179-1276 after, peak RSS +35-60 MB (a busy
        # machine). A run fetched ahead holds its bodies alone: its tiles' arrays are made
        # once its bytes are reserved (Level.read_many), and it leads no fetch other reads
        # wait for (the loop body's reads of the same image: they would wait for the
        # consumer). Not where runs share the chunks they read (the chunk cache: rows or split
        # shards of tiles cutting inner chunks, or with halos) nor with pooled tile arrays
        # (both made or claimed when a run starts). (Unsharded levels: their runs are held
        # by the window, not by their bytes: 32 of 120 MiB reserved at most)
        late = (
            runs_of is not None
            and shards is not None
            and (reuse is None or not (rows or split))
            and not lvl.reads_locally
            and prefetch is None
            and pool is None
        )
        if late:  # (as many runs again as the requests in flight hide: more only wait)
            ahead = max(1, min(limits.prefetch_bytes // run_bytes, cap))
            window, max_window = window + ahead, max_window + ahead
        # (late, shard by shard: each shard is one run, no other run needs its chunks; a run
        # fetched ahead reading through the chunk cache made its tiles' arrays when it
        # started: tiles smaller than the inner chunks)
        read_reuse = None if late else reuse
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
                reserve_late=late,
                ahead_bytes=limits.prefetch_bytes,
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
            pool=pool,
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
    try:
        start = 0 if s.start is None else operator.index(s.start)
        stop = n if s.stop is None else operator.index(s.stop)
    except TypeError:  # (was Python's bare "'float' object cannot be interpreted as ...")
        raise TypeError(f"{what}: slice bounds must be ints or None, got {s!r}") from None
    lo, hi = start + n if start < 0 else start, stop + n if stop < 0 else stop
    if not (0 <= lo <= n and 0 <= hi <= n):
        raise IndexError(
            f"{what} {start}:{stop} reaches outside level {level}, which has {n} pixels there"
        )
    return slice(lo, max(lo, hi))
