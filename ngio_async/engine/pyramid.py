"""Pyramid kernels and planning (pure: numpy only, no I/O).

- :func:`downsample` reduces a block by integer factors per axis (``mean``, ``nearest``,
  ``mode``). Windows are counted from the block's origin; a size that is not a multiple of the
  factor (the image edge) gives a last, partial window reduced over its valid pixels only, so the
  output has ``ceil(n / f)`` pixels per axis.
- :func:`pyramid_shapes` gives the level shapes those semantics produce.
- ``"ngio"`` is not a window reduction: each target pixel takes one source pixel chosen from
  the two levels' shapes (and the source level's chunks), as ngio's ``Label.consolidate()``
  does (:func:`ngio_index`); plans carry those indices and :func:`reduce_step` applies them.
- :func:`pyramid_plan` splits the building of each level into tiles: one
  :class:`PyramidStep` per target tile (a region of level ``L``) with the source region (in level
  ``L - 1``, or in level 0) it is computed from. Target tiles are aligned to multiples of ``tile``
  from the origin, so when ``tile`` is a multiple of the target's chunk (or shard) shape every write
  covers whole chunks, except at the array's far edge. Source regions start on window boundaries
  (``target.start * factor``), so a tile computed from its source region equals the same region of
  the whole level reduced at once: tiles stitch exactly. ``regions=`` (changed level-0 regions)
  restricts each level to the tiles whose pixels depend on a change.

A writer builds level ``L`` from level ``L - 1`` tile by tile, and never holds a whole level::

    for level_plan in pyramid_plan(shape0, factors, tile=(1, 1, 1024, 1024)):
        for step in level_plan:
            block = await levels[step.source_level].read(step.source)
            await levels[step.level].write(step.target, downsample(block, step.factors, "mean"))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

__all__ = [
    "LevelPlan",
    "Method",
    "PyramidStep",
    "changed_regions",
    "check_levels_shrink",
    "downsample",
    "ngio_index",
    "ngio_maps",
    "pyramid_plan",
    "pyramid_shapes",
    "reduce_step",
    "region_covered",
    "region_footprint",
    "sampled",
    "source_extent",
]

Region = tuple[slice, ...]
Method = Literal["mean", "nearest", "mode", "ngio"]
#: per axis, the source pixel each target pixel takes (the ``"ngio"`` method)
Index = tuple["NDArray[np.intp]", ...]
_METHODS: tuple[str, ...] = get_args(Method)


# ------------------------------------------------------------------------------------ kernels
def _check_factors(factors: Sequence[int], ndim: int) -> tuple[int, ...]:
    out = tuple(int(f) for f in factors)
    if len(out) != ndim:
        raise ValueError(f"factors has {len(out)} values, the block has {ndim} axes")
    if any(f < 1 for f in out) or any(int(f) != f for f in factors):
        raise ValueError(f"factors must be integers >= 1, got {tuple(factors)}")
    return out


def _pieces(
    shape: tuple[int, ...], factors: tuple[int, ...]
) -> Iterator[tuple[Region, Region, tuple[int, ...]]]:
    """Split a block into at most ``2**ndim`` pieces of uniform window size.

    Per axis, the part covered by whole windows and the last partial window (if any). Yields
    (region in the block, region in the output, window shape of the piece).
    """
    per_axis: list[list[tuple[slice, slice, int]]] = []
    for n, f in zip(shape, factors, strict=True):
        whole = n // f
        options = []
        if whole:
            options.append((slice(0, whole * f), slice(0, whole), f))
        if n > whole * f:
            options.append((slice(whole * f, n), slice(whole, whole + 1), n - whole * f))
        per_axis.append(options)
    for combo in product(*per_axis):
        yield (
            tuple(c[0] for c in combo),
            tuple(c[1] for c in combo),
            tuple(c[2] for c in combo),
        )


def _windowed(piece: NDArray[Any], window: tuple[int, ...]) -> NDArray[Any]:
    """View a piece of uniform windows as ``(n0, w0, n1, w1, ...)``."""
    shape: list[int] = []
    for n, w in zip(piece.shape, window, strict=True):
        shape += [n // w, w]
    return piece.reshape(shape)


def _round_half_even_div(total: NDArray[Any], count: int) -> NDArray[Any]:
    """``total / count`` rounded half to even, in exact integer arithmetic."""
    q = total // count
    r = total - q * count
    twice = 2 * r
    up = (twice > count) | ((twice == count) & (q % 2 == 1))
    return np.asarray(q + up.astype(q.dtype if q.dtype != object else np.int64))


def _mean_piece(win: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
    axes = tuple(range(1, win.ndim, 2))
    count = math.prod(win.shape[a] for a in axes)
    if dtype == np.bool_:
        total = win.sum(axis=axes, dtype=np.int64)
        return np.asarray(2 * total >= count)
    if dtype.kind in "iu" and dtype.itemsize <= 2 and count <= 32768:
        if count == 4 and win.ndim >= 4 and win.shape[-1] == win.shape[-3] == 2:
            return _mean_2x2(win, dtype)
        return _mean_small_int(win, dtype, axes, count)
    if dtype.kind in "iu":
        if dtype.itemsize < 8:  # exact in int64 for any realistic window
            total = win.sum(axis=axes, dtype=np.int64)
        else:  # 64-bit: exact with Python ints (slow, but never wrong)
            total = win.astype(object).sum(axis=axes)
        mean = _round_half_even_div(np.asarray(total), count)
        info = np.iinfo(dtype)
        return np.asarray(np.clip(mean, info.min, info.max)).astype(dtype)
    if dtype.kind in "fc":  # summed offset by offset: the same order whatever the block's shape
        acc = np.result_type(dtype, np.float64)
        views = _window_offsets(win, axes)
        total = np.array(next(views), dtype=acc)
        for view in views:
            np.add(total, view, out=total)
        total /= count
        return total.astype(dtype)
    raise TypeError(f"mean is not defined for dtype {dtype}")


def _window_offsets(win: NDArray[Any], axes: tuple[int, ...]) -> Iterator[NDArray[Any]]:
    """The pixels at each offset inside the windows (one value per window), offsets in C
    order: adding them one after another sums every window in one fixed order (numpy's
    ``sum`` over several axes orders its additions by the block's shape and strides, so float
    means of one window differed in the last bit between a tile and the whole level)."""
    for offset in product(*(range(win.shape[a]) for a in axes)):
        index: list[Any] = [slice(None)] * win.ndim
        for a, o in zip(axes, offset, strict=True):
            index[a] = o
        yield np.asarray(win[tuple(index)])


def _mean_small_int(
    win: NDArray[Any], dtype: np.dtype[Any], axes: tuple[int, ...], count: int
) -> NDArray[Any]:
    """8/16-bit integers: sum the window offsets into a 32-bit accumulator (exact: at most
    32768 * 65535 < 2**31 for signed, < 2**32 unsigned), round half to even. Equal to the
    general int64 path, with a fraction of its memory traffic."""
    acc_dtype = np.dtype(np.uint32 if dtype.kind == "u" else np.int32)
    views = _window_offsets(win, axes)
    total = next(views).astype(acc_dtype)
    for view in views:
        np.add(total, view, out=total, casting="unsafe")
    if (
        count > 1 and count & (count - 1) == 0
    ):  # a power of two (2x2, 2x2x2): shifts and masks, no division
        half = count >> 1
        r = total & acc_dtype.type(count - 1)
        np.right_shift(total, count.bit_length() - 1, out=total)  # floor, also when negative
        r += total & acc_dtype.type(1)  # r + (q odd) > half  <=>  round half to even goes up
        total += r > half
        return total.astype(dtype)
    q, r = np.divmod(total, acc_dtype.type(count))
    twice = r.astype(acc_dtype) * 2
    up = (twice > count) | ((twice == count) & (q % 2 == 1))
    q += up.astype(acc_dtype)
    return np.asarray(q).astype(dtype)


#: bytes of the row sums :func:`_mean_2x2` holds at once (they stay in a core's cache)
_ROWS_BYTES = 1 << 19


def _mean_2x2(win: NDArray[Any], dtype: np.dtype[Any]) -> NDArray[Any]:
    """:func:`_mean_small_int` of 2x2 windows on the last two axes (``win`` of shape ``(...,
    ny, 2, nx, 2)``, the other windows 1): the same values, about 5x faster. Row pairs are
    summed into float32 rows, then column pairs, a block of output rows at a time (so the sums
    stay in cache), quartered and rounded half to even by ``rint``: exact, as every sum of
    four 8/16-bit integers and its quarter are float32 values (5 passes over the rows; 32-bit
    integer sums rounded with shifts took 8, 1.6x the CPU)."""
    ny, nx = win.shape[-4], win.shape[-2]
    planes = win.reshape(*win.shape[:-4:2], ny, 2, 2 * nx)  # the size-1 windows dropped
    out = np.empty((*planes.shape[:-3], ny, nx), dtype=dtype)
    rows = max(1, min(ny, _ROWS_BYTES // (8 * nx)))
    pairs = np.empty((rows, 2 * nx), dtype=np.float32)
    total = np.empty((rows, nx), dtype=np.float32)
    for lead in np.ndindex(*planes.shape[:-3]):
        src, dst = planes[lead], out[lead]
        for r in range(0, ny, rows):
            n = min(rows, ny - r)
            p, t = pairs[:n], total[:n]
            np.add(src[r : r + n, 0], src[r : r + n, 1], out=p, dtype=np.float32)
            np.add(p[:, 0::2], p[:, 1::2], out=t)
            t *= 0.25
            np.rint(t, out=t)
            dst[r : r + n] = t
    return out


def _mode_piece(piece: NDArray[Any], window: tuple[int, ...]) -> NDArray[Any]:
    """Most frequent value per window, ties to the smallest value (vectorised over windows)."""
    k = math.prod(window)
    if k <= _PAIRWISE_MAX:
        return _mode_pairwise(piece, window)
    win = _windowed(piece, window)
    out_shape = win.shape[0::2]
    flat = win.transpose(*range(0, win.ndim, 2), *range(1, win.ndim, 2)).reshape(-1, k)
    return _mode_sorted(flat).reshape(out_shape)


#: windows up to this size count equal pairs (k*(k-1)/2 comparisons); larger ones sort
_PAIRWISE_MAX = 16


def _mode_pairwise(piece: NDArray[Any], window: tuple[int, ...]) -> NDArray[Any]:
    """Small windows: one strided view per window offset, count equal pairs, keep the best."""
    cols = [
        piece[tuple(slice(o, None, w) for o, w in zip(offsets, window, strict=True))]
        for offsets in product(*(range(w) for w in window))
    ]
    if len(cols) == 1:
        return cols[0].copy()
    shape = cols[0].shape
    if piece.dtype.kind in "fc":  # NaN equals nothing, not even itself
        counts = [np.asarray(~np.isnan(c), dtype=np.uint8) for c in cols]
    else:
        counts = [np.ones(shape, dtype=np.uint8) for _ in cols]
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            eq = cols[i] == cols[j]
            counts[i] += eq
            counts[j] += eq
    best_val = cols[0].copy()
    best_cnt = counts[0].copy()
    for val, cnt in zip(cols[1:], counts[1:], strict=True):
        better = (cnt > best_cnt) | ((cnt == best_cnt) & (val < best_val))
        np.copyto(best_val, val, where=better)
        np.copyto(best_cnt, cnt, where=better)
    return best_val


def _mode_sorted(flat: NDArray[Any]) -> NDArray[Any]:
    """Large windows: sort each window, then find the longest run of equal values."""
    k = flat.shape[1]
    s = np.sort(flat, axis=1)
    pos = np.arange(k)
    start = np.empty(s.shape, dtype=bool)
    start[:, 0] = True
    np.not_equal(s[:, 1:], s[:, :-1], out=start[:, 1:])
    # index where each element's run starts, then the running length of that run
    run_start = np.maximum.accumulate(np.where(start, pos, 0), axis=1)
    run_len = pos - run_start
    # the first position reaching the longest run ends the smallest of the tied values
    best = np.argmax(run_len, axis=1)
    return np.asarray(s[np.arange(s.shape[0]), best])


def downsample(block: NDArray[Any], factors: Sequence[int], method: Method) -> NDArray[Any]:
    """Reduce ``block`` by an integer factor per axis (``1`` leaves the axis untouched).

    Windows start at the block's origin; the output has ``ceil(n / f)`` pixels per axis, the last
    window of an axis covering only the ``n % f`` pixels left (if any).

    :param method:
        - ``"mean"``: the mean of each window's valid pixels in the block's dtype: integers round
          half to even (exactly, no float round-off) and stay in the dtype's range, floats and
          complex are averaged in (at least) float64, bool is ``mean >= 0.5``;
        - ``"nearest"``: the first pixel of each window (``block[::f0, ::f1, ...]``);
        - ``"mode"``: the most frequent value of each window, ties to the smallest value (for
          label images); vectorised (sort each window, find the longest run).
    :raises ValueError: bad factors or method. :raises TypeError: ``mean`` of a non-numeric dtype.
    """
    arr = np.asarray(block)
    fs = _check_factors(factors, arr.ndim)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if method == "ngio":
        raise ValueError(
            "method 'ngio' picks pixels by the levels' shapes, not per window: use the steps of "
            "pyramid_plan(..., method='ngio') with reduce_step"
        )
    if method == "nearest":
        return arr[tuple(slice(None, None, f) for f in fs)].copy()
    if all(f == 1 for f in fs):
        return arr.copy()
    if method == "mean" and arr.dtype.kind not in "biufc":
        raise TypeError(f"mean is not defined for dtype {arr.dtype}")
    pieces = list(_pieces(arr.shape, fs))
    if method == "mean" and len(pieces) == 1:  # whole windows only: no copy into an output
        return _mean_piece(_windowed(arr, pieces[0][2]), arr.dtype)
    out_shape = tuple(-(-n // f) for n, f in zip(arr.shape, fs, strict=True))
    out = np.empty(out_shape, dtype=arr.dtype)
    for src, dst, window in pieces:
        if method == "mean":
            out[dst] = _mean_piece(_windowed(arr[src], window), arr.dtype)
        else:
            out[dst] = _mode_piece(arr[src], window)
    return out


# ------------------------------------------------------------------------------------ ngio
def ngio_index(n: int, m: int, chunk: int, *, squeeze: bool = False) -> NDArray[np.intp]:
    """The source pixel of each of the ``m`` pixels of an axis of ``n`` that ngio 1.1's
    ``Label.consolidate()`` builds (its default ``dask`` mode; ``"auto"`` too):
    ``scipy.ndimage.zoom(order=0, grid_mode=True)`` block by block over the source level's
    ``chunk`` (rounded to the zoom), so target pixel ``j`` of a block of ``b`` pixels that gives
    ``l`` takes ``floor((j + 0.5) * b / l)`` of that block (in float64, as scipy). Where
    ``n = f * m`` that is pixel ``f // 2`` of each window (the second of 2, the middle of 3);
    elsewhere it depends on the chunks. ``squeeze``: an axis before the last two (a block of
    one pixel there is not zoomed).

    :raises ValueError: the blocks give another count than ``m`` (ngio's zoom fails there:
        chunks smaller than the factor).
    """
    if m == n:
        return np.arange(n, dtype=np.intp)
    s = np.float64(m) / np.float64(n)
    block = int(max(1.0, float(np.round(min(chunk, n) * s) / s)))
    declared = int(np.ceil(block * s))  # dask's idea of each block's output
    parts = []
    for k, start in enumerate(range(0, n, block)):
        if k * declared >= m:
            break
        b = min(block, n - start)
        count = 1 if b == 1 and squeeze else round(float(b * s))
        j = np.arange(count, dtype=np.float64)
        local = np.floor((j + 0.5) * (np.float64(b) / np.float64(max(count, 1))) - 0.5 + 0.5)
        parts.append(start + local.astype(np.intp)[: m - k * declared])
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
    if len(out) != m:
        raise ValueError(
            f"ngio's nearest zoom of {n} pixels (chunks of {chunk}) gives {len(out)}, not {m}"
        )
    return out


def ngio_maps(
    shapes: Sequence[Sequence[int]],
    chunks: Sequence[Sequence[int]] | None = None,
    *,
    names: tuple[Sequence[str], Sequence[str], str] | None = None,
) -> list[Index]:
    """``[i]``: per axis, the pixel of level ``i`` each pixel of level ``i + 1`` takes
    (:func:`ngio_index`); ``chunks[i]``: level ``i``'s (inner) chunk shape (``None``: whole
    levels). ``names``: the levels' paths, the axes' names and where they are (the store's
    URL), for the error (else their numbers)."""
    out = []
    for i in range(len(shapes) - 1):
        src, dst = shapes[i], shapes[i + 1]
        ck = src if chunks is None else chunks[i]
        last = len(src) - 2
        per_axis = []
        for ax, (n, m, c) in enumerate(zip(src, dst, ck, strict=True)):
            try:
                per_axis.append(ngio_index(int(n), int(m), int(c), squeeze=ax < last))
            except ValueError as exc:
                if names is None:
                    raise ValueError(f"level {i + 1}, axis {ax}: {exc}") from None
                paths, axes, where = names
                raise ValueError(
                    f"level {paths[i + 1]!r} of {where}, axis {axes[ax]!r}: {exc}"
                ) from None
        out.append(tuple(per_axis))
    return out


def sampled(region: Region, index: Index) -> tuple[Region, Index]:
    """The target pixels whose source pixel lies in ``region`` of the source, and those
    source pixels relative to ``region``'s start (``block[np.ix_(*picks)]``)."""
    target = []
    picks = []
    for r, idx in zip(region, index, strict=True):
        a = int(np.searchsorted(idx, r.start, "left"))
        b = max(a, int(np.searchsorted(idx, r.stop, "left")))
        target.append(slice(a, b))
        picks.append(idx[a:b] - r.start)
    return tuple(target), tuple(picks)


