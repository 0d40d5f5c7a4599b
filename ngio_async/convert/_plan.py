"""The output's layout: chunks, shards and levels asked for, checked against the axes, and
the plan of an OME-Zarr or :class:`ImageSource` source's output arrays."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._errors import UnsupportedError
from ..images._array_meta import array_meta_v2, array_meta_v3
from ..images._create_plan import (
    ImagePlan,
    _yx,
    default_chunks,
    default_levels,
    default_shards,
    plan_image,
    stacked_chunks,
)
from ..images._create_values import integer
from ..meta import to_attrs, validate
from ._kept_codecs import _closest_name, _keep_compressor

if TYPE_CHECKING:
    import numpy as np

    from ..images import Dataset
    from ..meta import OmeMetadata
    from ..meta.zarr import ArrayMeta
    from ._formats import ImageSource
    from ._jobs import CompressorArg

#: a zarr v2 array's attributes a v3 array holds in its metadata (xarray's v2
#: ``_ARRAY_DIMENSIONS`` is its ``dimension_names``, which the writer sets): not copied from a
#: v2 array into a v3 array's attributes
_V2_ONLY_ATTRIBUTES = frozenset({"_ARRAY_DIMENSIONS"})


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

    from ..images._dataset_edits import _with_extra

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
    yx = _yx(src.axes)  # (an image's y and x of any name: as build_pyramid takes them)
    factors = [2 if i in yx else 1 for i in range(len(src.axes))]
    if len(shapes) > 1:
        factors = [
            max(1, round(n / m)) if m else 1 for n, m in zip(shapes[-2], shapes[-1], strict=True)
        ]
    while len(shapes) < levels:
        shapes.append(tuple(-(-n // f) for n, f in zip(shapes[-1], factors, strict=True)))
    return shapes
