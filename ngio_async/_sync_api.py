"""The blocking twins of the image API: ``ngio_async.open(url)`` -> :class:`SyncDataset`.

Every call runs the async implementation on the shared event loop of :mod:`ngio_async.sync`; a
``SyncDataset`` holds one lease on it for its lifetime (``close()`` or ``with`` releases it).
These objects are array-like enough for numpy (``np.asarray``), dask (``da.from_array``: each
block reads only its region) and napari (``ds.levels`` is a multiscale list of array-likes).

Pickled (dask's processes and distributed schedulers), a dataset or plate travels as its URL and
open options, credentials included; the copy opens on first use (a scheduler that passes it on
never does), once per process for all its copies.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import pickle
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, cast

from ._errors import ClosedError
from ._sync_arrays import SyncIndexer, SyncLevel, _as_array
from ._sync_leases import _NOTHING, _leased, _open_objects, _track
from ._sync_reopen import (
    _CREATE_ONLY,
    _CREATE_PLATE_LIKE_ONLY,
    _CREATE_PLATE_ONLY,
    _absolute,
    _label_reopen,
    _Pending,
    _plate_state,
    _refuse_memory,
    _Reopen,
    _state,
    _store_options,
    _Superseded,
)
from ._sync_tables import SyncPlateTables, SyncTables
from ._sync_tiles import SyncMaskedImage, SyncTiles, SyncWriter, _ProgressRelay
from ._sync_world import _SyncDatasetWorld
from ._sync_writes import _SyncDatasetWrites
from .images import (
    Dataset,
    Labels,
    Level,
    Plate,
    PlateWell,
    create_async,
    create_like_async,
    create_plate_async,
    open_async,
    open_plate_async,
)
from .images._axis_facts import AxisFacts
from .images._dataset_tiles import check_progress
from .stores._url_utils import redact_url
from .sync import Closing, Runner, SyncIterator, call

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence

    import numpy as np
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from ._limits import Limits
    from ._prefetch import ProgressCallback
    from .engine.pyramid import Method
    from .images import ImageMetadata
    from .images._dataset_base import Selector
    from .images._labels import ColorSpec, PropertySpec
    from .images._merge import Merge
    from .images._opening import Mode
    from .images._reuse import ChunkPool
    from .images._rois import RoiRead
    from .meta import Acquisition, LabelColor, Plate as PlateMeta
    from .tables import Roi

__all__ = [
    "SyncDataset",
    "SyncLabels",
    "SyncLevel",
    "SyncPlate",
    "SyncTiles",
    "SyncWriter",
    "create",
    "create_like",
    "create_plate",
    "create_plate_like",
    "open",
    "open_plate",
]


class _Reopenable(Closing):
    """What :class:`SyncDataset` and :class:`SyncPlate` share: an unpickled copy does no I/O
    until its first use opens it, in place (see :func:`_reopen`)."""

    #: set on an unpickled copy until its first use opens it
    _pending: _Pending | None = None

    if not TYPE_CHECKING:  # (mypy: no blanket attribute access on the sync objects)

        def __getattr__(self, name: str) -> Any:
            # reached only for what an unpickled copy lacks before its first use: open it now
            pending = self._pending
            if pending is None or name.startswith("__"):
                raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
            self._open_pending(pending)
            return object.__getattribute__(self, name)

    def _open_pending(self, pending: _Pending) -> None:
        """Open this unpickled copy in place (first use; once, whichever thread comes first):
        in another process than the pickling one, as a handle on the process's shared opening."""
        with pending.lock:
            if self._pending is None:  # opened by another thread meanwhile
                return
            if pending.closed:
                raise ClosedError("this ngio_async object is closed")
            spec, state, origin = pending.spec, pending.state, pending.origin
            key: bytes | None = None
            if state is not None and origin is not None and origin != _process:
                with contextlib.suppress(pickle.PicklingError, TypeError, AttributeError):
                    key = pickle.dumps((spec, state))  # (options that do not pickle: opened anew)
            if key is not None:
                _shared.handle(key, spec, into=self, image=pickle.dumps(spec))
            else:
                self._open_anew(spec)
            self._pending = None

    def _close_pending(self) -> bool:
        """Close an unpickled copy never used (nothing to give back); False once opened."""
        pending = self._pending
        if pending is None:
            return False
        with pending.lock:
            if self._pending is None:
                return False
            pending.closed = True
            return True

    def _open_anew(self, spec: _Reopen) -> None:
        """Open ``spec`` as this object, sharing nothing."""
        raise NotImplementedError

    def _pending_repr(self) -> str | None:
        """The repr of an unpickled copy not opened yet (a repr does no I/O), else None."""
        pending = self._pending
        if pending is None:
            return None
        url = pending.spec[1]
        where = redact_url(url) if isinstance(url, str) else repr(url)
        state = "closed" if pending.closed else "not opened yet"
        return f"<{type(self).__name__} {where} ({state})>"

    def _share(self, into: Any = None) -> Any:
        """A handle on this opened object with its own lease (``into``: an unopened copy to
        make that handle, else a new object); its ``close()`` closes the handle alone."""
        raise NotImplementedError


