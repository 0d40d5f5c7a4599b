"""Creating images: ``create_async`` / ``create_like_async`` -> a writable, empty :class:`Dataset`.

The layout is planned first (pure: :func:`plan_image` gives every level's zarr array metadata and
the NGFF group metadata), then written in an order that never leaves group metadata pointing at
missing arrays:

1. refuse a root below a zarr array (whatever ``overwrite`` says), and an existing node
   (``zarr.json``, ``.zattrs`` or ``.zgroup`` at the root) unless ``overwrite=True``, which
   first deletes every key under the root (the store must list);
2. every level's array metadata (``zarr.json`` or ``.zarray``), concurrently;
3. (0.4) the ``.zgroup``; then the group's NGFF metadata (0.5 ``zarr.json``, 0.4 ``.zattrs``) last.

Array metadata is exactly what zarr-python writes (0.5: zarr v3 with ``dimension_names``,
``sharding_indexed`` with a crc32c index; 0.4: zarr v2, ``dimension_separator`` ``"/"``).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np

from .._errors import ExistsError, PermissionDeniedError, StoreError, UnsupportedError
from ..engine.pyramid import check_levels_shrink
from ..meta import (
    Axis,
    Channel,
    Dataset as NgffDataset,
    ImageLabel,
    Multiscale,
    OmeMetadata,
    Omero,
    Scale,
    Translation,
    Window,
    read_document,
    write_document,
)
from ..meta._validate import to_attrs, validate
from ..meta.ngff import axes_problem
from ..meta.zarr import (
    V3_DATA_TYPES,
    ArrayV2Meta,
    ArrayV3Meta,
    BloscCodec,
    BloscConfig,
    BytesCodec,
    BytesConfig,
    Crc32cCodec,
    DefaultKeyEncoding,
    GroupV3Meta,
    GzipCodec,
    GzipConfig,
    RegularChunkGrid,
    RegularGridConfig,
    ShardingCodec,
    ShardingConfig,
    ZstdCodec,
    ZstdConfig,
    codec_stages,
    decode_array_v2,
    decode_array_v3,
    encode_array_v2,
    encode_array_v3,
    encode_group_v2,
    encode_group_v3,
)
from ..stores import AsyncStore, open_store
from ._dataset import Dataset
from ._node import store_path
from ._open import join
from ._opening import _Opening, closing_store_on_error

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from .._limits import Limits
    from .._sync_api import SyncDataset
    from ..meta.zarr import ArrayMeta, Codec
    from ..stores import Buffer

__all__ = [
    "ImagePlan",
    "create_async",
    "create_like_async",
    "default_chunks",
    "default_levels",
    "default_shards",
    "plan_image",
]

Compressor = Literal["zstd", "blosc-zstd", "gzip", "none", False] | None
"""``None``, ``False`` and ``"none"`` all mean uncompressed (convert's ``None`` keeps the source's)."""
ChannelSpec = str | Mapping[str, Any]

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
#: the unit of an axis of this type no unit is given for (NGFF: ``unit`` SHOULD be there)
_DEFAULT_UNITS: dict[str | None, str] = {"space": "micrometer", "time": "second"}
_COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")
_CHUNK_BYTES = 1 << 20
_SHARD_CHUNKS = 8  # chunks per shard along y and x
_SMALLEST = 256  # default levels: until the largest of y/x is at most this


# ------------------------------------------------------------------------------ pure planning
def level_names(existing: Sequence[str], count: int) -> list[str]:
    """``count`` level paths: ``existing`` first (as many as fit), then their pattern continued
    (``s0, s1`` -> ``s2``; ``0, 1`` -> ``2``); paths of another shape are followed by free
    ``str(i)`` names. Readers of plates (ome-zarr-py) take the first field's level paths for
    every field, and tools count on one pattern per pyramid."""
    prefix = existing[0][:-1] if existing and existing[0].endswith("0") else None
    if prefix is not None and all(p == f"{prefix}{i}" for i, p in enumerate(existing)):
        return [f"{prefix}{i}" for i in range(count)]
    names = list(existing[:count])
    taken = set(existing)
    for i in range(len(names), count):
        name, n = str(i), i
        while name in taken:
            n += 1
            name = str(n)
        taken.add(name)
        names.append(name)
    return names


def _yx(axes: Sequence[str]) -> tuple[int, ...]:
    """Indices of the axes downscaled and chunked square-ish: y and x (else the last two)."""
    found = tuple(i for i, a in enumerate(axes) if a in ("y", "x"))
    return found if found else tuple(range(max(0, len(axes) - 2), len(axes)))


def default_chunks(shape: Sequence[int], axes: Sequence[str], dtype: DTypeLike) -> tuple[int, ...]:
    """Chunks of at most ~1 MiB: a power-of-two square in y/x (capped by the shape), 1 elsewhere."""
    itemsize = np.dtype(dtype).itemsize
    side = 2 ** math.floor(math.log2(math.sqrt(_CHUNK_BYTES / itemsize)))
    yx = _yx(axes)
    return tuple(max(1, min(side, n)) if i in yx else 1 for i, n in enumerate(shape))


def stacked_chunks(shape: Sequence[int], axes: Sequence[str], dtype: DTypeLike) -> tuple[int, ...]:
    """:func:`default_chunks` with whole planes smaller than a chunk stacked along ``z``, then
    ``t``, up to ~1 MiB (a movie of 2,000 frames of 32 x 32 is 4 chunks, not 2,000); a plane of
    several chunks, or of about one, keeps them. Channels stay one per chunk."""
    chunks = list(default_chunks(shape, axes, dtype))
    if any(chunks[i] < shape[i] for i in _yx(axes)):
        return tuple(chunks)
    nbytes = max(1, math.prod(chunks) * np.dtype(dtype).itemsize)
    for name in ("z", "t"):
        if name in axes:
            i = list(axes).index(name)
            chunks[i] = max(1, min(shape[i], _CHUNK_BYTES // nbytes))
            nbytes *= chunks[i]
            if chunks[i] < shape[i]:
                break
    return tuple(chunks)


def default_shards(
    shape: Sequence[int], axes: Sequence[str], chunks: Sequence[int]
) -> tuple[int, ...] | None:
    """Shards of up to 8x8 chunks in y/x (capped by the shape, whole chunks), one chunk elsewhere.

    ``None`` when a shard would hold a single chunk.
    """
    yx = _yx(axes)
    shards = tuple(
        min(_SHARD_CHUNKS * c, -(-n // c) * c) if i in yx else c
        for i, (n, c) in enumerate(zip(shape, chunks, strict=True))
    )
    shards = tuple(max(s, c) for s, c in zip(shards, chunks, strict=True))
    return None if shards == tuple(chunks) else shards


def default_levels(shape: Sequence[int], axes: Sequence[str], downscale: int) -> int:
    """Levels until the largest y/x extent is at most 256 (at least 1)."""
    largest = max((shape[i] for i in _yx(axes)), default=1)
    n = 1
    while largest > _SMALLEST and downscale > 1:
        largest = -(-largest // downscale)
        n += 1
    return n


def _level_shape(shape: Sequence[int], axes: Sequence[str], factor: int) -> tuple[int, ...]:
    """The shape of a level ``factor`` times smaller in y/x (rounded up; 0 stays 0)."""
    yx = _yx(axes)
    return tuple(-(-n // factor) if i in yx else n for i, n in enumerate(shape))


def _compressor_name(name: Any) -> str | None:
    """``None`` for no compression (``None``, ``False``, ``"none"``), else the lower-cased name."""
    if name is None or name is False:
        return None
    if not isinstance(name, str):
        raise TypeError(f"compressor must be a name or None, got {name!r}")
    lowered = name.lower()
    return None if lowered == "none" else lowered


def _compressor_v3(compressor: Compressor, dtype: np.dtype[Any]) -> tuple[Codec, ...]:
    name = _compressor_name(compressor)
    if name is None:
        return ()
    if name == "zstd":
        return (ZstdCodec(ZstdConfig(level=0, checksum=False)),)
    if name == "gzip":
        return (GzipCodec(GzipConfig(level=5)),)
    if name == "blosc-zstd":
        shuffle: Literal["bitshuffle", "shuffle"] = (
            "bitshuffle" if dtype.itemsize == 1 else "shuffle"
        )
        return (
            BloscCodec(
                BloscConfig(cname="zstd", clevel=5, shuffle=shuffle, typesize=dtype.itemsize)
            ),
        )
    raise ValueError(
        f"unknown compressor {compressor!r}: use 'zstd', 'blosc-zstd', 'gzip', or None / 'none'"
    )


def _compressor_v2(compressor: Compressor, dtype: np.dtype[Any]) -> dict[str, Any] | None:
    name = _compressor_name(compressor)
    if name is None:
        return None
    if name == "zstd":
        return {"id": "zstd", "level": 0}
    if name == "gzip":
        return {"id": "gzip", "level": 5}
    if name == "blosc-zstd":
        shuffle = 2 if dtype.itemsize == 1 else 1  # BITSHUFFLE / SHUFFLE
        return {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": shuffle, "blocksize": 0}
    raise ValueError(
        f"unknown compressor {compressor!r}: use 'zstd', 'blosc-zstd', 'gzip', or None / 'none'"
    )


def _float_json(f: float) -> float | str:
    """A float fill value as zarr writes it: NaN and infinities by name."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return f


