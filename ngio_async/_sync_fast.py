"""The blocking reads' short ways: a small read of a local level in the calling thread, and the
shard indexes of a remote read-only level kept across reads where the shard's version is known.

Both serve callers that read many small regions one call at a time (dask's threads, a viewer
panning): a local region of a few chunks (or any of up to 32 MiB while other blocking reads are
in flight: dask's threads) is read and decoded in the calling thread (no round trip through the
event loop and a decode thread: each costs more than decoding one chunk); a larger local region
is read by the calling thread together with the dataset's free decode threads, which take its
chunks a few at a time (no event loop: :func:`read_local_split`); and
a remote sharded level's reads reuse the indexes earlier reads decoded, each chunk read
conditional on the shard's version (ETag): one GET per read instead of two, a rewritten shard's
index read again (``ChangedError``). An index of a shard whose store tells no version is never
reused across reads.

Without a read cache (``Limits.read_cache_bytes``), the (inner) chunks that local reads take only
in part (dask blocks smaller than the chunks) are kept briefly for the reads of their rest
(:class:`~ngio_async.images._reuse.PartKeep`): per level at most ``_PART_PER_THREAD`` chunks per
decode thread and never more than ``_PART_MAX_BYTES`` (16 MiB), each for ``_PART_SECONDS`` at
most, and taken only while its file's version (one ``stat``) is the one it was decoded from.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import ClosedError, CodecError, StoreError
from .codecs import ShardCodec
from .engine import BasicSelection, normalize_selection
from .images._chunk_decode import _decode_into
from .images._index_cache import _MISSING, IndexCache
from .images._level_reads import _chunk_pieces
from .images._reuse import Fetch, PartKeep, Pending
from .images._shard_bytes import inner_chunk_name
from .stores import RangeByteRequest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from numpy.typing import NDArray

    from .engine import Region
    from .images import Level

__all__ = ["KeptIndexes", "local_small", "plain_selection", "read_local_split", "reading"]

_LOCAL_CHUNKS = 4  # (inner) chunks a local read may touch to be read in the calling thread
# ... and its bytes when other blocking reads are in flight (dask's threads: the callers are
# the parallelism; a lone caller's larger read is split among the decode threads instead)
_LOCAL_BUSY_BYTES = 32 << 20
_BATCH = 8  # (inner) chunks a thread takes at once from a split read's list, at most
# decoded bytes per thread of a split read, at least: a thread is lent for each such share
# beyond the caller's (waking one costs about as much CPU as decoding 20 KiB)
_SHARE_BYTES = 512 << 10

# decoded chunks a level's reads used in part, kept for the reads of the rest: this many per
# decode thread, never more than _PART_MAX_BYTES, each for _PART_SECONDS at most
_PART_PER_THREAD = 4
_PART_MAX_BYTES = 16 << 20
_PART_SECONDS = 1.0

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
    shape = level.shape
    if type(selection) is tuple and len(selection) == len(shape):  # dask's: a slice per axis
        region = []
        for item, n in zip(selection, shape, strict=True):
            if type(item) is not slice or item.step is not None:
                break
            start, stop, _ = item.indices(n)
            if stop <= start:
                return None
            region.append(slice(start, stop))
        else:
            return BasicSelection(tuple(region), (1,) * len(shape), ())
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
    region = sel.region
    keeper, indexes = _kept(level, region)
    if (
        isinstance(indexes, KeptIndexes)
        and (out := _kept_chunk(level, region, indexes, keeper)) is not None
    ):
        return sel.apply(out)
    return sel.apply(level.read_many_blocking([region], keeper, indexes)[0])


def _kept_chunk(
    level: Level, region: Region, indexes: IndexCache, keeper: Any = None
) -> NDArray[Any] | None:
    """``region`` read the short way when it lies in one stored inner chunk of a shard whose
    index an earlier read kept with its version (a dask block): one ranged read conditional
    on that version, decoded into the output (no planning), or the chunk taken from the
    :class:`PartKeep` of ``keeper`` (a :class:`_PartView`). ``None`` otherwise, or when the
    read or decode failed: the general read then reads again (a changed shard's index too)
    and raises what is wrong, named as it names it."""
    codec = level.codec
    assert isinstance(codec, ShardCodec)
    chunks = level.meta.chunks
    grid = [r.start // c for r, c in zip(region, chunks, strict=True)]
    if any((r.stop - 1) // c != g for r, c, g in zip(region, chunks, grid, strict=True)):
        return None
    cps = codec.chunks_per_shard
    scoords = tuple(g // n for g, n in zip(grid, cps, strict=True))
    key = level._prefix + level.meta.chunk_key(scoords)
    index = indexes.get(key)
    version = indexes.version(key)  # (right after ``get``: the pair as kept)
    if index is _MISSING or index is None or version is None:
        return None
    inner = tuple(g - sc * n for g, sc, n in zip(grid, scoords, cps, strict=True))
    rng = index.chunk_range(inner)
    if rng is None:  # absent: the fill value, once the general read has checked the version
        return None
    out: NDArray[Any] = np.empty([r.stop - r.start for r in region], dtype=level.dtype)
    at = tuple(slice(r.start - g * c, r.stop - g * c) for r, g, c in zip(region, grid, chunks, strict=True))  # fmt: skip
    name = inner_chunk_name(key, inner)
    got: NDArray[Any] | Fetch | None = Fetch.ONCE
    if isinstance(keeper, _PartView):
        got = keeper.take(name, tuple(grid), key, version)
    if got is None:
        return None  # (changed since its index was read, or missing: the general read)
    if isinstance(got, np.ndarray):
        out[...] = got[at]
        return out
    keep = got is Fetch.KEEP
    chunk: NDArray[Any] | Fetch | None = Fetch.FAILED
    try:
        buf, _ = level.store.get_blocking_versioned(key, RangeByteRequest(*rng), if_match=version)
        if buf is None:  # deleted since
            return None
        if keep:
            chunk = codec.inner.decode(buf, name)
            out[...] = chunk[at]
        else:
            _decode_into(codec.inner, buf, name, at, out)
    except (StoreError, CodecError):
        return None
    finally:
        if keep:
            keeper.keep(name, chunk)
    return out


def _kept(level: Level, region: Region) -> tuple[Any, IndexCache]:
    """The decoded chunks a local read of ``region`` takes and keeps (the read cache, else
    its :class:`_PartView`, else ``None``) and the shard indexes it uses."""
    keeper = level._read_cache
    if keeper is not None:
        nbytes = math.prod(r.stop - r.start for r in region) * level.dtype.itemsize
        if not level._whole_shards and nbytes <= level._read_budget // 4:
            return keeper, level._kept_indexes or level.index_cache()
        return None, local_indexes(level)
    keep = part_keep(level)
    return None if keep is None else _PartView(level, keep, region), local_indexes(level)


# per local read-only level: the decoded chunks its reads used in part (None: none kept)
_parts: weakref.WeakKeyDictionary[Level, PartKeep | None] = weakref.WeakKeyDictionary()


def part_keep(level: Level) -> PartKeep | None:
    """The :class:`PartKeep` of a local read-only level's reads (made on first use); ``None``
    for a level read whole shard by shard, with chunks too large to keep, or in a store that
    tells no versions of its objects (not local files)."""
    try:
        return _parts[level]
    except KeyError:
        pass
    chunk_bytes = math.prod(level.chunks) * level.dtype.itemsize
    budget = min(_PART_PER_THREAD * level._workers.threads * chunk_bytes, _PART_MAX_BYTES)
    keep: PartKeep | None = None
    versioned = level.store.versions_blocking([]) is not None
    if versioned and not level._whole_shards and chunk_bytes <= budget:
        keep = PartKeep(budget, chunk_bytes, _PART_SECONDS)
    return _parts.setdefault(level, keep)


class _PartView:
    """A level's :class:`PartKeep` as one read of ``region`` claims from it (a ``Keeper``):
    how much of each chunk the read takes decides whether it is kept."""

    __slots__ = ("_keep", "_level", "_region")

    def __init__(self, level: Level, keep: PartKeep, region: Region) -> None:
        self._level, self._keep, self._region = level, keep, region

    def _parts(self, coords: tuple[int, ...]) -> tuple[int, int]:
        """The elements of the chunk at ``coords`` (inner chunk grid) the read takes, and
        all it has inside the level."""
        part = full = 1
        for r, i, c, n in zip(self._region, coords, self._level.meta.chunks, self._level.shape, strict=True):  # fmt: skip
            lo, hi = i * c, min((i + 1) * c, n)
            full *= hi - lo
            part *= max(0, min(r.stop, hi) - max(r.start, lo))
        return part, full

    def take(
        self, name: str, coords: tuple[int, ...], key: str, version: str
    ) -> NDArray[Any] | Fetch | None:
        """What :func:`_kept_chunk` does for inner chunk ``name`` (at ``coords``) of shard
        ``key``, whose index is of ``version``: the chunk (copy its part), ``Fetch.KEEP`` /
        ``Fetch.ONCE``, or ``None`` (the shard is not ``version`` now, or the chunk was
        held missing: the general read reads it)."""
        part, full = self._parts(coords)
        keep = self._keep
        if part >= full and not keep.holds(name):
            return Fetch.ONCE
        now = self._level.store.versions_blocking([key])
        if now is None or now[0] != version:
            return None
        got = keep.claim(name, part, full, version)
        if isinstance(got, Pending):
            got = got.wait_blocking()
            return Fetch.ONCE if got is Fetch.FAILED else got
        return got

    def claim(
        self, key: str, coords: tuple[int, ...], n: int
    ) -> NDArray[Any] | Pending | Fetch | None:
        part, full = self._parts(coords)
        keep = self._keep
        if part >= full and not keep.holds(key):
            return Fetch.ONCE
        level = self._level
        stored = key
        codec = level.codec
        if isinstance(codec, ShardCodec):
            cps = codec.chunks_per_shard
            scoords = tuple(i // k for i, k in zip(coords, cps, strict=True))
            stored = level._prefix + level.meta.chunk_key(scoords)
        now = level.store.versions_blocking([stored])
        return keep.claim(key, part, full, None if now is None else now[0])

    def keep(self, key: str, chunk: NDArray[Any] | Fetch | None) -> None:
        self._keep.keep(key, chunk)


# per local read-only sharded level: the shard indexes its blocking reads decoded, with versions
_local_kept: weakref.WeakKeyDictionary[Level, IndexCache] = weakref.WeakKeyDictionary()


def local_indexes(level: Level) -> IndexCache:
    """The shard indexes of one blocking read of a local read-only level: a sharded level's
    reads share the indexes earlier ones decoded (:class:`KeptIndexes`), each used with the
    version of its file (inode, modification time and size, from the ``fstat`` of the chunk
    read itself): a rewritten or deleted shard's index is read again. Without this, every
    small read (a dask block) opened, read and decoded its shard's index again."""
    if level._whole_shards or not isinstance(level.codec, ShardCodec):
        return level.index_cache()
    kept = _local_kept.get(level)
    if kept is None:
        kept = _local_kept.setdefault(level, level.index_cache())
    return KeptIndexes(kept)


_Piece = tuple["Region", "Region"]  # a part of a region: where in the level, where in its array


class _Split:
    """The batches of pieces of one region that the calling thread and the decode threads it
    lends take one at a time; the first error (or the dataset's closing) stops the taking."""

    def __init__(self, batches: Sequence[Sequence[_Piece]], closed: Callable[[], bool]) -> None:
        self._batches = batches
        self._closed = closed
        self._cond = threading.Condition()
        self._next = 0
        self._busy = 0  # batches being read now
        self.error: BaseException | None = None
        self.was_closed = False

    def _take(self) -> Sequence[_Piece] | None:
        with self._cond:
            if self.error is not None or self._next >= len(self._batches):
                return None
            if self._closed():
                self.was_closed = True
                return None
            batch = self._batches[self._next]
            self._next += 1
            self._busy += 1
            return batch

    def _done(self, error: BaseException | None = None) -> None:
        with self._cond:
            self._busy -= 1
            if error is not None and self.error is None:
                self.error = error
            if not self._busy:
                self._cond.notify_all()

    def work(self, read: Callable[[Sequence[_Piece]], object]) -> None:
        """Read batches until none is left (in any thread; errors are kept, not raised)."""
        while (batch := self._take()) is not None:
            try:
                read(batch)
            except BaseException as exc:  # noqa: BLE001 - raised by the calling thread
                self._done(exc)
                return
            self._done()

    def finish(self) -> None:
        """Stop the taking and wait for the batches being read (the lent threads' last)."""
        with self._cond:
            self._next = len(self._batches)
            while self._busy:
                self._cond.wait()


def read_local_split(level: Level, sel: BasicSelection, closed: Callable[[], bool]) -> NDArray[Any]:
    """Read ``sel`` of a local level in the calling thread and in the dataset's decode threads
    that are free now (``Limits.decode_threads`` in all; one per ``_SHARE_BYTES`` of the
    region beyond the first), without the event loop: they take its chunks (shards: each read
    in one call, its index once), a few at a time, from one list (a thread that starts late
    finds less to do). ``closed``: whether the dataset was closed meanwhile (then
    :class:`ClosedError` once the threads have stopped reading)."""
    region = sel.region
    shape = tuple(r.stop - r.start for r in region)
    nbytes = math.prod(shape) * level.dtype.itemsize
    keeper, indexes = _kept(level, region)
    pieces = _chunk_pieces(region, level.meta.stored_chunks)
    workers = level._workers
    lend = max(0, min(workers.threads, len(pieces) - 1, nbytes // _SHARE_BYTES - 1))
    size = max(1, min(_BATCH, len(pieces) // (2 * (lend + 1))))
    batches = [pieces[k : k + size] for k in range(0, len(pieces), size)]
    out: NDArray[Any] = np.empty(shape, dtype=level.dtype)

    def read(batch: Sequence[_Piece]) -> None:
        level.read_many_blocking(
            [piece for piece, _ in batch], keeper, indexes, [out[at] for _, at in batch]
        )

    split = _Split(batches, closed)
    try:
        for _ in range(min(lend, len(batches) - 1)):
            if not workers.lend(lambda: split.work(read)):
                break
        split.work(read)
    finally:
        split.finish()
    if split.error is not None:
        raise split.error
    if split.was_closed or closed():
        raise ClosedError("this ngio_async object was closed while the read ran")
    return sel.apply(out)


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

    __slots__ = ("_borrowed", "_kept")

    def __init__(self, kept: IndexCache) -> None:
        super().__init__()
        self._kept = kept
        self._borrowed: set[str] = set()  # the keys whose index came from ``kept``

    def get(self, key: str) -> Any:
        index = super().get(key)
        if index is _MISSING and key in self._kept:
            version = self._kept.version(key)
            if version is not None:
                index = self._kept.get(key)  # (_MISSING: another thread dropped it now)
                if index is not _MISSING:
                    super().put(key, index, version)
                    self._borrowed.add(key)
        return index

    def borrowed(self, key: str) -> bool:
        return key in self._borrowed

    def put(self, key: str, index: Any, version: str | None = None) -> None:
        self._borrowed.discard(key)
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
