"""A blocking dataset's world coordinates: reading and writing a box in world units, the
level selection and extent of a box, the level nearest a pixel size."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray

    from .engine.pyramid import Method
    from .images import Dataset
    from .images._merge import Merge
    from .images._world import Origin, Unit
    from .sync import Runner


class _SyncDatasetWorld:
    """The world-coordinate methods of :class:`~ngio_async._sync_api.SyncDataset`."""

    _runner: Runner
    _dataset: Dataset

    def read_world(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> NDArray[Any]:
        """Read a box in world coordinates: ``ds.read_world(y=(40, 70), x=(105.5, 125.5),
        unit="micrometer")`` (see ``Dataset.read_world``).

        :param axes_order: the array's axes in this order (as ``read``).
        """
        return self._runner.call(
            lambda: self._dataset.read_world(
                level, unit=unit, origin=origin, system=system, axes_order=axes_order, **axes
            )
        )

    def write_world(
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
        """Write a whole-pixel box in world coordinates (see ``Dataset.write_world``).

        :param axes_order: ``data``'s axes in this order (as ``write``).
        :param merge: combine ``data`` with the stored pixels (as ``write``).
        """
        self._runner.call(
            lambda: self._dataset.write_world(
                data,
                level,
                unit=unit,
                origin=origin,
                pyramid=pyramid,
                axes_order=axes_order,
                merge=merge,
                **axes,
            )
        )

    def world_region(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
        **axes: Any,
    ) -> tuple[Any, ...]:
        """The level selection of a box in world coordinates (``Dataset.world_region``)."""
        return self._dataset.world_region(level, unit=unit, origin=origin, system=system, **axes)

    def world_extent(
        self,
        level: int | str = 0,
        *,
        unit: Unit = None,
        origin: Origin = "world",
        system: str | None = None,
    ) -> dict[str, tuple[float, float]]:
        """Per space and time axis: the world interval a level covers."""
        return self._dataset.world_extent(level, unit=unit, origin=origin, system=system)

    def level_for(
        self,
        pixel_size: float | Sequence[float],
        unit: str | None = None,
        *,
        not_coarser: bool = False,
        exact: bool = False,
    ) -> int:
        """The level nearest a pixel size (``Dataset.level_for``)."""
        return self._dataset.level_for(pixel_size, unit, not_coarser=not_coarser, exact=exact)
