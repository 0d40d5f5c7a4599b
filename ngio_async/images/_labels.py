"""Label images of a dataset: list, open and create them (``ds.labels``).

``await ds.labels.create(name)`` makes ``labels/<name>`` shaped like the image: the same levels,
shapes, scales, translations and chunking (sharded likewise for 0.5) without the channel axis (a
``czyx`` image gives a ``zyx`` label; ``t`` is kept), an integer data type and ``image-label``
metadata (colors, properties, source ``../../``). Writes go in an order that never leaves
metadata pointing at missing nodes:

1. refuse an existing ``labels/<name>`` node unless ``overwrite=True``, which first removes the
   name from the ``labels`` listing, then deletes its keys;
2. every level's array metadata, concurrently (without ``overwrite``, the first level's is put
   only if absent: of two creates of one name, from any dataset objects or processes, one
   writes and the other is refused);
3. the label image's group metadata (0.4 ``.zgroup`` then ``.zattrs``; 0.5 ``zarr.json``), then
   the groups inside nested level paths (ngff-zarr's ``scale0/image``);
4. the ``labels`` group listing: created, or the name appended (existing names and other
   attributes are kept; the document is read again right before it is written); then the
   consolidated metadata above it, if any (zarr-python trusts it), with the label's documents.

A failure at any step leaves the name unlisted until the new label image is complete: the
listing never names a label that does not open.

Listing updates of one dataset object are serialised by a lock, and each is a compare-and-swap
(``store.update``): labels of other names created meanwhile, by other dataset objects or
processes, stay listed.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
import numpy as np

from .._errors import MetadataError, NgioError, NotFoundError, UnsupportedError
from ..meta import read_document, write_document
from ..meta._names import check_child_name
from ..stores import AsyncStore
from ._create_plan import path_groups
from ._open import join, read_group_metadata, refresh_image
from ._write import KeyLocks

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .._limits import Limits
    from ..meta import LabelColor, LabelProperty, OmeMetadata
    from ..meta.zarr import ArrayMeta
    from ..stores import Buffer
    from ._create_plan import ImagePlan
    from ._dataset import Dataset
    from ._opening import Mode, _Opening

__all__ = ["Labels", "follow_label_source", "plan_label"]

ColorSpec = Mapping[int, Sequence[int] | str | None] | Sequence[Mapping[str, Any] | Any]
PropertySpec = Mapping[int, Mapping[str, Any]] | Sequence["Mapping[str, Any] | LabelProperty"]


def _check_name(name: str, *, creating: bool = False) -> None:
    """A label image's name: :func:`~ngio_async.meta._names.check_child_name`."""
    check_child_name(name, "label", creating=creating)


#: a label's shards hold at most the image's shard bytes or this, whichever is more
_SHARD_BYTES = 64 << 20


def _shards_within(
    shards: tuple[int, ...], chunks: tuple[int, ...], itemsize: int, limit: int
) -> tuple[int, ...]:
    """``shards`` halved along the last two axes in turn (x first), as long as they stay a
    multiple of ``chunks``, until a shard of ``itemsize``-byte values holds at most ``limit``
    bytes: a ``uint32`` label of a ``uint8`` image with 64 MiB shards keeps the image's chunks
    (aligned tiles) and gets 64 MiB shards (a whole-shard write holds one in memory), not 256."""
    out = list(shards)
    axes = [i for i in (len(out) - 1, len(out) - 2) if i >= 0]
    while math.prod(out) * itemsize > limit:
        for i in axes:
            if out[i] % (2 * chunks[i]) == 0:
                out[i] //= 2
                break
        else:
            break  # one chunk across: as small as the chunks allow
        axes.reverse()
    return tuple(out)


def _compressor_of(meta: ArrayMeta) -> Any:
    """The :func:`create_async` compressor name closest to ``meta``'s: that of its chunks'
    first compressor, else of the one its shards are compressed with whole; ``None`` when
    nothing compresses. Blosc of any ``cname`` is ``"blosc-zstd"`` (blosc frames, shuffled
    alike); a compressor none of the names writes (``lz4``, ``zlib``, ``pcodec``, a v2 id
    with no v3 form) is ``"zstd"``, the default, in zarr v2 and v3 alike (a v3
    ``numcodecs.zstd`` image gave uncompressed labels, its v2 twin ``zstd`` ones)."""
    from ..meta.zarr import codec_stages

    stages = codec_stages(meta)
    if stages is None:
        return "zstd"  # a v2 codec with no v3 form
    for codec in (*stages.chunk, *stages.whole_shard):
        name = _name_of(codec)
        if name is not None:
            return name
    return None


#: ``numcodecs.<id>`` codecs that compress, by the closest :func:`create_async` name
_NUMCODECS_NAMES: dict[str, str] = {
    "zstd": "zstd",
    "gzip": "gzip",
    "blosc": "blosc-zstd",
    **dict.fromkeys(("lz4", "zlib", "bz2", "lzma", "pcodec", "zfpy"), "zstd"),
}


