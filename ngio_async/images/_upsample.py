"""The levels finer than a coarser level written, upsampled from it (ngio's ``consolidate``).

A label image segmented at a coarser level (``stream(..., out=<label>, pyramid=True)``,
``write(..., level=k, pyramid=True)``, ``build_pyramid(from_level=k)``) gets its finer levels
from that level by nearest upsampling: finer pixel ``i`` takes coarse pixel ``i // f`` (a
finer level's extra pixels past the last window take the last one), as ngio's
``Label.consolidate`` does. Each region written is read block by block (a stored object of
the coarse level, read once) and each finer level written tile by tile (a tile whose upsampled
block is about one stored object of that level, written whole once), a few at a time, so
memory stays bounded whatever the region's size. Intensity images are not upsampled so:
their finer pixels hold data no upsampling gives back (the callers refuse it).
"""

from __future__ import annotations

import copy
import math
from itertools import pairwise, product
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np

from .._prefetch import settled
from ._write import write_region

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from numpy.typing import NDArray

    from ..engine import Region
    from ..engine.pyramid import Index, Method
    from ._dataset import Dataset

__all__ = ["Finer", "upsampled"]

#: upsampled tiles written at once (unmasked; masked ones too: their writes touch only the
#: object's pixels, each stored object patched under its own lock)
_AT_ONCE = 4
#: the most bytes of pixels just written to the coarse level that are kept to upsample
#: (instead of reading them back); the blocks of writes past it are read back
_KEEP_BYTES = 64 << 20


