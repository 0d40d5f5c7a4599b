"""Blocking array-likes: a pyramid level (:class:`SyncLevel`), the ``oindex`` / ``vindex``
indexers, and numpy's ``__array__`` protocol."""

from __future__ import annotations

import math
import weakref
from typing import TYPE_CHECKING, Any

from ._sync_fast import (
    keeps_indexes,
    local_small,
    plain_selection,
    read_kept,
    read_local,
    read_local_split,
    reading,
)
from .images._index_cache import IndexCache

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from numpy.typing import ArrayLike, NDArray

    from ._sync_api import SyncDataset
    from .images import Level
    from .sync import Runner

__all__ = ["SyncIndexer", "SyncLevel"]

# per remote read-only sharded level: the shard indexes its blocking reads decoded, with their
# shards' versions (kept by the level, not by a SyncLevel: ``ds[...]`` makes one per read)
_kept_remote: weakref.WeakKeyDictionary[Level, IndexCache] = weakref.WeakKeyDictionary()


class SyncLevel:
    """One pyramid level as a blocking array-like (``shape``, ``dtype``, ``[...]``, ``__array__``)."""

    #: the level's index when it is a level of an unpickled copy not opened yet (it opens on
    #: first use, see :func:`_level_of`)
    _index: int | None = None

    def __init__(self, runner: Runner, level: Level, parent: SyncDataset | None = None) -> None:
        self._runner = runner
        self._level = level
        self._parent = parent  # keeps the dataset (and its lease) alive while the level is used

    @classmethod
    def _unopened(cls, parent: SyncDataset, index: int) -> SyncLevel:
        """Level ``index`` of ``parent``, an unpickled copy not opened yet: opened on first use."""
        level = cls.__new__(cls)
        level._parent = parent
        level._index = index
        return level

    if not TYPE_CHECKING:  # (mypy: no blanket attribute access on SyncLevel)

        def __getattr__(self, name: str) -> Any:
            # reached only for what a level of an unopened copy lacks: its dataset opens now
            if name in ("_runner", "_level") and self._index is not None:
                opened = self._parent.levels[self._index]
                self._runner, self._level = opened._runner, opened._level
                return object.__getattribute__(self, name)
            raise AttributeError(f"'SyncLevel' object has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its dataset's way to reopen plus the level index (dask's schedulers)."""
        parent = self._parent
        if parent is None:
            raise TypeError(f"{self!r} cannot be pickled: it has no dataset to reopen")
        # (by its async level: two threads asking ``parent.levels`` at once may each make one)
        index = self._index
        if index is None:
            index = parent._dataset.levels.index(self._level)
        return (_level_of, (parent, index))

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """dask's key for this level (no pickling round trip, which would reopen the image)."""
        return ("ngio_async.SyncLevel", self._level.store.url, self._level.path, id(self._level))

    shape = property(lambda self: self._level.shape)
    dtype = property(lambda self: self._level.dtype)
    ndim = property(lambda self: self._level.ndim)
    chunks = property(lambda self: self._level.chunks)
    shards = property(lambda self: self._level.shards)
    scale = property(lambda self: self._level.scale)
    translation = property(lambda self: self._level.translation)
    path = property(lambda self: self._level.path)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self._level.nbytes

    def __len__(self) -> int:
        return int(self.shape[0])

    def __iter__(self) -> Iterator[NDArray[Any]]:
        """The level's items along its first axis, as numpy's iteration (one read each)."""
        return (self[i] for i in range(len(self)))

    def __getitem__(self, selection: Any) -> NDArray[Any]:
        """``level[sel]``; a small local read runs in the calling thread, and the reads of a
        remote sharded level share the shard indexes they read (see :mod:`._sync_fast`)."""
        level = self._level
        sel = plain_selection(level, selection)
        with reading() as others:
            if sel is not None:
                if local_small(level, sel, others):
                    _ = self._runner.portal  # ClosedError once closed, as through the loop
                    return read_local(level, sel)
                if level.reads_locally:
                    runner = self._runner
                    _ = runner.portal
                    return read_local_split(level, sel, lambda: runner.closed)
                if keeps_indexes(level):
                    kept = _kept_remote.get(level)
                    if kept is None:
                        kept = _kept_remote.setdefault(level, IndexCache())
                    return self._runner.call(read_kept, level, sel, kept)
            return self._runner.call(level.getitem, selection)

    def __setitem__(self, selection: Any, data: ArrayLike) -> None:
        """``level[...] = data``: numpy basic indexing and broadcasting (needs ``mode="r+"``)."""
        self._runner.call(self._level.setitem, selection, data)

    @property
    def oindex(self) -> SyncIndexer:
        """``level.oindex[sel]``, ``level.oindex[sel] = v``: zarr-python's orthogonal selection
        (``Level.read_orthogonal``, ``Level.write_orthogonal``)."""
        return SyncIndexer(self._runner, self._level.read_orthogonal, self._level.write_orthogonal)

    @property
    def vindex(self) -> SyncIndexer:
        """``level.vindex[sel]``, ``level.vindex[sel] = v``: zarr-python's pointwise selection
        (``Level.read_points``, ``Level.write_points``)."""
        return SyncIndexer(self._runner, self._level.read_points, self._level.write_points)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        return _as_array(self, dtype, copy)

    def __repr__(self) -> str:
        return f"Sync{self._level!r}"


class SyncIndexer:
    """``.oindex`` / ``.vindex`` of a blocking level or dataset: ``[sel]`` reads,
    ``[sel] = v`` writes."""

    __slots__ = ("_read", "_runner", "_write")

    def __init__(
        self,
        runner: Runner,
        read: Callable[[Any], Awaitable[NDArray[Any]]],
        write: Callable[[Any, ArrayLike], Awaitable[None]],
    ) -> None:
        self._runner = runner
        self._read = read
        self._write = write

    def __getitem__(self, selection: Any) -> NDArray[Any]:
        return self._runner.call(self._read, selection)

    def __setitem__(self, selection: Any, data: ArrayLike) -> None:
        self._runner.call(self._write, selection, data)


def _as_array(src: SyncLevel | SyncDataset, dtype: Any, copy: bool | None) -> NDArray[Any]:
    """numpy's ``__array__`` protocol: the whole level read into a new array. ``copy=False``
    (numpy 2: "never copy") cannot be honoured, so it raises ``ValueError`` as numpy asks."""
    if copy is False:
        raise ValueError(
            f"{src!r} holds no pixels in memory: np.asarray(..., copy=False) cannot avoid "
            "reading them into a new array (use copy=None, the default)"
        )
    arr = src[...]
    return arr if dtype is None else arr.astype(dtype, copy=False)


def _level_of(dataset: SyncDataset, index: int) -> SyncLevel:
    if dataset._pending is not None:  # unpickled, not opened yet: the level opens it on use
        return SyncLevel._unopened(dataset, index)
    return dataset.levels[index]