def _name_of(codec: Any) -> str | None:
    """The closest :func:`create_async` name of a compressing ``codec``; ``None`` for one
    that does not compress (``bytes``, ``transpose``, a checksum, a filter)."""
    from ..meta.zarr import BloscCodec, GzipCodec, NumcodecsCodec, ZstdCodec

    if isinstance(codec, ZstdCodec):
        return "zstd"
    if isinstance(codec, GzipCodec):
        return "gzip"
    if isinstance(codec, BloscCodec):
        return "blosc-zstd"
    if isinstance(codec, NumcodecsCodec):
        tag = str(type(codec).__struct_config__.tag)
        return _NUMCODECS_NAMES.get(tag[len("numcodecs.") :])
    return None


def _plain(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists (``np.unique`` gives
    numpy label values); anything else goes through as given (validation names what is wrong)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Mapping):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _colors_json(colors: ColorSpec | None) -> list[dict[str, Any]] | None:
    if colors is None:
        return None
    if isinstance(colors, Mapping):
        # the values go through as given: validation names a float or a bool (NGFF: integers)
        return [  # a None color: derived (see _consistent)
            {"label-value": _plain(v)}
            if rgba is None
            else {"label-value": _plain(v), "rgba": _hex_rgba(rgba) or _plain(list(rgba))}
            for v, rgba in colors.items()
        ]
    from ..meta import LabelColor

    if isinstance(colors, str | bytes) or not isinstance(colors, Sequence | np.ndarray):
        raise TypeError(
            f"colors must be a mapping label value -> color or a list of dicts, got {colors!r}"
        )
    out = []
    for i, c in enumerate(colors):
        if not isinstance(c, Mapping | LabelColor):
            raise TypeError(
                f"colors[{i}]: expected a dict with 'label-value' and 'rgba' (or a LabelColor), "
                f"got {c!r}"
            )
        out.append(_plain(dict(c)) if isinstance(c, Mapping) else _dump(c))
    return out


def _hex_rgba(color: Any) -> list[int] | None:
    """``[r, g, b, a]`` of a hex color string (``"#FF0000"``, ``"FF000080"``: as channel colors
    are given; alpha 255 unless given); ``None`` for anything else (validation names it)."""
    if not isinstance(color, str):
        return None
    digits = color.removeprefix("#")
    if not re.fullmatch(r"[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?", digits):
        raise ValueError(f"label color {color!r}: expected 'RRGGBB' or 'RRGGBBAA' hex digits")
    rgba = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return rgba if len(rgba) == 4 else [*rgba, 255]


def _check_rgba(colors: list[dict[str, Any]], at: str) -> None:
    """Refuse colors given as floats 0..1 (napari's convention): validation turned integral
    floats into integers, so (1.0, 0.0, 0.0, 1.0) became a near-black, near-transparent
    ``[1, 0, 0, 1]``."""
    for i, color in enumerate(colors):
        rgba = color.get("rgba")
        if (
            isinstance(rgba, list)
            and any(isinstance(v, float) for v in rgba)
            and all(isinstance(v, int | float) and 0 <= v <= 1 for v in rgba)
        ):
            raise MetadataError(
                f"rgba {rgba} looks like a color in 0..1 floats; NGFF colors are four integers "
                "0..255 (multiply by 255 and round)",
                f"{at}[{i}].rgba",
            )


def _check_values(entries: list[dict[str, Any]] | None, dtype: np.dtype[Any], at: str) -> None:
    """Refuse a color or property for a label value that ``dtype`` cannot hold (300 or -1
    for ``uint8``): no pixel can have it."""
    if not entries or dtype.kind not in "iu":
        return
    info = np.iinfo(dtype)
    for i, entry in enumerate(entries):
        value = entry.get("label-value")
        if not isinstance(value, int) or isinstance(value, bool):
            continue  # validation names it
        if not info.min <= value <= info.max:
            raise MetadataError(
                f"label value {value} is not a {dtype} value ({info.min}..{info.max}): "
                "no pixel of the label image can have it",
                f"{at}[{i}].label-value",
            )


def _dump(obj: Any) -> Any:
    from ..meta._base import dump

    return dump(obj)


def _properties_json(properties: PropertySpec | None) -> list[dict[str, Any]] | None:
    """``{value: {key: ...}}`` (as colors are given) or a list of dicts with ``label-value``
    (or :class:`~ngio_async.meta.LabelProperty`) as JSON entries."""
    from ..meta import LabelProperty

    if properties is None:
        return None
    if isinstance(properties, Mapping):
        entries: list[Any] = []
        for value, props in properties.items():
            if not isinstance(props, Mapping):
                raise TypeError(
                    f"properties[{value!r}]: expected a dict of properties, got {props!r}"
                )
            rest = {k: v for k, v in props.items() if k != "label-value"}
            entries.append({"label-value": value, **rest})
    elif isinstance(properties, str | bytes) or not isinstance(properties, Sequence | np.ndarray):
        raise TypeError(
            "properties must be a mapping label value -> dict or a list of dicts, "
            f"got {properties!r}"
        )
    else:
        entries = list(properties)
    out = []
    for i, p in enumerate(entries):
        if not isinstance(p, Mapping | LabelProperty):
            raise TypeError(
                f"properties[{i}]: expected a dict with 'label-value' (or a LabelProperty), "
                f"got {p!r}"
            )
        d = _plain(dict(p)) if isinstance(p, Mapping) else _dump(p)
        if "label-value" not in d:
            raise ValueError(f"properties[{i}] has no 'label-value'")
        out.append(d)
    return out


