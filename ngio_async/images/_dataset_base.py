"""``_DatasetBase``: what the parts of ``Dataset`` share: its state (set by ``Dataset.__init__``),
its description, its levels by index, path or pixel size, reads by axis name or selection,
and the checks of writes."""

from __future__ import annotations

import math
import numbers
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from .._errors import ReadOnlyError
from ..engine import normalize_selection
from ..meta._ngff_old import refuse_write
from ._axis_facts import AxisFacts
from ._level import AsyncIndexer, Level
from ._named_select import axis_value
from ._node import StoreNode
from ._opening import read_only_advice
from ._world import level_for as world_level_for

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .._limits import Limits
    from .._workers import Workers
    from ..stores import AsyncStore
    from ..tables import Tables
    from ._labels import Labels
    from ._metadata import ImageMetadata
    from ._opening import Mode
    from ._reuse import ChunkPool
    from ._tiles import TileOwner

__all__ = ["Selector"]

Selector = (
    int
    | np.integer[Any]
    | slice
    | str
    | Sequence[int | str | np.integer[Any]]
    | np.ndarray[Any, Any]
    | None
)
"""What a named selection takes per axis (see :mod:`ngio_async.images._named_select`)."""


class _DatasetBase(AxisFacts, StoreNode):
    """The state, description, level lookup and reads of a :class:`Dataset` (its base)."""

    store: AsyncStore
    root: str
    metadata: ImageMetadata
    levels: list[Level]
    limits: Limits
    mode: Mode
    _workers: Workers
    _tile_owner: TileOwner

    _meta_lock: anyio.Lock | None
    _structure_lock: anyio.Lock | None
    _auto_windows: set[int]
    _extents: dict[tuple[int, ...], tuple[float, float] | None]
    _extents_of: tuple[int, ...]
    _read_cache: ChunkPool | None

    if TYPE_CHECKING:  # (Dataset's: made on use, kept weakly)

        @property
        def labels(self) -> Labels: ...

        @property
        def tables(self) -> Tables: ...

    # ---------------------------------------------------------------- description
    @property
    def url(self) -> str:
        return f"{self.store.url.rstrip('/')}/{self.root}" if self.root else self.store.url

    @property
    def axes(self) -> tuple[str, ...]:
        return self.metadata.axis_names

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.levels[0].dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<Dataset{state} {self.url} ngff={self.metadata.ngff_version} "
            f"axes={''.join(self.axes)} shape={self.shape} dtype={self.dtype} "
            f"levels={len(self.levels)}>"
        )

    def level(
        self,
        index: int | str | None = None,
        *,
        pixel_size: float | Sequence[float] | None = None,
        unit: str | None = None,
    ) -> Level:
        """A level by index (negative counts from the smallest), by its path in the
        multiscales (``"0"``, ``"s0"``: a str), or nearest to ``pixel_size`` (in ``unit``:
        :meth:`level_for`'s rule)."""
        if (index is None) == (pixel_size is None):
            raise TypeError(
                f"a level is an index, a path or pixel_size=: exactly one of them, got {index!r}"
            )
        if pixel_size is not None:
            return self.levels[self.level_for(pixel_size, unit)]
        assert index is not None
        if isinstance(index, str):
            # the path in the multiscales ("0"; a label image's levels are stored under
            # labels/<name>/, their store paths taken too)
            prefix = f"{self.root}/" if self.root else ""
            stored = [lvl.path for lvl in self.levels]
            paths = [p.removeprefix(prefix) for p in stored]
            want = index.strip("/")
            for names in (paths, stored):
                if want in names:
                    return self.levels[names.index(want)]
            raise KeyError(f"no level with path {index!r}: the levels are {paths}")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"level must be an int or a level's path, got {index!r}")
        index = int(index)
        if not -len(self.levels) <= index < len(self.levels):
            raise IndexError(f"level {index} out of range: the image has {len(self.levels)} levels")
        return self.levels[index]

    def _level_index(self, level: int | str) -> int:
        """The index in :attr:`levels` of ``level`` (an index, negative too, or a path)."""
        return self.levels.index(self.level(level))

    # ---------------------------------------------------------------- reading
    def __getitem__(self, selection: Any) -> Coroutine[Any, Any, NDArray[Any]]:
        """``await ds[...]``: :meth:`Level.getitem` on level 0 (numpy basic indexing, lists
        as zarr-python 3 reads them)."""
        return self.getitem(selection)

    def __setitem__(self, selection: Any, data: Any) -> None:
        raise TypeError(
            "an assignment cannot be awaited: write with await ds.write_at(selection, data)"
        )

    async def getitem(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        self._check_open()
        return await self.level(level).getitem(selection)

    @property
    def oindex(self) -> AsyncIndexer:
        """``await ds.oindex[sel]``: :meth:`read_orthogonal` on level 0."""
        return AsyncIndexer(self.read_orthogonal, "ds.write_orthogonal")

    @property
    def vindex(self) -> AsyncIndexer:
        """``await ds.vindex[sel]``: :meth:`read_points` on level 0."""
        return AsyncIndexer(self.read_points, "ds.write_points")

    async def read_orthogonal(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        """zarr-python's ``oindex[selection]`` on a level: see :meth:`Level.read_orthogonal`."""
        self._check_open()
        return await self.level(level).read_orthogonal(selection)

    async def read_points(self, selection: Any, level: int | str = 0) -> NDArray[Any]:
        """zarr-python's ``vindex[selection]`` on a level: see :meth:`Level.read_points`."""
        self._check_open()
        return await self.level(level).read_points(selection)

    async def read(
        self, level: int | str = 0, *, axes_order: Sequence[str] | None = None, **axes: Selector
    ) -> NDArray[Any]:
        """Read by axis name: ``await ds.read(level=0, c="DAPI", z=3, y=slice(0, 512))``.

        Each axis takes what ``ds[...]`` takes on it: an int (numpy's, a 0-d array: the axis
        is dropped, as in numpy), a slice (any step), ``None`` (everything), a list or 1-D
        array of ints or a boolean mask of the axis's length (on one axis); the channel axis
        also takes channel labels (a label or a list of labels). Axes not named are read whole. ``axes_order=("c", "z", "y", "x")``:
        the array with those axes, in that order (ngio's ``axes_order``: axes the image lacks
        or the read dropped added with size 1; others left out only if of size 1, else a
        ``ValueError`` naming the axis, as for a name given twice).
        """
        data = await self._read(level, axes)
        if axes_order is None:
            return data
        from ._axes_order import kept_axes, to_order

        return to_order(data, kept_axes(self.axes, axes), axes_order)

    async def _read(self, level: int | str, axes: dict[str, Selector]) -> NDArray[Any]:
        self._check_open()
        lvl = self.level(level)
        selection, pick = self._selection(lvl, axes)
        if pick is None:
            return await lvl.getitem(tuple(selection))
        axis, indices = pick
        if not indices:  # an empty list: nothing along that axis, as numpy gives
            selection[axis] = slice(0, 0)
            return await lvl.getitem(tuple(selection))
        # the level's list read: the picks one chunk (or shard) holds are read together, each
        # chunk once (a read per pick fetched a chunk 4 planes deep 4 times for z=[0, 1, 2, 3])
        selection[axis] = list(indices)
        return await lvl.getitem(tuple(selection))

    def _selection(
        self, lvl: Level, axes: dict[str, Selector]
    ) -> tuple[list[Any], tuple[int, list[int]] | None]:
        names = self.axes
        at = next((k for k, each in enumerate(self.levels) if each is lvl), 0)  # (for errors)
        unknown = [k for k in axes if k not in names]
        if unknown:
            raise ValueError(f"unknown axis {unknown[0]!r}: the image's axes are {list(names)}")
        selection: list[Any] = [slice(None)] * len(names)
        pick: tuple[int, list[int]] | None = None
        for i, name in enumerate(names):
            size = lvl.shape[i]
            value = axis_value(name, axes.get(name), size)
            if value is None:
                continue
            if isinstance(value, str):
                selection[i] = self._channel(i, value)
            elif isinstance(value, int):
                selection[i] = _in_bounds(name, value, size, at)
            elif isinstance(value, slice):
                selection[i] = value
            else:
                if pick is not None:
                    raise ValueError(
                        "a list selection is allowed on one axis only, got lists on "
                        f"{names[pick[0]]!r} and {name!r}"
                    )
                indices = [self._channel(i, v) if isinstance(v, str) else v for v in value]
                pick = (i, [_in_bounds(name, v, size, at) % size for v in indices])
        return selection, pick

    def _channel(self, axis: int, label: str) -> int:
        if axis != self.metadata.channel_axis:
            raise ValueError(
                f"axis {self.axes[axis]!r} is not the channel axis, got the label {label!r}: "
                "labels select channels"
            )
        index = self.metadata.channel_index(label)
        if index >= self.shape[axis]:  # omero lists more channels than the image has
            raise IndexError(
                f"channel {label!r} is channel {index} of the omero metadata, but the image "
                f"has {self.shape[axis]} channels"
            )
        return index

    # ---------------------------------------------------------------- write checks
    @property
    def writable(self) -> bool:
        """Whether the dataset was opened (or created) with ``mode="r+"``."""
        return self.mode == "r+"

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode != "r+":
            raise ReadOnlyError(
                f"{self.url} is open read-only (mode='r'){read_only_advice(self.store)}"
            )
        refuse_write(self.metadata.ngff_version, self.url)  # NGFF 0.1 - 0.3: read only

    def structure_lock(self) -> anyio.Lock:
        """The lock of changes to the image's levels, scales and label images (``build_pyramid``,
        ``set_scale``, ``labels.create``): each plans from what it reads, so they run one at a
        time on one dataset object."""
        if self._structure_lock is None:
            self._structure_lock = anyio.Lock()
        return self._structure_lock

    def region_of(self, level: int | str = 0, **axes: Selector) -> tuple[slice, ...]:
        """The level region (one step-1 slice per axis) a named selection covers."""
        lvl = self.level(level)
        selection, pick = self._selection(lvl, axes)
        if pick is not None:
            axis, indices = pick  # an empty list covers nothing along its axis
            selection[axis] = slice(min(indices), max(indices) + 1) if indices else slice(0, 0)
        return normalize_selection(tuple(selection), lvl.shape).region

    def level_for(
        self,
        pixel_size: float | Sequence[float],
        unit: str | None = None,
        *,
        not_coarser: bool = False,
        exact: bool = False,
    ) -> int:
        """The index of the level whose y/x pixel size is nearest ``pixel_size`` (in ``unit``;
        ``None``: as stored), as ngio's ``get_image(pixel_size=...)`` (the Euclidean distance
        over y and x; a tie goes to the finer level); ``not_coarser=True``: the coarsest level
        whose pixels are at most that size (``ValueError`` when none is); ``exact=True``: a
        level of exactly that size (ngio's ``strict=True``; ``ValueError`` naming the nearest)."""
        return world_level_for(
            self.metadata.spatial_calibration,
            pixel_size,
            unit,
            not_coarser=not_coarser,
            exact=exact,
        )


def _in_bounds(axis: str, index: int, size: int, level: int) -> int:
    """``index`` if it is one of an axis of ``size`` (negative: from the end) of level
    ``level``; else an ``IndexError`` naming the axis."""
    if not -size <= index < size:
        raise IndexError(
            f"axis {axis!r}: index {index} is out of bounds for level {level} (size {size})"
        )
    return index
