"""``convert_many``: converting a batch of inputs into a folder, skipping the outputs already
complete."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio

from .._errors import PermissionDeniedError
from .._prefetch import first_leaf, start_deferred
from ..images._open import container_series
from ._convert import convert
from ._inputs import FolderListing, _batch_inputs
from ._jobs import ConvertResult, Progress, _name
from ._locations import (
    _check_destination,
    _is_store_file,
    _location,
    _writes_to,
    check_distinct,
    refuse_file,
    refuse_http_url,
    refuse_memory_url,
)
from ._plate import _open_plate
from ._resume import is_complete

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


__all__ = ["convert_many", "convert_many_sync", "output_name"]

# ------------------------------------------------------------------------------ batches
#: what output names drop (compound suffixes first); then a trailing ``.ome`` goes too
_STEM_SUFFIXES = (".companion.ome", ".ome.zarr", ".zarr")


def output_name(src: Any) -> str:
    """``<stem>.ome.zarr`` for a source path or URL (``a.ome.tif``, ``a.ome.btf``, ``a.tiff``
    and ``a.companion.ome`` -> ``a.ome.zarr``): a URL's path, without its query or fragment (a
    signed URL), percent-escapes of ``file://`` and ``http(s)://`` decoded."""
    text = os.fspath(src)
    if "://" in text:
        parts = urlsplit(text)
        text = parts.path
        if parts.scheme.lower() in ("file", "http", "https"):
            text = unquote(text)
    base: str = os.path.basename(text.rstrip("/"))
    for suffix in _STEM_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    else:
        base = os.path.splitext(base)[0]
        if base.lower().endswith(".ome"):
            base = base[:-4]
    return base + ".ome.zarr"


