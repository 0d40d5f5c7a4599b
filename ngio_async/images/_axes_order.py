"""``axes_order=``: arrays by axis name, as ngio's ``get_array(axes_order=...)`` gives them.

A read names the axes it wants, in the order it wants them: the axes a read keeps (an int, a
channel label drops an axis, as in numpy) are put in that order, axes it lacks are added with
size 1, and kept axes it leaves out are dropped, which only a size-1 axis may be (ngio's rule:
squeeze, transpose, expand). A write takes its data in the same order and undoes that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import ArrayLike, NDArray

    from ..tables import Roi
    from ._dataset import Dataset
    from ._rois import RoiRead

__all__ = [
    "check_order",
    "from_order",
    "kept_axes",
    "kept_by_region",
    "roi_data_from_order",
    "roi_read_in_order",
    "to_order",
]


def check_order(order: Sequence[str]) -> tuple[str, ...]:
    """``order`` as a tuple of distinct axis names (``ValueError`` / ``TypeError`` otherwise)."""
    names = tuple(order)  # a string: one axis per letter ("czyx")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise TypeError(f"axes_order: axis names must be non-empty strings, got {bad[0]!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"axes_order names {dup[0]!r} twice: {list(names)}")
    return names


def kept_axes(axes: Sequence[str], selection: Mapping[str, Any]) -> tuple[str, ...]:
    """The axes a :meth:`Dataset.read` of ``selection`` keeps: an int or a channel label drops
    its axis."""

    from ._named_select import drops_axis

    return tuple(a for a in axes if not drops_axis(selection.get(a)))


def kept_by_region(axes: Sequence[str], region: Sequence[Any]) -> tuple[str, ...]:
    """The axes a read of the level selection ``region`` keeps (its ints drop theirs)."""
    return tuple(a for a, s in zip(axes, region, strict=True) if not isinstance(s, int))


def _squeezed(
    data: NDArray[Any], names: Sequence[str], drop: Sequence[str], what: str
) -> NDArray[Any]:
    at = tuple(names.index(a) for a in drop)
    big = [f"{names[i]!r} (size {data.shape[i]})" for i in at if data.shape[i] != 1]
    if big:
        raise ValueError(
            f"axes_order {what}: only a size-1 axis can be left out, and {', '.join(big)} "
            "is not: select one index of it, or name it in axes_order"
        )
    return np.squeeze(data, axis=at) if at else data


def to_order(data: NDArray[Any], axes: Sequence[str], order: Sequence[str]) -> NDArray[Any]:
    """``data`` (axes ``axes``) with the axes of ``order``: kept axes left out of ``order``
    dropped (size 1 only), the rest transposed into its order, its other axes added (size 1)."""
    order = check_order(order)
    if data.ndim != len(axes):
        raise ValueError(f"data has {data.ndim} axes, the read gave {len(axes)}: {list(axes)}")
    drop = [a for a in axes if a not in order]
    out = _squeezed(data, list(axes), drop, f"{list(order)} of the axes read {list(axes)}")
    left = [a for a in axes if a in order]
    out = np.transpose(out, [left.index(a) for a in order if a in left])
    return np.expand_dims(out, tuple(i for i, a in enumerate(order) if a not in left))


def from_order(data: ArrayLike, axes: Sequence[str], order: Sequence[str]) -> NDArray[Any]:
    """The inverse of :func:`to_order`: ``data`` given with the axes of ``order``, as an array
    of the axes ``axes`` a write selects (axes of ``order`` the write lacks dropped, size 1
    only; axes it has that ``order`` lacks added with size 1)."""
    order = check_order(order)
    arr = np.asarray(data)
    if arr.ndim == 0:  # a single value fills the selection, whatever the order
        return arr
    if arr.ndim != len(order):
        raise ValueError(
            f"data has {arr.ndim} axes (shape {arr.shape}), axes_order names {len(order)}: "
            f"{list(order)}"
        )
    drop = [a for a in order if a not in axes]
    big = [
        f"{a!r} (size {arr.shape[order.index(a)]})" for a in drop if arr.shape[order.index(a)] != 1
    ]
    if big:  # (an axis the write lacks; maybe one it has left out of the order too)
        unnamed = [a for a in axes if a not in order]
        raise ValueError(
            f"axes_order {list(order)} of a write of axes {list(axes)}: {', '.join(big)} is "
            "no axis of the write (only a size-1 axis it lacks can be named)"
            + (
                f", and {unnamed} {'is' if len(unnamed) == 1 else 'are'} not named"
                if unnamed
                else ""
            )
        )
    out = _squeezed(arr, list(order), drop, f"{list(order)} of a write of axes {list(axes)}")
    left = [a for a in order if a in axes]
    out = np.transpose(out, [left.index(a) for a in axes if a in left])
    return np.expand_dims(out, tuple(i for i, a in enumerate(axes) if a not in left))


def roi_read_in_order(read: RoiRead, axes: Sequence[str], order: Sequence[str]) -> RoiRead:
    """``read`` with its ``data`` (and ``labels``, on the same grid) in ``order``."""
    from dataclasses import replace

    kept = kept_by_region(axes, read.region)
    labels = None if read.labels is None else to_order(read.labels, kept, order)
    return replace(read, data=to_order(read.data, kept, order), labels=labels)


def roi_data_from_order(
    image: Dataset,
    roi: Roi,
    data: ArrayLike,
    level: int | str,
    axes: dict[str, Any],
    order: Sequence[str],
) -> NDArray[Any]:
    """``data`` given in ``order`` as the array a write of ``roi``'s box takes."""
    from ._rois import roi_region

    region = roi_region(image, level, roi, axes)
    return from_order(data, kept_by_region(image.axes, region), order)
