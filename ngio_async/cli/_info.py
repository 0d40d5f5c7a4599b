"""``ngio-async info URL``: the tree of an OME-Zarr hierarchy, from metadata only.

Every metadata read that can run concurrently does (levels, labels, wells, series), bounded by a
``CapacityLimiter``; the store bounds the requests in flight on top of that.
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from .._errors import (
    CodecError,
    CredentialsRefusedError,
    MetadataError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    UnsupportedError,
)
from .._open_any import _group_url
from .._prefetch import first_leaf, raise_plainly, start_deferred
from ..images import Dataset
from ..images._open import join, listed_series, read_group_metadata, read_level_metadata
from ..meta.zarr import (
    ArrayV2Meta,
    ArrayV3Meta,
    BloscCodec,
    BytesCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
    decode_array_v2,
    decode_node_v3,
)
from ..stores import open_store
from ..stores._url_utils import redact_url
from ._common import (
    EXIT_INVALID,
    CLIError,
    check_url,
    human_bytes,
    refuse_tiff,
    request_options,
    stdout_console,
    store_options,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable, Iterator, Sequence

    from rich.tree import Tree

    from ..images import Level
    from ..meta import OmeMetadata
    from ..meta.zarr import ArrayMeta, Codec
    from ..stores import AsyncStore

__all__ = ["codec_names", "gather_info", "run_info"]

#: what a broken member (a series, label image, well's field) of a described group raises: it is
#: shown with its error, the rest described
_MEMBER_ERRORS = (NotFoundError, PermissionDeniedError, MetadataError, UnsupportedError, CodecError)

_CONCURRENCY = 32  # metadata nodes read at once (the store's limiter bounds requests too)


# ------------------------------------------------------------------------------ codecs
def _codec_name(codec: Codec) -> list[str]:
    if isinstance(codec, ShardingCodec):
        inner: list[str] = []
        for c in codec.configuration.codecs:
            inner.extend(_codec_name(c))
        return ["sharding_indexed", *inner]
    if isinstance(codec, BloscCodec):
        cfg = codec.configuration
        shuffle = f", {cfg.shuffle}" if cfg.shuffle else ""
        return [f"blosc({cfg.cname}, clevel={cfg.clevel}{shuffle})"]
    if isinstance(codec, ZstdCodec):
        return [f"zstd(level={codec.configuration.level})"]
    if isinstance(codec, GzipCodec):
        return [f"gzip(level={codec.configuration.level})"]
    if isinstance(codec, BytesCodec):
        endian = codec.configuration.endian
        return [f"bytes({endian})" if endian else "bytes"]
    if isinstance(codec, TransposeCodec):
        return [f"transpose{codec.configuration.order}"]
    return [str(type(codec).__struct_config__.tag)]  # the codec's name in zarr.json


def _v2_codec(cfg: dict[str, Any]) -> str:
    name = str(cfg.get("id", "?"))
    params = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "id")
    return f"{name}({params})" if params else name


def codec_names(meta: ArrayMeta) -> list[str]:
    """The codec chain of an array, one short string per codec (sharding: its inner chain;
    the codecs after it, which compress whole shards, marked so)."""
    if isinstance(meta, ArrayV3Meta):
        out: list[str] = []
        sharded = False
        for c in meta.codecs:
            out.extend(f"{n} (whole shard)" if sharded else n for n in _codec_name(c))
            sharded = sharded or isinstance(c, ShardingCodec)
        return out
    assert isinstance(meta, ArrayV2Meta)
    names = [_v2_codec(f) for f in meta.filters or ()]
    names.append(_v2_codec(meta.compressor) if meta.compressor else "no compressor")
    return names


# ------------------------------------------------------------------------------ gathering
async def _stored_bytes(store: AsyncStore, prefix: str) -> int | None:
    """Bytes stored under ``prefix`` (one listing; ``None`` when the store cannot list)."""
    if not store.supports_listing:
        return None
    try:
        return await store.stored_bytes(prefix)
    except Exception:  # noqa: BLE001 - sizes are best effort; the listing may be refused
        return None


async def _level_info(store: AsyncStore, lvl: Level, sizes: bool) -> dict[str, Any]:
    meta = lvl.meta
    return {
        "path": lvl.path,
        "shape": list(lvl.shape),
        "dtype": str(lvl.dtype),
        "chunks": list(lvl.chunks),
        "shards": list(lvl.shards) if lvl.shards else None,
        "codecs": codec_names(meta),
        "zarr_format": 3 if isinstance(meta, ArrayV3Meta) else 2,
        "scale": list(lvl.scale),
        "objects": math.prod(meta.grid_shape),
        "decoded_bytes": lvl.nbytes,
        "stored_bytes": await _stored_bytes(store, lvl.path) if sizes else None,
    }


async def _each(
    items: Sequence[Any],
    func: Callable[[Any], Awaitable[Any]],
    limiter: anyio.CapacityLimiter | None = None,
) -> list[Any]:
    """``[await func(x) for x in items]``, concurrently, in order; at most ``limiter`` at once.

    A limiter bounds one fan-out only (wells, series): ``func`` must never wait for a token of
    the same limiter, or a full limiter deadlocks. Small fan-outs (levels, labels) go unbounded:
    the store's own limiter bounds the requests in flight.
    """
    results: list[Any] = [None] * len(items)

    async def one(i: int, item: Any) -> None:
        if limiter is None:
            results[i] = await func(item)
            return
        async with limiter:
            results[i] = await func(item)

    with _first_error():
        async with anyio.create_task_group() as tg:
            for i, item in enumerate(items):
                start_deferred(tg, one, i, item)
    return results


@contextlib.contextmanager
def _first_error() -> Iterator[None]:
    """Raise the first error of a task group itself, not an ``ExceptionGroup``."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = first_leaf(group)
        if not isinstance(leaf, Exception):
            raise
        raise_plainly(leaf)