def _drop(values: Sequence[Any], axis: int | None) -> list[Any]:
    return [v for i, v in enumerate(values) if i != axis]


def plan_label(
    ds: Dataset,
    name: str,
    dtype: DTypeLike = "uint32",
    colors: ColorSpec | Sequence[LabelColor] | None = None,
    properties: PropertySpec | None = None,
) -> ImagePlan:
    """The :class:`~ngio_async.images._create_plan.ImagePlan` of label ``name`` of ``ds`` (pure:
    from ``ds``'s metadata and levels as cached; :meth:`Labels.create` refreshes them first)."""
    from msgspec.structs import replace

    from ..meta import OmeMetadata, Scale, Translation, to_attrs, validate
    from ..meta.zarr import ArrayV2Meta
    from ._array_meta import array_meta_v2, array_meta_v3
    from ._create_plan import ImagePlan, downsampling
    from ._create_values import data_type

    _check_name(name, creating=True)
    dt = data_type(dtype)
    if dt.kind not in "iu":
        raise TypeError(f"a label image needs an integer data type, got {dt}")
    if dt.byteorder == ">":
        dt = dt.newbyteorder("=")
    version = ds.metadata.ngff_version
    if version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write labels for NGFF version {version!r}")
    c = ds.metadata.channel_axis
    ms = ds.metadata.multiscale
    names = _drop(ds.axes, c)
    arrays: list[ArrayMeta] = []
    for lvl in ds.levels:
        shape = tuple(_drop(lvl.shape, c))
        chunks = tuple(_drop(lvl.chunks, c))
        compressor = _compressor_of(lvl.meta)
        if isinstance(lvl.meta, ArrayV2Meta):
            arrays.append(array_meta_v2(shape, dt, chunks, compressor, 0))
        else:
            shards = tuple(_drop(lvl.shards, c)) if lvl.shards is not None else None
            if shards is not None:
                limit = max(math.prod(lvl.shards or ()) * lvl.dtype.itemsize, _SHARD_BYTES)
                shards = _shards_within(shards, chunks, dt.itemsize, limit)
            arrays.append(array_meta_v3(shape, dt, names, chunks, shards, compressor, 0))

    def drop_transforms(ts: Sequence[Any] | None) -> Any:
        if ts is None:
            return None
        out: list[Scale | Translation] = []
        for t in ts:
            if isinstance(t, Scale) and t.scale is not None:
                out.append(Scale(scale=_drop(t.scale, c)))
            elif isinstance(t, Translation) and t.translation is not None:
                out.append(Translation(translation=_drop(t.translation, c)))
            else:
                raise UnsupportedError("the image's transformations are stored by path")
        return out

    datasets = [
        replace(d, coordinate_transformations=drop_transforms(d.coordinate_transformations))
        for d in ms.datasets
    ]
    multiscale = replace(
        ms,
        axes=_drop(ms.axes, c),
        datasets=datasets,
        coordinate_transformations=drop_transforms(ms.coordinate_transformations),
        name=name,
        version=None,
        **downsampling("mode"),  # the strict profile's SHOULD fields; labels downsample by mode
    )
    attrs = to_attrs(OmeMetadata(version=version, multiscales=[multiscale]), version)
    image_label: dict[str, Any] = {"source": {"image": "../../"}}
    color_list = _colors_json(colors)
    if color_list is not None:
        _check_rgba(
            color_list, "$.image-label.colors" if version == "0.4" else "$.ome.image-label.colors"
        )
    prop_list = _properties_json(properties)
    color_list, prop_list = _consistent(color_list, prop_list)
    at = "$.image-label" if version == "0.4" else "$.ome.image-label"
    _check_values(color_list, dt, f"{at}.colors")
    _check_values(prop_list, dt, f"{at}.properties")
    if color_list is not None:
        image_label["colors"] = color_list
    if prop_list is not None:
        image_label["properties"] = prop_list
    if version == "0.4":
        attrs["image-label"] = {"version": "0.4", **image_label}
    else:
        attrs["ome"]["image-label"] = image_label
    ome = validate(attrs)  # every rule checked (colors, properties) before anything is written
    paths = tuple(d.path for d in ms.datasets)
    return ImagePlan(version=version, paths=paths, arrays=tuple(arrays), ome=ome)


