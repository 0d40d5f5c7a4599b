"""``convert``: OME-Zarr -> OME-Zarr (version, layout, codec, store) and TIFF -> OME-Zarr.

Order of writes (the same for every source): every array's metadata (image levels, then each
label image's levels), then the pixels, then the label images' group metadata and the
``labels`` listing, and the image's NGFF group metadata **last**. An output whose group metadata
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
threads), then the row and well groups, and the plate group **last**: an interrupted plate
conversion leaves no plate document (``convert`` and ``convert_many`` redo it). Every field is
opened and planned first, so a refused option (``chunks`` that do not fit a field's axes) writes
nothing.
"""

from __future__ import annotations

import glob as globmod
import itertools
import math
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

import anyio
import msgspec

from .._errors import (
    ExistsError,
    MetadataError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
)
from .._prefetch import first_leaf, start_deferred
from .._workers import Workers
from ..engine.pyramid import check_levels_shrink
from ..images import Dataset, Plate
from ..images._create import (
    ImagePlan,
    _local_directory,
    _open_target,
    _prepare_root,
    _put_all,
    array_meta_v2,
    array_meta_v3,
    default_chunks,
    default_levels,
    default_shards,
    integer,
    plan_image,
    stacked_chunks,
)
from ..images._labels import _compressor_of, follow_label_source
from ..images._open import container_series, join, opened_as_stored, read_group_metadata
from ..meta import read_document, to_attrs, validate, write_document
from ..meta.zarr import GroupV3Meta, encode_group_v2, encode_group_v3
from ..stores import AsyncStore
from ..stores._url import file_in_the_way
from ._formats import ImageSource, OmeZarrReader, find_reader

if TYPE_CHECKING:
    import numpy as np

    from .._limits import Limits
    from ..meta import OmeMetadata
    from ..meta.zarr import ArrayMeta, Codec

__all__ = ["ConvertResult", "convert", "convert_many", "convert_many_sync", "convert_sync"]

Progress = Callable[[int, int], object]
CompressorArg = Literal["zstd", "blosc-zstd", "gzip", False] | None


@dataclass(frozen=True)
class ConvertResult:
    """What one conversion wrote (``skipped``: the output was complete already).

    An HCS plate (``kind="plate"``) has no image of its own: ``shape``, ``dtype`` and ``axes``
    are empty and ``levels`` is its first field's (0 without fields); ``wells`` lists its wells
    and ``fields`` counts the field images converted (``labels``: every label name of its
    fields, once).

    A source of several images (a multi-image TIFF, a bioformats2raw container) converts into a
    bioformats2raw container: ``series`` lists its images' paths; ``shape``, ``dtype``,
    ``axes`` and ``levels`` are the first one's (``labels``: those of every image, once).

    ``members`` (:func:`convert_many`): the batch's other inputs that are files of the same
    multi-file OME-TIFF as ``src``, converted with it (they have no result of their own).
    """

    src: str
    dst: str
    ngff_version: str
    shape: tuple[int, ...]
    dtype: str
    axes: tuple[str, ...]
    levels: int
    labels: tuple[str, ...] = ()
    tiles: int = 0
    bytes_written: int = 0
    skipped: bool = False
    kind: Literal["image", "plate"] = "image"
    wells: tuple[str, ...] = ()
    fields: int = 0
    series: tuple[str, ...] = ()
    members: tuple[str, ...] = ()


@dataclass
class _Counter:
    callback: Progress | None
    total: int = 0
    done: int = 0
    nbytes: int = 0

    def step(self, nbytes: int) -> None:
        self.done += 1
        self.nbytes += nbytes
        if self.callback is not None:
            self.callback(self.done, self.total)


@dataclass
class _Job:
    """One image (the image or one of its label images) to write: plan, where, how.
    ``group=False``: the arrays of another multiscale of the image at ``root`` (no group of
    its own)."""

    root: str
    plan: ImagePlan
    fill: Callable[[Dataset, _Counter], Any]
    tiles: int
    group: bool = True
    #: per level of ``plan``, its own attributes to write as the v2 array's ``.zattrs`` (a v3
    #: array has them in its ``zarr.json``, in ``plan``)
    array_attrs: tuple[dict[str, Any], ...] = ()


#: a zarr v2 array's attributes a v3 array holds in its metadata (xarray's v2
#: ``_ARRAY_DIMENSIONS`` is its ``dimension_names``, which the writer sets): not copied from a
#: v2 array into a v3 array's attributes
_V2_ONLY_ATTRIBUTES = frozenset({"_ARRAY_DIMENSIONS"})


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


def _label_names(jobs: Sequence[_Job]) -> list[str]:
    """The label images among an image's jobs (``jobs[0]`` is the image)."""
    return [j.root.rsplit("/", 1)[-1] for j in jobs[1:] if j.group]


_Item = tuple[str, list[_Job], dict[str, Any] | None, int | None]
"""One image of a container or plate to write: its path, jobs, ``labels`` group attributes and
the levels to build after its group metadata (``None``: none)."""


def _name(url: Any) -> str:
    return os.fspath(url) if isinstance(url, str | os.PathLike) else repr(url)


# ------------------------------------------------------------------------------ checks
_SCHEME_ALIASES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "azure": "az"}

_Location = tuple[str, Any, str]
"""Where a source or destination lives: ``(kind, base, path)``. ``kind`` ``"file"`` (``path``
a resolved local path), ``"url"`` (``base`` ``scheme://netloc``) or ``"object"`` (``base`` the
store object itself: in-memory stores); ``path`` is absolute, ``/``-separated."""


def _url_location(text: str) -> _Location | None:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1 or scheme == "file":  # a path (or a Windows drive letter), file://
        path = unquote(parts.path) if scheme == "file" else text
        return ("file", "", os.path.realpath(os.path.expanduser(path)))
    if scheme == "memory":
        return None  # every memory:// URL opens a new, empty store
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme in ("http", "https"):  # the server decodes the path; the query is part of it
        path = posixpath.normpath("/" + unquote(parts.path).lstrip("/"))
        return (
            "url",
            f"{scheme}://{parts.netloc.lower()}",
            path + (f"?{parts.query}" * bool(parts.query)),
        )
    # bucket URLs: the path is the literal key prefix ('%', '?' and '#' included), as the stores
    # take it
    bucket, _, key = text.split("://", 1)[1].partition("/")
    return ("url", f"{scheme}://{bucket}", posixpath.normpath("/" + key.lstrip("/")))