class SyncLabels:
    """Label images: ``ds.labels.names()``, ``ds.labels.open(name)`` / ``ds.labels[name]``."""

    def __init__(self, runner: Runner, dataset: Dataset, parent: SyncDataset) -> None:
        self._runner = runner
        self._dataset = dataset
        self._parent = parent

    def names(self) -> list[str]:
        return self._runner.call(self._dataset.labels.names)

    def open(self, name: str, mode: Mode | None = None) -> SyncDataset:
        """Open label image ``name`` (``mode``: default the image's own mode)."""
        label = self._leased(lambda: self._dataset.labels.open(name, mode))
        label._reopen = _label_reopen(
            self._parent._reopen, label._dataset.root, mode or self._dataset.mode
        )
        return label

    def create(
        self,
        name: str,
        dtype: DTypeLike = "uint32",
        colors: ColorSpec | Sequence[LabelColor] | None = None,
        properties: PropertySpec | None = None,
        overwrite: bool = False,
    ) -> SyncDataset:
        """Create label image ``name`` shaped like the image; returns it writable (see
        :meth:`ngio_async.images.Labels.create`)."""
        label = self._leased(
            lambda: self._dataset.labels.create(name, dtype, colors, properties, overwrite)
        )
        label._reopen = _label_reopen(self._parent._reopen, label._dataset.root, "r+")
        return label

    def set_colors(
        self, name: str, colors: Any = None, *, max_values: int = 10_000
    ) -> list[LabelColor]:
        """Set label image ``name``'s ``image-label`` colors, by default derived from the values
        it stores (see :meth:`ngio_async.images.Labels.set_colors`); returns them."""
        return self._runner.call(
            lambda: self._dataset.labels.set_colors(name, colors, max_values=max_values)
        )

    def delete(self, name: str, *, missing_ok: bool = False) -> None:
        self._runner.call(lambda: self._dataset.labels.delete(name, missing_ok=missing_ok))

    def relabel_sequential(self, name: str, *, order: Any = "encounter") -> int:
        return self._runner.call(lambda: self._dataset.labels.relabel_sequential(name, order=order))

    def _leased(self, make: Callable[[], Awaitable[Dataset]]) -> SyncDataset:
        # the image's own lease first: ClosedError once it is closed (a handle on a shared
        # dataset) or inherited through fork (its async objects live on the parent's loop)
        _ = self._runner.portal
        runner, label = _leased(make)  # the label dataset holds its own lease
        ds = SyncDataset(runner, label, owner=False)
        ds._keep = self._parent  # it reads through the image's store: the image stays open
        return ds

    __getitem__ = open

    def __iter__(self) -> Any:
        return iter(self.names())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as its image's ``labels`` (the image is reopened; see SyncDataset)."""
        return (_labels_of, (self._parent,))

    @classmethod
    def _unopened(cls, parent: SyncDataset) -> SyncLabels:
        """The labels of ``parent``, an unpickled copy not opened yet: opened on first use."""
        labels = cls.__new__(cls)
        labels._parent = parent
        return labels

    if not TYPE_CHECKING:  # (mypy: no blanket attribute access on SyncLabels)

        def __getattr__(self, name: str) -> Any:
            # reached only for what the labels of an unopened copy lack: the image opens now
            if name in ("_runner", "_dataset") and "_parent" in self.__dict__:
                opened = self._parent.labels
                self._runner, self._dataset = opened._runner, opened._dataset
                return object.__getattribute__(self, name)
            raise AttributeError(f"'SyncLabels' object has no attribute {name!r}")


class _LevelList(list[SyncLevel]):
    """``SyncDataset.levels``: a list a dataset can keep weakly (plain lists cannot be)."""