async def follow_label_source(
    ome: OmeMetadata,
    dst: Any,
    limits: Limits | None,
    options: Mapping[str, Any] | None,
    *,
    path: str = "",
    parent: Dataset | None = None,
) -> bool:
    """A label image written at ``path`` of ``dst`` (a URL, a local path or a store) on its own
    (``convert``, ``create_like``) keeps ``image-label.source.image`` only when that relative
    path, from there, leads to an image (it goes into an image's ``labels/``); else the link,
    which would point at nothing, is dropped (``ome`` edited; other keys of ``source`` stay).
    Nothing is written: the place is only read, unless ``parent`` (the group two levels up,
    opened by :func:`open_label_parent`) answers for a link to it. Returns whether a link is
    kept."""
    label = ome.image_label
    source = label.source if label is not None else None
    if label is None or source is None or source.image is None:
        return False
    if parent is not None and posixpath.normpath(source.image) == "../..":
        leads = parent.metadata.ome.image_label is None  # opened: it has multiscales
    else:
        leads = await _leads_to_image(dst, path.strip("/"), source.image, limits, options)
    if leads:
        return True
    if source.extra:  # its other keys stay
        source.image = None
    else:
        label.source = None
    return False


async def open_label_parent(
    dst: Any, path: str, limits: Limits | None, options: Mapping[str, Any]
) -> tuple[Dataset, str] | None:
    """The image (opened ``r+``; nothing is written) whose ``labels/`` holds the place at
    ``path`` of ``dst``, and the label's name there; ``None`` when the place is no
    ``<image>/labels/<name>`` of an image that opens."""
    from ._dataset import open_async

    path = path.strip("/")
    target: Any
    if isinstance(dst, AsyncStore) and "/" in path:
        *above, group, name = path.split("/")
        target, where = dst, "/".join(above)
    else:
        full = _resolve(dst.url if isinstance(dst, AsyncStore) else dst, path, ".")
        if full is None:
            return None
        if "://" in full:
            from urllib.parse import urlsplit

            group, name = urlsplit(full).path.rstrip("/").split("/")[-2:]
        else:
            group, name = os.path.basename(os.path.dirname(full)), os.path.basename(full)
        target, where = _resolve(full, "", "../.."), ""
    if group != "labels":
        return None
    try:
        image = await open_async(target, mode="r+", limits=limits, path=where, **options)
    except (NgioError, OSError, ValueError):
        return None
    return image, name


async def _leads_to_image(
    dst: Any, path: str, link: str, limits: Limits | None, options: Mapping[str, Any] | None
) -> bool:
    """Whether ``link`` (relative) leads from the group at ``path`` of ``dst`` to an image: in
    the store object itself when it stays inside it (a ``memory://`` store's images are only
    there), else at the URL it leads to (opened with ``options``)."""
    if isinstance(dst, AsyncStore):
        rel = posixpath.normpath(posixpath.join(path or ".", link))
        if rel != ".." and not rel.startswith("../"):
            return await _is_image(dst, "" if rel == "." else rel)
        base: Any = dst.url
    else:
        base = dst
    target = _resolve(base, path, link)
    if target is None:
        return False
    from ..stores import open_store

    try:
        store = open_store(target, limits=limits, **dict(options or {}))
    except (NgioError, OSError, ValueError):
        return False
    try:
        return await _is_image(store, "")
    finally:
        await store.aclose()


def _resolve(base: Any, path: str, link: str) -> str | None:
    """The URL or local path ``link`` (relative) leads to from the group at ``path`` below
    ``base`` (a URL or a local path); ``None``: not a location."""
    from urllib.parse import urlsplit

    if isinstance(base, os.PathLike):
        base = os.fspath(base)
    if not isinstance(base, str) or not base:
        return None
    if "://" not in base:
        return os.path.normpath(os.path.join(os.path.abspath(base), path, link))
    parts = urlsplit(base)
    where = posixpath.join(parts.path.rstrip("/") + "/", path, link)
    joined = posixpath.normpath(where)
    return parts._replace(path=joined if joined != "." else "/").geturl()


async def _is_image(store: AsyncStore, root: str) -> bool:
    """Whether an OME-Zarr image group (not a label image) is at ``root`` (reads it only)."""
    try:
        meta = await read_group_metadata(store, root)
    except (NgioError, OSError):
        return False
    return meta.multiscales is not None and meta.image_label is None


