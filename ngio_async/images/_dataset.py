"""``Dataset``: an opened OME-Zarr image (levels, labels, metadata) and its awaitable reads."""

from __future__ import annotations

import math
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import MetadataError, UnsupportedError
from .._prefetch import first_error, start_deferred
from .._workers import Workers
from ..meta._ngff_old import OLD_VERSIONS
from ..tables import Tables
from ._dataset_writes import _DatasetWrites
from ._labels import Labels
from ._level import Level
from ._metadata import ImageMetadata, LevelCalibration
from ._open import EarlyGet, first_level_key, join, read_group_metadata, read_level_metadata
from ._opening import (
    Mode,
    _check_mode,
    _check_multiscale,
    _first_series,
    _multiscale_index,
    _not_an_image,
    _Opening,
    _url_of,
    open_node,
)
from ._reuse import ChunkPool
from ._tile_pool import drop_spares
from ._tiles import TileOwner
from ._world import Origin, Unit, absent_axes, extent, system_calibration, world_selection

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    from .._limits import Limits
    from ..engine.pyramid import Method
    from ..meta import OmeMetadata
    from ..meta.zarr import ArrayMeta
    from ..stores import AsyncStore
    from ..tables import Roi
    from ._merge import Merge
    from ._rois import MaskedImage, RoiRead, RoiStream

__all__ = ["Dataset", "Labels", "open_async"]


