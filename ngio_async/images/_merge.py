"""``write(..., merge=...)``: a patch combined with what is stored where it goes, as ngio's
``set_array(..., merge=...)`` combines them: ``"max"``, ``"min"``, ``"sum"``,
``"keep_nonzero"`` (the patch where it is not 0, the stored pixels elsewhere) or a function
``f(stored, patch) -> array``.

The merge happens inside each stored object's own read-modify-write
(:func:`~ngio_async.images._write.write_region`): the object is read once, the rule applied to
its stored pixels of the selection and the patch's, and the result stored under the object's
lock file (local disk) or put conditional on the version read (S3, GCS, Azure, memory; read and
merged again on a conflict). So merges into the same pixels at once, from tasks, threads, opens
or processes, all land (ngio's do not: it reads the selection, then writes it), and a merge
costs one GET per object touched (the selection's read and then the write's own read were two
per partial object). Whole-selection refusals come before any I/O: an unknown rule, a function
that cannot take two arguments, data that does not broadcast to the selection. (A conditional
put found stored with the bytes it sent is taken as landed only for ``"max"``, ``"min"`` and
``"keep_nonzero"``: another writer's sum may give the same bytes; so a sum whose put's answer
was lost, and the resend refused, may be added twice: a rare fault, against a common race.)

The rule runs on each object's part, so a function must be elementwise (ngio's are): the
stored pixels and the patch it gets are the same-shaped part of the selection (a strided
selection's pixels as 1-D arrays; in worker threads, several objects at once; again on a
conflict), and a result of another shape is refused. Whether a Python function is
elementwise cannot be told without calling it on the data, so none is given the whole
selection any more (that needed the read of all of it first, and lost concurrent merges).

A ``"sum"`` of integers is exact (up to 64 bits, signed or not: numpy would add ``uint64`` and
``int64`` as ``float64``), and a result the data type cannot hold is refused as every write
refuses it (ngio wraps it around). Such a refusal depends on the stored pixels, so it comes in
the read-modify-write of the object where it occurs: that object is not written; in a merge of
several objects, others may have been merged already (as after any failed write of several).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..engine import normalize_selection
from ._write import fit_data, out_of_range, write_region

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
    from ..tables import Roi
    from ._dataset import Dataset
    from ._level import Level
    from ._write import AfterWrite

__all__ = ["MERGE_RULES", "Merge", "merge_write", "merge_write_roi"]

Merge = Literal["max", "min", "sum", "keep_nonzero"] | Callable[[Any, Any], "ArrayLike"]
Rule = Callable[[Any, Any], "ArrayLike"]


class SumOutOfRange(ValueError):
    """A ``"sum"`` of integers that the stored data type cannot hold: its exact extremes."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(f"sums {low}..{high} out of range")
        self.low, self.high = low, high


def _sum(stored: NDArray[Any], patch: NDArray[Any]) -> NDArray[Any]:
    if stored.dtype.kind in "iu" and patch.dtype.kind in "biu":
        return _exact_sum(stored, patch)
    # floats: as numpy adds them, but at least in float64 (the same sums, correctly rounded
    # once cast back), so that a float32 sum past float32 is refused as a plain write's
    # values are, not stored as infinity
    wide = np.result_type(stored.dtype, patch.dtype)
    if wide.kind == "f" and wide.itemsize < 8:
        wide = np.dtype(np.float64)
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


