"""Zarr array and group metadata (v2 ``.zarray``/``.zgroup``, v3 ``zarr.json``) as msgspec Structs.

Pure: no I/O, no zarr-python. The Structs mirror the wire format (so encoding gives JSON that
zarr-python accepts); both array Structs also expose one normalised view used by the codecs and the
planner:

``shape``, ``ndim``, ``dtype`` (numpy), ``chunks`` (the chunk a reader decodes: the *inner* chunk of a
sharded array), ``shards`` (outer shard shape or ``None``), ``stored_chunks`` (the shape of one stored
object: ``shards or chunks``), ``grid_shape`` (stored objects per dimension), ``fill_value`` (numpy
scalar), ``dimension_names`` and ``chunk_key(coords)`` (key of a stored object, relative to the
array).

Decoding never lets a bare ``KeyError``/``TypeError``/msgspec error escape: invalid metadata raises
:class:`~ngio_async._errors.MetadataError` whose ``.path`` is the JSON path (``$.codecs[1].name``);
a valid but unsupported feature (codec, data type, chunk grid, storage transformer) raises
:class:`~ngio_async._errors.UnsupportedError`.

The parts live in private modules, each of one concern: ``_zarr_nodes`` (the Structs of both
versions), ``_zarr_codecs`` (v3 codecs and the checks of a codec list), ``_zarr_dtypes``,
``_zarr_fill`` (fill values), ``_zarr_sizes``, ``_zarr_json`` (validation errors as
``MetadataError``), ``_zarr_v2`` and ``_zarr_v3`` (each version's decoding, validation and
encoding) and ``_zarr_stages`` (``codec_stages``); this module gathers the public names.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._zarr_codecs import (
    NUMCODECS_KINDS,
    BloscCodec,
    BloscConfig,
    BytesCodec,
    BytesConfig,
    Codec,
    Crc32cCodec,
    GzipCodec,
    GzipConfig,
    NumcodecsCodec,
    ShardingCodec,
    ShardingConfig,
    TransposeCodec,
    TransposeConfig,
    VLenUtf8Codec,
    ZstdCodec,
    ZstdConfig,
)
from ._zarr_dtypes import V3_DATA_TYPES, V3_STRING
from ._zarr_json import _from_validation
from ._zarr_nodes import (
    ArrayMeta,
    ArrayV2Meta,
    ArrayV3Meta,
    DefaultKeyEncoding,
    GroupV2Meta,
    GroupV3Meta,
    KeyEncodingConfig,
    RegularChunkGrid,
    RegularGridConfig,
    V2KeyEncoding,
)
from ._zarr_stages import CodecStages, codec_stages
from ._zarr_v2 import (
    _validate_v2,
    decode_array_v2,
    decode_group_v2,
    encode_array_v2,
    encode_group_v2,
)
from ._zarr_v3 import (
    _array_v3_from_doc,
    decode_array_v3,
    decode_group_v3,
    decode_node_v3,
    encode_array_v3,
    encode_group_v3,
)

__all__ = [
    "V3_DATA_TYPES",
    "V3_STRING",
    "ArrayMeta",
    "ArrayV2Meta",
    "ArrayV3Meta",
    "BloscCodec",
    "BloscConfig",
    "BytesCodec",
    "BytesConfig",
    "Codec",
    "CodecStages",
    "Crc32cCodec",
    "DefaultKeyEncoding",
    "GroupV2Meta",
    "GroupV3Meta",
    "GzipCodec",
    "GzipConfig",
    "NUMCODECS_KINDS",
    "NumcodecsCodec",
    "KeyEncodingConfig",
    "RegularChunkGrid",
    "RegularGridConfig",
    "ShardingCodec",
    "ShardingConfig",
    "TransposeCodec",
    "TransposeConfig",
    "V2KeyEncoding",
    "VLenUtf8Codec",
    "codec_stages",
    "decode_array",
    "ZstdCodec",
    "ZstdConfig",
    "decode_array_v2",
    "decode_array_v3",
    "decode_group_v2",
    "decode_group_v3",
    "decode_node_v3",
    "encode_array_v2",
    "encode_array_v3",
    "encode_group_v2",
    "encode_group_v3",
]


def decode_array(doc: dict[str, Any]) -> ArrayMeta:
    """An array document already parsed from JSON (a v3 ``zarr.json`` when its
    ``zarr_format`` is 3, else a v2 ``.zarray``), validated as :func:`decode_array_v2` and
    :func:`decode_array_v3` do (same errors)."""
    if doc.get("zarr_format") == 3:
        return _array_v3_from_doc(doc)
    try:
        meta = msgspec.convert(doc, ArrayV2Meta)
    except msgspec.ValidationError as exc:
        raise _from_validation(exc) from exc
    return _validate_v2(meta)
