"""``_DatasetWrites``: ``Dataset``'s pixel writes (by axis name, selection, orthogonal,
points, the tile writer), their pyramid cascades, and ``build_pyramid``."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from .._errors import UnsupportedError
from ..engine import normalize_selection
from ..engine.plan import coordinate_index, orthogonal_index, selection_span
from ._dataset_edits import _DatasetEdits
from ._open import refresh_image
from ._write import fit_data, write_region

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from numpy.typing import ArrayLike, NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
    from ._cascade import Cascade
    from ._dataset import Dataset
    from ._dataset_base import Selector
    from ._level import Level
    from ._merge import Merge
    from ._write import AfterWrite, LevelWriter


class _DatasetWrites(_DatasetEdits):
    """The pixel writes and pyramid building of a :class:`Dataset`."""

    # ---------------------------------------------------------------- writing
    async def write(
        self,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
        *,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Selector,
    ) -> None:
        """Write by axis name: ``await ds.write(arr, c="DAPI", z=3, y=slice(0, 512))``.

        Axes take what :meth:`read` takes (ints drop the axis from ``data``'s expected shape,
        slices, channel labels, a list on one axis); ``data`` is broadcast to the selection's
        shape like numpy assignment and cast to the level's dtype. Partly covered chunks or
        shards are read, patched and written back, safely across processes (see
        :mod:`ngio_async.images._write`); objects left all fill value are deleted, or stored
        as such where a delete cannot be conditional (S3, GCS, Azure, memory).

        :param pyramid: also update the lower levels (of level 0; a label image's level
            ``k``: below): they are computed from the written pixels in memory while level 0
            is written (no read back; regions that are not aligned to the downsampling are
            rebuilt from the store at the end). The result
            equals ``write`` followed by ``build_pyramid(regions=...)``. ``True`` downsamples
            with the default method of :meth:`build_pyramid`; or name one (``"mean"``,
            ``"nearest"``, ``"mode"``, ``"ngio"``). Concurrent pyramid writes of disjoint regions
            keep the lower tiles they share right, in this process and across processes.
            Level ``k`` > 0 of a label image (ngio's ``set_array`` there, then
            ``consolidate()``): the coarser levels built from it as above, the finer ones
            upsampled from it over the region written (nearest), as
            ``build_pyramid(from_level=k, regions=...)``; refused for other images.
        :param axes_order: ``data``'s axes, as :meth:`read` gives them with it (default: the
            selection's axes in the image's order; ``ValueError`` as there).
        :param merge: combine ``data`` with the stored pixels (ngio's ``merge``): ``"max"``,
            ``"min"``, ``"sum"``, ``"keep_nonzero"`` (the patch where it is not 0) or
            ``f(stored, patch)`` (elementwise: it is applied to each stored object's part);
            default ``None``: ``data`` replaces them. The merge happens in each stored
            object's own read-modify-write (one GET per object), so concurrent merges into
            the same pixels, from other processes too, all land; see
            :mod:`ngio_async.images._merge`. An unknown rule or data that does not fit the
            selection is a ``ValueError``, a function that cannot be called with two
            arguments a ``TypeError``, all before any I/O; a ``"sum"`` the data type cannot
            hold is a ``ValueError`` (ngio wraps it), the object where it occurs unwritten.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        self._check_writable()
        if axes_order is not None:
            from ._axes_order import from_order, kept_axes

            data = from_order(data, kept_axes(self.axes, axes), axes_order)
        if merge is not None:
            from ._merge import merge_write

            return await merge_write(cast("Dataset", self), data, level, pyramid, axes, merge)
        level = self._level_index(level)
        lvl = self.levels[level]
        own = not _is_cascade(pyramid)  # a stream's cascade (pyramid=): the stream finishes it
        cascade = self._cascade(level, pyramid)
        after = None if cascade is None else partial(cascade.add, 0)
        landed = lvl.begun
        try:
            selection, pick = self._selection(lvl, axes)
            if pick is None:
                await lvl.setitem(tuple(selection), data, after)
            else:
                axis, indices = pick
                selection[axis] = slice(0, 1)
                one_shape = normalize_selection(tuple(selection), lvl.shape).shape
                at = axis - sum(1 for s in selection[:axis] if isinstance(s, int))
                full = list(one_shape)
                full[at] = len(indices)
                value = fit_data(data, tuple(full), lvl.dtype, f"level {lvl.path!r}")
                for k, i in enumerate(indices):
                    selection[axis] = slice(i, i + 1)
                    one = value[(slice(None),) * at + (slice(k, k + 1),)]
                    await lvl.setitem(tuple(selection), one, after)
        except BaseException as exc:
            if cascade is not None and own:  # the lower levels follow what level 0 got
                unsure = [self.region_of(level, **axes)] if lvl.begun != landed else []
                await cascade.settle(exc, unsure)
            raise
        if cascade is None or not own:
            self._extents.clear()  # the lowest level may have changed: scanned again
        else:
            await cascade.finish()
            await self._follow_data_windows(self.region_of(level, **axes))

    def _cascade(self, level: int, pyramid: bool | Method | None) -> Cascade | None:
        if pyramid is False or pyramid is None:
            return None
        if _is_cascade(pyramid):
            return pyramid  # type: ignore[return-value]
        if level != 0:  # a label image's finer levels upsampled from it (ngio's consolidate)
            from ._cascade import level_cascade

            return level_cascade(cast("Dataset", self), level, pyramid)
        from ._cascade import Cascade

        self._check_first_multiscale("pyramid=")
        return Cascade(cast("Dataset", self), None if pyramid is True else pyramid)

    def _check_first_multiscale(self, what: str) -> None:
        """Refuse ``what`` (pyramid building, label images) on a multiscale other than the
        group's first."""
        if self.metadata.index != 0:
            raise UnsupportedError(
                f"{what} works on the first multiscale of {self.url}; this dataset is "
                f"multiscale {self.metadata.index} ({self.metadata.name!r})"
            )

    async def write_at(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """``ds[selection] = data`` on a level (default 0) with numpy basic indexing, plus lists,
        integer arrays or boolean masks as zarr-python 3 takes them (see :meth:`Level.setitem`).

        :param pyramid: also update the lower levels, as in :meth:`write`.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("setitem", selection, data, level, pyramid)

    async def write_orthogonal(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """zarr-python's ``oindex[selection] = data`` on a level (default 0): see
        :meth:`Level.write_orthogonal`; ``pyramid`` as in :meth:`write`.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("orthogonal", selection, data, level, pyramid)

    async def write_points(
        self,
        selection: Any,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method | None = False,
    ) -> None:
        """zarr-python's ``vindex[selection] = data`` on a level (default 0): see
        :meth:`Level.write_points`; ``pyramid`` as in :meth:`write`.

        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        await self._write_selection("points", selection, data, level, pyramid)

    async def _write_selection(
        self,
        how: Literal["setitem", "orthogonal", "points"],
        selection: Any,
        data: ArrayLike,
        level: int | str,
        pyramid: bool | Method | None,
    ) -> None:
        self._check_writable()
        level = self._level_index(level)
        cascade = self._cascade(level, pyramid)
        lvl = self.level(level)
        if how == "points" and cascade is not None and level > 0:  # finer: its pixels alone
            _note_points(cascade, selection, lvl)

        async def write(after: AfterWrite | None) -> None:
            if how == "orthogonal":
                await lvl.write_orthogonal(selection, data, after)
            elif how == "points":
                await lvl.write_points(selection, data, after)
            else:
                await lvl.setitem(selection, data, after)

        await self._landing(lvl, pyramid, cascade, lambda: self._span(how, selection, lvl), write)

    async def _write_where(
        self,
        selection: tuple[Any, ...],
        data: ArrayLike,
        mask: NDArray[np.bool_],
        level: int | str,
        pyramid: bool | Method | Cascade | None,
        merge: Merge,
    ) -> None:
        """``data`` combined by ``merge`` with the stored pixels ``mask`` marks in the box
        ``selection`` (ints and step-1 slices; ``data`` broadcast to ``mask``'s shape, the
        box's): a masked write's merge, in each stored object's own read-modify-write (the
        rest of the box neither merged nor written)."""
        from ._merge import _Combine, rule_of

        self._check_writable()
        fn = rule_of(merge)  # (refused before any I/O)
        level = self._level_index(level)
        lvl = self.level(level)
        sel = normalize_selection(selection, lvl.shape)
        if any(step != 1 for step in sel.steps):
            raise ValueError(f"a masked write takes a box, not steps {sel.steps}")
        shape = tuple(r.stop - r.start for r in sel.region)
        where = np.reshape(mask, shape)
        piece = np.reshape(np.broadcast_to(np.asarray(data), mask.shape), shape)
        combine = _Combine(fn, lvl.dtype, f"level {lvl.path!r}", merge, self.url)
        cascade = self._cascade(level, cast("Any", pyramid))
        if cascade is not None and level > 0:  # finer: its pixels alone
            _note_mask(cascade, sel.region, where)

        async def write(after: AfterWrite | None) -> None:
            await write_region(lvl, sel.region, piece, after, where=where, merge=combine)

        await self._landing(lvl, pyramid, cascade, lambda: sel.region, write)

    async def _landing(
        self,
        lvl: Level,
        pyramid: object,
        cascade: Cascade | None,
        span: Callable[[], Region],
        write: Callable[[AfterWrite | None], Awaitable[None]],
    ) -> None:
        """``write(after)`` of ``lvl``, its pixels fed to ``cascade`` (from ``pyramid``: a
        stream's is finished by the stream), then finished, or settled over ``span()`` when
        the write fails part way."""
        own = not _is_cascade(pyramid)  # a stream's cascade (pyramid=): the stream finishes it
        after = None if cascade is None else partial(cascade.add, 0)
        landed = lvl.begun
        try:
            await write(after)
        except BaseException as exc:
            if cascade is not None and own:  # the lower levels follow what level 0 got
                unsure = [span()] if lvl.begun != landed else []
                await cascade.settle(exc, unsure)
            raise
        if cascade is None or not own:
            self._extents.clear()  # the lowest level may have changed: scanned again
        else:
            await cascade.finish()
            await self._follow_data_windows(span())

    @staticmethod
    def _span(how: str, selection: Any, lvl: Level) -> Region:
        """The box of the pixels a ``write_*`` selection covers."""
        if how == "orthogonal":
            return orthogonal_index(selection, lvl.shape).span()
        if how == "points":
            return coordinate_index(selection, lvl.shape).span()
        return selection_span(selection, lvl.shape)

    def writer(
        self,
        level: int | str = 0,
        max_pending: int | None = None,
        pyramid: bool | Method | None = False,
    ) -> AbstractAsyncContextManager[LevelWriter]:
        """A tile writer with bounded memory: ``async with ds.writer() as w: await w.write(t)``.

        ``w.write`` takes a :class:`Tile` (its core is written) or ``(region, data)`` and returns
        once the write has started; at most ``max_pending`` writes (default
        ``2 * limits.decode_threads``, at least 4) are in flight, so a fast producer waits.
        Writes to regions that do not overlap run concurrently; a write overlapping one still
        pending starts after it, so overlapping writes land in the order given (the last write
        of a pixel wins). Leaving the block waits for every pending write and raises the first
        failure. ``w``
        satisfies :class:`~ngio_async.images.TileWriter`: ``await stream(src.tiles(), f,
        out=w)``.

        :param pyramid: also build the lower levels from the written tiles, in memory, as they
            arrive (level 0; a label image's level ``k`` too, see :meth:`write`). Held bytes stay within
            ``limits.prefetch_bytes`` (what does not fit, or is not aligned, is rebuilt from
            the store when the block exits).
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._write import checked_max_pending, open_writer

        self._check_writable()
        pending = (
            max(4, 2 * self.limits.decode_threads)
            if max_pending is None
            else checked_max_pending(max_pending)  # at the call, not when the block is entered
        )
        level = self._level_index(level)
        cascade = self._cascade(level, pyramid)
        inner = open_writer(self.levels[level], pending, cascade, self.axes)
        if cascade is None:
            self._extents.clear()  # the lowest level may change: scanned again
        if cascade is None or not self._auto_windows:
            return inner

        @contextlib.asynccontextmanager
        async def following() -> AsyncIterator[LevelWriter]:
            async with inner as w:
                yield w
            await self._follow_data_windows()

        return following()

    async def build_pyramid(
        self,
        levels: int | None = None,
        method: Method | None = None,
        regions: Sequence[Sequence[Any]] | None = None,
        tile: Sequence[int | None] | None = None,
        *,
        source: Literal["previous", "level0"] = "previous",
        window: int | None = None,
        progress: Callable[[int, int], object] | None = None,
        from_level: int | str = 0,
    ) -> None:
        """Compute the lower levels from level 0, tile by tile, streaming and concurrently.

        Level ``L`` is built from level ``L - 1`` once ``L - 1`` is complete (level by level);
        at most ``window`` tiles are in progress and their source bytes stay within
        ``limits.prefetch_bytes``. Every write covers whole stored objects (no read-modify-write).
        Factors between levels come from their shapes (``downscale`` of ``create_async``).

        :param levels: the number of levels after the build; ``None``: the existing ones. More
            than exist adds levels (y/x downscaled like the last pair, 2 for a single level):
            array metadata first, then the pixels, then the group's NGFF metadata.
        :param method: ``"mean"``, ``"nearest"``, ``"mode"`` or ``"ngio"`` (the pixels ngio's
            ``Label.consolidate()`` writes: its nearest zoom, the last pixel of each 2x2 window,
            the second along each axis, where the factor divides the level; refused for
            images that are no label image, before any write); default ``"mode"`` for a label image
            (``image-label`` metadata), else ``"mean"``.
        :param regions: level-0 regions that changed (tuples of slices): only the target tiles
            depending on them are rebuilt (new levels are built whole). Processes may each
            build the regions they wrote at once: a tile depending on pixels outside them is
            rebuilt under its lock file, or put conditional on its version (one GET more).
        :param tile: target tile per axis (or ``(y, x)``), in target-level pixels, rounded up
            to whole shards (else chunks); default one shard (else chunk).
        :param source: ``"previous"`` (default) or ``"level0"`` (each level from level 0 with
            the cumulative factor: larger source reads).
        :param window: tiles in progress at once (default ``limits.prefetch_tiles``).
        :param progress: ``progress(done, total)`` after each tile.
        :param from_level: a label image's level to build every other from (ngio's
            ``consolidate()`` of a label set at that level): the coarser levels downsampled
            from it as above, the finer ones upsampled (nearest: finer pixel ``i`` takes its
            pixel ``i // f``); ``regions`` are then of its pixels. Refused for other images
            (their finer levels hold pixels no upsampling gives back) and with ``levels``.
        :raises ReadOnlyError: the dataset is read-only (raised before any I/O).
        """
        from ._pyramid import build_pyramid

        self._check_writable()  # before the group document is read again
        self._check_first_multiscale("build_pyramid")
        start = self._level_index(from_level)
        if start:
            from ._upsample import build_from, check_build_from

            check_build_from(cast("Dataset", self), start, levels)
        if self.metadata.ngff_version not in ("0.4", "0.5"):  # before a level is created
            raise UnsupportedError(
                f"{self.store.url}: cannot build the pyramid of an NGFF "
                f"{self.metadata.ngff_version} image (it writes the group's metadata; "
                "ngio_async writes NGFF 0.4 and 0.5)"
            )
        async with self.structure_lock():
            # levels another dataset or process added since the open
            await refresh_image(cast("Dataset", self))
            if start:
                await build_from(
                    cast("Dataset", self),
                    start,
                    method,
                    regions,
                    tile,
                    source=source,
                    window=window,
                    progress=progress,
                )
            else:
                await build_pyramid(
                    cast("Dataset", self),
                    levels,
                    method,
                    regions,
                    tile,
                    source=source,
                    window=window,
                    progress=progress,
                )
        self._extents.clear()
        await self._follow_data_windows()


def _note_points(cascade: Cascade, selection: Any, lvl: Level) -> None:
    """Tell a level cascade (a write above level 0) the points written: the finer levels
    follow those pixels alone (a masked write leaves the rest of its box as stored)."""
    from ._cascade import LevelCascade

    if not isinstance(cascade, LevelCascade):
        return
    span = coordinate_index(selection, lvl.shape).span()
    points = np.broadcast_arrays(*(np.asarray(p) for p in selection))
    mask = np.zeros(tuple(s.stop - s.start for s in span), dtype=bool)
    mask[tuple(p % n - s.start for p, n, s in zip(points, lvl.shape, span, strict=True))] = True
    _note_mask(cascade, span, mask)


def _note_mask(cascade: Cascade, span: Region, mask: NDArray[np.bool_]) -> None:
    """Tell a level cascade the pixels ``mask`` marks in the box ``span`` (the only ones
    written): the finer levels follow those alone."""
    from ._cascade import LevelCascade

    if isinstance(cascade, LevelCascade):
        cascade.note(span, mask)


def _is_cascade(pyramid: object) -> bool:
    """Whether ``pyramid`` is a :class:`Cascade` (a stream's, fed by each of its writes)."""
    from ._cascade import Cascade

    return isinstance(pyramid, Cascade)