def _location(obj: Any) -> _Location | None:
    """Where ``obj`` (a path, URL, store, dataset or image source) lives; ``None``: unknown."""
    from ..stores._obstore import OBSTORE_TYPES, local_prefix

    if isinstance(obj, Dataset | Plate):
        loc = _location(obj.store)
        if loc is None or not obj.root:
            return loc
        return (loc[0], loc[1], posixpath.normpath(posixpath.join(loc[2], obj.root)))
    if isinstance(obj, str | os.PathLike):
        return _url_location(os.fspath(obj))
    if isinstance(obj, AsyncStore):
        if not obj.url.lower().startswith("memory:"):
            return _url_location(obj.url)
        return ("object", getattr(obj, "obstore", obj), "/")
    prefix = local_prefix(obj)
    if prefix is not None:
        return ("file", "", os.path.realpath(prefix))
    if isinstance(obj, OBSTORE_TYPES):
        return ("object", obj, "/")
    url = getattr(obj, "url", None)  # an ImageSource
    return _url_location(url) if isinstance(url, str) else None


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _same_file(a: str, b: str) -> bool:
    """``a`` and ``b`` name one existing file or directory (case-insensitive file systems)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _where(obj: Any) -> str:
    """How errors name a source or destination: its path or URL."""
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Dataset | Plate):
        return obj.url
    url = getattr(obj, "url", None)
    return url if isinstance(url, str) else repr(obj)


def _endpoint(options: Mapping[str, Any] | None) -> Any:
    return (options or {}).get("endpoint") or (options or {}).get("endpoint_url")


def _at(loc: _Location | None, path: Any) -> _Location | None:
    """``loc`` moved down to ``path`` (a store path option; empty: ``loc`` itself)."""
    rel = str(path or "").strip("/")
    if loc is None or not rel:
        return loc
    return (loc[0], loc[1], posixpath.normpath(posixpath.join(loc[2], rel)))


def overlap(
    src: Any,
    dst: Any,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
) -> str | None:
    """How the place ``dst`` (with its ``path`` option) relates to ``src`` (with its): ``"is
    the source"``, ``"lies inside the source"``, ``"contains the source"``, or ``None``
    (apart, or unknown). Pure: nothing is opened (see :func:`check_distinct`)."""
    a = _at(_location(src), (src_options or {}).get("path"))
    b = _at(_location(dst), (dst_options or {}).get("path"))
    if a is None or b is None or a[0] != b[0]:
        return None
    if a[0] == "object" and a[1] is not b[1]:
        return None
    if a[0] != "object" and a[1] != b[1]:
        return None
    ea, eb = _endpoint(src_options), _endpoint(dst_options)
    if a[0] == "url" and ea and eb and str(ea).rstrip("/") != str(eb).rstrip("/"):
        return None
    if a[2] == b[2] or (a[0] == "file" and _same_file(a[2], b[2])):
        return "is the source"
    if _inside(b[2], a[2]):
        return "lies inside the source"
    if _inside(a[2], b[2]):
        return "contains the source"
    return None


def check_distinct(
    src: Any,
    dst: Any,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a destination that is the source, holds it or lies inside it (writing there
    would delete or mix with the source before it is read). Pure: nothing is opened.

    Local paths are compared resolved (``os.path.realpath``, ``file://`` URLs included),
    object-store and HTTP URLs by scheme, bucket / host and normalised key prefix (unless both
    sides name different ``endpoint`` options), in-memory stores by identity.

    :raises ValueError: naming both.
    """
    how = overlap(src, dst, src_options, dst_options)
    if how is None:
        return
    raise ValueError(
        f"the destination {_where(dst)} {how} {_where(src)}: writing it would destroy the source "
        "before it is read; choose another destination"
    )


def refuse_file(dst: Any) -> None:
    """Refuse a local destination that is a regular file, or lies below one (an OME-Zarr is a
    directory; the store would only say "File exists"). The file is never replaced, even with
    ``overwrite``: it is no zarr node (a mistyped destination may be the source TIFF).

    :raises ExistsError: naming the file.
    """
    loc = _location(dst) if isinstance(dst, str | os.PathLike) else None
    if loc is None or loc[0] != "file":
        return
    path = file_in_the_way(loc[2])
    if path is not None:
        what = "is a file" if path == loc[2] else f"lies below the file {path}"
        raise ExistsError(
            f"the destination {_where(dst)} {what}, not a directory: an OME-Zarr is a "
            "directory; remove the file or choose another destination (overwrite=True "
            "replaces zarr nodes, never other files)",
            key=path,
            kind="file",
        )


def refuse_memory_url(dst: Any) -> None:
    """Refuse a ``memory://`` URL as a destination: every one opens a new, empty store, so
    what is written there could never be opened (pass a store: ``open_store("memory://")``).

    :raises ValueError: naming it."""
    if isinstance(dst, str | os.PathLike) and os.fspath(dst).lower().startswith("memory:"):
        raise ValueError(
            f"the destination {os.fspath(dst)} is a memory:// URL: each one opens a new, empty "
            'store, and the output would be lost; pass a store (open_store("memory://")) '
            "and open the result from it, or write to a path or an object store"
        )


def refuse_http_url(dst: Any) -> None:
    """Refuse an ``http(s)://`` URL as a destination before anything is read: HTTP stores are
    read-only.

    :raises UnsupportedError: naming it."""
    if isinstance(dst, str | os.PathLike) and _is_http(os.fspath(dst)):
        raise UnsupportedError(
            f"the destination {os.fspath(dst)} is an http(s):// URL, and HTTP stores are "
            "read-only: write to a path or an object store (s3://, gs://, az://)"
        )


async def _check_destination(base: str, options: Mapping[str, Any]) -> None:
    """A batch's object-store destination answers before any input is read: a missing bucket,
    missing credentials or an endpoint that does not answer fail here, once."""
    from ..stores import open_store

    if "://" not in base or base.lower().startswith(("file://", "memory:")):
        return
    async with open_store(base, **options) as store:
        await store.get("zarr.json")  # a GET: a HEAD's 404 does not tell a missing bucket


def _writes_to(exc: PermissionDeniedError, target: str) -> bool:
    """Whether ``exc`` refused a write to ``target`` (not a read of the source)."""
    where = _url_location(exc.url) if exc.url else None
    here = _url_location(target)
    if where is None or here is None:
        return False
    return where[:2] == here[:2] and _inside(where[2], here[2])


def _is_one(value: Any) -> bool:
    try:
        return bool(value == 1)
    except Exception:  # noqa: BLE001 - any odd value is checked (and named) below
        return False


def _sizes(value: Any, what: str, axes: Sequence[str]) -> tuple[int, ...]:
    """``value`` as one positive integer per axis; errors name the option and the axes.

    Right-aligned, as numpy broadcasts: fewer values than axes are the last axes' (the leading
    axes take 1: ``--shards 1,4096,4096`` of a tczyx image is ``1,1,1,4096,4096``), and leading
    1s beyond the image's axes are dropped. One ``--shards 1,1,4096,4096`` serves a batch of
    yx, cyx, czyx and tczyx images."""
    expect = (
        f"{len(axes)} or fewer positive integers (one per axis {list(axes)}; fewer are the "
        "last axes', the leading ones take 1)"
    )
    if isinstance(value, str | bytes | Mapping):
        raise TypeError(f"{what} must be {expect}, got {value!r}")
    try:
        values = list(value)
    except TypeError:
        raise TypeError(f"{what} must be {expect}, got {value!r}") from None
    given = tuple(values)
    extra = len(values) - len(axes)
    # one shape serves a batch of images of fewer axes: 1,1,4096,4096 fits a yx or cyx image
    if extra > 0 and all(_is_one(v) for v in values[:extra]):
        values = values[extra:]
    if not values or len(values) > len(axes):
        raise ValueError(f"{what} {given} has {len(given)} values: expected {expect}")
    out: list[int] = [1] * (len(axes) - len(values))
    for v, a in zip(values, axes[len(axes) - len(values) :], strict=True):
        n = integer(v, f"{what}[{a!r}]")
        if n < 1:
            raise ValueError(f"{what} {given}: {what}[{a!r}] is {n}; expected {expect}")
        out.append(n)
    return tuple(out)


def _check_layout(
    axes: Sequence[str],
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    levels: int | None,
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | Literal[False] | None]:
    """The layout options checked as ``create`` checks them (before anything is written)."""
    if levels is not None:
        integer(levels, "levels", minimum=1)
    checked = None if chunks is None else _sizes(chunks, "chunks", axes)
    if shards is not None and shards is not False:
        shards = _sizes(shards, "shards", axes)
    return checked, shards


