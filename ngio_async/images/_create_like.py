"""``create_like_async``: an empty image shaped like another (its options, overridden; the options
that no longer fit the overrides dropped; its labels and tables copied on request)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np

from .._errors import UnsupportedError
from ..engine.pyramid import check_levels_shrink
from ..meta._validate import to_attrs, validate
from ..meta.zarr import BloscCodec, BytesCodec, Crc32cCodec, GzipCodec, ZstdCodec, codec_stages
from ..stores import AsyncStore
from ._array_meta import Compressor, _fill_json
from ._create import (
    _CREATE_KEYS,
    _PLAN_KEYS,
    _create_planned,
    create_async,
    overwrite_flag,
    refuse_misspelled,
)
from ._create_plan import (
    ImagePlan,
    _level_scale,
    _level_shape,
    _yx,
    default_name,
    downsampling,
    plan_image,
)
from ._create_values import _per_axis, data_type, is_scalar
from ._dataset import Dataset
from ._node import store_path
from ._open import join
from ._opening import _Opening

if TYPE_CHECKING:
    from .._limits import Limits
    from .._sync_api import SyncDataset
    from ..meta import ImageLabel
    from ..meta.zarr import ArrayMeta


__all__ = ["create_like_async"]


def like_options(src: Dataset, overrides: dict[str, Any]) -> dict[str, Any]:
    """The :func:`create_async` arguments that reproduce ``src``'s layout, with ``overrides``."""
    meta = src.metadata
    lvl0 = src.levels[0]
    names = list(src.axes)
    cal = meta.spatial_calibration[0]
    options: dict[str, Any] = {
        "shape": src.shape,
        "dtype": src.dtype,
        "axes": names,
        "scale": list(cal.scale),
        "units": [a.unit for a in meta.axes],
        "chunks": lvl0.chunks,
        "shards": lvl0.shards if lvl0.shards is not None else False,
        "levels": len(src.levels),
        "ngff_version": meta.ngff_version if meta.ngff_version in ("0.4", "0.5") else "0.5",
        "name": meta.name,
    }
    if any(t != 0 for t in cal.translation):
        options["translation"] = list(cal.translation)
    moved = [list(c.translation) for c in meta.spatial_calibration]
    if any(t != moved[0] for t in moved):  # levels translated apart (ome-zarr-py centres them)
        options["level_translations"] = moved
    if len(src.levels) > 1:
        yx = _yx(names)
        ratios = {round(src.levels[0].shape[i] / max(1, src.levels[1].shape[i])) for i in yx}
        options["downscale"] = max(1, min(ratios))
    factor = options.get("downscale", 2)
    shapes = [lvl.shape for lvl in src.levels]
    if any(s != _level_shape(shapes[0], names, factor**i) for i, s in enumerate(shapes)):
        options["level_shapes"] = shapes  # e.g. floor(n / 2) (ome-zarr-py), not ceil
    scales = [list(c.scale) for c in meta.spatial_calibration]
    if any(s != _level_scale(scales[0], names, factor**i) for i, s in enumerate(scales)):
        options["level_scales"] = scales  # e.g. exact (ome-zarr-py): 61 / 30 for 61 -> 30 px
    if meta.ome.omero is not None:
        options["channels"] = list(meta.ome.omero.channels)
    if "dtype" in overrides and "channels" not in overrides and meta.ome.omero is not None:
        options["channels"] = [  # windows default to the new data type's range
            {"label": c.label, "color": c.color, "active": c.active}
            for c in meta.ome.omero.channels
        ]
    if options["ngff_version"] == "0.4" or overrides.get("ngff_version") == "0.4":
        options["shards"] = False
    options["fill_value"] = lvl0.fill_value.item()  # unwritten pixels read as the source's
    compressor = _compressor_of(lvl0.meta)
    if compressor != "other":
        options["compressor"] = compressor
    overrides = _completed_mappings(options, overrides, names)
    _drop_conflicting(options, overrides, names)
    options.update(overrides)
    return options


