"""``_DatasetEdits``: ``Dataset``'s metadata edits (channels and the display windows that
follow the data, name, axes, scale with the label images following) and the rewrite of the
group document they share."""

from __future__ import annotations

import math
import re
from collections.abc import Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import anyio
import numpy as np

from .._errors import ChangedError, MetadataError, NotFoundError, UnsupportedError
from ._dataset_tiles import _DatasetTiles
from ._metadata import ImageMetadata
from ._open import join, refresh_image
from ._write import image_lock

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..meta import Multiscale, OmeMetadata, Omero, Window
    from ._dataset import Dataset

__all__ = ["followed_windows"]

_S = TypeVar("_S")


class _DatasetEdits(_DatasetTiles):
    """The metadata edits of a :class:`Dataset`."""

    # ---------------------------------------------------------------- windows following the data
    async def _follow_data_windows(self, region: Sequence[slice] | None = None) -> None:
        """Derive the display windows of the channels that follow the data (see
        :meth:`set_channels`) from the lowest level, once the pyramid is built (``region``: the
        level-0 region written; only the planes of the lowest level below it are read again
        when the others are known). The metadata is written when a window changes."""
        if not self._auto_windows:
            return
        # one at a time, scanned once the lock is held: of two writes' scans, the later one
        # saw both writes' pixels and sets the windows last (an earlier scan set them last)
        async with image_lock(self.store.url, f"{self.root}#windows"):
            omero = self.metadata.ome.omero
            auto = sorted(i for i in self._auto_windows if omero and i < len(omero.channels))
            if not auto or omero is None:
                return
            windows = followed_windows(omero, await self._data_windows(auto, region))
            if any(w is not None for w in windows):
                await self.set_channels(windows=windows)
                self._auto_windows.update(auto)  # still following the data

    async def _data_windows(
        self, channels: Sequence[int], region: Sequence[slice] | None = None
    ) -> dict[int, tuple[float, float]]:
        """Per channel in ``channels``: the (lowest, highest) value of the lowest level (NaN
        and infinities left out); a channel of one value (or none) is left out. Read tile by tile: every
        plane, or with ``region`` (level 0) those below it when the others are known."""
        from ._stream import stream

        c = self.metadata.channel_axis
        index = len(self.levels) - 1
        lowest = self.levels[index]
        axes: dict[str, Any] = {} if c is None else {self.axes[c]: list(channels)}
        planes = [i for i, a in enumerate(self.axes) if a not in ("y", "x")]
        base = [slice(0, n) for n in lowest.shape]
        if region is None or self._extents_of != tuple(channels) or not self._extents:
            self._extents.clear()
            self._extents_of = tuple(channels)
        else:
            for i in planes:  # the planes below the region (t, c, z are rarely downscaled)
                factor = self.shape[i] / max(1, lowest.shape[i])
                start = min(lowest.shape[i], int(region[i].start // factor))
                stop = min(lowest.shape[i], math.ceil(region[i].stop / factor))
                base[i] = slice(start, max(start, stop))
        seen: dict[tuple[int, ...], tuple[float, float] | None] = {}

        def extent(data: NDArray[Any]) -> tuple[float, float] | None:
            if data.dtype.kind == "c":
                return None
            if data.dtype.kind == "f":  # NaN and infinities (other tools write them) left out
                finite = np.isfinite(data)
                if not finite.all():
                    data = data[finite]
            if data.size == 0:
                return None
            return float(data.min()), float(data.max())

        async with stream(self.tiles(level=index, region=base, **axes), extent) as results:
            async for tile, value in results:
                key = tuple(tile.region[i].start for i in planes)
                now = seen.get(key, value)
                if now is not None and value is not None:
                    now = (min(now[0], value[0]), max(now[1], value[1]))
                seen[key] = now if value is not None else seen.get(key)
        self._extents.update(seen)
        found: dict[int, tuple[float, float]] = {}
        at = planes.index(c) if c is not None else None
        for key, value in self._extents.items():
            if value is None:
                continue
            channel = 0 if at is None else key[at]
            lo, hi = found.get(channel, value)
            found[channel] = (min(lo, value[0]), max(hi, value[1]))
        return {ch: (lo, hi) for ch, (lo, hi) in found.items() if hi > lo}

    # ---------------------------------------------------------------- metadata edits
    async def set_channels(
        self,
        labels: Sequence[str | None] | None = None,
        colors: Sequence[str | None] | None = None,
        windows: Sequence[
            tuple[float, float] | Mapping[str, float] | Window | Literal["auto"] | None
        ]
        | Literal["auto", "percentiles"]
        | None = None,
        active: Sequence[bool | None] | None = None,
        *,
        percentiles: tuple[float, float] | Sequence[tuple[float, float]] = (0.1, 99.9),
        wavelength_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Set channel labels, colors (``RRGGBB``), display windows (``(start, end)``: the
        stored ``min``/``max`` kept, widened to hold them, as ngio's ``set_channel_windows``;
        or ``{min, max, start, end}``), ``active`` flags and/or ``wavelength_ids`` (the ids
        Fractal and ngio select channels by; ngio's ``set_channel_meta(wavelength_id=)``):
        one value per channel, ``None`` keeps the current ones. Creates ``omero`` if the
        image has none.

        A window ``"auto"`` (or ``windows="auto"``: every channel) takes ``start``/``end`` from
        the data (lowest and highest value of the lowest level, read tile by tile; a channel
        of one value keeps its window) and ``min``/``max`` from the data type's range; the
        channel's window then follows the data whenever the pyramid is built through this
        dataset object (as for channels created without a window), until a window is set.

        ``windows="percentiles"`` takes every channel's ``start``/``end`` from the
        ``percentiles`` (one ``(start, end)`` pair, or one per channel) of its values above
        zero in the lowest level, read tile by tile: ngio's
        ``set_channel_windows_with_percentiles``, the same numbers.

        One metadata document is rewritten; keys this library does not model are kept (the
        document is read again right before it is written).

        :raises ValueError: a list of another length than the channels (named).
        :raises TypeError: a ``labels`` or ``wavelength_ids`` item that is no string or
            ``None``.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from msgspec.structs import replace

        from ..meta import Omero, Window
        from ._create_values import check_unique_channels, make_channel, make_window
        from ._metadata import check_editable

        self._check_writable()
        check_editable(self.metadata, "set the channels", self.url)  # before any read
        c_axis = self.metadata.channel_axis
        size = self.shape[c_axis] if c_axis is not None else None
        from_percentiles = isinstance(windows, str) and windows == "percentiles"
        if isinstance(windows, str):
            if windows not in ("auto", "percentiles"):
                raise ValueError(
                    "windows must be 'auto', 'percentiles' or one value per channel, "
                    f"got {windows!r}"
                )
            omero = self.metadata.ome.omero
            count = size if size is not None else (len(omero.channels) if omero else 0)
            windows = [None if from_percentiles else "auto"] * count  # (None: see below)
        for name, values in (
            ("labels", labels),
            ("colors", colors),
            ("windows", windows),
            ("active", active),
            ("wavelength_ids", wavelength_ids),
        ):
            if isinstance(values, str | bytes):  # (windows="auto" is a list by now)
                # a string has a length, and would be taken as one value per letter
                raise TypeError(f"{name} must be one value per channel, got {values!r}")
            if values is not None and size is not None and len(values) != size:
                raise ValueError(f"{name}: {len(values)} values for {size} channels")
        for i, label in enumerate(() if labels is None else labels):
            if label is not None and not isinstance(label, str):  # np.str_ is a str
                raise TypeError(f"labels[{i}] must be a string or None, got {label!r}")
        for i, wid in enumerate(() if wavelength_ids is None else wavelength_ids):
            if wid is not None and (not isinstance(wid, str) or not wid):
                raise TypeError(f"wavelength_ids[{i}] must be a string or None, got {wid!r}")
        for i, color in enumerate(() if colors is None else colors):
            if color is None:  # (keeps the channel's color)
                continue
            if not isinstance(color, str) or not _HEX_COLOR.fullmatch(color.lstrip("#")):
                raise TypeError(
                    f"colors[{i}] must be a color as hex 'RRGGBB' (or '#RRGGBB'), got {color!r}"
                )
        for i, flag in enumerate(() if active is None else active):
            if flag is not None and not isinstance(flag, bool | np.bool_):
                raise TypeError(f"active[{i}] must be True or False, got {flag!r}")
        if from_percentiles:  # every argument checked: now the lowest level is read
            from ._image_ops import percentile_windows

            windows = list(await percentile_windows(cast("Dataset", self), percentiles))
        new_windows = (  # checked before any I/O
            None
            if windows is None
            else [
                None
                if w is None or (isinstance(w, str) and w == "auto")
                else make_window(w, self.dtype, f"windows[{i}]")
                for i, w in enumerate(windows)
            ]
        )
        auto = [i for i, w in enumerate(windows or ()) if isinstance(w, str) and w == "auto"]
        # a (start, end) pair (percentiles too) keeps the stored min/max, as ngio's
        # set_channel_windows does, widened to hold start and end
        pairs = {
            i
            for i, w in enumerate(windows or ())
            if w is not None and not isinstance(w, str | Mapping | Window)
        }
        if auto and new_windows is not None:
            base = make_window(None, self.dtype)
            self._extents.clear()  # read every plane
            for i, (lo, hi) in (await self._data_windows(auto)).items():
                new_windows[i] = Window(
                    min=min(base.min, lo), max=max(base.max, hi), start=lo, end=hi
                )

        def edit(ome: OmeMetadata) -> OmeMetadata:
            old = list(ome.omero.channels) if ome.omero is not None else []
            n = size if size is not None else len(old)
            if n == 0:
                raise ValueError(f"{self.url} has no channel axis and no channels")
            channels = []
            for i in range(n):
                base = old[i] if i < len(old) else make_channel({}, i, self.dtype)
                changes: dict[str, Any] = {}
                if labels is not None and (label := labels[i]) is not None:
                    changes["label"] = str(label)
                if colors is not None and (color := colors[i]) is not None:
                    changes["color"] = color.lstrip("#").upper()
                if new_windows is not None and (window := new_windows[i]) is not None:
                    changes["window"] = (
                        _kept_range(window, base.window) if i in pairs and i < len(old) else window
                    )
                if active is not None and active[i] is not None:
                    changes["active"] = bool(active[i])
                channel = _with_extra(replace(base, **changes), base)
                if wavelength_ids is not None and wavelength_ids[i] is not None:
                    channel.extra["wavelength_id"] = str(wavelength_ids[i])
                channels.append(channel)
            given = [
                k
                for k, v in (("label", labels), ("wavelength_id", wavelength_ids))
                if v is not None
            ]
            # (only what is given: duplicates another tool wrote are not ours to refuse)
            check_unique_channels(channels, f"set_channels on {self.url}", given)
            omero = (
                _with_extra(replace(ome.omero, channels=channels), ome.omero)
                if ome.omero is not None
                else Omero(channels=channels)
            )
            return _with_extra(replace(ome, omero=omero), ome)

        await self._edit_metadata(edit)
        for i, w in enumerate(windows or ()):
            if isinstance(w, str) and w == "auto":
                self._auto_windows.add(i)
            elif w is not None:
                self._auto_windows.discard(i)  # a window set: never overridden

    async def set_name(self, name: str) -> None:
        """Set the image's ``name`` in its multiscale metadata (ngio's ``set_name``; no path
        changes). One metadata edit.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._meta_edits import set_name

        await set_name(cast("Dataset", self), name)

    async def set_axes_names(
        self, names: Sequence[str] | Mapping[str, str], *, labels: bool = True
    ) -> None:
        """Rename the axes (ngio's ``set_axes_names``): one name per axis, or a mapping old ->
        new; types and units stay. NGFF 0.5 levels get the new ``dimension_names`` first.
        ``labels``: label images rename the axes they share with the image.

        :raises ValueError: names not unique, or breaking an NGFF axis rule (before any write).
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._meta_edits import set_axes_names

        await set_axes_names(cast("Dataset", self), names, labels=labels)

    async def set_scale(
        self,
        scale: float | Sequence[float] | Mapping[str, float] | None = None,
        *,
        units: str | Sequence[str | None] | Mapping[str, str] | None = None,
        translation: Sequence[float] | Mapping[str, float] | None = None,
    ) -> None:
        """Set the level-0 pixel size (a number for every space axis, one value per axis, or a
        mapping axis -> value; lower levels keep their ratios to level 0, and their offsets
        from level 0's translation scale with them), the axis ``units``
        (one for the space axes, one per axis, or a mapping) and/or the ``translation`` of every
        level (per axis, or a mapping: the axes it leaves out keep each level's own). ``None``
        keeps the current value.

        One metadata document is rewritten; keys this library does not model are kept. Label
        images follow the image (their level-0 pixel size by the same ratio, units and
        translation); when one of their documents cannot be written, the documents already
        rewritten are put back as they were (best effort) and the error raised, so that the
        call can simply be made again.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._set_scale(scale, units=units, translation=translation)

    async def _set_scale(
        self,
        scale: float | Sequence[float] | Mapping[str, float] | None = None,
        *,
        units: str | Sequence[str | None] | Mapping[str, str] | None = None,
        translation: Sequence[float] | Mapping[str, float] | None = None,
    ) -> Multiscale:
        """:meth:`set_scale`; returns the multiscale as it was before (for an undo)."""
        from msgspec.structs import replace

        from ..meta import Scale, Translation
        from ._create_values import _per_axis, _units, is_scalar

        self._check_writable()
        names = self.axes
        # every value checked (finite; scales > 0; known axes) before any I/O
        scale_in = None if scale is None else _per_axis(scale, names, 1.0, "scale", positive=True)
        trans_in = (
            None if translation is None else _per_axis(translation, names, 0.0, "translation")
        )
        units_in = None if units is None else _units(units, names)
        applied: dict[str, float] = {}  # new / old level-0 pixel size per axis, as written
        before: list[Multiscale] = []  # the multiscale as the edit that was written read it

        def edit(ome: OmeMetadata) -> OmeMetadata:
            assert ome.multiscales is not None
            index = self.metadata.index
            ms = ome.multiscales[index]
            before[:] = [ms]
            current = ImageMetadata(ome, index).spatial_calibration
            datasets = list(ms.datasets)
            ratio = [1.0] * len(names)
            if scale_in is not None:
                new0 = scale_in
                if is_scalar(scale):  # a number: the space axes (by type: of any name) only
                    new0 = [
                        float(cast("float", scale)) if a.type == "space" else c
                        for a, c in zip(ms.axes, current[0].scale, strict=True)
                    ]
                elif isinstance(scale, Mapping):
                    new0 = [
                        v if a in scale else c
                        for v, a, c in zip(new0, names, current[0].scale, strict=True)
                    ]
                ratio = [n / o for n, o in zip(new0, current[0].scale, strict=True)]
                applied.update(zip(names, ratio, strict=True))
                # level 0's stored translation (a multiscale-level transform applies after it)
                stored0 = datasets[0].translation or [0.0] * len(names)
                for i, d in enumerate(datasets):
                    if d.scale is None:
                        raise UnsupportedError(f"level {d.path!r}: scale stored by path")
                    s = [v * r for v, r in zip(d.scale, ratio, strict=True)]
                    ts = []
                    for t in d.coordinate_transformations:
                        if isinstance(t, Scale):
                            t = _with_extra(replace(t, scale=s), t)
                        elif (
                            isinstance(t, Translation)
                            and t.translation is not None
                            and trans_in is None
                        ):  # a level's offset from level 0 (half a pixel, say) scales too
                            moved = [
                                a + (v - a) * r
                                for v, a, r in zip(t.translation, stored0, ratio, strict=True)
                            ]
                            t = _with_extra(replace(t, translation=moved), t)
                        ts.append(t)
                    datasets[i] = _with_extra(replace(d, coordinate_transformations=ts), d)
            if trans_in is not None:
                if ms.coordinate_transformations is not None:
                    raise UnsupportedError(
                        "cannot set the translation of a multiscale with its own transforms"
                    )
                t0 = current[0].translation
                for i, d in enumerate(datasets):
                    # an axis a mapping leaves out keeps each level's own translation (its
                    # offset from level 0 scaled with the pixel size), not level 0's
                    tr = [
                        v
                        if not isinstance(translation, Mapping) or a in translation
                        else b + (c - b) * r
                        for v, a, b, c, r in zip(
                            trans_in, names, t0, current[i].translation, ratio, strict=True
                        )
                    ]
                    ts = [t for t in d.coordinate_transformations if not isinstance(t, Translation)]
                    ts.append(Translation(translation=tr))
                    datasets[i] = _with_extra(replace(d, coordinate_transformations=ts), d)
            axes = list(ms.axes)
            if units_in is not None:
                unit_list = units_in
                if isinstance(units, str):  # the space axes (by type: of any name) only
                    unit_list = [str(units) if a.type == "space" else a.unit for a in axes]
                elif isinstance(units, Mapping):
                    unit_list = [units.get(a.name, a.unit) for a in axes]
                axes = [
                    _with_extra(replace(a, unit=u), a) for a, u in zip(axes, unit_list, strict=True)
                ]
            new_ms = _with_extra(replace(ms, datasets=datasets, axes=axes), ms)
            multiscales = list(ome.multiscales)
            multiscales[index] = new_ms
            return _with_extra(replace(ome, multiscales=multiscales), ome)

        async with self.structure_lock():
            await self._edit_metadata(edit)
            await self._sync_calibration()
            if self.metadata.ome.image_label is None and self.metadata.index == 0:
                # label images follow their image (its first multiscale)
                ratio = applied if scale_in is not None else None
                try:
                    await self._calibrate_labels(ratio, units_in is not None, trans_in)
                except BaseException as exc:
                    # a retry derives the labels' scale from the image's: put it back
                    await _undo(exc, self.store.url, self._restore_multiscale(before[0]))
                    raise
        return before[0]

    async def _sync_calibration(self) -> None:
        """The levels' scale and translation from the metadata just written."""
        paths = [join(self.root, p) for p in self.metadata.paths]
        if [lvl.path for lvl in self.levels] != paths:
            # another dataset or process changed the levels
            await refresh_image(cast("Dataset", self))
        for lvl, cal in zip(self.levels, self.metadata.spatial_calibration, strict=True):
            lvl.scale = cal.scale
            lvl.translation = cal.translation

    async def _restore_multiscale(self, old: Multiscale) -> None:
        """Put back the levels' transformations and the axes of ``old`` (what
        :meth:`_set_scale` changed), leaving the rest of the document as it is now."""
        from msgspec.structs import replace

        def edit(ome: OmeMetadata) -> OmeMetadata:
            assert ome.multiscales is not None
            multiscales = list(ome.multiscales)
            ms = multiscales[self.metadata.index]
            if [d.path for d in ms.datasets] != [d.path for d in old.datasets]:
                raise ChangedError(f"{self.store.url}: the levels changed meanwhile")
            multiscales[self.metadata.index] = _with_extra(
                replace(ms, datasets=old.datasets, axes=old.axes), ms
            )
            return _with_extra(replace(ome, multiscales=multiscales), ome)

        await self._edit_metadata(edit)
        await self._sync_calibration()

    async def _calibrate_labels(
        self, ratio: dict[str, float] | None, units: bool, translation: Any
    ) -> None:
        """Scale every label image's level-0 pixel size by ``ratio`` (the image's new / old
        one per axis: a label stored at another resolution stays aligned) and give it this
        image's units and/or translation, on the axes they share (their lower levels keep
        their own ratios)."""
        cal = self.metadata.spatial_calibration[0]
        done: list[tuple[str, Multiscale]] = []  # label images rewritten, as they were
        try:
            for name in await self.labels.names():
                label = await self.labels.open(name, mode="r+")
                try:
                    shared = [a for a in label.axes if a in self.axes]
                    own = label.metadata.spatial_calibration[0]
                    unit_of: dict[str, str] = {}
                    for a in shared:
                        unit = cal[a].unit
                        if unit is not None:
                            unit_of[a] = unit
                    old = await label._set_scale(
                        {a: own[a].scale * ratio[a] for a in shared} if ratio else None,
                        units=unit_of if units and unit_of else None,
                        translation={a: cal[a].translation for a in shared}
                        if translation is not None
                        else None,
                    )
                    done.append((name, old))
                finally:
                    await label.aclose()
        except BaseException as exc:
            for name, old in reversed(done):
                await _undo(exc, f"{self.store.url}/labels/{name}", self._restore_label(name, old))
            raise

    async def _restore_label(self, name: str, old: Multiscale) -> None:
        label = await self.labels.open(name, mode="r+")
        try:
            await label._restore_multiscale(old)
        finally:
            await label.aclose()

    async def _edit_metadata(self, edit: Any) -> None:
        """Re-read the group document, apply ``edit`` to its NGFF model, write it back (once).

        An invalid ``omero`` block (the image opened without it) or ``image-label`` block (its
        colors / properties opened mended) is kept untouched by edits that leave it alone and
        replaced, with a ``MetadataWarning``, by those that set it."""
        import warnings

        from ..meta import MetadataWarning, read_document, to_attrs, validate, write_document
        from ._consolidated import metadata_lock, update_consolidated

        version = self.metadata.ngff_version
        if version not in ("0.4", "0.5"):  # 0.6 is read, not written: never rewrite it as 0.5
            raise UnsupportedError(
                f"{self.store.url}: cannot edit the metadata of an NGFF {version} image "
                "(ngio_async writes NGFF 0.4 and 0.5; convert it to 0.5 to edit it)"
            )
        if self._meta_lock is None:
            self._meta_lock = anyio.Lock()
        v3 = self.metadata.ngff_version != "0.4"
        key = join(self.root, "zarr.json" if v3 else ".zattrs")
        # the last run's validated metadata, warnings to show, and whether it changed anything
        result: list[Any] = []

        async def edited(raw: Any) -> bytes:
            # a compare-and-swap edit (store.update): it may run again on what another
            # process wrote meanwhile, so it depends on ``raw`` alone
            if raw is None:
                raise NotFoundError(f"{self.store.url}/{key} is gone", url=self.store.url, key=key)
            doc: dict[str, Any] = read_document(raw)
            attrs: dict[str, Any] = doc.get("attributes", {}) if v3 else doc
            with warnings.catch_warnings(record=True) as before:  # shown at open already
                warnings.simplefilter("always", MetadataWarning)
                current, bad = _lenient(attrs)
            ome = edit(current)
            new_attrs = to_attrs(ome, "0.5" if v3 else "0.4")
            with warnings.catch_warnings(record=True) as after:
                warnings.simplefilter("always", MetadataWarning)
                checked = validate(new_attrs)  # never write a document that does not validate
            seen = {str(w.message) for w in before}
            # what the edit brings in (other warnings pass through)
            shown = [
                (w.message, w.category)
                for w in after
                if not issubclass(w.category, MetadataWarning) or str(w.message) not in seen
            ]
            for block, stored, rule in bad:
                attr = block.replace("-", "_")
                if getattr(ome, attr) == getattr(current, attr):  # not an edit: kept untouched
                    (new_attrs["ome"] if v3 else new_attrs)[block] = stored
                else:
                    message = (
                        f"{self.store.url}/{key}: replaced the invalid '{block}' block ({rule})"
                    )
                    shown.append((message, MetadataWarning))
            # (models compare without the keys they do not model: a wavelength_id edit)
            unchanged = (
                ome == current
                and not bad
                and new_attrs == to_attrs(current, "0.5" if v3 else "0.4")
            )
            result[:] = [checked, shown, not unchanged]
            if unchanged:  # an edit that changes nothing writes nothing: the document stays
                return bytes(raw)  # as stored, byte for byte (another tool's layout too)
            if v3:
                doc["attributes"] = {**attrs, **new_attrs}
            else:
                ngff = ("multiscales", "omero", "image-label", "labels", "plate", "well")
                doc = {k: v for k, v in doc.items() if k not in ngff} | new_attrs
            return write_document(doc)

        async with self._meta_lock, metadata_lock(self.store):
            data = await self.store.update(key, edited)  # other processes' edits are kept
            checked, shown, changed = result
            for message, category in shown:
                warnings.warn(message, category, stacklevel=3)
            if data is not None and changed:
                await update_consolidated(
                    self.store, [(key, bytes(data))], locked=True, shared=[key]
                )
            self.metadata = ImageMetadata(checked, self.metadata.index)


def _lenient(attrs: dict[str, Any]) -> tuple[OmeMetadata, list[tuple[str, Any, str]]]:
    """The validated model of group ``attrs``; when only its display metadata breaks rules
    (``omero``, ``image-label`` colors / properties: the image opened without or with them
    mended), the model of the mended document. And per block mended: (its key, the block as
    stored, the rule it breaks)."""
    from ..meta import validate
    from ._open import lenient_doc

    bad: list[tuple[str, Any, str]] = []
    doc: dict[str, Any] = attrs
    while True:
        try:
            return validate(doc), bad
        except MetadataError as exc:
            lenient = lenient_doc(doc, exc.path)
            if lenient is None:
                raise
            doc, block, _ = lenient
            if block not in (b for b, _, _ in bad):
                bad.append((block, attrs.get("ome", attrs)[block], f"{exc.rule} - at `{exc.path}`"))


def followed_windows(omero: Omero, found: Mapping[int, tuple[float, float]]) -> list[Window | None]:
    """Per channel of ``omero``: its display window following the data, ``found``
    (channel -> lowest, highest value; see ``Dataset._data_windows``), or ``None`` where that
    changes nothing. ``min``/``max`` widen to hold the data."""
    from msgspec.structs import replace

    windows: list[Window | None] = [None] * len(omero.channels)
    for i, (lo, hi) in found.items():
        old = omero.channels[i].window
        if (old.start, old.end) != (lo, hi):
            windows[i] = replace(old, min=min(old.min, lo), max=max(old.max, hi), start=lo, end=hi)
    return windows


async def _undo(exc: BaseException, where: str, undo: Coroutine[Any, Any, None]) -> None:
    """Run ``undo`` (shielded) while ``exc`` propagates; a failing undo is noted on ``exc``."""
    with anyio.CancelScope(shield=True):
        try:
            await undo
        except Exception as failed:  # noqa: BLE001 - the first error is the one raised
            exc.add_note(f"{where}: could not be put back as it was ({failed!r})")


_HEX_COLOR = re.compile(r"[0-9A-Fa-f]{6}")


def _kept_range(window: Window, stored: Window) -> Window:
    """``window``'s start and end within ``stored``'s min and max (widened to hold them), with
    ``stored``'s unknown keys."""
    from msgspec.structs import replace

    kept = replace(
        stored,
        min=min(stored.min, window.start),
        max=max(stored.max, window.end),
        start=window.start,
        end=window.end,
    )
    return _with_extra(kept, stored)


def _with_extra(new: _S, old: object) -> _S:
    """``new`` (a ``msgspec.structs.replace`` of ``old``) with ``old``'s unknown keys kept."""
    extra = old.__dict__.get("_extra")
    if extra:
        new.__dict__["_extra"] = dict(extra)
    return new
