"""The jobs copying levels: planning an OME-Zarr image's jobs (its labels, its other
multiscales), filling each level tile by tile, and running jobs in the order of writes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import NotFoundError
from .._prefetch import start_deferred
from ..engine.pyramid import check_levels_shrink
from ..images import Dataset
from ..images._consolidated import _put_all
from ..images._create_plan import path_groups
from ..images._metadata_writes import _prepare_root
from ..images._open import join, read_group_metadata
from ..images._pyramid import level_factors
from ..meta import to_attrs, write_document
from ._groups import (
    _data_windowed,
    _has_group,
    _has_tables,
    _json_or_none,
    _leave_out,
    _missing,
    _write_group,
)
from ._jobs import CompressorArg, _Counter, _Job, _label_names
from ._omero import _with_repaired_omero
from ._plan import (
    _grid,
    _more_level_shapes,
    _object_shape,
    _own_levels,
    _per_image,
    _regions,
    _zarr_plan,
)
from ._resume import _UNFINISHED, _unmark
from ._tables import copy_tables, tables_left_out

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .._limits import Limits
    from .._workers import Workers
    from ..images._create_plan import ImagePlan
    from ..meta import OmeMetadata
    from ..stores import AsyncStore
    from ._formats import ImageSource


async def _zarr_job(
    root: str,
    src: Dataset,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    ome: OmeMetadata | None = None,
    *,
    group: bool = True,
) -> _Job:
    """The job copying ``src``'s levels, and their own attributes, into a new layout at
    ``root`` (see :func:`_zarr_plan`)."""
    attrs = await _level_attributes(src, levels)
    plan = _zarr_plan(src, version, chunks, shards, compressor, levels, ome, attrs)
    tiles = sum(_grid(a.shape, _object_shape(a)) for a in plan.arrays)
    kept = tuple(attrs[: len(plan.arrays)]) if version == "0.4" else ()
    return _Job(root, plan, _copy_levels(src), tiles, group=group, array_attrs=kept)


async def _level_attributes(src: Dataset, levels: int | None = None) -> list[dict[str, Any]]:
    """The own attributes of each level copied (the first ``levels``, default all): a v3
    array's ``attributes``, a v2 array's ``.zattrs`` (read concurrently; missing, denied as S3
    denies a missing key without list permission, or not a JSON object: none)."""
    n = len(src.levels) if levels is None else max(1, min(int(levels), len(src.levels)))
    out: list[dict[str, Any]] = [
        dict(getattr(lvl.meta, "attributes", None) or {}) for lvl in src.levels[:n]
    ]

    async def read(i: int, path: str) -> None:
        doc = await _json_or_none(src.store, join(src.root, path, ".zattrs"))
        if isinstance(doc, dict):
            out[i] = doc

    from ..meta.zarr import ArrayV2Meta

    async with anyio.create_task_group() as tg:
        for i, (path, lvl) in enumerate(zip(src.metadata.paths[:n], src.levels[:n], strict=True)):
            if isinstance(lvl.meta, ArrayV2Meta):
                tg.start_soon(read, i, path)
    return out


def _copy_levels(src: Dataset) -> Callable[[Dataset, _Counter], Any]:
    async def fill(dst: Dataset, counter: _Counter) -> None:
        for i, lvl in enumerate(dst.levels):
            async with dst.writer(level=i) as w:
                tiles = src.tiles(level=i, shape=_object_shape(lvl.meta), ordered=False)
                async for tile in tiles:
                    await w.write(tile)
                    counter.step(tile.data.nbytes)

    return fill


def _copy_source(
    src: ImageSource, window: int, levels: int = 1, cascade: bool = False
) -> Callable[[Dataset, _Counter], Any]:
    """Fill level 0 (and, with ``levels``, the next ones: a pyramidal TIFF's own levels) from
    ``src``, one stored object (shard, else chunk) per read. ``cascade``: the lower levels are
    computed from level 0's tiles as they are written (``writer(pyramid=True)``).

    Memory stays near ``limits.prefetch_bytes``: a quarter of it in tiles being read (at most
    ``window``), a quarter in tiles handed to the writer and not yet stored (at least one
    each); decoding and encoding copies double both.
    """

    async def fill(dst: Dataset, counter: _Counter) -> None:
        for level in range(levels):
            await _copy_level(src, dst, level, window, counter, cascade and level == 0)

    return fill


async def _copy_level(
    src: ImageSource, dst: Dataset, level: int, window: int, counter: _Counter, pyramid: bool
) -> None:
    lvl = dst.levels[level]
    tile = _object_shape(lvl.meta)
    tile_bytes = max(1, math.prod(tile) * dst.dtype.itemsize)
    share = max(1, dst.limits.prefetch_bytes // (4 * tile_bytes))  # x2: decode/encode copies
    slots = anyio.Semaphore(max(1, min(window, share)))
    failures: list[Exception] = []

    async def one(region: tuple[slice, ...], w: Any, tg: Any) -> None:
        try:
            data = await (src.read(region, level) if level else src.read(region))  # type: ignore[call-arg]
            await w.write((region, data))
            counter.step(data.nbytes)
        except Exception as exc:  # noqa: BLE001 - the first one is re-raised below
            failures.append(exc)
            tg.cancel_scope.cancel()
        finally:
            slots.release()

    async with dst.writer(level, max(1, min(share, 8)), pyramid) as w:
        async with anyio.create_task_group() as tg:
            for region in _regions(lvl.shape, tile):
                await slots.acquire()
                start_deferred(tg, one, region, w, tg)
        if failures:
            raise failures[0]


async def _run_jobs(
    store: AsyncStore,
    root: str,
    jobs: list[_Job],
    labels_attrs: dict[str, Any] | None,
    counter: _Counter,
    limits: Limits | None,
    overwrite: bool,
    extra_levels: int | None,
    workers: Workers | None = None,
    prepare: bool = True,
) -> Dataset:
    if prepare:  # False: a plate's field, whose plate root was prepared (on a listing store)
        await _prepare_root(store, root, overwrite)
    # the groups level paths lie in (ngff-zarr's scale0/image) first: zarr has no implicit ones
    docs = [doc for j in jobs for doc in path_groups(j.root, j.plan.paths, j.plan.version)]
    docs += [(join(j.root, k), d) for j in jobs for k, d in j.plan.array_documents()]
    docs += [
        (join(j.root, path, ".zattrs"), write_document(attrs))
        for j in jobs
        for path, attrs in zip(j.plan.paths, j.array_attrs, strict=False)
        if attrs
    ]
    await _put_all(store, docs)
    image: Dataset | None = None
    for job in jobs:
        ds = Dataset.from_plan(
            store, job.root, job.plan.ome, list(job.plan.arrays), limits=limits, workers=workers
        )
        await job.fill(ds, counter)
        if job.root == root and image is None:
            image = ds
    assert image is not None
    version = jobs[0].plan.version
    left: list[str] = []
    for job in (j for j in jobs if j.tables is not None):  # before their group metadata
        assert job.tables is not None
        left += await copy_tables(job.tables, store, job.root, version, image._workers)
    if left:
        tables_left_out(left)
    for job in (j for j in jobs[1:] if j.group):
        await _write_group(store, job.root, to_attrs(job.plan.ome, version), version)
    if labels_attrs is not None:
        await _write_group(store, join(root, "labels"), labels_attrs, version)
    attrs = to_attrs(await _data_windowed(image, jobs[0].plan), version)
    extra = extra_levels is not None and extra_levels > len(image.levels)
    if extra and not root:  # still unfinished while they are built (a container's is)
        mark = attrs.get("ngio_async")
        attrs["ngio_async"] = {
            **(mark if isinstance(mark, dict) else {}),
            **_UNFINISHED["ngio_async"],
        }
    await _write_group(store, root, attrs, version)  # last
    if extra:
        last = [0, 0]  # the build's steps join the counter (shared by a plate's fields)

        def built(done: int, total: int) -> None:
            counter.done += done - last[0]
            counter.total += total - last[1]
            last[:] = [done, total]
            if counter.callback is not None:
                counter.callback(counter.done, counter.total)

        # the copied levels stay
        await image.build_pyramid(levels=extra_levels, regions=(), progress=built)
        if not root:
            await _unmark(store, version)
    return image


async def _zarr_jobs(
    src: Dataset,
    root: str,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    opened: list[Dataset],
) -> tuple[list[_Job], dict[str, Any] | None]:
    """Jobs for the image and each label image, and the ``labels`` group attributes (reads the
    source only). The label images opened are appended to ``opened`` (the caller closes them).
    An image with a ``tables`` group has its tables copied by its job (``_Job.tables``; ngio
    keeps none in label images)."""
    has_tables = await _has_tables(src.store, src.root, src.metadata.ngff_version)
    if levels is not None and levels > len(src.levels):
        # before the copy: build_pyramid, run after it, would refuse them with levels written
        check_levels_shrink(_more_level_shapes(src, levels), levels, start=len(src.levels))
        level_factors(src)  # (levels no integer factor apart, ngio's 2.5x: named, refused)
    ome = await _with_repaired_omero(src)
    jobs = [await _zarr_job(root, src, version, chunks, shards, compressor, levels, ome)]
    if has_tables:
        jobs[0].tables = src.tables
    multiscales = src.metadata.ome.multiscales or []
    for k in range(1, len(multiscales)):  # others of the group: their arrays are copied too
        if {d.path for d in multiscales[k].datasets} <= set(jobs[0].plan.paths):
            continue
        other = await _multiscale(src, k)
        opened.append(other)
        job = await _zarr_job(
            root,
            other,
            version,
            _per_image(chunks, other.axes, src.axes),
            _per_image(shards, other.axes, src.axes),
            compressor,
            None,
            group=False,
        )
        jobs.append(job)
    try:  # once: its listing and its attributes (it was read twice)
        group = await read_group_metadata(
            src.store,
            join(src.root, "labels"),
            parent_version=src.metadata.ngff_version,
            plain_ok=True,
        )
    except NotFoundError:
        group = None
    names = list(group.labels or []) if group is not None else []
    labels_attrs: dict[str, Any] | None = None
    if group is not None and names:
        labels_attrs = to_attrs(group, version)
        for name in names:
            try:
                label = await src.labels.open(name, mode="r")
            except NotFoundError:
                if await _has_group(src.store, join(src.root, "labels", name)):
                    raise  # it is there, but part of it is not: no conversion without it
                _leave_out(labels_attrs, "labels", name, version)
                _missing(f"the label image {name!r} listed in labels/ of {src.url}", "labels/")
                continue
            opened.append(label)
            if levels is not None and levels > len(label.levels):
                level_factors(label)  # (as the image's, above)
            job = await _zarr_job(
                join(root, "labels", name),
                label,
                version,
                _per_image(chunks, label.axes, src.axes),
                _per_image(shards, label.axes, src.axes),
                compressor,
                levels,
            )
            jobs.append(job)
    if labels_attrs is not None and not _label_names(jobs):
        labels_attrs = None  # none of the listed label images exists
    return jobs, labels_attrs


async def _multiscale(src: Dataset, index: int) -> Dataset:
    """The levels of multiscale ``index`` of ``src``'s group, as a read-only dataset."""
    from msgspec.structs import replace

    from ..images._open import read_level_metadata

    ome = src.metadata.ome
    assert ome.multiscales is not None
    ms = ome.multiscales[index]
    paths = tuple(d.path for d in ms.datasets)
    arrays = await read_level_metadata(src.store, src.root, ome, paths, multiscale=index)
    only = replace(ome, multiscales=[ms])
    return Dataset.from_plan(src.store, src.root, only, arrays, limits=src.limits, mode="r")


def _source_job(src: ImageSource, root: str, plan: ImagePlan, limits: Limits) -> _Job:
    """The job that fills ``plan`` (at ``root``) from ``src``: its own levels when they match,
    else level 0 with the others computed on the way."""
    own = _own_levels(src, plan)
    tiles = sum(_grid(a.shape, _object_shape(a)) for a in plan.arrays[:own])
    window = max(2, limits.decode_threads)
    return _Job(root, plan, _copy_source(src, window, own, cascade=own < len(plan.arrays)), tiles)
