"""``ImageMetadata``: the reader's view of an image's NGFF metadata (pure; no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import MetadataError
from ..meta import Axis, Multiscale, OmeMetadata, Scale, Translation

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["AxisCalibration", "ChannelInfo", "ImageMetadata", "LevelCalibration"]


@dataclass(frozen=True, slots=True)
class AxisCalibration:
    """Pixel size (``scale``), ``unit`` and ``translation`` of one axis at one level."""

    name: str
    type: str | None
    scale: float
    unit: str | None
    translation: float


@dataclass(frozen=True, slots=True)
class LevelCalibration:
    """The calibration of one pyramid level: one entry per axis, in axis order."""

    path: str
    axes: tuple[AxisCalibration, ...]

    @property
    def scale(self) -> tuple[float, ...]:
        return tuple(a.scale for a in self.axes)

    @property
    def translation(self) -> tuple[float, ...]:
        return tuple(a.translation for a in self.axes)

    def __getitem__(self, name: str) -> AxisCalibration:
        for a in self.axes:
            if a.name == name:
                return a
        raise KeyError(f"no axis named {name!r} (axes: {', '.join(a.name for a in self.axes)})")


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel: ``label``, ``color`` (``RRGGBB``) and display ``window`` (start, end)."""

    index: int
    label: str | None
    color: str | None
    window: tuple[float, float] | None
    active: bool | None


class ImageMetadata:
    """The NGFF metadata of one image, with the derived views a reader needs."""

    __slots__ = ("_cal", "multiscale", "ome")

    def __init__(self, ome: OmeMetadata, multiscale_index: int = 0) -> None:
        if not ome.multiscales:
            raise MetadataError("the group is not an image: no 'multiscales'", "$")
        if multiscale_index >= len(ome.multiscales):
            raise IndexError(f"multiscale {multiscale_index} of {len(ome.multiscales)}")
        self.ome = ome
        self.multiscale: Multiscale = ome.multiscales[multiscale_index]
        self._cal = tuple(self._level_calibration(i) for i in range(len(self.multiscale.datasets)))

    @property
    def ngff_version(self) -> str:
        return self.ome.version or "0.5"

    @property
    def name(self) -> str | None:
        return self.multiscale.name

    @property
    def axes(self) -> list[Axis]:
        return self.multiscale.axes

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.multiscale.axes)

    @property
    def paths(self) -> tuple[str, ...]:
        """Array paths of the levels, largest first."""
        return tuple(d.path for d in self.multiscale.datasets)

    @property
    def spatial_calibration(self) -> tuple[LevelCalibration, ...]:
        """Per level: per axis scale, unit and translation (multiscale-level transforms applied)."""
        return self._cal

    @property
    def channel_axis(self) -> int | None:
        for i, a in enumerate(self.multiscale.axes):
            if a.type == "channel":
                return i
        return None

    @property
    def channels(self) -> list[ChannelInfo]:
        """Channels from ``omero`` (label, color, window); empty when there is none."""
        if self.ome.omero is None:
            return []
        return [
            ChannelInfo(
                index=i,
                label=c.label,
                color=c.color,
                window=(c.window.start, c.window.end),
                active=c.active,
            )
            for i, c in enumerate(self.ome.omero.channels)
        ]

    def channel_index(self, label: str) -> int:
        """Index of the channel with ``label``; ``KeyError`` names the known labels."""
        labels = [c.label for c in self.channels]
        if label in labels:
            return labels.index(label)
        raise KeyError(f"no channel labelled {label!r} (channels: {labels})")

    def nearest_level(self, pixel_size: float | Sequence[float]) -> int:
        """The level whose pixel size in the space axes is nearest (log scale) to ``pixel_size``.

        A number compares against every space axis; a sequence gives one value per space axis
        (z, y, x order as in the image).
        """
        space = [i for i, a in enumerate(self.multiscale.axes) if a.type == "space"]
        from ._create import is_scalar, real_number

        values: list[Any] = (
            [pixel_size] * len(space) if is_scalar(pixel_size) else list(pixel_size)  # type: ignore[arg-type]
        )
        if len(values) != len(space):
            raise ValueError(f"pixel_size needs {len(space)} values (one per space axis)")
        wanted = [real_number(v, "pixel_size", positive=True) for v in values]

        def distance(level: int) -> float:
            scale = self._cal[level].scale
            return sum(abs(math.log(scale[i] / w)) for i, w in zip(space, wanted, strict=True))

        return min(range(len(self._cal)), key=distance)

    def _level_calibration(self, level: int) -> LevelCalibration:
        ms = self.multiscale
        ds = ms.datasets[level]
        ndim = len(ms.axes)
        scale = list(ds.scale or [1.0] * ndim)
        translation = list(ds.translation or [0.0] * ndim)
        if ms.coordinate_transformations is not None:  # applied after the dataset's own
            outer = ms.coordinate_transformations
            s = outer[0].scale if isinstance(outer[0], Scale) else None
            if s is not None and len(s) == ndim:
                scale = [a * b for a, b in zip(scale, s, strict=True)]
                translation = [a * b for a, b in zip(translation, s, strict=True)]
            t = (
                outer[1].translation
                if len(outer) > 1 and isinstance(outer[1], Translation)
                else None
            )
            if t is not None and len(t) == ndim:
                translation = [a + b for a, b in zip(translation, t, strict=True)]
        if len(scale) != ndim or len(translation) != ndim:
            raise MetadataError(
                f"level {ds.path!r}: transformations have {len(scale)} values for {ndim} axes",
                f"$.multiscales.datasets[{level}].coordinateTransformations",
            )
        return LevelCalibration(
            path=ds.path,
            axes=tuple(
                AxisCalibration(a.name, a.type, scale[i], a.unit, translation[i])
                for i, a in enumerate(ms.axes)
            ),
        )

    def __repr__(self) -> str:
        return (
            f"ImageMetadata(ngff {self.ngff_version}, axes={''.join(self.axis_names)}, "
            f"levels={len(self._cal)}, channels={[c.label for c in self.channels]})"
        )
