"""Zarr v2 documents (``.zarray``, ``.zgroup``) decoded, validated and encoded: dtypes, vlen
filters, numcodecs codecs and fill values checked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import msgspec

from ngio_async._errors import MetadataError, UnsupportedError
from ngio_async.meta._base import decode_json

from ._zarr_dtypes import _V2_VLEN, _v2_dtype
from ._zarr_fill import _parse_fill
from ._zarr_json import _ENCODER, _from_validation
from ._zarr_nodes import ArrayV2Meta, GroupV2Meta
from ._zarr_sizes import _check_chunk_bytes, _check_dims

if TYPE_CHECKING:
    import numpy as np


def _check_v2_codec(cfg: dict[str, Any], path: str) -> None:
    codec_id = cfg.get("id")
    if not isinstance(codec_id, str):
        raise MetadataError("a codec needs a string `id`", f"{path}.id")
    import numcodecs  # local: only v2 metadata needs the registry

    try:
        numcodecs.get_codec(dict(cfg))
    except ValueError as exc:
        if "not available" in str(exc) or "codec not available" in str(exc):
            raise UnsupportedError(f"v2 codec {codec_id!r} is not supported (at {path})") from exc
        raise MetadataError(f"invalid {codec_id} configuration: {exc}", path) from exc
    except (TypeError, KeyError) as exc:
        raise MetadataError(f"invalid {codec_id} configuration: {exc}", path) from exc


def _check_v2_vlen(meta: ArrayV2Meta, dtype: np.dtype[Any]) -> None:
    """A ``|O`` array needs one ``vlen-utf8`` (or ``vlen-bytes``) filter, the first: it turns
    the items into bytes, which the filters after it and the compressor then encode."""
    ids = [f.get("id") for f in meta.filters or ()]
    at = [i for i, cid in enumerate(ids) if cid in _V2_VLEN]
    if dtype.kind != "O":
        if at:
            raise MetadataError(
                f"filter {ids[at[0]]!r} needs the |O dtype, not {meta.dtype_json!r}",
                f"$.filters[{at[0]}]",
            )
        return
    if not at:
        raise UnsupportedError(
            f"v2 dtype {meta.dtype_json!r} needs a vlen-utf8 or vlen-bytes filter (at $.filters; "
            "other object arrays are not supported)"
        )
    if at != [0]:
        raise UnsupportedError(
            f"the {ids[at[-1]]!r} filter must be the only vlen filter and come first "
            f"(at $.filters[{at[-1]}])"
        )


def _validate_v2(meta: ArrayV2Meta) -> ArrayV2Meta:
    _check_dims(meta.shape, meta.chunks, "$.chunks")
    dtype = _v2_dtype(meta.dtype_json)
    _check_v2_vlen(meta, dtype)
    _check_chunk_bytes(meta.chunks, dtype.itemsize, "$.chunks")
    if meta.compressor is not None:
        _check_v2_codec(meta.compressor, "$.compressor")
    for i, f in enumerate(meta.filters or ()):
        _check_v2_codec(f, f"$.filters[{i}]")
    meta.__dict__["dtype"] = dtype
    meta.__dict__["fill_value"] = _parse_fill(
        meta.fill_value_json, dtype, "$.fill_value", v3=False, items=meta.items
    )
    return meta


_V2_ARRAY_DECODER: Final = msgspec.json.Decoder(ArrayV2Meta)


_V2_GROUP_DECODER: Final = msgspec.json.Decoder(GroupV2Meta)


def decode_array_v2(raw: bytes | str) -> ArrayV2Meta:
    """Decode a v2 ``.zarray`` document.

    :raises MetadataError: invalid document (``.path`` names the field).
    :raises UnsupportedError: a dtype or numcodecs codec this library cannot read.
    """
    try:
        meta = decode_json(_V2_ARRAY_DECODER.decode, raw, ".zarray is not valid JSON")
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v2(meta)


def decode_group_v2(raw: bytes | str) -> GroupV2Meta:
    """Decode a v2 ``.zgroup`` document."""
    try:
        return decode_json(_V2_GROUP_DECODER.decode, raw, ".zgroup is not valid JSON")
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc


def encode_array_v2(meta: ArrayV2Meta) -> bytes:
    """Encode a ``.zarray`` document (zarr-python reads it back)."""
    return _ENCODER.encode(meta)


def encode_group_v2(meta: GroupV2Meta | None = None) -> bytes:
    """Encode a ``.zgroup`` document."""
    return _ENCODER.encode(meta or GroupV2Meta(zarr_format=2))
