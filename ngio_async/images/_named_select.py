"""One axis of a named selection (``ds.read(c="DAPI", z=2)``, ``write``, ``tiles``,
``read_roi``...): the single-axis forms ``ds[...]`` takes, plus channel labels.

An int (numpy's too, a 0-d integer array) picks one index and drops the axis, as a channel label
does; a slice (any step) keeps it; a list, tuple, range or 1-D array of ints, of channel labels
(or both) or of booleans (a mask, one per index of the axis) picks indices in the order given.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engine.plan import is_int as _is_int

__all__ = ["AxisValue", "axis_value", "drops_axis"]

AxisValue = int | str | slice | list[int | str] | None
"""An axis's selection once parsed (a mask as the indices it marks)."""

_KINDS = {"bool": "booleans", "int": "ints", "label": "channel labels"}
_EXPECTED = "an int, a slice, a channel label, a list of ints or labels, or a boolean mask"


def _scalar(value: object) -> object:
    """A 0-d array as its one item (numpy indexing takes ``np.array(2)`` as ``2``)."""
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def drops_axis(value: object) -> bool:
    """Whether a named selection ``value`` drops its axis (an int or a channel label)."""
    value = _scalar(value)
    return isinstance(value, str) or _is_int(value)


def axis_value(axis: str, value: object, size: int) -> AxisValue:
    """``value`` selecting along ``axis`` (of ``size``) in one of the forms of
    :data:`AxisValue` (a mask as the indices it marks); a ``TypeError``, ``ValueError`` or
    ``IndexError`` (a mask of another length) naming the axis and the value otherwise. Ints
    are not checked against ``size`` here."""
    one = _scalar(value)
    if one is None:
        return None
    if isinstance(one, str):
        return str(one)
    if isinstance(one, bool | np.bool_):
        raise TypeError(
            f"axis {axis!r}: a single boolean selects nothing, got {value!r}: a mask takes one "
            f"boolean per index ({size})"
        )
    if _is_int(one):
        return operator.index(one)  # type: ignore[arg-type]
    if isinstance(one, slice):
        return _slice(axis, one, size)
    if isinstance(one, np.ndarray):
        if one.ndim != 1:
            raise TypeError(
                f"axis {axis!r}: a list selection must be 1-D, got {value!r} (shape {one.shape})"
            )
        return _items(axis, one.tolist(), value, size)
    if isinstance(one, Sequence) and not isinstance(one, bytes | bytearray):
        return _items(axis, list(one), value, size)
    raise TypeError(f"axis {axis!r}: expected {_EXPECTED}, got {value!r}")


def _slice(axis: str, value: slice, size: int) -> slice:
    try:
        value.indices(size)
    except TypeError:
        raise TypeError(
            f"axis {axis!r}: slice bounds and step must be ints or None, got {value!r}"
        ) from None
    except ValueError:
        raise ValueError(f"axis {axis!r}: a slice step cannot be zero, got {value!r}") from None
    return value


def _items(axis: str, items: list[Any], value: object, size: int) -> list[int | str]:
    """A list selection's items: ints, labels, or a mask's ``True`` positions."""
    items = [_scalar(v) for v in items]
    kinds = {_kind(axis, v, value) for v in items}
    if kinds == {"bool"}:
        if len(items) != size:
            raise IndexError(
                f"axis {axis!r}: a boolean mask needs one value per index of the axis ({size}), "
                f"got {len(items)}: {value!r}"
            )
        return [i for i, v in enumerate(items) if v]
    if "bool" in kinds and len(kinds) > 1:  # (ints and labels: each names one index)
        mixed = " and ".join(_KINDS[k] for k in sorted(kinds))
        raise TypeError(
            f"axis {axis!r}: a boolean mask takes booleans only (one per index), {value!r} "
            f"mixes {mixed}"
        )
    return [str(v) if isinstance(v, str) else operator.index(v) for v in items]


def _kind(axis: str, item: object, value: object) -> str:
    if isinstance(item, str):
        return "label"
    if isinstance(item, bool | np.bool_):
        return "bool"
    if _is_int(item):
        return "int"
    raise TypeError(
        f"axis {axis!r}: list items must be ints, channel labels or booleans (a mask), got "
        f"{item!r} in {value!r}"
    )