def _fill_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """The JSON fill value of ``value`` in ``dtype``; ``ValueError`` naming ``fill_value`` when
    it is not a value of that type (out of range, a fraction for an integer type, text)."""
    if dtype.kind not in "biufc":
        raise UnsupportedError(f"data type {dtype} is not supported")
    if isinstance(value, str | bytes) or (
        dtype.kind != "c" and isinstance(value, complex | np.complexfloating)
    ):
        raise ValueError(f"fill_value {value!r} is not a {dtype} value")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow: refused below
            v = dtype.type(value)
    except (OverflowError, ValueError, TypeError) as exc:
        raise ValueError(f"fill_value {value!r} is not a {dtype} value: {exc}") from None
    if not isinstance(v, np.generic):
        raise ValueError(f"fill_value must be one {dtype} value, got {value!r}")
    number = isinstance(value, numbers.Number)
    if number and (
        (dtype.kind in "biu" and v != value)
        or (dtype.kind in "fc" and np.isfinite(value) and not np.isfinite(v))
    ):
        raise ValueError(f"fill_value {value!r} is not a {dtype} value (it would be stored as {v})")
    if dtype.kind == "b":
        return bool(v)
    if dtype.kind in "iu":
        return int(v)
    if dtype.kind == "f":
        return _float_json(float(v))
    return [_float_json(float(v.real)), _float_json(float(v.imag))]


def array_meta_v3(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    axes: Sequence[str],
    chunks: tuple[int, ...],
    shards: tuple[int, ...] | None,
    compressor: Compressor,
    fill_value: Any,
) -> ArrayV3Meta:
    """The ``zarr.json`` zarr-python writes for these settings (validated by decoding it)."""
    if dtype.name not in V3_DATA_TYPES:
        raise UnsupportedError(f"data type {dtype} cannot be written as zarr v3")
    endian: Literal["little"] | None = None if dtype.itemsize == 1 else "little"
    inner: tuple[Codec, ...] = (BytesCodec(BytesConfig(endian)), *_compressor_v3(compressor, dtype))
    codecs: tuple[Codec, ...] = inner
    grid = chunks
    if shards is not None:
        codecs = (ShardingCodec(ShardingConfig(chunk_shape=chunks, codecs=inner)),)
        grid = shards
    meta = ArrayV3Meta(
        zarr_format=3,
        node_type="array",
        shape=shape,
        data_type=dtype.name,
        chunk_grid=RegularChunkGrid(RegularGridConfig(grid)),
        chunk_key_encoding=DefaultKeyEncoding(),
        fill_value_json=_fill_json(fill_value, dtype),
        codecs=codecs,
        dimension_names=tuple(axes),
    )
    return decode_array_v3(encode_array_v3(meta))


def array_meta_v2(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...],
    compressor: Compressor,
    fill_value: Any,
) -> ArrayV2Meta:
    """The ``.zarray`` zarr-python writes for these settings (``dimension_separator`` ``"/"``)."""
    dt = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
    meta = ArrayV2Meta(
        zarr_format=2,
        shape=shape,
        chunks=chunks,
        dtype_json=dt.str,
        compressor=_compressor_v2(compressor, dtype),
        fill_value_json=_fill_json(fill_value, dtype),
        order="C",
        filters=None,
        dimension_separator="/",
    )
    return decode_array_v2(encode_array_v2(meta))


@dataclass(frozen=True)
class ImagePlan:
    """Everything :func:`create_async` writes: per-level array metadata and the NGFF metadata."""

    version: str
    paths: tuple[str, ...]
    arrays: tuple[ArrayMeta, ...]
    ome: OmeMetadata
    #: the channels given no display window: their windows follow the data (see
    #: ``Dataset.set_channels(windows="auto")``)
    auto_windows: tuple[int, ...] = ()

    def array_documents(self) -> list[tuple[str, bytes]]:
        """``(key relative to the image, bytes)`` of every level's array metadata."""
        if self.version == "0.4":
            return [
                (f"{p}/.zarray", encode_array_v2(a))  # type: ignore[arg-type]
                for p, a in zip(self.paths, self.arrays, strict=True)
            ]
        return [
            (f"{p}/zarr.json", encode_array_v3(a))  # type: ignore[arg-type]
            for p, a in zip(self.paths, self.arrays, strict=True)
        ]

    def group_documents(self) -> list[tuple[str, bytes]]:
        """``(key, bytes)`` of the group metadata, in the order to write them (NGFF last)."""
        attrs = to_attrs(self.ome, self.version)
        if self.version == "0.4":
            return [(".zgroup", encode_group_v2()), (".zattrs", write_document(attrs))]
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs)
        return [("zarr.json", encode_group_v3(doc))]


