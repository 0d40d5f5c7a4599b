"""Building pyramid levels: ``await ds.build_pyramid()`` computes every lower level from level 0.

Planning is pure (:func:`ngio_async.engine.pyramid.pyramid_plan`); here it is executed:

- **Level by level.** Level ``L`` is built from level ``L - 1`` (``source="previous"``, default)
  only once every tile of ``L - 1`` is written, so a tile never reads a source that is still
  being computed. (Pipelining ``L`` behind ``L - 1`` tile by tile would overlap more I/O, at the
  cost of tracking which source tiles are done; the simple order is correct and keeps memory
  bounded.) ``source="level0"`` reads every level's tiles from level 0 with the cumulative
  factor: source regions grow with ``factor**L``, so memory per tile grows too.
- **Streaming, bounded.** The tiles of a level run through :func:`ngio_async._prefetch.prefetch`
  (unordered): at most ``window`` tiles are in progress (read source, downsample, write target),
  and the bytes they hold (source block plus reduced tile) never exceed ``limits.prefetch_bytes``
  (a tile larger than that runs alone). A whole level is never held in memory. Transient codec
  buffers (a fetched shard, an encoded one) come on top.
- **Chunk-aligned writes.** Target tiles are whole multiples of the target level's stored object
  (shard, else chunk), so every write covers whole objects (clipped at the far edge) and is
  encoded from the data alone: no read-modify-write, no GET of a target key (except the
  rebuilds at a pyramid write's end of tiles other processes may rebuild too: see
  :func:`_rebuild_shared`).
- **Downsampling** (:func:`ngio_async.engine.pyramid.downsample`) runs in worker threads under
  the dataset's decode limiter.
- **Factors** come from the level shapes (level ``i + 1`` vs ``i``; the scale ratio decides when
  the shapes alone are ambiguous). ``levels=N`` beyond the existing levels adds levels with the
  y/x downscale of the last pair (2 for a single-level image; translations continue those of the
  last pair, linearly in the scale): their array metadata is written
  first, the pixels are built, and the group's NGFF metadata (new datasets and scales) is
  rewritten last, so the new levels appear only once complete.
- ``regions=`` (changed level-0 regions) rebuilds only the target tiles whose pixels depend on a
  change; the result equals a full rebuild. New levels are always built whole.
- **Across processes.** Processes that each write their own level-0 region and then call
  ``build_pyramid(regions=[it])`` at once end with every level right: a tile depending on a
  level-0 pixel outside the regions (another process may write it and rebuild the tile) is
  rebuilt as a pyramid write's end rebuilds such tiles (:func:`_rebuild_shared`: under its
  ``flock`` on local disk, conditional on its version elsewhere: one GET more per such tile);
  tiles wholly over the regions are written plainly. A build without ``regions`` reads all of
  level 0 and writes plainly: run it once the writers finished.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace as dc_replace
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import ChangedError, MetadataError, NotFoundError, UnsupportedError
from .._prefetch import prefetch
from ..engine import plan_shards
from ..engine.pyramid import (
    changed_regions,
    check_levels_shrink,
    downsample,
    ngio_maps,
    pyramid_plan,
    reduce_step,
    region_covered,
)
from ._level import Level
from ._open import join, read_group_metadata
from ._write import (
    _encode_object,
    _file_lock,
    _fill_object,
    _local_file,
    _Patch,
    _put_object,
    _remove_empty_dirs,
    holding,
    object_region,
    write_region,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import numpy as np
    from numpy.typing import NDArray

    from .._workers import Workers
    from ..engine import Region
    from ..engine.pyramid import LevelPlan, Method, PyramidStep
    from ..stores import Buffer

    #: ``shared(level, region)``: whether the tile of ``level`` at ``region`` may be rebuilt
    #: by writers in other processes too (see :func:`_rebuild_shared`)
    Shared = Callable[[int, Region], bool]
    from ..meta import Dataset as NgffDataset, OmeMetadata
    from ..meta.zarr import ArrayMeta
    from ._dataset import Dataset

__all__ = ["build_pyramid", "level_factors", "rebuilding"]

_METHODS = ("mean", "nearest", "mode", "ngio")


@dataclass(eq=False)
class _Rebuilds:
    """The region rebuilds of pyramid writes running on one dataset object."""

    count: int = 0
    idle: anyio.Event = field(default_factory=anyio.Event)


_REBUILDS: weakref.WeakKeyDictionary[Dataset, _Rebuilds] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def rebuilding(ds: Dataset) -> AsyncIterator[None]:
    """Rebuild regions of ``ds``'s existing levels (a pyramid write's end) alongside other such
    rebuilds (tiles they share are ordered by the tiles' write locks, see :func:`_build_level`;
    the others run at once), but never while a change of the levels holds the structure lock:
    it waits for that change, and a change adding levels waits for the rebuilds running."""
    # counted while the lock is held (after the changes in progress or queued), released at
    # once: a change taking it later sees this rebuild. (Waiting for the lock to be free and
    # looping handed it from waiter to waiter forever, each finding it held again.)
    async with ds.structure_lock():
        state = _REBUILDS.get(ds)
        if state is None or state.count == 0:
            state = _REBUILDS[ds] = _Rebuilds()
        state.count += 1
    try:
        yield
    finally:
        state.count -= 1
        if state.count == 0:
            state.idle.set()


async def _rebuilds_done(ds: Dataset) -> None:
    """Wait for the region rebuilds of ``ds`` running now (the caller holds the structure lock,
    so no other starts)."""
    state = _REBUILDS.get(ds)
    if state is not None and state.count:
        await state.idle.wait()


def default_method(ds: Dataset) -> Method:
    """``"mode"`` for a label image (its metadata has ``image-label``, or it lies at
    ``<image>/labels/<name>``: ``image-label`` is only a SHOULD), else ``"mean"``."""
    return "mode" if _is_label(ds) else "mean"


#: the refusal of ``"ngio"`` on an image that is no label image
_NGIO_IMAGE = (
    "{what}='ngio' gives the pixels ngio's Label.consolidate() writes (nearest), and {url} is "
    "no label image: ngio downsamples images with a linear zoom, which at factors of 2 is "
    "'mean' (the default for images)"
)


def _is_label(ds: Dataset) -> bool:
    parts = ds.root.split("/")
    return ds.metadata.ome.image_label is not None or (len(parts) >= 2 and parts[-2] == "labels")


def _factor(n: int, m: int, ratio: float | None, what: str, nominal: bool = False) -> int:
    """The integer factor ``f`` with ``ceil(n / f) == m`` (our levels, zarr-python's) or
    ``floor(n / f) == m`` (ome-zarr-py's and ngff-zarr's levels drop a last partial window);
    the scale ratio breaks ties: an integer one that fits is the factor; one that is none is
    an exact ``n / m`` (ome-zarr-py's scales), whose levels are ``floor(n / f)``: 7 -> 3 and
    5 -> 2 are factor 2 (its ``local_mean`` pixels), not 3. ``nominal``: a downsampling no
    integer factor gives has the nearest one."""
    if n == 0 or m == 0:
        if n != m:
            raise UnsupportedError(f"{what}: size {n} -> {m} is not a downsampling")
        return 1

    def fits(f: int) -> bool:
        return f >= 1 and m in (-(-n // f), n // f)

    exact = False  # the ratio is no integer: floor(n / f) first
    if ratio is not None and ratio >= 1:
        r = round(ratio)
        if abs(ratio - r) < 1e-6 and fits(r):
            return r
        exact = abs(ratio - r) >= 1e-6
    if m <= n:
        for f in (n // m, -(-n // m)) if exact else (-(-n // m), n // m):
            if fits(f):
                return f
        if nominal:
            return max(1, round(n / m))
    raise UnsupportedError(f"{what}: size {n} -> {m} is not an integer downsampling")


def level_factors(ds: Dataset, method: Method | None = None) -> list[tuple[int, ...]]:
    """``[i]``: the integer factor per axis from level ``i`` to level ``i + 1``. With
    ``method="ngio"`` a size that no integer factor gives (ngio's levels of non-integer
    ``scaling_factors``: 45 -> 18 at 2.5) has the nearest one: that method's pixels follow the
    levels' shapes (:func:`~ngio_async.engine.pyramid.ngio_maps`), not the factors.

    :raises UnsupportedError: a level is no integer downsampling of the one above (named).
    """
    out = []
    for i in range(len(ds.levels) - 1):
        a, b = ds.levels[i], ds.levels[i + 1]
        factors = []
        for ax, (n, m, sa, sb) in enumerate(zip(a.shape, b.shape, a.scale, b.scale, strict=True)):
            ratio = sb / sa if sa > 0 else None
            # (named by path: a stream's view of the levels from k on counts from 0)
            what = f"axis {ds.axes[ax]!r} of level {b.path!r} of {ds.store.url}"
            factors.append(_factor(n, m, ratio, what, nominal=method == "ngio"))
        out.append(tuple(factors))
    return out


def _tile_for(
    stored: Sequence[int], ndim: int, tile: Sequence[int | None] | None
) -> tuple[int | None, ...]:
    """The target tile of a level of ``ndim`` axes stored in objects of shape ``stored``: whole
    stored objects (``tile`` rounded up to multiples)."""
    if tile is None:
        return tuple(stored)
    if isinstance(tile, str | bytes) or not isinstance(tile, Sequence):
        raise TypeError(f"tile must be one size per axis or (y, x), got {tile!r}")
    t = tuple(tile)
    if len(t) == 2 and ndim > 2:
        t = tuple(stored[:-2]) + t
    if len(t) != ndim:
        raise ValueError(f"tile needs {ndim} values (one per axis) or 2 (y, x), got {tile}")
    out: list[int | None] = []
    for v, s in zip(t, stored, strict=True):
        if v is None:
            out.append(None)
        elif v < 1:
            raise ValueError(f"tile sizes must be >= 1, got {tile}")
        else:
            out.append(-(-int(v) // s) * s)
    return tuple(out)


def _reduce(
    block: NDArray[Any], factors: tuple[int, ...], method: Method, dtype: np.dtype[Any]
) -> NDArray[Any]:
    out = downsample(block, factors, method)
    return out if out.dtype == dtype else out.astype(dtype)


def _reduce_step(
    block: NDArray[Any], step: PyramidStep, method: Method, dtype: np.dtype[Any]
) -> NDArray[Any]:
    out = reduce_step(block, step, method)
    return out if out.dtype == dtype else out.astype(dtype)


#: conditional writes of one shared tile's rebuild before ``ChangedError`` (see below). Each
#: refusal is another writer's rebuild of the tile stored: a tile near the pyramid's top,
#: which every writer rebuilds, may see many (the waits between grow to 1 s)
REBUILD_ATTEMPTS = 30


async def _rebuild_shared(
    src: Level, dst: Level, plan: LevelPlan, step: PyramidStep, method: Method, workers: Workers
) -> None:
    """Rebuild the objects of ``step.target`` one by one so that, of the rebuilds of one
    object by several processes, the one stored last read its source after every other's
    source writes landed (each writer rebuilds the tiles over its pixels after writing them):

    - on local disk, under the object's ``flock`` (the lock of its partial writes) from the
      read of the source to the write;
    - elsewhere, put conditional on the version of the object read before the source
      (``store.update``: S3, GCS, Azure, memory): a rebuild that read its source before
      another's was stored is refused and done again. An object all fill value is stored as
      such (a delete cannot be conditional).
    """
    for part in plan_shards(dst.meta, step.target):
        obj = object_region(dst, part.coords)
        key = dst._prefix + part.key
        try:
            await _rebuild_object(src, dst, plan.step_for(obj), key, (method, workers))
        finally:
            dst.forget_index(key)


async def _rebuild_object(
    src: Level, dst: Level, step: PyramidStep, key: str, how: tuple[Method, Workers]
) -> None:
    """Write the whole object ``key`` of ``dst`` (covering ``step.target``) from ``src``
    (see :func:`_rebuild_shared`)."""
    method, workers = how
    codec = dst.codec
    obj = step.target
    full = tuple(slice(0, o.stop - o.start) for o in obj)
    valid = tuple(o.stop - o.start for o in obj)

    async def reduced() -> Any:
        block = await src.read(step.source)
        return await workers.run(_reduce_step, block, step, method, dst.dtype)

    where = _local_file(dst.store, key)
    if where is not None:
        root, path = where
        async with _file_lock(path, dst.store.url, key):
            stored = await _put_object(dst, codec, key, _Patch(await reduced(), full, valid))
        if not stored:
            _remove_empty_dirs(root, path)  # the lock file kept them when the object went
        return

    async def edit(_old: Buffer | None) -> Buffer | None:
        patch = _Patch(await reduced(), full, valid)
        new = await workers.run(_encode_object, codec, key, None, patch)
        return _fill_object(codec, key) if new is None else new

    try:
        await dst.store.update(key, edit, attempts=REBUILD_ATTEMPTS)
    except ChangedError as exc:
        raise ChangedError(
            f"the pyramid tile {key!r} (level {dst.path!r}) at {dst.store.url} was not "
            f"rebuilt: other writers rewrote it between each of {REBUILD_ATTEMPTS} reads of "
            "its source and conditional writes (run build_pyramid(regions=...) over it)",
            url=dst.store.url,
            key=key,
        ) from exc


def _beyond(plans: list[LevelPlan], changed: list[Region]) -> Shared:
    """``build_pyramid(regions=...)`` called by hand: the tiles depending on a level-0 pixel
    outside ``changed`` (which another process may write, and then rebuild those tiles too,
    at the same time) are rebuilt as a pyramid write's end rebuilds such tiles; those
    wholly over ``changed`` plainly."""

    def shared(level: int, region: Region) -> bool:
        while level > 0:
            plan = plans[level - 1]
            region = plan.step_for(region).source
            level = plan.source_level
        return not region_covered(region, changed)

    return shared


async def _build_level(
    src: Level,
    dst: Level,
    plan: LevelPlan,
    method: Method,
    *,
    workers: Workers,
    window: int,
    max_bytes: int,
    done: Callable[[], None],
    shared: Shared | None = None,
) -> None:
    itemsize = src.dtype.itemsize

    dst._check_writable()

    async def one(step: PyramidStep) -> None:
        # the target's objects stay locked from the read of the source to the write: a rebuild
        # of the same tile by a concurrent write(pyramid=True) runs before or after, never
        # reading first and writing last (stale pixels over fresh ones)
        async with holding(dst, step.target):
            if shared is not None and shared(plan.level, step.target):
                await _rebuild_shared(src, dst, plan, step, method, workers)
                return
            block = await src.read(step.source)
            out = await workers.run(_reduce_step, block, step, method, dst.dtype)
            del block
            await write_region(dst, step.target, out, locked=True)

    def size_of(step: PyramidStep) -> int:  # the source block and the reduced tile
        return max(1, (math.prod(step.source_shape) + math.prod(step.target_shape)) * itemsize)

    async with prefetch(
        iter(plan), one, window=window, max_bytes=max_bytes, size_of=size_of, ordered=False
    ) as results:
        async for _ in results:
            done()


def _rounds_down(shapes: list[tuple[int, ...]], factors: list[tuple[int, ...]]) -> bool:
    """Whether the levels of ``shapes`` (``factors[i]``: from level ``i`` to ``i + 1``) round
    down: each is the floor of the one above divided by its factor (ome-zarr-py drops a last
    partial window), and one size at least is not the ceil (our levels', zarr-python's)."""
    floor = ceil = True
    for i, fs in enumerate(factors):
        for n, m, f in zip(shapes[i], shapes[i + 1], fs, strict=True):
            floor = floor and m == n // f
            ceil = ceil and m == -(-n // f)
    return floor and not ceil


def _new_level_layout(
    ds: Dataset, count: int
) -> list[tuple[str, ArrayMeta, tuple[int, ...], tuple[float, ...]]]:
    """``count`` levels below the last: (path, array metadata, factors, scale) each."""
    from msgspec.structs import replace

    from ..meta.zarr import (
        ArrayV2Meta,
        RegularChunkGrid,
        RegularGridConfig,
        ShardingCodec,
        decode_array_v2,
        decode_array_v3,
        encode_array_v2,
        encode_array_v3,
    )
    from ._create_plan import _yx, level_names

    axes = ds.axes
    yx = _yx(axes)
    factors = level_factors(ds)
    last_pair = [factors[-1][i] for i in yx] if factors else []
    if not last_pair or max(last_pair) < 2:  # a single level, or levels of one shape
        last_pair = [2] * len(yx)
    per_axis = dict(zip(yx, last_pair, strict=True))  # y and x each as the last pair (2 and 3)
    step = tuple(per_axis.get(i, 1) for i in range(len(axes)))
    base = ds.levels[0].meta
    last = ds.levels[-1]
    existing = list(ds.metadata.paths)
    names = level_names(existing, len(existing) + count)[len(existing) :]
    scale = last.scale
    shapes = [tuple(lvl.shape) for lvl in ds.levels]
    down = _rounds_down(shapes, factors)  # the levels go on as the existing ones were shaped
    for _ in names:
        shapes.append(
            tuple(
                max(1, n // f) if down else -(-n // f)
                for n, f in zip(shapes[-1], step, strict=True)
            )
        )
    check_levels_shrink(shapes, len(shapes), start=len(existing))  # before any write
    out: list[tuple[str, ArrayMeta, tuple[int, ...], tuple[float, ...]]] = []
    for path, shape in zip(names, shapes[len(ds.levels) :], strict=True):
        scale = tuple(s * f for s, f in zip(scale, step, strict=True))
        chunks = tuple(max(1, min(c, n)) for c, n in zip(base.chunks, shape, strict=True))
        meta: ArrayMeta
        if isinstance(base, ArrayV2Meta):
            meta = decode_array_v2(encode_array_v2(replace(base, shape=shape, chunks=chunks)))
        else:
            grid = chunks
            codecs = list(base.codecs)
            if base.shards is not None:
                grid = tuple(
                    max(c, min(s, -(-n // c) * c))
                    for s, c, n in zip(base.shards, chunks, shape, strict=True)
                )
                codecs = [
                    replace(c, configuration=replace(c.configuration, chunk_shape=chunks))
                    if isinstance(c, ShardingCodec)
                    else c
                    for c in codecs
                ]
            new = replace(
                base,
                shape=shape,
                chunk_grid=RegularChunkGrid(RegularGridConfig(grid)),
                codecs=tuple(codecs),
                dimension_names=tuple(axes),  # as NGFF 0.5 wants, whatever level 0 has
            )
            meta = decode_array_v3(encode_array_v3(new))
        out.append((path, meta, step, scale))
    return out


async def _add_levels(
    ds: Dataset, layout: list[tuple[str, ArrayMeta, tuple[int, ...], tuple[float, ...]]]
) -> list[Level]:
    """Write the array metadata of new levels (not yet listed in the group), and the groups
    their paths lie in (ngff-zarr's ``scale2/image``) that are not there yet; their Levels."""
    from ..meta.zarr import ArrayV2Meta, encode_array_v2, encode_array_v3
    from ._consolidated import _put_all
    from ._create_plan import path_groups

    paths = [path for path, _, _, _ in layout]
    groups = path_groups(ds.root, paths, ds.metadata.ngff_version)
    docs = [(key, data) for key, data in groups if not await ds.store.exists(key)]
    for path, meta, _, _ in layout:
        if isinstance(meta, ArrayV2Meta):
            docs.append((join(ds.root, path, ".zarray"), encode_array_v2(meta)))
        else:
            docs.append((join(ds.root, path, "zarr.json"), encode_array_v3(meta)))
    await _put_all(ds.store, docs)
    last = ds.levels[-1]
    levels = []
    for path, meta, _, scale in layout:
        lvl = Level(
            ds.store,
            join(ds.root, path),
            meta,
            scale=scale,
            translation=last.translation,
            workers=ds._workers,
            window=last._window,
        )
        lvl.writable = True
        levels.append(lvl)
    return levels


async def _list_levels(
    ds: Dataset, layout: list[tuple[str, ArrayMeta, tuple[int, ...], tuple[float, ...]]]
) -> None:
    """Append the new levels to the group's multiscale (datasets and scales), keeping the rest."""
    from msgspec.structs import replace

    from ..meta import Dataset as NgffDataset, Scale, Translation
    from ._dataset_edits import _with_extra

    def edit(ome: OmeMetadata) -> OmeMetadata:
        assert ome.multiscales is not None
        ms = ome.multiscales[0]
        datasets = list(ms.datasets)
        for path, _, step, _ in layout:
            prev = datasets[-1]
            if prev.scale is None:
                raise UnsupportedError(f"level {prev.path!r}: scale stored by path")
            scale = [s * f for s, f in zip(prev.scale, step, strict=True)]
            shift = _next_translation(datasets[-2] if len(datasets) > 1 else None, prev, scale)
            transforms = [
                Scale(scale=scale)
                if isinstance(t, Scale)
                else Translation(translation=shift)
                if isinstance(t, Translation) and shift is not None
                else t
                for t in prev.coordinate_transformations
            ]
            datasets.append(NgffDataset(path=path, coordinate_transformations=transforms))
        new_ms = _with_extra(replace(ms, datasets=datasets), ms)
        return _with_extra(replace(ome, multiscales=[new_ms, *ome.multiscales[1:]]), ome)

    await ds._edit_metadata(edit)


async def _record_method(ds: Dataset, method: Method) -> None:
    """The multiscale's ``type`` and ``metadata`` (SHOULD fields) name ``method``."""
    from msgspec.structs import replace

    from ._create_plan import downsampling
    from ._dataset_edits import _with_extra

    fields = downsampling(method)
    if method == "ngio":
        fields["metadata"]["description"] = (
            "the pixels ngio's Label.consolidate() writes: scipy.ndimage.zoom(order=0, "
            "grid_mode=True) over dask blocks of the level above (ngio_async)"
        )
    ms = ds.metadata.ome.multiscales
    if ms is not None and ms[0].type == fields["type"] and ms[0].metadata == fields["metadata"]:
        return
    if ds.metadata.ngff_version not in ("0.4", "0.5"):  # 0.6 documents are read, not written:
        return  # its levels were written, and these fields are only SHOULDs

    def edit(ome: OmeMetadata) -> OmeMetadata:
        assert ome.multiscales is not None
        first = ome.multiscales[0]
        new_ms = _with_extra(replace(first, **fields), first)
        return _with_extra(replace(ome, multiscales=[new_ms, *ome.multiscales[1:]]), ome)

    await ds._edit_metadata(edit)


def _next_translation(
    before: NgffDataset | None, last: NgffDataset, scale: Sequence[float]
) -> list[float] | None:
    """The translation of a level of ``scale`` below ``last``: the existing levels' translations
    continued linearly in the scale (ome-zarr-py centres each level's pixels, ``t = (s - 1) / 2``;
    equal translations stay equal); ``None`` to keep ``last``'s as it is."""
    t1, s1 = last.translation, last.scale
    if t1 is None or s1 is None or before is None:
        return None
    t0, s0 = before.translation, before.scale
    if t0 is None or s0 is None:
        return None
    return [
        b + (b - a) * (s - sb) / (sb - sa) if sb != sa else b
        for a, b, sa, sb, s in zip(t0, t1, s0, s1, scale, strict=True)
    ]


async def build_pyramid(
    ds: Dataset,
    levels: int | None = None,
    method: Method | None = None,
    regions: Sequence[Sequence[Any]] | None = None,
    tile: Sequence[int | None] | None = None,
    *,
    source: Literal["previous", "level0"] = "previous",
    window: int | None = None,
    progress: Callable[[int, int], object] | None = None,
    shared: Shared | None = None,
) -> None:
    """The implementation of :meth:`Dataset.build_pyramid` (see there). ``shared``: which
    tiles writers in other processes may rebuild at the same time (a pyramid write's end,
    :mod:`._cascade`): those are rebuilt by :func:`_rebuild_shared`."""
    ds._check_writable()
    chosen: Method = default_method(ds) if method is None else method
    if chosen not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if chosen == "mean" and _is_label(ds):  # averaging label ids makes up new ones
        raise ValueError(
            "method='mean' would average label ids (1 and 9 give 5); label images downsample "
            "with 'mode' (the default), 'nearest' or 'ngio'"
        )
    if chosen == "ngio" and not _is_label(ds):
        raise ValueError(_NGIO_IMAGE.format(what="method", url=ds.url))
    existing = len(ds.levels)
    from ._create_values import integer

    total_levels = existing if levels is None else integer(levels, "levels", minimum=1)
    if total_levels < existing:
        raise ValueError(
            f"levels={levels}: the image has {existing} levels; build_pyramid does not remove "
            "levels (levels=None rebuilds them all)"
        )
    if total_levels > existing and _is_label(ds):
        await _check_image_levels(ds, total_levels)
    window = ds.limits.prefetch_tiles if window is None else integer(window, "window", minimum=1)
    from ._dataset_tiles import check_progress

    check_progress(progress)
    factors = level_factors(ds, chosen)
    layout = _new_level_layout(ds, total_levels - existing) if total_levels > existing else []
    factors += [step for _, _, step, _ in layout]
    if existing + len(layout) < 2:
        return
    # planned (every argument checked) before the new levels' arrays are written
    metas = [lvl.meta for lvl in ds.levels] + [meta for _, meta, _, _ in layout]
    tiles = [_tile_for(meta.stored_chunks, len(meta.shape), tile) for meta in metas[1:]]
    shapes = [tuple(meta.shape) for meta in metas]  # as stored (ceil or floor of the factors)
    if chosen == "ngio":  # (refused here naming the level, the axis and the store)
        paths = [lvl.path for lvl in ds.levels] + [join(ds.root, p) for p, *_ in layout]
        names = (paths, ds.axes, ds.store.url)
        ngio_maps(shapes, [tuple(meta.chunks) for meta in metas], names=names)
    plans = pyramid_plan(
        ds.shape,
        factors,
        tiles,
        source=source,
        regions=regions,
        shapes=shapes,
        method=chosen,
        chunks=[tuple(meta.chunks) for meta in metas],
    )
    plans = [dc_replace(p, tiles=None) if p.level >= existing else p for p in plans]
    if shared is None and regions is not None:
        shared = _beyond(plans, changed_regions(regions, ds.shape))
    if layout:  # built from the last level: after the rebuilds of its tiles in progress
        await _rebuilds_done(ds)
    new_levels = await _add_levels(ds, layout) if layout else []
    all_levels = [*ds.levels, *new_levels]
    total = sum(len(p) for p in plans)
    count = 0

    def done() -> None:
        nonlocal count
        count += 1
        if progress is not None:
            progress(count, total)

    for plan in plans:
        await _build_level(
            all_levels[plan.source_level],
            all_levels[plan.level],
            plan,
            chosen,
            workers=ds._workers,
            window=window,
            max_bytes=ds.limits.prefetch_bytes,
            done=done,
            shared=None if plan.level >= existing else shared,
        )
    if layout:
        await _list_levels(ds, layout)
        ds.levels.extend(new_levels)
    if regions is None:  # every level below 0 is now the chosen method's: say so
        await _record_method(ds, chosen)
    if layout:
        for lvl, cal in zip(ds.levels, ds.metadata.spatial_calibration, strict=True):
            lvl.scale = cal.scale
            lvl.translation = cal.translation
    if (layout or levels is not None) and not _is_label(ds):
        # also when no level was added: a retry completes labels an earlier failure left short
        await _grow_labels(ds, total_levels, window)


async def _check_image_levels(label: Dataset, total_levels: int) -> None:
    """A label image has one level per level of its image (NGFF): refuse more, before any I/O
    that writes (the image is ``<image>/labels/<name>``; a label found elsewhere is not checked)."""
    parts = label.root.split("/")
    if len(parts) < 2 or parts[-2] != "labels":
        return
    image_root = "/".join(parts[:-2])
    try:
        image = await read_group_metadata(label.store, image_root)
    except (NotFoundError, MetadataError, UnsupportedError):
        return
    if image.multiscales is None:
        return
    have = len(image.multiscales[0].datasets)
    if total_levels > have:
        raise ValueError(
            f"levels={total_levels}: a label image has one level per level of its image, which "
            f"has {have} (build the image's pyramid first: it adds the labels' levels too)"
        )


async def _grow_labels(ds: Dataset, total_levels: int, window: int) -> None:
    """Give every label image as many levels as the image (NGFF: a label image MUST have one
    dataset per image level): the levels it lacks, built from its own (``mode``); those it has
    stay (they were rebuilt too, a converted label's copied levels among them)."""
    for name in await ds.labels.names():
        label = await ds.labels.open(name, mode="r+")
        try:
            if len(label.levels) < total_levels:  # labels: mode, never averaged
                await label.build_pyramid(
                    levels=total_levels, method="mode", regions=(), window=window
                )
        finally:
            await label.aclose()
