"""The blocking twins of the image API: ``ngio_async.open(url)`` -> :class:`SyncDataset`.

Every call runs the async implementation on the shared event loop of :mod:`ngio_async.sync`; a
``SyncDataset`` holds one lease on it for its lifetime (``close()`` or ``with`` releases it).
These objects are array-like enough for numpy (``np.asarray``), dask (``da.from_array``: each
block reads only its region) and napari (``ds.levels`` is a multiscale list of array-likes).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Self

from .images import Dataset, Level, open_async
from .sync import Runner, SyncIterator

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from types import TracebackType

    import numpy as np
    from numpy.typing import NDArray

    from ._limits import Limits
    from .images import ImageMetadata, Tile
    from .images._dataset import Selector

__all__ = ["SyncDataset", "SyncLabels", "SyncLevel", "open"]


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

    def open(self, name: str) -> SyncDataset:
        runner = Runner()  # the label dataset holds its own lease
        try:
            label = runner.call(self._dataset.labels.open, name)
        except BaseException:
            runner.close()
            raise
        return SyncDataset(runner, label, owner=False)

    __getitem__ = open

    def __iter__(self) -> Any:
        return iter(self.names())


class SyncDataset:
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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


def open(
    url: str | os.PathLike[str] | Any,
    *,
    limits: Limits | None = None,
    path: str = "",
    **store_options: Any,
) -> SyncDataset:
    """Open an OME-Zarr image for blocking code (scripts, notebooks, dask, napari).

    Same arguments as :func:`ngio_async.open_async`. Close it with ``close()`` or ``with``.
    Works inside a running event loop (Jupyter); in a coroutine, prefer ``await open_async(...)``.
    """
    runner = Runner()
    try:

        async def go() -> Dataset:
            return await open_async(url, limits=limits, path=path, **store_options)

        dataset = runner.call(go)
    except BaseException:
        runner.close()
        raise
    return SyncDataset(runner, dataset)