def _grid(shape: Sequence[int], tile: Sequence[int]) -> int:
    return math.prod(-(-n // t) if n else 0 for n, t in zip(shape, tile, strict=True))


def _regions(shape: Sequence[int], tile: Sequence[int]) -> itertools.product[tuple[slice, ...]]:
    return itertools.product(
        *(
            [slice(s, min(s + t, n)) for s in range(0, n, t)]
            for n, t in zip(shape, tile, strict=True)
        )
    )


def _object_shape(meta: ArrayMeta) -> tuple[int, ...]:
    return tuple(meta.shards if meta.shards is not None else meta.chunks)


def _fill_value(value: Any, dtype: np.dtype[Any]) -> Any:
    if value is None:
        return False if dtype.kind == "b" else 0
    return value


def _native(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype


#: numcodecs' blosc shuffle numbers
_SHUFFLES: dict[int, Literal["noshuffle", "shuffle", "bitshuffle"]] = {
    0: "noshuffle",
    1: "shuffle",
    2: "bitshuffle",
}


def _typed(codec: Codec, dtype: np.dtype[Any]) -> Codec:
    """A v2 source's blosc codec (see :func:`~ngio_async.meta.zarr.codec_stages`) with the
    settings v2 left to the data type written out: its ``typesize`` and an automatic shuffle
    (bitshuffle for 1-byte types, else shuffle, as numcodecs' AUTOSHUFFLE)."""
    from msgspec.structs import replace

    from ..meta.zarr import BloscCodec

    if not isinstance(codec, BloscCodec):
        return codec
    conf = codec.configuration
    shuffle = conf.shuffle
    if isinstance(shuffle, msgspec.UnsetType):
        shuffle = "bitshuffle" if dtype.itemsize == 1 else "shuffle"
    return BloscCodec(replace(conf, shuffle=shuffle, typesize=dtype.itemsize))


def _writable(codecs: Sequence[Codec]) -> tuple[Codec, ...] | None:
    """``codecs`` when every one is a bytes-to-bytes codec this library writes, else ``None``."""
    from ..meta.zarr import BloscCodec, Crc32cCodec, GzipCodec, NumcodecsCodec, ZstdCodec

    ok = (ZstdCodec, GzipCodec, BloscCodec, Crc32cCodec)
    if all(
        isinstance(c, ok) or (isinstance(c, NumcodecsCodec) and c.kind == "bytes") for c in codecs
    ):
        return tuple(codecs)
    return None


#: the numcodecs bytes-to-bytes codecs that compress, and those that are checksums
_NUMCODECS_COMPRESSORS = frozenset(("blosc", "lz4", "zstd", "zlib", "gzip", "bz2", "lzma"))
_NUMCODECS_CHECKSUMS = frozenset(("crc32", "crc32c", "adler32", "fletcher32", "jenkins_lookup3"))


def _numcodecs_id(codec: Codec) -> str | None:
    """The numcodecs id of a ``numcodecs.<id>`` codec (``None``: another codec)."""
    from ..meta.zarr import NumcodecsCodec

    if not isinstance(codec, NumcodecsCodec):
        return None
    return str(type(codec).__struct_config__.tag)[len("numcodecs.") :]


def _compresses(codecs: Sequence[Codec]) -> bool:
    """Whether one of ``codecs`` compresses (not a checksum alone)."""
    from ..meta.zarr import BloscCodec, GzipCodec, ZstdCodec

    return any(
        isinstance(c, ZstdCodec | GzipCodec | BloscCodec)
        or _numcodecs_id(c) in _NUMCODECS_COMPRESSORS
        for c in codecs
    )


def _whole_shard_codecs(src: ArrayMeta) -> tuple[Codec, ...]:
    """The codecs after ``src``'s ``sharding_indexed`` (shards compressed whole), as stored."""
    from ..meta.zarr import codec_stages

    stages = codec_stages(src)
    return () if stages is None else stages.whole_shard


def _kept_v3(
    src: ArrayMeta, dtype: np.dtype[Any], *, whole_shards: bool
) -> tuple[Codec, ...] | None:
    """The source's compressors as zarr v3 bytes-to-bytes codecs of each chunk (a sharded
    destination's inner chunks), settings included (``None``: none this library maps exactly;
    the closest :func:`create_async` name is used then). A v2 source's compressor is the v3
    codec that writes it (``numcodecs.<id>`` for those without a core codec, as a v3 source's
    are kept: ``lz4`` stays ``lz4``).

    ``whole_shards``: the destination has a whole-shard stage of its own (it is sharded), which
    keeps the codecs after the source's ``sharding_indexed`` (:func:`_kept_outer`); without one,
    a source whose chunks are not compressed but whose shards are compressed whole gives its
    chunks those codecs (a user who compressed the shards wanted compressed data)."""
    from ..meta.zarr import ArrayV2Meta, BytesCodec, codec_stages

    stages = codec_stages(src)
    if stages is None:
        return None  # a v2 codec with no v3 form
    codecs, outer = stages.chunk, stages.whole_shard
    serializer = next((i for i, c in enumerate(codecs) if isinstance(c, BytesCodec)), None)
    if serializer is None:
        return None  # nested sharding, a numcodecs serializer
    # array-to-array codecs before it (v2: filters) are dropped: values copy
    kept = codecs[serializer + 1 :]
    if isinstance(src, ArrayV2Meta):
        kept = tuple(_typed(c, dtype) for c in kept)
    if not whole_shards and outer and not _compresses(kept) and _compresses(outer):
        kept = (*kept, *outer)  # the whole-shard stage becomes a chunk stage
    return _writable(kept)


def _kept_outer(src: ArrayMeta) -> tuple[Codec, ...]:
    """The codecs after the source's ``sharding_indexed`` (shards compressed whole), settings
    included, for a sharded destination (``()``: none, or none this library writes)."""
    return _writable(_whole_shard_codecs(src)) or ()


def _kept_v2(src: ArrayMeta, dtype: np.dtype[Any]) -> dict[str, Any] | bool | None:
    """The source's compressor as a zarr v2 ``compressor``, settings included (``False``: none
    this library maps exactly). Checksums are left out: a v2 array has one compressor."""
    from ..meta.zarr import (
        ArrayV2Meta,
        BloscCodec,
        Crc32cCodec,
        GzipCodec,
        NumcodecsCodec,
        ZstdCodec,
    )

    if isinstance(src, ArrayV2Meta):
        return src.compressor  # decodable, so encodable (numcodecs); filters are dropped
    kept = _kept_v3(src, dtype, whole_shards=False)
    if kept is None:
        return False
    kept = tuple(
        c
        for c in kept
        if not isinstance(c, Crc32cCodec) and _numcodecs_id(c) not in _NUMCODECS_CHECKSUMS
    )
    if len(kept) > 1:
        return False
    if not kept:
        return None
    codec = kept[0]
    if isinstance(codec, ZstdCodec):
        zstd: dict[str, Any] = {"id": "zstd", "level": codec.configuration.level}
        return zstd | ({"checksum": True} if codec.configuration.checksum else {})
    if isinstance(codec, GzipCodec):
        return {"id": "gzip", "level": codec.configuration.level}
    if isinstance(codec, BloscCodec):
        conf = codec.configuration
        shuffle = conf.shuffle if isinstance(conf.shuffle, str) else None
        numbers = {name: n for n, name in _SHUFFLES.items()}
        return {
            "id": "blosc",
            "cname": conf.cname,
            "clevel": conf.clevel,
            "shuffle": numbers[shuffle] if shuffle else (2 if dtype.itemsize == 1 else 1),
            "blocksize": conf.blocksize,
        }
    cid = _numcodecs_id(codec)
    if cid is not None:  # its configuration is numcodecs' own keyword arguments
        assert isinstance(codec, NumcodecsCodec)
        return {"id": cid, **codec.configuration}
    return False


def _closest_name(src: ArrayMeta, *, whole_shards: bool) -> Any:
    """The :func:`create_async` compressor name closest to ``src``'s chunk compressor; without a
    whole-shard stage in the destination (``whole_shards`` false), that of the codecs after the
    source's ``sharding_indexed`` when its chunks are not compressed."""
    from msgspec.structs import replace

    name = _compressor_of(src)
    outer = _whole_shard_codecs(src)
    if name is None and not whole_shards and outer:
        return _compressor_of(replace(src, codecs=outer))
    return name


def _keep_compressor(meta: ArrayMeta, src: ArrayMeta, dtype: np.dtype[Any]) -> ArrayMeta:
    """``meta`` with ``src``'s compressor and its settings (blosc's ``cname``, levels, shuffle)
    where they map exactly, across zarr formats too. A sharded ``meta`` also keeps the codecs
    ``src`` compresses its shards with whole (after ``sharding_indexed``)."""
    from msgspec.structs import replace

    from ..meta.zarr import (
        ArrayV2Meta,
        BytesCodec,
        ShardingCodec,
        decode_array_v2,
        decode_array_v3,
        encode_array_v2,
        encode_array_v3,
    )

    if isinstance(meta, ArrayV2Meta):
        conf = _kept_v2(src, dtype)
        if conf is False:
            return meta
        return decode_array_v2(encode_array_v2(replace(meta, compressor=conf)))
    codecs = meta.codecs
    sharding = codecs[0] if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec) else None
    kept = _kept_v3(src, dtype, whole_shards=sharding is not None)
    outer = _kept_outer(src) if sharding is not None else ()
    if kept is None and not outer:
        return meta
    inner = sharding.configuration.codecs if sharding is not None else codecs
    assert isinstance(inner[0], BytesCodec)
    if kept is not None:
        inner = (inner[0], *kept)
    if sharding is not None:
        config = replace(sharding.configuration, codecs=inner)
        new: tuple[Codec, ...] = (ShardingCodec(config), *outer)
    else:
        new = inner
    return decode_array_v3(encode_array_v3(replace(meta, codecs=new)))


def _level_array(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    axes: Sequence[str],
    src_meta: ArrayMeta,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    attributes: Mapping[str, Any] | None = None,
) -> ArrayMeta:
    """The destination array metadata of one level (chunks, shards, codec as asked, else kept;
    ``attributes``: the level's own, kept in a v3 array's metadata)."""
    lchunks = tuple(
        max(1, min(int(c), n)) for c, n in zip(chunks or src_meta.chunks, shape, strict=True)
    )
    fill = _fill_value(src_meta.fill_value, dtype)
    if version == "0.4":
        comp: Any = (
            _closest_name(src_meta, whole_shards=False)
            if compressor is None
            else compressor or None
        )
        meta_v2 = array_meta_v2(shape, dtype, lchunks, comp, fill)
        return meta_v2 if compressor is not None else _keep_compressor(meta_v2, src_meta, dtype)
    lshards: tuple[int, ...] | None
    if shards is False:
        lshards = None
    elif shards is not None:
        lshards = _fitted_shards(shards, lchunks, shape, chunks_given=chunks is not None)
    elif chunks is None and src_meta.shards is not None:
        lshards = tuple(src_meta.shards)
    else:
        lshards = default_shards(shape, axes, lchunks)
    if lshards is not None and any(s % c for s, c in zip(lshards, lchunks, strict=True)):
        raise ValueError(f"shards {lshards} must be whole multiples of the chunks {lchunks}")
    sharded = lshards is not None
    comp = (
        _closest_name(src_meta, whole_shards=sharded) if compressor is None else compressor or None
    )
    meta = array_meta_v3(shape, dtype, axes, lchunks, lshards, comp, fill)
    v2 = src_meta.zarr_format == 2
    kept = {k: v for k, v in (attributes or {}).items() if not v2 or k not in _V2_ONLY_ATTRIBUTES}
    if kept:
        from msgspec.structs import replace

        meta = replace(meta, attributes=kept)
    return meta if compressor is not None else _keep_compressor(meta, src_meta, dtype)


def _per_image(value: Any, src_axes: Sequence[str], image_axes: Sequence[str]) -> Any:
    """A per-axis option given for the image, adapted to a label image (channel axis dropped)."""
    if value is None or value is False or len(value) == len(src_axes):
        return value
    if len(value) == len(image_axes):
        return [v for v, a in zip(value, image_axes, strict=True) if a in src_axes]
    raise ValueError(f"{list(value)}: one value per axis {list(image_axes)} expected")


def _zarr_plan(
    src: Dataset,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
    ome: OmeMetadata | None = None,
    attributes: Sequence[Mapping[str, Any]] = (),
) -> ImagePlan:
    """The destination plan of an OME-Zarr source: its metadata (``ome``, default the
    source's) in ``version``, new layout (``attributes``: each level's own, see
    :func:`_level_array`)."""
    from msgspec.structs import replace

    from ..images._dataset import _with_extra

    if version == "0.4" and shards not in (None, False):
        raise UnsupportedError("sharding needs zarr v3 (NGFF 0.5), not 0.4")
    ome = ome or src.metadata.ome
    n = len(src.levels) if levels is None else max(1, min(int(levels), len(src.levels)))
    if n < len(src.levels):
        assert ome.multiscales is not None
        ms = ome.multiscales[0]
        ms = _with_extra(replace(ms, datasets=list(ms.datasets[:n])), ms)
        ome = _with_extra(replace(ome, multiscales=[ms, *ome.multiscales[1:]]), ome)
    new_ome = validate(to_attrs(ome, version))
    arrays: list[ArrayMeta] = []
    for i, lvl in enumerate(src.levels[:n]):
        meta = _level_array(
            lvl.shape,
            _native(lvl.dtype),
            src.axes,
            lvl.meta,
            version,
            chunks,
            shards,
            compressor,
            attributes[i] if i < len(attributes) else None,
        )
        arrays.append(meta)
    return ImagePlan(
        version=version, paths=src.metadata.paths[:n], arrays=tuple(arrays), ome=new_ome
    )


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


def _own_levels(src: ImageSource, plan: ImagePlan) -> int:
    """How many levels of ``plan`` to copy from ``src``: all of them when ``src`` stores
    those levels (a pyramidal TIFF; its first ones when fewer are asked), else 1 (the others
    are built)."""
    shapes = [tuple(s) for s in getattr(src, "level_shapes", ())]
    wanted = [tuple(a.shape) for a in plan.arrays]
    return len(wanted) if len(wanted) > 1 and shapes[: len(wanted)] == wanted else 1


def _copied_levels(src: ImageSource) -> int | None:
    """The level count of a conversion of ``src`` given none: a pyramidal TIFF's own levels
    when they halve y/x as the plan does (they are copied, not recomputed) and reach as deep as
    the default; else ``None``, the default (computed down to 256 px: whole-slide levels 4x
    apart cannot be copied, and stop too early)."""
    own = [tuple(s) for s in getattr(src, "level_shapes", ())]
    if len(own) < 2 or len(own) < default_levels(src.shape, src.axes, 2):
        return None
    halved = own[:1]
    while len(halved) < len(own):
        halved.append(
            tuple(-(-n // 2) if a in "yx" else n for n, a in zip(halved[-1], src.axes, strict=True))
        )
    return len(own) if halved == own else None


#: the root group's attributes while a conversion writes the destination (its NGFF group
#: metadata, written last, replaces them): a re-run recognises what an interrupted conversion
#: left by them, and replaces it without ``overwrite``
_UNFINISHED = {"ngio_async": {"convert": "unfinished"}}


def _is_unfinished(raw: Any, v3: bool) -> bool:
    """Whether a root ``zarr.json`` (``v3``) or ``.zattrs`` carries :data:`_UNFINISHED`'s mark
    (alone, or beside the NGFF metadata of an image whose extra levels were being built)."""
    try:
        doc = read_document(raw)
    except msgspec.DecodeError:
        return False
    if v3:
        if not isinstance(doc, dict) or doc.get("node_type") != "group":
            return False
        doc = doc.get("attributes")
    mark = doc.get("ngio_async") if isinstance(doc, dict) else None
    return isinstance(mark, dict) and mark.get("convert") == _UNFINISHED["ngio_async"]["convert"]


async def _edit_root_attrs(
    store: AsyncStore, version: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Read the root group's attributes, ``edit`` them in place, write the document back."""
    key = ".zattrs" if version == "0.4" else "zarr.json"
    raw = await store.get(key)
    if raw is None:
        raise NotFoundError(f"{store.url}/{key} is gone", url=store.url, key=key)
    doc = read_document(raw)
    edit(doc if version == "0.4" else doc["attributes"])
    await store.put(key, write_document(doc))


async def _unmark(store: AsyncStore, version: str) -> None:
    """Drop :data:`_UNFINISHED`'s mark from the root group's attributes (the rest stays)."""

    def drop(attrs: dict[str, Any]) -> None:
        mark = attrs.get("ngio_async")
        if isinstance(mark, dict):
            mark.pop("convert", None)
            if not mark:
                del attrs["ngio_async"]

    await _edit_root_attrs(store, version, drop)


async def _mark(store: AsyncStore, version: str) -> None:
    """Put :data:`_UNFINISHED`'s mark back into the root group's attributes (the rest stays)."""

    def put(attrs: dict[str, Any]) -> None:
        mark = attrs.get("ngio_async")
        attrs["ngio_async"] = {
            **(mark if isinstance(mark, dict) else {}),
            **_UNFINISHED["ngio_async"],
        }

    await _edit_root_attrs(store, version, put)


async def _start(store: AsyncStore, version: str, overwrite: bool, *, label: bool = False) -> bool:
    """Make the destination's root ready and mark it unfinished: refuse an existing node
    (``overwrite``: delete it), except what an interrupted conversion left (its root group
    carries :data:`_UNFINISHED`'s mark), which is replaced as if ``overwrite``; then write the
    mark (claimed, unless ``overwrite``: of two conversions to one place, one is refused).
    Returns the ``overwrite`` the images below the root are prepared with."""
    from ..images._create import _claim, _get_or_none

    if not overwrite:
        for key in ("zarr.json", ".zattrs"):
            raw = await _get_or_none(store, key)
            if raw is not None and _is_unfinished(raw, key == "zarr.json"):
                overwrite = True  # ours, and never finished: nothing in it is the user's
                break
    await _prepare_root(store, "", overwrite, label=label)
    if version == "0.4":
        docs = [(".zgroup", encode_group_v2()), (".zattrs", msgspec.json.encode(_UNFINISHED))]
    else:
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=_UNFINISHED)
        docs = [("zarr.json", encode_group_v3(doc))]
    if not overwrite:
        with anyio.CancelScope(shield=True):  # a claim landing after a cancellation stays
            await _claim(store, "", docs[0])
        docs = docs[1:]
    for key, data in docs:
        await store.put(key, data)
    return overwrite


async def _data_windowed(image: Dataset, plan: ImagePlan) -> OmeMetadata:
    """``plan.ome`` with the display windows of the channels given none (``plan.auto_windows``)
    taken from the written pixels: the lowest level's range, as ``build_pyramid`` sets them for a
    created image (a channel of one value keeps the dtype's range)."""
    from msgspec.structs import replace

    from ..images._dataset import followed_windows

    omero = plan.ome.omero
    if not plan.auto_windows or omero is None:
        return plan.ome
    windows = followed_windows(omero, await image._data_windows(plan.auto_windows))
    channels = [
        c if w is None else replace(c, window=w)
        for c, w in zip(omero.channels, windows, strict=True)
    ]
    return replace(plan.ome, omero=replace(omero, channels=channels))


async def _write_group(store: AsyncStore, root: str, attrs: dict[str, Any], version: str) -> None:
    if version == "0.4":
        await store.put(join(root, ".zgroup"), encode_group_v2())
        await store.put(join(root, ".zattrs"), write_document(attrs))
    else:
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs)
        await store.put(join(root, "zarr.json"), encode_group_v3(doc))


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
    docs = [(join(j.root, k), d) for j in jobs for k, d in j.plan.array_documents()]
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
    tables: list[str] | None = None,
) -> tuple[list[_Job], dict[str, Any] | None]:
    """Jobs for the image and each label image, and the ``labels`` group attributes (reads the
    source only). The label images opened are appended to ``opened`` (the caller closes them).
    An image with tables (not converted) is appended to ``tables``, or warned about when
    ``tables`` is ``None``."""
    if await _has_tables(src.store, src.root, src.metadata.ngff_version):
        if tables is None:
            _tables_left_out([src.url])
        else:
            tables.append(src.url)
    if levels is not None and levels > len(src.levels):
        # before the copy: build_pyramid, run after it, would refuse them with levels written
        check_levels_shrink(_more_level_shapes(src, levels), levels, start=len(src.levels))
    ome = await _with_repaired_omero(src)
    jobs = [await _zarr_job(root, src, version, chunks, shards, compressor, levels, ome)]
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


_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _default_window(dtype: np.dtype[Any]) -> dict[str, float]:
    """A channel window over the whole range of ``dtype`` (floats: 0 to 1)."""
    import numpy as np

    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = 0.0, 1.0
    return {"min": low, "max": high, "start": low, "end": high}


def _repair_step(omero: dict[str, Any], path: str, dtype: np.dtype[Any]) -> str | None:
    """Mend the part of a raw ``omero`` block at ``path`` (relative to it) that breaks a rule:
    a channel's ``color`` (CSS style ``#RRGGBB`` or 8 hex digits: its ``RRGGBB``; else white)
    or ``window`` (the dtype's range) replaced, another key removed. ``None``: not mendable."""
    steps = _STEP.findall(path)
    if not steps or steps[0][0] != "channels":
        key = steps[0][0] if steps else ""
        if key and key in omero:  # rdefs, id, name, ...
            del omero[key]
            return f"removed {key}"
        return None
    channels = omero.get("channels")
    if len(steps) < 2 or not steps[1][1] or not isinstance(channels, list):
        return None
    index = int(steps[1][1])
    channel = channels[index] if index < len(channels) else None
    if not isinstance(channel, dict):
        return None
    key = steps[2][0] if len(steps) > 2 else ""
    if key in ("", "color") and not _HEX6.match(str(channel.get("color", ""))):
        old = str(channel.get("color", ""))
        digits = old.removeprefix("#")
        channel["color"] = (
            digits[:6] if re.fullmatch(r"[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?", digits) else "FFFFFF"
        )
        return f"channels[{index}].color {old!r} -> {channel['color']!r}"
    if key in ("", "window"):
        old_window = channel.get("window")
        if key == "" and isinstance(old_window, dict):
            return None
        window = _default_window(dtype)
        if isinstance(old_window, dict):  # its valid values stay
            for k, v in old_window.items():
                if k in window and isinstance(v, int | float) and not isinstance(v, bool):
                    window[k] = v if math.isfinite(v) else window[k]
            if window == old_window:
                return None
        channel["window"] = window
        return f"channels[{index}].window -> {window}"
    if key in channel:
        del channel[key]
        return f"removed channels[{index}].{key}"
    return None


_HEX6 = re.compile(r"^[0-9A-Fa-f]{6}$")


async def _with_repaired_omero(src: Dataset) -> OmeMetadata | None:
    """``src``'s metadata with its stored ``omero`` block mended by :func:`_repair_step` when
    it breaks a rule (a :class:`MetadataWarning` says how), so the channels' labels, colors
    and windows are carried: a block opened without it, or opened mended (a channel missing
    its window was read with an empty one: here it gets the dtype's range). ``None``:
    nothing to mend, or it cannot be (the opened metadata is carried, as the opening
    warned)."""
    import copy
    import warnings

    from ..meta import MetadataWarning

    v3 = src.metadata.ngff_version != "0.4"
    key = join(src.root, "zarr.json" if v3 else ".zattrs")
    if opened_as_stored(src.store, key):  # it kept every rule: nothing to mend, no GET
        return None
    raw = await src.store.get(key)
    try:
        doc: Any = read_document(raw) if raw is not None else None
    except msgspec.DecodeError:
        return None
    attrs: Any = doc.get("attributes") if v3 and isinstance(doc, dict) else doc
    body: Any = attrs.get("ome") if v3 and isinstance(attrs, dict) else attrs
    if not isinstance(body, dict) or not isinstance(body.get("omero"), dict):
        return None
    attrs = copy.deepcopy(attrs)
    omero: dict[str, Any] = (attrs["ome"] if v3 else attrs)["omero"]
    at = "$.ome.omero" if v3 else "$.omero"
    mended: list[str] = []
    for _ in range(64):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetadataWarning)
                ome = validate(attrs)
        except MetadataError as exc:
            inside = exc.path == at or exc.path.startswith((at + ".", at + "["))
            done = _repair_step(omero, exc.path[len(at) :], src.dtype) if inside else None
            if done is None:
                return None
            mended.append(f"{done} ({exc.rule})")
            continue
        if not mended:  # the stored block keeps every rule: what was opened is carried
            return None
        warnings.warn(
            f"{src.url}: its 'omero' block, which breaks a rule, is carried mended: "
            + "; ".join(mended),
            MetadataWarning,
            stacklevel=2,
        )
        return ome
    return None


async def _has_group(store: AsyncStore, root: str) -> bool:
    """Whether a group (or any zarr node) document exists at ``root``."""
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        if await store.exists(join(root, name)):
            return True
    return False


def _leave_out(attrs: dict[str, Any], kind: str, name: str, version: str) -> None:
    """Drop ``name`` from the listing of group attributes ``attrs`` (in ``version``):
    ``kind`` ``"labels"`` (label names), ``"well"`` (its images) or ``"plate"`` (its wells)."""
    body = attrs.get("ome", attrs) if version == "0.5" else attrs
    if kind == "labels":
        listing = body.get("labels")
        if isinstance(listing, list):
            body["labels"] = [n for n in listing if n != name]
        return
    obj = body.get(kind)
    key = "images" if kind == "well" else "wells"
    if isinstance(obj, dict) and isinstance(obj.get(key), list):
        obj[key] = [e for e in obj[key] if not (isinstance(e, dict) and e.get("path") == name)]


async def _has_tables(store: AsyncStore, root: str, version: str) -> bool:
    """Whether the group at ``root`` has a ``tables`` child group (ngio / Fractal tables)."""
    return await store.exists(join(root, "tables", "zarr.json" if version != "0.4" else ".zgroup"))


def _tables_left_out(where: Sequence[str]) -> None:
    """Warn that the ``tables`` groups of ``where`` (group URLs) are not converted."""
    import warnings

    from ..meta import MetadataWarning

    more = f" (and {len(where) - 1} more)" if len(where) > 1 else ""
    warnings.warn(
        f"{where[0]}{more}: tables/ (ngio / Fractal tables, not NGFF) are not converted; "
        "copy them separately",
        MetadataWarning,
        stacklevel=3,
    )


def _missing(what: str, where: str) -> None:
    """Warn that ``what``, listed in ``where``, does not exist and is left out."""
    import warnings

    from ..meta import MetadataWarning

    warnings.warn(
        f"{what} does not exist (no group metadata): it is left out of the conversion and of "
        f"the {where} listing",
        MetadataWarning,
        stacklevel=3,
    )


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


def _fitted_shards(
    shards: Sequence[int], chunks: Sequence[int], shape: Sequence[int], *, chunks_given: bool
) -> tuple[int, ...]:
    """One shard shape asked for inputs of every size (a batch) fitted to an image: a shard
    beyond the image is cut to the chunks that cover it (the default chunks of a small image
    are the image, and 4096 is no multiple of 300). A shard below the chunks is one chunk when
    the chunks are not the caller's (a batch's one ``--shards``); below chunks asked for, it
    stays, for the whole-multiple check to refuse."""
    return tuple(
        max(1 if chunks_given else c, min(int(s), -(-n // c) * c))
        for s, c, n in zip(shards, chunks, shape, strict=True)
    )


def _source_plan(
    src: ImageSource,
    version: str,
    chunks: Sequence[int] | None,
    shards: Sequence[int] | Literal[False] | None,
    compressor: CompressorArg,
    levels: int | None,
) -> ImagePlan:
    channels = None
    if src.channels is not None and "c" in src.axes:
        channels = [
            {
                k: v
                for k, v in c.items()
                if v is not None and k in ("label", "color", "window", "active", "inverted")
            }
            for c in src.channels
        ]
    translation = list(src.translation) if any(t != 0 for t in src.translation) else None
    if levels is None:
        levels = _copied_levels(src)
    given = chunks is not None
    if chunks is None:  # small planes stacked (a movie of tiny frames), unless shards are set
        rule = default_chunks if shards else stacked_chunks
        chunks = rule(src.shape, src.axes, src.dtype)
    if shards is not None and shards is not False:
        shards = _fitted_shards(shards, chunks, src.shape, chunks_given=given)
    return plan_image(
        shape=src.shape,
        dtype=src.dtype,
        axes=list(src.axes),
        scale=list(src.scale),
        units=list(src.units),
        translation=translation,
        chunks=chunks,
        shards=shards,
        compressor="zstd" if compressor is None else (compressor or None),
        levels=levels,
        channels=channels,
        ngff_version=version,  # type: ignore[arg-type]
        name=src.name,
        unique_channels=False,  # (a file naming two channels alike is converted as it is)
    )


def _more_level_shapes(src: Dataset, levels: int) -> list[tuple[int, ...]]:
    """The shapes of ``src``'s levels and of those ``build_pyramid`` would add up to ``levels``:
    y and x divided (rounded up) by the factor of the last two levels, else 2."""
    shapes = [tuple(lvl.shape) for lvl in src.levels]
    factors = [2 if a in ("y", "x") else 1 for a in src.axes]
    if len(shapes) > 1:
        factors = [
            max(1, round(n / m)) if m else 1 for n, m in zip(shapes[-2], shapes[-1], strict=True)
        ]
    while len(shapes) < levels:
        shapes.append(tuple(-(-n // f) for n, f in zip(shapes[-1], factors, strict=True)))
    return shapes


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
        ``open_store("memory://")``; a ``memory://`` URL is refused: it would be lost).
    :param ngff_version: ``"0.4"`` or ``"0.5"``; default the source's (OME-Zarr; ``"0.5"`` for
        a 0.6 one, which ngio_async reads but does not write) or ``"0.5"``.
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
        (never replaced).
    """
    if ngff_version is not None and ngff_version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {ngff_version!r} (0.4 or 0.5)")
    for what, url in (("src", src), ("dst", dst)):
        if isinstance(url, str | os.PathLike) and not os.fspath(url).strip():
            raise ValueError(f"{what} is empty: a path or URL (use '.' for the current directory)")
    check_distinct(src, dst, src_options, dst_options)  # before anything is opened
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


def _source_job(src: ImageSource, root: str, plan: ImagePlan, limits: Limits) -> _Job:
    """The job that fills ``plan`` (at ``root``) from ``src``: its own levels when they match,
    else level 0 with the others computed on the way."""
    own = _own_levels(src, plan)
    tiles = sum(_grid(a.shape, _object_shape(a)) for a in plan.arrays[:own])
    window = max(2, limits.decode_threads)
    return _Job(root, plan, _copy_source(src, window, own, cascade=own < len(plan.arrays)), tiles)


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
        from ._tiff import metadata_only

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


def _with_series(attrs: dict[str, Any], paths: Sequence[str], version: str) -> dict[str, Any]:
    """The ``OME`` group's attributes ``attrs`` (in ``version``) listing ``paths``."""
    from ..meta import OmeMetadata

    listing = to_attrs(OmeMetadata(version=version, series=list(paths)), version)
    out = dict(attrs)
    if version == "0.4":
        out.update(listing)
    else:
        out["ome"] = {**(out.get("ome") or {}), **listing["ome"]}
    return out


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
    from ..images._level import _run_all
    from ..images._plate import PENDING_KEY
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
    tables = [plate.url] if await _has_tables(store, root, plate.version) else []

    async def read_well(path: str) -> None:
        try:
            meta = await read_group_metadata(store, join(root, path), parent_version=plate.version)
        except NotFoundError:
            if await _has_group(store, join(root, path)):
                raise
            _missing(f"well {path!r} of plate {plate.url}", "plate's wells")
            return
        if meta.well is None:
            raise UnsupportedError(
                f"well {path!r} of plate {plate.url} has no 'well' metadata "
                f"(its NGFF metadata: {', '.join(meta.kinds) or 'none'})"
            )
        attrs = to_attrs(meta, version)
        validate(attrs, kind="well")
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
                ds, where, version, *layout, compressor, levels, opened, tables
            )
        except (ValueError, TypeError) as exc:  # the fields of a plate may differ: name it
            raise type(exc)(f"field {where} of plate {plate.url}: {exc}") from None
        extra = levels if levels is not None and levels > len(ds.levels) else None
        planned[item] = (jobs, labels_attrs, extra)

    await _run_all(todo, plan_field, plate.limits.max_requests)
    if tables:
        _tables_left_out(tables)
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
    return _PlatePlan(plate_attrs, ome_group, rows, wells, fields, at_once, field_limits, writers)


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

        from ..images._level import _run_all

        await _run_all(list(plan.wells), well, store.limits.max_requests)
        if plan.ome_group is not None:
            attrs, xml = plan.ome_group
            if xml is not None:
                await store.put(join("OME", "METADATA.ome.xml"), xml)
            await _write_group(store, "OME", attrs, version)
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


async def _read_ome_group(
    store: AsyncStore, root: str, source: str, version: str
) -> tuple[dict[str, Any], bytes | None] | None:
    """A bioformats2raw container's (or plate's) ``OME`` group (its attributes in ``version``)
    and its ``METADATA.ome.xml``; ``None`` when it has neither."""
    raw = await store.get(join(root, "OME", "METADATA.ome.xml"))
    xml = None if raw is None else bytes(raw)
    try:
        meta = await read_group_metadata(
            store, join(root, "OME"), parent_version=source, plain_ok=True
        )
    except NotFoundError:
        return None if xml is None else ({}, xml)
    except MetadataError:  # e.g. only a 0.5 "version": no listing, the images are 0/, 1/, ...
        return {}, xml
    return (to_attrs(meta, version) if meta.kinds else {}), xml  # else a plain group


def _field_levels(field: tuple[str, list[_Job], dict[str, Any] | None, int | None]) -> int:
    """The levels a planned field ends with (those copied, or ``levels`` when more)."""
    return field[3] or len(field[1][0].plan.arrays)


def _plain_group(version: str, attrs: dict[str, Any] | None = None) -> list[tuple[str, bytes]]:
    """The documents of a group without NGFF metadata (``attrs``: its own attributes)."""
    if version == "0.4":
        docs = [(".zgroup", encode_group_v2())]
        return docs + ([(".zattrs", write_document(attrs))] if attrs else [])
    doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs or {})
    return [("zarr.json", encode_group_v3(doc))]


async def _json_or_none(store: AsyncStore, key: str) -> Any:
    """The JSON document at ``key``; ``None`` when missing, denied (S3 denies a missing key
    to a reader without list permission) or not JSON."""
    try:
        raw = await store.get(key)
        return read_document(raw) if raw is not None else None
    except (PermissionDeniedError, msgspec.DecodeError):
        return None


async def _plain_attrs(store: AsyncStore, root: str, version: str) -> dict[str, Any]:
    """The attributes of the group at ``root`` (NGFF ``version``: 0.5 ``zarr.json``, 0.4
    ``.zattrs``) that has no NGFF metadata (a plate's row); none when missing or not JSON."""
    doc = await _json_or_none(store, join(root, ".zattrs" if version == "0.4" else "zarr.json"))
    if version != "0.4":
        doc = doc.get("attributes") if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}


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


async def is_complete(url: Any, **store_options: Any) -> bool:
    """True when ``url`` holds an image or an HCS plate whose NGFF group metadata exists
    (written last)."""
    from ..stores import open_store

    try:
        store = open_store(url, **store_options)
    except NotFoundError:
        return False
    try:
        raw = await store.get("zarr.json")
        if raw is not None:
            doc = read_document(raw)
            ome = doc.get("attributes", {}).get("ome", {}) if isinstance(doc, dict) else {}
            complete = isinstance(ome, dict) and bool(_COMPLETE_KEYS & set(ome))
            return complete and not _is_unfinished(raw, True)
        raw = await store.get(".zattrs")
        attrs = None if raw is None else read_document(raw)
        complete = isinstance(attrs, dict) and bool(_COMPLETE_KEYS & set(attrs))
        return complete and not _is_unfinished(raw, False)
    except (msgspec.DecodeError, AttributeError):
        return False
    finally:
        await store.aclose()


#: the NGFF keys of a complete output's group (written last)
_COMPLETE_KEYS = frozenset({"multiscales", "plate", "bioformats2raw.layout"})


_NODE_FILES = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def _local_dir(url: Any) -> str | None:
    """The local directory of a path or ``file://`` URL (as ``open_store`` resolves it);
    ``None`` for other URLs and objects."""
    return _local_directory(url) if isinstance(url, str | os.PathLike) else None


def folder_path(src: Any) -> str | None:
    """The local path of ``src`` when it is a folder of inputs: an existing local directory
    that is no zarr node (none of ``zarr.json``, ``.zattrs``, ``.zgroup``, ``.zarray``) and is
    not named ``*.zarr``; else ``None`` (an OME-Zarr image, plate or container is one input)."""
    path = _local_dir(src)
    if path is None or not os.path.isdir(path) or path.rstrip("/").lower().endswith(".zarr"):
        return None
    if any(os.path.lexists(os.path.join(path, name)) for name in _NODE_FILES):
        return None
    return path


def folder_inputs(path: str, dst_dir: Any = None, left_out: list[str] | None = None) -> list[str]:
    """The images of a folder of inputs and of the folders in it, sorted: files a reader other
    than OME-Zarr's takes (TIFFs, a plugin's formats) and OME-Zarr directories (hidden entries
    and links to folders skipped; so is ``dst_dir``, the batch's output directory, when it lies
    in the folder: a re-run would take it for an input). ``left_out`` (a list): gets the files
    no reader takes.

    :raises ValueError: the folder holds none."""
    from ._formats import readers

    others = [r for r in readers() if not isinstance(r, OmeZarrReader)]
    left: list[str] = []
    out = _folder_walk(path, others, _local_dir(dst_dir), left)
    if left_out is not None:
        left_out.extend(left)
    if not out:
        raise ValueError(f"{path} holds no image to convert (no TIFF, no OME-Zarr directory)")
    return out


def _folder_walk(path: str, others: Sequence[Any], skip: str | None, left: list[str]) -> list[str]:
    out: list[str] = []
    for name in sorted(os.listdir(path)):
        entry = os.path.join(path, name)
        if name.startswith(".") or (skip is not None and _same_file(entry, skip)):
            continue
        if os.path.isdir(entry):
            if OmeZarrReader().can_read(entry):
                out.append(entry)
            elif not os.path.islink(entry):  # a link may lead back up: a loop
                out.extend(_folder_walk(entry, others, skip, left))
        elif any(r.can_read(entry) for r in others):
            out.append(entry)
        else:
            left.append(entry)
    return out


def _inputs(srcs: str | os.PathLike[str] | Sequence[Any], dst_dir: Any) -> list[tuple[Any, str]]:
    """The batch's inputs, each with the folder its output goes to under ``dst_dir`` (``""``:
    ``dst_dir`` itself; an image in a folder of inputs: the folders between them)."""
    if isinstance(srcs, str) and any(ch in srcs for ch in "*?[") and not os.path.exists(srcs):
        return [(s, "") for s in sorted(globmod.glob(srcs))]
    out: list[tuple[Any, str]] = []
    for src in [srcs] if isinstance(srcs, str | os.PathLike) else srcs:
        folder = folder_path(src) if isinstance(src, str | os.PathLike) else None
        if folder is None:
            out.append((src, ""))
            continue
        for entry in folder_inputs(folder, dst_dir):
            sub = os.path.relpath(os.path.dirname(entry), folder)
            out.append((entry, "" if sub == "." else sub.replace(os.sep, "/")))
    return out


# ------------------------------------------------------------------------------ remote folders
#: options of the readers, not of the store (``src_options`` carry both)
_READER_OPTIONS = frozenset({"series", "threads", "path", "limits"})


def _is_http(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class FolderListing:
    """What :func:`remote_folder_inputs` listed in a folder of inputs on an object store
    (URLs): its images, its multi-file OME-TIFFs' members per companion file, the files no
    reader takes, and the keys listed (its cost: never an OME-Zarr directory's chunks)."""

    images: tuple[str, ...]
    sets: Mapping[str, tuple[str, ...]]
    left_out: tuple[str, ...]
    keys_listed: int


async def remote_folder_inputs(
    url: Any,
    options: Mapping[str, Any] | None = None,
    dst_dir: Any = None,
    left_out: list[str] | None = None,
    sets: dict[str, tuple[str, ...]] | None = None,
    listings: dict[str, FolderListing] | None = None,
) -> list[str] | None:
    """The images of a folder of inputs on an object store (``s3://``, ``gs://``, ``az://``):
    ``url``, a key prefix that is no zarr node, holds them: its TIFFs (files a reader other
    than OME-Zarr's takes) and OME-Zarr directories, and those of its folders, as URLs, sorted
    (hidden entries skipped, and ``dst_dir`` when it lies in the folder). ``None`` when ``url``
    is no such folder: a local path, a file a reader takes, a zarr node. ``left_out`` gets
    the files no reader takes. Listed one level at a time: a folder named ``*.zarr``, or
    holding a zarr node file, is an input and never listed below. A multi-file OME-TIFF
    (a ``.companion.ome`` and its TIFFs, a Micro-Manager ``*_MMStack_*.ome.tif`` series: its
    OME-TIFFs' first IFDs read) is one input, its companion file, else the first TIFF its
    OME-XML names: the others are left out, and ``sets`` gets them under its URL. ``listings`` (by URL) keeps the listing,
    and a listing found there is not done again (one listing per command).

    :raises UnsupportedError: an ``http(s)://`` URL ending in ``/`` that is no zarr node (an
        HTTP server lists no folder).
    :raises NotFoundError: nothing lies under the prefix (or its bucket does not exist).
    :raises ValueError: the folder holds no image.
    """
    text = os.fspath(url) if isinstance(url, str | os.PathLike) else None
    if text is None or "://" not in text or text.lower().startswith(("file://", "memory://")):
        return None
    if not isinstance(find_reader(text), OmeZarrReader):
        return None  # a file a reader takes by its name: a TIFF
    if _is_http(text) and not text.endswith("/"):
        return None  # an image's URL: its conversion says what is missing there
    if text.rstrip("/").lower().endswith(".zarr"):
        return None  # an OME-Zarr directory by its name
    listing = (listings or {}).get(text)
    if listing is None:
        listing = await _list_folder(text, options, dst_dir)
        if listing is None:
            return None
        if listings is not None:
            listings[text] = listing
    if sets is not None:
        sets.update(listing.sets)
    if left_out is not None:
        left_out.extend(listing.left_out)
    if not listing.images:
        raise ValueError(f"{text} holds no image to convert (no TIFF, no OME-Zarr directory)")
    return list(listing.images)


async def _list_folder(
    text: str, options: Mapping[str, Any] | None, dst_dir: Any
) -> FolderListing | None:
    """:func:`remote_folder_inputs`' listing of ``text``; ``None`` when it is a zarr node."""
    from ..stores import open_store

    given = dict(options or {})
    store_opts = {k: v for k, v in given.items() if k not in _READER_OPTIONS}
    store = open_store(text, limits=given.get("limits"), **store_opts)
    async with store:
        for name in _NODE_FILES:
            if await store.exists(name):
                return None
        if not store.supports_listing:
            raise UnsupportedError(
                f"{text} is no OME-Zarr (no zarr.json, .zattrs or .zgroup there), and an HTTP "
                "server cannot list a folder: name its files (one URL each)"
            )
        base = text.rstrip("/")
        images, left, count = await _walk(store, _skipped_prefix(base, dst_dir))
        if count == 0:
            raise NotFoundError(f"{text}: nothing there (no key under this prefix)", url=text)
        named = await _remote_sets(store, base, images)
    taken = {m for members in named.values() for m in members}
    return FolderListing(
        images=tuple(f"{base}/{k}" for k in images if k not in taken),
        sets={f"{base}/{k}": tuple(f"{base}/{m}" for m in v) for k, v in named.items()},
        left_out=tuple(f"{base}/{k}" for k in left),
        keys_listed=count,
    )


async def _walk(store: AsyncStore, skip: str | None) -> tuple[list[str], list[str], int]:
    """A folder's images (files a reader other than OME-Zarr's takes; OME-Zarr directories:
    folders named ``*.zarr`` or holding a zarr node file, never listed below), the files no
    reader takes, as keys (hidden entries and ``skip`` left out), and the entries listed;
    one delimiter listing per folder (a level's folders listed at once)."""
    from ..images._level import _run_all
    from ._formats import readers

    others = [r for r in readers() if not isinstance(r, OmeZarrReader)]
    images: list[str] = []
    left: list[str] = []
    count = 0
    todo = [""]
    listed: dict[str, tuple[list[str], list[str]]] = {}

    async def one(prefix: str) -> None:
        listed[prefix] = await store.list_dir(prefix)

    while todo:
        listed.clear()
        await _run_all(todo, one, store.limits.max_requests)
        todo = []
        for prefix, (folders, keys) in sorted(listed.items()):
            count += len(folders) + len(keys)
            if prefix and any(k.rpartition("/")[2] in _NODE_FILES for k in keys):
                images.append(prefix)  # a zarr node: an input, whatever it holds below
                continue
            _sort_level(prefix, folders, keys, skip, others, (images, left, todo))
    return sorted(images), sorted(left), count


def _sort_level(
    prefix: str,
    folders: list[str],
    keys: list[str],
    skip: str | None,
    others: Sequence[Any],
    out: tuple[list[str], list[str], list[str]],
) -> None:
    """One folder's listing into ``out``: images, files no reader takes, folders to list."""
    images, left, todo = out
    for folder in folders:
        name = folder.rpartition("/")[2]
        if name.startswith(".") or (skip and _inside(folder, skip)):
            continue
        (images if name.lower().endswith(".zarr") else todo).append(folder)
    for key in keys:
        if key.rpartition("/")[2].startswith(".") or (skip and _inside(key, skip)):
            continue
        (images if any(r.can_read(key) for r in others) else left).append(key)


async def _remote_sets(store: AsyncStore, base: str, keys: Sequence[str]) -> dict[str, list[str]]:
    """Per multi-file OME-TIFF of which several files are among ``keys`` (its companion
    file, its TIFFs: OME-TIFFs read by their first IFD, a few at once): its first one (the
    companion file, else the first TIFF its OME-XML names) and the others. A file that does
    not read makes no set (its conversion says why)."""
    from ._tiff import _COMPANION
    from ._tiffremote import remote_set_keys

    names = (_COMPANION, ".ome.tif", ".ome.tiff")
    candidates = [k for k in keys if k.lower().endswith(names)]
    groups: dict[tuple[str, ...], list[str]] = {}
    limiter = anyio.CapacityLimiter(8)

    async def one(key: str) -> None:
        async with limiter:
            try:
                files = await remote_set_keys(store, base, key)
            except Exception:  # noqa: BLE001 - no set; converting it says why
                return
        if files:
            groups.setdefault(tuple(files), []).append(key)

    if len(candidates) > 1:  # one file makes no set to take apart
        async with anyio.create_task_group() as tg:
            for key in candidates:
                tg.start_soon(one, key)
    out: dict[str, list[str]] = {}
    for order, members in groups.items():
        if len(members) > 1:
            rank = {f: i for i, f in enumerate(order)}
            members.sort(key=lambda m: (rank.get(m, len(rank)), m))
            out[members[0]] = members[1:]
    return out


def _skipped_prefix(base: str, dst_dir: Any) -> str | None:
    """The key prefix of ``dst_dir`` below the folder ``base`` (a re-run would take the
    batch's outputs for inputs); ``None`` when it lies elsewhere."""
    if not isinstance(dst_dir, str | os.PathLike):
        return None
    here, there = _url_location(base), _url_location(os.fspath(dst_dir))
    if here is None or there is None or here[:2] != there[:2] or here[0] != "url":
        return None
    if there[2] == here[2] or not _inside(there[2], here[2]):
        return None
    return there[2][len(here[2].rstrip("/")) + 1 :]


async def _batch_inputs(
    srcs: str | os.PathLike[str] | Sequence[Any],
    dst_dir: Any,
    options: Mapping[str, Any] | None,
    sets: dict[str, tuple[str, ...]],
    listings: dict[str, FolderListing] | None = None,
) -> tuple[list[tuple[Any, str]], dict[str, Exception]]:
    """:func:`_inputs`, with the folders of inputs on object stores listed (``sets`` gets
    their multi-file OME-TIFFs' members; ``listings``: those listed already); and the inputs
    that failed so (a folder holding no image, an HTTP folder): their errors."""
    out: list[tuple[Any, str]] = []
    failed: dict[str, Exception] = {}
    for src, sub in _inputs(srcs, dst_dir):
        try:
            found = (
                None
                if sub
                else await remote_folder_inputs(src, options, dst_dir, None, sets, listings)
            )
        except Exception as exc:  # noqa: BLE001 - that input's result
            failed[_name(src)] = exc
            continue
        if found is None:
            out.append((src, sub))
            continue
        base = os.fspath(src).rstrip("/")
        out.extend((entry, posixpath.dirname(entry[len(base) + 1 :])) for entry in found)
    return out, failed


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


def _is_store_file(loc: _Location, src: str) -> bool:
    """Whether ``src`` (at ``loc``) is a file a reader other than OME-Zarr's takes on an
    object store (not over HTTP)."""
    return not loc[1].startswith("http") and not isinstance(find_reader(src), OmeZarrReader)


def _file_sets(inputs: Sequence[Any]) -> dict[str, tuple[str, ...]]:
    """The multi-file OME-TIFFs of which several files are local ``inputs``: per set, its first
    input (its companion file, else the first TIFF its OME-XML names) and the others."""
    from ._tiff import TiffReader, _local_path, is_remote, set_files

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


def _written_version(version: str | None) -> str | None:
    """The version a conversion writes by default for a source of ``version``: its own, but
    0.5 for 0.6 (read, not written)."""
    return "0.5" if version is not None and version.startswith("0.6") else version