#: the rules whose result merged again with the same patch is the same (one conditional put
#: refused, then found stored, may be taken as landed: see ``AsyncStore.update``)
IDEMPOTENT = frozenset({"max", "min", "keep_nonzero"})


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
    take a third argument, ``ctx``), or an ``async def`` one (its coroutine is no pixels),
    before any I/O."""
    call = vars(type(fn)).get("__call__")
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call):
        raise TypeError(
            f"merge function {getattr(fn, '__name__', fn)!r} is an async function: merge calls "
            "a plain f(stored, patch) -> array (in worker threads)"
        )
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise TypeError(
            f"merge function {getattr(fn, '__name__', fn)!r} is called as f(stored, patch) "
            "(ngio's f(existing, patch, ctx) has no ctx here: drop it or give it a default)"
        ) from None
    except ValueError:  # no signature to read (some builtins): called as it is
        return


class _Combine:
    """``merge``'s rule applied to one stored object's part (in its read-modify-write, a
    worker thread): the merged pixels as the level's data type, refused as a plain write
    refuses values it cannot hold, or a function's result of another shape."""

    def __init__(
        self, fn: Rule, dtype: np.dtype[Any], label: str, merge: Merge, url: str = ""
    ) -> None:
        self.fn, self.dtype, self.label, self.merge, self.url = fn, dtype, label, merge, url
        # merging the result again with the same patch changes nothing (a sum does; a
        # function: not known)
        self.idempotent = isinstance(merge, str) and merge in IDEMPOTENT

    def __call__(self, stored: NDArray[Any], patch: NDArray[Any]) -> NDArray[Any]:
        try:
            out = np.asarray(self.fn(stored, patch))
        except SumOutOfRange as exc:  # refused as every write refuses it
            raise out_of_range(exc.low, exc.high, stored.dtype, self.label) from None
        except Exception as exc:
            name = getattr(self.merge, "__name__", self.merge)
            where = f"{self.label} of {self.url}" if self.url else self.label
            exc.add_note(f"merge function {name!r} on pixels of shape {stored.shape} ({where})")
            raise
        if out.shape != stored.shape:
            raise ValueError(
                f"merge function {getattr(self.merge, '__name__', self.merge)!r} gave shape "
                f"{out.shape} for pixels of shape {stored.shape} ({self.label}): it is applied "
                "to each stored object's part of the selection and must work elementwise"
            )
        fitted = fit_data(out, stored.shape, self.dtype, self.label)
        return fitted.astype(self.dtype, copy=False)  # (truncated as an assignment does)


async def merge_write(
    ds: Dataset,
    data: ArrayLike,
    level: int | str,
    pyramid: bool | Method | None,
    axes: dict[str, Any],
    merge: Merge,
) -> None:
    """Write ``data`` combined by ``merge`` with the pixels stored at the selection ``axes``
    (see :meth:`Dataset.write`), inside each stored object's own read-modify-write."""
    fn = rule_of(merge)
    index = ds._level_index(level)
    lvl = ds.levels[index]
    label = f"level {lvl.path!r}"
    combine = _Combine(fn, lvl.dtype, label, merge, ds.url)
    parts = _parts(ds, lvl, data, axes, merge)  # (refusals: before any I/O)

    async def write(after: AfterWrite | None) -> None:
        for region, piece, mask in parts:
            await write_region(lvl, region, piece, after, where=mask, merge=combine)

    cascade = ds._cascade(index, pyramid)
    await ds._landing(lvl, pyramid, cascade, lambda: ds.region_of(index, **axes), write)


def _parts(
    ds: Dataset, lvl: Level, data: ArrayLike, axes: dict[str, Any], merge: Merge
) -> list[tuple[Region, NDArray[Any], NDArray[np.bool_] | None]]:
    """The writes of a merge at the selection ``axes``: ``(region, data, mask)`` (``None``:
    all of the region), one per pick of a list selection; a ``ValueError`` naming the shapes
    when ``data`` does not broadcast to the selection's."""
    selection, pick = ds._selection(lvl, axes)
    picks: list[int | None] = [None] if pick is None else list(pick[1])
    at = 0
    if pick is not None:  # the shape of one pick, then the picks along their axis
        selection[pick[0]] = slice(0, 1)
        at = pick[0] - sum(1 for s in selection[: pick[0]] if isinstance(s, int))
    shape = list(normalize_selection(tuple(selection), lvl.shape).shape)
    if pick is not None:
        shape[at] = len(picks)
    sels = []
    for i in picks:
        if pick is not None and i is not None:
            selection[pick[0]] = slice(i, i + 1)
        sels.append(normalize_selection(tuple(selection), lvl.shape))
    given = np.asarray(data)
    try:
        value = np.broadcast_to(given, tuple(shape))
    except ValueError:
        raise ValueError(
            f"data of shape {given.shape} does not fit the selection of shape "
            f"{tuple(shape)} of level {lvl.path!r} of {ds.url} (merge={merge!r})"
        ) from None
    out: list[tuple[Region, NDArray[Any], NDArray[np.bool_] | None]] = []
    for k, sel in enumerate(sels):
        one = value if pick is None else value[(slice(None),) * at + (slice(k, k + 1),)]
        region_shape = tuple(r.stop - r.start for r in sel.region)
        if all(st == 1 for st in sel.steps):
            out.append((sel.region, np.reshape(one, region_shape), None))
            continue
        # strided: the selected pixels of the region's box, marked
        index = tuple(
            0 if ax in sel.drop_axes else slice(None, None, st) for ax, st in enumerate(sel.steps)
        )
        mask = np.zeros(region_shape, dtype=bool)
        mask[index] = True
        block = np.zeros(region_shape, dtype=one.dtype)
        block[index] = one
        out.append((sel.region, block, mask))
    return out


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
