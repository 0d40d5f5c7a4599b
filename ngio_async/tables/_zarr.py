"""The zarr arrays of a table, through the project's zarr layer (:mod:`ngio_async.meta.zarr`
documents, :mod:`ngio_async.codecs` chunk pipelines); pure: documents and chunk bytes in,
numpy arrays out, and back.

What is table-specific: the limits of a table array (1-D or 2-D, at most 2**28 values and 2**20
stored objects: a hostile document cannot make a read exhaust memory), and the layout written,
that of anndata for ngio 1.1.3: one chunk per array, v2 blosc-lz4, v3 one shard of zstd level 0;
strings as zarr-python writes them (v2 ``|O`` with the ``vlen-utf8`` filter, v3 ``string``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import CodecError, MetadataError, UnsupportedError
from ..codecs import ChunkCodec, ShardCodec
from ..meta.zarr import (
    ArrayV2Meta,
    ArrayV3Meta,
    BytesCodec,
    BytesConfig,
    DefaultKeyEncoding,
    RegularChunkGrid,
    RegularGridConfig,
    ShardingCodec,
    ShardingConfig,
    VLenUtf8Codec,
    ZstdCodec,
    ZstdConfig,
    decode_array,
    decode_array_v2,
    decode_array_v3,
    encode_array_v2,
    encode_array_v3,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from ..meta.zarr import ArrayMeta

__all__ = ["TableArray", "encode_table_array", "parse_table_array"]


@dataclass(frozen=True)
class TableArray:
    """One table array: its metadata and chunk (or shard) pipeline."""

    path: str  # the array's path in the store, for errors
    meta: ArrayMeta
    codec: ChunkCodec | ShardCodec

    def chunk_keys(self) -> list[str]:
        """The keys (relative to the array) of its stored objects, in C order of the grid."""
        return [
            self.meta.chunk_key(c) for c in itertools.product(*map(range, self.meta.grid_shape))
        ]

    def assemble(self, chunks: Mapping[str, Any]) -> NDArray[Any]:
        """The whole array from its stored objects' bytes (a missing one: the fill value)."""
        meta = self.meta
        dtype = meta.dtype.newbyteorder("=")
        size = meta.stored_chunks
        keys = self.chunk_keys()
        if len(keys) == 1 and size == meta.shape and keys[0] in chunks:  # anndata's layout
            return np.array(self._decode(chunks[keys[0]], keys[0]), dtype=dtype)
        out = np.full(meta.shape, meta.fill_value, dtype=dtype)
        for key, coords in zip(keys, itertools.product(*map(range, meta.grid_shape)), strict=True):
            buf = chunks.get(key)
            if buf is None:
                continue
            sel = tuple(
                slice(i * c, min((i + 1) * c, s))
                for i, c, s in zip(coords, size, meta.shape, strict=True)
            )
            block = self._decode(buf, key)
            out[sel] = block[tuple(slice(0, s.stop - s.start) for s in sel)]
        return out

    def _decode(self, buf: Any, key: str) -> NDArray[Any]:
        where = f"{self.path}/{key}"
        try:
            return self.codec.decode(buf, where)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"cannot decode chunk {where!r}: {exc}", key=where) from exc


def _check_size(meta: ArrayMeta, path: str) -> None:
    where = f"{path}/{'zarr.json' if meta.zarr_format == 3 else '.zarray'}$.shape"
    if not 1 <= meta.ndim <= 2:
        raise MetadataError(f"table array {path} has shape {meta.shape} (1-D or 2-D)", where)
    n, grid = math.prod(meta.shape), math.prod(meta.grid_shape)
    if n > 1 << 28 or grid > 1 << 20 or math.prod(meta.stored_chunks) > 1 << 28:
        raise MetadataError(
            f"table array {path} of shape {meta.shape} in chunks {meta.stored_chunks} is too "
            "large for a table",
            where,
        )