class Labels:
    """The label images of a dataset: ``names()``, ``open(name)``, ``create(name)``."""

    def __init__(self, dataset: Dataset) -> None:
        self._dataset = dataset  # (the dataset keeps these weakly: no cycle)
        self._lock: anyio.Lock | None = None
        self._names = KeyLocks()  # one create at a time per label name

    async def _check_listing(self, name: str, version: str, *, group: bool = True) -> None:
        """Refuse, before it is written, a label image ``name`` of NGFF ``version`` that
        :meth:`_list_created` could not list (``create_like`` and ``convert`` into
        ``labels/<name>``): a name :meth:`create` refuses, or another version than the
        image's and (``group``: else the create checks it, see ``claim_root``) its ``labels``
        group's (a hierarchy has one)."""
        ds = self._dataset
        _check_name(name, creating=True)
        mine = ds.metadata.ngff_version
        if version != mine:
            raise UnsupportedError(
                f"cannot create an NGFF {version} label image in {ds.url}/labels/, an NGFF "
                f"{mine} image: the version must be the same throughout (ngff_version={mine!r})"
            )
        if group:
            await check_same_version(ds.store, join(ds.root, "labels"), mine)

    async def _list_created(self, name: str, plan: ImagePlan) -> None:
        """List label image ``name``, complete at ``labels/<name>`` (written from ``plan``),
        in the ``labels`` group (kept if listed); see :meth:`_check_listing`."""
        ds = self._dataset
        ds._check_writable()
        root = join(ds.root, "labels", name)
        docs = [(join(root, k), d) for k, d in plan.array_documents() + plan.group_documents()]
        async with self._names.hold(name):
            await self._list(name, docs=docs)

    async def names(self) -> list[str]:
        """Names of the label images (empty when the image has none)."""
        ds = self._dataset
        ds._check_open()
        try:
            meta = await read_group_metadata(
                ds.store,
                join(ds.root, "labels"),
                parent_version=ds.metadata.ngff_version,
                plain_ok=True,
            )
        except NotFoundError:
            return []
        if meta.labels is None:  # a plain group (nothing listed yet): no label images
            return []
        return list(meta.labels)

    def open(self, name: str, mode: Mode | None = None) -> _Opening[Dataset]:
        """Open label image ``name`` (a name :meth:`names` lists: a path below ``labels``) as a
        dataset (it shares the store and its limits): ``lab = await ds.labels.open(name)`` or
        ``async with ds.labels.open(name) as lab:`` (closed on exit; the image stays open).

        :param mode: ``"r"`` or ``"r+"``; default: the image's own mode.
        """
        from ._opening import _Opening

        return _Opening(lambda: self._open(name, mode))

    async def _open(self, name: str, mode: Mode | None) -> Dataset:
        from ._dataset import Dataset

        ds = self._dataset
        ds._check_open()
        if not isinstance(name, str):
            raise ValueError(f"invalid label name {name!r}")
        for part in name.split("/"):  # a listed path below `labels` (ome-zarr-py, ngio: 'a/b')
            if part in ("", ".", ".."):
                raise ValueError(f"invalid label name {name!r}")
        try:
            label = await Dataset.open_in(
                ds.store,
                join(ds.root, "labels", name),
                limits=ds.limits,
                workers=ds._workers,
                mode=ds.mode if mode is None else mode,
                parent_version=ds.metadata.ngff_version,  # a 0.4 label: no zarr.json asked for
            )
        except NotFoundError as exc:
            names = await self.names()
            if name in names:  # listed, but its group (or a level of it) is missing
                raise NotFoundError(
                    f"label {name!r} is listed in {ds.url} but cannot be opened: {exc}",
                    url=ds.store.url,
                    key=name,
                ) from exc
            raise NotFoundError(
                f"no label {name!r} in {ds.url} (labels: {names})", url=ds.store.url, key=name
            ) from None
        return label

    async def delete(self, name: str, *, missing_ok: bool = False) -> None:
        """Delete label image ``name`` (ngio's ``delete_label``): unlisted from the ``labels``
        group first (a compare-and-swap: labels listed meanwhile stay), then its objects; a
        failure between the two leaves no listing naming missing data. Tables whose ``region``
        is the label (masking ROI and feature tables) are kept, as ngio keeps them: masking by
        them then raises :class:`NotFoundError` naming the label (``ds.tables.delete`` them).

        :raises NotFoundError: no label ``name`` is listed (unless ``missing_ok``).
        :raises ReadOnlyError: the image is read-only (before any I/O; the label named).
        """
        from ._label_ops import delete_label

        await delete_label(self, name, missing_ok=missing_ok)

    async def relabel_sequential(
        self, name: str, *, order: Literal["encounter", "sorted"] = "encounter"
    ) -> int:
        """Renumber label image ``name``'s objects ``1..N`` in place (ngio's
        ``Label.relabel_sequential``); return ``N``. Two streamed passes over level 0 in its
        shards (else chunks): the values, then the remap; the lower levels are rebuilt and the
        ``image-label`` colors and properties follow their values.

        In place, as ngio's: interrupted during the remap, level 0 holds old and new numbers
        (objects may share one: write the label again); tables of the label (masking ROIs,
        features) keep the old values.

        :param order: ``"encounter"`` (ngio's: numbered as first met over the shard grid,
            ascending within one) or ``"sorted"`` (by old value).
        :raises ValueError: more objects than the dtype's positive values (before any write).
        :raises ReadOnlyError: the image is read-only (before any I/O; the label named).
        """
        from ._label_ops import relabel_sequential

        return await relabel_sequential(self, name, order=order)

    async def set_colors(
        self,
        name: str,
        colors: ColorSpec | Sequence[LabelColor] | None = None,
        *,
        max_values: int = 10_000,
    ) -> list[LabelColor]:
        """Set the ``image-label`` colors of label image ``name``; return them.

        ``colors`` (as in :meth:`create`) replace the stored ones. By default they are derived
        from the label values stored in level 0 (read tile by tile, the values found in worker
        threads): the colors already stored are kept, ``0`` (background) gets transparent
        black unless it has one, and every other value without a color gets an opaque color of
        its own (the same for a value in every image: a golden-ratio hue walk). NGFF's strict
        profile wants ``colors``, and viewers that take them (napari through ome-zarr-py) draw
        a value without one transparent: call this after writing the labels.

        :param max_values: refuse (``ValueError``, before writing) to derive more colors than
            this: every one is a JSON entry that every reader parses.
        :raises NotFoundError: no label image ``name``.
        :raises ReadOnlyError: the image is read-only (before any I/O).
        :raises MetadataError: ``colors`` break an NGFF rule (JSON path named).
        """
        from msgspec.structs import replace

        from ..meta import LabelColor, LabelProperty
        from ..meta._base import attach_extras
        from ._dataset_edits import _with_extra
        from ._metadata import check_editable

        ds = self._dataset
        ds._check_writable()
        # a label image's version is its image's (NGFF: one version throughout)
        check_editable(ds.metadata, "set the colors", f"label image {name!r} of {ds.url}")
        given = _colors_json(colors)
        label = await self.open(name, mode="r+")
        try:
            version = label.metadata.ngff_version
            at = "$.image-label.colors" if version == "0.4" else "$.ome.image-label.colors"
            stored = label.metadata.ome.image_label
            values: list[int] = []
            if given is not None:
                _check_rgba(given, at)
                _check_values(given, label.dtype, at)
            else:
                have = {c.label_value for c in (stored.colors or [])} if stored else set()
                values = await _stored_values(label, have, max_values)

            def edit(ome: OmeMetadata) -> OmeMetadata:
                # from the document as stored now: colors another process set during the
                # scan are kept (those read at the open were)
                from ..meta import ImageLabel

                old = ome.image_label
                entries = given
                if entries is None:
                    now = list(old.colors or []) if old is not None else []
                    known = {c.label_value for c in now}
                    entries = [_dump(c) for c in now]
                    entries += [
                        {"label-value": v, "rgba": _auto_rgba(v)} for v in values if v not in known
                    ]
                props = old.properties if old is not None else None
                entries, prop_list = _consistent(entries, None if props is None else _dump(props))
                new_colors = msgspec.convert(entries, list[LabelColor]) if entries else None
                attach_extras(entries, new_colors)  # (convert drops a color's unknown keys)
                new_props = None
                if props is not None and prop_list is not None:  # stored ones first, extras kept
                    new_props = list(props) + [
                        LabelProperty(label_value=p["label-value"]) for p in prop_list[len(props) :]
                    ]
                image_label = (
                    _with_extra(replace(old, colors=new_colors, properties=new_props), old)
                    if old is not None
                    else ImageLabel(colors=new_colors)
                )
                return _with_extra(replace(ome, image_label=image_label), ome)

            await label._edit_metadata(edit)
            result = label.metadata.ome.image_label
            return list(result.colors or []) if result is not None else []
        finally:
            await label.aclose()

    async def create(
        self,
        name: str,
        dtype: DTypeLike = "uint32",
        colors: ColorSpec | Sequence[LabelColor] | None = None,
        properties: PropertySpec | None = None,
        overwrite: bool = False,
    ) -> Dataset:
        """Create label image ``name`` (empty: every pixel 0) and list it; return it writable.

        Same levels, shapes, scales/translations and chunking (and sharding) as the image,
        without the channel axis.

        :param dtype: an integer data type (default ``uint32``).
        :param colors: ``{value: (r, g, b, a)}`` (or a hex string, ``"#FF0000"``) or a list of
            ``{"label-value": v, "rgba": [r, g, b, a]}`` (or :class:`~ngio_async.meta.LabelColor`).
        :param properties: ``{value: {key: ...}}`` or a list of dicts, each with
            ``"label-value"`` and free keys.
            Colors and properties are written for the same label values (ome-zarr-models, thus
            ngio, refuses others): a value only one of them has gets a derived color or a bare
            property; a color without ``rgba`` gets a derived one. Without ``colors``,
            :meth:`set_colors` derives them from the values written.
        :param overwrite: replace an existing label image of that name (its keys are deleted).
        :raises TypeError: ``dtype`` is not an integer type.
        :raises ValueError: ``name`` is no plain child name (see ``_check_name``).
        :raises MetadataError: ``colors`` / ``properties`` break an NGFF rule (JSON path named).
        :raises ExistsError: ``labels/<name>`` exists and ``overwrite`` is false.
        :raises ReadOnlyError: the image is read-only (before any I/O).
        """
        from ._create import overwrite_flag
        from ._metadata import check_editable

        overwrite = overwrite_flag(overwrite)
        ds = self._dataset
        ds._check_writable()
        ds._check_first_multiscale("labels.create")  # label images follow the first one
        check_editable(ds.metadata, f"add label image {name!r}", ds.url)  # before any I/O
        async with ds.structure_lock():  # planned from the image's current levels and scales
            return await self._create_locked(name, dtype, colors, properties, overwrite)

    async def _create_locked(
        self,
        name: str,
        dtype: DTypeLike,
        colors: ColorSpec | Sequence[LabelColor] | None,
        properties: PropertySpec | None,
        overwrite: bool,
    ) -> Dataset:
        from ._dataset import Dataset
        from ._metadata_writes import claim_root, complete_root

        ds = self._dataset
        await refresh_image(ds)  # another process may have set its scale or added levels
        plan = plan_label(ds, name, dtype, colors, properties)
        root = join(ds.root, "labels", name)
        await check_same_version(ds.store, join(ds.root, "labels"), ds.metadata.ngff_version)
        async with self._names.hold(name):  # two creates of one name: one wins, one is refused
            at = None
            if overwrite and name in await self.names():
                at = await self._list(name, remove=True)  # before the old keys are deleted
            docs = [(join(root, k), d) for k, d in plan.array_documents()]
            docs += [(join(root, k), d) for k, d in plan.group_documents()]
            await claim_root(ds.store, root, plan, overwrite=overwrite)
            try:
                # the consolidated copies above get its documents with the listing (an
                # overwrite's old entries were dropped before its keys were deleted)
                await complete_root(ds.store, root, plan, overwrite=overwrite, consolidate=False)
                docs += path_groups(root, plan.paths, plan.version)  # complete_root wrote them
                await self._list(name, at=at, docs=docs)  # last: never an incomplete label
            except BaseException as exc:  # not listed: removed, so that a retry can create it
                await self._discard_unlisted(name, root, plan, exc)
                raise
        return Dataset.from_plan(
            ds.store,
            root,
            plan.ome,
            list(plan.arrays),
            limits=ds.limits,
            workers=ds._workers,
            mode="r+",
        )

    async def _discard_unlisted(
        self, name: str, root: str, plan: ImagePlan, exc: BaseException
    ) -> None:
        """Remove the metadata of label ``name``, whose listing failed with ``exc``, unless the
        ``labels`` group lists it after all (or cannot be read: then it is left alone). The
        listing's put is shielded from cancellation: cancelled in flight, it could land after
        this check and list a label removed here."""
        from ._metadata_writes import discard_documents

        with anyio.CancelScope(shield=True):
            try:
                if name in await self.names():
                    return
            except Exception:  # noqa: BLE001 - the store fails: leave what is there
                return
        keys = [join(root, k) for k, _ in plan.group_documents()]
        keys += [k for k, _ in path_groups(root, plan.paths, plan.version)]
        keys += [join(root, k) for k, _ in plan.array_documents()]
        await discard_documents(self._dataset.store, root, keys, exc, consolidated=True)

    async def _list(
        self,
        name: str,
        *,
        remove: bool = False,
        at: int | None = None,
        docs: Sequence[tuple[str, bytes]] = (),
    ) -> int | None:
        """Add ``name`` to the ``labels`` group (creating the group when missing; at index
        ``at``, default last), or remove it; return the index it was removed from. Consolidated
        metadata above the group gets the new listing, and ``docs`` (the label's documents:
        a copy leaves out what lies below a group it cannot find, and the group may be new)."""
        from ._consolidated import update_consolidated
        from ._metadata_writes import _claim

        ds = self._dataset
        if self._lock is None:
            self._lock = anyio.Lock()
        group = join(ds.root, "labels")
        async with self._lock:
            v2 = ds.metadata.ngff_version == "0.4"
            key = join(group, ".zattrs" if v2 else "zarr.json")
            where = (f"{ds.store.url}/{key}", "$.labels" if v2 else "$.attributes.ome.labels")
            written: list[tuple[str, bytes]] = []
            zgroup = join(group, ".zgroup")
            if v2 and not await ds.store.exists(zgroup):  # create-only: never replaced
                written.append((zgroup, b'{"zarr_format":2}'))
                await _claim(ds.store, group, written[-1], exists_ok=True)
            found: list[int | None] = [None]

            async def edited(raw: Buffer | None) -> bytes:
                if v2:
                    attrs: dict[str, Any] = {} if raw is None else _object(raw, key)
                    attrs["labels"], index = _edited(attrs.get("labels"), name, where, remove, at)
                    doc = attrs
                else:
                    doc = (
                        {"zarr_format": 3, "node_type": "group", "attributes": {}}
                        if raw is None
                        else _object(raw, key)
                    )
                    if doc.get("node_type") != "group":
                        raise MetadataError(f"{ds.store.url}/{key} is not a group", "$.node_type")
                    ome = doc.setdefault("attributes", {}).setdefault("ome", {})
                    ome.setdefault("version", ds.metadata.ngff_version)
                    ome["labels"], index = _edited(ome.get("labels"), name, where, remove, at)
                if index is not None:  # (run again on its own write, it finds none)
                    found[0] = index
                return write_document(doc)

            # a compare-and-swap: labels listed meanwhile by other processes are kept
            with anyio.CancelScope(shield=True):  # see _discard_unlisted
                data = await ds.store.update(key, edited)
            assert data is not None
            written.append((key, bytes(data)))
            await update_consolidated(  # zarr-python trusts it
                ds.store, [*written, *docs], shared=[key]
            )
            return found[0]


