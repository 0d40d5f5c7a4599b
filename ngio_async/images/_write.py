"""The write half of the engine: region writes into one level, and the bounded tile writer.

A region write plans the stored objects (chunks or shards) it touches (:func:`plan_shards`), then
for each object, at most ``window`` at a time and serialised per stored key:

- a write that covers the whole object (clipped to the array) builds it from the data alone: no
  read;
- a partial write reads the object, patches it and writes it back (read-modify-write). For a shard,
  inner chunks the write does not touch keep their stored bytes (no re-encoding); inner chunks it
  covers whole are encoded from the data; the ones it covers in part are decoded, patched, encoded
  (a shard whose whole object is compressed, by codecs after ``sharding_indexed``, is
  decompressed first and compressed again after);
- a masked write (:func:`write_at`: points, orthogonal selections, strided slices) writes only
  the pixels it marks: each object it marks some in is patched so (read once, in its
  read-modify-write), inner chunks of a shard it marks none in keep their stored bytes, and
  objects it marks none in are not touched;
- an object (or inner chunk) that ends up all fill value is not stored, and a stored one is
  deleted, like zarr-python's ``write_empty_chunks=False``; except where a partial write puts
  conditionally (below): there it is stored as such (a delete cannot be conditional).

Encoding and decoding run in worker threads under the dataset's decode limiter. Writes to one
stored key are serialised by a per-key ``anyio.Lock`` (refcounted, dropped when unused), so
concurrent writes to distinct regions of one shard never lose each other's data. Against other
processes (dask workers) a read-modify-write is safe too (:func:`_patch_object`): on local disk
it holds an advisory ``flock`` of the object's own lock file, ``<object>#0`` (a staging-file name
to local stores and obstore: never listed as a key; removed when released); elsewhere it is
``store.update``: a put conditional on the version read (S3, GCS, Azure, memory), read and merged
again on a conflict. Whole-object writes read nothing; on local disk they take the object's lock
too (landing between a partial write's read and its put, they would be overwritten by its
merge: chunks as much as shards, any object may be partially written). Uncontended, the lock
is a few calls on the local disk in the event loop's thread (create, flock, unlink): on a
loaded 2-core machine a whole write of 4096 uncompressed 1 KiB chunks took 2.1 s instead of
1.8 (median of 8), the worst case; one lock per shard, or per 1 MiB chunk, is lost in the
noise. The shard-index cache of the level is invalidated for every object
rewritten.
"""

from __future__ import annotations

import asyncio
import numbers
import os
import weakref
from collections.abc import Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial
from itertools import product
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.to_thread
import numpy as np

from .._errors import ChangedError, CodecError, StoreError, name_store
from .._prefetch import Settling, first_error, settling, single_leaf, start_deferred
from ..codecs import ShardCodec
from ..codecs._sharding import past_end_error
from ..engine import normalize_selection, plan_shards, region_shape
from ..stores import InstrumentedStore, LocalFileStore, ObstoreStore
from ..stores._local import flock_or_close, take_lock
from ..stores._obstore_clients import local_prefix
from ._tiles import Tile

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from contextlib import AbstractAsyncContextManager

    from numpy.typing import NDArray

    from ..codecs import ChunkCodec
    from ..engine import Region, ShardPlan
    from ..stores import AsyncStore, Buffer
    from ._cascade import Cascade
    from ._level import Level

    AfterWrite = Callable[[Region, NDArray[Any]], Awaitable[None]]
    #: ``combine(stored, piece)``: the pixels to store for ``piece`` given the ones stored
    Combine = Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]

__all__ = [
    "KeyLocks",
    "LevelWriter",
    "fit_data",
    "holding",
    "image_lock",
    "object_region",
    "open_writer",
    "write_at",
    "write_region",
]


_Table = dict[str, tuple[anyio.Lock, int]]

#: the locks of every scoped ``KeyLocks`` of an event loop, by ``<scope>/<key>``
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Table] = weakref.WeakKeyDictionary()