def parse_table_array(doc: dict[str, Any], path: str) -> TableArray:
    """The table array ``path`` of its metadata document (``.zarray`` or ``zarr.json``).

    :raises UnsupportedError: a data type or codec this library does not read (``path`` named).
    :raises MetadataError: a malformed document, or one whose array no table holds (more than
        2**28 values or 2**20 stored objects: reading it would exhaust memory).
    """
    name = "zarr.json" if doc.get("zarr_format") == 3 else ".zarray"
    try:
        meta = decode_array(doc)
        _check_size(meta, path)
        # every chunk kept, also one all fill: anndata writes them so
        codec = ChunkCodec.from_meta(meta, write_empty_chunks=True)
    except MetadataError as exc:
        if exc.rule.startswith("table array"):
            raise
        raise MetadataError(f"table array {path}: {exc.rule}", f"{path}/{name}{exc.path}") from None
    except UnsupportedError as exc:
        raise UnsupportedError(f"table array {path}: {exc}") from None
    return TableArray(path, meta, codec)


# ---------------------------------------------------------------------------------- writing
_BLOSC_V2 = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
_ZSTD_V3 = ZstdCodec(ZstdConfig(level=0, checksum=False))


def _fill(dtype: np.dtype[Any]) -> Any:
    if dtype == object:
        return ""
    if dtype.kind == "b":
        return False
    return 0.0 if dtype.kind == "f" else 0


def _meta_v2(shape: list[int], chunks: list[int], dtype: np.dtype[Any]) -> ArrayV2Meta:
    strings = dtype == object
    meta = ArrayV2Meta(
        zarr_format=2,
        shape=tuple(shape),
        chunks=tuple(chunks),
        dtype_json="|O" if strings else dtype.str,
        compressor=dict(_BLOSC_V2),
        fill_value_json=_fill(dtype),
        order="C",
        filters=({"id": "vlen-utf8"},) if strings else None,
        dimension_separator=".",
    )
    return decode_array_v2(encode_array_v2(meta))


def _meta_v3(
    shape: list[int], chunks: list[int], dtype: np.dtype[Any], attrs: Mapping[str, Any]
) -> ArrayV3Meta:
    strings = dtype == object
    first = VLenUtf8Codec() if strings else BytesCodec(BytesConfig("little"))
    meta = ArrayV3Meta(
        zarr_format=3,
        node_type="array",
        shape=tuple(shape),
        data_type="string" if strings else dtype.name,
        chunk_grid=RegularChunkGrid(RegularGridConfig(tuple(chunks))),
        chunk_key_encoding=DefaultKeyEncoding(),
        fill_value_json=_fill(dtype),
        codecs=(ShardingCodec(ShardingConfig(tuple(chunks), codecs=(first, _ZSTD_V3))),),
        attributes=dict(attrs),
    )
    return decode_array_v3(encode_array_v3(meta))


def encode_table_array(
    values: NDArray[Any], attrs: Mapping[str, Any], *, v3: bool
) -> tuple[bytes, dict[str, bytes]]:
    """The metadata document (v3: with attributes ``attrs``) and chunks (keys relative to
    the array) of ``values`` as one chunk (v3: one shard of one chunk); an empty array has
    no chunk. Numbers are stored little-endian; strings (``object``, ``U``) as ``vlen-utf8``."""
    values = np.asarray(values)
    dtype = np.dtype(object) if values.dtype.kind in "OUT" else values.dtype.newbyteorder("<")
    shape = [int(s) for s in values.shape]
    chunks = [max(1, s) for s in shape]
    meta: ArrayMeta = (
        _meta_v3(shape, chunks, dtype, attrs) if v3 else _meta_v2(shape, chunks, dtype)
    )
    doc = encode_array_v3(meta) if isinstance(meta, ArrayV3Meta) else encode_array_v2(meta)
    if math.prod(shape) == 0:
        return doc, {}
    key = meta.chunk_key((0,) * len(shape))
    codec = ChunkCodec.from_meta(meta, write_empty_chunks=True)
    return doc, {key: codec.encode(values.astype(dtype, copy=False), key)}