def _completed_mappings(
    options: dict[str, Any], overrides: dict[str, Any], names: list[str]
) -> dict[str, Any]:
    """``overrides`` with each mapping axis -> value given for ``scale``, ``units`` or
    ``translation`` completed by the source's values (in ``options``) for the axes it does not
    name, as long as the axes stay: it changes the axes it names only."""
    axes = overrides.get("axes")
    if axes is not None and (not isinstance(axes, str | Sequence) or list(axes) != names):
        return overrides
    out = dict(overrides)
    for key in ("scale", "units", "translation"):
        given, base = overrides.get(key), options.get(key)
        if isinstance(given, Mapping) and base is not None:
            out[key] = {**dict(zip(names, base, strict=True)), **given}
    return out


def _compressor_of(meta: ArrayMeta) -> Compressor | Literal["other"]:
    """The ``compressor=`` that writes ``meta``'s compression, ``"other"`` when none does (other
    codecs, filters, blosc of another ``cname``: the default applies)."""
    stages = codec_stages(meta)
    if stages is None or stages.shard_array:
        return "other"
    codecs, outer = stages.chunk, stages.whole_shard
    if outer and all(isinstance(c, BytesCodec | Crc32cCodec) for c in codecs):
        # shards compressed whole, their chunks not: the chunks take the shards' compressor
        return _compressor_named(next((c for c in outer if not isinstance(c, Crc32cCodec)), None))
    rest = [c for c in codecs if not isinstance(c, BytesCodec)]
    if not rest:
        return None
    if len(rest) == 1 and len(codecs) == 2 and isinstance(codecs[0], BytesCodec):
        return _compressor_named(rest[0])
    return "other"


def _compressor_named(codec: Any) -> Compressor | Literal["other"]:
    """The ``compressor=`` that writes ``codec`` (a bytes->bytes one), else ``"other"``."""
    if isinstance(codec, ZstdCodec):
        return "zstd"
    if isinstance(codec, GzipCodec):
        return "gzip"
    if isinstance(codec, BloscCodec) and codec.configuration.cname == "zstd":
        return "blosc-zstd"
    return "other"


def _drop_conflicting(options: dict[str, Any], overrides: dict[str, Any], names: list[str]) -> None:
    """Leave out the copied options that ``overrides`` make wrong (their defaults apply):
    everything per axis for other ``axes`` but the channels, which stay as long as the
    channel axis keeps its size (dropped for another channel count), shards
    the new ``chunks`` do not divide, a fill value the new ``dtype`` cannot hold, and what a
    new ``shape`` outgrows (:func:`_drop_outgrown`)."""
    relevel = any(k in overrides for k in ("axes", "levels", "downscale", "shape"))
    if relevel or any(k in overrides for k in ("translation", "scale")):
        options.pop("level_translations", None)  # they no longer fit: one translation applies
    if relevel:
        options.pop("level_shapes", None)  # every level from the new shape, as create does
        options.pop("level_scales", None)  # scale * downscale**i, as create does
    elif "scale" in overrides and "level_scales" in options:
        # the source's levels (shapes) stay: each level's scale is the new one times the
        # source's ratio to level 0 (a new translation keeps them as they are)
        scales = _rescaled(options["level_scales"], overrides["scale"], names)
        if scales is None:
            options.pop("level_scales")
        else:
            options["level_scales"] = scales
    axes = overrides.get("axes")
    if isinstance(axes, str | Sequence) and list(axes) != names:  # else create names it
        for key in ("scale", "units", "translation", "chunks"):
            options.pop(key, None)
        if "c" not in names or "c" not in axes:  # else kept if the channel axis keeps its size
            options.pop("channels", None)
        if options["shards"] is not False:
            options["shards"] = None
        names = list(axes)
    shape = overrides.get("shape", options["shape"])
    if "channels" in options:
        try:
            n_c = len(options["channels"])
            if "c" not in names or int(shape[names.index("c")]) != n_c:
                del options["channels"]
        except (TypeError, ValueError, IndexError):
            pass  # create_async names what is wrong with shape
    _drop_outgrown(options, overrides, names)
    shards = options["shards"]
    chunks = overrides.get("chunks")
    if "shards" not in overrides and shards not in (False, None) and chunks is not None:
        try:
            if any(int(s) % int(c) for s, c in zip(shards, chunks, strict=True)):
                options["shards"] = None
        except (TypeError, ValueError, ZeroDivisionError):
            pass
    if "fill_value" in options and "dtype" in overrides and "fill_value" not in overrides:
        try:
            _fill_json(options["fill_value"], np.dtype(overrides["dtype"]))
        except (ValueError, TypeError, UnsupportedError):
            del options["fill_value"]


