"""The blocking twins of the image API: ``ngio_async.open(url)`` -> :class:`SyncDataset`.

Every call runs the async implementation on the shared event loop of :mod:`ngio_async.sync`; a
``SyncDataset`` holds one lease on it for its lifetime (``close()`` or ``with`` releases it).
These objects are array-like enough for numpy (``np.asarray``), dask (``da.from_array``: each
block reads only its region) and napari (``ds.levels`` is a multiscale list of array-likes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .images import Dataset, Level, create_async, create_like_async, open_async
from .sync import Closing, Runner, SyncIterator

if TYPE_CHECKING:
    import os
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager, AbstractContextManager
    from types import TracebackType

    import numpy as np
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from ._limits import Limits
    from .engine.pyramid import Method
    from .images import ImageMetadata, LevelWriter, Tile
    from .images._dataset import Mode, Selector

__all__ = [
    "SyncDataset",
    "SyncLabels",
    "SyncLevel",
    "SyncWriter",
    "create",
    "create_like",
    "open",
]


class SyncLevel:
    """One pyramid level as a blocking array-like (``shape``, ``dtype``, ``[...]``, ``__array__``)."""

    def __init__(self, runner: Runner, level: Level) -> None:
        self._runner = runner
        self._level = level

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

    def __getitem__(self, selection: Any) -> NDArray[Any]:
        return self._runner.call(self._level.getitem, selection)

    def __setitem__(self, selection: Any, data: ArrayLike) -> None:
        """``level[...] = data``: numpy basic indexing and broadcasting (needs ``mode="r+"``)."""
        self._runner.call(self._level.setitem, selection, data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        arr = self[...]
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"Sync{self._level!r}"


class SyncLabels:
    """Label images: ``ds.labels.names()``, ``ds.labels.open(name)`` / ``ds.labels[name]``."""

    def __init__(self, runner: Runner, dataset: Dataset) -> None:
        self._runner = runner
        self._dataset = dataset

    def names(self) -> list[str]:
        return self._runner.call(self._dataset.labels.names)

    def open(self, name: str, mode: Mode | None = None) -> SyncDataset:
        """Open label image ``name`` (``mode``: default the image's own mode)."""
        return self._leased(lambda: self._dataset.labels.open(name, mode))

    def create(
        self,
        name: str,
        dtype: DTypeLike = "uint32",
        colors: Any = None,
        properties: Sequence[Mapping[str, Any]] | None = None,
        overwrite: bool = False,
    ) -> SyncDataset:
        """Create label image ``name`` shaped like the image; returns it writable (see
        :meth:`ngio_async.images.Labels.create`)."""
        return self._leased(
            lambda: self._dataset.labels.create(name, dtype, colors, properties, overwrite)
        )

    def _leased(self, make: Callable[[], Awaitable[Dataset]]) -> SyncDataset:
        runner = Runner()  # the label dataset holds its own lease
        try:

            async def go() -> Dataset:
                return await make()

            label = runner.call(go)
        except BaseException:
            runner.close()
            raise
        return SyncDataset(runner, label, owner=False)

    __getitem__ = open

    def __iter__(self) -> Any:
        return iter(self.names())


class SyncDataset(Closing):
    """An OME-Zarr image for blocking code: ``ds[100:200, 150:250]``, ``ds.read(c="DAPI")``."""

    def __init__(self, runner: Runner, dataset: Dataset, *, owner: bool = True) -> None:
        self._runner = runner
        self._dataset = dataset
        self._owner = owner
        self.levels = [SyncLevel(runner, lvl) for lvl in dataset.levels]
        self.labels = SyncLabels(runner, dataset)

    # description (mirrors Dataset)
    @property
    def metadata(self) -> ImageMetadata:
        return self._dataset.metadata

    @property
    def url(self) -> str:
        return self._dataset.url

    @property
    def axes(self) -> tuple[str, ...]:
        return self._dataset.axes

    @property
    def shape(self) -> tuple[int, ...]:
        return self._dataset.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dataset.dtype

    @property
    def ndim(self) -> int:
        return self._dataset.ndim

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self._dataset.nbytes

    @property
    def chunks(self) -> tuple[int, ...]:
        return self._dataset.levels[0].chunks

    @property
    def async_dataset(self) -> Dataset:
        """The underlying async :class:`~ngio_async.images.Dataset` (use it on the portal loop)."""
        return self._dataset

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"<Sync{repr(self._dataset)[1:]}"

    def level(
        self, index: int | None = None, *, pixel_size: float | Sequence[float] | None = None
    ) -> SyncLevel:
        lvl = self._dataset.level(index, pixel_size=pixel_size)
        return self.levels[self._dataset.levels.index(lvl)]

    # reading
    def __getitem__(self, selection: Any) -> NDArray[Any]:
        return self._runner.call(self._dataset.getitem, selection)

    def read(self, level: int = 0, **axes: Selector) -> NDArray[Any]:
        return self._runner.call(lambda: self._dataset.read(level, **axes))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        arr = self[...]
        return arr if dtype is None else arr.astype(dtype, copy=False)

    # writing (needs mode="r+"; see the async Dataset methods)
    @property
    def mode(self) -> Mode:
        return self._dataset.mode

    def __setitem__(self, selection: Any, data: ArrayLike) -> None:
        """``ds[...] = data`` on level 0 (numpy basic indexing, broadcasting)."""
        self._runner.call(self._dataset.write_at, selection, data)

    def write(
        self, data: ArrayLike, level: int = 0, pyramid: bool | Method = False, **axes: Selector
    ) -> None:
        """Write by axis name: ``ds.write(arr, c="DAPI", z=3)`` (see ``Dataset.write``)."""
        self._runner.call(lambda: self._dataset.write(data, level, pyramid, **axes))

    def write_at(
        self, selection: Any, data: ArrayLike, level: int = 0, pyramid: bool | Method = False
    ) -> None:
        self._runner.call(self._dataset.write_at, selection, data, level, pyramid)

    def writer(
        self, level: int = 0, max_pending: int | None = None, pyramid: bool | Method = False
    ) -> AbstractContextManager[SyncWriter]:
        """``with ds.writer() as w: w.write(tile)``: bounded pending writes, like the async one."""
        return _SyncWriterContext(self._runner, self._dataset.writer(level, max_pending, pyramid))

    def set_channels(
        self,
        labels: Sequence[str | None] | None = None,
        colors: Sequence[str] | None = None,
        windows: Sequence[tuple[float, float] | Mapping[str, float] | None] | None = None,
        active: Sequence[bool] | None = None,
    ) -> None:
        self._runner.call(self._dataset.set_channels, labels, colors, windows, active)

    def set_scale(
        self,
        scale: float | Sequence[float] | Mapping[str, float] | None = None,
        *,
        units: str | Sequence[str | None] | Mapping[str, str] | None = None,
        translation: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        self._runner.call(
            lambda: self._dataset.set_scale(scale, units=units, translation=translation)
        )

    def build_pyramid(
        self,
        levels: int | None = None,
        method: Method | None = None,
        regions: Sequence[Sequence[Any]] | None = None,
        tile: Sequence[int | None] | None = None,
        **options: Any,
    ) -> None:
        """Compute the lower levels from level 0 (see :meth:`Dataset.build_pyramid`)."""
        self._runner.call(
            lambda: self._dataset.build_pyramid(levels, method, regions, tile, **options)
        )
        for lvl in self._dataset.levels[len(self.levels) :]:  # levels added by the build
            self.levels.append(SyncLevel(self._runner, lvl))

    def tiles(self, level: int = 0, **options: Any) -> SyncIterator[Tile]:
        """``for tile in ds.tiles(...)``: lazy, prefetching; same options as the async one.

        Leaving the loop early (``break``) stops the prefetching when the iterator is dropped;
        ``with ds.tiles() as tiles:`` stops it deterministically.
        """
        return self._runner.iterate(self._dataset.tiles(level, **options))

    # lifetime
    def close(self) -> None:
        """Close the dataset and release the event-loop lease. Idempotent."""
        if self._runner.closed:
            return
        try:
            self._runner.call(self._dataset.aclose)
        finally:
            self._runner.close()


def open(
    url: str | os.PathLike[str] | Any,
    *,
    limits: Limits | None = None,
    path: str = "",
    mode: Mode = "r",
    **store_options: Any,
) -> SyncDataset:
    """Open an OME-Zarr image for blocking code (scripts, notebooks, dask, napari).

    Same arguments as :func:`ngio_async.open_async`. Close it with ``close()`` or ``with``.
    Works inside a running event loop (Jupyter); in a coroutine, prefer ``await open_async(...)``.
    """
    runner = Runner()
    try:

        async def go() -> Dataset:
            return await open_async(url, limits=limits, path=path, mode=mode, **store_options)

        dataset = runner.call(go)
    except BaseException:
        runner.close()
        raise
    return SyncDataset(runner, dataset)


class SyncWriter:
    """The blocking face of a :class:`~ngio_async.images.LevelWriter`: ``w.write(tile)``."""

    def __init__(self, runner: Runner, writer: LevelWriter) -> None:
        self._runner = runner
        self._writer = writer

    def write(self, tile: Tile | tuple[Sequence[slice], Any]) -> None:
        """Start writing a tile (``Tile`` or ``(region, data)``); waits while too many pend."""
        self._runner.call(self._writer.write, tile)


class _SyncWriterContext:
    def __init__(self, runner: Runner, writer: AbstractAsyncContextManager[LevelWriter]) -> None:
        self._cm = runner.wrap_async_context_manager(writer)
        self._runner = runner

    def __enter__(self) -> SyncWriter:
        return SyncWriter(self._runner, self._cm.__enter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc_val, exc_tb)


def _run_creating(make: Callable[[], Awaitable[Dataset]]) -> SyncDataset:
    runner = Runner()
    try:

        async def go() -> Dataset:
            return await make()

        dataset = runner.call(go)
    except BaseException:
        runner.close()
        raise
    return SyncDataset(runner, dataset)


def create(url: str | os.PathLike[str] | Any, **options: Any) -> SyncDataset:
    """Create an empty OME-Zarr image for blocking code; returns a writable :class:`SyncDataset`.

    Same arguments as :func:`ngio_async.create_async` (``shape=``, ``dtype=``, ``axes=``, ...).
    """
    return _run_creating(lambda: create_async(url, **options))


def create_like(
    src: SyncDataset | Dataset, url: str | os.PathLike[str] | Any, **overrides: Any
) -> SyncDataset:
    """Create an empty image shaped like ``src`` (see :func:`ngio_async.create_like_async`)."""
    source = src.async_dataset if isinstance(src, SyncDataset) else src
    return _run_creating(lambda: create_like_async(source, url, **overrides))
