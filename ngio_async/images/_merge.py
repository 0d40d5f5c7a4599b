"""``write(..., merge=...)``: a patch combined with what is stored where it goes, as ngio's
``set_array(..., merge=...)`` combines them: ``"max"``, ``"min"``, ``"sum"``,
``"keep_nonzero"`` (the patch where it is not 0, the stored pixels elsewhere) or a function
``f(stored, patch) -> array``.

The selection is read, combined and written under one lock per dataset object, so merges of
one open image (tasks of a stream, threads of the blocking API) never lose each other's
pixels; merges through separate opens or processes into the same pixels at once are not
coordinated (ngio's neither). A ``"sum"`` of integers is exact (up to 64 bits, signed or not:
numpy would add ``uint64`` and ``int64`` as ``float64``) and a result the data type cannot hold
is refused, as every write refuses it (ngio wraps it around).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np

from ._write import out_of_range

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ..engine.pyramid import Method
    from ..tables import Roi
    from ._dataset import Dataset

__all__ = ["MERGE_RULES", "Merge", "merge_write", "merge_write_roi"]

Merge = Literal["max", "min", "sum", "keep_nonzero"] | Callable[[Any, Any], "ArrayLike"]


class SumOutOfRange(ValueError):
    """A ``"sum"`` of integers that the stored data type cannot hold: its exact extremes."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"sums {low}..{high} out of range")
        self.low, self.high = low, high


def _sum(stored: NDArray[Any], patch: NDArray[Any]) -> NDArray[Any]:
    if stored.dtype.kind in "iu" and patch.dtype.kind in "biu":
        return _exact_sum(stored, patch)
    wide = np.result_type(stored.dtype, patch.dtype)  # floats: as numpy adds them
    out: NDArray[Any] = np.add(stored, patch, dtype=wide)
    return out


def _sign_magnitude(a: NDArray[Any]) -> tuple[NDArray[np.bool_], NDArray[np.uint64]]:
    """Integers as a sign and a ``uint64`` magnitude: exact (``|-2**63|`` fits)."""
    if a.dtype.kind != "i":
        return np.zeros(a.shape, dtype=bool), a.astype(np.uint64)
    wide = a.astype(np.int64)
    neg = wide < 0
    # -(x + 1) + 1: -2**63 has no int64 negation; the branch not taken wraps, unused
    magnitude = np.where(
        neg, (-(wide + 1)).astype(np.uint64) + np.uint64(1), wide.astype(np.uint64)
    )
    return neg, magnitude


def _exact_sum(stored: NDArray[Any], patch: NDArray[Any]) -> NDArray[Any]:
    """``stored + patch`` exactly, as ``stored``'s data type, for integers up to 64 bits of
    either signedness (numpy adds ``uint64`` and ``int64`` as ``float64``: rounded past
    2**53; and wraps sums past 64 bits); :class:`SumOutOfRange` if the type cannot hold one."""
    # flat: never a numpy scalar (its arithmetic warns where the arrays' wraps, unused, here)
    neg_a, mag_a = _sign_magnitude(stored.reshape(-1))
    neg_b, mag_b = _sign_magnitude(patch.reshape(-1))
    same = neg_a == neg_b
    total = mag_a + mag_b  # (wraps: a carry past 2**64 - 1, told by ``total < mag_a``)
    a_bigger = mag_a >= mag_b
    magnitude = np.where(same, total, np.where(a_bigger, mag_a - mag_b, mag_b - mag_a))
    carry = same & (total < mag_a)
    neg = np.where(same | a_bigger, neg_a, neg_b) & ((magnitude != 0) | carry)  # (not -0)
    info = np.iinfo(stored.dtype)
    most = np.where(neg, np.uint64(-info.min), np.uint64(info.max))
    if (carry | (magnitude > most)).any():
        raise SumOutOfRange(*_extremes(neg, magnitude, carry))
    if info.min == 0:
        return magnitude.astype(stored.dtype).reshape(stored.shape)
    twos = np.where(neg, np.invert(magnitude) + np.uint64(1), magnitude)  # (0's: not taken)
    return twos.view(np.int64).astype(stored.dtype).reshape(stored.shape)