def _rescaled(scales: list[list[float]], scale: Any, names: list[str]) -> list[list[float]] | None:
    """``scales`` (every level's) for level 0's ``scale`` (as create takes it), each level
    keeping its ratio to level 0; ``None`` for a ``scale`` create refuses (it names why)."""
    try:
        new = _per_axis(scale, names, 1.0, "scale", positive=True)
    except (TypeError, ValueError):
        return None
    ratios = [[s / s0 for s, s0 in zip(lvl, scales[0], strict=True)] for lvl in scales[1:]]
    return [new, *([v * r for v, r in zip(new, lvl, strict=True)] for lvl in ratios)]


def _drop_outgrown(options: dict[str, Any], overrides: dict[str, Any], names: list[str]) -> None:
    """For another ``shape`` (or ``downscale``): drop the copied chunks and shards that cover
    the source's whole y or x extent where the new one is larger (capped by the source's size,
    not chosen: a large copy of a small template got its tiny chunks, unsharded), and a copied
    level count the new shape cannot have."""
    src_shape = options["shape"]  # not updated yet: the source's
    try:
        shape = [int(n) for n in overrides.get("shape", src_shape)]
        same_rank = len(shape) == len(names) == len(src_shape)
        grows = [i for i in _yx(names) if shape[i] > src_shape[i]] if same_rank else []
    except (TypeError, ValueError):
        return  # create names what is wrong with shape

    def capped(sizes: Any) -> bool:
        return bool(sizes) and any(sizes[i] >= src_shape[i] for i in grows)

    if "chunks" not in overrides and capped(options.get("chunks")):
        del options["chunks"]
        if "shards" not in overrides:  # sharded by default (0.5)
            options["shards"] = None if _writes_05(options, overrides) else False
    elif "shards" not in overrides and capped(options["shards"]):
        options["shards"] = None
    levels = options.get("levels")
    resized = "shape" in overrides or "downscale" in overrides
    if resized and levels is not None and "levels" not in overrides and len(shape) == len(names):
        factor = overrides.get("downscale", options.get("downscale", 2))
        try:
            shapes = [_level_shape(shape, names, int(factor) ** i) for i in range(levels)]
            check_levels_shrink(shapes, levels)
        except (TypeError, ValueError):
            del options["levels"]  # the new shape has fewer: the default


def _writes_05(options: dict[str, Any], overrides: dict[str, Any]) -> bool:
    return bool(overrides.get("ngff_version", options["ngff_version"]) != "0.4")


#: the create_like arguments that ``None`` leaves to the source (create has no default for them)
_SOURCE_IF_NONE = frozenset(("shape", "dtype", "ngff_version"))


def _dataset_of(src: Any) -> Dataset:
    """``src`` as an async :class:`Dataset` (a blocking one's own), else ``TypeError``."""
    inner = getattr(src, "async_dataset", None) if not isinstance(src, Dataset) else src
    if isinstance(inner, Dataset):
        return inner
    if isinstance(src, str | os.PathLike):
        raise TypeError(
            f"create_like: src must be an open dataset, got the {type(src).__name__} {src!r}: "
            "open it first (create_like_async(await open_async(src), url) or, blocking, "
            "create_like(open(src), url))"
        )
    kind = type(src)
    raise TypeError(
        f"create_like: src must be an open dataset, got {kind.__module__}.{kind.__qualname__}"
        " (open the image with open_async / open; for an array, use create)"
    )


