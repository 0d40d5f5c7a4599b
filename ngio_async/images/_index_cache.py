"""``IndexCache``: the shard indexes one read operation has decoded, each with the version of the
shard it was read from (a shard's index is fetched once per operation, never trusted across
operations)."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from typing import Any

from ..codecs import ShardIndex

_INDEX_CACHE = 4096  # decoded shard indexes kept per cache (a read operation, a level), at most
# ... and their bytes (a shard of 100,000 inner chunks has a 1.6 MB index: 4,096 such, 6.5 GB)
_INDEX_BYTES = 64 << 20
_ENTRY_BYTES = 256  # what an entry costs beside its index table (key, dict slots, objects)


_MISSING: Any = object()  # not in the shard-index cache


_CHANGED_RETRIES = 3  # a shard found rewritten while read: its index is read again this often


_Entry = tuple[ShardIndex | None, str | None]  # a shard's index and the shard's version


class IndexCache:
    """The shard indexes one read operation has decoded (a ``read`` call, or a whole tile
    stream): a shard's index is fetched once per operation, never trusted across operations
    (another writer may rewrite the shard in between). ``None`` = no shard. Bounded: at most
    ``_INDEX_CACHE`` indexes and ``_INDEX_BYTES`` of them (64 MiB), least recently used
    dropped first (the last one put is always kept). Beside an index: the version (ETag) of
    the shard it was read from, where the store tells one (the chunk reads of the shard are
    conditional on it)."""

    __slots__ = ("__weakref__", "_entries", "_lock", "_versions", "nbytes")

    def __init__(self) -> None:
        self._entries: OrderedDict[str, ShardIndex | None] = OrderedDict()
        self._versions: dict[str, str] = {}
        self._lock = threading.Lock()  # puts and pops from several threads (dask's)
        #: bytes the indexes held take (their tables, and ``_ENTRY_BYTES`` each)
        self.nbytes = 0

    def get(self, key: str) -> Any:
        """The cached index, ``None`` for a missing shard, or ``_MISSING``."""
        index = self._entries.get(key, _MISSING)
        if index is not _MISSING:
            # local tile streams share one cache between decode threads: another thread's put
            # may evict the key between the two calls
            with contextlib.suppress(KeyError):
                self._entries.move_to_end(key)
        return index

    def version(self, key: str) -> str | None:
        """The version of the shard the cached index of ``key`` was read from (``None``:
        unknown); read it right after :meth:`get`, with no ``await`` between."""
        return self._versions.get(key)

    def put(self, key: str, index: ShardIndex | None, version: str | None = None) -> None:
        entries = self._entries
        with self._lock:
            self.nbytes += _size(index) - _size(entries.get(key, None), key in entries)
            entries[key] = index
            entries.move_to_end(key)
            if version is not None:
                self._versions[key] = version
            elif self._versions:
                self._versions.pop(key, None)
            while len(entries) > 1 and (len(entries) > _INDEX_CACHE or self.nbytes > _INDEX_BYTES):
                old, dropped = entries.popitem(last=False)
                self.nbytes -= _size(dropped)
                self._versions.pop(old, None)

    def pop(self, key: str) -> None:
        with self._lock:
            if key in self._entries:
                self.nbytes -= _size(self._entries.pop(key))
            self._versions.pop(key, None)

    def pop_version(self, key: str, version: str | None) -> None:
        """Forget ``key``'s index if it is still the one read from ``version`` of the shard
        (not one another read of the operation has fetched since)."""
        if self._versions.get(key) == version:
            self.pop(key)

    def borrowed(self, key: str) -> bool:
        """Whether ``key``'s index was decoded by an earlier operation (kept across reads), not
        fetched by this one: a read that finds its chunks absent there checks the shard's
        version first (a rewritten shard may store them now)."""
        return False

    def __contains__(self, key: str) -> bool:
        return key in self._entries


def _size(index: ShardIndex | None, held: bool = True) -> int:
    """The bytes an entry holding ``index`` takes in a cache (0: no entry)."""
    if not held:
        return 0
    return _ENTRY_BYTES + (0 if index is None else index.table.nbytes)


_NO_SHARDS = IndexCache()  # what unsharded levels pass around (never written: no shard reads)