class SyncDataset(AxisFacts, _SyncDatasetWorld, _SyncDatasetWrites, _Reopenable):
    """An OME-Zarr image for blocking code: ``ds[100:200, 150:250]``, ``ds.read(c="DAPI")``."""

    def __init__(
        self, runner: Runner, dataset: Dataset, *, owner: bool = True, closes: bool = True
    ) -> None:
        self._runner = runner
        self._dataset = dataset
        self._owner = owner
        #: whether close() closes ``dataset`` (False: a handle on a dataset that unpickled
        #: copies share, closed by the anchor of :data:`_shared`)
        self._closes = closes
        self._reopen = None  # how to open it again (pickling), set by whoever opened it
        #: what must stay open while this one is used (the image of a label, a field's plate)
        self._keep: object = None
        #: the tile loops not yet closed (stopped by close(), whichever thread runs them)
        self._iterators: weakref.WeakSet[SyncIterator[Any]] = weakref.WeakSet()
        # its levels and labels, weakly (by the id of each async level): each holds this
        # dataset while used, and this one holding them would be a cycle: a dropped dataset
        # (its finalizer, its store's connections) kept until the collector's next full pass
        self._level_refs: dict[int, weakref.ref[SyncLevel]] = {}
        self._levels_ref: weakref.ref[_LevelList] | None = None
        self._labels_ref: weakref.ref[SyncLabels] | None = None
        # dropped without close(): the lease and the store are given back, with a warning;
        # still open at interpreter exit: closed then (no unclosed-session noise)
        self._finalizer = _track(self, runner, dataset if closes else _NOTHING)

    @property
    def tables(self) -> SyncTables:
        """The image's tables (see :class:`ngio_async.tables.Tables`), blocking."""
        return SyncTables(self._runner, self._dataset.tables, self)

    @property
    def _reopen(self) -> _Reopen | None:
        """How to open this dataset again (another process: pickling); None when unknown."""
        return self._reopen_spec

    @_reopen.setter
    def _reopen(self, spec: _Reopen | None) -> None:
        # a relative path names the directory it was opened in, not the unpickler's
        self._reopen_spec = None if spec is None else (spec[0], _absolute(spec[1]), spec[2])

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the way it was opened (URL and options, secrets included: a pickle of an
        image opened with credentials carries them): dask's processes and distributed
        schedulers send it to other processes, where it is opened again on first use (so a
        scheduler that only passes it on never opens it; read-only stays so).

        There, the copies of one image share one opened dataset (see :func:`_reopen`).
        """
        pending = self._pending
        if pending is not None:  # an unopened copy passes on as it came
            return (_reopen, (pending.spec, pending.state, pending.origin))
        if self._reopen is None:
            raise TypeError(
                f"{self!r} cannot be pickled: it was not opened from a URL or path "
                "(a store object cannot be sent to another process); open it by URL"
            )
        _refuse_memory(self, self._reopen[1])
        return (_reopen, (self._reopen, _state(self._dataset), _process))

    def _open_anew(self, spec: _Reopen) -> None:
        self._adopt(_open_spec(spec))

    def _adopt(self, source: SyncDataset) -> None:
        """Become ``source``, just opened and not handed out: its lease, dataset and ties."""
        source._finalizer.detach()
        _open_objects.pop(source, None)
        SyncDataset.__init__(
            self, source._runner, source._dataset, owner=source._owner, closes=source._closes
        )
        self._reopen = source._reopen
        self._keep = source._keep

    def _share(self, into: Any = None) -> SyncDataset:
        runner = Runner()
        handle = into if into is not None else SyncDataset.__new__(SyncDataset)
        try:
            SyncDataset.__init__(handle, runner, self._dataset, closes=False)
        except BaseException:
            runner.close()
            raise
        handle._reopen = self._reopen
        handle._keep = self
        return handle

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """dask's key for this image (no pickling round trip, which would reopen it)."""
        return ("ngio_async.SyncDataset", self.url, id(self._dataset))

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
    def shards(self) -> tuple[int, ...] | None:
        """Level 0's shard shape (``None``: unsharded), as a zarr 3 array's: dask's automatic
        blocks (``dask.array.from_array(ds)``) are then whole shards, never parts of several."""
        return self._dataset.levels[0].shards

    @property
    def async_dataset(self) -> Dataset:
        """The underlying async :class:`~ngio_async.images.Dataset` (use it on the portal loop)."""
        return self._dataset

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self) -> Iterator[NDArray[Any]]:
        """Level 0's items along its first axis, as numpy's iteration (one read each)."""
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return self._pending_repr() or f"<Sync{repr(self._dataset)[1:]}"

    @property
    def levels(self) -> list[SyncLevel]:
        """One array-like per pyramid level, largest first (napari's multiscale list); current
        after a build through any handle of the same dataset (dask workers share one)."""
        current = self._dataset.levels
        held = None if self._levels_ref is None else self._levels_ref()
        if (
            held is not None
            and len(held) == len(current)
            and all(s._level is lvl for s, lvl in zip(held, current, strict=True))
        ):
            return held  # (the same list while it is held and the levels are unchanged)
        refs = self._level_refs
        levels = _LevelList()
        for lvl in current:
            ref = refs.get(id(lvl))
            known = None if ref is None else ref()
            if known is None or known._level is not lvl:
                known = SyncLevel(self._runner, lvl, self)
                refs[id(lvl)] = weakref.ref(known)
            levels.append(known)
        if len(refs) > len(current):  # (levels rebuilt since: forget the old ones)
            for gone in refs.keys() - {id(lvl) for lvl in current}:
                refs.pop(gone, None)
        self._levels_ref = weakref.ref(levels)
        return levels

    @property
    def labels(self) -> SyncLabels:
        """The image's label images: ``names()``, ``open(name)`` / ``[name]``, ``create``."""
        labels = None if self._labels_ref is None else self._labels_ref()
        if labels is None:
            labels = SyncLabels(self._runner, self._dataset, self)
            self._labels_ref = weakref.ref(labels)
        return labels

    def level(
        self,
        index: int | str | None = None,
        *,
        pixel_size: float | Sequence[float] | None = None,
        unit: str | None = None,
    ) -> SyncLevel:
        lvl = self._dataset.level(index, pixel_size=pixel_size, unit=unit)
        return self.levels[self._dataset.levels.index(lvl)]

    # reading
    def __getitem__(self, selection: Any) -> NDArray[Any]:
        self._dataset._check_open()
        return self.levels[0][selection]  # (its short ways: small local reads, kept indexes)

    def read(
        self, level: int | str = 0, *, axes_order: Sequence[str] | None = None, **axes: Selector
    ) -> NDArray[Any]:
        return self._runner.call(lambda: self._dataset.read(level, axes_order=axes_order, **axes))

    # world (physical) coordinates: see the async Dataset methods
    # ROIs, ngio's way: see ngio_async.images._rois
    def masked(
        self,
        label: str | None = None,
        *,
        table: str | None = None,
        level: int | str = 0,
        of: str | None = None,
    ) -> SyncMaskedImage:
        """The image masked by label image ``label``, object by object (``Dataset.masked``):
        ``with ds.masked("nuclei") as m: m.read(7, masked=True)``."""
        from .images._rois import open_masked

        masked = self._runner.call(lambda: open_masked(self._dataset, label, table, level, of))
        return SyncMaskedImage(self._runner, masked, self)

    def channel_index(self, label: str | None = None, *, wavelength_id: str | None = None) -> int:
        """A channel's index by label or omero ``wavelength_id`` (``Dataset.channel_index``)."""
        return self._dataset.channel_index(label, wavelength_id=wavelength_id)

    def masking_rois(self, level: int | str = 0) -> list[Roi]:
        """On a label image: one box per object (``Dataset.masking_rois``)."""
        return self._runner.call(lambda: self._dataset.masking_rois(level))

    def read_roi(
        self,
        roi: Roi,
        level: int | str = 0,
        *,
        label: SyncDataset | str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> RoiRead:
        """Read one ROI (``Dataset.read_roi``; ``label``: an open label image of this one, or
        its name).

        :param axes_order: the data (and labels) in this axis order (as ``read``).
        """
        lab = label if label is None or isinstance(label, str) else label._dataset
        return self._runner.call(
            lambda: self._dataset.read_roi(roi, level, label=lab, axes_order=axes_order, **axes)
        )

    def write_roi(
        self,
        roi: Roi,
        data: ArrayLike,
        level: int | str = 0,
        *,
        pyramid: bool | Method | None = False,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write the pixels ``read_roi`` reads for ``roi`` (``Dataset.write_roi``).

        :param axes_order: ``data``'s axes in this order (as ``write``).
        :param merge: combine ``data`` with the stored pixels (as ``write``).
        """
        self._runner.call(
            lambda: self._dataset.write_roi(
                roi, data, level, pyramid=pyramid, axes_order=axes_order, merge=merge, **axes
            )
        )

    def read_rois(
        self,
        rois: str | Sequence[Roi],
        level: int | str = 0,
        *,
        label: SyncDataset | str | None = None,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
        **axes: Any,
    ) -> SyncIterator[RoiRead]:
        """``for r in ds.read_rois("FOV_ROI_table")``: lazy, prefetching (``Dataset.read_rois``;
        ``label``: an open label image of this one).

        :param axes_order: each ROI's data (and labels) in this axis order (as ``read``).
        :param halo: each ROI read grown by this many pixels per axis, clipped at the edges.
        """
        _ = self._runner.portal  # ClosedError before anything is made (a closed handle)
        lab = label if label is None or isinstance(label, str) else label._dataset
        stream = self._dataset.read_rois(
            rois,
            level,
            label=lab,
            prefetch=prefetch,
            ordered=ordered,
            planes=planes,
            axes_order=axes_order,
            halo=halo,
            **axes,
        )
        it = self._runner.iterate(stream)
        # the image (and label) stay open while its ROIs are read; stream_sync finds the stream
        it.keep = (self, label, stream)
        self._iterators.add(it)  # close() stops it
        return it

    @property
    def oindex(self) -> SyncIndexer:
        """``ds.oindex[sel]``, ``ds.oindex[sel] = v`` on level 0: zarr-python's orthogonal
        selection (``Dataset.read_orthogonal``, ``Dataset.write_orthogonal``)."""
        return SyncIndexer(
            self._runner, self._dataset.read_orthogonal, self._dataset.write_orthogonal
        )

    @property
    def vindex(self) -> SyncIndexer:
        """``ds.vindex[sel]``, ``ds.vindex[sel] = v`` on level 0: zarr-python's pointwise
        selection (``Dataset.read_points``, ``Dataset.write_points``)."""
        return SyncIndexer(self._runner, self._dataset.read_points, self._dataset.write_points)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray[Any]:
        return _as_array(self, dtype, copy)

    @property
    def read_cache(self) -> ChunkPool | None:
        """The decoded chunks kept across reads (``Limits.read_cache_bytes``): its ``hits``,
        ``held_bytes`` and ``peak_bytes`` (see the async ``Dataset.read_cache``)."""
        return self._dataset.read_cache

    # writing (needs mode="r+"; see the async Dataset methods)
    @property
    def mode(self) -> Mode:
        return self._dataset.mode

    def tiles(
        self,
        level: int | str = 0,
        shape: Sequence[int | None] | None = None,
        region: Sequence[slice] | None = None,
        overlap: int | Sequence[int] = 0,
        prefetch: int | None = None,
        ordered: bool = True,
        progress: ProgressCallback | None = None,
        **axes: Selector,
    ) -> SyncTiles:
        """``for tile in ds.tiles(...)``: lazy, prefetching; the async one's parameters.

        Leaving the loop early (``break``) stops the prefetching when the iterator is dropped;
        ``with ds.tiles() as tiles:`` stops it deterministically. ``len()``, ``total`` and
        ``grid`` as on the async stream. ``progress(done, total)`` is called in the thread that
        pulls the tiles, before ``next()`` returns the tile counted (it may use this API).
        """
        _ = self._runner.portal  # ClosedError before anything is made (a closed handle)
        check_progress(progress)  # before it is wrapped (the wrapper passes every check)
        relay = None if progress is None else _ProgressRelay(progress)
        stream = self._dataset.tiles(
            level, shape, region, overlap, prefetch, ordered, relay, **axes
        )
        it = cast("SyncTiles", self._runner.iterate(stream, SyncTiles))
        it.total, it.grid, it.relay = stream.total, stream.grid, relay
        # the dataset stays open while its tiles are iterated; stream_sync finds the stream
        it.keep = (self, stream)
        self._iterators.add(it)
        return it

    # lifetime
    def close(self) -> None:
        """Close the dataset and release the event-loop lease. Idempotent.

        From another thread too: its tile loops and reads in flight are stopped first (they
        raise :class:`~ngio_async.ClosedError`), so nothing is left running when it returns.
        """
        if self._close_pending():  # never used: nothing was opened
            return
        if self._runner.closed:
            return
        _ = self._runner.portal  # on the loop's own thread: RuntimeError before changing anything
        try:
            because = f"the dataset {self._dataset.url} was closed: its tiles cannot be read"
            for it in list(self._iterators):
                it.close(because=because)  # waits until the loop's prefetching has stopped
        finally:
            self._runner.interrupt()
            try:
                if self._closes:
                    self._runner.call(self._dataset.aclose)
            finally:
                self._runner.close()


def open(
    url: str | os.PathLike[str] | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    mode: Mode = "r",
    **store_options: Any,
) -> SyncDataset:
    """Open an OME-Zarr image for blocking code (scripts, notebooks, dask, napari).

    Same arguments as :func:`ngio_async.open_async`. Close it with ``close()`` or ``with``.
    Works inside a running event loop (Jupyter); in a coroutine, prefer ``await open_async(...)``.
    """
    runner, dataset = _leased(
        lambda: open_async(url, limits=limits, path=path, mode=mode, **store_options)
    )
    ds = SyncDataset(runner, dataset)
    if isinstance(url, str | os.PathLike):
        ds._reopen = ("zarr", url, {"limits": limits, "path": path, "mode": mode, **store_options})
    return ds


def _run_creating(make: Callable[[], Awaitable[Dataset]]) -> SyncDataset:
    runner, dataset = _leased(make)
    return SyncDataset(runner, dataset)


def create(url: str | os.PathLike[str] | Any, **options: Any) -> SyncDataset:
    """Create an empty OME-Zarr image for blocking code; returns a writable :class:`SyncDataset`.

    Same arguments as :func:`ngio_async.create_async` (``shape=``, ``dtype=``, ``axes=``, ...).
    """
    ds = _run_creating(lambda: create_async(url, **options))
    _reopen_created(ds, url, options)
    return ds


def _reopen_created(ds: SyncDataset, url: Any, options: Mapping[str, Any]) -> None:
    """A created image by URL or path is reopened (pickling) as an image to write in."""
    if isinstance(url, str | os.PathLike):
        opening = {k: v for k, v in options.items() if k not in _CREATE_ONLY}
        ds._reopen = ("zarr", url, {**opening, "mode": "r+"})


def create_like(
    src: SyncDataset | Dataset, url: str | os.PathLike[str] | Any, **overrides: Any
) -> SyncDataset:
    """Create an empty image shaped like ``src`` (see :func:`ngio_async.create_like_async`)."""
    source = src.async_dataset if isinstance(src, SyncDataset) else src
    ds = _run_creating(lambda: create_like_async(source, url, **overrides))
    _reopen_created(ds, url, overrides)  # was: refused pickling as "not opened from a URL"
    return ds


def _reopen(spec: _Reopen, state: str | None = None, origin: str | None = None) -> SyncDataset:
    """Unpickle a :class:`SyncDataset`: a copy that opens again, as it was opened, on first use.

    Unpickling does no I/O: a process that only passes the copy on (a distributed scheduler)
    never opens it, and a worker that cannot open it fails the task using it, not the
    unpickling of its messages. In another process than the one that pickled it (a dask or
    distributed worker), the copies with the same ``spec`` and metadata ``state`` share one
    dataset, opened once and kept open (connections and loop included) for the next ones: each
    copy is a handle of its own (see :class:`_SharedDatasets`). In the pickling process itself,
    a copy is opened anew.
    """
    copy = SyncDataset.__new__(SyncDataset)
    copy._reopen_spec = spec
    copy._pending = _Pending(spec, state, origin)
    return copy


def _open_spec(spec: _Reopen) -> SyncDataset:
    """Open a dataset as ``spec`` says (a :data:`_Reopen`)."""
    kind, url, options = spec
    if kind == "any":
        from ._open_any import open as open_any

        return open_any(url, **options)
    return open(url, **options)


class _Entry:
    """One shared dataset of :class:`_SharedDatasets`: the anchor (the dataset opened once,
    holding a lease) and the handles given out on it."""

    __slots__ = ("anchor", "handles", "image", "lock", "pending", "superseded")

    def __init__(self, image: bytes | None = None) -> None:
        self.anchor: SyncDataset | SyncPlate | None = None
        self.handles: weakref.WeakSet[SyncDataset | SyncPlate] = weakref.WeakSet()
        self.lock = threading.Lock()  # held while the anchor is opened
        self.pending = 0  # handles being made now
        self.image = image  # the image (its reopen spec), whatever its opening
        #: a newer opening of the same image came since: closed as soon as no handle uses it
        self.superseded = False

    def in_use(self) -> bool:
        return self.pending > 0 or any(not h._runner.closed for h in list(self.handles))


class _SharedDatasets:
    """The datasets unpickled copies share in one process: at most ``size`` of them kept open
    while unused (least recently used closed first); those in use are never closed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._superseded = _Superseded()

    def handle(
        self, key: bytes, spec: _Reopen, into: Any = None, image: bytes | None = None
    ) -> Any:
        """A new handle on the dataset of ``key``, opened as ``spec`` says if it is not yet
        (``into``: an unopened copy to make that handle).

        ``image``: the image ``key`` is an opening of. A new opening of it supersedes the
        earlier ones of this process: each is closed (its read cache freed) as soon as no
        handle uses it, not kept among the ``size`` unused ones; a superseded opening asked
        for again (a task of an older graph) is opened again and closed once unused.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(image)
                if image is not None:
                    self._supersede_locked(key, entry)
            self._entries.move_to_end(key)
            entry.pending += 1
        handle: SyncDataset | SyncPlate | None = None
        try:
            with entry.lock:
                anchor = entry.anchor
                if anchor is None or anchor._runner.closed:  # first use, or lost (exit)
                    entry.anchor = None
                    anchor = entry.anchor = (
                        _open_plate_spec(spec) if spec[0] == "plate" else _open_spec(spec)
                    )
            handle = anchor._share(into)
            return handle
        finally:
            with self._lock:
                entry.pending -= 1
                if handle is not None:
                    entry.handles.add(handle)
                    weakref.finalize(handle, self._released, entry)
                elif entry.anchor is None and not entry.pending and self._entries.get(key) is entry:
                    del self._entries[key]  # the open failed: the next copy tries again
                unused = self._unused_locked()
            for old in unused:
                old.close()

    def _supersede_locked(self, key: bytes, entry: _Entry) -> None:
        """Mark the other openings of ``entry``'s image superseded (or ``entry`` itself when
        ``key`` was superseded before: an older opening asked for again)."""
        if self._superseded.seen(key):
            entry.superseded = True
            return
        for other_key, other in self._entries.items():
            if other is not entry and other.image == entry.image and not other.superseded:
                other.superseded = True
                self._superseded.add(other_key)

    def _released(self, entry: _Entry) -> None:
        """A handle was collected (a finalizer: any thread, any lock held): if its opening is
        superseded, a short-lived thread closes the unused superseded ones."""
        if entry.superseded:
            with contextlib.suppress(RuntimeError):  # no new threads at interpreter shutdown
                threading.Thread(target=self.sweep, name="ngio_async-release", daemon=True).start()

    def sweep(self) -> None:
        """Close the superseded openings no handle uses now (their read caches freed)."""
        with self._lock:
            unused = self._unused_locked()
        for old in unused:
            old.close()

    def _unused_locked(self) -> list[SyncDataset | SyncPlate]:
        """Take out the superseded entries no handle uses, and the unused entries beyond
        ``size`` (oldest first); their anchors, to be closed by the caller outside the lock."""
        out: list[SyncDataset | SyncPlate] = []
        excess = len(self._entries) - self.size
        for key, entry in list(self._entries.items()):
            if excess <= 0 and not entry.superseded:
                continue
            if entry.anchor is not None and entry.in_use():
                continue
            if entry.anchor is None and entry.pending:
                continue
            del self._entries[key]
            excess -= 1
            if entry.anchor is not None:
                out.append(entry.anchor)
        return out

    def close(self) -> None:
        """Close every anchor no handle uses now (interpreter exit, tests)."""
        with self._lock:
            entries = [(k, e) for k, e in self._entries.items() if not e.in_use()]
            for key, _ in entries:
                del self._entries[key]
        for _, entry in entries:
            if entry.anchor is not None:
                entry.anchor.close()


_shared = _SharedDatasets(32)


#: this process, as pickles name it (a pid may be another machine's too)
_process = os.urandom(12).hex()


def _forget_shared() -> None:
    """In a forked child: the parent's shared datasets live on a loop the child does not have."""
    global _shared, _process
    _shared = _SharedDatasets(_shared.size)
    _process = os.urandom(12).hex()


os.register_at_fork(after_in_child=_forget_shared)


def _labels_of(dataset: SyncDataset) -> SyncLabels:
    if dataset._pending is not None:  # unpickled, not opened yet: the labels open it on use
        return SyncLabels._unopened(dataset)
    return dataset.labels


class SyncPlate(_Reopenable):
    """An HCS plate for blocking code: ``plate.wells``, ``plate.image("A", "1", field=0)``.

    The blocking twin of :class:`~ngio_async.images.Plate` (same names, no ``await``). It
    holds one event-loop lease until ``close()``; every dataset it returns holds its own
    (close them too). They share the plate's store: use them while the plate is open.
    """

    def __init__(self, runner: Runner, plate: Plate, *, closes: bool = True) -> None:
        self._runner = runner
        self._plate = plate
        #: whether close() closes ``plate`` (False: a handle on a plate that unpickled copies
        #: share, closed by the anchor of :data:`_shared`)
        self._closes = closes
        #: ``(url, open_plate options)`` when opened from a URL or path (for the datasets'
        #: pickling), else None
        self._reopen: tuple[Any, dict[str, Any]] | None = None
        #: the plate's own ``path`` and ``mode`` in that store (for its pickling)
        self._place: dict[str, Any] = {}
        self._keep: object = None  # a handle's anchor, kept open while the handle is used
        self._finalizer = _track(self, runner, plate if closes else _NOTHING)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the way it was opened (URL and options, secrets included), like
        :class:`SyncDataset`: opened again on first use, once per process for its copies."""
        pending = self._pending
        if pending is not None:  # an unopened copy passes on as it came
            _, url, options = pending.spec
            return (_reopen_plate, (url, options, pending.state, pending.origin))
        if self._reopen is None:
            raise TypeError(
                f"{self!r} cannot be pickled: it was not opened from a URL or path "
                "(a store object cannot be sent to another process); open it by URL"
            )
        url, options = self._reopen
        _refuse_memory(self, url)
        state = _plate_state(self._plate)
        return (_reopen_plate, (url, {**options, **self._place}, state, _process))

    def _open_anew(self, spec: _Reopen) -> None:
        self._adopt(_open_plate_spec(spec))

    def _adopt(self, source: SyncPlate) -> None:
        """Become ``source``, just opened and not handed out (see :meth:`SyncDataset._adopt`)."""
        source._finalizer.detach()
        _open_objects.pop(source, None)
        SyncPlate.__init__(self, source._runner, source._plate, closes=source._closes)
        self._reopen, self._place, self._keep = source._reopen, source._place, source._keep

    def _share(self, into: Any = None) -> SyncPlate:
        runner = Runner()
        handle = into if into is not None else SyncPlate.__new__(SyncPlate)
        try:
            SyncPlate.__init__(handle, runner, self._plate, closes=False)
        except BaseException:
            runner.close()
            raise
        handle._reopen, handle._place, handle._keep = self._reopen, self._place, self
        return handle

    # description (mirrors Plate)
    @property
    def async_plate(self) -> Plate:
        """The underlying async :class:`~ngio_async.images.Plate` (use it on the portal loop)."""
        return self._plate

    @property
    def metadata(self) -> PlateMeta:
        return self._plate.metadata

    @property
    def url(self) -> str:
        return self._plate.url

    @property
    def version(self) -> str:
        return self._plate.version

    @property
    def name(self) -> str | None:
        return self._plate.name

    @property
    def mode(self) -> Mode:
        return self._plate.mode

    @property
    def rows(self) -> list[str]:
        return self._plate.rows

    @property
    def columns(self) -> list[str]:
        return self._plate.columns

    @property
    def wells(self) -> list[str]:
        return self._plate.wells

    @property
    def acquisitions(self) -> list[Acquisition]:
        return self._plate.acquisitions

    @property
    def field_count(self) -> int | None:
        return self._plate.field_count

    @property
    def tables(self) -> SyncPlateTables:
        """The plate's tables and its images' concatenated (see
        :class:`ngio_async.tables.PlateTables`), blocking."""
        return SyncPlateTables(self._runner, self._plate.tables, self)

    @property
    def closed(self) -> bool:
        """Whether this plate (or, for a copy sharing it, the copy) was closed."""
        pending = self._pending
        if pending is not None:
            return pending.closed
        return self._runner.closed or self._plate.closed

    def __repr__(self) -> str:
        return self._pending_repr() or f"<Sync{repr(self._plate)[1:]}"

    # reading
    def well(self, row: str | int, column: str | int | None = None) -> PlateWell:
        """The well ``(row, column)`` (or ``"A/1"``) and its fields (cached)."""
        return self._runner.call(self._plate.well, row, column)

    def image_paths(
        self, acquisition: int | None = None, *, consolidated: bool = False
    ) -> list[tuple[str, str]]:
        """``(well path, field path)`` of every field; the wells are read concurrently (see
        the async ``image_paths`` for ``consolidated``)."""
        return self._runner.call(self._plate.image_paths, acquisition, consolidated=consolidated)

    def image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: int | str = 0,
        *,
        mode: Mode | None = None,
    ) -> SyncDataset:
        """Open a field of view (by index or path) as a :class:`SyncDataset`; close it too."""
        return self._leased(lambda: self._plate.image(row, column, field, mode=mode))

    # writing
    def add_image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: str | int = "0",
        *,
        acquisition: int | None = None,
        overwrite: bool = False,
        **create_options: Any,
    ) -> SyncDataset:
        """Create and list a field of view; returns it writable (see
        :meth:`ngio_async.images.Plate.add_image`)."""
        return self._leased(
            lambda: self._plate.add_image(
                row,
                column,
                field,
                acquisition=acquisition,
                overwrite=overwrite,
                **create_options,
            )
        )

    def remove_image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: str | int = "0",
        *,
        delete: bool = False,
    ) -> None:
        self._runner.call(lambda: self._plate.remove_image(row, column, field, delete=delete))

    def add_row(self, row: str) -> None:
        self._runner.call(lambda: self._plate.add_row(row))

    def add_column(self, column: str | int) -> None:
        self._runner.call(lambda: self._plate.add_column(column))

    def add_acquisition(self, id: int, name: str | None = None, **fields: Any) -> None:
        self._runner.call(lambda: self._plate.add_acquisition(id, name, **fields))

    def _leased(self, make: Callable[[], Awaitable[Dataset]]) -> SyncDataset:
        _ = self._runner.portal  # ClosedError when inherited through fork, as SyncLabels
        runner, dataset = _leased(make)  # the field's dataset holds its own lease
        ds = SyncDataset(runner, dataset, owner=False)
        ds._keep = self  # it reads through the plate's store: the plate stays open
        if self._reopen is not None:
            url, options = self._reopen
            ds._reopen = ("zarr", url, {**options, "path": dataset.root, "mode": dataset.mode})
        return ds

    # lifetime
    def close(self) -> None:
        """Close the plate (and its store, if it opened it) and release the lease. Idempotent."""
        if self._close_pending() or self._runner.closed:
            return
        self._runner.interrupt()  # the calls other threads wait on end in ClosedError
        try:
            if self._closes:
                self._runner.call(self._plate.aclose)
        finally:
            self._runner.close()


def open_plate(
    url: str | os.PathLike[str] | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    mode: Mode = "r",
    **store_options: Any,
) -> SyncPlate:
    """Open an HCS plate for blocking code; same arguments as
    :func:`ngio_async.open_plate_async`. Close it with ``close()`` or ``with``."""
    runner, plate = _leased(
        lambda: open_plate_async(url, limits=limits, path=path, mode=mode, **store_options)
    )
    result = SyncPlate(runner, plate)
    if isinstance(url, str | os.PathLike):
        result._reopen = (_absolute(url), {"limits": limits, **_store_options(store_options)})
        result._place = {"path": path, "mode": mode}
    return result


def create_plate(url: str | os.PathLike[str] | Any, **options: Any) -> SyncPlate:
    """Create an empty HCS plate for blocking code; returns a writable :class:`SyncPlate`.

    Same arguments as :func:`ngio_async.create_plate_async` (``rows=``, ``columns=``, ...).
    """
    runner, plate = _leased(lambda: create_plate_async(url, **options))
    result = SyncPlate(runner, plate)
    if isinstance(url, str | os.PathLike):
        store_options = {k: v for k, v in options.items() if k not in _CREATE_PLATE_ONLY}
        result._reopen = (_absolute(url), _store_options(store_options))
        result._place = {"path": options.get("path", ""), "mode": "r+"}
    return result


def create_plate_like(
    src: SyncPlate | Plate, url: str | os.PathLike[str] | Any, **options: Any
) -> SyncPlate:
    """Create an empty plate shaped like ``src`` for blocking code (see
    :func:`ngio_async.images._plate_ops.create_plate_like_async`); returns it writable."""
    from .images._plate_ops import create_plate_like_async

    source = src.async_plate if isinstance(src, SyncPlate) else src
    runner, plate = _leased(lambda: create_plate_like_async(source, url, **options))
    result = SyncPlate(runner, plate)
    if isinstance(url, str | os.PathLike):
        store_options = {k: v for k, v in options.items() if k not in _CREATE_PLATE_LIKE_ONLY}
        result._reopen = (_absolute(url), _store_options(store_options))
        result._place = {"path": options.get("path", ""), "mode": "r+"}
    return result


def open_well(url: str | os.PathLike[str] | Any, **options: Any) -> PlateWell:
    """Read the well at ``url`` (``.../plate.zarr/B/03``) for blocking code (see
    :func:`ngio_async.images._plate_ops.open_well_async`; nothing stays open)."""
    return call(_open_well, url, options)


async def _open_well(url: Any, options: dict[str, Any]) -> PlateWell:
    from .images._plate_ops import open_well_async

    return await open_well_async(url, **options)


def _reopen_plate(
    url: Any, options: dict[str, Any], state: str | None = None, origin: str | None = None
) -> SyncPlate:
    """Unpickle a :class:`SyncPlate`: a copy that opens again on first use, as it was opened
    (shared by the copies of one process; see :func:`_reopen`)."""
    copy = SyncPlate.__new__(SyncPlate)
    copy._pending = _Pending(("plate", url, options), state, origin)
    return copy


def _open_plate_spec(spec: _Reopen) -> SyncPlate:
    """Open the plate of a ``("plate", url, options)`` spec."""
    _, url, options = spec
    return open_plate(url, **options)


def _twin_docs(sync_cls: type, async_cls: type) -> None:
    """Give the sync twins without a docstring that of their async method or property (so
    ``help()`` of the blocking API says what each call does)."""
    for name, member in list(vars(sync_cls).items()):
        if name.startswith("_") or (getattr(member, "__doc__", None) or "").strip():
            continue
        twin = inspect.getattr_static(async_cls, name, None)
        doc = (getattr(twin, "__doc__", None) or "").strip()
        if not doc:
            continue
        if isinstance(member, property):
            setattr(sync_cls, name, property(member.fget, member.fset, member.fdel, doc))
        elif inspect.isfunction(member):
            member.__doc__ = (
                doc
                if inspect.isfunction(twin) and not inspect.iscoroutinefunction(twin)
                else f"Blocking :meth:`{async_cls.__name__}.{name}`: {doc}"
            )


for _sync, _async in (
    (SyncDataset, Dataset),
    (_SyncDatasetWorld, Dataset),
    (_SyncDatasetWrites, Dataset),
    (SyncLevel, Level),
    (SyncLabels, Labels),
    (SyncPlate, Plate),
):
    _twin_docs(_sync, _async)