async def convert_many(
    srcs: str | os.PathLike[str] | Sequence[Any],
    dst_dir: str | os.PathLike[str],
    *,
    concurrency: int = 2,
    progress: Progress | None = None,
    overwrite: bool = False,
    dst_options: Mapping[str, Any] | None = None,
    folder_listings: dict[str, FolderListing] | None = None,
    **convert_options: Any,
) -> dict[str, ConvertResult | Exception]:
    """Convert every input to ``<dst_dir>/<stem>.ome.zarr``, ``concurrency`` at a time.

    :param srcs: paths / URLs, a glob pattern (``"data/*.tif"``), or a folder of inputs (a
        local directory, or an ``s3://`` / ``gs://`` / ``az://`` key prefix, that is no zarr
        node: its TIFFs and OME-Zarr directories, and those of its folders, whose outputs go
        to the same folders under ``dst_dir``; so does a folder in a list). A folder that
        holds no image fails as an input (``ValueError``), an empty or missing prefix with
        ``NotFoundError``, an ``http(s)://`` folder (a server lists none) with
        ``UnsupportedError``.
    :param progress: ``progress(done, total)`` in inputs: ``(0, total)`` once they are known,
        then after each one finishes (or fails).
    :param overwrite: convert again even outputs that are complete; otherwise a complete output
        (its NGFF group metadata exists) is skipped (``ConvertResult.skipped``) and an
        incomplete one is replaced.
    :param folder_listings: the listings of folders on object stores done already (by
        :func:`remote_folder_inputs`' ``listings``, by URL): those folders are not listed
        again; the others' listings are added.
    :param convert_options: passed to :func:`convert` (``ngff_version``, ``chunks``, ...).
    :returns: per input (its string form): the :class:`ConvertResult` or the exception raised.
        A failing input never stops the others; an input that is its own output (or holds it,
        or lies inside it) fails with ``ValueError`` and is left untouched; an input that is
        another input's output (a folder converted into itself, run again; ``a.ome.zarr``
        beside ``a.tif``, an earlier conversion) is no input. Several files of one multi-file
        OME-TIFF (a ``.companion.ome`` and its TIFFs, a Micro-Manager ``*_MMStack_*.ome.tif``
        series) convert once, as its companion file, else the first TIFF its OME-XML names
        (named after it); the others are that result's ``members``. Once writing to
        ``dst_dir`` is refused (``PermissionDeniedError``), the inputs not started yet fail so
        without being read.
    :raises ValueError, UnsupportedError: ``dst_dir`` is a ``memory://`` or ``http(s)://`` URL.
    :raises NotFoundError, PermissionDeniedError, StoreError: an object-store ``dst_dir``
        does not answer (a missing bucket, missing credentials), before any input is read.
    """
    from dataclasses import replace

    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    refuse_memory_url(dst_dir)
    refuse_http_url(dst_dir)
    opts = dict(dst_options or {})
    await _check_destination(os.fspath(dst_dir), opts)
    given: dict[Any, tuple[Any, str]] = {}
    remote_sets: dict[str, tuple[str, ...]] = {}
    listed, failed = await _batch_inputs(
        srcs, dst_dir, convert_options.get("src_options"), remote_sets, folder_listings
    )
    for src, sub in listed:  # one given twice (in its folder too): once, first
        path = isinstance(src, str | os.PathLike)
        given.setdefault((_location(src) or _name(src)) if path else id(src), (src, sub))
    placed = list(given.values())
    sets = await anyio.to_thread.run_sync(_file_sets, [s for s, _ in placed])
    sets.update(remote_sets)  # a companion file's TIFFs are no inputs: listed, not given
    taken = {m for members in sets.values() for m in members}
    placed = [(s, sub) for s, sub in placed if _name(s) not in taken]
    inputs = [s for s, _ in placed]
    base = os.fspath(dst_dir).rstrip("/")
    targets = {_name(s): f"{base}/{sub + '/' if sub else ''}{output_name(s)}" for s, sub in placed}
    for src in _outputs_among(inputs, targets):  # a's output beside a.tif: no input
        inputs.remove(src)
        del targets[_name(src)]
    by_target: dict[str, list[str]] = {}
    for key, target in targets.items():
        by_target.setdefault(target, []).append(key)
    for target, keys in by_target.items():
        if len(keys) > 1:
            raise ValueError(
                f"inputs {', '.join(map(repr, keys))} would all be written to {target}: "
                "rename or move one of them, or convert them into different directories"
            )
    local = "://" not in base or base.startswith("file://")
    if local:
        refuse_file(base)
        os.makedirs(base.removeprefix("file://"), exist_ok=True)
    results: dict[str, ConvertResult | Exception] = dict(failed)
    limiter = anyio.CapacityLimiter(concurrency)
    done = 0
    refused: list[PermissionDeniedError] = []  # writing the destination: the first refusal

    async def one(src: Any) -> None:
        nonlocal done
        key = _name(src)
        target = targets[key]
        async with limiter:
            try:
                if refused:  # every other input would be read, and refused the same way
                    raise PermissionDeniedError(
                        f"not converted: writing to {base} was refused ({refused[0]})", url=target
                    )
                # an input that is (or holds, or lies in) its own output fails, skipped or not
                check_distinct(src, target, convert_options.get("src_options"), opts)
                refuse_file(target)
                done_already = None
                if not overwrite and await is_complete(target, **opts):
                    done_already = await _skipped(key, target, opts)
                    if not _as_requested(done_already, convert_options):
                        done_already = None  # e.g. a build of extra levels was interrupted
                if done_already is None:
                    done_already = await convert(
                        src, target, overwrite=True, dst_options=opts, **convert_options
                    )
                results[key] = replace(done_already, members=sets.get(key, ()))
            except Exception as exc:  # noqa: BLE001 - reported per input, never re-raised
                results[key] = exc
                leaf = first_leaf(exc)
                if isinstance(leaf, PermissionDeniedError) and _writes_to(leaf, target):
                    refused.append(leaf)
        done += 1
        if progress is not None:
            progress(done, len(inputs))

    if progress is not None:  # the total from the start: a bar shows what is ahead
        progress(0, len(inputs))
    async with anyio.create_task_group() as tg:
        for src in inputs:
            start_deferred(tg, one, src)
    return {**failed, **{_name(s): results[_name(s)] for s in inputs}}


