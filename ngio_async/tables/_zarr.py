"""The zarr arrays of a table (pure: documents and chunk bytes in, numpy arrays out; and back).

Tables hold small 1-D and 2-D arrays: numbers, booleans and strings (zarr v2 ``|O`` with the
``vlen-utf8`` filter; v3 ``string`` with the ``vlen-utf8`` codec). This reads any chunking and
the compressors numcodecs runs (v2), or ``bytes``/``vlen-utf8`` then ``zstd``, ``gzip``,
``blosc``, ``crc32c``, optionally inside ``sharding_indexed`` (v3); it writes what anndata writes
for ngio 1.1.3: one chunk per array, v2 blosc-lz4 and v3 one shard of zstd level 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np

from .._errors import CodecError, MetadataError, UnsupportedError
from ..codecs._stages import Crc32cStage, NumcodecStage, blosc_stage
from ..codecs._strings import vlen_utf8_decode, vlen_utf8_encode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray

    from ..codecs._stages import BytesStage

__all__ = ["TableArray", "encode_table_array", "parse_table_array"]

_V3_TYPES = {
    "bool": "|b1",
    **{f"int{n}": f"<i{n // 8}" for n in (8, 16, 32, 64)},
    **{f"uint{n}": f"<u{n // 8}" for n in (8, 16, 32, 64)},
    **{f"float{n}": f"<f{n // 8}" for n in (16, 32, 64)},
}
_EMPTY = 2**64 - 1


@dataclass(frozen=True)
class _Pipeline:
    """Chunk bytes <-> values of one chunk shape: a serializer and bytes->bytes stages."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]  # object: vlen-utf8 strings
    stages: tuple[BytesStage, ...]
    filters: tuple[Any, ...] = ()  # v2 numcodecs filters (other than vlen-utf8)
    order: str = "C"

    def decode(self, buf: Any, key: str) -> NDArray[Any]:
        data = buf
        limit = self.max_bytes()  # decompression bombs: no stage may inflate past it
        for stage in reversed(self.stages):
            data = stage.decode(data, limit)
        for f in reversed(self.filters):
            data = f.decode(data)
        n = math.prod(self.shape)
        if self.dtype == object:
            arr = vlen_utf8_decode(data, n, key=key)
        else:
            arr = np.frombuffer(memoryview(data).cast("B"), dtype=self.dtype)
            if arr.size != n:
                raise CodecError(f"chunk {key!r} holds {arr.size} values, expected {n}", key=key)
        return arr.reshape(self.shape, order="F" if self.order == "F" else "C")

    def max_bytes(self) -> int:
        """The most bytes a decoded chunk may take (strings: 1 KiB each on average, or 64 MiB)."""
        n = math.prod(self.shape)
        if self.dtype == object:
            return max(64 << 20, 4 + 1028 * n)
        return n * self.dtype.itemsize + (1 << 16)

    def encode(self, values: NDArray[Any]) -> bytes:
        data: Any
        if self.dtype == object:
            data = vlen_utf8_encode(values)
        else:
            data = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1).view(np.uint8)
        for stage in self.stages:
            data = stage.encode(data)
        return bytes(memoryview(data))


@dataclass(frozen=True)
class _Shard:
    inner: tuple[int, ...]
    index_crc: bool
    at_end: bool


