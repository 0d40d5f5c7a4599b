"""``convert``: OME-Zarr -> OME-Zarr (version, layout, codec, store) and TIFF -> OME-Zarr.

Order of writes (the same for every source): every array's metadata (image levels, then each
label image's levels), then the pixels, then the image's ngio / Fractal tables (each read and
written in the output's version by the tables API, see :mod:`ngio_async.convert._tables`), the
label images' group metadata and the ``labels`` listing, and the image's NGFF group metadata
**last**. An output whose group metadata
exists is therefore complete, except for the levels an OME-Zarr source lacks (``levels=`` more
than it has): ``build_pyramid`` adds them afterwards, editing that metadata. :func:`convert_many`
skips an output when its group metadata exists and it has the levels and version asked for.
Before the first array, the root group is written marked unfinished (no NGFF metadata, see
:data:`_UNFINISHED`): running a conversion that failed or was cancelled again replaces what it
left without ``overwrite`` (a complete image, or zarr data without that mark, is refused).

Pixels stream in tiles of the destination's stored object (one shard, else one chunk): each
write covers whole objects (no read-modify-write) and memory stays bounded by the tile stream's
prefetch limits (``Limits.prefetch_tiles`` / ``prefetch_bytes``) plus the writer's pending
window; from a TIFF (or any :class:`ImageSource`), reads in flight and pending writes together
stay within ``Limits.prefetch_bytes``.

Levels of an OME-Zarr source are **copied level by level** (each tile read from the source level
and written to the same region of the destination level), whatever the chunking: exact, and
no level is recomputed. ``levels=`` fewer than the source's keeps the largest ones; more builds
the extra ones with ``build_pyramid``. From a TIFF, the lower levels are computed (mean) from
level 0's tiles as they are written (``writer(pyramid=True)``: level 0 is never read back),
before the group metadata is written; a pyramidal TIFF whose own levels have exactly the
requested levels' shapes has them copied instead (nothing is computed).

A TIFF of several images (a multi-position OME-TIFF; several images tifffile wrote to one
file) with no ``series`` chosen converts whole, into a bioformats2raw container: series ``i``
at ``i/``, the OME-XML at ``OME/METADATA.ome.xml`` (``<MetadataOnly/>``), the ``OME`` group
listing the series, the container group **last** (``ConvertResult.series``). So does a
bioformats2raw container (NGFF 0.4 or 0.5; its images listed by ``OME/series``, else ``0/``,
``1/``, ...): every image at its path, with its labels, its ``METADATA.ome.xml`` copied. With
``src_options={"series": n}``, image ``n`` alone converts, as a plain image.

An HCS plate (NGFF 0.4 or 0.5) converts whole: every field image as above (``decode_threads``
fields at a time, sharing the prefetch bounds and one pool of decode and one of encode
threads), then the row and well groups, the plate's own tables, and the plate group **last**:
an interrupted plate conversion leaves no plate document (``convert`` and ``convert_many`` redo
it). Every field is opened and planned first, so a refused option (``chunks`` that do not fit a
field's axes) writes nothing.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import MetadataError, UnsupportedError
from ..images import Dataset, Plate
from ..images._create import _open_target
from ..images._labels import follow_label_source
from ._container import _convert_container, _convert_series, _open_container
from ._copy import _copy_source, _run_jobs, _zarr_jobs
from ._formats import ImageSource, OmeZarrReader, find_reader
from ._jobs import (
    CompressorArg,
    ConvertResult,
    Progress,
    _Counter,
    _Job,
    _label_names,
    _name,
    _written_version,
)
from ._locations import check_distinct, refuse_file, refuse_http_url, refuse_memory_url
from ._ozx import convert_to_zip, zip_output
from ._plan import _check_layout, _grid, _object_shape, _own_levels, _source_plan
from ._plate import _convert_plate, _open_plate
from ._resume import _mark, _start

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .._limits import Limits
    from ..images._create_plan import ImagePlan
    from ..stores import AsyncStore

__all__ = ["convert", "convert_sync"]


async def convert(
    src: Any,
    dst: Any,
    *,
    ngff_version: Literal["0.4", "0.5"] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | Literal[False] | None = None,
    compressor: CompressorArg = None,
    levels: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    limits: Limits | None = None,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
) -> ConvertResult:
    """Convert ``src`` (OME-Zarr, TIFF / OME-TIFF or any registered format) to OME-Zarr at ``dst``.

    :param src: a path or URL (any store, for OME-Zarr and TIFF), a store, or an
        open :class:`~ngio_async.Dataset` / :class:`~ngio_async.formats.ImageSource` (left open).
    :param dst: where the OME-Zarr goes (path, ``file://``, ``s3://``, a store such as
        ``open_store("memory://")``; a ``memory://`` URL is refused: it would be lost). A
        local path ending in ``.ozx`` (or ``.zip``) gets a zipped OME-Zarr (NGFF RFC-9, 0.5):
        converted into a temporary folder beside it, then zipped (``<dst>.partial``, renamed
        when complete; see :mod:`ngio_async.convert._ozx`).
    :param ngff_version: ``"0.4"`` or ``"0.5"``; default the source's (OME-Zarr; ``"0.5"`` for
        a 0.6 one and ``"0.4"`` for a 0.1 - 0.3 one, which ngio_async reads but does not
        write) or ``"0.5"``.
    :param chunks: chunk shape of level 0 (one value per axis of the image, or fewer: the last
        axes', the leading ones take 1; label images drop the channel axis; leading 1s beyond
        the image's axes are ignored, so one shape serves images of fewer and more axes);
        default: the source's chunks (OME-Zarr) or ~1 MiB chunks.
    :param shards: shard shape (0.5 only; values as for ``chunks``), or ``False`` for no
        sharding; default the source's shards when the chunks are unchanged, else up to 8x8
        chunks in y/x.
    :param compressor: ``"zstd"``, ``"blosc-zstd"``, ``"gzip"``, or ``False`` (uncompressed);
        default (``None``): the source's (OME-Zarr) or ``"zstd"``.
    :param levels: pyramid levels; default the source's (OME-Zarr, a pyramidal TIFF: copied
        level by level) or until y/x is at most 256 px (computed while level 0 is written; a
        TIFF's own levels are copied when they match).
    :param overwrite: replace an existing node at ``dst``. Without it, only what a conversion
        that failed or was cancelled left there (its root group marked unfinished) is replaced.
    :param progress: ``progress(done, total)`` after each tile handed to the writer (all levels
        and label images; ``total`` counts them all).
    :param limits: bounds for both stores (:class:`~ngio_async.Limits`).
    :param src_options: options of the source's reader (store options such as S3 ``endpoint``;
        ``series``: the index of the one image to convert of a multi-image TIFF or a
        bioformats2raw container, which otherwise converts whole, into a container).
    :param dst_options: store options of the destination (each side has its own: a public
        source with ``src_options={"anonymous": True}``, a destination signed with keys).
    :raises ValueError: ``dst`` is ``src``, holds it or lies inside it (see
        :func:`check_distinct`), or a ``memory://`` URL, or a layout option is invalid (``chunks`` / ``shards``: one
        positive integer per axis; ``levels >= 1``; ``series`` in range); nothing is written
        then.
    :raises UnsupportedError: ``dst`` is an ``http(s)://`` URL (read-only), before anything
        is read.
    :raises ExistsError: ``dst`` holds a zarr node (and not ``overwrite``), or is a local file
        (never replaced; a ``.ozx`` file is, with ``overwrite``).
    :raises ReadOnlyError: ``dst`` is a remote URL naming a ``.ozx`` file (zips are written
        to local paths only).
    """
    if ngff_version is not None and ngff_version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {ngff_version!r} (0.4 or 0.5)")
    for what, url in (("src", src), ("dst", dst)):
        if isinstance(url, str | os.PathLike) and not os.fspath(url).strip():
            raise ValueError(f"{what} is empty: a path or URL (use '.' for the current directory)")
    check_distinct(src, dst, src_options, dst_options)  # before anything is opened
    if (zipped := zip_output(dst)) is not None:  # a zipped OME-Zarr (.ozx, RFC-9)
        if ngff_version == "0.4":
            raise UnsupportedError(
                f"cannot write {_name(dst)} as NGFF 0.4: zipped OME-Zarr (RFC-9) holds zarr "
                "v3 (NGFF 0.5); convert to a folder (.ome.zarr) for 0.4"
            )

        async def into(folder: str) -> ConvertResult:
            return await convert(
                src,
                folder,
                ngff_version="0.5",
                chunks=chunks,
                shards=shards,
                compressor=compressor,
                levels=levels,
                progress=progress,
                limits=limits,
                src_options=src_options,
                dst_options=dst_options,
            )

        return await convert_to_zip(zipped, _name(dst), overwrite, into)
    refuse_file(dst)
    refuse_memory_url(dst)
    refuse_http_url(dst)
    _check_layout((), None, None, levels)
    src_opts = dict(src_options or {})
    owns_source = not isinstance(src, Dataset | ImageSource | Plate)
    source: Any
    if owns_source:
        reader = find_reader(src)
        if isinstance(reader, OmeZarrReader):
            src_opts.setdefault("limits", limits)
            series = src_opts.pop("series", None)  # of a bioformats2raw container
        try:
            source = await reader.open(src, **src_opts)
        except (UnsupportedError, MetadataError):
            if not isinstance(reader, OmeZarrReader):
                raise
            # not an image: an HCS plate (or one without fields yet: no NGFF metadata)?
            plate = await _open_plate(src, src_opts)
            if plate is None:
                raise
            source = plate
        reader_name = reader.name
    else:
        source, reader_name = src, "object"
        series = None
    store: AsyncStore | None = None
    owns = False
    counter = _Counter(progress)
    opened: list[Dataset] = []
    try:
        # every option is checked and every plan made (reading the source only) before the
        # destination is opened: a refused option leaves nothing behind
        if isinstance(source, Plate):
            if series is not None:
                raise ValueError(
                    f"series={series!r}: {_name(src)} is an HCS plate (it converts whole)"
                )
            return await _convert_plate(
                source,
                dst,
                src_name=_name(src) if owns_source else source.url,
                version=ngff_version or _written_version(source.version) or "0.5",
                chunks=chunks,
                shards=shards,
                compressor=compressor,
                levels=levels,
                overwrite=overwrite,
                counter=counter,
                limits=limits,
                dst_options=dst_options,
                opened=opened,
            )
        image_src = source
        if isinstance(source, Dataset) and owns_source:
            root = str(src_opts.get("path") or "").strip("/")
            found = await _open_container(source, root, series, limits, _name(src))
            if found is not None:
                paths, images = found
                opened.extend(im for im in images if im is not source)
                if series is None:
                    return await _convert_container(
                        images,
                        paths,
                        root,
                        dst,
                        src_name=_name(src),
                        version=ngff_version,
                        chunks=chunks,
                        shards=shards,
                        compressor=compressor,
                        levels=levels,
                        overwrite=overwrite,
                        counter=counter,
                        limits=limits,
                        dst_options=dst_options,
                        opened=opened,
                    )
                image_src = images[0]  # the chosen series, as an image
        if isinstance(image_src, Dataset):
            version = ngff_version or _written_version(image_src.metadata.ngff_version)
            if version not in ("0.4", "0.5"):
                raise UnsupportedError(f"cannot write NGFF version {version!r}")
            chunks, shards = _check_layout(image_src.axes, chunks, shards, levels)
            jobs, labels_attrs = await _zarr_jobs(
                image_src, "", version, chunks, shards, compressor, levels, opened
            )
            # a label image may replace a label image its parent lists (create's rule)
            is_label = image_src.metadata.ome.image_label is not None
            parent = None
            if is_label:
                parent = await _label_parent(dst, dst_options, limits, version, opened)
                above = parent[0] if parent is not None else None
                await follow_label_source(jobs[0].plan.ome, dst, limits, dst_options, parent=above)
            store, owns = _open_target(dst, limits, dict(dst_options or {}), label=is_label)
            extra = levels if levels is not None and levels > len(image_src.levels) else None
            counter.total = sum(j.tiles for j in jobs)
            again = await _start(store, version, overwrite, label=is_label)
            image = await _run_jobs(
                store, "", jobs, labels_attrs, counter, limits, again, extra, prepare=False
            )
            if parent is not None:  # last: the label is complete
                await _list_label(store, *parent, jobs[0].plan)
            label_names = tuple(_label_names(jobs))
        elif isinstance(source, ImageSource) and _whole_file(source, owns_source, src_opts):
            return await _convert_series(
                source,
                reader,
                src,
                dst,
                src_opts,
                version=ngff_version or "0.5",
                chunks=chunks,
                shards=shards,
                compressor=compressor,
                levels=levels,
                overwrite=overwrite,
                counter=counter,
                limits=limits,
                dst_options=dst_options,
            )
        elif isinstance(source, ImageSource):
            version = ngff_version or "0.5"
            chunks, shards = _check_layout(source.axes, chunks, shards, levels)
            plan = _source_plan(source, version, chunks, shards, compressor, levels)
            store, owns = _open_target(dst, limits, dict(dst_options or {}))
            window = max(2, (limits or store.limits).decode_threads)
            own = _own_levels(source, plan)
            tiles = sum(_grid(a.shape, _object_shape(a)) for a in plan.arrays[:own])
            fill = _copy_source(source, window, own, cascade=own < len(plan.arrays))
            job = _Job("", plan, fill, tiles)
            counter.total = tiles
            again = await _start(store, version, overwrite)
            image = await _run_jobs(
                store, "", [job], None, counter, limits, again, None, prepare=False
            )
            label_names = ()
        else:
            raise UnsupportedError(f"reader {reader_name!r} returned {type(source).__name__}")
        return ConvertResult(
            src=_name(src) if owns_source else str(getattr(src, "url", src)),
            dst=store.url if not isinstance(dst, str | os.PathLike) else _name(dst),
            ngff_version=version,
            shape=image.shape,
            dtype=str(image.dtype),
            axes=image.axes,
            levels=len(image.levels),
            labels=label_names,
            tiles=counter.done,
            bytes_written=counter.nbytes,
        )
    except BaseExceptionGroup as group:
        from .._prefetch import single_leaf

        leaf = single_leaf(group)
        if leaf is None:
            raise
    finally:
        with anyio.CancelScope(shield=True):
            for label in opened:
                await label.aclose()
            if owns_source:
                await source.aclose()
            if owns and store is not None:
                await store.aclose()
    # raised outside ``except``: the group holding it is not its context (a reference cycle
    # that picklers keeping contexts, tblib with dask.distributed, recurse on forever)
    raise leaf


async def _label_parent(
    dst: Any,
    options: Mapping[str, Any] | None,
    limits: Limits | None,
    version: str,
    opened: list[Dataset],
) -> tuple[Dataset, str] | None:
    """The image whose ``labels/`` ``dst`` is (added to ``opened``) and the label's name
    there, checked before anything is written: a label :meth:`Labels._list_created` could not
    list (another NGFF version, a name ``labels.create`` refuses) is refused. ``None``: no
    ``<image>/labels/<name>`` of an image that opens writable."""
    from ..images._labels import open_label_parent

    parent = await open_label_parent(dst, "", limits, dict(options or {}))
    if parent is None:
        return None
    opened.append(parent[0])
    await parent[0].labels._check_listing(parent[1], version)
    return parent


async def _list_label(store: AsyncStore, image: Dataset, name: str, plan: ImagePlan) -> None:
    """List the converted label image ``name`` (complete, at the root of ``store``) in
    ``image``'s ``labels`` group, as ``create_like`` does. When that fails and leaves it
    unlisted, the label is marked unfinished again: running the conversion again replaces it
    (and lists it)."""
    try:
        await image.labels._list_created(name, plan)
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            try:
                listed = name in await image.labels.names()
            except Exception:  # noqa: BLE001 - unreadable: taken as unlisted
                listed = False
            if not listed:
                try:
                    await _mark(store, plan.version)
                except Exception as cleanup:  # noqa: BLE001 - reported on exc
                    exc.add_note(
                        f"{store.url} is complete but not listed by {image.url} and could not "
                        f"be marked unfinished ({cleanup}): convert it again with overwrite=True"
                    )
        raise


# ------------------------------------------------------------------------------ series
def _whole_file(source: ImageSource, owns: bool, options: Mapping[str, Any]) -> bool:
    """Whether ``source`` is the first of several images of a TIFF (the positions of a
    multi-position OME-TIFF, the images tifffile wrote to one file) opened from a path with no
    ``series`` chosen: then every series converts, into a bioformats2raw container. (The
    other series of a whole-slide image, its label and macro pictures, are left out.)"""
    count = getattr(source, "series_count", 1)
    return (
        owns
        and "series" not in options
        and count > 1
        and getattr(source, "series_are_images", False)
    )


def convert_sync(src: Any, dst: Any, **options: Any) -> ConvertResult:
    """The blocking twin of :func:`convert` (same arguments), for scripts; ``src`` may also be
    a dataset or plate of the blocking API (``ngio_async.open``, ``open_plate``)."""
    from .._sync_api import SyncDataset, SyncPlate
    from ..sync import call

    if isinstance(src, SyncDataset):  # its dataset lives on the loop the call runs on
        src = src.async_dataset
    elif isinstance(src, SyncPlate):
        src = src.async_plate
    return call(_convert_kw, src, dst, options)


async def _convert_kw(src: Any, dst: Any, options: dict[str, Any]) -> ConvertResult:
    return await convert(src, dst, **options)
