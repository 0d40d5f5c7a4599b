"""Tile grids (pure): split a region of a level into tiles, with an optional clipped halo."""

from __future__ import annotations

import numbers
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

__all__ = [
    "TileSpec",
    "chunk_uses",
    "default_tile_shape",
    "halo",
    "keys_ahead",
    "same_object_runs",
    "tile_grid",
]

Region = tuple[slice, ...]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TileSpec:
    """One tile of a grid: ``index`` in the grid, ``core`` (no halo) and ``region`` (with halo)."""

    index: tuple[int, ...]
    core: Region
    region: Region

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.region)

    @property
    def size(self) -> int:
        """Elements in ``region``."""
        n = 1
        for s in self.region:
            n *= s.stop - s.start
        return n


def default_tile_shape(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None
) -> tuple[int, ...]:
    """One shard (else one chunk) in the last two axes, one plane of every other axis (one
    pixel at least: an empty axis has no tile)."""
    storage = shards if shards is not None else chunks
    n = len(shape)
    return tuple(max(1, min(storage[i], shape[i])) if i >= n - 2 else 1 for i in range(n))


def _per_axis(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if _is_int(value):
        v = int(value)  # type: ignore[arg-type]
        return (0,) * (ndim - 2) + (v,) * min(2, ndim) if name == "overlap" else (v,) * ndim
    if not isinstance(value, Iterable) or not all(_is_int(v) for v in value):
        raise TypeError(f"{name} must be an int or one int per axis, got {value!r}")
    out = tuple(int(v) for v in value)
    if len(out) == 2 and ndim > 2:  # (y, x) for the last two axes
        fill = 0 if name == "overlap" else 1
        out = (fill,) * (ndim - 2) + out
    if len(out) != ndim:
        raise ValueError(f"{name} needs {ndim} values (one per axis) or 2 (y, x), got {len(out)}")
    return out


def halo(overlap: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """The halo ``overlap`` adds on each axis (an int: the last two axes), as ``tile_grid``
    reads it.

    :raises TypeError, ValueError: as ``tile_grid`` does for a malformed ``overlap``.
    """
    return _per_axis(overlap, ndim, "overlap")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def tile_grid(
    shape: tuple[int, ...],
    region: Region,
    tile_shape: Sequence[int | None],
    overlap: int | Sequence[int] = 0,
    block: Sequence[int] | None = None,
    picks: Mapping[int, Sequence[int]] | None = None,
) -> tuple[tuple[int, ...], Iterator[TileSpec]]:
    """The tiles covering ``region`` of an array of ``shape``, in C order.

    Tiles are aligned to multiples of ``tile_shape`` counted from the array origin (so storage-
    shaped tiles are storage-aligned) and clipped to ``region``; ``None`` in ``tile_shape``
    means the region's whole extent. ``overlap`` (int: the last two axes; or one value per
    axis) widens each tile by a halo on both sides, clipped at the array borders.

    ``block`` (a shard's shape, say): block by block instead, C order across the blocks and
    within each, a tile belonging to the block its core starts in; ``index`` is still the
    tile's place in the grid.

    ``picks`` (a list selection): on these axes (tiles of 1) only the tiles starting at the
    given indices, in the given order (C order then follows it: ``c=[2, 0]`` yields channel
    2's tiles first; block by block, the picked tiles of each block).

    :returns: the grid shape and a lazy iterator of :class:`TileSpec`.
    """
    starts, axes = _grid_axes(shape, region, tile_shape, overlap)
    grid = tuple(len(st) for st in starts)
    along = {ax: _positions(starts[ax], values) for ax, values in (picks or {}).items()}

    def order() -> Iterator[tuple[int, ...]]:
        if block is None:
            return _c_order(grid, along)
        wanted = {ax: set(pos) for ax, pos in along.items()}
        blocks = _block_order(starts, block, region)
        return (i for i in blocks if all(i[ax] in pos for ax, pos in wanted.items()))

    def gen() -> Iterator[TileSpec]:
        for index in order():
            core = []
            full = []
            for axis, i in zip(axes, index, strict=True):
                c, f = axis[i]
                core.append(c)
                full.append(f)
            yield TileSpec(index=index, core=tuple(core), region=tuple(full))

    return grid, gen()


def _grid_axes(
    shape: tuple[int, ...],
    region: Region,
    tile_shape: Sequence[int | None],
    overlap: int | Sequence[int],
) -> tuple[list[range], list[_AxisSlices]]:
    """Per axis: the tile starts, and the tiles' (core, with halo) slices."""
    ndim = len(shape)
    if len(region) != ndim:
        raise ValueError(f"region has {len(region)} axes, the array has {ndim}")
    sizes = []
    for i, (t, s) in enumerate(zip(tile_shape, region, strict=True)):
        size = (s.stop - s.start) if t is None else int(t)
        if size < 1:
            if s.stop == s.start:
                size = 1
            else:
                raise ValueError(f"tile size must be >= 1, got {t} for axis {i}")
        sizes.append(size)
    halo = _per_axis(overlap, ndim, "overlap")
    if any(h < 0 for h in halo):
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    starts: list[range] = []  # lazy: a grid of 2**40 tiles holds no list
    for s, size, t in zip(region, sizes, tile_shape, strict=True):
        if s.stop <= s.start:
            starts.append(range(0))
            continue
        # ``None``: one tile of the whole extent, wherever the region starts
        first = s.start if t is None else s.start // size * size
        starts.append(range(first, s.stop, size))
    axes = [
        _AxisSlices(st, size, s, h, n)
        for st, size, s, h, n in zip(starts, sizes, region, halo, shape, strict=True)
    ]
    return starts, axes


def chunk_uses(
    shape: tuple[int, ...],
    region: Region,
    tile_shape: Sequence[int | None],
    overlap: int | Sequence[int],
    chunks: Sequence[int],
    picks: Mapping[int, Collection[int]] | None = None,
) -> Callable[[tuple[int, ...]], int]:
    """How many tiles of ``tile_grid(shape, region, tile_shape, overlap)`` read a part (halo
    included) of the chunk at the given coordinates of a ``chunks`` grid.

    ``picks``: axes limited to the tiles whose core starts at one of the given indices (a list
    selection, tiles of 1 on that axis). Computed per axis, not by walking the tiles.
    """
    _, axes = _grid_axes(shape, region, tile_shape, overlap)
    kept = dict(picks or {})
    memos: list[dict[int, int]] = [{} for _ in axes]

    def uses(coords: tuple[int, ...]) -> int:
        n = 1
        for ax, (axis, c, k, memo) in enumerate(zip(axes, chunks, coords, memos, strict=True)):
            got = memo.get(k)
            if got is None:
                keep = kept.get(ax)
                got = axis.touching(k * c, (k + 1) * c, keep)
                if len(memo) < _AXIS_MEMO:
                    memo[k] = got
            n *= got
            if not n:
                return 0
        return n

    return uses


class _AxisSlices:
    """One axis of a tile grid: tile ``i``'s (core, with halo) slices, computed once for the
    first ``_AXIS_MEMO`` tiles met (C order meets each of an inner axis's tiles many times)."""

    def __init__(self, starts: range, size: int, span: slice, halo: int, n: int) -> None:
        self._starts, self._size, self._lo, self._hi = starts, size, span.start, span.stop
        self._halo, self._n = halo, n
        self._memo: dict[int, tuple[slice, slice]] = {}

    def touching(self, lo: int, hi: int, keep: Collection[int] | None = None) -> int:
        """How many tiles (halo included) reach into ``[lo, hi)``; ``keep``: only the tiles
        whose core starts at one of these indices."""
        if keep is not None:
            return sum(
                1
                for k in keep
                if self._lo <= k < self._hi
                and max(0, k - self._halo) < hi
                and min(self._n, k + 1 + self._halo) > lo
            )
        m = len(self._starts)
        first = bisect_left(range(m), True, key=lambda i: self[i][1].stop > lo)
        after = bisect_left(range(m), True, key=lambda i: self[i][1].start >= hi)
        return max(0, after - first)

    def __getitem__(self, i: int) -> tuple[slice, slice]:
        got = self._memo.get(i)
        if got is None:
            a = max(self._starts[i], self._lo)
            b = min(self._starts[i] + self._size, self._hi)
            got = slice(a, b), slice(max(0, a - self._halo), min(self._n, b + self._halo))
            if len(self._memo) < _AXIS_MEMO:
                self._memo[i] = got
        return got


_AXIS_MEMO = 4096  # slices kept per axis (an axis may have 2**40 tiles)


def _block_order(
    starts: Sequence[range], block: Sequence[int], region: Region
) -> Iterator[tuple[int, ...]]:
    """Every tile index, block by block (each tile in the block its clipped start lies in)."""
    axes = [_BlockRuns(st, b, s.start) for st, b, s in zip(starts, block, region, strict=True)]
    for blk in _c_order(tuple(len(a) for a in axes)):
        runs = [a[i] for a, i in zip(axes, blk, strict=True)]
        for inner in _c_order(tuple(len(r) for r in runs)):
            yield tuple(r[i] for r, i in zip(runs, inner, strict=True))


class _BlockRuns:
    """The tile indices of one axis grouped by block: ``runs[k]`` is the range of tiles whose
    (clipped) start lies in the k-th block the axis touches; computed, not stored (an axis may
    have 2**40 pixels)."""

    def __init__(self, starts: range, block: int, lo: int) -> None:
        self._n = len(starts)
        self._first, self._size, self._block, self._lo = starts.start, starts.step, block, lo
        self._b0 = lo // block
        self._len = 0 if self._n == 0 else self._start(self._n - 1) // block - self._b0 + 1

    def _start(self, i: int) -> int:
        return self._lo if i == 0 else self._first + i * self._size

    def _first_in(self, b: int) -> int:
        """The first tile whose start lies in block ``b`` or after it."""
        if b <= self._b0:
            return 0
        return min(self._n, max(1, -(-(b * self._block - self._first) // self._size)))

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, k: int) -> range:
        b = self._b0 + k
        return range(self._first_in(b), self._first_in(b + 1))


def _positions(starts: range, values: Sequence[int]) -> list[int]:
    """The grid positions of the tiles of 1 starting at ``values`` (first sightings, in their
    order; values outside ``starts`` dropped)."""
    out: dict[int, None] = {}
    for v in values:
        if v in starts:
            out.setdefault(starts.index(v))
    return list(out)


def _c_order(
    grid: tuple[int, ...], along: Mapping[int, Sequence[int]] | None = None
) -> Iterator[tuple[int, ...]]:
    """Every index of ``grid`` in C order, lazily (``itertools.product`` makes a tuple of
    each axis's range first); ``along``: the positions to visit on some axes, in that order."""
    seqs: list[Sequence[int]] = [range(g) for g in grid]
    for ax, pos in (along or {}).items():
        seqs[ax] = pos
    sizes = [len(q) for q in seqs]
    if any(n == 0 for n in sizes):
        return
    at = [0] * len(grid)
    while True:
        yield tuple(q[k] for q, k in zip(seqs, at, strict=True)) if along else tuple(at)
        for ax in reversed(range(len(grid))):
            at[ax] += 1
            if at[ax] < sizes[ax]:
                break
            at[ax] = 0
        else:
            return


def same_object_runs(
    specs: Iterable[TileSpec], stored: Sequence[int], max_tiles: int, max_elements: int
) -> Iterator[list[TileSpec]]:
    """``specs`` in order, in runs of consecutive tiles whose cores start in the same stored
    object (one shard, say), each run at most ``max_tiles`` tiles of ``max_elements`` in all.

    An unordered remote tile stream reads the tiles of a shard (``tile_grid(block=...)``) as
    one run: one coalesced request for their inner chunks instead of one per tile.
    """
    run: list[TileSpec] = []
    run_key: tuple[int, ...] = ()
    elements = 0
    for spec in specs:
        key = tuple(c.start // s for c, s in zip(spec.core, stored, strict=True))
        size = spec.size
        if run and (key != run_key or len(run) >= max_tiles or elements + size > max_elements):
            yield run
            run = []
            elements = 0
        run.append(spec)
        run_key = key
        elements += size
    if run:
        yield run


def keys_ahead(
    items: Iterator[T],
    keys_of: Callable[[T], Iterable[str]],
    ahead: int,
    remember: int = 4096,
) -> Iterator[T | str]:
    """``items`` in order, with each key of ``keys_of(item)`` yielded ``ahead`` items before it.

    A key is yielded at its first sighting only (among the last ``remember`` keys). The tile
    stream uses it to fetch a shard's index while the tiles before the shard are in flight,
    so the shard's first tiles wait one round trip, not two.
    """
    held: deque[T] = deque()
    seen: OrderedDict[str, None] = OrderedDict()
    for item in items:
        for key in keys_of(item):
            if key not in seen:
                seen[key] = None
                if len(seen) > remember:
                    seen.popitem(last=False)
                yield key
        held.append(item)
        if len(held) > ahead:
            yield held.popleft()
    yield from held
