"""``is_2d``, ``is_3d``, ``is_time_series``, ``is_multi_channels``, ``has_axis``: what an image
(or label image) is, from its axis names and level 0's shape, as ngio 1.1.3 says it. Shared by
:class:`~ngio_async.images.Dataset` and the blocking :class:`~ngio_async.SyncDataset`."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["AxisFacts"]


class AxisFacts:
    """ngio's ``is_*`` properties and ``has_axis`` over ``axes`` and ``shape`` (level 0): an
    axis the image lacks counts as size 1, so an image is 2-D when it has no ``z`` axis or a
    ``z`` of size 1, a time series when its ``t`` is longer than 1, multi-channel when its
    ``c`` is."""

    if TYPE_CHECKING:

        @property
        def axes(self) -> tuple[str, ...]: ...

        @property
        def shape(self) -> tuple[int, ...]: ...

    def _axis_size(self, axis: str) -> int:
        axes = self.axes
        return self.shape[axes.index(axis)] if axis in axes else 1

    def has_axis(self, name: str) -> bool:
        """Whether the image has an axis named ``name`` (ngio's ``has_axis``)."""
        return name in self.axes

    @property
    def is_2d(self) -> bool:
        """No ``z`` axis, or one of size 1 (level 0), as ngio's ``is_2d``."""
        return self._axis_size("z") == 1

    @property
    def is_3d(self) -> bool:
        """A ``z`` axis longer than 1 (level 0): ngio's ``is_3d`` (``not is_2d``)."""
        return not self.is_2d

    @property
    def is_time_series(self) -> bool:
        """A ``t`` axis longer than 1 (level 0), as ngio's ``is_time_series``."""
        return self._axis_size("t") != 1

    @property
    def is_2d_time_series(self) -> bool:
        """:attr:`is_2d` and :attr:`is_time_series` (ngio's ``is_2d_time_series``)."""
        return self.is_2d and self.is_time_series

    @property
    def is_3d_time_series(self) -> bool:
        """:attr:`is_3d` and :attr:`is_time_series` (ngio's ``is_3d_time_series``)."""
        return self.is_3d and self.is_time_series

    @property
    def is_multi_channels(self) -> bool:
        """A ``c`` axis longer than 1 (level 0), as ngio's ``is_multi_channels``."""
        return self._axis_size("c") != 1
