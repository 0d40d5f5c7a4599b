"""The blocking reads' short ways: a small read of a local level in the calling thread, and the
shard indexes of a remote read-only level kept across reads where the shard's version is known.

Both serve callers that read many small regions one call at a time (dask's threads, a viewer
panning): a local region of a few chunks (or any of up to 32 MiB while other blocking reads are
in flight: dask's threads) is read and decoded in the calling thread (no round trip through the
event loop and a decode thread: each costs more than decoding one chunk), and
a remote sharded level's reads reuse the indexes earlier reads decoded, each chunk read
conditional on the shard's version (ETag): one GET per read instead of two, a rewritten shard's
index read again (``ChangedError``). An index of a shard whose store tells no version is never
reused across reads.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .codecs import ShardCodec
from .engine import normalize_selection
from .images._index_cache import _MISSING, IndexCache

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

    from .engine import BasicSelection
    from .images import Level

__all__ = ["KeptIndexes", "local_small", "plain_selection", "reading"]

_LOCAL_CHUNKS = 4  # (inner) chunks a local read may touch to be read in the calling thread
# ... and its bytes when other blocking reads are in flight (dask's threads: the callers are
# the parallelism; a lone caller's larger read is split among the decode threads instead)
_LOCAL_BUSY_BYTES = 32 << 20

_readers_lock = threading.Lock()
_readers = 0  # blocking level reads in flight, in any thread


@contextlib.contextmanager
def reading() -> Iterator[int]:
    """Count one blocking read in flight while the block runs; yields how many others are."""
    global _readers
    with _readers_lock:
        others = _readers
        _readers += 1
    try:
        yield others
    finally:
        with _readers_lock:
            _readers -= 1


def plain_selection(level: Level, selection: Any) -> BasicSelection | None:
    """``selection`` normalised when it is integers, step-1 slices and ``...`` only (else
    ``None``: the level's ``getitem`` reads it, fancy and strided selections included)."""
    items = selection if isinstance(selection, tuple) else (selection,)
    for item in items:
        if item is Ellipsis:
            continue
        if isinstance(item, slice):
            if item.step is not None and item.step != 1:
                return None
        elif not isinstance(item, int | np.integer) or isinstance(item, bool | np.bool_):
            return None
    sel = normalize_selection(selection, level.shape)
    if any(st != 1 for st in sel.steps) or any(r.stop <= r.start for r in sel.region):
        return None
    return sel


def local_small(level: Level, sel: BasicSelection, others: int = 0) -> bool:
    """Whether ``sel`` of ``level`` is read in the calling thread: a local read-only level,
    the region in one stored object or in a few (inner) chunks, or, while ``others`` blocking
    reads are in flight, of at most ``_LOCAL_BUSY_BYTES``."""
    if not level.reads_locally:
        return False
    if level._one_object(sel.region):
        return True  # (the event loop reads it in one decode-thread call as well)
    region, chunks = sel.region, level.meta.chunks
    if others:
        nbytes = math.prod(r.stop - r.start for r in region) * level.dtype.itemsize
        if nbytes <= _LOCAL_BUSY_BYTES:
            return True
    touched: int = math.prod(
        (r.stop - 1) // c - r.start // c + 1 for r, c in zip(region, chunks, strict=True)
    )
    return touched <= _LOCAL_CHUNKS


def read_local(level: Level, sel: BasicSelection) -> NDArray[Any]:
    """Read ``sel`` of a local level in this thread (see :func:`local_small`), through the
    dataset's read cache where ``Level.read`` would take it (``Limits.read_cache_bytes``)."""
    keeper, region = level._read_cache, sel.region
    nbytes = math.prod(r.stop - r.start for r in region) * level.dtype.itemsize
    if keeper is not None and not level._whole_shards and nbytes <= level._read_budget // 4:
        indexes = level._kept_indexes or level.index_cache()
        return sel.apply(level.read_many_blocking([region], keeper, indexes)[0])
    return sel.apply(level.read_many_blocking([region], None, level.index_cache())[0])


def keeps_indexes(level: Level) -> bool:
    """Whether reads of ``level`` share :class:`KeptIndexes`: remote, read-only, sharded."""
    return isinstance(level.codec, ShardCodec) and not level.reads_locally and not level.writable


async def read_kept(level: Level, sel: BasicSelection, kept: IndexCache) -> NDArray[Any]:
    """Read ``sel`` of a remote read-only sharded level with the indexes of earlier reads."""
    return sel.apply(await level.read(sel.region, KeptIndexes(kept)))


class KeptIndexes(IndexCache):
    """One read's shard indexes, backed by ``kept``: the indexes earlier reads of the level
    decoded with their shard's version. A kept index is used only with its version (the chunk
    reads are conditional on it); one without is fetched again."""

    __slots__ = ("_kept",)

    def __init__(self, kept: IndexCache) -> None:
        super().__init__()
        self._kept = kept

    def get(self, key: str) -> Any:
        index = super().get(key)
        if index is _MISSING and key in self._kept:
            version = self._kept.version(key)
            if version is not None:
                index = self._kept.get(key)
                super().put(key, index, version)
        return index

    def put(self, key: str, index: Any, version: str | None = None) -> None:
        super().put(key, index, version)
        if version is not None:
            self._kept.put(key, index, version)
        else:
            self._kept.pop(key)

    def pop(self, key: str) -> None:
        super().pop(key)
        self._kept.pop(key)

    def pop_version(self, key: str, version: str | None) -> None:
        self._kept.pop_version(key, version)
        super().pop_version(key, version)