async def _open_image(
    store: AsyncStore, root: str, ome: OmeMetadata | None, version: str | None
) -> Dataset:
    """The image at ``root``; with ``ome`` (its group metadata, read already) only the levels'
    metadata is read, so ``info`` reads every group's metadata once. ``version``: the NGFF
    version of the enclosing group (a 0.4 child is read without asking for 0.5 documents)."""
    if ome is None or ome.multiscales is None:
        return await Dataset.open_in(store, root, parent_version=version)
    paths = tuple(d.path for d in ome.multiscales[0].datasets)
    arrays = await read_level_metadata(store, root, ome, paths)
    return Dataset.from_plan(store, root, ome, arrays, mode="r")


async def _image_info(
    store: AsyncStore,
    root: str,
    *,
    sizes: bool,
    labels: bool = True,
    ome: OmeMetadata | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    ds = await _open_image(store, root, ome, version)
    try:
        md = ds.metadata
        label_infos: list[dict[str, Any]] = []

        async def label_info(name: str) -> dict[str, Any]:
            """One label image; a broken one is shown with its error (see ``validate``),
            the image and the other labels are still described."""
            try:
                info = await _image_info(
                    store,
                    join(root, "labels", name),
                    sizes=sizes,
                    labels=False,
                    version=md.ngff_version,
                )
            except _MEMBER_ERRORS as exc:
                return {"name": name, "error": " ".join(str(exc).split())}
            return info | {"name": name}

        async def read_labels() -> None:
            label_infos.extend(await _each(await ds.labels.names(), label_info))

        with _first_error():
            async with anyio.create_task_group() as tg:  # levels and labels at once
                if labels:
                    start_deferred(tg, read_labels)
                levels = await _each(ds.levels, lambda lvl: _level_info(store, lvl, sizes))
        info: dict[str, Any] = {
            "path": root,
            "name": md.name,
            "ngff_version": md.ngff_version,
            "axes": [{"name": a.name, "type": a.type, "unit": a.unit} for a in md.axes],
            "dtype": str(ds.dtype),
            "levels": levels,
            "channels": [
                {
                    "index": c.index,
                    "label": c.label,
                    "color": c.color,
                    "window": list(c.window) if c.window else None,
                }
                for c in md.channels
            ],
            "decoded_bytes": sum(lvl["decoded_bytes"] for lvl in levels),
            "stored_bytes": (
                None
                if any(lvl["stored_bytes"] is None for lvl in levels)
                else sum(lvl["stored_bytes"] for lvl in levels)
            ),
        }
        if md.ome.image_label is not None:
            info["image_label"] = True
        if labels:
            info["labels"] = label_infos
        return info
    finally:
        await ds.aclose()


async def _or_error(path: str, info: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """``await info``, or ``{"path", "error"}`` when the node is missing or broken (shown with
    its error, as a label image is; the other nodes are still described)."""
    try:
        return await info
    except _MEMBER_ERRORS as exc:
        return {"path": path, "error": " ".join(str(exc).split())}


async def _well_info(
    store: AsyncStore, root: str, ome: OmeMetadata | None, version: str | None = None
) -> dict[str, Any]:
    if ome is None:
        ome = await read_group_metadata(store, root, parent_version=version)
    if ome.well is None:
        return {"path": root, "fields": [], "error": "not a well"}
    return {"path": root, "fields": [im.path for im in ome.well.images]}


async def _plate_info(
    store: AsyncStore, root: str, ome: OmeMetadata, *, sizes: bool, limiter: anyio.CapacityLimiter
) -> dict[str, Any]:
    plate = ome.plate
    assert plate is not None

    async def well(path: str) -> dict[str, Any]:
        try:
            return await _well_info(store, join(root, path), None, ome.version) | {"path": path}
        except CredentialsRefusedError:
            raise
        except (NotFoundError, PermissionDeniedError):  # 403: missing, on a store that may not list
            return {"path": path, "fields": [], "error": "missing"}
        except (MetadataError, UnsupportedError) as exc:  # shown per well; see `validate`
            rule = exc.rule if isinstance(exc, MetadataError) else str(exc)
            where = f" at {exc.path}" if isinstance(exc, MetadataError) else ""
            return {"path": path, "fields": [], "error": f"invalid metadata{where}: {rule}"}

    wells = await _each([w.path for w in plate.wells], well, limiter)
    info: dict[str, Any] = {
        "path": root,
        "name": plate.name,
        "ngff_version": ome.version,
        "rows": [r.name for r in plate.rows],
        "columns": [c.name for c in plate.columns],
        "field_count": plate.field_count,
        "acquisitions": [{"id": a.id, "name": a.name} for a in plate.acquisitions or ()],
        "wells": wells,
        "fields": sum(len(w["fields"]) for w in wells),
    }
    first = next((w for w in wells if w["fields"]), None)
    if first is not None:
        path = join(root, first["path"], first["fields"][0])
        try:
            info["first_field"] = await _image_info(store, path, sizes=sizes, version=ome.version)
        except (MetadataError, NotFoundError, PermissionDeniedError, UnsupportedError) as exc:
            info["first_field_error"] = f"{path}: {' '.join(str(exc).split())}"
    return info


async def _probe(store: AsyncStore, root: str, version: str | None) -> OmeMetadata | None:
    """The group metadata at ``root``, or ``None`` when there is no group."""
    try:
        return await read_group_metadata(store, root, parent_version=version)
    except CredentialsRefusedError:
        raise
    except (NotFoundError, PermissionDeniedError):  # 403: missing, on a store that may not list
        return None


async def _series(
    store: AsyncStore, root: str, version: str | None, limiter: anyio.CapacityLimiter
) -> list[tuple[str, OmeMetadata | None]]:
    """The series of a bioformats2raw container: ``OME/series``, else ``0``, ``1``, ... (probed
    by reading their group metadata, which is kept: each series' metadata is read once)."""
    listed = await listed_series(store, root, version)
    if listed is not None:
        return [(path, None) for path in listed]
    found: list[tuple[str, OmeMetadata | None]] = []
    batch = 16
    while True:
        names = [str(i) for i in range(len(found), len(found) + batch)]
        metas = await _each(names, lambda name: _probe(store, join(root, name), version), limiter)
        for name, meta in zip(names, metas, strict=True):
            if meta is None:
                return found
            found.append((name, meta))


async def _unfinished(store: AsyncStore) -> bool:
    """Whether the group at ``store``'s root is marked as a conversion not finished yet."""
    from ..convert._resume import _is_unfinished

    for key, v3 in (("zarr.json", True), (".zattrs", False)):
        raw = await store.get(key)
        if raw is not None:
            return _is_unfinished(raw, v3)
    return False


# ------------------------------------------------------------------------------ plain arrays
async def _array_at(store: AsyncStore) -> ArrayMeta | None:
    """The zarr array at ``store``'s root (v3 ``zarr.json``, else v2 ``.zarray``), or ``None``
    (no array there, or metadata that does not decode: the group's error stands then)."""
    for key in ("zarr.json", ".zarray"):
        try:
            raw = await store.get(key)
        except CredentialsRefusedError:
            raise
        except PermissionDeniedError:  # 403: missing, on a store that may not list
            continue
        if raw is None:
            continue
        try:
            doc = bytes(raw)
            node = decode_node_v3(doc) if key == "zarr.json" else decode_array_v2(doc)
        except (MetadataError, UnsupportedError):
            return None
        return node if isinstance(node, ArrayV3Meta | ArrayV2Meta) else None
    return None


def _parent(url: str) -> tuple[str, str] | None:
    """``(the URL of the group above url, url's last path component)`` as the user would type
    them (a local path stays a path); ``None`` at a store's root."""
    parts = urlsplit(url)
    if len(parts.scheme) <= 1:  # a local path (or a Windows drive)
        path = url.rstrip("/\\")
        name = os.path.basename(path)
        parent = os.path.dirname(path)
        if name in ("", ".", "..") or not parent:
            path = os.path.abspath(os.path.expanduser(path or "."))
            name, parent = os.path.basename(path), os.path.dirname(path)
        return (parent, name) if name and parent != path else None
    path = parts.path.rstrip("/")
    if not path.strip("/"):
        return None
    parent, _, name = path.rpartition("/")
    return urlunsplit(parts._replace(path=parent)), name


async def _level_of(url: str, options: dict[str, Any]) -> dict[str, Any] | None:
    """The image whose level is the array at ``url`` (a level's path may hold a ``/``: up to
    three groups up are asked), or ``None``."""
    at, path = url, ""
    for _ in range(3):
        up = _parent(at)
        if up is None:
            return None
        at, name = up
        path = f"{name}/{path}" if path else name
        try:
            async with open_store(at, **options) as store:
                ome = await read_group_metadata(store, "")
                where = store.url
        except (NgioError, OSError, ValueError):  # no group there (or not readable): go on up
            continue
        for ms in ome.multiscales or ():
            paths = [d.path.strip("/") for d in ms.datasets]
            if path in paths:
                return {
                    "image": redact_url(at),  # as typed (a path stays a path), no credentials
                    "url": where,
                    "path": path,
                    "index": paths.index(path),
                    "ngff_version": ome.version,
                }
        if ome.kinds:  # an NGFF group that does not list it: no image of ours further up
            return None
    return None


async def _array_info(
    store: AsyncStore, meta: ArrayMeta, url: str, sizes: bool, options: dict[str, Any]
) -> dict[str, Any]:
    """What ``info`` says of a zarr array given as the URL: a plain array, or an image's
    level (then which image, to run ``info`` on)."""
    level_of = await _level_of(url, options)
    array = {
        "zarr_format": 3 if isinstance(meta, ArrayV3Meta) else 2,
        "shape": list(meta.shape),
        "dtype": str(meta.dtype),
        "chunks": list(meta.chunks),
        "shards": list(meta.shards) if meta.shards else None,
        "codecs": codec_names(meta),
        "dimension_names": list(meta.dimension_names) if meta.dimension_names else None,
        "objects": math.prod(meta.grid_shape),
        "decoded_bytes": math.prod(meta.shape) * meta.dtype.itemsize,
        "stored_bytes": await _stored_bytes(store, "") if sizes else None,
    }
    out: dict[str, Any] = {"url": store.url, "ngff_version": None, "kinds": []}
    if level_of is None:
        return out | {"kind": "array", "array": array}
    return out | {"kind": "level", "array": array, "level_of": level_of}


async def gather_info(url: str, *, sizes: bool = True, **options: Any) -> dict[str, Any]:
    """The description of the hierarchy at ``url`` (what ``info --json`` prints).

    A zarr array (no OME-Zarr group) is described as one (``kind`` ``array``), or, when it is
    a level of an image, as that (``kind`` ``level``, with ``level_of``: the image)."""
    refuse_tiff(url, "info")
    url = _group_url(url)  # a URL of the group's zarr.json / .zattrs: the group
    limiter = anyio.CapacityLimiter(_CONCURRENCY)
    async with open_store(url, **options) as store:
        try:
            ome = await read_group_metadata(store, "")
        except (MetadataError, NotFoundError) as exc:
            if isinstance(exc, MetadataError) and await _unfinished(store):
                raise CLIError(
                    f"{store.url} is an unfinished conversion (interrupted or failed): run the "
                    "same `ngio-async convert` again to finish it",
                    EXIT_INVALID,
                ) from exc
            array = await _array_at(store)
            if array is None:
                raise
            return await _array_info(store, array, url, sizes, options)
        out: dict[str, Any] = {"url": store.url, "ngff_version": ome.version, "kinds": ome.kinds}
        if ome.plate is not None:
            out["kind"] = "plate"
            out["plate"] = await _plate_info(store, "", ome, sizes=sizes, limiter=limiter)
        elif ome.well is not None:
            out["kind"] = "well"
            out["well"] = await _well_info(store, "", ome)
            fields = out["well"]["fields"]
            if fields:  # a broken one is shown with its error, as a plate's first field
                try:
                    out["well"]["first_field"] = await _image_info(
                        store, fields[0], sizes=sizes, version=ome.version
                    )
                except _MEMBER_ERRORS as exc:
                    out["well"]["first_field_error"] = f"{fields[0]}: {' '.join(str(exc).split())}"
        elif ome.multiscales is not None:
            out["kind"] = "image"
            out["image"] = await _image_info(store, "", sizes=sizes, ome=ome)
        elif ome.bioformats2raw_layout is not None:
            out["kind"] = "bioformats2raw"
            series = await _series(store, "", ome.version, limiter)
            out["series"] = await _each(
                series,
                lambda s: _or_error(
                    s[0], _image_info(store, s[0], sizes=sizes, ome=s[1], version=ome.version)
                ),
                limiter,
            )
        elif ome.labels is not None:
            out["kind"] = "labels"
            names = list(ome.labels)
            infos = await _each(
                names,
                lambda n: _or_error(
                    n, _image_info(store, n, sizes=sizes, labels=False, version=ome.version)
                ),
            )
            for n, i in zip(names, infos, strict=True):
                i["name"] = n
            out["labels"] = infos
        elif ome.series is not None:  # a bioformats2raw container's OME group
            out["kind"] = "series"
            out["series"] = list(ome.series)
        else:
            out["kind"] = "unknown"
        return out


# ------------------------------------------------------------------------------ rendering
def _esc(value: Any) -> str:
    from rich.markup import escape

    return escape(str(value))


def _shape(values: Sequence[int] | None) -> str:
    return "x".join(map(str, values)) if values else "-"


def _stored(info: dict[str, Any]) -> str:
    n = info.get("stored_bytes")
    return "" if n is None else f"  stored {human_bytes(n)}"


def _add_image(tree: Tree, info: dict[str, Any], title: str) -> None:
    axes = "".join(a["name"] for a in info["axes"])
    units = sorted({a["unit"] for a in info["axes"] if a.get("unit")})
    node = tree.add(
        f"[bold]{_esc(title)}[/bold]  NGFF {_esc(info['ngff_version'])}  axes {_esc(axes)}"
        f"  {_esc(info['dtype'])}  {_count(len(info['levels']), 'level')}"
        f"  decoded {human_bytes(info['decoded_bytes'])}{_stored(info)}"
        + (f"  ({_esc(', '.join(units))})" if units else "")
    )
    for lvl in info["levels"]:
        shards = f"  shards {_shape(lvl['shards'])}" if lvl["shards"] else ""
        node.add(
            f"level {_esc(lvl['path'])}: shape {_shape(lvl['shape'])}  chunks "
            f"{_shape(lvl['chunks'])}{shards}  {_esc(lvl['dtype'])}"
            f"  codecs {_esc(', '.join(lvl['codecs']))}  zarr v{lvl['zarr_format']}"
            f"  {_count(lvl['objects'], 'object')}  decoded {human_bytes(lvl['decoded_bytes'])}"
            f"{_stored(lvl)}"
        )
    if info["channels"]:
        ch = node.add(f"channels ({len(info['channels'])})")
        for c in info["channels"]:
            window = f"  window {c['window'][0]:g}-{c['window'][1]:g}" if c["window"] else ""
            ch.add(
                f"{c['index']}: {_esc(c['label'] or '-')}  color {_esc(c['color'] or '-')}{window}"
            )
    labels = info.get("labels")
    if labels:
        lab = node.add(f"labels ({len(labels)})")
        for label in labels:
            if "error" in label:
                lab.add(f"[red]label {_esc(label['name'])}: {_esc(label['error'])}[/red]")
            else:
                _add_image(lab, label, f"label {label['name']}")


def _add_array(tree: Tree, info: dict[str, Any]) -> None:
    array, of = info["array"], info.get("level_of")
    if of is None:
        title = f"[bold]plain zarr v{array['zarr_format']} array[/bold] (no OME-Zarr metadata)"
    else:
        image = of["image"]
        title = (
            f"[bold]level {of['index']} of the image at {_esc(image)}[/bold] (path "
            f"{_esc(of['path'])}): run `ngio-async info {_esc(shlex.quote(image))}` to describe "
            "the image"
        )
    shards = f"  shards {_shape(array['shards'])}" if array["shards"] else ""
    names = array.get("dimension_names")
    dims = f"  dimensions {_esc(','.join(str(n) for n in names))}" if names else ""
    node = tree.add(title)
    node.add(
        f"shape {_shape(array['shape'])}  {_esc(array['dtype'])}  chunks "
        f"{_shape(array['chunks'])}{shards}{dims}  codecs {_esc(', '.join(array['codecs']))}"
        f"  zarr v{array['zarr_format']}  {_count(array['objects'], 'object')}"
        f"  decoded {human_bytes(array['decoded_bytes'])}{_stored(array)}"
    )


def render_info(info: dict[str, Any]) -> Tree:
    from rich.tree import Tree

    kind = info["kind"]
    tree = Tree(f"[bold]{_esc(info['url'])}[/bold]  ({_esc(kind)})")
    if kind == "image":
        _add_image(
            tree, info["image"], "label image" if "image_label" in info["image"] else "image"
        )
    elif kind == "plate":
        plate = info["plate"]
        missing = [w["path"] for w in plate["wells"] if w.get("error")]
        node = tree.add(
            f"[bold]plate{_esc(' ' + plate['name'] if plate['name'] else '')}[/bold]"
            f"  NGFF {_esc(plate['ngff_version'])}"
            f"  {len(plate['rows'])} rows x {len(plate['columns'])} columns"
            f"  {_count(len(plate['wells']), 'well')}  {_count(plate['fields'], 'field')}"
            + (f"  {len(plate['acquisitions'])} acquisitions" if plate["acquisitions"] else "")
        )
        node.add(f"rows: {_esc(' '.join(plate['rows']))}")
        node.add(f"columns: {_esc(' '.join(plate['columns']))}")
        wells = node.add("wells")
        for w in plate["wells"]:
            state = f"  [red]{_esc(w['error'])}[/red]" if w.get("error") else ""
            wells.add(f"{_esc(w['path'])}: {_count(len(w['fields']), 'field')}{state}")
        if missing:
            node.add(f"[red]{len(missing)} wells missing or invalid[/red]")
        if "first_field" in plate:
            _add_image(node, plate["first_field"], f"first field {plate['first_field']['path']}")
        if "first_field_error" in plate:
            node.add(f"[red]first field: {_esc(plate['first_field_error'])}[/red]")
    elif kind == "well":
        well = info["well"]
        node = tree.add(f"[bold]well[/bold]  fields: {_esc(', '.join(well['fields']))}")
        if "first_field" in well:
            _add_image(node, well["first_field"], f"first field {well['first_field']['path']}")
        if "first_field_error" in well:
            node.add(f"[red]first field: {_esc(well['first_field_error'])}[/red]")
    elif kind == "bioformats2raw":
        node = tree.add(f"[bold]bioformats2raw container[/bold]  {len(info['series'])} series")
        for s in info["series"]:
            if "error" in s:
                node.add(f"[red]series {_esc(s['path'])}: {_esc(s['error'])}[/red]")
            else:
                _add_image(node, s, f"series {s['path']}")
    elif kind == "labels":
        node = tree.add(f"[bold]labels[/bold]  {len(info['labels'])}")
        for label in info["labels"]:
            if "error" in label:
                node.add(f"[red]label {_esc(label['name'])}: {_esc(label['error'])}[/red]")
            else:
                _add_image(node, label, f"label {label['name']}")
    elif kind in ("array", "level"):
        _add_array(tree, info)
    elif kind == "series":
        paths = ", ".join(info["series"]) or "none"
        tree.add(
            f"[bold]OME group of a bioformats2raw container[/bold]  series (paths in the "
            f"container): {_esc(paths)}; `info` of the container describes them"
        )
    else:
        tree.add(f"NGFF metadata: {_esc(', '.join(info['kinds']) or 'none')}")
    return tree


def run_info(args: argparse.Namespace) -> int:
    import json

    from ._run import run_async

    check_url(args.url)

    info = run_async(
        gather_info,
        args.url,
        sizes=not args.no_sizes,
        quiet=args.quiet,
        **store_options(args, args.url),
        **request_options(args),
    )
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        stdout_console().print(render_info(info))
    return 0


def _count(n: int, noun: str) -> str:
    """``1 field``, ``2 fields``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
