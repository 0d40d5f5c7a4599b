"""World (physical) coordinates to pixel regions of a pyramid level (pure; no I/O).

Along an axis of a level with pixel size ``s`` and translation ``t`` (the level's calibration,
multiscale-level transforms applied), pixel ``i`` covers the half-open world interval
``[t + i*s, t + (i+1)*s)``. A world range ``[a, b)`` becomes pixel bounds ``u = (a - t)/s``,
``v = (b - t)/s``; a bound within :data:`SNAP` (1/100) of a pixel edge is moved onto it (world
values written in decimal, or stored as float32 as in Fractal ROI tables, land a little off the
edges; ngio rounds so too), then the range covers pixels ``floor(u)`` to ``ceil(v)`` (every
pixel it overlaps; at least one), clipped to the level. The same world box therefore covers,
at every level, the box plus less than one pixel of that level on each side.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import MetadataError, UnsupportedError

if TYPE_CHECKING:
    from ..meta import Multiscale06
    from ..meta._transforms06 import Transform06
    from ._metadata import AxisCalibration, LevelCalibration

__all__ = [
    "SNAP",
    "UNITS",
    "Origin",
    "Unit",
    "absent_axes",
    "axis_extent",
    "extent",
    "is_world_axis",
    "level_for",
    "pixel_at",
    "pixel_range",
    "system_calibration",
    "unit_factor",
    "world_selection",
]

#: a pixel bound within this many pixels of a pixel edge is taken as on the edge
SNAP = 1e-2
Origin = Literal["world", "image"]
Unit = str | Mapping[str, str | None] | None

_PREFIXES = {
    "yocto": 1e-24, "zepto": 1e-21, "atto": 1e-18, "femto": 1e-15, "pico": 1e-12,
    "nano": 1e-9, "micro": 1e-6, "milli": 1e-3, "centi": 1e-2, "deci": 1e-1, "": 1.0,
    "hecto": 1e2, "kilo": 1e3, "mega": 1e6, "giga": 1e9, "tera": 1e12, "peta": 1e15,
    "exa": 1e18, "zetta": 1e21, "yotta": 1e24,
}  # fmt: skip
#: unit name -> (kind, size in metres or seconds): the NGFF (UDUNITS-2) names, and a few
#: common short forms (``um``, ``µm``, ``micron``, ``nm``, ``mm``, ``s``, ``ms``, ``min``, ``h``)
UNITS: dict[str, tuple[str, float]] = {
    **{p + "meter": ("length", f) for p, f in _PREFIXES.items()},
    **{p + "second": ("time", f) for p, f in _PREFIXES.items()},
    "angstrom": ("length", 1e-10),
    "inch": ("length", 0.0254),
    "foot": ("length", 0.3048),
    "yard": ("length", 0.9144),
    "mile": ("length", 1609.344),
    "parsec": ("length", 3.0856775814913673e16),
    "minute": ("time", 60.0),
    "hour": ("time", 3600.0),
    "day": ("time", 86400.0),
    # short forms and spellings met in files (not NGFF names)
    **dict.fromkeys(("um", "µm", "μm", "micron", "microns"), ("length", 1e-06)),
    "nm": ("length", 1e-9),
    "mm": ("length", 1e-3),
    "cm": ("length", 1e-2),
    "m": ("length", 1.0),
    "s": ("time", 1.0),
    "ms": ("time", 1e-3),
    **dict.fromkeys(("us", "µs", "μs"), ("time", 1e-06)),
    "ns": ("time", 1e-9),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
}


def unit_factor(unit: str | None) -> tuple[str, float] | None:
    """``(kind, size in metres or seconds)`` of ``unit``; ``None`` when unknown or absent."""
    if unit is None:
        return None
    name = unit.strip()
    return UNITS.get(name) or UNITS.get(name.lower())


def is_world_axis(axis: AxisCalibration) -> bool:
    """Whether world values select along ``axis``: a space or time axis (by type; untyped
    axes by name: ``x``, ``y``, ``z``, ``t``)."""
    if axis.type is not None:
        return axis.type in ("space", "time")
    return axis.name in ("x", "y", "z", "t")


def axis_kind(axis: AxisCalibration) -> str:
    """``"time"`` or ``"length"``: the kind of unit a world axis is measured in."""
    return "time" if axis.type == "time" or (axis.type is None and axis.name == "t") else "length"


def _unit_for(unit: Unit, axis: AxisCalibration) -> str | None:
    """The unit ``axis``'s values are given in: a mapping's entry; a unit name applies to the
    axes of its kind (a length to space axes, a time to time axes), the others as stored."""
    if unit is None:
        return None
    if isinstance(unit, str):
        found = unit_factor(unit)
        return unit if found is not None and found[0] == axis_kind(axis) else None
    return unit.get(axis.name)


def check_applies(unit: Unit, axes: Sequence[AxisCalibration]) -> None:
    """Refuse a unit name of a kind no axis of ``axes`` (the world axes given) has."""
    if isinstance(unit, str) and axes and all(_unit_for(unit, a) is None for a in axes):
        kinds = ", ".join(f"{a.name!r} a {axis_kind(a)}" for a in axes)
        found = unit_factor(unit)
        raise ValueError(
            f"unit {unit!r} is a {found[0] if found else 'unit'}, and no axis given is measured "
            f"in one ({kinds}): name the unit per axis, unit={{'{axes[0].name}': ...}}"
        )


def check_unit(unit: Unit, names: Sequence[str]) -> None:
    """Refuse a ``unit=`` that is no known unit name, or a mapping naming unknown axes."""
    if unit is None:
        return
    if isinstance(unit, Mapping):
        unknown = [k for k in unit if k not in names]
        if unknown:
            raise ValueError(f"unit= names axis {unknown[0]!r}: the axes are {list(names)}")
        values = list(unit.values())
    elif isinstance(unit, str):
        values = [unit]
    else:
        raise TypeError(f"unit= must be a unit name or a mapping axis -> unit, got {unit!r}")
    for u in values:
        if u is None:
            continue
        if not isinstance(u, str) or unit_factor(u) is None:
            raise ValueError(
                f"unknown unit {u!r}: give a UDUNITS-2 length or time name (micrometer, "
                "nanometer, millimeter, second, millisecond, ...)"
            )


def to_stored(values: Sequence[float], axis: AxisCalibration, unit: Unit) -> list[float]:
    """``values`` (in ``unit``: for this axis, the mapping's entry) in the axis's stored unit."""
    given = _unit_for(unit, axis)
    if given is None:
        return list(values)
    src = unit_factor(given)
    assert src is not None  # check_unit ran
    if axis.unit is None:
        raise ValueError(
            f"axis {axis.name!r} has no unit in the metadata, so {given!r} cannot be converted "
            "to it: give its values as stored (unit=None, or leave it out of a unit mapping)"
        )
    dst = unit_factor(axis.unit)
    if dst is None:
        raise ValueError(
            f"axis {axis.name!r} has unit {axis.unit!r}, which ngio_async cannot convert "
            f"{given!r} to: give its values as stored (unit=None, or leave it out of a unit "
            "mapping)"
        )
    if src[0] != dst[0]:
        raise ValueError(
            f"axis {axis.name!r} is in {axis.unit!r} (a {dst[0]}): a {src[0]} in {given!r} "
            "cannot be converted to it"
        )
    ratio = src[1] / dst[1]
    return [v * ratio for v in values]


def _origin(axis: AxisCalibration, origin: Origin) -> float:
    return axis.translation if origin == "world" else 0.0


def _scale(axis: AxisCalibration, level: int) -> float:
    if axis.scale == 0 or not math.isfinite(axis.scale):
        raise MetadataError(
            f"level {level} has scale {axis.scale} on axis {axis.name!r}: no pixel size to map "
            "world coordinates with",
            f"$.multiscales.datasets[{level}].coordinateTransformations",
        )
    return axis.scale


def axis_extent(
    axis: AxisCalibration, size: int, level: int, origin: Origin = "world"
) -> tuple[float, float]:
    """The world interval ``[start, stop)`` the ``size`` pixels of ``axis`` cover."""
    s, t = _scale(axis, level), _origin(axis, origin)
    a, b = t, t + size * s
    return (a, b) if a <= b else (b, a)


def _snap(u: float) -> float:
    r = round(u)
    return float(r) if abs(u - r) < SNAP else u


def _number(axis: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.floating | np.integer):
        raise TypeError(
            f"axis {axis!r}: a world {what} must be a number, got {value!r} "
            "(pixel indices and slices: ds.read)"
        )
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"axis {axis!r}: the world {what} {f} is not finite")
    return f


def _shown(values: Sequence[float], unit: str | None) -> str:
    text = ", ".join(f"{v:g}" for v in values)
    return f"({text}){'' if unit is None else ' ' + unit}"


def _extent_text(ext: tuple[float, float], axis: AxisCalibration, level: int) -> str:
    unit = "" if axis.unit is None else f" {axis.unit}"
    return f"[{ext[0]:g}, {ext[1]:g}){unit} at level {level}"


def parse_range(axis: str, value: Any) -> tuple[float, float] | float:
    """A world selector: ``(start, stop)`` (checked: finite, ``start < stop``) or a point."""
    if isinstance(value, tuple | list | np.ndarray) and not isinstance(value, str):
        if len(value) != 2:
            raise TypeError(
                f"axis {axis!r}: a world range is a (start, stop) pair, got {len(value)} values"
            )
        a, b = (_number(axis, v, "range bound") for v in value)
        if a == b:
            raise ValueError(f"axis {axis!r}: the world range ({a:g}, {b:g}) is empty")
        if a > b:
            raise ValueError(
                f"axis {axis!r}: the world range ({a:g}, {b:g}) is reversed (start > stop)"
            )
        return (a, b)
    return _number(axis, value, "coordinate")


def pixel_range(
    axis: AxisCalibration,
    size: int,
    bounds: tuple[float, float],
    level: int,
    *,
    origin: Origin = "world",
    given: tuple[tuple[float, float], str | None] | None = None,
) -> slice:
    """The pixels of ``axis`` (``size`` of them) world range ``bounds`` (stored units)
    overlaps, clipped; wholly outside: ``IndexError`` naming the axis, range and extent.
    ``given``: the range and unit as the caller wrote them (for errors)."""
    s, t = _scale(axis, level), _origin(axis, origin)
    u, v = sorted((_snap((bounds[0] - t) / s), _snap((bounds[1] - t) / s)))
    lo, hi = math.floor(u), math.ceil(v)
    hi = max(hi, lo + 1)
    start, stop = max(lo, 0), min(hi, size)
    if start >= stop:
        rng, unit = given if given is not None else (bounds, axis.unit)
        there = _extent_text(axis_extent(axis, size, level, origin), axis, level)
        raise IndexError(
            f"axis {axis.name!r}: the world range {_shown(rng, unit)} is outside the image, "
            f"whose world extent there is {there}"
        )
    return slice(start, stop)


def pixel_at(
    axis: AxisCalibration,
    size: int,
    point: float,
    level: int,
    *,
    origin: Origin = "world",
    given: tuple[float, str | None] | None = None,
) -> int:
    """The pixel of ``axis`` containing world ``point`` (stored units); outside the image:
    ``IndexError`` naming the axis, the point and the extent."""
    s, t = _scale(axis, level), _origin(axis, origin)
    u = _snap((point - t) / s)
    i = math.floor(u) if s > 0 else math.ceil(u) - 1  # a flipped axis: pixel i is (i, i+1]
    if not 0 <= i < size:
        p, unit = given if given is not None else (point, axis.unit)
        raise IndexError(
            f"axis {axis.name!r}: the world coordinate {p:g}{'' if unit is None else ' ' + unit} "
            f"is outside the image, whose world extent there is "
            f"{_extent_text(axis_extent(axis, size, level, origin), axis, level)}"
        )
    return i


def check_whole_pixels(
    axis: AxisCalibration,
    size: int,
    bounds: tuple[float, float],
    level: int,
    origin: Origin,
    given: tuple[tuple[float, float], str | None],
) -> None:
    """Refuse a range (stored units) whose bounds are not on pixel edges (within
    :data:`SNAP`: a write would change pixels partly outside it) or that reaches outside the
    level (``given``: the range and unit as written, for errors)."""
    s, t = _scale(axis, level), _origin(axis, origin)
    unit = "" if axis.unit is None else f" {axis.unit}"
    edges = []
    for b in bounds:
        u = (b - t) / s
        if abs(u - round(u)) >= SNAP:
            near = (t + math.floor(u) * s, t + math.ceil(u) * s)
            raise ValueError(
                f"axis {axis.name!r}: the world bound {b:g}{unit} is not on a pixel edge of "
                f"level {level} (the nearest are {near[0]:g} and {near[1]:g}): a write covers "
                "whole pixels"
            )
        edges.append(round(u))
    if min(edges) < 0 or max(edges) > size:
        there = _extent_text(axis_extent(axis, size, level, origin), axis, level)
        raise IndexError(
            f"axis {axis.name!r}: the world range {_shown(*given)} reaches outside the image, "
            f"whose world extent there is {there}: a write must lie inside it"
        )


def absent_axes(axes: Mapping[str, Any], names: Sequence[str]) -> set[str]:
    """The space/time axes named in ``axes`` that the image does not have (``x``, ``y``,
    ``z``, ``t``) whose value selects only the one plane the image is along them: ``None``,
    a range inside ``[0, 1]`` or a point in ``[0, 1)`` (a Fractal ROI's ``z`` of ``(0, 1)`` on
    a 2-D image; ngio takes those too). Another value there is a ``ValueError``."""
    out = set()
    for name, value in axes.items():
        if name in names or name not in ("x", "y", "z", "t"):
            continue
        if value is not None:
            parsed = parse_range(name, value)
            lo, hi = parsed if isinstance(parsed, tuple) else (parsed, parsed)
            if not (lo >= -SNAP and (hi <= 1 + SNAP if isinstance(parsed, tuple) else hi < 1)):
                raise ValueError(
                    f"axis {name!r} is not an axis of the image (axes: {', '.join(names)}): "
                    f"only a range inside (0, 1) or a point in [0, 1) selects its one plane "
                    f"there, got {value!r}"
                )
        out.add(name)
    return out


def world_selection(
    cal: LevelCalibration,
    shape: Sequence[int],
    axes: Mapping[str, Any],
    unit: Unit,
    level: int,
    *,
    origin: Origin = "world",
    whole: bool = False,
) -> dict[int, slice | int]:
    """Per world axis named in ``axes`` (index -> selector): the pixel slice of a
    ``(start, stop)`` range, the pixel index of a point. ``whole``: the ranges must lie on
    pixel edges and inside the level (a write's box)."""
    if origin not in ("world", "image"):
        raise ValueError(f"origin must be 'world' or 'image', got {origin!r}")
    check_unit(unit, [a.name for a in cal.axes])
    check_applies(unit, [a for a in cal.axes if is_world_axis(a) and axes.get(a.name) is not None])
    out: dict[int, slice | int] = {}
    for i, axis in enumerate(cal.axes):
        value = axes.get(axis.name)
        if value is None or not is_world_axis(axis):
            continue
        parsed = parse_range(axis.name, value)
        given_unit = _unit_for(unit, axis) or axis.unit
        if isinstance(parsed, tuple):
            a, b = to_stored(parsed, axis, unit)
            if whole:
                check_whole_pixels(axis, shape[i], (a, b), level, origin, (parsed, given_unit))
            out[i] = pixel_range(
                axis, shape[i], (a, b), level, origin=origin, given=(parsed, given_unit)
            )
        else:
            (p,) = to_stored([parsed], axis, unit)
            out[i] = pixel_at(axis, shape[i], p, level, origin=origin, given=(parsed, given_unit))
    return out


def extent(
    cal: LevelCalibration, shape: Sequence[int], unit: Unit, level: int, origin: Origin
) -> dict[str, tuple[float, float]]:
    """Per world axis: the world interval ``[start, stop)`` the level covers, in the stored
    unit (``unit``: converted to it)."""
    check_unit(unit, [a.name for a in cal.axes])
    check_applies(unit, [a for a in cal.axes if is_world_axis(a)])
    out = {}
    for axis, n in zip(cal.axes, shape, strict=True):
        if not is_world_axis(axis):
            continue
        a, b = axis_extent(axis, n, level, origin)
        given = _unit_for(unit, axis)
        if given is not None:
            back = to_stored([1.0], axis, unit)[0]  # stored units per given unit
            a, b = a / back, b / back
        out[axis.name] = (a, b)
    return out


def level_for(
    levels: Sequence[LevelCalibration],
    pixel_size: float | Sequence[float],
    unit: str | None = None,
    *,
    not_coarser: bool = False,
    exact: bool = False,
) -> int:
    """The level whose y/x pixel size is nearest to ``pixel_size`` (the Euclidean distance
    over y and x, as ngio picks; ties: the finer); ``not_coarser``: the coarsest level whose
    pixels are nowhere larger than asked. ``pixel_size``: a number (y and x), one per y/x
    axis, or one per space axis (z, y, x: z counts too), in ``unit`` (``None``: as stored).
    ``exact``: that level's pixels must be the size asked (to a relative 1e-6, float32
    metadata included; ngio's ``strict=True``), else ``ValueError`` naming the nearest."""
    if exact and not_coarser:
        raise ValueError("exact= and not_coarser= exclude each other: give one of them")
    first = levels[0]
    space = [a.name for a in first.axes if a.type == "space"]
    names = [a.name for a in first.axes if a.name in ("y", "x") and is_world_axis(a)] or space
    if not names:
        raise ValueError("the image has no space axes: no pixel size to choose a level by")
    if isinstance(pixel_size, Sequence | np.ndarray) and not isinstance(pixel_size, str):
        values = list(pixel_size)
        if len(values) == len(space) != len(names):
            names = space
        elif len(values) != len(names):
            also = f", one per space axis {space}" if space != names else ""
            raise ValueError(
                f"pixel_size needs one value per axis {names}{also} or one for all, "
                f"got {len(values)}"
            )
    else:
        values = [pixel_size] * len(names)
    wanted = []
    for name, v in zip(names, values, strict=True):
        f = _number(name, v, "pixel size")
        if f <= 0:
            raise ValueError(f"pixel_size must be positive, got {f:g}")
        wanted.append(f)
    check_unit(unit, [a.name for a in first.axes])
    check_applies(unit, [first[n] for n in names])
    wanted = [to_stored([w], first[n], unit)[0] for n, w in zip(names, wanted, strict=True)]
    sizes = [[abs(_scale(cal[n], k)) for n in names] for k, cal in enumerate(levels)]
    if not_coarser:
        fits = [
            k
            for k, sz in enumerate(sizes)
            if all(s <= w * (1 + 1e-9) for s, w in zip(sz, wanted, strict=True))
        ]
        if not fits:
            raise ValueError(
                f"no level has pixels at most {_shown(wanted, first[names[0]].unit)}: the "
                f"finest, level 0, has {_shown(sizes[0], first[names[0]].unit)}"
            )
        return max(fits, key=lambda k: (math.prod(sizes[k]), -k))
    best = min(
        range(len(levels)),
        key=lambda k: (math.dist(sizes[k], wanted), math.prod(sizes[k])),
    )
    if exact and not all(
        math.isclose(s, w, rel_tol=1e-6) for s, w in zip(sizes[best], wanted, strict=True)
    ):
        unit_name = first[names[0]].unit
        raise ValueError(
            f"no level has pixels of {_shown(wanted, unit_name)} ({', '.join(names)}): the "
            f"nearest, level {best}, has {_shown(sizes[best], unit_name)}"
        )
    return best


# ---------------------------------------------------------------- named coordinate systems
#: output axis ``j`` of a box-to-box map: ``(k, a, b)``, ``out[j] = a * in[k] + b``
_BoxMap = list[tuple[int, float, float]]


def _type_name(t: Transform06) -> str:
    return str(type(t).__struct_config__.tag)


def _box_map(t: Transform06, n: int, where: str) -> _BoxMap:
    """The box-to-box map of ``t`` over ``n`` axes (identity, scale, translation, mapAxis and
    sequences of them); others raise :class:`UnsupportedError` naming their type."""
    from ..meta._transforms06 import (
        Identity,
        MapAxis,
        Scale06,
        Sequence as Sequence06,
        Translation06,
    )

    params: list[float] | list[int] | None = None
    if isinstance(t, Identity):
        return [(k, 1.0, 0.0) for k in range(n)]
    if isinstance(t, Scale06 | Translation06 | MapAxis):
        params = (
            t.scale if isinstance(t, Scale06)
            else t.translation if isinstance(t, Translation06)
            else t.map_axis
        )  # fmt: skip
        if len(params) != n:
            raise MetadataError(f"the {_type_name(t)} has {len(params)} values for {n} axes", where)
        if isinstance(t, Scale06):
            return [(k, float(v), 0.0) for k, v in enumerate(t.scale)]
        if isinstance(t, Translation06):
            return [(k, 1.0, float(v)) for k, v in enumerate(t.translation)]
        return [(int(m), 1.0, 0.0) for m in t.map_axis]
    if isinstance(t, Sequence06) and not any(
        u.input_axes is not None or u.output_axes is not None for u in t.transformations
    ):
        out = [(k, 1.0, 0.0) for k in range(n)]
        for i, u in enumerate(t.transformations):
            out = _then(out, _box_map(u, n, f"{where}.transformations[{i}]"))
        return out
    kind = "sequence on axis subsets" if isinstance(t, Sequence06) else f"{_type_name(t)!r}"
    raise UnsupportedError(
        f"a {kind} transformation ({where}) does not map a box onto a box: world boxes in a "
        "named coordinate system (system=) follow identity, scale, translation, mapAxis and "
        "sequences of them"
    )


def _then(first: _BoxMap, second: _BoxMap) -> _BoxMap:
    """``second`` applied after ``first``."""
    return [(first[k][0], a * first[k][1], a * first[k][2] + b) for k, a, b in second]


def _inverse(m: _BoxMap, where: str) -> _BoxMap:
    out: list[tuple[int, float, float]] = [(0, 1.0, 0.0)] * len(m)
    for j, (k, a, b) in enumerate(m):
        if a == 0:
            raise MetadataError(f"scale 0 on axis {j}: the transformation has no inverse", where)
        out[k] = (j, 1.0 / a, -b / a)
    return out


def system_calibration(
    ms: Multiscale06 | None, cals: Sequence[LevelCalibration], system: str, url: str
) -> tuple[LevelCalibration, ...]:
    """Each level's calibration in coordinate system ``system`` of an NGFF 0.6 multiscale
    ``ms`` (``cals``: in its intrinsic system), through the multiscale-level transformation
    linking the two (either way: box-to-box maps are inverted). Axes stay in array order, named
    as in ``system``.

    :raises ValueError: ``ms`` is ``None`` (NGFF 0.4 / 0.5: one coordinate system), no such
        system, or no transformation between it and the intrinsic one.
    :raises UnsupportedError: that transformation does not map boxes to boxes (its type named).
    """
    from ..meta._transforms06 import ref_name

    if ms is None:
        raise ValueError(
            f"system={system!r}: {url} is NGFF 0.4 / 0.5, with one unnamed coordinate system; "
            "leave system unset (named coordinate systems are NGFF 0.6's)"
        )
    systems = ms.systems
    if system not in systems:
        raise ValueError(
            f"system={system!r} is not a coordinate system of {url} "
            f"(systems: {', '.join(map(repr, systems))})"
        )
    intrinsic = ms.intrinsic_name
    if system == intrinsic:
        return tuple(cals)
    n = len(ms.intrinsic.axes)
    for i, t in enumerate(ms.coordinate_transformations or ()):
        where = f"$.ome.multiscales.coordinateTransformations[{i}]"
        ends = (ref_name(t.input), ref_name(t.output))
        if ends == (intrinsic, system):
            box = _box_map(t, n, where)
        elif ends == (system, intrinsic):
            box = _inverse(_box_map(t, n, where), where)
        else:
            continue
        if len(systems[system].axes) != n:
            raise MetadataError(
                f"coordinate system {system!r} has {len(systems[system].axes)} axes, the "
                f"intrinsic one {n}",
                where,
            )
        return tuple(_in_system(cal, box, systems[system].axes) for cal in cals)
    raise ValueError(
        f"system={system!r}: no transformation of {url} links it to the intrinsic coordinate "
        f"system {intrinsic!r} (only a direct one is followed)"
    )


def _in_system(cal: LevelCalibration, box: _BoxMap, axes: Sequence[Any]) -> LevelCalibration:
    from ._metadata import AxisCalibration, LevelCalibration

    by_array: list[AxisCalibration | None] = [None] * len(box)
    for j, (k, a, b) in enumerate(box):
        src, ax = cal.axes[k], axes[j]
        by_array[k] = AxisCalibration(
            name=ax.name,
            type=ax.type,
            scale=a * src.scale,
            unit=ax.unit,
            translation=a * src.translation + b,
        )
    return LevelCalibration(path=cal.path, axes=tuple(a for a in by_array if a is not None))
