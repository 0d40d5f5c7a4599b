"""``ImageMetadata``: the reader's view of an image's NGFF metadata (pure; no I/O)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import MetadataError, UnsupportedError
from ..meta import (
    Axis,
    MetadataWarning,
    Multiscale,
    Multiscale06,
    OmeMetadata,
    Scale,
    Translation,
    ngff06_of,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..meta import Window

__all__ = [
    "AxisCalibration",
    "ChannelInfo",
    "ImageMetadata",
    "LevelCalibration",
    "check_editable",
    "unreadable_06",
]


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
    """A channel: ``label``, ``color`` (``RRGGBB``) and display ``window`` (start, end;
    ``None``: the channel was stored without one)."""

    index: int
    label: str | None
    color: str | None
    window: tuple[float, float] | None
    active: bool | None


def _no_window(window: Window) -> bool:
    """Whether ``window`` is the empty one a channel stored without a window is read with
    (all four values 0: no range to show)."""
    return window.start == window.end == window.min == window.max == 0


class ImageMetadata:
    """The NGFF metadata of one image, with the derived views a reader needs."""

    __slots__ = ("_cal", "index", "multiscale", "ome")

    def __init__(self, ome: OmeMetadata, multiscale_index: int = 0) -> None:
        _check_06_readable(ome)
        if not ome.multiscales:
            raise MetadataError("the group is not an image: no 'multiscales'", "$")
        if multiscale_index >= len(ome.multiscales):
            raise IndexError(f"multiscale {multiscale_index} of {len(ome.multiscales)}")
        self.ome = ome
        self.index = multiscale_index  # of the multiscale in the group's ``multiscales``
        self.multiscale: Multiscale = ome.multiscales[multiscale_index]
        at = f"$.multiscales[{multiscale_index}]"
        ndim = len(self.multiscale.axes)
        outer = self.multiscale.coordinate_transformations or []
        after = (_vector(outer, 0, ndim, at), _vector(outer, 1, ndim, at))
        self._cal = tuple(
            self._level_calibration(i, at, after) for i in range(len(self.multiscale.datasets))
        )

    @property
    def ngff_version(self) -> str:
        return self.ome.version or "0.5"

    @property
    def name(self) -> str | None:
        return self.multiscale.name

    @property
    def ngff06(self) -> Multiscale06 | None:
        """Of an NGFF 0.6 image, its typed 0.6 multiscale: every coordinate system (``axes``
        are those of the intrinsic one) and transformation, the multiscale-level ones too.
        ``None`` for 0.4 / 0.5."""
        ome06 = ngff06_of(self.ome)
        return None if ome06 is None or not ome06.multiscales else ome06.multiscales[self.index]

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
                window=None if _no_window(c.window) else (c.window.start, c.window.end),
                active=c.active,
            )
            for i, c in enumerate(self.ome.omero.channels)
        ]

    def channel_index(self, label: str) -> int:
        """Index of the channel with ``label``; ``KeyError`` names the known labels (or the
        channels sharing ``label``: then it selects nothing, pass an index)."""
        labels = [c.label for c in self.channels]
        found = [i for i, name in enumerate(labels) if name == label]
        if len(found) == 1:
            return found[0]
        if found:
            raise KeyError(
                f"channel label {label!r} is ambiguous: channels {found} share it; "
                "select the channel by index"
            )
        raise KeyError(f"no channel labelled {label!r} (channels: {labels})")

    def nearest_level(self, pixel_size: float | Sequence[float], unit: str | None = None) -> int:
        """The index of the level nearest ``pixel_size`` (in ``unit``; ``None``: as stored), by
        the rule of :func:`ngio_async.images._world.level_for` (ngio's: the Euclidean distance
        over y and x; a flipped axis counts by its size; a zero scale raises
        :class:`MetadataError` naming the level and the axis)."""
        from ._world import level_for

        return level_for(self._cal, pixel_size, unit)

    def _level_calibration(
        self, level: int, at: str, after: tuple[list[float], list[float]]
    ) -> LevelCalibration:
        """Level ``level``'s calibration (``at``: the JSON path of the multiscale; ``after``:
        its own scale and translation, applied after the dataset's)."""
        ms = self.multiscale
        ds = ms.datasets[level]
        ndim = len(ms.axes)
        ts, where = ds.coordinate_transformations, f"{at}.datasets[{level}]"
        s, t = after
        scale = [a * b for a, b in zip(_vector(ts, 0, ndim, where), s, strict=True)]
        translation = [a * b + c for a, b, c in zip(_vector(ts, 1, ndim, where), s, t, strict=True)]
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


def _check_06_readable(ome: OmeMetadata) -> None:
    why = unreadable_06(ome)
    if why is not None:
        raise UnsupportedError(why)


def unreadable_06(ome: OmeMetadata) -> str | None:
    """Why a valid 0.6 image is not read (it has no 0.4/0.5-shaped view: its intrinsic
    coordinate system is no image one); ``None`` for every other group."""
    from ..meta._ngff06 import image_problem

    ome06 = ngff06_of(ome)
    if ome.multiscales or ome06 is None or not ome06.multiscales:
        return None
    why = next((p for p in map(image_problem, ome06.multiscales) if p), "its axes")
    return f"NGFF {ome.version} image not read: {why}"


def check_editable(meta: ImageMetadata, what: str, whose: str) -> None:
    """Refuse, before any I/O, an edit (``what``) of the NGFF metadata of ``whose``, an image
    that ``meta`` describes, when that metadata is not written: NGFF 0.6 is read, never
    rewritten (nor rewritten as 0.5)."""
    version = meta.ngff_version
    if version not in ("0.4", "0.5"):
        raise UnsupportedError(
            f"{whose}: cannot edit the metadata of an NGFF {version} image to {what} "
            "(ngio_async reads NGFF 0.6 but writes NGFF 0.4 and 0.5; convert it to 0.5 to "
            "edit it); nothing was read or written"
        )


def _vector(transforms: list[Scale | Translation], index: int, ndim: int, at: str) -> list[float]:
    """The scale (``index`` 0) or translation (1) of a transformation list, one value per
    axis (identity when absent). A vector stored in a binary ``path`` is not read: identity,
    with a :class:`MetadataWarning`."""
    identity = [1.0 if index == 0 else 0.0] * ndim
    if index >= len(transforms):
        return identity
    t = transforms[index]
    key = "scale" if index == 0 else "translation"
    values = t.scale if isinstance(t, Scale) else t.translation
    where = f"{at}.coordinateTransformations[{index}].{key}"
    if values is None:
        warnings.warn(
            f"the {key} at `{where}` is stored in a binary file "
            f"({t.path!r}), which ngio_async does not read; it is taken as {identity}",
            MetadataWarning,
            stacklevel=5,
        )
        return identity
    if len(values) != ndim:
        raise MetadataError(f"the {key} has {len(values)} values for {ndim} axes", where)
    return list(values)