class Dataset(_DatasetWrites):
    """An OME-Zarr image: ``levels`` (largest first), ``metadata``, ``labels``; reads with ``await``.

    Open with :func:`ngio_async.open_async`. Reading::

        arr = await ds.read(level=0, c="DAPI", y=slice(0, 512), x=slice(0, 512))
        arr = await ds[0, :, 100:200, 150:250]      # numpy basic indexing on level 0
    """

    _what = "dataset"

    def __init__(
        self,
        store: AsyncStore,
        root: str,
        metadata: ImageMetadata,
        levels: list[Level],
        *,
        limits: Limits,
        workers: Workers,
        owns_store: bool,
    ) -> None:
        self.store = store
        self.root = root
        self.metadata = metadata
        self.levels = levels
        self.limits = limits
        self._workers = workers
        self._owns_store = owns_store
        # weakly: each holds the dataset (``(await open_async(url)).labels.open(n)`` keeps
        # it while used), and a dataset holding them back would be a cycle: a dropped dataset
        # (and its store's connections) kept until the garbage collector's next full pass
        self._labels: weakref.ref[Labels] | None = None
        self._tables: weakref.ref[Tables] | None = None
        self._tile_owner = TileOwner()  # runs bare ``async for`` tile streams
        self.mode: Mode = "r"
        self._meta_lock: anyio.Lock | None = None
        # build_pyramid, set_scale and labels.create, one at a time: each plans from the levels
        # and scales it reads, and the labels follow the image only if none plans from stale ones
        self._structure_lock: anyio.Lock | None = None
        # channels whose display window follows the data (created without one, or set "auto")
        self._auto_windows: set[int] = set()
        # per plane of the lowest level (its indices on the axes other than y and x): the
        # lowest and highest value there, for the channels ``_extents_of`` names
        self._extents: dict[tuple[int, ...], tuple[float, float] | None] = {}
        self._extents_of: tuple[int, ...] = ()
        self._read_cache: ChunkPool | None = None

    @property
    def labels(self) -> Labels:
        """The image's label images (``names()``, ``open(name)``, ``create(name)``)."""
        labels = None if self._labels is None else self._labels()
        if labels is None:
            labels = Labels(self)
            self._labels = weakref.ref(labels)
        return labels

    @property
    def tables(self) -> Tables:
        """The image's tables (see :class:`ngio_async.tables.Tables`)."""
        tables = None if self._tables is None else self._tables()
        if tables is None:
            tables = Tables(self)
            self._tables = weakref.ref(tables)
        return tables

    # ---------------------------------------------------------------- opening / closing
    @classmethod
    async def open_in(
        cls,
        store: AsyncStore,
        root: str = "",
        *,
        limits: Limits | None = None,
        workers: Workers | None = None,
        owns_store: bool = False,
        mode: Mode = "r",
        parent_version: str | None = None,
        multiscale: int | str = 0,
    ) -> Dataset:
        """Open the image at ``root`` of an open store (metadata only; no pixel is read).

        ``mode="r+"`` allows writes (pixels and metadata); the default ``"r"`` refuses them.
        ``parent_version``: the NGFF version of the enclosing group (a plate's well), whose
        documents are read first. ``multiscale``: which of the group's multiscales, by index
        or ``name`` (default the first).
        """
        _check_mode(mode, store, root)
        _check_multiscale(multiscale)
        if store.blocking_reads:  # local: no round trip to save
            return await cls._open_in(
                store, root, limits, workers, owns_store, mode, None, None, multiscale
            )
        # remote: once the store opened an image, the first level's metadata (named as that
        # image's) is asked for along with the group's (a plate's fields, labels)
        early = EarlyGet(store, first_level_key(root, parent_version))
        with first_error():  # the opening's own error, plainly (the early GET raises none)
            async with anyio.create_task_group() as tg:
                start_deferred(tg, early.run)
                dataset = await cls._open_in(
                    store,
                    root,
                    limits,
                    workers,
                    owns_store,
                    mode,
                    parent_version,
                    early,
                    multiscale,
                )
                # a wrong guess is not waited for (on failure the group cancels it itself, and
                # a cancellation from outside stays one: never taken for this scope's own)
                tg.cancel_scope.cancel()
        return dataset

    @classmethod
    async def _open_in(
        cls,
        store: AsyncStore,
        root: str,
        limits: Limits | None,
        workers: Workers | None,
        owns_store: bool,
        mode: Mode,
        parent_version: str | None,
        early: EarlyGet | None,
        multiscale: int | str = 0,
    ) -> Dataset:
        limits = limits or store.limits
        ome = await read_group_metadata(store, root, parent_version=parent_version)
        if ome.multiscales is None and ome.bioformats2raw_layout is not None and not ome.plate:
            root = join(root, await _first_series(store, root, ome.version))  # bioformats2raw
            # series "0"'s group document is the key guessed for a first level: already read
            ome = await read_group_metadata(store, root, early=early)
        if ome.multiscales is None:
            raise UnsupportedError(_not_an_image(ome, _url_of(store, root)))
        index = _multiscale_index(ome, multiscale, _url_of(store, root))
        paths = tuple(d.path for d in ome.multiscales[index].datasets)
        arrays = await read_level_metadata(
            store, root, ome, paths, early, multiscale=index, consolidated=mode == "r"
        )
        return cls.from_plan(
            store,
            root,
            ome,
            arrays,
            limits=limits,
            workers=workers,
            owns_store=owns_store,
            mode=mode,
            multiscale=index,
        )

    @classmethod
    def from_plan(
        cls,
        store: AsyncStore,
        root: str,
        ome: OmeMetadata,
        arrays: list[ArrayMeta],
        *,
        limits: Limits | None = None,
        workers: Workers | None = None,
        owns_store: bool = False,
        mode: Mode = "r+",
        multiscale: int = 0,
        auto_windows: Sequence[int] = (),
    ) -> Dataset:
        """A dataset over metadata already known (just written by ``create``): no I/O.
        ``multiscale``: the index of the multiscale ``arrays`` belong to; ``auto_windows``: the
        channels whose display windows follow the data when the pyramid is built."""
        _check_mode(mode)
        limits = limits or store.limits
        try:
            metadata = ImageMetadata(ome, multiscale)
            calibration = metadata.spatial_calibration
        except MetadataError as exc:  # a rule the schema leaves to the reader: name the doc
            doc = join(root, ".zattrs" if (ome.version or "0.5") == "0.4" else "zarr.json")
            raise MetadataError(f"{store.url.rstrip('/')}/{doc}: {exc.rule}", exc.path) from None
        workers = workers or Workers(limits.decode_threads)
        window = max(2 * limits.max_requests, 2 * limits.decode_threads)
        levels = [
            Level(
                store,
                join(root, path),
                arr,
                scale=cal.scale,
                translation=cal.translation,
                workers=workers,
                window=window,
            )
            for path, arr, cal in zip(metadata.paths, arrays, calibration, strict=True)
        ]
        dataset = cls(
            store,
            root,
            metadata,
            levels,
            limits=limits,
            workers=workers,
            owns_store=owns_store,
        )
        dataset._set_mode(mode)
        dataset._auto_windows = set(auto_windows)
        return dataset

    def _set_mode(self, mode: Mode) -> None:
        self.mode = mode
        version = self.metadata.ngff_version
        old = version in OLD_VERSIONS  # NGFF 0.1 - 0.3: read only
        for lvl in self.levels:
            lvl.writable = mode == "r+" and not old
            if old and mode == "r+":
                lvl.read_only_why = f"an NGFF {version} image is read only (convert it to write)"
        self._attach_read_cache()

    def _attach_read_cache(self) -> None:
        """(Re)start the read cache of a read-only dataset over its current levels, empty."""
        if self._read_cache is not None:
            self._read_cache.clear()
        budget = self.limits.read_cache_bytes
        pool = ChunkPool(budget) if budget > 0 and self.mode == "r" else None
        self._read_cache = pool
        for lvl in self.levels:
            chunk_bytes = math.prod(lvl.chunks) * lvl.dtype.itemsize
            view = None if pool is None else pool.level(chunk_bytes, lvl.reads_locally)
            lvl.use_read_cache(view, budget)

    @property
    def read_cache(self) -> ChunkPool | None:
        """The decoded chunks this read-only dataset keeps across region reads
        (``Limits.read_cache_bytes``; ``None``: off, or a writable dataset): ``hits``,
        ``held_bytes``, ``peak_bytes``; ``clear()`` drops them (so do ``refresh`` and
        closing)."""
        return self._read_cache

    async def _close_own(self) -> None:
        """Stop the background fetches of bare ``async for`` loops (the store closes next)."""
        await self._tile_owner.aclose()
        drop_spares(self)  # the tile arrays its streams left
        if self._read_cache is not None:
            self._read_cache.clear()

    # ---------------------------------------------------------------- world coordinates
    def world_region(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        **axes: Any,
    ) -> tuple[Any, ...]:
        """The level selection (one entry per axis) of a box in world coordinates.

        Space and time axes take ``(start, stop)`` (the half-open world range: a slice of
        every pixel it overlaps, clipped to the image) or a number (the index of the pixel
        holding it: the axis is dropped, as an int in :meth:`read`); other axes take what
        :meth:`read` takes; axes not named are whole. Pixel ``i`` covers ``[translation +
        i*scale, translation + (i+1)*scale)`` (see :mod:`ngio_async.images._world`).

        :param unit: the unit of the values (``"micrometer"``, ``"nanometer"``, ``"second"``,
            ...; or a mapping axis -> unit), converted to each axis's stored unit; ``None``:
            as stored.
        :param origin: ``"image"``: coordinates from the level's first pixel corner, the
            translation ignored (ngio's and Fractal ROI tables' rule).
        :param system: NGFF 0.6: the coordinate system the values are in, named as the
            multiscale names it (axes too take its names); ``None``: the intrinsic one. It
            must be linked to the intrinsic one by an identity, scale, translation, mapAxis or
            a sequence of them (``UnsupportedError`` names any other transformation type).
        :raises IndexError: a range or point wholly outside the image (names the axis, the
            range and the image's world extent there).
        :raises ValueError: a non-finite, empty or reversed range, a unit the axis's unit
            cannot be converted from.
        """
        lvl = self.level(level)
        index = self.levels.index(lvl)
        cal = self._world_calibration(index, system)
        names = tuple(a.name for a in cal.axes)  # the system's (else the image's) names
        absent = absent_axes(axes, names)
        axes = {k: v for k, v in axes.items() if k not in absent}
        world = world_selection(cal, lvl.shape, axes, unit, index, origin=origin)
        other = {
            self.axes[names.index(k)] if k in names else k: v
            for k, v in axes.items()
            if k not in names or names.index(k) not in world
        }
        selection, pick = self._selection(lvl, other)
        for i, s in world.items():
            selection[i] = s
        for i, s in enumerate(selection):
            if isinstance(s, int):
                selection[i] = s % lvl.shape[i]
            elif s == slice(None):
                selection[i] = slice(0, lvl.shape[i])
        if pick is not None:
            selection[pick[0]] = list(pick[1])
        return tuple(selection)

    def world_extent(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
    ) -> dict[str, tuple[float, float]]:
        """Per space and time axis: the world interval ``(start, stop)`` a level covers, in
        the stored unit (``unit``: in that one); ``system``: in that NGFF 0.6 coordinate
        system (see :meth:`world_region`)."""
        index = self._level_index(level)
        cal = self._world_calibration(index, system)
        return extent(cal, self.levels[index].shape, unit, index, origin)

    def _world_calibration(self, index: int, system: str | None) -> LevelCalibration:
        """Level ``index``'s calibration in coordinate system ``system`` (``None``: as read)."""
        if system is None:
            return self.metadata.spatial_calibration[index]
        cals = self.metadata.spatial_calibration
        return system_calibration(self.metadata.ngff06, cals, system, self.url)[index]

    async def read_world(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> NDArray[Any]:
        """Read a box in world coordinates: ``await ds.read_world(c="DAPI", y=(40, 70),
        x=(105.5, 125.5), unit="micrometer")``; the pixels of :meth:`world_region`, axes
        dropped as :meth:`read` drops them (``system``: see there; ``axes_order``: see
        :meth:`read`)."""
        self._check_open()
        region = self.world_region(level, unit=unit, origin=origin, system=system, **axes)
        data = await self.level(level).getitem(region)
        if axes_order is None:
            return data
        from ._axes_order import kept_by_region, to_order

        return to_order(data, kept_by_region(self.axes, region), axes_order)

    async def write_world(
        self,
        data: ArrayLike,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        pyramid: bool | Method | None = False,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write a box in world coordinates (see :meth:`read_world`, :meth:`write`): each
        range must lie inside the image with its bounds on pixel edges of the level (within
        1/100 pixel), so ``data`` fills whole pixels; ``ValueError`` / ``IndexError`` name the
        axis otherwise. ``axes_order``, ``merge`` and ``pyramid``: as :meth:`write`."""
        self._check_writable()
        lvl = self.level(level)
        index = self.levels.index(lvl)
        cal = self.metadata.spatial_calibration[index]
        whole = {k: v for k, v in axes.items() if k not in absent_axes(axes, self.axes)}
        world_selection(cal, lvl.shape, whole, unit, index, origin=origin, whole=True)
        region = self.world_region(level, unit=unit, origin=origin, **axes)
        named = dict(zip(self.axes, region, strict=True))
        await self.write(data, level, pyramid, axes_order=axes_order, merge=merge, **named)

    def channel_index(self, label: str | None = None, *, wavelength_id: str | None = None) -> int:
        """The index of the channel labelled ``label``, or whose omero ``wavelength_id`` (as
        Fractal writes it) is that: ``ds.read(c=ds.channel_index(wavelength_id="A01_C01"))``
        (ngio's ``get_channel_idx``; a channel without one is matched by its label, as ngio
        reads it); ``KeyError`` lists the channels."""
        from ._channel_select import channel_index

        return channel_index(self, label, wavelength_id)

    # ---------------------------------------------------------------- ROIs (ngio's idiom)
    def image_roi(self, name: str = "image") -> Roi:
        """The ROI covering the whole image (ngio's ``build_image_roi_table``: x, y, z in
        the image's units from its origin, and the time when it has a ``t`` axis), for
        ``await ds.tables.write_rois("image_ROI_table", [ds.image_roi()])``."""
        from ._image_ops import image_roi

        return image_roi(self, name)

    def masked(
        self,
        label: str | None = None,
        *,
        table: str | None = None,
        level: int | str = 0,
        of: str | None = None,
    ) -> _Opening[MaskedImage]:
        """The image masked by label image ``label``, object by object (ngio's
        ``get_masked_image``): ``async with ds.masked("nuclei") as m: await m.read(7,
        masked=True)``. ``table``: the masking ROI table (default: the first whose region is
        ``label``; none: the boxes are computed from the label image, as ngio does); ``of``:
        a label image of this one to mask instead (ngio's ``get_masked_label``). See
        :class:`~ngio_async.images.MaskedImage`."""
        from ._rois import open_masked

        return _Opening(lambda: open_masked(self, label, table, level, of))

    async def masking_rois(self, level: int | str = 0) -> list[Roi]:
        """On a label image: one ``Roi`` per object (non-zero value), its bounding box in
        the image's units from its corner, as ngio's ``build_masking_roi_table`` (read tile
        by tile); ``ds.tables.write_rois(name, rois, label=...)`` stores them."""
        from ._rois import masking_rois

        self._check_open()
        return await masking_rois(self, level)

    async def read_roi(
        self,
        roi: Roi,
        level: int | str = 0,
        *,
        label: Dataset | str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> RoiRead:
        """Read one ROI (a ``Roi`` of ``ds.tables.rois(name)``; ngio's ``get_roi``): ``r.data``,
        ``r.region``, and ``r.labels`` of ``label`` (an open label image, or the name of one
        of this image's) on the same grid (``axes_order``: both so, see :meth:`read`)."""
        from ._rois import read_roi

        self._check_open()
        if isinstance(label, str):
            async with self.labels.open(label) as lab:
                read = await read_roi(self, roi, level, lab, **axes)
        else:
            read = await read_roi(self, roi, level, label, **axes)
        if axes_order is None:
            return read
        from ._axes_order import roi_read_in_order

        return roi_read_in_order(read, self.axes, axes_order)

    async def write_roi(
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
        """Write ``data`` to the pixels :meth:`read_roi` reads for ``roi`` (ngio's ``set_roi``:
        a segmentation of a FOV into its label image); see :meth:`write` (``axes_order``:
        ``data``'s axes, as :meth:`read_roi` gives them with it; ``merge``: as there)."""
        from ._rois import write_roi

        self._check_writable()
        if axes_order is not None:
            from ._axes_order import roi_data_from_order

            data = roi_data_from_order(self, roi, data, level, axes, axes_order)
        if merge is not None:
            from ._merge import merge_write_roi

            return await merge_write_roi(self, roi, data, level, pyramid, axes, merge)
        await write_roi(self, roi, data, level, pyramid, **axes)

    def read_rois(
        self,
        rois: str | Sequence[Roi],
        level: int | str = 0,
        *,
        label: Dataset | str | None = None,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
        **axes: Any,
    ) -> RoiStream:
        """``async for r in ds.read_rois("FOV_ROI_table")``: each ROI of a table (a name, or
        ``Roi`` values) read at ``level`` ahead of the consumer, as ``r.roi``, ``r.data``
        (and ``r.labels`` of ``label``, an open label image or the name of one of this
        image's, on the same grid); ``axes``
        select other axes (``c="DAPI"``); ``planes=("z",)``: each ROI plane by plane, the axis
        dropped (ngio's ``by_yx``); ``axes_order``: ``r.data`` and ``r.labels`` in that
        order (see :meth:`read`; ``stream(..., out=...)`` takes results in it too, as ngio's
        iterators' ``axes_order``); ``halo={"y": 16, "x": 16}``: each box grown by that many
        pixels of the level per axis, clipped at its edges (ngio's ``with_halo``):
        ``r.region`` is the grown box, ``r.core`` the ROI's own (``r.core_data``,
        ``r.crop(a)``), and ``stream(..., out=...)`` writes only the ROI's own box of each
        result (into another image than this one: ``out`` this image is refused). ``halo``
        default ``None`` (none); an axis not of the image, not space or time, or a count
        that is not an int >= 0 is a ``ValueError``. See :class:`~ngio_async.images.RoiStream`."""
        from ._rois import RoiStream

        self._check_open()
        return RoiStream(
            self,
            rois,
            level,
            label,
            axes,
            prefetch=prefetch,
            ordered=ordered,
            planes=planes,
            axes_order=axes_order,
            halo=halo,
        )


def open_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    mode: Mode = "r",
    multiscale: int | str = 0,
    **store_options: Any,
) -> _Opening[Dataset]:
    """Open an OME-Zarr image: ``ds = await open_async(url)`` or ``async with open_async(url) as ds``.

    :param url: a path, ``file://``, ``memory://``, ``s3://``, ``gs://``, ``az://``, ``http(s)://``
        URL, an obstore store or an :class:`~ngio_async.stores.AsyncStore`.
    :param limits: concurrency, prefetch, timeout and retry bounds (:class:`~ngio_async.Limits`).
        With an open store the requests keep the store's own (``max_requests``, ``timeout``,
        retries, ``coalesce_gap``: given to ``open_store``); ``limits`` sets the dataset's
        (prefetch, caches, ``decode_threads``).
    :param path: the image's path inside the store (default: the URL is the image).
    :param mode: ``"r"`` (default: read-only; writes raise :class:`~ngio_async.ReadOnlyError`)
        or ``"r+"`` (read and write pixels and metadata; on a store that takes no writes,
        http(s)://, an :class:`~ngio_async.UnsupportedError` at once, before any request).
    :param multiscale: which multiscale of a group holding several: its index or its ``name``
        (default ``0``, the first). An unknown one raises an error listing those there are.
        ``build_pyramid`` and ``pyramid=`` writes build the first one only.
    :param store_options: backend options (S3 ``endpoint``, ``region``, credentials, ...) of
        a URL; with an open store they raise ``ValueError`` (give them to ``open_store``).
    Only metadata is read: for NGFF 0.5 one GET for the group and one per level, concurrently
    (read-only opens of a group whose ``zarr.json`` consolidates its levels: that one GET).
    """
    _check_multiscale(multiscale)
    return open_node(
        partial(Dataset.open_in, multiscale=multiscale), url, limits, path, mode, store_options
    )
