"""The zarr array metadata of a new image's levels, as zarr-python writes it: the compressor's
codecs (zarr v3) or compressor (zarr v2), the fill value's JSON, and the array documents."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import UnsupportedError
from ..meta.zarr import (
    V3_DATA_TYPES,
    ArrayV2Meta,
    ArrayV3Meta,
    BloscCodec,
    BloscConfig,
    BytesCodec,
    BytesConfig,
    DefaultKeyEncoding,
    GzipCodec,
    GzipConfig,
    RegularChunkGrid,
    RegularGridConfig,
    ShardingCodec,
    ShardingConfig,
    ZstdCodec,
    ZstdConfig,
    decode_array_v2,
    decode_array_v3,
    encode_array_v2,
    encode_array_v3,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..meta.zarr import Codec


Compressor = Literal["zstd", "blosc-zstd", "gzip", "none", False] | None
"""``None``, ``False`` and ``"none"`` all mean uncompressed (convert's ``None`` keeps the source's)."""


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