def source_extent(region: Region, index: Index) -> Region:
    """The source pixels that ``region`` of the target takes, as one box per axis."""
    return tuple(
        slice(int(idx[r.start]), int(idx[r.stop - 1]) + 1) if r.stop > r.start else slice(0, 0)
        for r, idx in zip(region, index, strict=True)
    )


def reduce_step(block: NDArray[Any], step: PyramidStep, method: Method) -> NDArray[Any]:
    """``step.target`` computed from ``block`` (its ``step.source``)."""
    if step.index is not None:
        return np.asarray(block)[np.ix_(*step.index)]
    return downsample(block, step.factors, method)


# ------------------------------------------------------------------------------------ planning
def pyramid_shapes(
    level0_shape: Sequence[int], factors_per_level: Sequence[Sequence[int]]
) -> list[tuple[int, ...]]:
    """Shapes of every level (level 0 first): ``shape[L] = ceil(shape[L-1] / factors[L-1])``.

    ``factors_per_level[i]`` is the factor from level ``i`` to level ``i + 1``.
    """
    shapes = [tuple(int(n) for n in level0_shape)]
    if any(n < 0 for n in shapes[0]):
        raise ValueError(f"negative shape {shapes[0]}")
    for factors in factors_per_level:
        fs = _check_factors(factors, len(shapes[0]))
        shapes.append(tuple(-(-n // f) for n, f in zip(shapes[-1], fs, strict=True)))
    return shapes


def check_levels_shrink(
    shapes: Sequence[Sequence[int]], levels: int | None = None, *, start: int = 1
) -> None:
    """Refuse level shapes past the level where the image stops shrinking (1 x 1 in y/x, say):
    each further level would repeat that shape with a larger pixel size, which no pixel has.
    Levels before ``start`` (stored ones) are not checked; an empty image (a 0 in its shape)
    is left alone.

    :raises ValueError: naming the requested ``levels`` and the most the image has.
    """
    for i in range(max(1, start), len(shapes)):
        prev, cur = tuple(shapes[i - 1]), tuple(shapes[i])
        if cur == prev and all(n > 0 for n in cur):
            first = "x".join(map(str, shapes[0]))
            raise ValueError(
                f"levels {levels if levels is not None else len(shapes)}: a {first} image stops "
                f"shrinking at level {i - 1} ({'x'.join(map(str, prev))}): at most {i} "
                + ("level" if i == 1 else "levels")
            )


@dataclass(frozen=True, slots=True)
class PyramidStep:
    """Compute ``target`` of level ``level`` as ``downsample(source_level[source], factors)``."""

    level: int
    #: the level ``source`` lies in (``level - 1``, or 0 with ``source="level0"``)
    source_level: int
    #: region of the target level (one whole target tile, clipped at the array's edge)
    target: Region
    #: region of the source level: ``target * factors``, clipped to the source level
    source: Region
    #: factor per axis from the source level to the target level
    factors: tuple[int, ...]
    #: ``"ngio"``: per axis, the pixel of ``source`` (from its start) each target pixel takes
    index: Index | None = field(default=None, compare=False)

    @property
    def target_shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.target)

    @property
    def source_shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.source)


@dataclass(frozen=True, slots=True)
class LevelPlan:
    """The tiles of one target level; iterate it for :class:`PyramidStep` (lazily, C order)."""

    level: int
    source_level: int
    shape: tuple[int, ...]
    source_shape: tuple[int, ...]
    factors: tuple[int, ...]
    tile: tuple[int, ...]
    #: tile counts per axis of the whole level
    grid: tuple[int, ...]
    #: indices (in ``grid``) of the tiles to compute, C order; ``None``: every tile
    tiles: tuple[tuple[int, ...], ...] | None = None
    #: ``"ngio"``: per axis, the source pixel each pixel of the level takes
    index: Index | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return math.prod(self.grid) if self.tiles is None else len(self.tiles)

    def __iter__(self) -> Iterator[PyramidStep]:
        indices = product(*(range(g) for g in self.grid)) if self.tiles is None else self.tiles
        for index in indices:
            yield self.step(index)

    def step(self, index: tuple[int, ...]) -> PyramidStep:
        """The step of tile ``index`` of the grid."""
        target = []
        for i, t, n in zip(index, self.tile, self.shape, strict=True):
            a, b = i * t, min((i + 1) * t, n)
            if not 0 <= a < b:
                raise IndexError(f"tile {index} is outside the grid {self.grid}")
            target.append(slice(a, b))
        return self.step_for(tuple(target))

    def step_for(self, target: Region) -> PyramidStep:
        """The step computing ``target`` (a non-empty region of the level)."""
        if self.index is not None:
            source = source_extent(target, self.index)
            local = tuple(
                idx[t.start : t.stop] - s.start
                for t, s, idx in zip(target, source, self.index, strict=True)
            )
            return PyramidStep(self.level, self.source_level, target, source, self.factors, local)
        source = tuple(
            slice(t.start * f, min(t.stop * f, m))
            for t, f, m in zip(target, self.factors, self.source_shape, strict=True)
        )
        return PyramidStep(self.level, self.source_level, tuple(target), source, self.factors)


def region_footprint(
    region: Region, factors: Sequence[int], shape: Sequence[int] | None = None
) -> Region:
    """The pixels of a downsampled level that depend on ``region`` of its source.

    ``[a, b)`` maps to ``[a // f, ceil(b / f))`` (clipped to ``shape`` if given); an empty region
    maps to an empty one.
    """
    out = []
    for i, (s, f) in enumerate(zip(region, factors, strict=True)):
        if s.stop <= s.start:
            a = b = s.start // f
        else:
            a, b = s.start // f, -(-s.stop // f)
        if shape is not None:
            a, b = min(a, shape[i]), min(b, shape[i])
        out.append(slice(a, b))
    return tuple(out)


def _normalise_region(region: Sequence[Any], shape: tuple[int, ...]) -> Region:
    if isinstance(region, str | bytes) or not isinstance(region, Sequence):
        raise TypeError(f"a region is one slice, (start, stop) or index per axis, got {region!r}")
    if len(region) != len(shape):
        raise ValueError(f"region {region} has {len(region)} axes, level 0 has {len(shape)}")
    out = []
    for r, n in zip(region, shape, strict=True):
        if isinstance(r, slice):
            if r.step not in (None, 1):
                raise ValueError(f"region {region}: slices need step 1")
            a = 0 if r.start is None else int(r.start)
            b = n if r.stop is None else int(r.stop)
        elif isinstance(r, int | np.integer) and not isinstance(r, bool | np.bool_):
            a = int(r) + n if r < 0 else int(r)  # one index, as numpy takes it
            b = a + 1
        elif isinstance(r, Sequence) and len(r) == 2:
            a, b = (int(v) for v in r)
        else:
            raise TypeError(
                f"region {region}: each axis takes a slice, (start, stop) or an index, got {r!r}"
            )
        if not 0 <= a <= b <= n:
            raise ValueError(f"region {region} is outside level 0 (shape {shape})")
        out.append(slice(a, b))
    return tuple(out)


def changed_regions(regions: Sequence[Sequence[Any]], shape: Sequence[int]) -> list[Region]:
    """``regions`` (per axis a slice, a ``(start, stop)`` pair or an index) as slices, the
    empty ones left out.

    :raises ValueError, TypeError: a region outside ``shape`` or of another form."""
    shape = tuple(int(n) for n in shape)
    out = [_normalise_region(r, shape) for r in regions]
    return [r for r in out if all(s.stop > s.start for s in r)]


def region_covered(box: Region, regions: Sequence[Region], *, most: int = 16) -> bool:
    """Whether the union of ``regions`` covers every pixel of ``box`` (an empty box is
    covered). More than ``most`` regions meeting ``box``: ``False`` (a cautious answer)."""
    if any(b.stop <= b.start for b in box):
        return True
    parts = []
    for r in regions:
        cut = tuple(
            slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(r, box, strict=True)
        )
        if all(c.stop > c.start for c in cut):
            parts.append(cut)
    if not parts or len(parts) > most:
        return False
    # the cells between every region edge, per axis: each lies wholly in a region or not
    edges = [
        sorted({b.start, b.stop, *(c.start for c in cuts), *(c.stop for c in cuts)})
        for b, cuts in zip(box, zip(*parts, strict=True), strict=True)
    ]
    for cell in product(*(range(len(e) - 1) for e in edges)):
        lo = [e[i] for e, i in zip(edges, cell, strict=True)]
        if not any(
            all(c.start <= x < c.stop for c, x in zip(part, lo, strict=True)) for part in parts
        ):
            return False
    return True


def _tile_shapes(
    tile: Sequence[int | None] | Sequence[Sequence[int | None]], nlevels: int, ndim: int
) -> list[tuple[int | None, ...]]:
    if len(tile) and not isinstance(tile[0], int | None):  # one tile shape per target level
        per_level = [tuple(t) for t in tile]  # type: ignore[arg-type]
        if len(per_level) != nlevels:
            raise ValueError(f"tile has {len(per_level)} shapes, there are {nlevels} target levels")
    else:
        per_level = [tuple(tile)] * nlevels  # type: ignore[arg-type]
    for t in per_level:
        if len(t) != ndim:
            raise ValueError(f"tile {t} has {len(t)} axes, the image has {ndim}")
        if any(v is not None and v < 1 for v in t):
            raise ValueError(f"tile sizes must be >= 1, got {t}")
    return per_level


def pyramid_plan(
    level0_shape: Sequence[int],
    factors_per_level: Sequence[Sequence[int]],
    tile: Sequence[int | None] | Sequence[Sequence[int | None]],
    *,
    source: Literal["previous", "level0"] = "previous",
    regions: Sequence[Sequence[Any]] | None = None,
    shapes: Sequence[Sequence[int]] | None = None,
    method: Method | None = None,
    chunks: Sequence[Sequence[int]] | None = None,
) -> list[LevelPlan]:
    """Plan building levels ``1..N`` tile by tile; one :class:`LevelPlan` per target level.

    :param level0_shape: shape of level 0.
    :param factors_per_level: ``factors_per_level[i]`` reduces level ``i`` to level ``i + 1``.
    :param tile: the target tile shape in target-level pixels (one for all levels, or one per
        target level); ``None`` for an axis means its whole extent. Use a multiple of the target's
        chunk (or shard) shape for chunk-aligned writes.
    :param source: ``"previous"``: level ``L`` is computed from level ``L - 1`` (build the levels
        in order); ``"level0"``: from level 0 with the cumulative factor (``nearest`` gives the
        same pixels both ways; ``mean``/``mode`` of means differ).
    :param regions: changed level-0 regions (per axis a slice, a ``(start, stop)`` pair or an
        index): only the target tiles holding a pixel that depends on a change are planned (the
        footprint ``[a // F, ceil(b / F))`` per axis, expanded to whole tiles). ``None``: every
        tile.
    :param shapes: every level's shape (level 0 first) when they are stored already: each is
        the ceil (default) or the floor (ome-zarr-py) of the one above divided by its factor
        (with ``method="ngio"`` any smaller shape: ngio's levels of factors like 2.5).
    :param method: ``"ngio"``: each step carries the source pixels its target pixels take
        (:func:`ngio_maps`, from the level shapes and ``chunks``, every level's (inner) chunk
        shape, level 0 first), and ``regions`` select the tiles holding a pixel that takes a
        changed one. Other methods: windows of the factors (the default).
    :returns: the levels in build order; iterating a :class:`LevelPlan` yields its steps lazily.
    """
    if source not in ("previous", "level0"):
        raise ValueError(f"source must be 'previous' or 'level0', got {source!r}")
    ceil_shapes = pyramid_shapes(level0_shape, factors_per_level)
    if shapes is None:
        shapes = ceil_shapes
    else:
        given = [tuple(int(n) for n in s) for s in shapes]
        if len(given) != len(ceil_shapes) or given[0] != ceil_shapes[0]:
            raise ValueError(f"shapes {given} do not match level 0 {level0_shape} and the factors")
        for i, fs in enumerate(factors_per_level, start=1):
            for n, m, f in zip(given[i - 1], given[i], fs, strict=True):
                if m not in (-(-n // f), n // f) and method != "ngio":  # ngio: any shapes
                    raise ValueError(f"level {i} shape {given[i]} is not {given[i - 1]} / {fs}")
        shapes = given
    ndim = len(shapes[0])
    nlevels = len(shapes) - 1
    tiles = _tile_shapes(tile, nlevels, ndim)
    changed = None if regions is None else changed_regions(regions, shapes[0])
    maps = ngio_maps(shapes, chunks) if method == "ngio" else None
    composite: Index | None = None
    plans = []
    cumulative = (1,) * ndim
    for lvl in range(1, nlevels + 1):
        step_factors = _check_factors(factors_per_level[lvl - 1], ndim)
        cumulative = tuple(a * b for a, b in zip(cumulative, step_factors, strict=True))
        shape = shapes[lvl]
        tile_shape = tuple(
            (max(n, 1) if t is None else t) for t, n in zip(tiles[lvl - 1], shape, strict=True)
        )
        grid = tuple(-(-n // t) for n, t in zip(shape, tile_shape, strict=True))
        if maps is not None:
            step_map = maps[lvl - 1]
            composite = (
                step_map
                if composite is None
                else tuple(c[i] for c, i in zip(composite, step_map, strict=True))
            )
        selected: tuple[tuple[int, ...], ...] | None = None
        if changed is not None:
            picked: set[tuple[int, ...]] = set()
            for r in changed:
                fp = (
                    region_footprint(r, cumulative, shape)
                    if composite is None
                    else sampled(r, composite)[0]
                )
                if any(s.stop <= s.start for s in fp):
                    continue
                ranges = [
                    range(s.start // t, -(-s.stop // t))
                    for s, t in zip(fp, tile_shape, strict=True)
                ]
                picked.update(product(*ranges))
            selected = tuple(sorted(picked))
        from_level0 = source == "level0"
        plans.append(
            LevelPlan(
                level=lvl,
                source_level=0 if from_level0 else lvl - 1,
                shape=shape,
                source_shape=shapes[0] if from_level0 else shapes[lvl - 1],
                factors=cumulative if from_level0 else step_factors,
                tile=tile_shape,
                grid=grid,
                tiles=selected,
                index=None if maps is None else composite if from_level0 else maps[lvl - 1],
            )
        )
    return plans