def _refuse_own_source(src: Dataset, url: Any, overrides: Mapping[str, Any]) -> None:
    """Refuse ``overwrite=True`` at ``src``'s own place (however spelled), inside it or above
    it: the overwrite would delete the source's keys (its pixels too) before the copy exists.
    Pure (nothing is opened); see :func:`ngio_async.convert.check_distinct`."""
    if not overwrite_flag(overrides.get("overwrite", False)):
        return
    from ..convert._locations import _where, overlap

    path = store_path(overrides.get("path", ""))
    options = {k: v for k, v in overrides.items() if k not in _CREATE_KEYS}
    how = overlap(src, url, None, {**options, "path": path})
    if how is None:
        return
    where = _where(url)
    if path.strip("/"):
        where += f" (path {path!r})"
    raise ValueError(
        f"create_like: the destination {where} {how} {src.url}: overwrite=True would delete "
        "the source before the copy exists; choose another destination"
    )


def create_like_async(
    src: Dataset | SyncDataset, url: str | os.PathLike[str] | AsyncStore | Any, **overrides: Any
) -> _Opening[Dataset]:
    """Create an empty image shaped like ``src`` (axes, shape, scales, units, chunks, shards,
    levels, channels, NGFF version, fill value, compressor; every level's shape, scale and
    translation as ``src`` has them, e.g. ome-zarr-py's ``floor(n / 2)`` levels, exact scales
    and centred translations, as long as ``shape``, ``scale``, ``translation``, ``downscale``,
    ``levels`` or ``axes`` given do not change them: ``scale`` is level 0's, each level
    keeping its ratio to it; ``translation`` one for every level; the others rebuild the
    levels as create does); any :func:`create_async` argument
    in ``overrides`` wins (e.g. ``dtype="float32"``, ``channels=[...]``, ``overwrite=True``),
    and what an override makes wrong is left to its default (per-axis values for other
    ``axes``, channels for another channel count, shards other ``chunks`` do not divide,
    chunks and shards covering the source's whole y or x extent for a larger ``shape``, a
    level count the new ``shape`` or ``downscale`` cannot have). A
    mapping axis -> value for ``scale``, ``units`` or ``translation`` changes the axes it
    names; the others keep the source's.

    The copy of a label image is a label image (its ``image-label`` colors and properties,
    and pyramids by ``mode``) unless its data type is no integer type; its ``source`` link
    (``../../``) is kept only where it leads to an image from the new place, as ``convert``
    does. A copy into ``labels/<name>`` of an image is listed by that image (of the image's
    NGFF version only: pass ``ngff_version=`` for another source's). The label images of
    ``src`` are not copied: create them on the copy with ``labels.create``.

    ``shape=None``, ``dtype=None`` or ``ngff_version=None`` keep the source's (as
    ``numpy.zeros_like``). ``src`` may be a blocking dataset (only its metadata is read).
    ``tables=True`` (or a list of names) copies ``src``'s tables (``ds.tables``: ROI, feature
    and other tables, as ngio's ``derive_image(copy_tables=True)``) into the new image.

    :raises TypeError: ``src`` is no open dataset (a URL or path: open it first).
    :raises ValueError: ``overwrite=True`` where ``src`` is, inside it or above it (however
        spelled: ``file://`` or a path, ``./a/../a``, a trailing ``/``); before any I/O."""
    src = _dataset_of(src)
    tables = overrides.pop("tables", False)
    opening = _create_like(src, url, overrides)
    if tables is False or tables is None:
        return opening
    names = _table_names(tables)
    return _Opening(lambda: _with_tables(opening, src, names))


def _table_names(tables: object) -> list[str] | None:
    """``tables=``: ``True`` (every table), or the names of the tables to copy."""
    if tables is True:
        return None
    if isinstance(tables, str) or not isinstance(tables, Sequence):
        raise TypeError(f"tables= takes True or a list of table names, got {tables!r}")
    if not all(isinstance(t, str) for t in tables):
        raise TypeError(f"tables= takes table names (str), got {list(tables)!r}")
    return list(tables)


