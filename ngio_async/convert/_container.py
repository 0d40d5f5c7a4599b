"""Converting a source of several images (a multi-image TIFF, a bioformats2raw container) into
a bioformats2raw container."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import UnsupportedError
from ..images import Dataset
from ..images._create import _open_target
from ..images._create_values import integer
from ..images._open import container_series, join, read_group_metadata
from ..meta import to_attrs
from ._copy import _run_jobs, _source_job, _zarr_jobs
from ._groups import _read_ome_group, _with_series, _write_group
from ._jobs import (
    CompressorArg,
    ConvertResult,
    _Counter,
    _Item,
    _label_names,
    _name,
    _written_version,
)
from ._plan import _check_layout, _source_plan
from ._resume import _start

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .._limits import Limits
    from ..images._create_plan import ImagePlan
    from ..stores import AsyncStore
    from ._formats import ImageSource


async def _convert_series(
    first: ImageSource,
    reader: Any,
    src: Any,
    dst: Any,
    src_options: dict[str, Any],
    *,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    overwrite: bool,
    counter: _Counter,
    limits: Limits | None,
    dst_options: Mapping[str, Any] | None,
) -> ConvertResult:
    """Every series of a multi-image OME-TIFF as a bioformats2raw container (layout 3): series
    ``i`` at ``i/`` (one after the other, each as :func:`convert` converts an image), the
    TIFF's OME-XML at ``OME/METADATA.ome.xml``, the ``OME`` group listing the series, and the
    container's group **last**. Every series is opened and planned before anything is
    written (a refused option names its series)."""
    from ..meta import OmeMetadata

    if version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {version!r}")
    count = int(getattr(first, "series_count", 1))
    sources: list[ImageSource] = [first]
    store: AsyncStore | None = None
    owns = False
    try:
        for i in range(1, count):
            sources.append(await reader.open(src, **src_options, series=i))  # noqa: PERF401 - closed if a later one fails
        plans: list[ImagePlan] = []
        for i, source in enumerate(sources):
            try:
                layout = _check_layout(source.axes, chunks, shards, levels)
                plans.append(_source_plan(source, version, *layout, compressor, levels))
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"series {i} of {_name(src)}: {exc}") from None
        store, owns = _open_target(dst, limits, dict(dst_options or {}))
        lim = limits or store.limits
        items: list[_Item] = [
            (str(i), [_source_job(s, str(i), p, lim)], None, None)
            for i, (s, p) in enumerate(zip(sources, plans, strict=True))
        ]
        from ._tiffmeta import metadata_only

        xml = metadata_only(getattr(first, "ome_xml", None) or "", len(items))
        container = to_attrs(OmeMetadata(version=version, bioformats2raw_layout=3), version)
        return await _write_container(
            store,
            items,
            src=_name(src),
            dst=store.url if not isinstance(dst, str | os.PathLike) else _name(dst),
            version=version,
            ome=({}, None if xml is None else xml.encode()),
            container=container,
            counter=counter,
            limits=limits,
            overwrite=overwrite,
        )
    finally:
        with anyio.CancelScope(shield=True):
            for source in sources[1:]:  # the first one is the caller's
                await source.aclose()
            if owns and store is not None:
                await store.aclose()


async def _convert_container(
    images: list[Dataset],
    paths: list[str],
    root: str,
    dst: Any,
    *,
    src_name: str,
    version: str | None,
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
    """Every image of a bioformats2raw container (``images`` at ``paths`` below ``root`` of
    their store) into a container of ``version``: each as :func:`convert` converts an image
    (labels included), its ``OME`` group and ``METADATA.ome.xml``, its group **last**. Every
    image is planned before anything is written (a refused option names its series)."""
    first = images[0]
    meta = await read_group_metadata(first.store, root)
    version = version or _written_version(meta.version)
    if version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {version!r}")
    container = to_attrs(meta, version)
    ome = await _read_ome_group(first.store, root, meta.version or version, version)
    items: list[_Item] = []
    for path, ds in zip(paths, images, strict=True):
        try:
            layout = _check_layout(ds.axes, chunks, shards, levels)
            jobs, labels_attrs = await _zarr_jobs(
                ds, path, version, *layout, compressor, levels, opened
            )
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"series {path} of {src_name}: {exc}") from None
        extra = levels if levels is not None and levels > len(ds.levels) else None
        items.append((path, jobs, labels_attrs, extra))
    store, owns = _open_target(dst, limits, dict(dst_options or {}))
    try:
        return await _write_container(
            store,
            items,
            src=src_name,
            dst=store.url if not isinstance(dst, str | os.PathLike) else _name(dst),
            version=version,
            ome=ome or ({}, None),
            container=container,
            counter=counter,
            limits=limits,
            overwrite=overwrite,
        )
    finally:
        if owns:
            with anyio.CancelScope(shield=True):
                await store.aclose()


async def _write_container(
    store: AsyncStore,
    items: list[_Item],
    *,
    src: str,
    dst: str,
    version: str,
    ome: tuple[dict[str, Any], bytes | None],
    container: dict[str, Any],
    counter: _Counter,
    limits: Limits | None,
    overwrite: bool,
) -> ConvertResult:
    """Write a bioformats2raw container: each image of ``items`` in turn (as :func:`convert`
    writes an image), ``OME/METADATA.ome.xml`` (``ome[1]``, when given), the ``OME`` group
    (``ome[0]`` listing the images) and the container group (``container``) **last**."""
    overwrite = await _start(store, version, overwrite)
    counter.total = sum(j.tiles for _, jobs, _, _ in items for j in jobs)
    images = [
        await _run_jobs(
            store,
            path,
            jobs,
            labels_attrs,
            counter,
            limits,
            overwrite,
            extra,
            prepare=not store.supports_listing,  # the root's check covered the images
        )
        for path, jobs, labels_attrs, extra in items
    ]
    paths = [path for path, _, _, _ in items]
    attrs, xml = ome
    if xml is not None:
        await store.put(join("OME", "METADATA.ome.xml"), xml)
    await _write_group(store, "OME", _with_series(attrs, paths, version), version)
    await _write_group(store, "", container, version)  # last
    labels = dict.fromkeys(name for _, jobs, _, _ in items for name in _label_names(jobs))
    image = images[0]
    return ConvertResult(
        src=src,
        dst=dst,
        ngff_version=version,
        shape=image.shape,
        dtype=str(image.dtype),
        axes=image.axes,
        levels=len(image.levels),
        labels=tuple(labels),
        tiles=counter.done,
        bytes_written=counter.nbytes,
        series=tuple(paths),
    )


def _series_index(series: Any, count: int, where: str) -> int:
    """The ``series`` option as an index into ``count`` images (of ``where``)."""
    index = integer(series, "series")
    if not 0 <= index < count:
        raise ValueError(f"series={index}: {where} has {count} series (0 to {count - 1})")
    return index


async def _open_container(
    first: Dataset, root: str, series: Any, limits: Limits | None, where: str
) -> tuple[list[str], list[Dataset]] | None:
    """When ``first`` was opened as the first image of a bioformats2raw container at ``root``
    (``open_async`` of a container opens its first series): the container's image paths and
    the images to convert (each of them, or the chosen ``series``; the ones opened here share
    ``first``'s store and are the caller's to close). ``None``: ``first`` is an image of its own.

    :raises ValueError: ``series`` is out of range (an image of its own has one series, 0).
    """
    if first.root == root:
        if series is not None:
            _series_index(series, 1, f"{where} (an image, not a bioformats2raw container)")
        return None
    paths = await container_series(first.store, root, first.metadata.ngff_version)
    if not paths:
        return None
    chosen = range(len(paths)) if series is None else [_series_index(series, len(paths), where)]
    opened: list[Dataset] = []
    try:
        for i in chosen:
            at = join(root, paths[i])
            if at == first.root:
                opened.append(first)
                continue
            ds = await Dataset.open_in(first.store, at, limits=limits or first.limits)
            opened.append(ds)
    except BaseException:
        with anyio.CancelScope(shield=True):
            for ds in opened:
                if ds is not first:
                    await ds.aclose()
        raise
    return paths, opened
