"""``_LevelReads``: reading normalised regions of a level (``read``, ``read_into``, ``read_many``,
``read_in_chunks`` and their blocking twins for local stores): the path each read takes (one
chunk, one stored object in a worker thread, through the read cache, chunk by chunk or shard by
shard) and its concurrency."""

from __future__ import annotations

import math
from itertools import islice, product
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from .._prefetch import fetched_ahead
from ..codecs import ChunkCodec, ShardCodec, ShardIndex
from ..engine import plan_chunks, plan_shards, region_shape
from ..engine.plan import check_region
from ..stores import ChangedError, RangeByteRequest
from ._index_cache import _CHANGED_RETRIES, _MISSING, IndexCache
from ._level_base import names_store, names_store_blocking
from ._level_shard_reads import _ShardReads
from ._reuse import Fetch, Keeper, Pending
from ._run_all import _run_all
from ._shard_bytes import (
    _chunk_jobs,
    _fetch_decode,
    _fetch_decode_shard,
    _range_jobs,
    _stored_pieces,
    inner_chunk_name,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from ..engine import ChunkPlan, Region, ShardPlan
    from ._chunk_decode import Targets
    from ._tile_pool import TilePool

_BATCH = 8  # chunks read + decoded per worker-thread call on local stores, at most
_TOGETHER = 4  # remote chunks per store.get_many and decode hand-off (GETs started together)


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


class _LevelReads(_ShardReads):
    """Reading normalised regions of a level: the path each read takes."""

    @names_store
    async def read(
        self, region: Region, indexes: IndexCache | None = None, *, pool: TilePool | None = None
    ) -> NDArray[Any]:
        """Read a normalised region (step-1 slices inside the bounds, one per axis).

        ``indexes``: the shard indexes of the operation this read is part of (a tile stream);
        default: fetched for this read alone. ``pool``: the tile stream's arrays to read
        into (:class:`TilePool`); default: a new array.
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
            return await self._workers.run(self._read_local, region, shape, indexes, pool)
        out = self._empty(shape, pool)
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

    @names_store
    async def read_many(
        self,
        regions: Sequence[Region],
        indexes: IndexCache | None = None,
        reuse: Keeper | None = None,
        *,
        pool: TilePool | None = None,
    ) -> list[NDArray[Any]]:
        """Read several normalised regions, each into its own array (from ``pool``: a tile
        stream's :class:`TilePool`).

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
            return await self._read_many_chunks(codec, regions, reuse, pool)
        if not isinstance(codec, ShardCodec) or not self.reads_shards_together:
            return [await self.read(region, indexes, pool=pool) for region in regions]
        if reuse is None and fetched_ahead():  # (its arrays once its shard is fetched)
            ahead = await self._read_run_ahead(codec, regions, indexes, pool)
            if ahead is not None:
                return ahead
        outs, groups = self._shard_groups(regions, None, pool)

        async def one_shard(item: tuple[str, list[tuple[ShardPlan, NDArray[Any]]]]) -> None:
            await self._read_shard_parts(codec, *item, indexes, reuse)

        await _run_all(iter(groups.items()), one_shard, self._window)
        return outs

    async def _read_many_chunks(
        self,
        codec: ChunkCodec,
        regions: Sequence[Region],
        reuse: Keeper | None,
        pool: TilePool | None = None,
    ) -> list[NDArray[Any]]:
        """Regions of a remote unsharded level, each into its own array: the chunks they need,
        each fetched and decoded once into every region's part of it (or taken from
        ``reuse``)."""
        outs, groups, coords = self._chunk_groups(regions, None, pool)
        await self._fetch_decode_groups(codec, groups, reuse, coords)
        return outs

    @names_store_blocking
    def read_many_blocking(
        self,
        regions: Sequence[Region],
        reuse: Keeper | None = None,
        indexes: IndexCache | None = None,
        into: Sequence[NDArray[Any]] | None = None,
        *,
        pool: TilePool | None = None,
    ) -> list[NDArray[Any]]:
        """Blocking :meth:`read_many` of a level that :attr:`reads_locally`, for a worker
        thread: every (inner) chunk the regions need read and decoded once, or taken from
        ``reuse``; a sharded level's indexes are read once into ``indexes``. ``into``: the
        arrays to read the regions into (default: new ones, from ``pool`` if given)."""
        codec = self.codec
        if not self.reads_locally:
            raise RuntimeError(f"{self!r}: read_many_blocking reads local levels")
        if into is None and pool is not None:
            into = self._outs(regions, None, pool)
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

    @property
    def reads_shards_together(self) -> bool:
        """Whether :meth:`read_many` fetches the regions' inner chunks shard by shard: remote
        shards read in parts, and compressed shards, local ones too (each fetched whole and
        decompressed once for all the regions; :meth:`read_many_blocking` likewise)."""
        if self.writable:
            return False
        return self._whole_shards or (self.reads_shards_in_parts and not self.reads_locally)

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
                if rng is None and await self._kept_changed(key, indexes, version):
                    continue  # absent by an index kept from an earlier read: rewritten since
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

    @names_store
    async def read_in_chunks(
        self, regions: Sequence[Region], *, pool: TilePool | None = None
    ) -> list[NDArray[Any]]:
        """Read normalised regions that each lie inside one chunk of an unsharded level, each
        into its own array: their chunks fetched with one ``store.get_many`` (a chunk that
        several regions share, once) and decoded in one worker-thread call.

        A tile stream reads small remote tiles so, a few per prefetch item: one hand-off to
        the decode threads and one store call per few tiles instead of per tile (into arrays
        of ``pool``, a tile stream's :class:`TilePool`, if given).
        """
        codec = self.codec
        if isinstance(codec, ShardCodec):
            raise ValueError(f"{self!r} is sharded: read_in_chunks reads unsharded levels")
        chunks = self.meta.chunks
        groups: dict[str, Targets] = {}  # each chunk fetched and decoded once, however many
        outs: list[NDArray[Any]] = []  # regions need it
        shape, chunk_key = self.shape, self.meta.chunk_key
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
            out = self._empty(tuple(dims), pool)
            outs.append(out)
            if out.size == 0:
                continue
            key = self._prefix + chunk_key(tuple(coords_l))
            groups.setdefault(key, []).append((tuple(sel), out))
        await self._fetch_decode_groups(codec, groups)
        return outs

    @names_store_blocking
    def read_blocking(
        self, region: Region, indexes: IndexCache | None = None, *, pool: TilePool | None = None
    ) -> NDArray[Any]:
        """Blocking read of a normalised region, for a worker thread; needs :attr:`reads_locally`.

        The tile iterator reads several small tiles per worker-thread call with it (one thread
        hand-off per batch instead of per tile), into arrays of its ``pool``.
        """
        if not self.reads_locally:
            raise RuntimeError(f"{self!r} does not read locally; use await level.read()")
        return self._read_local(
            region, region_shape(region), self.index_cache() if indexes is None else indexes, pool
        )

    def _read_local(
        self,
        region: Region,
        shape: tuple[int, ...],
        indexes: IndexCache,
        pool: TilePool | None = None,
    ) -> NDArray[Any]:
        """Blocking read of a region inside one stored object (worker thread, local stores),
        into an array of ``pool`` if given."""
        out = self._empty(shape, pool)
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

    @names_store
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
