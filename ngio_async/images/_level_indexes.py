"""``_LevelIndexes``: the shard indexes of a level: which shards a read needs the index of, and
fetching one (once for concurrent readers, with the version of the shard it was read from; a
range past the shard's end its index points to is raised as that corruption)."""

from __future__ import annotations

import contextlib
import math
from itertools import product
from typing import TYPE_CHECKING

import anyio

from .._errors import StoreError
from ..codecs import ShardCodec, ShardIndex, past_end_error
from ..engine import plan_shards
from ..engine.plan import check_region
from ..stores import ChangedError, RangeByteRequest, SuffixByteRequest
from ._index_cache import _MISSING, IndexCache, _Entry
from ._level_base import _LevelBase

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from ..engine import Region


class _LevelIndexes(_LevelBase):
    """The shard indexes of a level: which a read needs, and fetching them."""

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

    def _vanished(self, key: str) -> ChangedError:
        """A shard deleted since its index was read: read again (its index then says no
        shard, so the fill value)."""
        url = self.store.url
        return ChangedError(
            f"shard {key!r} at {url} disappeared while it was read", url=url, key=key
        )