def is_scalar(value: Any) -> bool:
    """Whether ``value`` is one real number (Python or numpy scalar, 0-d array; not a bool)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real_number(value: Any, what: str, *, positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` when ``positive``); errors name ``what``."""
    if not is_scalar(value):
        raise TypeError(f"{what} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ValueError(f"{what} must be a finite number, got {f}")
    if positive and f <= 0:
        raise ValueError(f"{what} must be positive, got {f}")
    return f


def integer(value: Any, what: str, *, minimum: int = 0) -> int:
    """``value`` as an int (Python or numpy integer; not a bool or a float) ``>= minimum``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    n = int(value)
    if n < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {n}")
    return n


def data_type(value: Any, what: str = "dtype") -> np.dtype[Any]:
    """``np.dtype(value)``, refused with a ``TypeError`` naming ``what`` (``dtype='foo'``)."""
    try:
        dt: np.dtype[Any] = np.dtype(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} {value!r} is not a data type: {exc}") from None
    return dt


def _per_axis(
    value: float | Sequence[float] | Mapping[str, float] | None,
    axes: Sequence[str],
    default: float,
    what: str,
    *,
    positive: bool = False,
) -> list[float]:
    """One finite float per axis from a number (space axes; ``default`` elsewhere), a sequence
    or a mapping axis -> value (``default`` for the axes it does not name)."""
    if value is None:
        return [default] * len(axes)
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in axes]
        if unknown:
            raise ValueError(f"{what}: unknown axis {unknown[0]!r} (axes: {list(axes)})")
        return [
            real_number(value[a], f"{what}[{a!r}]", positive=positive) if a in value else default
            for a in axes
        ]
    if is_scalar(value):
        number = real_number(value, what, positive=positive)
        return [number if _AXIS_TYPES.get(a) == "space" else default for a in axes]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(
            f"{what} must be a number, one number per axis or a mapping axis -> number, "
            f"got {value!r}"
        )
    values = list(value)
    if len(values) != len(axes):
        raise ValueError(f"{what} needs {len(axes)} values (one per axis {list(axes)})")
    return [
        real_number(v, f"{what}[{a!r}]", positive=positive)
        for v, a in zip(values, axes, strict=True)
    ]


def _unit(value: Any, axis: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"units[{axis!r}] must be a string or None, got {value!r}")
    return None if value is None else str(value)  # numpy strings are str, not JSON-encodable


def _units(
    units: str | Sequence[str | None] | Mapping[str, str | None] | None, axes: Sequence[str]
) -> list[str | None]:
    """One unit per axis from one unit (space axes; the time axis gets ``second``), a
    sequence, or a mapping axis -> unit (the axes it does not name keep the defaults:
    ``micrometer`` in space, ``second`` in time, as ngio writes them). ``None``: no units."""
    if units is None:
        return [None] * len(axes)
    if isinstance(units, str):
        kinds = [_AXIS_TYPES.get(a) for a in axes]
        return [str(units) if k == "space" else _DEFAULT_UNITS.get(k) for k in kinds]
    if isinstance(units, Mapping):
        unknown = [k for k in units if k not in axes]
        if unknown:
            raise ValueError(f"units: unknown axis {unknown[0]!r} (axes: {list(axes)})")
        default = _units("micrometer", axes)
        return [_unit(units[a], a) if a in units else d for a, d in zip(axes, default, strict=True)]
    if isinstance(units, bytes) or not isinstance(units, Sequence):
        raise TypeError(
            f"units must be a unit name, one per axis or a mapping axis -> unit, got {units!r}"
        )
    out = list(units)
    if len(out) != len(axes):
        raise ValueError(f"units needs {len(axes)} values (one per axis {list(axes)})")
    return [_unit(u, a) for u, a in zip(out, axes, strict=True)]


def _default_window(dtype: np.dtype[Any]) -> Window:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    elif dtype.kind == "b":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = 0.0, 1.0
    return Window(min=lo, max=hi, start=lo, end=hi)


def _channel_list(channels: Any) -> list[Any]:
    """``channels=`` as a list, each item a label, a mapping or a :class:`Channel`: a string
    (one channel per letter), a mapping (its keys) or a number is refused naming it."""
    if isinstance(channels, str | bytes | Mapping) or not isinstance(
        channels, Sequence | np.ndarray
    ):
        raise TypeError(
            f"channels must be a list of channels (labels or mappings), got {channels!r}"
        )
    out = list(channels)
    for i, c in enumerate(out):
        if not isinstance(c, str | Mapping | Channel):
            raise TypeError(
                f"channels[{i}] must be a label (str) or a mapping with label, color, window "
                f"or active, got {c!r}"
            )
    return out


def check_unique_channels(
    channels: Sequence[Channel], what: str, keys: Sequence[str] = ("label", "wavelength_id")
) -> None:
    """Refuse two channels of one label or one ``wavelength_id`` (of ``keys``: reads select
    channels by them; ngio refuses a label twice too), naming both."""
    for key in keys:
        seen: dict[str, int] = {}
        for i, channel in enumerate(channels):
            value = channel.label if key == "label" else channel.extra.get("wavelength_id")
            if value is None:
                continue
            if value in seen:
                raise ValueError(
                    f"{what}: channels {seen[value]} and {i} would both have {key} {value!r} "
                    "(channels are selected by it)"
                )
            seen[value] = i


def make_channel(
    spec: ChannelSpec | Channel, index: int, dtype: np.dtype[Any], *, only: bool = False
) -> Channel:
    """A channel from a label, or a dict with ``label``, ``color``, ``window``, ``active``,
    ``inverted``, ``wavelength_id`` (the key Fractal and ngio select channels by, kept
    beside the omero channel's others). Without a color: blue, green, red, ... by ``index``; white when it is the
    ``only`` channel (drawn grey, as OMERO and this library's renderer draw one channel: a
    lone blue channel is nearly black in napari and vizarr).

    ``window`` is a ``Window``, a dict ``{min, max, start, end}`` (missing keys from the data
    type's range) or ``(start, end)``.
    """
    if isinstance(spec, Channel):
        return spec
    if isinstance(spec, str):
        spec = {"label": str(spec)}
    known = {"label", "color", "window", "active", "inverted", "wavelength_id"}
    unknown = [k for k in spec if k not in known]
    if unknown:
        raise ValueError(f"channel {index}: unknown key {unknown[0]!r} (known: {sorted(known)})")
    channel = Channel(
        label=_python(spec.get("label")),
        color=str(spec.get("color") or _default_color(index, only)).lstrip("#").upper(),
        window=make_window(spec.get("window"), dtype, f"channels[{index}] window"),
        active=_python(spec.get("active", True)),
        inverted=_python(spec.get("inverted")),
    )
    wavelength = _python(spec.get("wavelength_id"))
    if wavelength is not None:
        if not isinstance(wavelength, str) or not wavelength:
            raise TypeError(f"channel {index}: wavelength_id must be a string, got {wavelength!r}")
        channel.extra["wavelength_id"] = wavelength
    return channel


def _default_color(index: int, only: bool) -> str:
    return "FFFFFF" if only else _COLORS[index % len(_COLORS)]


def _python(value: Any) -> Any:
    """A numpy scalar (``np.str_``, ``np.bool_``: from arrays of channel names or flags) as the
    Python value; anything else as given (validation names what is wrong)."""
    return value.item() if isinstance(value, np.generic) else value


def make_window(value: Any, dtype: np.dtype[Any], what: str = "window") -> Window:
    """A display window from ``None``, a ``Window``, ``(start, end)`` or a dict.

    Values must be finite numbers (``ValueError`` / ``TypeError`` naming ``what``).
    """
    base = _default_window(dtype)
    if value is None:
        return base
    if isinstance(value, Window):
        return value
    if isinstance(value, Mapping):
        keys = ("min", "max", "start", "end")
        unknown = [k for k in value if k not in keys]
        if unknown:
            raise ValueError(f"{what}: unknown key {unknown[0]!r} (known: {list(keys)})")
        v = {k: real_number(value.get(k, getattr(base, k)), f"{what} {k}") for k in keys}
        return Window(**v)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{what} must be (start, end) or a mapping, got {value!r}")
    if len(value) != 2:
        raise ValueError(f"{what} must be (start, end), got {len(value)} values")
    start, end = (
        real_number(v, f"{what} {k}") for v, k in zip(value, ("start", "end"), strict=True)
    )
    return Window(min=min(base.min, start), max=max(base.max, end), start=start, end=end)


def _sizes(value: Any, what: str) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{what} must be a sequence of integers, got {value!r}")
    return list(value)


def _per_axis_sizes(value: Any, names: Sequence[str], what: str) -> tuple[int, ...]:
    """Chunk or shard sizes: one integer >= 1 per axis."""
    sizes = _sizes(value, what)
    if len(sizes) != len(names):
        raise ValueError(f"{what} {tuple(sizes)} needs {len(names)} sizes (one per axis {names})")
    return tuple(
        integer(n, f"{what}[{i}] (axis {a!r})", minimum=1)
        for i, (n, a) in enumerate(zip(sizes, names, strict=True))
    )


def _axis_names(axes: str | Sequence[str]) -> list[str]:
    """The axis names of ``axes=``, checked against the NGFF axis rules (the message names the
    argument, not a JSON path)."""
    names = list(axes) if isinstance(axes, str | Sequence) else []
    if not names or not all(isinstance(a, str) and a for a in names):
        raise TypeError(f"axes must be a string like 'czyx' or a list of names, got {axes!r}")
    models = [Axis(name=a, type=_AXIS_TYPES.get(a)) for a in names]
    problem = axes_problem(models)
    if problem is not None:
        rule = problem[1]
        if any(a not in _AXIS_TYPES and a.lower() in _AXIS_TYPES for a in names):
            rule += " (the known axis names t, c, z, y, x are lower case)"
        elif rule.startswith("expected 2 or 3 axes"):
            rule += " (the space axes are z, y and x)"
        raise ValueError(f"axes {axes!r}: {rule}")
    return names


def plan_image(
    *,
    shape: Sequence[int],
    dtype: DTypeLike,
    axes: str | Sequence[str] | None = None,
    scale: float | Sequence[float] | Mapping[str, float] | None = None,
    units: str | Sequence[str | None] | Mapping[str, str] | None = "micrometer",
    translation: Sequence[float] | Mapping[str, float] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | Literal[False] | None = None,
    compressor: Compressor = "zstd",
    levels: int | None = None,
    downscale: int = 2,
    channels: Sequence[ChannelSpec | Channel] | None = None,
    ngff_version: Literal["0.5", "0.4"] = "0.5",
    name: str | None = None,
    fill_value: Any = None,
    level_translations: Sequence[Sequence[float]] | None = None,
    level_shapes: Sequence[Sequence[int]] | None = None,
    unique_channels: bool = True,
) -> ImagePlan:
    """Plan an image (pure: no I/O); see :func:`create_async` for the parameters.
    ``unique_channels``: refuse two channels given of one label or ``wavelength_id``
    (``convert`` keeps what a source file names twice).

    ``create_like`` copies what a source has and ``create`` does not make:
    ``level_translations``, one translation per level (levels translated apart, as
    ome-zarr-py centres them; it replaces ``translation``), and ``level_shapes``, the shape of
    every level (ome-zarr-py's are ``floor(n / 2)``, not ``ceil``).
    """
    shape_l = _sizes(shape, "shape")
    if axes is None:
        by_rank = {2: "yx", 3: "cyx" if channels is not None else "zyx", 4: "czyx", 5: "tczyx"}
        axes = by_rank.get(len(shape_l), "")
        if not axes:
            raise ValueError(f"give axes= for a {len(shape_l)}-dimensional image")
    names = _axis_names(axes)
    if len(names) != len(shape_l):
        raise ValueError(f"{len(names)} axes {names} for a {len(shape_l)}-dimensional shape")
    shape_t = tuple(
        integer(n, f"shape[{i}] (axis {a!r})")
        for i, (n, a) in enumerate(zip(shape_l, names, strict=True))
    )
    if ngff_version not in ("0.4", "0.5"):
        raise UnsupportedError(f"cannot write NGFF version {ngff_version!r} (0.4 or 0.5)")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    dt = data_type(dtype)
    if dt.byteorder == ">":
        dt = dt.newbyteorder("=")
    if dt.kind not in "biufc":
        raise UnsupportedError(f"data type {dt} is not supported (numbers and bool only)")
    downscale = integer(downscale, "downscale", minimum=1)
    fill = fill_value if fill_value is not None else (False if dt.kind == "b" else 0)
    n_levels = (
        default_levels(shape_t, names, downscale)
        if levels is None
        else integer(levels, "levels", minimum=1)
    )
    if chunks is not None:
        base_chunks = _per_axis_sizes(chunks, names, "chunks")
    elif shards is None or shards is False:  # small planes stacked: no 32 KiB chunk per plane
        base_chunks = stacked_chunks(shape_t, names, dt)
    else:  # (shards given: their z and t stay whole multiples of the chunks)
        base_chunks = default_chunks(shape_t, names, dt)
    if shards is not None and shards is not False:
        if ngff_version == "0.4":
            raise UnsupportedError("sharding needs zarr v3 (NGFF 0.5), not 0.4")
        shard_req: tuple[int, ...] | None = _per_axis_sizes(shards, names, "shards")
        assert shard_req is not None
        # a shard reaching past the image is cut to the chunks covering it (as on every level)
        chunks0 = tuple(max(1, min(c, n)) for c, n in zip(base_chunks, shape_t, strict=True))
        if any(
            s % c and s < -(-n // c) * c
            for s, c, n in zip(shard_req, chunks0, shape_t, strict=True)
        ):
            raise ValueError(f"shards {shard_req} must be whole multiples of the chunks {chunks0}")
    else:
        shard_req = None

    scale0 = _per_axis(scale, names, 1.0, "scale", positive=True)
    unit_list = _units(units, names)
    trans = _per_axis(translation, names, 0.0, "translation") if translation is not None else None
    per_level: list[list[float]] | None = None
    if level_translations is not None:
        per_level = [_per_axis(list(t), names, 0.0, "translation") for t in level_translations]
        if len(per_level) != n_levels:
            raise ValueError(f"{len(per_level)} level translations for {n_levels} levels")
    yx = _yx(names)
    arrays: list[ArrayMeta] = []
    datasets: list[NgffDataset] = []
    if level_shapes is not None and (
        len(level_shapes) != n_levels or tuple(level_shapes[0]) != shape_t
    ):
        raise ValueError(f"level shapes {level_shapes} for {n_levels} levels of shape {shape_t}")
    if level_shapes is None:  # (given level shapes are a source's own: taken as they are)
        check_levels_shrink(
            [_level_shape(shape_t, names, downscale**i) for i in range(n_levels)], n_levels
        )
    for i in range(n_levels):
        factor = downscale**i
        lshape = (
            _level_shape(shape_t, names, factor)
            if level_shapes is None
            else tuple(int(n) for n in level_shapes[i])
        )
        lchunks = tuple(max(1, min(c, n)) for c, n in zip(base_chunks, lshape, strict=True))
        lshards: tuple[int, ...] | None = None
        if ngff_version == "0.5" and shards is not False:
            if shard_req is not None:
                lshards = tuple(
                    max(c, min(s, -(-n // c) * c))
                    for s, c, n in zip(shard_req, lchunks, lshape, strict=True)
                )
            else:
                lshards = default_shards(lshape, names, lchunks)
        if ngff_version == "0.5":
            arrays.append(array_meta_v3(lshape, dt, names, lchunks, lshards, compressor, fill))
        else:
            arrays.append(array_meta_v2(lshape, dt, lchunks, compressor, fill))
        lscale = [s * factor if j in yx else s for j, s in enumerate(scale0)]
        transforms: list[Any] = [Scale(scale=lscale)]
        if per_level is not None:
            transforms.append(Translation(translation=per_level[i]))
        elif trans is not None:
            transforms.append(Translation(translation=list(trans)))
        datasets.append(NgffDataset(path=str(i), coordinate_transformations=transforms))
    axis_models = [
        Axis(name=a, type=_AXIS_TYPES.get(a), unit=u) for a, u in zip(names, unit_list, strict=True)
    ]
    omero = None
    auto_windows: tuple[int, ...] = ()
    if channels is not None:
        if "c" not in names:
            raise ValueError("channels= needs a 'c' axis")
        channels = _channel_list(channels)
        n_c = shape_t[names.index("c")]
        if len(channels) != n_c:
            raise ValueError(f"{len(channels)} channels for a channel axis of size {n_c}")
        only = len(channels) == 1
        made = [make_channel(c, i, dt, only=only) for i, c in enumerate(channels)]
        if unique_channels:  # (by label or mapping: those copied from an image as they are)
            check_unique_channels(
                [m for m, c in zip(made, channels, strict=True) if not isinstance(c, Channel)],
                "channels",
            )
        omero = Omero(channels=made)
        auto_windows = tuple(
            i
            for i, c in enumerate(channels)
            if isinstance(c, str) or (isinstance(c, Mapping) and c.get("window") is None)
        )
    ome = OmeMetadata(
        version=ngff_version,
        multiscales=[
            Multiscale(
                axes=axis_models,
                datasets=datasets,
                name="image" if name is None else _python(name),
                **downsampling("mean"),
            )
        ],
        omero=omero,
    )
    ome = validate(to_attrs(ome, ngff_version))  # every rule checked before anything is written
    paths = tuple(str(i) for i in range(n_levels))
    return ImagePlan(
        version=ngff_version, paths=paths, arrays=tuple(arrays), ome=ome, auto_windows=auto_windows
    )


def downsampling(method: str) -> dict[str, Any]:
    """The multiscale ``type`` and ``metadata`` (SHOULD fields) for levels this library
    downsamples with ``method`` (``"mean"``, ``"nearest"``, ``"mode"``): the NGFF example's
    keys, naming the function and the library version."""
    from .. import __version__

    return {
        "type": method,
        "metadata": {
            "description": f"{method} of each downscale window (ngio_async)",
            "method": "ngio_async.Dataset.build_pyramid",
            "version": __version__,
            "kwargs": {"method": method},
        },
    }


def default_name(url: Any, path: str) -> str:
    """The multiscale ``name`` for an image at ``path`` under ``url``: its directory's name
    without ``.ome.zarr`` / ``.zarr``, or ``"image"``."""
    where = path.strip("/") or str(getattr(url, "url", url)).split("?", 1)[0]
    last = where.rpartition("://")[2].rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if last.lower().endswith(suffix):
            last = last[: -len(suffix)]
            break
    return last or "image"


# ------------------------------------------------------------------------------ I/O
_NODE_KEYS = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def _decoded(raw: Any) -> Any:
    """A JSON document decoded (``None`` when it is not JSON)."""
    import msgspec

    try:
        return read_document(raw)
    except msgspec.DecodeError:
        return None


def _node_type(raw: Any) -> Any:
    """``node_type`` of a zarr v3 ``zarr.json`` (``None`` when it is not a JSON object)."""
    doc = _decoded(raw)
    return doc.get("node_type") if isinstance(doc, dict) else None


Listing = Literal["level", "label", "well"]


def _paths(items: Any, key: str = "path") -> list[str]:
    """The ``key`` of every object of a JSON list, stripped of ``/`` (others skipped)."""
    if not isinstance(items, list):
        return []
    return [str(i[key]).strip("/") for i in items if isinstance(i, dict) and key in i]


def _within(rel: str, paths: list[str]) -> str | None:
    """The first of ``paths`` that is ``rel`` or lies below it."""
    return next((p for p in paths if p == rel or p.startswith(rel + "/")), None)


def _listed_as(raw: Any, rel: str) -> tuple[Listing, str] | None:
    """What the NGFF attributes of a group document (a v3 ``zarr.json`` or a v2 ``.zattrs``)
    list at or below the node at ``rel`` below the group, and its path there: a ``"level"``
    of one of its multiscales, a ``"label"`` image of its labels group, a ``"well"`` of its
    plate (a row group holds wells); ``None`` when nothing."""
    doc = _decoded(raw)
    if not isinstance(doc, dict):
        return None
    if "zarr_format" in doc:  # zarr.json: the attributes, NGFF 0.5 under "ome"
        doc = doc.get("attributes")
        if not isinstance(doc, dict):
            return None
    for attrs in (doc, doc.get("ome")):
        if not isinstance(attrs, dict):
            continue
        multiscales = attrs.get("multiscales")
        for ms in multiscales if isinstance(multiscales, list) else ():
            if isinstance(ms, dict) and (path := _within(rel, _paths(ms.get("datasets")))):
                return "level", path
        labels = attrs.get("labels")
        names = [str(n).strip("/") for n in labels] if isinstance(labels, list) else []
        if path := _within(rel, names):
            return "label", path
        plate = attrs.get("plate")
        if isinstance(plate, dict) and (path := _within(rel, _paths(plate.get("wells")))):
            return "well", path
    return None


def _url_of(url: str, path: str) -> str:
    """The URL of ``path`` below a store's ``url`` (``memory://`` + ``a`` is ``memory://a``)."""
    return f"{url}{'' if url.endswith('/') else '/'}{path}" if path else url


def _listed_error(
    where: str, holder: str, doc: str, rel: str, listed: tuple[Listing, str]
) -> ExistsError:
    """The refusal of a create at ``where`` (``rel`` below the group ``holder``), where the
    group lists (in ``doc``) ``listed`` (what, path): replaced by an image, the group would
    list a wrong node or a missing one."""
    what, path = listed
    it = "it is" if path == rel else "it holds"
    if what == "level":
        why = (
            f"{it} level {path!r} of the image {holder} ({doc}): an image there would leave "
            "that image's multiscales pointing at a group. Write the level through its "
            "image, or create this image elsewhere"
        )
    elif what == "label":
        why = (
            f"{it} label image {path!r} of {holder} ({doc}), which would keep listing it "
            "without its image-label metadata: replace it with the image's "
            f"labels.create({path!r}, overwrite=True), or create a label image here "
            "(create_like of one)"
        )
    else:
        why = (
            f"{it} well {path!r} of the plate {holder} ({doc}): an image there would leave "
            "the plate listing a missing well or an image as one"
        )
    return ExistsError(f"cannot create {where}: {why}", url=holder, key=doc, kind="parent")


def _refused_listing(raw: Any, rel: str, *, label: bool) -> tuple[Listing, str] | None:
    """:func:`_listed_as`, but ``None`` for a listed label image ``rel`` when ``label`` (a
    label image replacing a label image keeps the listing right)."""
    listed = _listed_as(raw, rel)
    return None if listed == ("label", rel) and label else listed


def _is_node_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _NODE_KEYS


def _local_directory(url: str | os.PathLike[str]) -> str | None:
    """The directory a plain path or ``file://`` URL names (as ``open_store`` resolves it),
    ``None`` for other URLs."""
    from urllib.parse import unquote, urlsplit

    if isinstance(url, os.PathLike):
        return os.path.abspath(os.path.expanduser(os.fspath(url)))
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter)
        return os.path.abspath(os.path.expanduser(url))
    return unquote(urlsplit(url).path) if scheme == "file" else None


def _node_above(
    directory: str, *, label: bool = False
) -> tuple[str, tuple[Listing, str] | None] | None:
    """The metadata file of the nearest directory above ``directory`` (up to the filesystem
    root; a stat per directory, a read of each ``zarr.json`` / ``.zattrs`` found) that is a
    zarr array (``(file, None)``) or a group listing ``directory`` as one of its parts
    (``(file, what)``, see :func:`_refused_listing`)."""
    current = os.path.abspath(directory)
    while (parent := os.path.dirname(current)) != current:
        current = parent
        rel = os.path.relpath(directory, current).replace(os.sep, "/")
        if os.path.isfile(v2 := os.path.join(current, ".zarray")):
            return v2, None
        for name in ("zarr.json", ".zattrs"):
            try:
                with open(os.path.join(current, name), "rb") as f:
                    raw = f.read()  # cut short, a large document would not decode
            except OSError:  # absent (or unreadable: not a node this create can see)
                continue
            if name == "zarr.json" and _node_type(raw) == "array":
                return os.path.join(current, name), None
            if (what := _refused_listing(raw, rel, label=label)) is not None:
                return os.path.join(current, name), what
    return None


def refuse_array_above(directory: str, where: str, *, label: bool = False) -> None:
    """Raise :class:`ExistsError` (``kind="parent"``) when a directory above the local store
    root ``directory`` is a zarr array (the store cannot see it, and nothing may go below it),
    or a group that lists ``directory`` as a level, a well or (unless ``label``: a label
    image replaces it) a label image."""
    found = _node_above(os.path.abspath(directory), label=label)
    if found is None:
        return
    (array, name), what = os.path.split(found[0]), found[1]
    if what is not None:
        rel = os.path.relpath(directory, array).replace(os.sep, "/")
        raise _listed_error(where, f"file://{array}", name, rel, what)
    raise ExistsError(
        f"cannot create {where}: its parent {array!r} is a zarr array ({found[0]}), and an"
        " array cannot hold other nodes",
        url=f"file://{array}",
        key=name,
        kind="parent",
    )


# cloud stores whose root has no array above it (checked once per store)
_CLEAR_ABOVE: weakref.WeakSet[AsyncStore] = weakref.WeakSet()


async def _bucket_root(store: AsyncStore) -> tuple[AsyncStore, str] | None:
    """A store at the root of the bucket (or container) of a cloud ``store`` rooted below it
    (seen through :class:`~ngio_async.stores.InstrumentedStore` wrappers), with ``store``'s
    prefix there; ``None`` for other stores. Its client (7-20 ms of work) is built in a
    worker thread at its first request, as ``store``'s own (waited for here, if not built
    yet), not on the event loop."""
    from obstore.store import AzureStore, GCSStore, S3Store

    from ..stores import InstrumentedStore, ObstoreStore
    from ..stores._obstore import bucket_root_client

    while isinstance(store, InstrumentedStore):
        store = store.inner
    if not isinstance(store, ObstoreStore):
        return None
    await store.ready()
    inner = store.obstore
    if not isinstance(inner, S3Store | GCSStore | AzureStore):
        return None
    prefix = str(inner.prefix or "").strip("/")
    if not prefix:
        return None
    root = ObstoreStore(bucket_root_client(inner), limits=store.limits, limiter=store.limiter)
    return root, prefix


async def _scan_above(
    store: AsyncStore,
    key: str,
    below: str,
    arrays: list[str],
    listings: list[tuple[str, str, tuple[Listing, str]]],
    seen: set[str] | None = None,
) -> None:
    """Look at the metadata ``key`` of a node above the path ``below`` of ``store``: an array
    there (its ``zarr.json`` or ``.zarray``) goes to ``arrays``, what a group document lists at
    or below ``below`` to ``listings`` as (document, ``below``'s path in the group, (what,
    path)), the key itself, found, to ``seen``. A missing key is skipped, also where a store
    answers 403 for one."""
    if key.endswith(".zarray"):
        try:
            if await store.exists(key):
                arrays.append(key)
        except PermissionDeniedError:
            pass
        return
    raw = await _get_or_none(store, key)
    if raw is None:
        return
    if seen is not None:
        seen.add(key)
    if key.endswith("zarr.json") and _node_type(raw) == "array":
        arrays.append(key)
    rel = below[len(key.rpartition("/")[0]) :].strip("/")
    if (what := _listed_as(raw, rel)) is not None:
        listings.append((key, rel, what))


def _refused(
    listings: list[tuple[str, str, tuple[Listing, str]]], *, label: bool
) -> list[tuple[str, str, tuple[Listing, str]]]:
    """The ``listings`` (see :func:`_scan_above`) that refuse a create; a label image
    replacing a listed label image (``label``) keeps the listing right."""
    return [(k, r, w) for k, r, w in listings if not (label and w == ("label", r))]


async def _refuse_cloud_array_above(store: AsyncStore, where: str, *, label: bool = False) -> None:
    """Raise :class:`ExistsError` (``kind="parent"``) when a prefix above a cloud store's root
    (which it cannot see) is a zarr array (nothing may go below it: an overwrite would delete
    its chunks) or a group listing the root as a part (see :func:`refuse_array_above`)."""
    if store in _CLEAR_ABOVE:
        return
    found = await _bucket_root(store)
    if found is None:
        return
    bucket, prefix = found
    parts = prefix.split("/")
    arrays: list[str] = []
    listings: list[tuple[str, str, tuple[Listing, str]]] = []

    async def check(key: str) -> None:
        await _scan_above(bucket, key, prefix, arrays, listings)

    from ._run_all import _run_all

    above = ["/".join(parts[:i]) for i in range(len(parts))]
    keys = [join(p, name) for p in above for name in ("zarr.json", ".zarray", ".zattrs")]
    try:
        await _run_all(keys, check, len(keys))
    finally:
        await bucket.aclose()
    if arrays:
        key = min(arrays, key=len)
        parent, _, name = key.rpartition("/")
        array = f"{bucket.url.rstrip('/')}/{parent}" if parent else bucket.url
        raise ExistsError(
            f"cannot create {where}: its parent {array} is a zarr array ({name}), and an"
            " array cannot hold other nodes",
            url=array,
            key=name,
            kind="parent",
        )
    if refused := _refused(listings, label=label):
        key, rel, what = min(refused)
        parent, _, name = key.rpartition("/")
        holder = _url_of(bucket.url, parent)
        raise _listed_error(where, holder, name, rel, what)
    if not listings:
        _CLEAR_ABOVE.add(store)  # the many images of a plate ask once


def _refuse_other_version(url: str, group: str, version: str, seen: set[str]) -> None:
    """Refuse a node of NGFF ``version`` in ``group``, which the keys ``seen`` (found there)
    show to be of the other version only (as ``check_same_version``, without its requests)."""
    from ._labels import other_version_error, version_documents

    mine, other = version_documents(version)
    if join(group, mine) not in seen and join(group, other) in seen:
        raise other_version_error(url, group, version)


async def _prepare_root(
    store: AsyncStore,
    root: str,
    overwrite: bool,
    *,
    paths: Sequence[str] = (),
    label: bool = False,
    version: str | None = None,
) -> None:
    """Refuse (or, with ``overwrite``, delete) an existing zarr node at ``root``.

    A node is zarr metadata at the root or (when the store lists) anywhere below it: a
    half-written hierarchy would otherwise mix stale arrays into the new image. Stored objects
    under the array ``paths`` about to be created count too (an interrupted write, or an
    overwrite by an older version, which deleted the metadata first, can leave them behind: the
    new arrays would read them as their pixels).
    Other files are left alone when nothing is found.
    Refused whatever ``overwrite`` (before anything is deleted): a root below an array, or one
    that a group above lists as one of its levels, one of its wells or (unless ``label``: a
    label image is created) one of its label images: the group would list a wrong node; and
    (``version``, of a label image) a ``labels`` group above of the other NGFF version (it
    could not list it: see ``check_same_version``).
    """
    where = _url_of(store.url, root)
    found: list[str] = []
    arrays: list[str] = []  # array metadata of a parent of root: nothing may go below it
    # (document, root's path there, (what, path) it lists at or below root)
    listings: list[tuple[str, str, tuple[Listing, str]]] = []
    parts = root.split("/") if root else []
    parents = ["/".join(parts[:i]) for i in range(len(parts))]
    parent_keys = {join(p, name) for p in parents for name in ("zarr.json", ".zarray", ".zattrs")}
    if store.url.startswith("file://"):  # the directories above the store's root
        refuse_array_above(store.url[len("file://") :], where, label=label)
    # the prefixes above a cloud store's root
    await _refuse_cloud_array_above(store, where, label=label)

    seen: set[str] = set()

    async def check(key: str) -> None:
        if key in parent_keys:
            await _scan_above(store, key, root, arrays, listings, seen)
        elif await store.exists(key):
            found.append(key)

    from ._run_all import _run_all

    keys_to_check = [join(root, name) for name in _NODE_KEYS] + sorted(parent_keys)
    await _run_all(keys_to_check, check, len(keys_to_check))
    if arrays:
        key = min(arrays, key=len)
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        raise ExistsError(
            f"cannot create {where}: its parent "
            f"{repr(parent) if parent else '(the store root)'} is a zarr array ({key}), and an"
            " array cannot hold other nodes",
            url=store.url,
            key=key,
            kind="parent",
        )
    if refused := _refused(listings, label=label):
        key, rel, listed = min(refused)
        raise _listed_error(where, _url_of(store.url, key.rpartition("/")[0]), key, rel, listed)
    if version is not None and parents and parents[-1].rsplit("/", 1)[-1] == "labels":
        _refuse_other_version(store.url, parents[-1], version, seen)
    keys: list[str] | None = None
    what = "a zarr node"
    if not found and store.supports_listing:
        keys = await store.list_prefix(root)
        under = tuple(join(root, p) + "/" for p in paths)
        found = [k for k in keys if under and k.startswith(under) and not _is_node_key(k)]
        if found:  # the new arrays would read them as their pixels
            what = "stored chunks without metadata"
        else:  # e.g. the arrays of a create interrupted before its group metadata
            found = [k for k in keys if _is_node_key(k)]
            what = "zarr metadata below it but none of its own"
    if not found:
        return
    if not overwrite:
        shown = ", ".join(sorted(found)[:3]) + (", ..." if len(found) > 3 else "")
        if what == "stored chunks without metadata":
            shown += ", left by an interrupted write or overwrite"
        elif what != "a zarr node":
            shown += ", as an interrupted create, overwrite or conversion leaves it"
        raise ExistsError(
            f"{where} already holds {what} ({shown}); pass overwrite=True to replace it",
            url=store.url,
            key=min(found),
            kind="node",
        )
    if not store.supports_listing:
        raise UnsupportedError(
            f"cannot overwrite {where}: the store cannot list the keys to delete"
        )
    if keys is None:
        keys = await store.list_prefix(root)
    # the group's metadata first (the old image stops opening), then the data, the metadata
    # below last: interrupted, what is left is always found again as a node by the retry
    # (chunks of a label image whose metadata went first were found by nothing, left forever)
    top = {join(root, name) for name in _NODE_KEYS}
    stages = [
        [k for k in keys if k in top],
        [k for k in keys if not _is_node_key(k)],
        [k for k in keys if _is_node_key(k) and k not in top],
    ]
    # consolidated copies above stop listing the old node first: were it deleted and the new
    # one not written (a failure), readers trusting them would read its arrays as fill value
    await update_consolidated(store, [], removed=root)
    for stage in stages:  # bulk requests where the store has them (S3, Azure: 256 keys each)
        await store.delete_many(stage)


async def _put_all(
    store: AsyncStore, docs: Sequence[tuple[str, bytes]], *, consolidate: bool = True
) -> None:
    """Put metadata documents concurrently, then (``consolidate``) update the consolidated
    copies of them above (:func:`update_consolidated`)."""
    from ._run_all import _run_all

    async def put(doc: tuple[str, bytes]) -> None:
        await store.put(*doc)

    await _run_all(docs, put, 64)
    if consolidate:
        await update_consolidated(store, docs)


_METADATA_LOCKS: weakref.WeakKeyDictionary[AsyncStore, anyio.Lock] = weakref.WeakKeyDictionary()


def metadata_lock(store: AsyncStore) -> anyio.Lock:
    """The lock of read-modify-writes of group documents on ``store`` (one per store object):
    a group's ``zarr.json`` holds both its NGFF attributes and the consolidated copy."""
    lock = _METADATA_LOCKS.get(store)
    if lock is None:
        lock = _METADATA_LOCKS[store] = anyio.Lock()
    return lock


async def update_consolidated(
    store: AsyncStore,
    docs: Sequence[tuple[str, bytes]],
    *,
    removed: str | None = None,
    locked: bool = False,
    shared: Collection[str] = (),
) -> None:
    """Bring the consolidated metadata above written documents up to date.

    Peer tools (zarr-python's ``consolidate_metadata``, ngff-zarr) keep a copy of every
    metadata document below a group in it (v2 ``.zmetadata``, v3 ``consolidated_metadata`` of
    ``zarr.json``), and readers that find one trust it alone. Every such copy above the keys of
    ``docs`` (``(key, bytes)`` just written) gets their new documents; entries at and below
    ``removed`` (a node path that was deleted or replaced) are dropped first. A copy this
    library cannot edit is removed, with a :class:`~ngio_async.meta.MetadataWarning` (readers
    then read the documents themselves). Call it after the documents are written (``locked``:
    the caller holds :func:`metadata_lock`). ``shared``: keys of ``docs`` that other processes
    edit too (a plate's, a well's, a labels listing): their copies take the document as stored
    when the copy is written (a copy written last must not bring back an older version).
    """
    import msgspec

    from ..meta import MetadataWarning
    from ..meta._consolidated import (
        copy_entries,
        edit_consolidated,
        holders_of,
        missing_parents,
    )
    from ._run_all import _run_all

    wanted: dict[str, dict[str, Any]] = {}
    again: dict[str, dict[str, str]] = {}  # holder: {entry: the shared key it copies}
    # an array holds no copy: no .zmetadata is looked for in one (a GET per level, in vain)
    arrays = {k.rpartition("/")[0] for k, _ in docs if k.rsplit("/", 1)[-1] == ".zarray"}
    for key, data in docs:
        for holder, name in holders_of(key):
            if holder.endswith(".zmetadata") and holder.rpartition("/")[0] in arrays:
                continue
            wanted.setdefault(holder, {})[name] = data
            if key in shared:
                again.setdefault(holder, {})[name] = key
    if removed is not None:
        for holder, _ in holders_of(join(removed, "zarr.json")) + holders_of(
            join(removed, ".zgroup")
        ):
            wanted.setdefault(holder, {})
    if not wanted:
        return

    async def add_parents(
        doc: dict[str, Any], v3: bool, base: str, entries: dict[str, Any]
    ) -> None:
        """Add the groups between ``base`` and each entry that the copy lacks, read from the
        store; an entry below a group not stored yet is left out (the copy stays readable)."""
        names = ["zarr.json"] if v3 else [".zgroup", ".zattrs"]
        for entry in list(entries):
            for parent in missing_parents(doc, v3, entry):
                if (parent if v3 else f"{parent}/.zgroup") in entries:
                    continue
                found = {}
                for name in names:
                    raw = await _get_or_none(store, join(base, parent, name))
                    if raw is not None:
                        found[parent if v3 else f"{parent}/{name}"] = read_document(raw)
                if not found or (not v3 and f"{parent}/.zgroup" not in found):
                    del entries[entry]
                    break
                entries.update(found)

    async def add_below(
        current: dict[str, Any], v3: bool, base: str, entries: dict[str, Any]
    ) -> None:
        """A group new to the copy brings the metadata stored below it (read from a listing
        of its keys): nodes written before their parent group (a first label image before
        the ``labels`` group) are listed with it."""
        groups = [
            name if v3 else name.rpartition("/")[0]
            for name, doc in entries.items()
            if (
                doc.get("node_type") == "group"
                if v3 and isinstance(doc, dict)
                else name.rsplit("/", 1)[-1] in (".zgroup", ".zattrs")
            )
        ]
        new = sorted({g for g in groups if g and (g if v3 else f"{g}/.zgroup") not in current})
        if not new or not store.supports_listing:
            return
        for group in new:
            prefix = join(base, group)
            keys = [k for k in await store.list_prefix(prefix + "/") if _is_node_key(k)]
            for key in sorted(keys):
                rel = key[len(base) + 1 :] if base else key
                name = rel.rpartition("/")[0] if v3 else rel
                if key.endswith("/.zmetadata") or name in entries or (v3 and not name):
                    continue
                if v3 != key.endswith("zarr.json"):
                    continue
                raw = await _get_or_none(store, key)
                if raw is not None:
                    entries[name] = read_document(raw)

    async def update(holder: str) -> None:
        v3 = holder.rsplit("/", 1)[-1] == "zarr.json"
        base = holder.rpartition("/")[0]
        gone = None if removed is None or removed == base else removed
        if gone is not None and base:
            gone = gone[len(base) + 1 :] if gone.startswith(f"{base}/") else None
        failed: list[ValueError] = []
        read = False

        async def edited(raw: Buffer | None) -> bytes | None:
            nonlocal read
            read = True
            failed.clear()
            if raw is None:
                return None
            try:
                doc = read_document(raw)
            except msgspec.DecodeError:
                return None  # not ours to judge: whoever reads it reports it
            if not isinstance(doc, dict) or (v3 and doc.get("node_type") != "group"):
                return None
            entries = {n: read_document(d) for n, d in wanted[holder].items()}
            try:
                current = copy_entries(doc, v3)
                if current is None:
                    return None
                for name, key in again.get(holder, {}).items():
                    stored = await _get_or_none(store, key)  # another process's edit, maybe
                    if stored is not None:
                        entries[name] = read_document(stored)
                await add_parents(doc, v3, base, entries)
                await add_below(current, v3, base, entries)
                edit_consolidated(doc, v3, entries, gone)
                # in key order, as zarr-python writes it: its reader groups the entries of
                # one depth by parent assuming the siblings are adjacent (a field added to
                # well A/1 after well A/2 was listed left a copy zarr could not open)
                flat = copy_entries(doc, v3)
                if flat is not None:
                    ordered = sorted(flat.items())
                    flat.clear()
                    flat.update(ordered)
            except ValueError as exc:
                failed.append(exc)
                if not v3:
                    return None  # deleted below
                del doc["consolidated_metadata"]
            return write_document(doc)

        # a compare-and-swap: another process's edit of the holder (its NGFF attributes, or
        # its copy) is never overwritten with what was read before it
        try:
            await store.update(holder, edited)
        except PermissionDeniedError:
            if read:
                raise
            return  # a store answering 403 for a missing key
        if failed:
            warnings.warn(
                f"removed the consolidated metadata of {store.url.rstrip('/')}/{holder}: "
                f"{failed[0]}, so it could not be brought up to date (readers now read every "
                "document itself; zarr.consolidate_metadata writes it again)",
                MetadataWarning,
                stacklevel=2,
            )
            if not v3:
                await store.delete(holder)

    if locked:
        await _run_all(sorted(wanted), update, 16)
        return
    async with metadata_lock(store):  # in this process, one edit of a holder at a time
        await _run_all(sorted(wanted), update, 16)


async def _get_or_none(store: AsyncStore, key: str) -> Any:
    """``store.get(key)``; ``None`` also where a store answers 403 for a missing key."""
    try:
        return await store.get(key)
    except PermissionDeniedError:
        return None


async def write_plan_metadata(
    store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool, consolidate: bool = True
) -> None:
    """Refuse or clear an existing node, then write every array's metadata (concurrently) and
    the group documents last, in order: no NGFF metadata ever names a missing array. The
    consolidated metadata above ``root`` (if any) is updated last.

    A failure (or cancellation) before the group documents are all written removes the
    documents written so far (best effort), so that the same call can simply be retried. The
    claim, and everything from the group documents on, are shielded from cancellation: a put
    cancelled in flight may still land after that cleanup (obstore), leaving NGFF metadata
    without its arrays (or an unclaimed node a retry is refused)."""
    await claim_root(store, root, plan, overwrite=overwrite)
    await complete_root(store, root, plan, overwrite=overwrite, consolidate=consolidate)


async def claim_root(store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool) -> None:
    """The first half of :func:`write_plan_metadata`: refuse or clear an existing node, then
    (``overwrite=False``) claim the node. When it fails, nothing of this call is stored."""
    label = plan.ome.image_label is not None
    version = plan.version if label else None
    await _prepare_root(store, root, overwrite, paths=plan.paths, label=label, version=version)
    if not overwrite:  # claim the node: of two creates that both found it free, one is refused
        first = plan.array_documents()[0]
        with anyio.CancelScope(shield=True):  # a claim landing after a cancellation stays
            await _claim(store, root, (join(root, first[0]), first[1]))


async def complete_root(
    store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool, consolidate: bool = True
) -> None:
    """The second half of :func:`write_plan_metadata`, on a claimed (or cleared) node.
    ``consolidate=False``: the caller brings the consolidated metadata above up to date with
    these documents itself (a label image's, with its listing: once, not twice)."""
    arrays = [(join(root, k), d) for k, d in plan.array_documents()]
    groups = [(join(root, k), d) for k, d in plan.group_documents()]
    try:
        await _put_all(store, arrays if overwrite else arrays[1:], consolidate=False)
    except BaseException as exc:
        await discard_documents(store, root, [k for k, _ in groups + arrays], exc)
        raise
    # the rest runs to its end: cancelled mid-put, a put could land after the cleanup; and a
    # cancellation after the group documents would leave a complete node its caller (a label,
    # a field) does not know of, never listed
    with anyio.CancelScope(shield=True):
        try:
            for key, data in groups:
                await store.put(key, data)
        except BaseException as exc:
            await discard_documents(store, root, [k for k, _ in groups + arrays], exc)
            raise
        if consolidate:
            await update_consolidated(store, arrays + groups, removed=root if overwrite else None)


async def discard_documents(
    store: AsyncStore,
    root: str,
    keys: Sequence[str],
    exc: BaseException,
    *,
    consolidated: bool = False,
) -> None:
    """Delete the metadata ``keys`` (in order: the group's documents first) of a node whose
    creation failed with ``exc``, shielded from cancellation, then (``consolidated``: they may
    have reached them) drop the node from the consolidated copies above. When that fails too,
    ``exc`` gets a note saying what is left and how to replace it."""
    where = _url_of(store.url, root)
    with anyio.CancelScope(shield=True):
        try:
            for key in keys:
                await store.delete(key)
            if consolidated:
                await update_consolidated(store, [], removed=root)
        except Exception as cleanup:  # noqa: BLE001 - reported on exc
            exc.add_note(
                f"the metadata written so far at {where} could not be removed ({cleanup}); "
                "create it again with overwrite=True"
            )


async def _claim(
    store: AsyncStore, root: str, first: tuple[str, bytes], *, exists_ok: bool = False
) -> None:
    """Put the first level's array metadata only if absent (stores without conditional puts:
    plainly): two creates that both found no node (two dataset objects, two processes) would
    otherwise both write every document, the second silently replacing the first.
    ``exists_ok``: a document found there is fine (a plain group another writer made, which
    it may have given attributes since: never replaced)."""
    try:
        claimed = await store.put_if_absent(*first)
    except UnsupportedError:
        await store.put(*first)
        claimed = True
    except StoreError as exc:  # no answer (a timeout, a reset): the put may have landed
        if isinstance(exc, PermissionDeniedError) or not (
            await _holds(store, *first) or (exists_ok and await store.exists(first[0]))
        ):
            raise
        claimed = True  # it did: the node is this create's (a retry would be refused by it)
    if claimed or exists_ok:
        return
    where = _url_of(store.url, root)
    why = "was created meanwhile by another writer"
    if await _holds(store, *first):
        # obstore retries a conditional put whose answer was lost: the retry finds our own
        why = (
            "holds the very document this create claims it with, written meanwhile by "
            "another create of the same image or by this one (a request whose answer was "
            "lost and was sent again)"
        )
    raise ExistsError(
        f"{where} {why} ({first[0]}); pass overwrite=True to replace it",
        url=store.url,
        key=first[0],
        kind="node",
    )


async def _holds(store: AsyncStore, key: str, data: bytes) -> bool:
    """Whether ``key`` holds exactly ``data`` (``False`` also when it cannot be read)."""
    try:
        stored = await _get_or_none(store, key)
    except StoreError:
        return False
    return stored is not None and bytes(stored) == data


async def create_in(
    store: AsyncStore,
    root: str,
    plan: ImagePlan,
    *,
    overwrite: bool = False,
    limits: Limits | None = None,
    owns_store: bool = False,
    consolidate: bool = True,
) -> Dataset:
    """Write ``plan``'s metadata at ``root`` of an open store; return the writable dataset
    (``consolidate``: see :func:`complete_root`)."""
    await write_plan_metadata(store, root, plan, overwrite=overwrite, consolidate=consolidate)
    return Dataset.from_plan(
        store,
        root,
        plan.ome,
        list(plan.arrays),
        limits=limits,
        owns_store=owns_store,
        mode="r+",
        auto_windows=plan.auto_windows,
    )


def _open_target(
    url: str | os.PathLike[str] | AsyncStore | Any,
    limits: Limits | None,
    options: dict[str, Any],
    *,
    label: bool = False,
) -> tuple[AsyncStore, bool]:
    if isinstance(url, AsyncStore):
        if options:
            raise ValueError("store options need a URL, not an AsyncStore")
        return url, False
    local = isinstance(url, os.PathLike) or (
        isinstance(url, str) and ("://" not in url or url.startswith("file://"))
    )
    if local:
        directory = _local_directory(url)
        if directory is not None:  # before mkdir makes a directory inside the array
            refuse_array_above(directory, directory, label=label)
        options.setdefault("mkdir", True)
    return open_store(url, limits=limits, **options), True


def create_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
    *,
    shape: Sequence[int],
    dtype: DTypeLike,
    axes: str | Sequence[str] | None = None,
    scale: float | Sequence[float] | Mapping[str, float] | None = None,
    units: str | Sequence[str | None] | Mapping[str, str] | None = "micrometer",
    translation: Sequence[float] | Mapping[str, float] | None = None,
    chunks: Sequence[int] | None = None,
    shards: Sequence[int] | Literal[False] | None = None,
    compressor: Compressor = "zstd",
    levels: int | None = None,
    downscale: int = 2,
    channels: Sequence[ChannelSpec | Channel] | None = None,
    ngff_version: Literal["0.5", "0.4"] = "0.5",
    name: str | None = None,
    fill_value: Any = None,
    overwrite: bool = False,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    **store_options: Any,
) -> _Opening[Dataset]:
    """Create an empty OME-Zarr image; ``ds = await create_async(...)`` or ``async with``.

    The dataset returned is writable (``mode="r+"``); every pixel reads as ``fill_value`` until
    written (:meth:`Dataset.write`, :meth:`Dataset.write_at`, :meth:`Dataset.writer`).

    :param url: where the image goes (path, ``file://``, ``memory://``, ``s3://``, ...; a local
        directory is created), or an :class:`~ngio_async.stores.AsyncStore`.
    :param shape: level-0 shape (integers >= 0; a 0 extent stays 0 on every level); ``axes``
        names its axes (default by rank: ``yx``, ``zyx`` (``cyx`` when ``channels`` is given),
        ``czyx``, ``tczyx``).
    :param scale: level-0 pixel size: a number (every space axis), one value per axis, or a
        mapping axis -> value (other axes 1); default 1. Finite and > 0 (Python or numpy
        numbers). Lower levels multiply y/x by ``downscale**i``.
    :param units: one unit for the space axes (the time axis ``t`` gets ``second``), one per
        axis, or a mapping axis -> unit (the axes it does not name keep the defaults:
        ``micrometer`` for z/y/x, ``second`` for t; c has none); ``None``: no units.
    :param translation: per axis (or mapping) translation of every level, finite; default none.
    :param chunks: chunk shape (integers >= 1); default ~1 MiB, square in y/x and 1 along the
        other axes; a plane smaller than that is stacked along z, then t, up to ~1 MiB (unless
        ``shards`` are given).
    :param shards: shard shape (0.5 only); default up to 8x8 chunks in y/x for 0.5 (capped by
        the shape), ``False`` for no sharding. 0.4 is never sharded.
    :param compressor: ``"zstd"``, ``"blosc-zstd"``, ``"gzip"``, or ``None`` / ``"none"`` /
        ``False`` for none.
    :param levels: pyramid levels; default: until the largest of y/x is at most 256.
    :param downscale: factor between levels along y and x (t, c, z are not downscaled).
    :param channels: one per channel: a label, or a dict with ``label``, ``color`` (``RRGGBB``),
        ``window`` (``(start, end)`` or ``{min, max, start, end}``), ``active``. Channels
        given no ``color`` are blue, green, red, magenta, cyan, yellow, white in turn; a single
        channel is white (grey in viewers). A channel given no ``window`` gets ``min``/``max`` of the data type's range and ``start``/``end``
        from the data: derived from the lowest level whenever the pyramid is built
        (``build_pyramid``, level 0 written with ``pyramid=True``) through this dataset
        object, until ``set_channels`` sets its window (until then, the whole range).
    :param ngff_version: ``"0.5"`` (zarr v3) or ``"0.4"`` (zarr v2).
    :param overwrite: replace an existing node at ``url`` (deletes its keys first: the store
        must list them); otherwise an existing node raises :class:`~ngio_async.ExistsError` and
        nothing is changed. Never replaced, whatever ``overwrite``: a level of an image (its
        group's multiscales would name a group), a well of a plate, and a label image its
        image's ``labels`` group lists, unless the new image is a label image too
        (``create_like`` of one; else ``labels.create(name, overwrite=True)`` on the image).
        A whole image (a plate's field too) is replaced.
    :param path: the image's path inside the store; no parent of it may be a zarr array.
    :param fill_value: the value of unwritten pixels; must be a value of ``dtype``.
    :param name: the multiscale's ``name``; default: the image directory's name without
        ``.ome.zarr`` / ``.zarr`` (else ``"image"``). ``type`` and ``metadata`` say how lower
        levels are computed (``"mean"``, ``ngio_async.Dataset.build_pyramid``).
    :raises ExistsError: a zarr node exists there and ``overwrite`` is false, or a parent of
        ``path`` is a zarr array, or a group above lists the place as a level, a well or a
        label image (``kind="parent"``; nothing is deleted).
    :raises ValueError: an argument breaks a rule (non-finite or non-positive scale, unknown
        axis name, ...); ``TypeError``: an argument of the wrong type. Both before any I/O.
    """
    refuse_misspelled(store_options, "create")
    path = store_path(path)
    plan = plan_image(
        shape=shape,
        dtype=dtype,
        axes=axes,
        scale=scale,
        units=units,
        translation=translation,
        chunks=chunks,
        shards=shards,
        compressor=compressor,
        levels=levels,
        downscale=downscale,
        channels=channels,
        ngff_version=ngff_version,
        name=default_name(url, path) if name is None else name,
        fill_value=fill_value,
    )

    return _create_planned(
        url, plan, overwrite=overwrite, limits=limits, path=path, store_options=store_options
    )


#: the arguments of create_async that plan_image takes
_PLAN_KEYS = frozenset(
    (
        "shape", "dtype", "axes", "scale", "units", "translation", "chunks", "shards",
        "compressor", "levels", "downscale", "channels", "ngff_version", "name", "fill_value",
    )
)  # fmt: skip


#: every create_async argument (the others are store options)
_CREATE_KEYS = _PLAN_KEYS | {"overwrite", "limits", "path"}


def refuse_misspelled(options: Mapping[str, Any], caller: str) -> None:
    """Refuse a store option that looks like a misspelled create argument (``chunk=`` for
    ``chunks=``): the store refused it as an unknown store option, or took it silently."""
    import difflib

    for key in options:
        close = difflib.get_close_matches(key, sorted(_CREATE_KEYS), n=1, cutoff=0.8)
        if close:
            raise TypeError(
                f"{caller}() got an unexpected keyword argument {key!r}; did you mean {close[0]!r}?"
            )


def overwrite_flag(value: Any) -> bool:
    """``overwrite=`` as a bool: True, False (numpy's too) or None (False). Anything else is
    refused: taken for its truth, ``overwrite="no"`` deleted the image it meant to keep."""
    if value is None:
        return False
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"overwrite must be True or False, got {value!r}")


def _create_planned(
    url: str | os.PathLike[str] | AsyncStore | Any,
    plan: ImagePlan,
    *,
    overwrite: bool,
    limits: Limits | None,
    path: str,
    store_options: dict[str, Any],
    consolidate: bool = True,
) -> _Opening[Dataset]:
    """The I/O half of :func:`create_async`: write ``plan`` at ``url`` (``consolidate``: see
    :func:`complete_root`)."""
    overwrite = overwrite_flag(overwrite)

    async def go() -> Dataset:
        label = plan.ome.image_label is not None
        store, owns = _open_target(url, limits, dict(store_options), label=label)
        return await closing_store_on_error(
            store,
            owns,
            create_in(
                store,
                path.strip("/"),
                plan,
                overwrite=overwrite,
                limits=limits,
                owns_store=owns,
                consolidate=consolidate,
            ),
        )

    return _Opening(go)


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
    shapes = [lvl.shape for lvl in src.levels]
    factor = options.get("downscale", 2)
    if any(s != _level_shape(shapes[0], names, factor**i) for i, s in enumerate(shapes)):
        options["level_shapes"] = shapes  # e.g. floor(n / 2) (ome-zarr-py), not ceil
    if len(src.levels) > 1:
        yx = _yx(names)
        ratios = {round(src.levels[0].shape[i] / max(1, src.levels[1].shape[i])) for i in yx}
        options["downscale"] = max(1, min(ratios))
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
    if any(k in overrides for k in ("axes", "levels", "downscale", "translation", "scale")):
        options.pop("level_translations", None)  # they no longer fit: one translation applies
    if any(k in overrides for k in ("axes", "levels", "downscale", "shape")):
        options.pop("level_shapes", None)  # every level from the new shape, as create does
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
    levels, channels, NGFF version, fill value, compressor); any :func:`create_async` argument
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
    options = like_options(src, overrides)
    level_translations = options.pop("level_translations", None)
    level_shapes = options.pop("level_shapes", None)
    image_label = src.metadata.ome.image_label
    if image_label is not None and data_type(options["dtype"]).kind not in "iu":
        image_label = None  # labels are integers: a float copy is an image
    elif image_label is not None:
        image_label = _values_within(image_label, data_type(options["dtype"]))
    if level_translations is None and level_shapes is None and image_label is None:
        return create_async(url, **options)
    store_keys = ("overwrite", "limits", "path")
    plan_options = {k: v for k, v in options.items() if k in _PLAN_KEYS}
    rest = {k: v for k, v in options.items() if k not in _PLAN_KEYS}
    path = store_path(rest.get("path", ""))
    if plan_options.get("name") is None:
        plan_options["name"] = default_name(url, path)
    plan = plan_image(
        **plan_options, level_translations=level_translations, level_shapes=level_shapes
    )
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


def _as_label(plan: ImagePlan, image_label: ImageLabel) -> ImagePlan:
    """``plan`` as a label image: with ``image_label`` and pyramids by ``mode``."""
    from dataclasses import replace as replace_plan

    from msgspec.structs import replace

    assert plan.ome.multiscales is not None
    ms = replace(plan.ome.multiscales[0], **downsampling("mode"))
    ome = replace(plan.ome, multiscales=[ms], image_label=image_label)
    return replace_plan(plan, ome=validate(to_attrs(ome, plan.version)))