async def _with_tables(
    opening: _Opening[Dataset], src: Dataset, names: list[str] | None
) -> Dataset:
    """The created copy, with ``src``'s tables ``names`` (``None``: all) written into it (as
    read: index, columns, type, attributes; a masking ROI table keeps its label path, which
    leads nowhere on the copy until that label image is made). A table that fails closes the
    copy and raises, naming the table."""
    ds = await opening
    try:
        wanted = await src.tables.names() if names is None else names
        for name in wanted:
            await ds.tables.write(name, await src.tables.read(name))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await ds.aclose()
        raise
    return ds


def _create_like(
    src: Dataset, url: str | os.PathLike[str] | AsyncStore | Any, overrides: dict[str, Any]
) -> _Opening[Dataset]:
    refuse_misspelled({k: v for k, v in overrides.items() if k not in _CREATE_KEYS}, "create_like")
    _refuse_own_source(src, url, overrides)
    overrides = {k: v for k, v in overrides.items() if not (v is None and k in _SOURCE_IF_NONE)}
    rename = _create_names(src, overrides)
    if rename is not None and is_scalar(overrides.get("scale")):  # for the space axes
        space = [a.name for a in src.metadata.axes if a.type == "space"]
        overrides = {**overrides, "scale": dict.fromkeys(space, overrides["scale"])}
    options = like_options(src, overrides)
    if rename is not None:
        options = _with_create_names(options, rename)
    level_translations = options.pop("level_translations", None)
    level_shapes = options.pop("level_shapes", None)
    level_scales = options.pop("level_scales", None)
    image_label = src.metadata.ome.image_label
    if image_label is not None and data_type(options["dtype"]).kind not in "iu":
        image_label = None  # labels are integers: a float copy is an image
    elif image_label is not None:
        image_label = _values_within(image_label, data_type(options["dtype"]))
    per_level = (level_translations, level_shapes, level_scales)
    if all(v is None for v in per_level) and image_label is None and rename is None:
        return create_async(url, **options)
    store_keys = ("overwrite", "limits", "path")
    plan_options = {k: v for k, v in options.items() if k in _PLAN_KEYS}
    rest = {k: v for k, v in options.items() if k not in _PLAN_KEYS}
    path = store_path(rest.get("path", ""))
    if plan_options.get("name") is None:
        plan_options["name"] = default_name(url, path)
    plan = plan_image(
        **plan_options,
        level_translations=level_translations,
        level_shapes=level_shapes,
        level_scales=level_scales,
    )
    if rename is not None:
        plan = _with_axis_names(plan, list(src.axes))
    if image_label is not None:
        plan = _as_label(plan, image_label)
    store_options = {k: v for k, v in rest.items() if k not in store_keys}

    def create(consolidate: bool = True) -> _Opening[Dataset]:
        return _create_planned(
            url,
            plan,
            overwrite=rest.get("overwrite", False),
            limits=rest.get("limits"),
            path=path,
            store_options=store_options,
            consolidate=consolidate,
        )

    if image_label is None:
        return create()
    limits = rest.get("limits")
    return _Opening(lambda: _label_copy(create, plan, url, path, limits, store_options))


async def _label_copy(
    create: Callable[[bool], _Opening[Dataset]],
    plan: ImagePlan,
    url: Any,
    path: str,
    limits: Limits | None,
    options: dict[str, Any],
) -> Dataset:
    """Create a label image's copy (``create()``, of ``plan``) at ``path`` of ``url``: its
    ``image-label.source`` kept where it leads to an image from there (convert's rule), and,
    when the place is ``labels/<name>`` of an image, listed by that image (removed again when
    the listing fails, as ``labels.create`` does: a retry creates it)."""
    from ._labels import follow_label_source, open_label_parent

    parent = await open_label_parent(url, path, limits, options)
    image = parent[0] if parent is not None else None
    try:
        await follow_label_source(plan.ome, url, limits, options, path=path, parent=image)
        if parent is None:
            return await create(True)
        image, name = parent
        # the labels group's version: checked by the create (claim_root) when it sees that
        # group above its root (the same store); else here
        same_store = isinstance(url, AsyncStore) and "/" in path.strip("/")
        await image.labels._check_listing(name, plan.version, group=not same_store)
        ds = await create(False)  # consolidated copies: updated with the listing
        try:
            await image.labels._list_created(name, plan)
        except BaseException as exc:
            await ds.aclose()
            root = join(image.root, "labels", name)
            await image.labels._discard_unlisted(name, root, plan, exc)
            raise
        return ds
    finally:
        if image is not None:
            await image.aclose()


