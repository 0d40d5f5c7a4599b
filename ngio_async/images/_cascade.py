"""The pyramid built while level 0 is written: ``ds.write(..., pyramid=True)``, ``writer(pyramid=True)``.

Every stored object written to level ``L`` hands its pixels (still in memory) to the cascade,
which downsamples them in a worker thread into an *accumulator*: the in-memory pixels of one
stored object (shard, else chunk) of level ``L + 1``. When an accumulator has received every
pixel of its object it is written whole (no read-modify-write) and handed on to level ``L + 2``.
So the lower levels are computed from memory, concurrently with the level-0 writes, and nothing
is read back from the store.

Correctness never depends on the order or the alignment of the writes:

- a written region whose edges do not fall on the downsampling windows (``start % f != 0``, or
  ``stop`` not on a window edge nor the array's end) is not cascaded: its level-0 extent is
  remembered;
- a piece overlapping one already in its accumulator (the same pixels written twice), and
  accumulators evicted to keep the held bytes within ``max_bytes``, are *tainted*: their level-0
  extent is remembered and they take no more pieces;
- a piece for an object already written from memory (pixels written twice, whose downsampling
  may finish in either order) is not cascaded: the object's level-0 extent is remembered;
- cascades of one dataset whose lives overlap (concurrent ``write(..., pyramid=True)`` calls,
  or one inside a ``writer(pyramid=True)`` block) are *shared*: from then on neither writes from
  memory (its pixels may be older than what the other one wrote to level 0), each remembers
  what it writes instead;
- :meth:`Cascade.finish` rebuilds every remembered extent and every accumulator still incomplete
  (an object only partly written) from the store with ``build_pyramid(regions=...)``, once all
  writes are done. The result equals ``write`` followed by a full ``build_pyramid``.
- a write that fails (or a ``writer`` block that raises or is cancelled) still rebuilds the
  lower levels over the level-0 pixels that landed (:meth:`Cascade.settle`), so no level
  shows other pixels than level 0 holds.

A lower-level object is rebuilt under its write lock, taken before level 0 is read and
shared by every open of the image in the process (per event loop: the sync API's threads
share one): of two rebuilds of one tile, the later reads level 0 after the earlier wrote,
so it sees both writes. Cascades of *other* opens of the image count as alive too.

Writers in *other processes* (dask workers; or other event loops) are coordinated through the
store, per tile of a lower level, by who may write the pixels it depends on:

- a tile whose every level-0 pixel this cascade wrote (its level-0 chunks, written whole) is
  written as above, from memory or rebuilt plainly, after those pixels landed: no writer of a
  region disjoint from this one's writes a pixel of it; one rebuilding it too (its rebuild
  regions reach past its own pixels) does so as below, and this write changes the tile's
  version (or waits for its ``flock``): a rebuild that read level 0 before is refused;
- a tile depending on level-0 pixels this cascade did not write (it reaches past the regions
  written: another process may write there now) is rebuilt at the end so that of the
  rebuilds of it by several processes, the one stored last read its source after every other's
  writes of that source landed (each writer rebuilds the tiles over its pixels after writing
  them): on local disk under the tile's ``flock`` from the read of its source to its write;
  elsewhere put conditional on the tile's version read before the source (S3, GCS, Azure,
  memory; an S3-compatible server without conditional puts gets plain ones), read and rebuilt
  again when another was stored meanwhile (and stored even when all fill value: a delete
  cannot be conditional). This costs one GET of the tile per such rebuild
  on those stores (nothing on local disk); cascades of one process writing the whole image,
  or whole tiles, pay nothing.

So when processes write disjoint regions with ``pyramid=True`` at once, every level ends equal
to the pyramid rebuilt from level 0 once they all finished. Not covered: processes writing the
same pixels at once (level 0 then holds one of them per stored object, a lower tile may be
the other's), and a coincidence on the stores with conditional writes: a write giving the very
bytes the tile holds leaves its version (nothing is written; on S3 the ETag is the bytes'
hash anyway), so a rebuild that read level 0 before that writer's pixels landed and got other
bytes is not refused.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass, field
from functools import partial
from itertools import product
from typing import TYPE_CHECKING, Any, cast

import anyio
import numpy as np

from .._prefetch import settled
from ..engine.pyramid import ngio_maps, region_footprint, sampled, source_extent
from ._pyramid import (
    _METHODS,
    _NGIO_IMAGE,
    _is_label,
    _record_method,
    _reduce,
    build_pyramid,
    default_method,
    level_factors,
    rebuilding,
)
from ._write import object_region, write_region

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from numpy.typing import NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
    from ._dataset import Dataset
    from ._level import Level

__all__ = ["Cascade", "LevelCascade", "level_cascade"]


@dataclass(eq=False)
class _Acc:
    """The pixels of one stored object of a lower level, filled piece by piece."""

    region: Region  # the object's region in its level (clipped to the shape)
    data: NDArray[Any]
    missing: int  # pixels not received yet
    pieces: list[Region] = field(default_factory=list)  # received, in object-local coordinates
    tainted: bool = False

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


#: the cascades alive per image (``<store URL>/<root>``: every open of it in the process; weak:
#: a write that failed drops its cascade with its frame)
_ALIVE: dict[str, weakref.WeakSet[Cascade]] = {}


def _image_key(ds: Dataset) -> str:
    return f"{ds.store.url.rstrip('/')}/{ds.root.strip('/')}"


def _chunks(level: Level) -> int:
    """How many (inner) chunks ``level`` has."""
    return math.prod(-(-n // c) for n, c in zip(level.shape, level.meta.chunks, strict=True))


def _whole_chunks(level: Level, region: Region) -> Iterator[tuple[int, ...]]:
    """The grid coordinates of the (inner) chunks of ``level`` that ``region`` covers whole."""
    stored = level.meta.chunks
    ranges = [
        range(-(-r.start // s), r.stop // s if r.stop < n else -(-n // s))
        for r, s, n in zip(region, stored, level.shape, strict=True)
    ]
    return product(*ranges)


def _overlaps(a: Region, b: Region) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b, strict=True))


def _note_unbuilt(error: BaseException, cause: BaseException | None) -> None:
    """Tell, on ``error``, that the lower levels may not follow level 0 (``cause``: why, when
    it is another error), and what mends them."""
    why = "" if cause is None else f" ({cause!r})"
    error.add_note(
        f"the lower levels were not rebuilt over the pixels written{why}: run "
        "build_pyramid(regions=...) over the region written"
    )


def _pick(data: NDArray[Any], picks: tuple[NDArray[Any], ...], dtype: np.dtype[Any]) -> Any:
    """The pixels ``picks`` (per axis) of ``data``, in ``dtype`` (worker thread)."""
    return np.asarray(data)[np.ix_(*picks)].astype(dtype, copy=False)


def _aligned(region: Region, factors: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return all(
        s.start % f == 0 and (s.stop % f == 0 or s.stop == n)
        for s, f, n in zip(region, factors, shape, strict=True)
    )


class Cascade:
    """Feeds regions written to one level down the pyramid, from memory (see the module doc)."""

    def __init__(
        self,
        ds: Dataset,
        method: Method | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self._ds = ds
        self._levels: list[Level] = list(ds.levels)
        self._method: Method = default_method(ds) if method is None else method
        if self._method not in _METHODS:
            raise ValueError(
                f"pyramid must be True or one of {', '.join(_METHODS)}; got {method!r}"
            )
        if self._method == "mean" and _is_label(ds):  # averaging label ids makes up new ones
            raise ValueError(
                "pyramid='mean' would average label ids (1 and 9 give 5); label images "
                "downsample with 'mode' (pyramid=True), 'nearest' or 'ngio'"
            )
        if self._method == "ngio" and not _is_label(ds):
            raise ValueError(_NGIO_IMAGE.format(what="pyramid", url=ds.url))
        self._factors = level_factors(ds, self._method)  # [i]: level i -> i + 1
        # "ngio": per level, the source pixel each pixel of the next takes (any region written
        # gives the pixels taking its own: no window to align to)
        self._index = (
            ngio_maps(
                [lvl.shape for lvl in self._levels],
                [lvl.meta.chunks for lvl in self._levels],
                names=([lvl.path for lvl in self._levels], ds.axes, ds.store.url),
            )
            if self._method == "ngio"
            else None
        )
        self._max_bytes = ds.limits.prefetch_bytes if max_bytes is None else max_bytes
        self._accs: dict[tuple[int, tuple[int, ...]], _Acc] = {}
        self._done: set[tuple[int, tuple[int, ...]]] = set()  # objects written from memory
        self._held = 0
        self._redo: list[Region] = []  # level-0 extents to rebuild from the store at the end
        self.cascaded = 0  # objects of lower levels written from memory
        self.touched = False  # level-0 pixels landed (what a failed write must still follow)
        self._whole0: set[tuple[int, ...]] = set()  # level-0 chunks written whole
        self.shared = False  # alive together with another cascade of the dataset
        self._settling = False  # settle() runs finish(): a cancellation there is its own
        self._key = _image_key(ds)
        alive = _ALIVE.setdefault(self._key, weakref.WeakSet())
        for other in alive:
            other.shared = self.shared = True
        alive.add(self)

    @property
    def held_bytes(self) -> int:
        """Bytes held in accumulators now."""
        return self._held

    def _level0_extent(self, level: int, region: Region) -> Region:
        """The level-0 pixels that ``region`` of ``level`` covers."""
        shape0 = self._levels[0].shape
        out = list(region)
        for i in range(level - 1, -1, -1):
            if self._index is not None:
                out = list(source_extent(tuple(out), self._index[i]))
                continue
            fs = self._factors[i]
            out = [slice(s.start * f, s.stop * f) for s, f in zip(out, fs, strict=True)]
        return tuple(
            slice(min(s.start, n), min(s.stop, n)) for s, n in zip(out, shape0, strict=True)
        )

    def _remember(self, level: int, region: Region) -> None:
        self._redo.append(self._level0_extent(level, region))

    def _taint(self, acc: _Acc, level: int) -> None:
        if not acc.tainted:
            acc.tainted = True
            self._held -= acc.nbytes
            acc.data = np.empty((0,), dtype=acc.data.dtype)
            self._remember(level, acc.region)

    async def add(self, level: int, region: Region, data: NDArray[Any]) -> None:
        """``data`` was written to ``region`` of ``level``: cascade it to ``level + 1``."""
        if level + 1 >= len(self._levels) or math.prod(data.shape) == 0:
            return
        src, dst = self._levels[level], self._levels[level + 1]
        factors = self._factors[level]
        if level == 0:
            self.touched = True
            self._whole0.update(_whole_chunks(src, region))
        if self.shared or (self._index is None and not _aligned(region, factors, src.shape)):
            self._remember(level, region)
            return
        if self._index is not None:
            target, picks = sampled(region, self._index[level])
            if any(t.stop <= t.start for t in target):
                return  # no pixel of the next level takes one of these
            reduced = await self._ds._workers.run(_pick, data, picks, dst.dtype)
        else:
            reduced = await self._ds._workers.run(
                _reduce, np.asarray(data), factors, self._method, dst.dtype
            )
            target = region_footprint(region, factors, dst.shape)
        stored = dst.meta.stored_chunks
        ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(target, stored, strict=True)]
        for coords in product(*ranges):
            await self._put(level + 1, dst, coords, target, reduced)

    async def _put(
        self,
        level: int,
        dst: Level,
        coords: tuple[int, ...],
        target: Region,
        reduced: NDArray[Any],
    ) -> None:
        obj = object_region(dst, coords)
        lo = [max(t.start, o.start) for t, o in zip(target, obj, strict=True)]
        hi = [min(t.stop, o.stop) for t, o in zip(target, obj, strict=True)]
        local = tuple(slice(a - o.start, b - o.start) for a, b, o in zip(lo, hi, obj, strict=True))
        piece = reduced[
            tuple(slice(a - t.start, b - t.start) for a, b, t in zip(lo, hi, target, strict=True))
        ]
        key = (level, coords)
        if key in self._done:  # written once already: which write is last is not known here
            self._remember(level, obj)
            return
        acc = self._accs.get(key)
        if acc is None:
            shape = tuple(o.stop - o.start for o in obj)
            acc = _Acc(obj, np.empty(shape, dtype=dst.dtype), math.prod(shape))
            self._accs[key] = acc
            self._held += acc.nbytes
            self._evict(keep=acc)
        if acc.tainted:
            return
        if any(_overlaps(local, p) for p in acc.pieces):
            self._taint(acc, level)
            return
        acc.data[local] = piece
        acc.pieces.append(local)
        acc.missing -= piece.size
        if acc.missing > 0:
            return
        del self._accs[key]
        self._done.add(key)
        self._held -= acc.nbytes
        if self.shared:  # another cascade may have written newer pixels to its level-0 extent
            self._remember(level, obj)
            return
        await write_region(dst, obj, acc.data)
        self.cascaded += 1
        await self.add(level, obj, acc.data)

    def _evict(self, keep: _Acc) -> None:
        """Taint the largest accumulators until the held bytes fit ``max_bytes``."""
        if self._held <= self._max_bytes:
            return
        live = sorted(
            ((k, a) for k, a in self._accs.items() if not a.tainted and a is not keep),
            key=lambda ka: ka[1].missing,
            reverse=True,
        )
        for (level, _), acc in live:
            if self._held <= self._max_bytes:
                break
            self._taint(acc, level)

    async def finish(self) -> None:
        """Rebuild what could not be cascaded (see the module doc) from the store; cancelled
        part way, the rebuild is finished all the same (as :meth:`settle`) before the
        cancellation goes on."""
        for (level, _), acc in self._accs.items():
            if not acc.tainted:
                self._remember(level, acc.region)
        self._accs.clear()
        self._done.clear()
        self._held = 0
        redo = [r for r in self._redo if all(s.stop > s.start for s in r)]
        self._redo = []
        # every level-0 chunk rewritten (by this cascade alone): every lower level is now
        # this method's, as after build_pyramid(method=...): the multiscale says so
        whole = (
            not self.shared
            and len(self._levels) > 1
            and len(self._whole0) == _chunks(self._levels[0])
        )
        mine, self._whole0 = self._whole0, set()
        try:
            # not under the dataset's structure lock: rebuilds of other writes run meanwhile
            async with rebuilding(self._ds):
                if redo:
                    await build_pyramid(
                        self._ds,
                        method=self._method,
                        regions=redo,
                        shared=partial(self._shared_tile, mine),
                    )
                if whole:
                    await _record_method(self._ds, self._method)
        except anyio.get_cancelled_exc_class() as exc:
            if self._settling:
                raise
            # cancelled part way: level 0 holds every pixel written, so the lower levels are
            # rebuilt all the same (shielded, within SETTLE_SECONDS), as after a failed write
            self._redo[:0] = redo
            self._whole0 |= mine
            await self.settle(exc)
            raise
        except Exception as exc:
            if not self._settling:  # (settle notes its own error)
                _note_unbuilt(exc, None)
            raise
        finally:
            self.discard()

    async def settle(self, error: BaseException, unsure: Sequence[Region] = ()) -> None:
        """After a write that failed (or a ``writer`` block that raised or was cancelled):
        the lower levels still follow what level 0 got, rebuilt over the pixels that landed
        and over ``unsure`` (level-0 regions of writes stopped after some of their objects
        landed), even when the caller is cancelled (within ``SETTLE_SECONDS``). If that
        fails too, ``error`` says so in a note naming what to rebuild."""
        for region in unsure:
            self._remember(0, region)
            self.touched = True
        if not self.touched:
            self.discard()
            return
        self._settling = True
        failed = await settled(self.finish)
        self.discard()
        if failed is not None and isinstance(error, Exception):
            _note_unbuilt(error, failed)

    def _shared_tile(self, mine: set[tuple[int, ...]], level: int, region: Region) -> bool:
        """Whether the tile of ``level`` at ``region`` depends on level-0 pixels that this
        cascade did not write (``mine``: the level-0 chunks it wrote whole): another process
        may write those at the same time, and rebuild the tile too."""
        extent = self._level0_extent(level, region)
        chunks = self._levels[0].meta.chunks
        ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(extent, chunks, strict=True)]
        return any(coords not in mine for coords in product(*ranges))

    def discard(self) -> None:
        """Stop counting as alive (the writes failed: nothing more is cascaded)."""
        alive = _ALIVE.get(self._key)
        if alive is not None:
            alive.discard(self)
            if not alive:
                del _ALIVE[self._key]


class LevelCascade(Cascade):
    """``pyramid=`` writing level ``index`` > 0 of a label image (ngio's ``set_array`` at that
    level, then ``consolidate()``): the coarser levels built from it as the writes land (a
    :class:`Cascade` over the levels from ``index`` on), the finer ones upsampled from it
    (nearest) over the regions written once every write is done, and after a failure over
    what landed. The result equals the write followed by
    ``build_pyramid(from_level=index, regions=[the region written])``."""

    def __init__(self, ds: Dataset, index: int, method: Method | None = None) -> None:
        from ._upsample import Finer

        ds.structure_lock()  # (made now: the view shares it)
        view = copy.copy(ds)
        view.levels = ds.levels[index:]
        super().__init__(view, method)
        self.target = ds
        self.finer = Finer(ds, index, self._method)
        self._noted = False  # the writer notes its regions (with masks): add() does not

    def note(self, region: Region, mask: NDArray[np.bool_] | None = None) -> None:
        """The writer will write ``region`` of the level (``mask``: only those pixels)."""
        self._noted = True
        self.finer.add(region, mask)

    async def add(self, level: int, region: Region, data: NDArray[Any]) -> None:
        if level == 0:
            self.finer.keep(region, data)  # upsampled from these pixels, not read back
            if not self._noted:
                self.finer.add(region)
        await super().add(level, region, data)

    async def finish(self) -> None:
        try:
            await super().finish()
        except Exception as exc:
            await self.finer.settle(exc)
            raise
        finally:
            self.target.metadata = self._ds.metadata  # (the end may record the method)
        await self.finer.build()

    async def settle(self, error: BaseException, unsure: Sequence[Region] = ()) -> None:
        if not self._noted:
            for region in unsure:
                self.finer.add(region)
        await super().settle(error, unsure)
        self.target.metadata = self._ds.metadata
        await self.finer.settle(error)


def level_cascade(ds: Dataset, index: int, pyramid: bool | Method) -> LevelCascade:
    """The cascade of a write of level ``index`` > 0 with ``pyramid``; refused (before any
    I/O) for an image that is no label image: its finer levels hold pixels no upsampling
    gives back."""
    from ._upsample import refuse_upsampling

    refuse_upsampling(
        ds,
        index,
        f"pyramid={pyramid!r}",
        "write level 0 with pyramid=True, or this level with pyramid=False",
    )
    ds._check_first_multiscale("pyramid=")
    return LevelCascade(ds, index, None if pyramid is True else cast("Method", pyramid))