def _extremes(
    neg: NDArray[np.bool_], magnitude: NDArray[np.uint64], carry: NDArray[np.bool_]
) -> tuple[int, int]:
    """The least and greatest of the sums ``±(magnitude + carry * 2**64)``, as Python ints."""

    def largest(sel: NDArray[np.bool_]) -> int:
        over = sel & carry
        return 2**64 + int(magnitude[over].max()) if over.any() else int(magnitude[sel].max())

    def smallest(sel: NDArray[np.bool_]) -> int:
        under = sel & ~carry
        return int(magnitude[under].min()) if under.any() else 2**64 + int(magnitude[sel].min())

    pos = ~neg
    low = -largest(neg) if neg.any() else smallest(pos)
    high = largest(pos) if pos.any() else -smallest(neg)
    return low, high


MERGE_RULES: dict[str, Callable[[NDArray[Any], NDArray[Any]], NDArray[Any]]] = {
    "max": np.maximum,
    "min": np.minimum,
    "sum": _sum,
    "keep_nonzero": lambda stored, patch: np.where(patch != 0, patch, stored),
}

_LOCKS: weakref.WeakKeyDictionary[Dataset, anyio.Lock] = weakref.WeakKeyDictionary()


def rule_of(merge: Merge) -> Callable[[NDArray[Any], NDArray[Any]], ArrayLike]:
    """The function of ``merge`` (``ValueError`` naming the rules for an unknown name)."""
    if isinstance(merge, str):
        try:
            return MERGE_RULES[merge]
        except KeyError:
            raise ValueError(
                f"merge={merge!r}: a rule is one of {sorted(MERGE_RULES)} or a function "
                "f(stored, patch)"
            ) from None
    if callable(merge):
        _check_arity(merge)
        return merge
    raise TypeError(f"merge takes a rule name or a function f(stored, patch), got {merge!r}")


def _check_arity(fn: Callable[..., Any]) -> None:
    """Refuse a function that cannot be called as ``f(stored, patch)`` (ngio's merge functions
    take a third argument, ``ctx``), before any I/O."""
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise TypeError(
            f"merge function {getattr(fn, '__name__', fn)!r} is called as f(stored, patch) "
            "(ngio's f(existing, patch, ctx) has no ctx here: drop it or give it a default)"
        ) from None
    except ValueError:  # no signature to read (some builtins): called as it is
        return


async def merge_write(
    ds: Dataset,
    data: ArrayLike,
    level: int | str,
    pyramid: Any,
    axes: dict[str, Any],
    merge: Merge,
) -> None:
    """Write ``data`` combined by ``merge`` with the pixels stored at the selection ``axes``
    (see :meth:`Dataset.write`)."""
    fn = rule_of(merge)
    lock = _LOCKS.get(ds)
    if lock is None:
        lock = _LOCKS[ds] = anyio.Lock()
    async with lock:
        stored = await ds.read(level, **axes)
        where = f"level {ds.levels[ds._level_index(level)].path!r} of {ds.url}"
        given = np.asarray(data)
        try:
            patch = np.broadcast_to(given, stored.shape)
        except ValueError:
            raise ValueError(
                f"data of shape {given.shape} does not fit the selection of shape "
                f"{stored.shape} of {where} (merge={merge!r})"
            ) from None
        try:
            out = np.asarray(fn(stored, patch))
        except SumOutOfRange as exc:  # refused as every write refuses it
            path = ds.levels[ds._level_index(level)].path
            raise out_of_range(exc.low, exc.high, stored.dtype, f"level {path!r}") from None
        if out.shape != stored.shape:
            raise ValueError(
                f"merge function gave shape {out.shape}, the selection of {where} is {stored.shape}"
            )
        await ds.write(out, level, pyramid, **axes)


async def merge_write_roi(
    ds: Dataset,
    roi: Roi,
    data: ArrayLike,
    level: int | str,
    pyramid: bool | Method | None,
    axes: dict[str, Any],
    merge: Merge,
) -> None:
    """:func:`merge_write` at the pixels ``read_roi`` reads for ``roi``."""
    from ._rois import roi_region

    region = roi_region(ds, level, roi, axes)
    named = dict(zip(ds.axes, region, strict=True))
    await merge_write(ds, data, level, pyramid, named, merge)
