"""A blocking dataset's writes and metadata edits: ``ds[...] = data``, ``write``, ``writer``,
channels, name, axes names, scale, ``build_pyramid`` (need ``mode="r+"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._sync_tiles import SyncWriter, _SyncWriterContext

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from contextlib import AbstractContextManager
    from typing import Literal

    from numpy.typing import ArrayLike

    from .engine.pyramid import Method
    from .images import Dataset
    from .images._dataset_base import Selector
    from .images._merge import Merge
    from .sync import Runner
    from .tables import Roi


class _SyncDatasetWrites:
    """The writing and editing methods of :class:`~ngio_async._sync_api.SyncDataset`."""

    _runner: Runner
    _dataset: Dataset

    def __setitem__(self, selection: Any, data: ArrayLike) -> None:
        """``ds[...] = data`` on level 0 (numpy basic indexing, broadcasting)."""
        self._runner.call(self._dataset.write_at, selection, data)

    def write(
        self,
        data: ArrayLike,
        level: int | str = 0,
        pyramid: bool | Method = False,
        *,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Selector,
    ) -> None:
        """Write by axis name: ``ds.write(arr, c="DAPI", z=3)`` (see ``Dataset.write``)."""
        self._runner.call(
            lambda: self._dataset.write(
                data, level, pyramid, axes_order=axes_order, merge=merge, **axes
            )
        )

    def write_at(
        self, selection: Any, data: ArrayLike, level: int | str = 0, pyramid: bool | Method = False
    ) -> None:
        self._runner.call(self._dataset.write_at, selection, data, level, pyramid)

    def writer(
        self, level: int | str = 0, max_pending: int | None = None, pyramid: bool | Method = False
    ) -> AbstractContextManager[SyncWriter]:
        """``with ds.writer() as w: w.write(tile)``: bounded pending writes, like the async one."""
        _ = self._runner.portal  # ClosedError before anything is made (a closed handle)
        ctx = _SyncWriterContext(self._runner, self._dataset.writer(level, max_pending, pyramid))
        ctx.keep = self
        return ctx

    def set_channels(
        self,
        labels: Sequence[str | None] | None = None,
        colors: Sequence[str | None] | None = None,
        windows: Sequence[tuple[float, float] | Mapping[str, float] | Literal["auto"] | None]
        | Literal["auto", "percentiles"]
        | None = None,
        active: Sequence[bool | None] | None = None,
        *,
        percentiles: tuple[float, float] | Sequence[tuple[float, float]] = (0.1, 99.9),
        wavelength_ids: Sequence[str | None] | None = None,
    ) -> None:
        self._runner.call(
            lambda: self._dataset.set_channels(
                labels,
                colors,
                windows,
                active,
                percentiles=percentiles,
                wavelength_ids=wavelength_ids,
            )
        )

    def set_name(self, name: str) -> None:
        self._runner.call(self._dataset.set_name, name)

    def set_axes_names(
        self, names: Sequence[str] | Mapping[str, str], *, labels: bool = True
    ) -> None:
        self._runner.call(lambda: self._dataset.set_axes_names(names, labels=labels))

    def image_roi(self, name: str = "image") -> Roi:
        return self._dataset.image_roi(name)

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
        *,
        source: Literal["previous", "level0"] = "previous",
        window: int | None = None,
        progress: Callable[[int, int], object] | None = None,
        from_level: int | str = 0,
    ) -> None:
        """Compute the lower levels from level 0, or a label image's other levels from
        ``from_level=k`` (see :meth:`Dataset.build_pyramid`).

        :param source: each level built from the one before it, or from level 0.
        :param window: how many tiles are built at once.
        :param progress: ``progress(done, total)`` as tiles are built (on the loop's thread).
        :param from_level: the level the others are built from (a label image's, for k > 0).
        """
        self._runner.call(
            lambda: self._dataset.build_pyramid(
                levels,
                method,
                regions,
                tile,
                source=source,
                window=window,
                progress=progress,
                from_level=from_level,
            )
        )
