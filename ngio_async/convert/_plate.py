"""Converting an HCS plate: every field image planned first, then written, the plate group
last."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import MetadataError, NotFoundError, UnsupportedError
from .._prefetch import start_deferred
from .._workers import Workers
from ..images import Dataset, Plate
from ..images._consolidated import _put_all
from ..images._create import _open_target
from ..images._open import join, read_group_metadata
from ..meta import to_attrs, validate
from ._copy import _run_jobs, _zarr_jobs
from ._groups import (
    _has_group,
    _has_tables,
    _leave_out,
    _missing,
    _plain_attrs,
    _plain_group,
    _read_ome_group,
    _write_group,
)
from ._jobs import CompressorArg, ConvertResult, _Counter, _Job, _label_names, _name
from ._plan import _check_layout
from ._resume import _start
from ._tables import copy_tables, tables_left_out

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .._limits import Limits
    from ..tables import Tables


# ------------------------------------------------------------------------------ HCS plates
async def _open_plate(src: Any, options: Mapping[str, Any]) -> Plate | None:
    """The HCS plate at ``src`` (``None``: not a plate, the image reader's error stands; a
    store error is raised)."""
    from ..images import open_plate_async

    try:
        return await open_plate_async(src, **options)
    except (UnsupportedError, MetadataError, NotFoundError):
        return None


@dataclass
class _PlatePlan:
    """What a plate conversion writes: per field its jobs, per well its group attributes, the
    row groups and the plate group attributes (written last)."""

    plate_attrs: dict[str, Any]
    ome_group: tuple[dict[str, Any], bytes | None] | None  # bioformats2raw: OME/, its XML
    rows: dict[str, dict[str, Any]]  # row group -> its attributes (a plain group's own)
    wells: dict[str, dict[str, Any]]
    fields: list[tuple[str, list[_Job], dict[str, Any] | None, int | None]]
    at_once: int
    field_limits: Limits
    workers: Workers
    tables: Tables | None  # the plate's own (its tables/ group), copied before its group


def _field_limits(limits: Limits, fields: int) -> tuple[int, Limits]:
    """How many fields convert at once (``decode_threads``, at most) and the limits of each:
    the tile prefetch and chunk cache bounds shared among them, so a plate holds no more
    tiles in memory than one image conversion (their decode and encode threads are shared
    too)."""
    from dataclasses import replace

    at_once = max(1, min(limits.decode_threads, fields))
    return at_once, replace(
        limits,
        prefetch_tiles=max(1, limits.prefetch_tiles // at_once),
        prefetch_bytes=max(1, limits.prefetch_bytes // at_once),
        cache_bytes=limits.cache_bytes // at_once,
    )


async def _plan_plate(
    plate: Plate,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    limits: Limits,
    opened: list[Dataset],
) -> _PlatePlan:
    """Read the plate's wells and fields (metadata only, at most ``max_requests`` at a time)
    and plan every field image as :func:`convert` plans an image; nothing is written."""
    from ..images._plate_layout import PENDING_KEY
    from ..images._run_all import _run_all
    from ..meta._base import dump

    store, root = plate.store, plate.root
    ome_group = None
    if plate.wells:
        ome = await read_group_metadata(store, root)
        plate_attrs = to_attrs(ome, version)
        validate(plate_attrs, kind="plate")
        if ome.bioformats2raw_layout is not None:
            ome_group = await _read_ome_group(store, root, plate.version, version)
    else:  # no field yet: the pending layout, in the target version's document
        body = dump(plate.metadata)
        body.pop("wells", None)
        body.pop("version", None)
        plate_attrs = {PENDING_KEY: {"plate": body}}
    wells: dict[str, dict[str, Any]] = {}
    field_paths: dict[str, list[str]] = {}
    tables = await _has_tables(store, root, plate.version)

    async def read_well(path: str) -> None:
        try:
            meta = await read_group_metadata(store, join(root, path), parent_version=plate.version)
        except NotFoundError:
            if await _has_group(store, join(root, path)):
                raise
            _missing(f"well {path!r} of plate {plate.url}", "plate's wells")
            return
        except MetadataError:
            from ..images._plate_ops import _empty_well

            if await _empty_well(store, join(root, path)) is None:
                raise
            return  # its images list empty (ngio's add_well): a well without fields, left out
        if meta.well is None:
            raise UnsupportedError(
                f"well {path!r} of plate {plate.url} has no 'well' metadata "
                f"(its NGFF metadata: {', '.join(meta.kinds) or 'none'})"
            )
        attrs = to_attrs(meta, version)
        try:
            validate(attrs, kind="well")
        except MetadataError as exc:  # a peer's field path (fov_a): read, never written
            raise MetadataError(
                f"well {path!r} of plate {plate.url} cannot be written as NGFF {version} "
                f"(nothing was written): {exc.rule}",
                exc.path,
            ) from None
        wells[path] = attrs
        field_paths[path] = [im.path for im in meta.well.images]

    await _run_all(plate.wells, read_well, plate.limits.max_requests)
    wells = {w: wells[w] for w in plate.wells if w in wells}  # the plate's order
    todo = [(w, f) for w in wells for f in field_paths[w]]
    at_once, field_limits = _field_limits(limits, len(todo))
    readers = Workers(field_limits.decode_threads)  # decoding of all fields, bounded together
    planned: dict[tuple[str, str], tuple[list[_Job], dict[str, Any] | None, int | None]] = {}

    async def plan_field(item: tuple[str, str]) -> None:
        where = join(item[0], item[1])
        try:
            ds = await Dataset.open_in(
                store, join(root, where), limits=field_limits, workers=readers
            )
        except NotFoundError:
            if await _has_group(store, join(root, where)):
                raise
            _missing(f"field {where} of plate {plate.url}", "well's images")
            return
        opened.append(ds)
        try:
            layout = _check_layout(ds.axes, chunks, shards, levels)
            jobs, labels_attrs = await _zarr_jobs(
                ds, where, version, *layout, compressor, levels, opened
            )
        except (ValueError, TypeError) as exc:  # the fields of a plate may differ: name it
            raise type(exc)(f"field {where} of plate {plate.url}: {exc}") from None
        extra = levels if levels is not None and levels > len(ds.levels) else None
        planned[item] = (jobs, labels_attrs, extra)

    await _run_all(todo, plan_field, plate.limits.max_requests)
    for w, f in todo:
        if (w, f) not in planned:
            _leave_out(wells[w], "well", f, version)
    for w in plate.wells:  # those missing, or with no field left
        if w not in wells or not any((w, f) in planned for f in field_paths[w]):
            wells.pop(w, None)
            _leave_out(plate_attrs, "plate", w, version)
    if plate.wells and not wells:
        raise NotFoundError(f"no field image of plate {plate.url} exists", url=plate.url)
    rows: dict[str, dict[str, Any]] = {r: {} for r in sorted({w.split("/")[0] for w in wells})}

    async def read_row(row: str) -> None:
        rows[row] = await _plain_attrs(store, join(root, row), plate.version)

    await _run_all(list(rows), read_row, plate.limits.max_requests)
    fields = [(join(w, f), *planned[(w, f)]) for w, f in todo if (w, f) in planned]
    writers = Workers(field_limits.decode_threads)  # and encoding
    own = plate.tables if tables else None
    return _PlatePlan(
        plate_attrs, ome_group, rows, wells, fields, at_once, field_limits, writers, own
    )


async def _convert_plate(
    plate: Plate,
    dst: Any,
    *,
    src_name: str,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    overwrite: bool,
    counter: _Counter,
    limits: Limits | None,
    dst_options: Mapping[str, Any] | None,
    opened: list[Dataset],
) -> ConvertResult:
    """Convert an HCS plate: every field image as :func:`convert` converts an image (a few at
    a time, see :func:`_field_limits`), then the row and well groups, the plate group last."""
    if version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {version!r}")
    if version == "0.4" and shards not in (None, False):
        raise UnsupportedError("sharding needs zarr v3 (NGFF 0.5), not 0.4")
    plan = await _plan_plate(
        plate, version, chunks, shards, compressor, levels, limits or plate.limits, opened
    )
    counter.total = sum(j.tiles for _, jobs, _, _ in plan.fields for j in jobs)
    store, owns = _open_target(dst, limits, dict(dst_options or {}))
    try:
        overwrite = await _start(store, version, overwrite)
        slots = anyio.CapacityLimiter(plan.at_once)

        async def one(item: tuple[str, list[_Job], dict[str, Any] | None, int | None]) -> None:
            where, jobs, labels_attrs, extra = item
            async with slots:
                await _run_jobs(
                    store,
                    where,
                    jobs,
                    labels_attrs,
                    counter,
                    plan.field_limits,
                    overwrite,
                    extra,
                    plan.workers,
                    prepare=not store.supports_listing,  # the root's check covered the fields
                )

        async with anyio.create_task_group() as tg:
            for item in plan.fields:
                start_deferred(tg, one, item)
        groups = [
            (join(r, k), d) for r, a in plan.rows.items() for k, d in _plain_group(version, a)
        ]
        await _put_all(store, groups)

        async def well(path: str) -> None:
            await _write_group(store, path, plan.wells[path], version)

        from ..images._run_all import _run_all

        await _run_all(list(plan.wells), well, store.limits.max_requests)
        if plan.ome_group is not None:
            attrs, xml = plan.ome_group
            if xml is not None:
                await store.put(join("OME", "METADATA.ome.xml"), xml)
            await _write_group(store, "OME", attrs, version)
        if plan.tables is not None:
            left = await copy_tables(plan.tables, store, "", version, plan.workers)
            if left:
                tables_left_out(left)
        await _write_group(store, "", plan.plate_attrs, version)  # last
        labels = dict.fromkeys(name for _, jobs, _, _ in plan.fields for name in _label_names(jobs))
        return ConvertResult(
            src=src_name,
            dst=store.url if not isinstance(dst, str | os.PathLike) else _name(dst),
            ngff_version=version,
            shape=(),
            dtype="",
            axes=(),
            levels=_field_levels(plan.fields[0]) if plan.fields else 0,
            labels=tuple(labels),
            tiles=counter.done,
            bytes_written=counter.nbytes,
            kind="plate",
            wells=tuple(plan.wells),
            fields=len(plan.fields),
        )
    finally:
        if owns:
            with anyio.CancelScope(shield=True):
                await store.aclose()


def _field_levels(field: tuple[str, list[_Job], dict[str, Any] | None, int | None]) -> int:
    """The levels a planned field ends with (those copied, or ``levels`` when more)."""
    return field[3] or len(field[1][0].plan.arrays)