@dataclass(frozen=True)
class TableArray:
    """One table array's layout: where its chunks are and how they decode."""

    path: str  # the array's path in the store, for errors
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # the chunk (v3 sharded: shard) grid
    pipeline: _Pipeline  # of a chunk (sharded: of an inner chunk)
    fill: Any
    v3: bool
    separator: str
    shard: _Shard | None = None

    def chunk_keys(self) -> list[str]:
        """The chunk keys (relative to the array), in C order of the chunk grid."""
        grid = [range(-(-s // c)) for s, c in zip(self.shape, self.chunks, strict=True)]
        out = []
        for coords in itertools.product(*grid):
            if self.v3:
                out.append(self.separator.join(["c", *map(str, coords)]))
            else:
                out.append(self.separator.join(map(str, coords)) or "0")
        return out

    def assemble(self, chunks: Mapping[str, Any]) -> NDArray[Any]:
        """The whole array from its chunks' bytes (a missing chunk: the fill value)."""
        grid = [range(-(-s // c)) for s, c in zip(self.shape, self.chunks, strict=True)]
        dtype = self.pipeline.dtype
        out = np.full(self.shape, self.fill, dtype=dtype.newbyteorder("="))
        for key, coords in zip(self.chunk_keys(), itertools.product(*grid), strict=True):
            buf = chunks.get(key)
            if buf is None:
                continue
            where = f"{self.path}/{key}"
            try:
                block = self._decode_chunk(buf, where)
            except CodecError:
                raise
            except Exception as exc:
                raise CodecError(f"cannot decode chunk {where!r}: {exc}", key=where) from exc
            sel = tuple(
                slice(i * c, min((i + 1) * c, s))
                for i, c, s in zip(coords, self.chunks, self.shape, strict=True)
            )
            out[sel] = block[tuple(slice(0, s.stop - s.start) for s in sel)]
        return out

    def _decode_chunk(self, buf: Any, key: str) -> NDArray[Any]:
        if self.shard is None:
            return self.pipeline.decode(buf, key)
        sh = self.shard
        grid = [c // i for c, i in zip(self.chunks, sh.inner, strict=True)]
        n = math.prod(grid)
        size = 16 * n + (4 if sh.index_crc else 0)
        data = memoryview(buf).cast("B")
        if len(data) < size:
            raise CodecError(f"shard {key!r} is shorter than its index", key=key)
        raw = data[len(data) - size :] if sh.at_end else data[:size]
        if sh.index_crc:
            raw = memoryview(Crc32cStage().decode(raw)).cast("B")
        index = np.frombuffer(raw, dtype="<u8").reshape(n, 2)
        out = np.full(self.chunks, self.fill, dtype=self.pipeline.dtype)
        for j, coords in enumerate(itertools.product(*map(range, grid))):
            offset, nbytes = (int(v) for v in index[j])
            if offset == _EMPTY and nbytes == _EMPTY:
                continue
            if offset + nbytes > len(data):
                raise CodecError(f"shard {key!r}: inner chunk {j} is past its end", key=key)
            sel = tuple(slice(c * i, (c + 1) * i) for c, i in zip(coords, sh.inner, strict=True))
            out[sel] = self.pipeline.decode(data[offset : offset + nbytes], f"{key}[{j}]")
        return out


def _v2_stage(cfg: Mapping[str, Any], path: str) -> NumcodecStage:
    try:
        return NumcodecStage(numcodecs.get_codec(dict(cfg)))
    except (ValueError, TypeError, KeyError) as exc:
        raise UnsupportedError(f"codec {cfg.get('id')!r} is not supported (at {path})") from exc


def _parse_v2(doc: Mapping[str, Any], path: str) -> TableArray:
    dt = doc.get("dtype")
    filters = list(doc.get("filters") or ())
    strings = [f for f in filters if isinstance(f, dict) and f.get("id") == "vlen-utf8"]
    if dt == "|O":
        if not strings:
            raise UnsupportedError(f"object array {path} has no vlen-utf8 filter")
        dtype: np.dtype[Any] = np.dtype(object)
    else:
        try:
            dtype = np.dtype(dt)
        except TypeError as exc:
            raise MetadataError(f"unknown dtype {dt!r}", f"{path}/.zarray$.dtype") from exc
        if dtype.kind not in "biuf":
            raise UnsupportedError(f"dtype {dt!r} of {path} is not supported in a table")
    others = tuple(_v2_stage(f, f"{path} filters").codec for f in filters if f not in strings)
    stages = () if doc.get("compressor") is None else (_v2_stage(doc["compressor"], path),)
    chunks = tuple(int(c) for c in doc["chunks"])
    fill = doc.get("fill_value")
    return TableArray(
        path=path,
        shape=tuple(int(s) for s in doc["shape"]),
        chunks=chunks,
        pipeline=_Pipeline(chunks, dtype, stages, others, doc.get("order", "C")),
        fill=_fill(fill, dtype),
        v3=False,
        separator=doc.get("dimension_separator") or ".",
    )


def _v3_stages(
    codecs: list[Any], dtype: np.dtype[Any], path: str
) -> tuple[np.dtype[Any], tuple[BytesStage, ...]]:
    """The stored dtype (endianness) and the bytes->bytes stages of a codec list."""
    if not codecs:
        raise MetadataError("empty codec list", f"{path}$.codecs")
    first, rest = codecs[0], codecs[1:]
    name = first.get("name")
    cfg = first.get("configuration") or {}
    if dtype == object:
        if name != "vlen-utf8":
            raise UnsupportedError(f"string array {path} needs vlen-utf8, has codec {name!r}")
    elif name == "bytes":
        dtype = dtype.newbyteorder(">" if cfg.get("endian") == "big" else "<")
    else:
        raise UnsupportedError(f"codec {name!r} of {path} is not supported in a table")
    stages: list[BytesStage] = []
    for c in rest:
        name, cfg = c.get("name"), c.get("configuration") or {}
        if name == "zstd":
            stages.append(NumcodecStage(numcodecs.Zstd(level=int(cfg.get("level", 0)))))
        elif name == "gzip":
            stages.append(NumcodecStage(numcodecs.GZip(level=int(cfg.get("level", 5)))))
        elif name == "crc32c":
            stages.append(Crc32cStage())
        elif name == "blosc":
            stages.append(
                blosc_stage(
                    cname=cfg.get("cname", "zstd"),
                    clevel=int(cfg.get("clevel", 5)),
                    shuffle=cfg.get("shuffle", "noshuffle"),
                    typesize=int(cfg.get("typesize") or max(1, dtype.itemsize)),
                    blocksize=int(cfg.get("blocksize", 0)),
                )
            )
        else:
            raise UnsupportedError(f"codec {name!r} of {path} is not supported in a table")
    return dtype, tuple(stages)


def _parse_v3(doc: Mapping[str, Any], path: str) -> TableArray:
    dt = doc.get("data_type")
    if dt == "string":
        dtype: np.dtype[Any] = np.dtype(object)
    elif isinstance(dt, str) and dt in _V3_TYPES:
        dtype = np.dtype(_V3_TYPES[dt])
    else:
        raise UnsupportedError(f"data type {dt!r} of {path} is not supported in a table")
    grid = doc.get("chunk_grid") or {}
    chunks = tuple(int(c) for c in (grid.get("configuration") or {}).get("chunk_shape", ()))
    enc = doc.get("chunk_key_encoding") or {}
    sep = (enc.get("configuration") or {}).get("separator", "/")
    if enc.get("name") == "v2":
        raise UnsupportedError(f"v2 chunk key encoding of {path} is not supported in a table")
    codecs = list(doc.get("codecs") or ())
    shard = None
    if codecs and codecs[0].get("name") == "sharding_indexed":
        if len(codecs) > 1:
            raise UnsupportedError(f"codecs after sharding_indexed in {path} are not supported")
        cfg = codecs[0].get("configuration") or {}
        inner = tuple(int(c) for c in cfg["chunk_shape"])
        index_names = [c.get("name") for c in cfg.get("index_codecs") or ()]
        shard = _Shard(inner, "crc32c" in index_names, cfg.get("index_location", "end") == "end")
        stored, stages = _v3_stages(list(cfg.get("codecs") or ()), dtype, path)
        pipe = _Pipeline(inner, stored, stages)
    else:
        stored, stages = _v3_stages(codecs, dtype, path)
        pipe = _Pipeline(chunks, stored, stages)
    return TableArray(
        path=path,
        shape=tuple(int(s) for s in doc["shape"]),
        chunks=chunks,
        pipeline=pipe,
        fill=_fill(doc.get("fill_value"), dtype),
        v3=True,
        separator=sep,
        shard=shard,
    )


def _check_size(spec: TableArray) -> None:
    where = f"{spec.path} ($.shape)"
    if len(spec.shape) != len(spec.chunks) or not spec.shape or len(spec.shape) > 2:
        raise MetadataError(f"table array {spec.path} has shape {spec.shape}, chunks {spec.chunks}")
    if any(s < 0 for s in spec.shape) or any(c < 1 for c in spec.chunks):
        raise MetadataError(f"table array {spec.path}: negative size or empty chunks", where)
    inner = spec.shard.inner if spec.shard is not None else spec.chunks
    if len(inner) != len(spec.chunks) or any(
        i < 1 or c % i for c, i in zip(spec.chunks, inner, strict=True)
    ):
        raise MetadataError(
            f"table array {spec.path}: inner chunks {inner} do not tile {spec.chunks}"
        )
    grid = math.prod(-(-s // c) for s, c in zip(spec.shape, spec.chunks, strict=True))
    if math.prod(spec.shape) > 1 << 28 or grid > 1 << 20 or math.prod(spec.chunks) > 1 << 28:
        raise MetadataError(
            f"table array {spec.path} of shape {spec.shape} in chunks {spec.chunks} is too "
            "large for a table",
            where,
        )


def _fill(value: Any, dtype: np.dtype[Any]) -> Any:
    if dtype == object:
        return value if isinstance(value, str) else ""
    if value is None:
        return 0
    if isinstance(value, str):  # "NaN", "Infinity", "-Infinity"
        return float(value.replace("Infinity", "inf"))
    return value


def parse_table_array(doc: Mapping[str, Any], path: str) -> TableArray:
    """The layout of the table array ``path`` from its metadata document.

    :raises UnsupportedError: a data type or codec tables do not use (named, with ``path``).
    :raises MetadataError: a malformed document, or one whose array no table holds (more than
        2**28 values or 2**20 chunks: reading it would exhaust memory).
    """
    try:
        spec = _parse_v3(doc, path) if doc.get("zarr_format") == 3 else _parse_v2(doc, path)
        _check_size(spec)
        return spec
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, MetadataError | UnsupportedError):
            raise
        raise MetadataError(f"malformed array metadata of {path}: {exc!r}", path) from exc


# ---------------------------------------------------------------------------------- writing
_BLOSC_V2 = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}
_ZSTD_V3 = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}
_INDEX_V3 = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}]


def _v2_dtype(dtype: np.dtype[Any]) -> str:
    return "|O" if dtype == object else dtype.newbyteorder("<").str


def _v3_dtype(dtype: np.dtype[Any]) -> str:
    return "string" if dtype == object else dtype.name


def _fill_json(dtype: np.dtype[Any]) -> Any:
    if dtype == object:
        return ""
    if dtype.kind == "b":
        return False
    return 0.0 if dtype.kind == "f" else 0


def encode_table_array(
    values: NDArray[Any], attrs: Mapping[str, Any], *, v3: bool
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The metadata document and chunks (keys relative to the array) of ``values`` as one
    chunk (v3: one shard of one chunk), with attributes ``attrs``; an empty array has no
    chunk. Numbers are stored little-endian."""
    values = np.asarray(values)
    dtype = np.dtype(object) if values.dtype.kind in "OUT" else values.dtype.newbyteorder("<")
    shape = [int(s) for s in values.shape]
    chunks = [max(1, s) for s in shape]
    empty = math.prod(shape) == 0
    if not v3:
        doc: dict[str, Any] = {
            "shape": shape,
            "chunks": chunks,
            "dtype": _v2_dtype(dtype),
            "fill_value": _fill_json(dtype),
            "order": "C",
            "filters": [{"id": "vlen-utf8"}] if dtype == object else None,
            "dimension_separator": ".",
            "compressor": dict(_BLOSC_V2),
            "zarr_format": 2,
        }
        pipe = _Pipeline(tuple(chunks), dtype, (_v2_stage(_BLOSC_V2, ""),))
        key = ".".join("0" for _ in shape)
        return doc, ({} if empty else {key: pipe.encode(values)})
    first = (
        {"name": "vlen-utf8", "configuration": {}}
        if dtype == object
        else {"name": "bytes", "configuration": {"endian": "little"}}
    )
    doc = {
        "shape": shape,
        "data_type": _v3_dtype(dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _fill_json(dtype),
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": chunks,
                    "codecs": [first, _ZSTD_V3],
                    "index_codecs": _INDEX_V3,
                    "index_location": "end",
                },
            }
        ],
        "attributes": dict(attrs),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    if empty:
        return doc, {}
    pipe = _Pipeline(tuple(chunks), dtype, (NumcodecStage(numcodecs.Zstd(level=0)),))
    inner = pipe.encode(values)
    index = np.array([0, len(inner)], dtype="<u8").tobytes()
    shard = inner + bytes(memoryview(Crc32cStage().encode(index)))
    return doc, {"/".join(["c", *("0" for _ in shape)]): shard}