class KeyLocks:
    """One ``anyio.Lock`` per stored key while somebody uses it (refcounted, then dropped).

    ``scope`` (a store's URL): the locks are shared by every ``KeyLocks`` of that scope in
    the process, per event loop (a lock cannot be shared between loops): every open of one
    image locks the same objects (the levels of two opens rebuilding one pyramid tile took
    different locks, and one wrote the tile from a read of level 0 older than the other's).
    ``None``: this object's own locks."""

    def __init__(self, scope: str | None = None) -> None:
        self._scope = None if scope is None else scope.rstrip("/") + "/"
        self._own: _Table = {}

    @property
    def _locks(self) -> _Table:
        """The keys held or waited for, by this object's key (in every loop: a view)."""
        if self._scope is None:
            return self._own
        n = len(self._scope)
        return {
            key[n:]: entry
            for table in list(_SHARED.values())
            for key, entry in list(table.items())
            if key.startswith(self._scope)
        }

    def __len__(self) -> int:
        return len(self._locks)

    def _table(self, key: str) -> tuple[_Table, str]:
        if self._scope is None:
            return self._own, key
        return _SHARED.setdefault(asyncio.get_running_loop(), {}), self._scope + key

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        table, key = self._table(key)
        lock, users = table.get(key, (None, 0))
        if lock is None:
            lock = anyio.Lock()
        table[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock_, users = table[key]
            if users <= 1:
                del table[key]
            else:
                table[key] = (lock_, users - 1)


def image_lock(store_url: str, name: str) -> AbstractAsyncContextManager[None]:
    """The lock ``name`` (``<image root>#<what>``: no stored key has a ``#``) shared by every
    open of the image in the process (per event loop), as the write locks are."""
    return KeyLocks(store_url).hold(name)


async def write_region(
    level: Level,
    region: Region,
    data: Any,
    after: AfterWrite | None = None,
    *,
    locked: bool = False,
    where: NDArray[np.bool_] | None = None,
    merge: Combine | None = None,
) -> None:
    """Write ``data`` (broadcast to the region's shape) into ``region`` of ``level``.

    ``after(part, pixels)``, if given, is awaited once per stored object written, with the part
    of ``region`` inside that object and its pixels (cast to the level's dtype). ``locked``: the
    caller holds the write locks of every object of ``region`` already (:func:`holding`).
    ``where``: a boolean mask of the region's shape; only the pixels it marks are written, the
    others keep their stored values, read in the object's own read-modify-write (one read of
    each object, under its lock or conditional put: see :func:`write_at`). Objects it marks
    nothing in are neither read nor written (nor given to ``after``).
    ``merge``: every object is read (once, in its read-modify-write, retried with a fresh read
    on a conflict) and its part takes ``merge(stored part, data's part)``, not ``data``
    (which is not cast: ``merge`` checks and casts; the caller checked its shape).
    """
    shape = region_shape(region)
    if merge is not None:
        arr = np.broadcast_to(np.asarray(data), shape)
    else:
        where_ = f"level {level.path!r}, region {_describe(region)}"
        arr = fit_data(data, shape, level.dtype, where_)
    if arr.size == 0:
        return
    if where is not None and where.shape != shape:
        raise ValueError(f"a mask of shape {where.shape} for a region of shape {shape}")
    codec = level.codec

    async def one(writes: Settling, plan: ShardPlan) -> None:
        key = level._prefix + plan.key
        mask = None if where is None else where[plan.out_selection]
        if mask is not None and not mask.any():
            return  # nothing of this object is written
        if mask is not None and mask.all():
            mask = None  # all of this object's part: as a plain write
        pixels = None
        try:
            async with AsyncExitStack() as stack:
                if not locked:
                    await stack.enter_async_context(level._write_locks.hold(key))
                try:
                    level.begun += 1  # a failed write that changed it may have landed parts
                    # once begun, run to its end when the caller is cancelled (bounded): a put
                    # whose await is cancelled may still land (obstore's local puts run on
                    # threads a cancel does not stop), after the lower levels were rebuilt
                    pixels = await writes.run(
                        _write_object,
                        level,
                        codec,
                        plan,
                        key,
                        region,
                        arr,
                        mask,
                        after,
                        merge,
                        what=f"the write of {key!r} (level {level.path!r})",
                    )
                finally:
                    level.forget_index(key)  # whatever happened, cached indexes may be stale
            if after is not None:
                part = tuple(
                    slice(r.start + o.start, r.start + o.stop)
                    for r, o in zip(region, plan.out_selection, strict=True)
                )
                if pixels is None:
                    pixels = np.asarray(arr[plan.out_selection], dtype=level.dtype)
                await after(part, pixels)
        except BaseException:  # the others are cancelled now (the watcher sees it later)
            writes.stop()
            raise

    from ._run_all import _run_all  # local: _level imports this module

    # one watcher for all the objects' writes, not one each (~90 us per object)
    try:
        async with settling() as writes:
            await _run_all(plan_shards(level.meta, region), partial(one, writes), level._window)
    except (CodecError, BaseExceptionGroup) as exc:  # a stored object that does not decode
        name_store(exc, level.store.url)
        raise


async def write_at(
    level: Level,
    region: Region,
    at: Any,
    values: Any,
    after: AfterWrite | None = None,
) -> None:
    """``block[at] = values`` for the block of ``level`` at ``region`` (``at``: a numpy index
    into the region's box: coordinate arrays, ``np.ix_`` arrays, slices), written back with
    one read of each stored object it touches: the object's own read-modify-write
    (:func:`_patch_object`), under its lock or conditional put. Reading the block first and
    writing it back read each object twice (the read's ranged GETs, then the patch's whole
    GET), and lost another process's write of the object's other pixels in between."""
    shape = region_shape(region)
    mask = np.zeros(shape, dtype=bool)
    mask[at] = True
    block = np.zeros(shape, dtype=level.dtype)
    block[at] = values
    await write_region(level, region, block, after, where=mask)


@asynccontextmanager
async def holding(level: Level, region: Region) -> AsyncIterator[None]:
    """Hold the write locks of every stored object of ``level`` that ``region`` touches (in key
    order: two holders of overlapping sets never deadlock); for a read-compute-write of
    ``region`` that no other writer of those objects may interleave with."""
    keys = sorted({level._prefix + p.key for p in plan_shards(level.meta, region)})
    async with AsyncExitStack() as stack:
        for key in keys:
            await stack.enter_async_context(level._write_locks.hold(key))
        yield


def object_region(level: Level, coords: tuple[int, ...]) -> Region:
    """The part of the array a stored object covers (clipped to the array's shape)."""
    stored = level.meta.stored_chunks
    return tuple(
        slice(c * s, min((c + 1) * s, n))
        for c, s, n in zip(coords, stored, level.shape, strict=True)
    )


async def _write_object(
    level: Level,
    codec: ChunkCodec | ShardCodec,
    plan: ShardPlan,
    key: str,
    region: Region,
    arr: NDArray[Any],
    mask: NDArray[np.bool_] | None = None,
    after: AfterWrite | None = None,
    merge: Combine | None = None,
) -> NDArray[Any] | None:
    """Write the object's part of ``arr`` (where ``mask`` marks it, ``None``: all; combined
    with the stored pixels by ``merge``); the pixels of that part as stored now when ``after``
    and ``mask`` or ``merge`` are given, else ``None``."""
    obj = object_region(level, plan.coords)
    piece = arr[plan.out_selection]
    # the box the piece fills inside the object
    local = tuple(
        slice(max(r.start, o.start) - o.start, min(r.stop, o.stop) - o.start)
        for r, o in zip(region, obj, strict=True)
    )
    valid = region_shape(obj)
    if valid != piece.shape or mask is not None or merge is not None:
        keep = after is not None and (mask is not None or merge is not None)
        out = np.empty(piece.shape, level.dtype) if keep else None
        patch = _Patch(piece, local, valid, mask, out, merge)
        await _patch_object(level, codec, key, patch)
        return out
    # the whole object: built from the data alone, no read. Elsewhere than on local disk a
    # concurrent read-modify-write of it by another process fails its conditional put and
    # merges again; on local disk it holds the object's lock, which this takes too: landing
    # between that write's read and its put, this write would be lost
    where = _local_file(level.store, key)
    whole = _Patch(piece, local, valid)
    if where is None:
        await _put_object(level, codec, key, whole)
        return None
    root, path = where
    async with _file_lock(path, level.store.url, key):
        stored = await _put_object(level, codec, key, whole)
    if not stored:
        _remove_empty_dirs(root, path)  # the lock file kept them when the object went
    return None


class _Patch(NamedTuple):
    """What one write puts into one stored object: ``piece`` at ``local`` (a box inside the
    object, whose in-bounds shape is ``valid``: edge objects are padded with the fill value
    beyond it), only where ``mask`` (of the piece's shape) is true (``None``: everywhere).
    ``out``: filled with the box's pixels as written (the others as they were stored).
    ``merge``: the box takes ``merge(stored box, piece)`` (elementwise), not ``piece``."""

    piece: NDArray[Any]
    local: Region
    valid: tuple[int, ...]
    mask: NDArray[np.bool_] | None = None
    out: NDArray[Any] | None = None
    merge: Combine | None = None


async def _put_object(
    level: Level, codec: ChunkCodec | ShardCodec, key: str, patch: _Patch
) -> bool:
    """Store ``patch``, the whole object ``key``, or delete it when all fill value; whether
    it was stored."""
    encoded = await _encode_whole(level, codec, key, patch)
    if encoded is None:
        await level.store.delete(key)
        return False
    await level.store.put(key, encoded)
    return True


#: conditional puts of one partial write before ``ChangedError`` (others rewrote it each time)
PATCH_ATTEMPTS = 10


async def _patch_object(
    level: Level, codec: ChunkCodec | ShardCodec, key: str, patch: _Patch
) -> None:
    """Read the object ``key`` (one GET), write ``patch`` into it and store it back, so that
    no other process's write of another part of it in between is lost."""
    store = level.store
    where = _local_file(store, key)
    if where is not None:  # local disk: one process at a time reads and rewrites this object
        root, path = where
        async with _file_lock(path, store.url, key):
            existing = await store.get(key)
            new = await level._workers.run(_encode_object, codec, key, existing, patch)
            if new is not None:
                await store.put(key, new)
            elif existing is not None:
                await store.delete(key)  # under the lock: no write of another can be lost
        if new is None and existing is not None:
            _remove_empty_dirs(root, path)  # the lock file kept them when the object went
        return

    async def edit(old: Buffer | None) -> Buffer | None:
        new = await level._workers.run(_encode_object, codec, key, old, patch)
        if new is None and old is not None:
            # all fill value: stored as such (an empty shard index, or a chunk of the fill
            # value), not deleted. A delete cannot be made conditional on these stores: one
            # after another process's put of this object would delete its pixels
            new = _fill_object(codec, key)
        return new  # None: absent and all fill value, left absent

    try:
        # a merge of another writer may give the same bytes as this one (two sums of +1 into
        # an absent object): only an idempotent one may take them for its own
        idempotent = patch.merge is None or getattr(patch.merge, "idempotent", False)
        await store.update(key, edit, attempts=PATCH_ATTEMPTS, idempotent=idempotent)
    except ChangedError as exc:
        raise ChangedError(
            f"the write of part of {key!r} (level {level.path!r}) at {store.url} was not stored: "
            f"other writers rewrote that object between each of {PATCH_ATTEMPTS} reads and "
            "conditional writes; it holds their data (write again, or write whole shards)",
            url=store.url,
            key=key,
        ) from exc


def _fill_object(codec: ChunkCodec | ShardCodec, key: str) -> bytes:
    """The stored bytes of an object all fill value: a shard without chunks, or a chunk."""
    if isinstance(codec, ShardCodec):
        return codec.wrap(codec.encode_chunks({}), key)
    return codec.encode(np.full(codec.shape, codec.fill_value, dtype=codec.dtype), key)


def _local_file(store: AsyncStore, key: str) -> tuple[str, str] | None:
    """The root directory and the file of ``key`` when ``store`` is a local directory
    (through test wrappers), else ``None``."""
    while isinstance(store, InstrumentedStore):
        store = store.inner
    if isinstance(store, LocalFileStore):
        root: str | None = store.root
    elif isinstance(store, ObstoreStore):
        root = local_prefix(store.obstore)
    else:
        return None
    return None if root is None else (root, os.path.join(root, *key.split("/")))


def _remove_empty_dirs(root: str, path: str) -> None:
    """Remove the directories of ``path`` below ``root`` that are empty, as local stores do
    after a delete."""
    parent = os.path.dirname(path)
    while parent != root and parent.startswith(root.rstrip(os.sep) + os.sep):
        try:
            os.rmdir(parent)
        except OSError:  # not empty (or gone): stop
            return
        parent = os.path.dirname(parent)


@asynccontextmanager
async def _file_lock(path: str, url: str, key: str) -> AsyncIterator[None]:
    """Hold the exclusive ``flock`` of ``<path>#0`` (made when missing, removed on release):
    tried without blocking (first in this thread: no thread hop when it is free), again after
    a short sleep while another process holds it, so waiting holds no thread and can be
    cancelled. A process that dies holding it releases it. Without ``fcntl`` (Windows):
    nothing."""
    if fcntl is None:
        yield
        return
    lock = path + "#0"
    failure = f"cannot lock {lock} to write"
    try:  # first here: a free lock costs a few calls on the local disk, no thread
        fd = _try_lock_file(lock)
    except OSError as exc:
        raise StoreError(f"{failure} {key!r} at {url}: {exc}", url=url, key=key) from exc
    if fd is None:  # held by another process: waited for without holding a thread
        fd = await take_lock(partial(_try_lock_file, lock), failure, url, key)
    try:
        yield
    finally:
        try:  # removed while held: a waiter that locked it then finds it gone and retries
            with suppress(FileNotFoundError):
                os.unlink(lock)
        finally:
            os.close(fd)


def _try_lock_file(lock: str) -> int | None:
    """A descriptor of the file ``lock`` holding its exclusive ``flock``, ``None`` when
    another holds it. The file locked is the one named ``lock`` now (its last holder may
    have removed it between the open and the lock: then it is opened again)."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # the object's directory is not there (yet, or any more)
            os.makedirs(os.path.dirname(lock), exist_ok=True)
            continue
        if not flock_or_close(fd):
            return None
        try:
            held = os.fstat(fd)
            try:
                now = os.stat(lock)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)


def _encode_object(
    codec: ChunkCodec | ShardCodec, key: str, existing: Buffer | None, patch: _Patch
) -> bytes | None:
    """The new bytes of one stored object, or ``None`` when it is all fill value (worker
    thread): ``existing`` (``None``: absent) with ``patch`` written into it."""
    if isinstance(codec, ShardCodec):
        return _encode_shard(codec, key, existing, patch)
    piece, local, valid, mask, out, merge = patch
    if existing is None:
        chunk = np.full(codec.shape, codec.fill_value, dtype=codec.dtype)
    else:
        chunk = np.array(codec.decode(existing, key), dtype=codec.dtype, copy=True)
    _put_piece(chunk[local], piece, mask, merge)
    if out is not None:
        out[...] = chunk[local]
    inside = tuple(slice(0, n) for n in valid)
    if codec.is_empty(chunk[inside]):
        return None
    return codec.encode(chunk, key)


#: inner chunks per worker call when a whole shard is encoded: the groups of one shard run in
#: parallel, so a shard written alone (the last ones of a write, of its pyramid) keeps every
#: core busy
ENCODE_GROUP = 16


async def _encode_whole(
    level: Level, codec: ChunkCodec | ShardCodec, key: str, patch: _Patch
) -> bytes | None:
    """:func:`_encode_object` of a whole object (no existing bytes), a shard of more than
    :data:`ENCODE_GROUP` inner chunks in several worker calls at once."""
    workers = level._workers
    coords = list(product(*_touched(codec, patch.local))) if isinstance(codec, ShardCodec) else []
    if len(coords) <= ENCODE_GROUP or workers.threads < 2:
        return await workers.run(_encode_object, codec, key, None, patch)
    assert isinstance(codec, ShardCodec)
    parts: list[dict[tuple[int, ...], bytes]] = []

    async def group(todo: list[tuple[int, ...]]) -> None:
        stored: dict[tuple[int, ...], bytes] = {}
        await workers.run(_encode_inner, codec, key, patch, todo, stored)
        parts.append(stored)

    with first_error():
        async with anyio.create_task_group() as tg:
            for i in range(0, len(coords), ENCODE_GROUP):
                tg.start_soon(group, coords[i : i + ENCODE_GROUP])
    stored = {c: b for part in parts for c, b in part.items()}
    if not stored:
        return None
    return await workers.run(_assemble, codec, key, stored)


def _touched(codec: ShardCodec, local: Region) -> list[range]:
    """Per axis, the inner chunks of a shard that ``local`` (a box in it) touches."""
    return [
        range(s.start // c, -(-s.stop // c)) for s, c in zip(local, codec.chunk_shape, strict=True)
    ]


def _assemble(codec: ShardCodec, key: str, stored: dict[tuple[int, ...], bytes]) -> bytes:
    """The stored object of shard ``key`` holding the encoded inner chunks ``stored``."""
    return codec.wrap(codec.encode_chunks(stored), key)


def _encode_shard(
    codec: ShardCodec, key: str, existing: Buffer | None, patch: _Patch
) -> bytes | None:
    stored: dict[tuple[int, ...], bytes] = {}
    if existing is not None:  # (a compressed shard: decompressed first, recompressed after)
        mv = memoryview(codec.unwrap(existing, key)).cast("B")
        n = len(mv)
        if n < codec.index_nbytes:
            raise CodecError(f"shard {key!r} is shorter ({n} bytes) than its index", key=key)
        index = codec.decode_index(mv[codec.index_slice(n)], key)
        if (bad := index.past_end(n)) is not None:
            raise past_end_error(key, *bad, n)
        for coords in index.nonempty():
            rng = index.chunk_range(coords)
            assert rng is not None
            stored[coords] = bytes(mv[rng[0] : rng[1]])
    _encode_inner(codec, key, patch, product(*_touched(codec, patch.local)), stored)
    if not stored:
        return None
    return _assemble(codec, key, stored)


def _encode_inner(
    codec: ShardCodec,
    key: str,
    patch: _Patch,
    todo: Iterable[tuple[int, ...]],
    stored: dict[tuple[int, ...], bytes],
) -> None:
    """Write ``patch`` into the inner chunks ``todo`` of shard ``key``: ``stored`` (their
    encoded bytes, from the existing shard) takes each one's new bytes, or loses it when it
    is all fill value (worker thread)."""
    piece, local, valid, mask, out, merge = patch
    inner = codec.inner
    cs = codec.chunk_shape
    same_dtype = piece.dtype == codec.dtype
    for coords in todo:
        box = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, cs, strict=True))
        # overlap of the write with this inner chunk, in chunk and in piece coordinates
        lo = [max(b.start, s.start) for b, s in zip(box, local, strict=True)]
        hi = [min(b.stop, s.stop) for b, s in zip(box, local, strict=True)]
        in_chunk = tuple(
            slice(a - b.start, z - b.start) for a, z, b in zip(lo, hi, box, strict=True)
        )
        in_piece = tuple(
            slice(a - s.start, z - s.start) for a, z, s in zip(lo, hi, local, strict=True)
        )
        label = f"{key}{list(coords)}"
        marked = None if mask is None else mask[in_piece]
        if marked is not None and not marked.any():  # nothing written here: bytes kept
            if out is not None:
                old_bytes = stored.get(coords)
                out[in_piece] = (
                    codec.fill_value
                    if old_bytes is None
                    else inner.decode(old_bytes, label)[in_chunk]
                )
            continue
        # in-bounds extent of this inner chunk (edge shards are padded)
        inside = tuple(
            slice(0, max(0, min(c, v - b.start))) for c, v, b in zip(cs, valid, box, strict=True)
        )
        covers = all(
            ic.start == 0 and ic.stop >= ins.stop for ic, ins in zip(in_chunk, inside, strict=True)
        ) and (marked is None or bool(marked.all()))
        old = stored.pop(coords, None)
        plain = merge is None and mask is None and out is None
        if covers and plain and _whole(in_chunk, cs) and same_dtype:
            part = piece[in_piece]  # encoded from the caller's pixels: no fill, no copy here
            if not inner.is_empty(part[inside]):
                stored[coords] = inner.encode(part, label)
            continue
        if (covers and merge is None) or old is None:
            chunk = np.full(cs, codec.fill_value, dtype=codec.dtype)
        else:
            chunk = np.array(inner.decode(old, label), dtype=codec.dtype, copy=True)
        _put_piece(chunk[in_chunk], piece[in_piece], marked, merge)
        if out is not None:
            out[in_piece] = chunk[in_chunk]
        if not inner.is_empty(chunk[inside]):
            stored[coords] = inner.encode(chunk, label)


def _put_piece(
    box: NDArray[Any],
    piece: NDArray[Any],
    mask: NDArray[np.bool_] | None,
    merge: Combine | None,
) -> None:
    """Write ``piece`` (or ``merge(box, piece)``) into ``box`` (a view of the stored pixels
    being patched), where ``mask`` marks (``None``: everywhere; with ``merge``: the marked
    pixels alone are merged, as 1-D arrays)."""
    if merge is None:
        if mask is None:
            box[...] = piece
        else:
            np.copyto(box, piece, where=mask)
    elif mask is None:
        box[...] = merge(box, piece)
    else:
        box[mask] = merge(box[mask], piece[mask])


def _whole(box: tuple[slice, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``box`` (slices with a start and a stop) is all of a chunk of ``shape``."""
    return all(b.start == 0 and b.stop == n for b, n in zip(box, shape, strict=True))


def checked_max_pending(given: Any) -> int:
    """``max_pending`` as an int >= 1 (numpy integers too; not a bool, a float or a string)."""
    if isinstance(given, bool | np.bool_) or not isinstance(given, numbers.Integral):
        raise TypeError(f"max_pending must be an integer, got {given!r}")
    if int(given) < 1:
        raise ValueError(f"max_pending must be >= 1, got {int(given)}")
    return int(given)


class LevelWriter:
    """Writes tiles into one level with at most ``max_pending`` writes in flight.

    Made by :meth:`Dataset.writer`; ``await w.write(tile)`` waits while ``max_pending`` writes are
    pending (backpressure), then starts the write in the writer's task group and returns. Leaving
    the ``async with`` block waits for every pending write; the first failure is raised there (and
    by the next ``write``). On a failure, or when the block raises or is cancelled, no tile is
    left half written: the writes under way that span several stored objects are finished
    (within ``SETTLE_SECONDS``), one of a single object is stored whole or not at all, and
    the queued ones are dropped. Writes run concurrently, but one overlapping an earlier pending write
    starts after it: the last write of a pixel wins, as in numpy.
    """

    def __init__(
        self,
        level: Level,
        max_pending: int,
        cascade: Cascade | None = None,
        axes: tuple[str, ...] | None = None,
    ) -> None:
        max_pending = checked_max_pending(max_pending)
        self.level = level
        self.axes = axes  # the level's axis names (``stream`` maps tiles of other axes by them)
        self.cascade = cascade
        self._after = None if cascade is None else partial(cascade.add, 0)
        self.max_pending = max_pending
        self._slots = anyio.Semaphore(max_pending)
        self._tg: Any = None
        self._writes = Settling()  # (the block's own, from open_writer)
        self._failures: list[Exception] = []
        self._in_flight: dict[int, tuple[Region, anyio.Event]] = {}
        self._started = 0
        self.written = 0
        self.unsure: list[Region] = []  # writes stopped after some of their objects landed

    @property
    def pending(self) -> int:
        """Writes started and not finished."""
        return self.max_pending - self._slots.value

    async def write(self, tile: Tile | tuple[Sequence[slice], Any]) -> None:
        """Write a :class:`~ngio_async.Tile` (its ``core_data`` at its ``core``) or ``(region, data)``.

        ``region`` is one slice per axis of the level (``None`` bounds allowed, step 1). The
        write runs after this returns: do not modify ``data`` until the block has exited.
        """
        if self._tg is None:
            raise RuntimeError("use the writer inside its 'async with' block")
        if self._failures:
            raise self._failures[0]
        if isinstance(tile, Tile):
            region_in: Sequence[slice] = tile.core
            data: Any = tile.core_data
        elif (
            isinstance(tile, tuple | list)
            and len(tile) == 2
            and isinstance(tile[0], Sequence)
            and not isinstance(tile[0], str | bytes)
        ):
            region_in, data = tile
        else:
            raise TypeError(
                f"write takes a Tile or (region, data), got {_short(tile)} (level "
                f"{self.level.path!r}; region: one slice per axis of the level)"
            )
        if len(region_in) != self.level.ndim:  # e.g. image tiles (with c) into a label (no c)
            raise ValueError(
                f"a tile region of {len(region_in)} axes for a level of {self.level.ndim} "
                f"(level {self.level.path!r}): give one slice per axis of the level"
            )
        sel = normalize_selection(tuple(region_in), self.level.shape)
        if any(st != 1 for st in sel.steps) or sel.drop_axes or len(region_in) != self.level.ndim:
            raise ValueError(
                f"a tile region needs one step-1 slice per axis ({self.level.ndim}), got "
                f"{tuple(region_in)}"
            )
        where = f"level {self.level.path!r}, region {_describe(sel.region)}"
        arr = fit_data(data, region_shape(sel.region), self.level.dtype, where)
        await self._slots.acquire()
        # earlier writes overlapping this one finish first: the last write of a pixel wins,
        # as in numpy (a large write, its objects written a window at a time, overtook a small
        # one after it and wrote its older pixels last)
        before = [done for r, done in self._in_flight.values() if _overlaps(r, sel.region)]
        done = anyio.Event()
        token = self._started
        self._started += 1
        self._in_flight[token] = (sel.region, done)
        start_deferred(self._tg, self._one, sel.region, arr, before, token)

    async def _one(
        self, region: Region, data: NDArray[Any], before: list[anyio.Event], token: int
    ) -> None:
        landed, done = self.level.begun, False
        try:
            for earlier in before:
                await earlier.wait()
            if _one_object(self.level, region):  # one put (or none): whole or not at all
                await self.level.write(region, data, self._after)
            else:  # once started, run to its end when the block raises, is cancelled or
                # another write fails (bounded): never half a tile written (queued: dropped)
                what = f"the write of level {self.level.path!r}, region {_describe(region)}"
                await self._writes.run(self.level.write, region, data, self._after, what=what)
            self.written += 1
            done = True
        except Exception as exc:  # noqa: BLE001 - re-raised plainly at the boundary
            self._failures.append(exc)
            self._writes.stop()  # the writes under way: finished within SETTLE_SECONDS
            self._tg.cancel_scope.cancel()
        finally:
            if not done and self.level.begun != landed:  # (or another write's objects)
                self.unsure.append(region)
            self._in_flight.pop(token)[1].set()
            self._slots.release()


@asynccontextmanager
async def open_writer(
    level: Level,
    max_pending: int,
    cascade: Cascade | None = None,
    axes: tuple[str, ...] | None = None,
) -> AsyncIterator[LevelWriter]:
    """The context of :meth:`Dataset.writer`: owns the task group of the pending writes."""
    writer = LevelWriter(level, max_pending, cascade, axes)
    leaf: BaseException | None = None
    finishing = False
    try:
        try:  # one watcher of the writes under way for the whole block, not one per tile
            async with settling() as writer._writes, anyio.create_task_group() as tg:
                writer._tg = tg
                try:
                    yield writer
                except BaseException:  # (the watcher sees it only once the writes ended)
                    writer._writes.stop()
                    raise
        except BaseExceptionGroup as group:
            leaf = single_leaf(group)
            if leaf is None:
                raise
        finally:
            writer._tg = None
        if leaf is not None:  # the block's own error (a stream's func failed): that one
            for failure in writer._failures:
                if failure is not leaf:  # (not raised again by ``w.write``)
                    leaf.add_note(f"meanwhile a pending write failed: {failure!r}")
            raise leaf
        if writer._failures:
            raise writer._failures[0]
        if cascade is not None:
            finishing = True
            await cascade.finish()
    except BaseException as exc:
        if cascade is not None and not finishing:  # the lower levels follow the tiles written
            await cascade.settle(exc, writer.unsure)
        raise
    finally:
        if cascade is not None:
            cascade.discard()  # a failed block cascades nothing more (after finish: no-op)


if TYPE_CHECKING:
    from ._stream import TileWriter

    _IS_TILE_WRITER: type[TileWriter] = LevelWriter  # mypy checks the protocol is satisfied


def fit_data(data: Any, shape: tuple[int, ...], dtype: np.dtype[Any], where: str) -> NDArray[Any]:
    """``data`` broadcast to ``shape`` (numpy assignment rules: leading axes of length 1 beyond
    ``shape`` are dropped), or a ``ValueError`` naming the shapes and ``where``; text or objects into a numeric level are refused the same way, and
    values that are no value of ``dtype`` too: Python numbers as numpy assignment refuses them
    (``70000`` or ``-1`` for ``uint16``, NaN for an integer type), arrays whose values would
    wrap or be made up by the cast (:func:`_check_in_range`)."""
    given = np.asarray(data)
    python = isinstance(data, numbers.Number | list | tuple) and not isinstance(data, np.generic)
    if python and given.dtype.kind == "O" and all(type(v) is int for v in given.flat):
        try:  # ints beyond 64 bits: as numpy casts them (2**70 into float64), or refused
            given = np.asarray(data, dtype=float)
        except OverflowError as exc:
            raise ValueError(f"{_short(data)} is not a {dtype} value ({where}): {exc}") from None
    if given.dtype.kind in "USOV" and dtype.kind not in "USOV":
        raise ValueError(
            f"data of dtype {given.dtype} cannot be written to a {dtype} level ({where})"
        )
    if python:
        if dtype.kind in "fc" and given.size:  # numpy makes an overflow inf, with a warning
            _check_in_range(given, dtype, where)
        try:  # numpy arrays are cast as numpy casts them; Python numbers must fit
            cast = np.asarray(data, dtype=dtype)
        except (OverflowError, ValueError, TypeError) as exc:
            raise ValueError(f"{_short(data)} is not a {dtype} value ({where}): {exc}") from None
        if dtype.kind in "iu" and given.size and isinstance(data, list | tuple):
            _check_in_range(given, dtype, where)  # numpy scalars in it were cast unchecked
        given = cast
    elif dtype.kind in "iufc" and given.dtype != dtype and given.size:
        _check_in_range(given, dtype, where)
        if given.dtype.kind == "c" and dtype.kind != "c":  # imaginary parts all 0 (checked)
            given = given.real  # (numpy's cast would warn that it drops them)
    extra = given.ndim - len(shape)
    if extra > 0 and all(n == 1 for n in given.shape[:extra]):  # numpy assignment drops them
        given = given.reshape(given.shape[extra:])
    try:
        return np.broadcast_to(given, shape)
    except ValueError:
        raise ValueError(
            f"data of shape {given.shape} does not fit the selection of shape {shape} "
            f"({where}); give that shape or one that broadcasts to it"
        ) from None


def _check_in_range(given: NDArray[Any], dtype: np.dtype[Any], where: str) -> None:
    """Values a level cannot hold are refused: numpy's cast would wrap them (-1 -> 255 in
    uint8: two label ids merged) or make them up (NaN, inf and ``2.0**31`` into int32 give
    -2**31; ``1e40`` into float32 gives inf). Fractions are truncated, as numpy truncates them
    (255.5 fits uint8). The extremes decide: a cast is monotonic. Complex data: into a real
    level only with no imaginary part, its real part checked; into a narrower complex one,
    both parts checked as floats."""
    if given.dtype.kind == "c" and not np.can_cast(given.dtype, dtype):
        if dtype.kind != "c":
            if np.any(given.imag != 0):  # (NaN too)
                raise ValueError(
                    f"data holds complex values with an imaginary part, which a {dtype} level "
                    f"cannot hold ({where}): write their .real (or abs) if that is meant"
                )
            given = given.real
        else:
            given = np.concatenate((given.real.ravel(), given.imag.ravel()))
    if given.dtype.kind not in "biuf" or np.can_cast(given.dtype, dtype):
        return  # others: numpy's own rules (it warns or raises)
    if dtype.kind in "fc":  # a narrower float (or int into float16): overflow makes inf
        low, high = given.min(), given.max()
        if not (np.isfinite(low) and np.isfinite(high)):  # NaN or inf (kept): the finite rest
            finite = given[np.isfinite(given)]
            if not finite.size:
                return
            low, high = finite.min(), finite.max()
        with np.errstate(over="ignore"):
            fits = np.isfinite(dtype.type(low)) and np.isfinite(dtype.type(high))
        if not fits:
            finfo = np.finfo(dtype)
            raise ValueError(
                f"data values {low}..{high} do not fit a {dtype} level ({finfo.min}..{finfo.max};"
                f" {where}): they would become infinite"
            )
        return
    info = np.iinfo(dtype)
    low, high = given.min(), given.max()
    if given.dtype.kind == "f":
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(
                f"data holds NaN or infinity, which a {dtype} level cannot hold ({where})"
            )
        # Python floats and ints compare exactly (2.0**63 > 2**63 - 1, unlike in numpy)
        bounds = (float(np.trunc(low)), float(np.trunc(high)))
    else:
        bounds = (int(low), int(high))
    if bounds[0] < info.min or bounds[1] > info.max:
        raise out_of_range(low, high, dtype, where)


def out_of_range(low: object, high: object, dtype: np.dtype[Any], where: str) -> ValueError:
    """The error of integer data values ``low..high`` that a ``dtype`` level cannot hold."""
    info = np.iinfo(dtype)
    return ValueError(
        f"data values {low}..{high} do not fit a {dtype} level ({info.min}..{info.max}; "
        f"{where}): cast them yourself if wrapping is meant"
    )


def _one_object(level: Level, region: Region) -> bool:
    """Whether ``region`` lies in one stored object (chunk or shard) of ``level``."""
    stored = level.meta.stored_chunks
    return all(r.start // s == (r.stop - 1) // s for r, s in zip(region, stored, strict=True))


def _overlaps(a: Region, b: Region) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b, strict=True))


def _short(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(region: Region) -> str:
    return "[" + ", ".join(f"{r.start}:{r.stop}" for r in region) + "]"