def _consistent(
    colors: list[dict[str, Any]] | None, properties: list[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """``colors`` and ``properties`` made readable by ome-zarr-models (thus ngio), which refuses
    a color without ``rgba`` and colors and properties of different label values: a missing
    ``rgba`` and the colors of values only ``properties`` has are derived (:func:`_auto_rgba`),
    values only ``colors`` has get bare ``{"label-value": v}`` properties (appended, sorted)."""

    def value(entry: Any) -> int | None:
        v = entry.get("label-value") if isinstance(entry, dict) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    if colors is not None:
        colors = [
            {**c, "rgba": _auto_rgba(v)}
            if (v := value(c)) is not None and c.get("rgba") is None
            else c
            for c in colors
        ]
    if colors is None or properties is None:
        return colors, properties
    color_values = {v for c in colors if (v := value(c)) is not None}
    prop_values = {v for p in properties if (v := value(p)) is not None}
    colors = colors + [
        {"label-value": v, "rgba": _auto_rgba(v)} for v in sorted(prop_values - color_values)
    ]
    properties = properties + [{"label-value": v} for v in sorted(color_values - prop_values)]
    return colors, properties


async def _stored_values(label: Dataset, have: set[int], max_values: int) -> list[int]:
    """The values stored in ``label``'s level 0 that ``have`` lacks, sorted (``0`` always, the
    background); at most ``max_values`` of them, else ``ValueError``."""
    from ._stream import stream

    found: set[int] = {0}
    async with stream(label.tiles(level=0), np.unique) as results:
        async for _tile, values in results:
            found.update(values.tolist())
            if len(found - have) > max_values:
                raise ValueError(
                    f"label image {label.url} holds more than {max_values} values without a "
                    "color: pass colors= explicitly, or a larger max_values="
                )
    return sorted(found - have)


def _auto_rgba(value: int) -> list[int]:
    """A color of label ``value``: transparent black for 0; else opaque, its hue stepped by
    the golden ratio from value to value (neighbouring labels far apart), alternating between
    two brightness levels."""
    import colorsys

    if value == 0:
        return [0, 0, 0, 0]
    hue = (value * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0 if value % 2 else 0.75)
    return [round(r * 255), round(g * 255), round(b * 255), 255]


async def check_same_version(store: AsyncStore, group: str, version: str) -> None:
    """Refuse to write into ``group`` when it exists in the other zarr format than ``version``
    needs (NGFF: the version MUST be consistent within a hierarchy; writing the other document
    beside it would hide what it lists)."""
    mine, other = version_documents(version)
    if not await store.exists(join(group, mine)) and await store.exists(join(group, other)):
        raise other_version_error(store.url, group, version)


def version_documents(version: str) -> tuple[str, str]:
    """The group document of NGFF ``version`` and the other version's."""
    return ("zarr.json", ".zattrs") if version != "0.4" else (".zattrs", "zarr.json")


def other_version_error(url: str, group: str, version: str) -> UnsupportedError:
    """The refusal of writing into ``group`` (below ``url``), of the other NGFF version."""
    found = "0.5 (zarr.json)" if version == "0.4" else "0.4 (.zattrs)"
    return UnsupportedError(
        f"{url}/{group} is NGFF {found} inside an NGFF {version} hierarchy; the version "
        "must be the same throughout (convert the hierarchy first)"
    )


def _object(raw: Any, key: str) -> dict[str, Any]:
    try:
        doc = read_document(raw)
    except msgspec.DecodeError as exc:
        raise MetadataError(f"{key} is not valid JSON: {exc}", "$") from None
    if not isinstance(doc, dict):
        raise MetadataError(f"{key} is not a JSON object", "$")
    return doc


def _edited(
    names: Any, name: str, where: tuple[str, str], remove: bool, at: int | None
) -> tuple[list[str], int | None]:
    """``names`` with ``name`` inserted once (at ``at``, default last), or without it when
    ``remove``; and the index ``name`` was removed from. ``where``: the document's URL and the
    listing's JSON path, for errors."""
    if names is None:
        return ([], None) if remove else ([name], None)
    if not isinstance(names, list):
        raise MetadataError(f"{where[0]}: 'labels' is not a list", where[1])
    if remove:
        index = names.index(name) if name in names else None
        return [n for n in names if n != name], index
    if name in names:
        return names, None
    return [*names[:at], name, *names[at:]] if at is not None else [*names, name], None
