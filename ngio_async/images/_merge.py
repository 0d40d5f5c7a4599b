"""``write(..., merge=...)``: a patch combined with what is stored where it goes, as ngio's
``set_array(..., merge=...)`` combines them: ``"max"``, ``"min"``, ``"sum"``,
``"keep_nonzero"`` (the patch where it is not 0, the stored pixels elsewhere) or a function
``f(stored, patch) -> array``.

The selection is read, combined and written under one lock per dataset object, so merges of
one open image (tasks of a stream, threads of the blocking API) never lose each other's
pixels; merges through separate opens or processes into the same pixels at once are not
coordinated (ngio's neither). A ``"sum"`` of integers is computed wide and a result the data
type cannot hold is refused, as every write refuses it (ngio wraps it around).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ..engine.pyramid import Method
    from ..tables import Roi
    from ._dataset import Dataset

__all__ = ["MERGE_RULES", "Merge", "merge_write", "merge_write_roi"]

Merge = Literal["max", "min", "sum", "keep_nonzero"] | Callable[[Any, Any], "ArrayLike"]


def _sum(stored: NDArray[Any], patch: NDArray[Any]) -> NDArray[Any]:
    wide = np.result_type(stored.dtype, patch.dtype)
    if wide.kind in "iu":  # computed wide: a sum past the data type is refused by the write
        wide = np.dtype(np.int64 if wide.kind == "i" or stored.dtype.kind == "i" else np.uint64)
    out: NDArray[Any] = np.add(stored, patch, dtype=wide)
    return out


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
        out = np.asarray(fn(stored, patch))
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
