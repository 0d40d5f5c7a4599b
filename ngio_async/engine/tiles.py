"""Tile grids (pure): split a region of a level into tiles, with an optional clipped halo."""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["TileSpec", "default_tile_shape", "keys_ahead", "tile_grid"]

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
        return math.prod(self.shape)


def default_tile_shape(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None
) -> tuple[int, ...]:
    """One shard (else one chunk) in the last two axes, one plane of every other axis."""
    storage = shards if shards is not None else chunks
    n = len(shape)
    return tuple(min(storage[i], shape[i]) if i >= n - 2 else 1 for i in range(n))


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


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def tile_grid(
    shape: tuple[int, ...],
    region: Region,
    tile_shape: Sequence[int | None],
    overlap: int | Sequence[int] = 0,
) -> tuple[tuple[int, ...], Iterator[TileSpec]]:
    """The tiles covering ``region`` of an array of ``shape``, in C order.

    Tiles are aligned to multiples of ``tile_shape`` counted from the array origin (so storage-
    shaped tiles are storage-aligned) and clipped to ``region``; ``None`` in ``tile_shape``
    means the region's whole extent. ``overlap`` (int: the last two axes; or one value per
    axis) widens each tile by a halo on both sides, clipped at the array borders.

    :returns: the grid shape and a lazy iterator of :class:`TileSpec`.
    """
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
    grid = tuple(len(st) for st in starts)

    def gen() -> Iterator[TileSpec]:
        for index in _c_order(grid):
            core = []
            full = []
            for ax, i in enumerate(index):
                a = max(starts[ax][i], region[ax].start)
                b = min(starts[ax][i] + sizes[ax], region[ax].stop)
                core.append(slice(a, b))
                full.append(slice(max(0, a - halo[ax]), min(shape[ax], b + halo[ax])))
            yield TileSpec(index=index, core=tuple(core), region=tuple(full))

    return grid, gen()


def _c_order(grid: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Every index of ``grid`` in C order, lazily (``itertools.product`` makes a tuple of
    each axis's range first)."""
    if any(g == 0 for g in grid):
        return
    index = [0] * len(grid)
    while True:
        yield tuple(index)
        for ax in reversed(range(len(grid))):
            index[ax] += 1
            if index[ax] < grid[ax]:
                break
            index[ax] = 0
        else:
            return


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