def _values_within(label: ImageLabel, dtype: np.dtype[Any]) -> ImageLabel:
    """``label`` without the colors and properties of values ``dtype`` cannot hold (a narrower
    copy's: no pixel can have them, and ``labels.create`` refuses them)."""
    from msgspec.structs import replace

    from ._dataset_edits import _with_extra

    info = np.iinfo(dtype)
    colors = [c for c in label.colors or () if info.min <= c.label_value <= info.max]
    props = [p for p in label.properties or () if info.min <= p.label_value <= info.max]
    if len(colors) == len(label.colors or ()) and len(props) == len(label.properties or ()):
        return label
    return _with_extra(replace(label, colors=colors or None, properties=props or None), label)


def _create_names(src: Dataset, overrides: Mapping[str, Any]) -> dict[str, str] | None:
    """Each axis name of ``src`` -> the name ``create`` gives an axis of its type (``t``,
    ``c``, ``z``/``y``/``x``), when ``src`` names them otherwise (NGFF names axes freely,
    ``set_axes_names`` renames them; ``create`` takes the names it knows the types of).
    ``None``: those are its names, ``axes`` is given, or an axis is of another type."""
    if "axes" in overrides:
        return None
    axes = src.metadata.axes
    space = [a.name for a in axes if a.type == "space"]
    if len(space) not in (2, 3):
        return None
    known = {"time": "t", "channel": "c"}
    names: dict[str, str] = {}
    for a in axes:
        if a.type == "space":
            names[a.name] = "zyx"[3 - len(space) + space.index(a.name)]
        elif a.type in known:
            names[a.name] = known[a.type]
        else:
            return None
    if all(k == v for k, v in names.items()) or len(set(names.values())) != len(names):
        return None
    return names


def _with_create_names(options: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``options`` (:func:`like_options`) for the axes named ``names``: ``axes`` and the
    mappings axis -> value renamed."""
    out = dict(options)
    out["axes"] = [names[a] for a in options["axes"]]
    for key in ("scale", "units", "translation"):
        value = options.get(key)
        if isinstance(value, Mapping):
            out[key] = {names.get(a, a): v for a, v in value.items()}
    return out


def _with_axis_names(plan: ImagePlan, names: list[str]) -> ImagePlan:
    """``plan`` with its axes (and its zarr v3 arrays' ``dimension_names``) named ``names``."""
    from dataclasses import replace as replace_plan

    from msgspec.structs import replace

    from ..meta.zarr import ArrayV3Meta

    assert plan.ome.multiscales is not None
    ms = plan.ome.multiscales[0]
    axes = [replace(a, name=n) for a, n in zip(ms.axes, names, strict=True)]
    ome = replace(plan.ome, multiscales=[replace(ms, axes=axes)])
    arrays = tuple(
        replace(a, dimension_names=tuple(names)) if isinstance(a, ArrayV3Meta) else a
        for a in plan.arrays
    )
    return replace_plan(plan, ome=validate(to_attrs(ome, plan.version)), arrays=arrays)


def _as_label(plan: ImagePlan, image_label: ImageLabel) -> ImagePlan:
    """``plan`` as a label image: with ``image_label`` and pyramids by ``mode``."""
    from dataclasses import replace as replace_plan

    from msgspec.structs import replace

    assert plan.ome.multiscales is not None
    ms = replace(plan.ome.multiscales[0], **downsampling("mode"))
    ome = replace(plan.ome, multiscales=[ms], image_label=image_label)
    return replace_plan(plan, ome=validate(to_attrs(ome, plan.version)))