def _outputs_among(inputs: Sequence[Any], targets: Mapping[str, str]) -> list[Any]:
    """The inputs that are another input's output, no inputs of their own: its output in this
    batch (``convert_many("scans", "scans")`` run again: ``scans/a.ome.zarr`` is
    ``scans/a.tif``'s), or its conversion beside it (``a.ome.zarr`` beside ``a.tif``, both
    local inputs, or both on one object store)."""
    where = {_name(s): _location(s) if isinstance(s, str | os.PathLike) else None for s in inputs}
    written = {_location(t) for key, t in targets.items() if _location(t) != where[key]}
    for src in inputs:
        loc = where[_name(src)]
        if loc is not None and loc[0] == "file" and not os.path.isdir(loc[2]):
            folder = os.path.dirname(loc[2])
            written.add(("file", "", os.path.join(folder, output_name(loc[2]))))
        elif loc is not None and loc[0] == "url" and _is_store_file(loc, _name(src)):
            folder = posixpath.dirname(loc[2])
            written.add(("url", loc[1], posixpath.join(folder, output_name(loc[2]))))
    return [s for s in inputs if where[_name(s)] is not None and where[_name(s)] in written]


def _file_sets(inputs: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """The multi-file OME-TIFFs of which several files are local ``inputs``: per set, its first
    input (its companion file, else the first TIFF its OME-XML names) and the others."""
    from ._tiff import TiffReader, _local_path, is_remote
    from ._tiffsets import set_files

    reader = TiffReader()
    tiffs = [
        s
        for s in inputs
        if isinstance(s, str | os.PathLike) and reader.can_read(s) and not is_remote(os.fspath(s))
    ]
    groups: dict[tuple[str, ...], list[tuple[str, Any]]] = {}
    for src in tiffs if len(tiffs) > 1 else ():  # one file makes no set to take apart
        path = os.path.realpath(_local_path(os.fspath(src)))
        files = set_files(path)
        if files is not None:
            key = tuple(os.path.realpath(f) for f in files)
            groups.setdefault(key, []).append((path, src))
    sets: dict[str, tuple[str, ...]] = {}
    for order, members in groups.items():
        if len(members) > 1:
            rank = {f: i for i, f in enumerate(order)}
            members.sort(key=lambda m: rank.get(m[0], len(rank)))
            sets[_name(members[0][1])] = tuple(_name(m[1]) for m in members[1:])
    return sets


def _as_requested(result: ConvertResult, options: Mapping[str, Any]) -> bool:
    """Whether a complete output has the levels and NGFF version asked for: extra levels of an
    OME-Zarr source are built after its group metadata is written (``build_pyramid`` edits
    it), so an interrupted build leaves a complete-looking output with fewer levels. (A
    plate: its first field's levels; every field has ``levels`` when they are given.)"""
    levels, version = options.get("levels"), options.get("ngff_version")
    return (levels is None or result.levels == levels) and (
        version is None or result.ngff_version == version
    )


async def _skipped(src: str, dst: str, options: dict[str, Any]) -> ConvertResult:
    from ..images import open_async

    plate = await _open_plate(dst, options)
    if plate is not None:
        async with plate:
            fields = await plate.image_paths()
            levels = 0
            if fields:
                async with await plate.image(fields[0][0], field=fields[0][1]) as first:
                    levels = len(first.levels)
            return ConvertResult(
                src=src,
                dst=dst,
                ngff_version=plate.version,
                shape=(),
                dtype="",
                axes=(),
                levels=levels,
                skipped=True,
                kind="plate",
                wells=tuple(plate.wells),
                fields=len(fields),
            )
    async with open_async(dst, **options) as ds:
        series: tuple[str, ...] = ()  # a bioformats2raw container opens at its first image
        if ds.root:
            series = tuple(await container_series(ds.store, "", ds.metadata.ngff_version))
        return ConvertResult(
            src=src,
            dst=dst,
            ngff_version=ds.metadata.ngff_version,
            shape=ds.shape,
            dtype=str(ds.dtype),
            axes=ds.axes,
            levels=len(ds.levels),
            labels=tuple(await ds.labels.names()),
            skipped=True,
            series=series,
        )


def convert_many_sync(
    srcs: str | os.PathLike[str] | Sequence[Any], dst_dir: str | os.PathLike[str], **options: Any
) -> dict[str, ConvertResult | Exception]:
    """The blocking twin of :func:`convert_many`."""
    from ..sync import call

    return call(_convert_many_kw, srcs, dst_dir, options)


async def _convert_many_kw(
    srcs: Any, dst_dir: Any, options: dict[str, Any]
) -> dict[str, ConvertResult | Exception]:
    return await convert_many(srcs, dst_dir, **options)
