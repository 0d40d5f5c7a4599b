"""Zarr v3 documents (``zarr.json`` of arrays and groups) decoded, validated and encoded: data
types, chunk grid, key encoding, codecs, extension keys and fill values checked."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from ngio_async._errors import MetadataError, UnsupportedError
from ngio_async.meta._base import write_document

from ._zarr_codecs import _check_codec_chain, _check_raw_codecs, _check_serializer
from ._zarr_dtypes import V3_DATA_TYPES, V3_STRING, _v3_dtype, _v3_name
from ._zarr_fill import _parse_fill
from ._zarr_json import _ENCODER, _from_validation, _load_object
from ._zarr_nodes import ArrayV3Meta, GroupV3Meta
from ._zarr_sizes import _check_chunk_bytes, _check_dims, _check_inner_chunks

_V3_ARRAY_KEYS: Final = frozenset(ArrayV3Meta.__struct_encode_fields__)


_V3_GROUP_KEYS: Final = frozenset(GroupV3Meta.__struct_encode_fields__)


def _check_extra_keys(doc: dict[str, Any], known: frozenset[str]) -> None:
    for k, v in doc.items():
        if k in known:
            continue
        if isinstance(v, dict) and v.get("must_understand") is False:
            continue
        raise MetadataError(
            f"unknown key {k!r}: zarr v3 extensions need an object with `must_understand: false`",
            f"$.{k}",
        )


def _check_raw_v3(doc: dict[str, Any]) -> None:
    dt = doc.get("data_type")
    if isinstance(dt, dict):
        raise UnsupportedError(
            f"v3 extension data type {dt.get('name')!r} is not supported (at $.data_type)"
        )
    if isinstance(dt, str) and dt not in V3_DATA_TYPES and dt != V3_STRING:
        hint = f"; did you mean {_v3_name(dt)!r}?" if _v3_name(dt) else ""
        raise UnsupportedError(
            f"v3 data type {dt!r} is not supported (at $.data_type; one of "
            f"{', '.join(sorted(V3_DATA_TYPES | {V3_STRING}))}{hint})"
        )
    grid = doc.get("chunk_grid")
    if isinstance(grid, dict) and isinstance(grid.get("name"), str) and grid["name"] != "regular":
        raise UnsupportedError(
            f"chunk grid {grid['name']!r} is not supported (at $.chunk_grid.name)"
        )
    enc = doc.get("chunk_key_encoding")
    if isinstance(enc, dict):
        name = enc.get("name")
        if isinstance(name, str) and name not in ("default", "v2"):
            raise UnsupportedError(
                f"chunk key encoding {name!r} is not supported (at $.chunk_key_encoding.name)"
            )
    _check_raw_codecs(doc.get("codecs"), "$.codecs")
    st = doc.get("storage_transformers")
    if isinstance(st, list) and st:
        raise UnsupportedError("storage transformers are not supported")


def _validate_v3(meta: ArrayV3Meta) -> ArrayV3Meta:
    outer = meta.chunk_grid.configuration.chunk_shape
    _check_dims(meta.shape, outer, "$.chunk_grid.configuration.chunk_shape")
    if meta.dimension_names is not None and len(meta.dimension_names) != len(meta.shape):
        raise MetadataError(
            f"{len(meta.dimension_names)} dimension names for {len(meta.shape)} dimensions",
            "$.dimension_names",
        )
    _check_codec_chain(meta.codecs, len(meta.shape), "$.codecs", None)
    sh = meta.sharding
    if sh is not None:
        inner = sh.configuration.chunk_shape
        for i, (o, c) in enumerate(zip(outer, inner, strict=True)):
            if c <= 0 or o % c:
                raise MetadataError(
                    f"inner chunk size {c} does not divide the shard size {o}",
                    f"$.codecs[0].configuration.chunk_shape[{i}]",
                )
        _check_inner_chunks(outer, inner, "$.chunk_grid.configuration.chunk_shape")
    dtype = _v3_dtype(meta.data_type)
    _check_serializer(meta.codecs, dtype == object, "$.codecs")
    _check_chunk_bytes(meta.chunks, dtype.itemsize, "$.chunk_grid.configuration.chunk_shape")
    meta.__dict__["dtype"] = dtype
    meta.__dict__["fill_value"] = _parse_fill(meta.fill_value_json, dtype, "$.fill_value", v3=True)
    return meta


def _array_v3_from_doc(doc: dict[str, Any]) -> ArrayV3Meta:
    _check_extra_keys(doc, _V3_ARRAY_KEYS)
    _check_raw_v3(doc)
    try:
        meta = msgspec.convert(doc, ArrayV3Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v3(meta)


def _group_v3_from_doc(doc: dict[str, Any]) -> GroupV3Meta:
    _check_extra_keys(doc, _V3_GROUP_KEYS)
    try:
        return msgspec.convert(doc, GroupV3Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc


def decode_array_v3(raw: bytes | str) -> ArrayV3Meta:
    """Decode a v3 array ``zarr.json``.

    :raises MetadataError: invalid document (``.path`` names the field).
    :raises UnsupportedError: unknown codec, data type, chunk grid or storage transformer.
    """
    return _array_v3_from_doc(_load_object(raw, "zarr.json"))


def decode_group_v3(raw: bytes | str) -> GroupV3Meta:
    """Decode a v3 group ``zarr.json``."""
    return _group_v3_from_doc(_load_object(raw, "zarr.json"))


def decode_node_v3(raw: bytes | str) -> ArrayV3Meta | GroupV3Meta:
    """Decode a v3 ``zarr.json`` of either node type (dispatch on ``node_type``)."""
    doc = _load_object(raw, "zarr.json")
    node_type = doc.get("node_type")
    if node_type == "array":
        return _array_v3_from_doc(doc)
    if node_type == "group":
        return _group_v3_from_doc(doc)
    if "node_type" not in doc:
        raise MetadataError("Object missing required field `node_type`", "$")
    raise MetadataError(f"node_type must be 'array' or 'group', got {node_type!r}", "$.node_type")


def encode_array_v3(meta: ArrayV3Meta) -> bytes:
    """Encode an array ``zarr.json`` (``dimension_names`` omitted when ``None``).

    Extension keys that were skipped on decode (``must_understand: false``) are not written back.
    """
    doc = msgspec.to_builtins(meta)
    if doc.get("dimension_names") is None:
        doc.pop("dimension_names", None)
    return _ENCODER.encode(doc)


def encode_group_v3(meta: GroupV3Meta | None = None) -> bytes:
    """Encode a group ``zarr.json`` (``consolidated_metadata`` omitted when ``None``)."""
    doc = msgspec.to_builtins(meta or GroupV3Meta(zarr_format=3, node_type="group"))
    if doc.get("consolidated_metadata") is None:
        doc.pop("consolidated_metadata", None)
    return write_document(doc)  # a NaN attribute carried stays NaN
