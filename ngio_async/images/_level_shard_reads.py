"""``_ShardReads``: reading the inner chunks regions need of a shard: by its index in one coalesced
set of ranged reads (conditional on the shard's version, its index read again when the shard
changed), or whole in one request (a compressed shard always: decompressed once and shared)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from .._prefetch import fetched_ahead, reserve_decoded
from ..engine import plan_shards
from ..engine.plan import check_region
from ..stores import ChangedError
from ._chunk_decode import Decode, Targets, _by_chunk, _decode_all, _grid_coords, _Ready
from ._index_cache import _CHANGED_RETRIES, IndexCache
from ._level_decodes import _LevelDecodes
from ._reuse import Fetch, Keeper
from ._run_all import _run_all
from ._shard_bytes import (
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

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from numpy.typing import NDArray

    from ..codecs import ShardCodec, ShardIndex
    from ..engine import InnerChunkPlan, Region, ShardPlan
    from ..stores import Buffer
    from ._tile_pool import TilePool

    #: a shard fetched for a tile stream's run ahead of its bytes: its decode into the run's
    #: outputs (the plans of the regions' parts in it, each with its output), once they exist
    _Decoder = Callable[[list[tuple[ShardPlan, NDArray[Any]]]], Awaitable[None]]


class _ShardReads(_LevelDecodes):
    """Reading what regions need of a shard: by its index, or whole."""

    async def _read_shard(
        self, codec: ShardCodec, plan: ShardPlan, out: NDArray[Any], indexes: IndexCache
    ) -> None:
        key = self._prefix + plan.key
        if self.store.blocking_reads and (
            self._whole_shards or (self._covers(codec, [plan]) and key not in indexes)
        ):
            await self._workers.run(_fetch_decode_shard, self.store, codec, key, [(plan, out)])
            return
        share = not self.writable  # (inner chunks shared with the reads of them in flight)
        await self._read_shard_parts(codec, key, [(plan, out)], indexes, None, share)

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
        in flight whether or not ``share`` is set (:meth:`_read_whole`). A tile stream's run
        fetched ahead of its bytes shares nothing (:func:`fetched_ahead`)."""
        share = share and not fetched_ahead()
        if self._whole_at_once(codec, key, [plan for plan, _ in parts], indexes):
            await self._read_whole(codec, key, parts, indexes, reuse, not self.writable)
            return
        for _ in range(_CHANGED_RETRIES + 1):
            try:
                await self._read_parts_once(codec, key, parts, indexes, reuse, share)
                return
            except ChangedError:  # (its index was dropped)
                continue
        await self._read_whole(codec, key, parts, indexes)

    def _whole_at_once(
        self, codec: ShardCodec, key: str, plans: Sequence[ShardPlan], indexes: IndexCache
    ) -> bool:
        """Whether shard ``key`` is read whole in one request for ``plans``: they need all of
        it and its index is not known yet (one request, not two), or it is only ever read
        whole."""
        return self._whole_shards or (
            key not in indexes and key not in self._index_loading and self._covers(codec, plans)
        )

    async def _read_run_ahead(
        self,
        codec: ShardCodec,
        regions: Sequence[Region],
        indexes: IndexCache,
        pool: TilePool | None,
    ) -> list[NDArray[Any]] | None:
        """The regions of a tile stream's run fetched ahead of its bytes
        (:func:`fetched_ahead`): what they need of each shard fetched first (whole, or its
        inner chunks by range; a compressed shard whole, decompressed once its bytes are
        reserved), the regions' arrays made only once their bytes are reserved (a run
        fetched ahead holds its bodies alone), then decoded into them. It leads no fetch
        other reads wait for (its shard indexes excepted: their loads wait for nothing).
        ``None``: a local store (read as any other)."""
        if self.store.blocking_reads:
            return None
        plans: dict[str, list[ShardPlan]] = {}
        for region in regions:
            check_region(region, self.shape)
            for plan in plan_shards(self.meta, region):
                plans.setdefault(self._prefix + plan.key, []).append(plan)
        decoders: dict[str, _Decoder] = {}

        async def fetch(key: str) -> None:
            decoders[key] = await self._fetch_ahead(codec, key, plans[key], indexes)

        await _run_all(iter(plans), fetch, self._window)
        await reserve_decoded()
        outs, groups = self._shard_groups(regions, None, pool)

        async def decode(key: str) -> None:
            await decoders.pop(key)(groups[key])

        await _run_all(iter(groups), decode, self._window)
        return outs

    async def _fetch_ahead(
        self, codec: ShardCodec, key: str, needed: Sequence[ShardPlan], indexes: IndexCache
    ) -> _Decoder:
        """What ``needed`` (plans of a run fetched ahead) need of shard ``key``, fetched
        before their outputs exist: how to decode it into them once they do. As
        :meth:`_read_shard_parts` reads it: whole in one request when they need all of it
        and its index is not known yet, else by its index in one coalesced set of ranged
        reads (a shard changed meanwhile: its index again, then whole). A shard fetched whole
        is one GET for the runs fetched ahead that need it meanwhile (a row of shards
        compressed whole, split into several runs, was fetched once per run)."""
        fetch_whole = partial(
            self._bodies_ahead.run, key, partial(self.store.get_with_version, key)
        )
        if codec.compressed:  # (its bytes reserved between its GET and its decompression)
            whole, _ = await fetch_whole()
            await reserve_decoded()
            got = None if whole is None else await self._workers.run(_open_shard, codec, whole, key)
            return partial(self._decode_opened, codec, key, indexes=indexes, got=got)
        if not self._whole_at_once(codec, key, needed, indexes):
            for _ in range(_CHANGED_RETRIES + 1):
                try:
                    return await self._ranges_ahead(codec, key, needed, indexes)
                except ChangedError:  # (its index was dropped)
                    continue
        whole, version = await fetch_whole()
        return partial(
            self._decode_whole, codec, key, indexes=indexes, whole=whole, version=version
        )

    async def _ranges_ahead(
        self, codec: ShardCodec, key: str, needed: Sequence[ShardPlan], indexes: IndexCache
    ) -> _Decoder:
        """One try of :meth:`_fetch_ahead` by shard ``key``'s index (``ChangedError``: the
        shard changed since, and its index is dropped)."""
        index, version = await self._shard_entry(key, indexes)
        if index is None:  # (no shard: the fill value)
            return partial(self._decode_opened, codec, key, indexes=indexes, got=None)
        stored: dict[str, tuple[tuple[int, ...], tuple[int, int]]] = {}
        for plan in needed:
            for inner, rng in index.chunk_ranges(c.coords for c in plan.chunks):
                if rng is not None:
                    stored[inner_chunk_name(key, inner)] = (inner, rng)
        bufs: dict[str, Buffer | NDArray[Any] | None] = {}
        if stored:
            claimed: list[_Ready] = [(Fetch.ONCE, name, []) for name in stored]
            got = await self._fetched_ranges(key, claimed, stored, index, indexes, version)
            bufs = {name: buf for buf, name, _ in got}
        elif await self._kept_changed(key, indexes, version):
            url = self.store.url
            raise ChangedError(f"shard {key!r} at {url} changed", url=url, key=key)

        async def decode(parts: list[tuple[ShardPlan, NDArray[Any]]]) -> None:
            groups, _ = self._inner_groups(key, index, parts)  # (the absent ones filled)
            decodes: list[Decode] = [(bufs[name], name, t) for name, t in groups.items()]
            if decodes:
                await self._in_threads(partial(_decode_all, codec.inner), decodes)

        return decode

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
        of them in flight, whole or by range. A tile stream's run fetched ahead of its bytes
        (:func:`fetched_ahead`) neither shares nor leads a fetch: the reads that would wait
        for it may be its consumer's."""
        ahead = fetched_ahead()
        share = share and not ahead
        if codec.compressed:
            fetch = partial(self._open_compressed, codec, key)
            shared = not self.writable and not ahead
            got = await (self._shards_in_flight.run(key, fetch) if shared else fetch())
        elif (share or reuse is not None) and not self.store.blocking_reads:
            await self._whole_claimed(codec, key, parts, indexes, reuse, share)
            return
        else:
            whole, version = await self.store.get_with_version(key)
            await reserve_decoded()  # (a tile stream's run: its tiles' bytes, before decoding)
            await self._decode_whole(codec, key, parts, indexes, whole, version)
            return
        await self._decode_opened(codec, key, parts, indexes, got)

    async def _decode_whole(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        whole: Buffer | None,
        version: str | None,
    ) -> None:
        """Decode what ``parts`` need of plain shard ``key`` fetched whole (``None``: missing,
        the fill value), its index kept in ``indexes`` with ``version``."""
        got = None if whole is None else _open_shard(codec, whole, key)
        if got is not None:
            indexes.put(key, got[1], version)
        await self._decode_opened(codec, key, parts, indexes, got)

    async def _decode_opened(
        self,
        codec: ShardCodec,
        key: str,
        parts: list[tuple[ShardPlan, NDArray[Any]]],
        indexes: IndexCache,
        got: tuple[Buffer, ShardIndex] | None,
    ) -> None:
        """Decode what ``parts`` need of shard ``key``'s plain bytes and index (``None``:
        missing: the fill value) in worker threads."""
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
            await reserve_decoded()  # (a tile stream's run: its tiles' bytes, before decoding)
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
        await reserve_decoded()  # (a tile stream's run: its tiles' bytes, before decompressing)
        return None if whole is None else await self._workers.run(_open_shard, codec, whole, key)

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
            if await self._kept_changed(key, indexes, version):
                url = self.store.url
                raise ChangedError(f"shard {key!r} at {url} changed", url=url, key=key)
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
            await reserve_decoded()  # (a tile stream's run: its tiles' bytes, before decoding)
        it = iter(bufs)
        return [(next(it) if isinstance(b, Fetch) else b, n, t) for b, n, t in claimed]

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
                if not ranges and version is not None:  # no chunk read checks the version
                    self._check_version_blocking(key, version)

                def get(name: str) -> Buffer:
                    inner, rng = ranges[name]
                    return _get_range_blocking(self.store, key, rng, inner, version)

                coords = _grid_coords(codec, parts, ranges)
                self._claim_decode_blocking(
                    codec.inner, groups, coords, reuse, get, self.fill_value
                )

            self._versioned_blocking(codec, key, parts, indexes, read)
        return outs

    async def _kept_changed(self, key: str, indexes: IndexCache, version: str | None) -> bool:
        """Whether shard ``key``'s index, kept from an earlier read (``indexes.borrowed``), is
        of an older version of the shard (one ``HEAD``; the index is then dropped): asked where
        that index says the chunks read are absent, which a rewritten shard may store now."""
        if version is None or not indexes.borrowed(key):
            return False
        if await self.store.version(key) == version:
            return False
        indexes.pop_version(key, version)
        return True

    def _check_version_blocking(self, key: str, version: str) -> None:
        """``ChangedError`` if shard ``key`` is no longer ``version`` (one ``stat``): its
        index, perhaps kept from an earlier read, said the chunks read are absent, which a
        rewritten shard may store now."""
        now = self.store.versions_blocking([key])
        if now is not None and now[0] != version:
            url = self.store.url
            raise ChangedError(
                f"shard {key!r} at {url} changed: it is no longer version {version}",
                url=url,
                key=key,
            )
