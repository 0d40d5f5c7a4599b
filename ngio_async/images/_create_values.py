"""The checks of the values ``create`` and the metadata edits take (numbers, integers, data types,
per-axis values and units, axis names, channels and their display windows, chunk and shard
sizes): each refused with a message naming the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..meta import Axis, Channel, Window
from ..meta.ngff import axes_problem

ChannelSpec = str | Mapping[str, Any]


_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


#: the unit of an axis of this type no unit is given for (NGFF: ``unit`` SHOULD be there)
_DEFAULT_UNITS: dict[str | None, str] = {"space": "micrometer", "time": "second"}


_COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def is_scalar(value: Any) -> bool:
    """Whether ``value`` is one real number (Python or numpy scalar, 0-d array; not a bool)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real_number(value: Any, what: str, *, positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` when ``positive``); errors name ``what``."""
    if not is_scalar(value):
        raise TypeError(f"{what} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{what} must be a finite number, got {f}")
    if positive and f <= 0:
        raise ValueError(f"{what} must be positive, got {f}")
    return f


def integer(value: Any, what: str, *, minimum: int = 0) -> int:
    """``value`` as an int (Python or numpy integer; not a bool or a float) ``>= minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    n = int(value)
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    return n


def data_type(value: Any, what: str = "dtype") -> np.dtype[Any]:
    """``np.dtype(value)``, refused with a ``TypeError`` naming ``what`` (``dtype='foo'``)."""
    try:
        dt: np.dtype[Any] = np.dtype(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} {value!r} is not a data type: {exc}") from None
    return dt


def _per_axis(
    value: float | Sequence[float] | Mapping[str, float] | None,
    axes: Sequence[str],
    default: float,
    what: str,
    *,
    positive: bool = False,
) -> list[float]:
    """One finite float per axis from a number (space axes; ``default`` elsewhere), a sequence
    or a mapping axis -> value (``default`` for the axes it does not name)."""
    if value is None:
        return [default] * len(axes)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in axes]
        if unknown:
            raise ValueError(f"{what}: unknown axis {unknown[0]!r} (axes: {list(axes)})")
        return [
            real_number(value[a], f"{what}[{a!r}]", positive=positive) if a in value else default
            for a in axes
        ]
    if is_scalar(value):
        number = real_number(value, what, positive=positive)
        return [number if _AXIS_TYPES.get(a) == "space" else default for a in axes]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{what} must be a number, one number per axis or a mapping axis -> number, "
            f"got {value!r}"
        )
    values = list(value)
    if len(values) != len(axes):
        raise ValueError(f"{what} needs {len(axes)} values (one per axis {list(axes)})")
    return [
        real_number(v, f"{what}[{a!r}]", positive=positive)
        for v, a in zip(values, axes, strict=True)
    ]


def _unit(value: Any, axis: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"units[{axis!r}] must be a string or None, got {value!r}")
    return None if value is None else str(value)  # numpy strings are str, not JSON-encodable


def _units(
    units: str | Sequence[str | None] | Mapping[str, str | None] | None, axes: Sequence[str]
) -> list[str | None]:
    """One unit per axis from one unit (space axes; the time axis gets ``second``), a
    sequence, or a mapping axis -> unit (the axes it does not name keep the defaults:
    ``micrometer`` in space, ``second`` in time, as ngio writes them). ``None``: no units."""
    if units is None:
        return [None] * len(axes)
    if isinstance(units, str):
        kinds = [_AXIS_TYPES.get(a) for a in axes]
        return [str(units) if k == "space" else _DEFAULT_UNITS.get(k) for k in kinds]
    if isinstance(units, Mapping):
        unknown = [k for k in units if k not in axes]
        if unknown:
            raise ValueError(f"units: unknown axis {unknown[0]!r} (axes: {list(axes)})")
        default = _units("micrometer", axes)
        return [_unit(units[a], a) if a in units else d for a, d in zip(axes, default, strict=True)]
    if isinstance(units, bytes) or not isinstance(units, Sequence):
        raise TypeError(
            f"units must be a unit name, one per axis or a mapping axis -> unit, got {units!r}"
        )
    out = list(units)
    if len(out) != len(axes):
        raise ValueError(f"units needs {len(axes)} values (one per axis {list(axes)})")
    return [_unit(u, a) for u, a in zip(out, axes, strict=True)]


def _default_window(dtype: np.dtype[Any]) -> Window:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    elif dtype.kind == "b":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = 0.0, 1.0
    return Window(min=lo, max=hi, start=lo, end=hi)


def _channel_list(channels: Any) -> list[Any]:
    """``channels=`` as a list, each item a label, a mapping or a :class:`Channel`: a string
    (one channel per letter), a mapping (its keys) or a number is refused naming it."""
    if isinstance(channels, str | bytes | Mapping) or not isinstance(
        channels, Sequence | np.ndarray
    ):
        raise TypeError(
            f"channels must be a list of channels (labels or mappings), got {channels!r}"
        )
    out = list(channels)
    for i, c in enumerate(out):
        if not isinstance(c, str | Mapping | Channel):
            raise TypeError(
                f"channels[{i}] must be a label (str) or a mapping with label, color, window "
                f"or active, got {c!r}"
            )
    return out


def check_unique_channels(
    channels: Sequence[Channel], what: str, keys: Sequence[str] = ("label", "wavelength_id")
) -> None:
    """Refuse two channels of one label or one ``wavelength_id`` (of ``keys``: reads select
    channels by them; ngio refuses a label twice too), naming both."""
    for key in keys:
        seen: dict[str, int] = {}
        for i, channel in enumerate(channels):
            value = channel.label if key == "label" else channel.extra.get("wavelength_id")
            if value is None:
                continue
            if value in seen:
                raise ValueError(
                    f"{what}: channels {seen[value]} and {i} would both have {key} {value!r} "
                    "(channels are selected by it)"
                )
            seen[value] = i


def make_channel(
    spec: ChannelSpec | Channel, index: int, dtype: np.dtype[Any], *, only: bool = False
) -> Channel:
    """A channel from a label, or a dict with ``label``, ``color``, ``window``, ``active``,
    ``inverted``, ``wavelength_id`` (the key Fractal and ngio select channels by, kept
    beside the omero channel's others). Without a color: blue, green, red, ... by ``index``; white when it is the
    ``only`` channel (drawn grey, as OMERO and this library's renderer draw one channel: a
    lone blue channel is nearly black in napari and vizarr).

    ``window`` is a ``Window``, a dict ``{min, max, start, end}`` (missing keys from the data
    type's range) or ``(start, end)``.
    """
    if isinstance(spec, Channel):
        return spec
    if isinstance(spec, str):
        spec = {"label": str(spec)}
    known = {"label", "color", "window", "active", "inverted", "wavelength_id"}
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise ValueError(f"channel {index}: unknown key {unknown[0]!r} (known: {sorted(known)})")
    channel = Channel(
        label=_python(spec.get("label")),
        color=str(spec.get("color") or _default_color(index, only)).lstrip("#").upper(),
        window=make_window(spec.get("window"), dtype, f"channels[{index}] window"),
        active=_python(spec.get("active", True)),
        inverted=_python(spec.get("inverted")),
    )
    wavelength = _python(spec.get("wavelength_id"))
    if wavelength is not None:
        if not isinstance(wavelength, str) or not wavelength:
            raise TypeError(f"channel {index}: wavelength_id must be a string, got {wavelength!r}")
        channel.extra["wavelength_id"] = wavelength
    return channel


def _default_color(index: int, only: bool) -> str:
    return "FFFFFF" if only else _COLORS[index % len(_COLORS)]


def _python(value: Any) -> Any:
    """A numpy scalar (``np.str_``, ``np.bool_``: from arrays of channel names or flags) as the
    Python value; anything else as given (validation names what is wrong)."""
    return value.item() if isinstance(value, np.generic) else value


def make_window(value: Any, dtype: np.dtype[Any], what: str = "window") -> Window:
    """A display window from ``None``, a ``Window``, ``(start, end)`` or a dict.

    Values must be finite numbers (``ValueError`` / ``TypeError`` naming ``what``).
    """
    base = _default_window(dtype)
    if value is None:
        return base
    if isinstance(value, Window):
        return value
    if isinstance(value, Mapping):
        keys = ("min", "max", "start", "end")
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise ValueError(f"{what}: unknown key {unknown[0]!r} (known: {list(keys)})")
        v = {k: real_number(value.get(k, getattr(base, k)), f"{what} {k}") for k in keys}
        return Window(**v)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{what} must be (start, end) or a mapping, got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{what} must be (start, end), got {len(value)} values")
    start, end = (
        real_number(v, f"{what} {k}") for v, k in zip(value, ("start", "end"), strict=True)
    )
    return Window(min=min(base.min, start), max=max(base.max, end), start=start, end=end)


def _sizes(value: Any, what: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{what} must be a sequence of integers, got {value!r}")
    return list(value)


def _per_axis_sizes(value: Any, names: Sequence[str], what: str) -> tuple[int, ...]:
    """Chunk or shard sizes: one integer >= 1 per axis."""
    sizes = _sizes(value, what)
    if len(sizes) != len(names):
        raise ValueError(f"{what} {tuple(sizes)} needs {len(names)} sizes (one per axis {names})")
    return tuple(
        integer(n, f"{what}[{i}] (axis {a!r})", minimum=1)
        for i, (n, a) in enumerate(zip(sizes, names, strict=True))
    )


def _axis_names(axes: str | Sequence[str]) -> list[str]:
    """The axis names of ``axes=``, checked against the NGFF axis rules (the message names the
    argument, not a JSON path)."""
    names = list(axes) if isinstance(axes, str | Sequence) else []
    if not names or not all(isinstance(a, str) and a for a in names):
        raise TypeError(f"axes must be a string like 'czyx' or a list of names, got {axes!r}")
    models = [Axis(name=a, type=_AXIS_TYPES.get(a)) for a in names]
    problem = axes_problem(models)
    if problem is not None:
        rule = problem[1]
        if any(a not in _AXIS_TYPES and a.lower() in _AXIS_TYPES for a in names):
            rule += " (the known axis names t, c, z, y, x are lower case)"
        elif rule.startswith("expected 2 or 3 axes"):
            rule += " (the space axes are z, y and x)"
        raise ValueError(f"axes {axes!r}: {rule}")
    return names