class Finer:
    """The levels finer than level ``index`` of ``ds``, following the regions written to it:
    each upsampled (nearest) once every write is done."""

    def __init__(self, ds: Dataset, index: int, method: Method | None = None) -> None:
        self.ds, self.index = ds, index
        # method "ngio": ngio's nearest zoom up, level by level (elsewhere ``i // f``)
        self.maps = _ngio_up(ds, index) if method == "ngio" and index > 0 else None
        self.regions: list[Region] = []  # of level ``index``, written
        # the pixels of a region written, where not all (a masked write): only those followed
        self.masks: dict[int, NDArray[np.bool_]] = {}
        # parts of level ``index`` as just written (copies, in the order they landed): the
        # blocks they cover are upsampled from them, not read back (up to _KEEP_BYTES)
        self.pixels: list[tuple[Region, NDArray[Any]]] = []
        self._kept = 0

    def add(self, region: Region, mask: NDArray[np.bool_] | None = None) -> None:
        if mask is not None:
            self.masks[len(self.regions)] = mask
        self.regions.append(region)

    def keep(self, part: Region, pixels: NDArray[Any]) -> None:
        """``part`` of level ``index`` now holds ``pixels`` (all of the part, as stored)."""
        if self._kept + pixels.nbytes <= _KEEP_BYTES:
            self.pixels.append((part, np.array(pixels)))  # (a copy: the caller's may change)
            self._kept += pixels.nbytes

    def _written(self, block: Region) -> NDArray[Any] | None:
        """The pixels of ``block`` as just written, if the parts kept cover it all, once each
        (parts written twice may have been told in another order than they landed: two
        masked writes of one object at once; read back)."""
        out: NDArray[Any] | None = None
        seen: NDArray[np.bool_] | None = None
        for part, pixels in self.pixels:
            both = tuple(
                slice(max(a.start, b.start), min(a.stop, b.stop))
                for a, b in zip(part, block, strict=True)
            )
            if any(s.stop <= s.start for s in both):
                continue
            if out is None or seen is None:
                out = np.empty(tuple(s.stop - s.start for s in block), pixels.dtype)
                seen = np.zeros(out.shape, dtype=bool)
            at = _within(both, block)
            if seen[at].any():
                return None
            out[at] = pixels[_within(both, part)]
            seen[at] = True
        return out if seen is not None and seen.all() else None

    def tiles(self) -> list[tuple[Region, NDArray[np.bool_] | None]]:
        """The blocks of level ``index`` the regions noted are upsampled by, with their masks:
        the regions cut along :meth:`_blocks` (a block whose mask is empty is left out)."""
        if self.index == 0:
            return []
        grid = self._blocks()
        out: list[tuple[Region, NDArray[np.bool_] | None]] = []
        for i, region in enumerate(self.regions):
            mask = self.masks.get(i)
            for block in _split(region, grid):
                local = None if mask is None else mask[_within(block, region)]
                if local is None or local.any():  # nothing of the object here: nothing to do
                    out.append((block, local))
        return out

    def _grids(self) -> dict[int, tuple[int, ...]]:
        """Per finer level ``j``, the tile size of level ``index`` whose upsampled blocks span
        about one stored object of level ``j`` (at least one pixel)."""
        levels = self.ds.levels
        out = {}
        for j in range(self.index):
            factors = _cumulative(self.ds, self.index, j, self.maps is not None)
            stored = levels[j].meta.stored_chunks
            out[j] = tuple(max(1, -(-s // f)) for s, f in zip(stored, factors, strict=True))
        return out

    def _blocks(self) -> tuple[int, ...]:
        """The block size of level ``index`` read at once: whole tiles of every finer level
        (each finer object written whole once) covering whole chunks of level ``index`` (each
        read once, not once per tile of level 0's grid)."""
        chunks = self.ds.levels[self.index].meta.chunks  # what a read fetches at least
        grids = list(self._grids().values())
        out = []
        for axis, c in enumerate(chunks):
            sizes = [g[axis] for g in grids]
            step = math.lcm(*sizes)
            if step > 4 * max(sizes):  # tiles of unrelated sizes: the largest whole
                step = max(sizes)
            out.append(-(-c // step) * step)
        return tuple(out)

    async def build(self, progress: Callable[[int], object] | None = None) -> None:
        """Upsample every region noted; cancelled part way, finished all the same (as
        :meth:`settle`). ``progress(i)`` after each tile."""
        try:
            await self._run(progress)
        except anyio.get_cancelled_exc_class() as exc:
            await self.settle(exc)
            raise
        except Exception as exc:
            exc.add_note(self._unbuilt())
            raise

    async def settle(self, error: BaseException) -> None:
        """After a failed write: the finer levels still follow what level ``index`` got, even
        when the caller is cancelled (within ``SETTLE_SECONDS``); ``error`` notes it if not."""
        if not self.regions:
            return
        failed = await settled(self._run)
        if failed is not None and isinstance(error, Exception):
            error.add_note(f"{self._unbuilt()} ({failed!r})")

    def _unbuilt(self) -> str:
        return (
            f"the levels above level {self.index} of {self.ds.url} may not follow it: run "
            f"build_pyramid(from_level={self.index}, regions=...) over the region written"
        )

    async def _run(self, progress: Callable[[int], object] | None = None) -> None:
        if self.index == 0 or not self.regions:
            return
        blocks, grids = self.tiles(), self._grids()
        reads, writes = anyio.Semaphore(_AT_ONCE), anyio.Semaphore(_AT_ONCE)
        done = 0

        async def one(block: Region, mask: NDArray[np.bool_] | None) -> None:
            nonlocal done
            async with reads:  # a block stays in memory while its finer tiles are written
                data = self._written(block)
                if data is None:  # not all of it just written: read back
                    data = await self.ds.levels[self.index].getitem(block)
                async with anyio.create_task_group() as tg:
                    for j, grid in grids.items():
                        for tile in _split(block, grid):
                            tg.start_soon(self._tile, j, block, data, mask, tile, writes)
            done += 1
            if progress is not None:
                progress(done)

        async with anyio.create_task_group() as tg:
            for block, mask in blocks:
                tg.start_soon(one, block, mask)
        # all landed (a failure keeps every region: a settle redoes them)
        self.regions, self.masks, self.pixels, self._kept = [], {}, [], 0

    async def _tile(
        self,
        j: int,
        block: Region,
        data: NDArray[Any],
        mask: NDArray[np.bool_] | None,
        tile: Region,
        limit: anyio.Semaphore,
    ) -> None:
        at = _within(tile, block)
        part = None if mask is None else mask[at]
        if part is not None and not part.any():
            return
        async with limit:
            await upsample_tile(self.ds, self.index, tile, part, self.maps, data[at], only=j)


def _cumulative(ds: Dataset, index: int, finer: int = 0, ngio: bool = False) -> list[int]:
    """Per axis, the factor from level ``finer`` to level ``index`` (``ngio``: nominal where
    ngio's levels are of no integer factor: its maps place the pixels)."""
    from ._pyramid import level_factors

    factors = [1] * len(ds.axes)
    for step in level_factors(ds, "ngio" if ngio else None)[finer:index]:
        factors = [f * g for f, g in zip(factors, step, strict=True)]
    return factors


def _ngio_up(ds: Dataset, index: int) -> dict[int, Index]:
    """``[j]``: per axis, the pixel of level ``index`` each pixel of level ``j`` takes, as
    ngio's ``consolidate()`` upsamples (level by level from the one below, its nearest zoom
    over that level's chunks). Where the factor divides the shapes that is ``i // f``.

    :raises ValueError: a level ngio's zoom cannot build (before any I/O)."""
    from ..engine.pyramid import ngio_maps

    levels = ds.levels
    out: dict[int, Index] = {}
    idx: Index | None = None
    for j in range(index - 1, -1, -1):
        try:
            (step,) = ngio_maps([levels[j + 1].shape, levels[j].shape], [levels[j + 1].meta.chunks])
        except ValueError as exc:
            raise ValueError(
                f"method 'ngio' cannot upsample {ds.url} into level {levels[j].path!r}: {exc}"
            ) from None
        idx = step if idx is None else tuple(c[s] for c, s in zip(idx, step, strict=True))
        out[j] = idx
    return out


async def upsample_tile(
    ds: Dataset,
    index: int,
    tile: Region,
    mask: NDArray[np.bool_] | None = None,
    maps: dict[int, Index] | None = None,
    data: NDArray[Any] | None = None,
    *,
    only: int | None = None,
) -> None:
    """Write ``tile`` of level ``index``, upsampled, into every finer level (``mask``: its
    pixels to follow; the others' finer pixels keep what is stored; ``maps``: ngio's
    upsampling, see :func:`_ngio_up`; else ``i // f``; ``data``: the tile's pixels, when
    read already; ``only``: into that finer level alone)."""
    from ..engine.pyramid import sampled
    from ._pyramid import level_factors

    steps = level_factors(ds, None if maps is None else "ngio")[:index]
    src = ds.levels[index]
    if data is None:
        data = await src.getitem(tile)
    factors = [1] * len(tile)
    for j in range(index - 1, -1, -1):
        factors = [f * g for f, g in zip(factors, steps[j], strict=True)]
        if only is not None and j != only:
            continue
        dst = ds.levels[j]
        if maps is None:
            where, picks = upsampled(tile, factors, src.shape, dst.shape)
        else:
            where, taken = sampled(tile, maps[j])
            picks = list(taken)
            if any(w.stop <= w.start for w in where):
                continue
        grid = np.ix_(*picks)
        await write_region(dst, where, data[grid], where=None if mask is None else mask[grid])


def upsampled(
    region: Region, factors: list[int], shape: tuple[int, ...], finer: tuple[int, ...]
) -> tuple[Region, list[NDArray[np.intp]]]:
    """The region of the finer level (of shape ``finer``, ``factors`` times ``shape``, ceil
    or floor) that ``region`` of a level of ``shape`` covers, and per axis the index in
    ``region`` of each of its pixels (nearest: the pixel over it; a finer level's extra
    pixels past the last window take the last one)."""
    where, picks = [], []
    for s, f, n, m in zip(region, factors, shape, finer, strict=True):
        start = s.start * f
        stop = m if s.stop >= n else min(s.stop * f, m)
        where.append(slice(start, stop))
        picks.append(np.minimum(np.arange(start, stop) // f, n - 1) - s.start)
    return tuple(where), picks


def _within(inner: Region, outer: Region) -> tuple[slice, ...]:
    """Where ``inner`` is in an array of ``outer``'s pixels."""
    return tuple(
        slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True)
    )


def _split(region: Region, grid: Sequence[int]) -> Iterator[Region]:
    """``region`` cut along the tile grid ``grid`` (tiles at multiples of it)."""
    cuts = []
    for s, g in zip(region, grid, strict=True):
        edges = [s.start, *range((s.start // g + 1) * g, s.stop, g), s.stop]
        cuts.append([slice(a, b) for a, b in pairwise(edges) if b > a])
    yield from product(*cuts)


def refuse_upsampling(ds: Dataset, index: int, call: str, instead: str) -> None:
    """Refuse, before any I/O, ``call`` building the levels finer than level ``index`` > 0 of
    ``ds`` by upsampling unless it is a label image: an image's finer levels hold pixels no
    upsampling gives back (ngio's ``consolidate`` would replace them). ``instead``: what to
    do, for the message."""
    from ._pyramid import _is_label

    if index > 0 and not _is_label(ds):
        finer = ", ".join(repr(lvl.path) for lvl in ds.levels[:index])
        raise ValueError(
            f"{call} of level {ds.levels[index].path!r} of {ds.url} would replace its finer "
            f"levels ({finer}) with pixels upsampled from it: only label images are upsampled "
            f"so (ngio's Label.consolidate); {instead}"
        )


def check_build_from(ds: Dataset, index: int, levels: int | None) -> None:
    """Refuse, before any I/O, ``build_pyramid(from_level=index)`` of an image that is no label
    image, or adding levels with it."""
    refuse_upsampling(
        ds, index, f"build_pyramid(from_level={index})", "build it from level 0 (the default)"
    )
    if levels is not None and levels != len(ds.levels):
        raise ValueError(
            f"build_pyramid(from_level={index}, levels={levels}) of {ds.url}: levels are "
            "added from level 0 (build_pyramid(levels=...)), not with from_level"
        )


async def build_from(
    ds: Dataset,
    index: int,
    method: Method | None,
    regions: Sequence[Sequence[Any]] | None,
    tile: Sequence[int | None] | None,
    *,
    source: Literal["previous", "level0"],
    window: int | None,
    progress: Callable[[int, int], object] | None,
) -> None:
    """:meth:`Dataset.build_pyramid` with ``from_level=index`` (``ds``'s structure lock held):
    the coarser levels from level ``index`` (``build_pyramid`` of a view whose levels start
    there), the finer ones upsampled from it over ``regions`` (of level ``index``; all of it
    by default)."""
    from ..engine.pyramid import changed_regions
    from ._dataset_tiles import check_progress
    from ._pyramid import build_pyramid, default_method

    check_progress(progress)  # (the build is given a wrapper)
    view = copy.copy(ds)
    view.levels = ds.levels[index:]
    shape = view.levels[0].shape
    finer = Finer(ds, index, default_method(ds) if method is None else method)
    whole = [tuple(slice(0, n) for n in shape)]
    for region in whole if regions is None else changed_regions(regions, shape):
        finer.add(region)  # (checked before any write)
    extra = len(finer.tiles())
    coarse = 0

    def down(done: int, total: int) -> None:
        nonlocal coarse
        coarse = total
        if progress is not None:
            progress(done, total + extra)

    def up(done: int) -> None:
        if progress is not None:
            progress(coarse + done, coarse + extra)

    try:
        await build_pyramid(
            view, None, method, regions, tile, source=source, window=window, progress=down
        )
    finally:
        ds.metadata = view.metadata  # (a whole build records the method)
    await finer.build(up)
