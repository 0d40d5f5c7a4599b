"""The per-array chunk pipeline: stored bytes <-> one chunk as an ndarray (zarr v2 and v3)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
from numcodecs.compat import ensure_bytes, ensure_ndarray_like

from ngio_async._errors import CodecError, MetadataError, UnsupportedError
from ngio_async.codecs._numcodecs import ArrayStep, codec_json, kind_of, make_numcodec, resolve_spec
from ngio_async.codecs._stages import (
    BytesStage,
    Crc32cStage,
    NumcodecStage,
    blosc_sizes,
    blosc_stage,
)
from ngio_async.codecs._strings import VLenSerializer
from ngio_async.meta.zarr import (
    ArrayV2Meta,
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    VLenUtf8Codec,
    ZstdCodec,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import ArrayLike, NDArray
    from typing_extensions import Buffer

    from ngio_async.codecs._sharding import ShardCodec
    from ngio_async.meta.zarr import ArrayMeta, Codec

__all__ = ["ChunkCodec", "all_equal", "bytes_stages"]

# numcodecs codecs whose ``decode(buf, out=...)`` writes straight into ``out`` AND whose header
# states the decoded size, so a short payload cannot leave part of ``out`` stale (numcodecs' zstd and
# gzip accept a too-large ``out`` silently; they take the decode-then-copy path).
_OUT_CAPABLE = ("blosc", "lz4")


def _decoded_size(codec_id: str, buf: Buffer) -> int:
    """Decoded size announced by a blosc or numcodecs-lz4 frame header."""
    if codec_id == "blosc":
        return blosc_sizes(buf)[0]
    return int.from_bytes(memoryview(buf).cast("B")[:4], "little")  # numcodecs lz4: '<i4' size


def _filtered_nbytes(filters: Sequence[Any], nbytes: int) -> int | None:
    """Size of what v2 ``filters`` encode ``nbytes`` of values to, ``None`` if not known."""
    for f in filters:
        cid = getattr(f, "codec_id", None)
        if cid in ("delta", "fixedscaleoffset", "quantize"):
            nbytes = nbytes // f.dtype.itemsize * f.astype.itemsize
        elif cid == "astype":
            nbytes = nbytes // f.decode_dtype.itemsize * f.encode_dtype.itemsize
        elif cid == "packbits":
            nbytes = 1 + math.ceil(nbytes / 8)
        elif cid not in ("shuffle", "bitround"):
            return None
    return nbytes


def all_equal(array: NDArray[Any], value: np.generic) -> bool:
    """True if every element is ``value`` (NaN is NaN), as zarr-python's empty-chunk test, but
    so that the chunk reads back as written: a zero's sign counts (``-0.0`` is not a fill
    value of ``0.0``), and each part of a complex number on its own (``nan+1j`` is not
    ``nan+0j``)."""
    kind = array.dtype.kind
    if kind == "c":
        v = complex(value)
        if (
            v == 0
            and not np.signbit([v.real, v.imag]).any()
            and array.ndim
            and array.strides[-1] == array.itemsize  # (a view of half the itemsize works)
        ):
            # (+0+0j: both parts' bits 0, read at once: array.real is strided, and slow)
            return all_equal(array.view(f"f{array.itemsize // 2}"), np.float64(0.0))
        return all_equal(array.real, np.float64(v.real)) and all_equal(
            array.imag, np.float64(v.imag)
        )
    if kind == "f" and np.isnan(value):
        return bool(np.all(np.isnan(array)))
    if array.size and array[(0,) * array.ndim] != value:  # data rarely starts with the fill
        return False
    if value == 0 and kind in "biuf" and not np.signbit(value):  # (a view of any layout)
        return not array.size or bool(array.view(f"u{array.itemsize}").max() == 0)  # 0 bits
    if not np.all(array == value):
        return False
    return kind != "f" or value != 0 or not (np.signbit(array) != np.signbit(value)).any()


def _bytes_stage_v3(codec: Codec, itemsize: int, path: str) -> BytesStage:
    if isinstance(codec, BloscCodec):
        c = codec.configuration
        return blosc_stage(
            cname=c.cname,
            clevel=c.clevel,
            shuffle=c.shuffle or ("bitshuffle" if itemsize == 1 else "shuffle"),
            typesize=c.typesize if isinstance(c.typesize, int) else itemsize,
            blocksize=c.blocksize,
        )
    if isinstance(codec, ZstdCodec):
        return NumcodecStage(
            numcodecs.Zstd(level=codec.configuration.level, checksum=codec.configuration.checksum)
        )
    if isinstance(codec, GzipCodec):
        return NumcodecStage(numcodecs.GZip(level=codec.configuration.level))
    if isinstance(codec, Crc32cCodec):
        return Crc32cStage()
    name, _ = codec_json(codec)
    raise MetadataError(f"{name!r} is not a bytes->bytes codec", path)


def bytes_stages(
    codecs: Sequence[Codec | dict[str, Any]], dtype: np.dtype[Any], path: str, start: int = 0
) -> tuple[BytesStage, ...]:
    """The stages of a list of v3 bytes->bytes codecs (``codecs[i]`` is at ``path[start + i]``):
    the ones after a ``sharding_indexed`` codec, which encode whole shards.

    :raises UnsupportedError: a codec this library cannot run, or not a bytes->bytes one.
    """
    stages: list[BytesStage] = []
    for i, c in enumerate(codecs, start):
        cpath = f"{path}[{i}]"
        if isinstance(c, BloscCodec | ZstdCodec | GzipCodec | Crc32cCodec):
            stages.append(_bytes_stage_v3(c, dtype.itemsize, cpath))
            continue
        name, cfg = codec_json(c)
        if kind_of(name) != "bytes":
            raise UnsupportedError(
                f"codec {name!r} after sharding_indexed is not a bytes->bytes codec "
                f"(at {cpath}.name)"
            )
        stages.append(NumcodecStage(make_numcodec(name, cfg, dtype, cpath)))
    return tuple(stages)


def _unsupported(name: str, path: str) -> UnsupportedError:
    return UnsupportedError(f"codec {name!r} is not supported (at {path})")


class ChunkCodec:
    """Decode/encode one chunk of one array; built once per array, shared by worker threads.

    Immutable after construction: ``decode`` and ``encode`` keep no state between calls, so they
    may run concurrently in threads (see :mod:`ngio_async.codecs._stages` for blosc).

    ``decode`` returns an array of shape :attr:`shape` whose values are the chunk's values. It is
    often a zero-copy, read-only view of the decompressed buffer, and its dtype may differ from
    :attr:`dtype` in byte order only (a big-endian ``bytes`` codec); copy it into the output.
    """

    __slots__ = (
        "_direct",
        "_filters",
        "_inverse",
        "_layout_shape",
        "_limit",
        "_limit_exact",
        "_order",
        "_perm",
        "_serializer",
        "_stages",
        "_steps",
        "_stored_dtype",
        "_v2",
        "dtype",
        "fill_value",
        "shape",
    )

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: np.generic,
        stored_dtype: np.dtype[Any],
        stages: tuple[BytesStage, ...] = (),
        perm: tuple[int, ...] | None = None,
        order: str = "C",
        filters: tuple[Any, ...] = (),
        v2: bool = False,
        steps: tuple[ArrayStep, ...] = (),
        layout_shape: tuple[int, ...] | None = None,
        serializer: Any = None,
    ) -> None:
        self.shape = shape
        self.dtype = dtype
        self.fill_value = fill_value
        self._stored_dtype = stored_dtype
        self._stages = stages
        self._perm = perm
        self._inverse = tuple(int(i) for i in np.argsort(perm)) if perm is not None else None
        self._layout_shape = tuple(shape[p] for p in perm) if perm is not None else shape
        #: v3 array->array steps when a numcodecs filter is among them (else only ``perm``)
        self._steps = steps
        if layout_shape is not None:
            self._layout_shape = layout_shape
        #: a numcodecs array->bytes codec in place of ``bytes``
        self._serializer = serializer
        self._order = order
        self._filters = filters
        self._v2 = v2
        # Decompression bombs: the first compressor's output is the chunk's raw values, or what
        # v2 filters encode them to (exactly their size; at most 16 bytes per value behind a
        # numcodecs serializer or filters of unknown output); the output of any other stage is
        # bounded by what compresses to it.
        n = math.prod(self._layout_shape)
        exact = n * stored_dtype.itemsize if serializer is None else None
        if filters and exact is not None:
            exact = _filtered_nbytes(filters, exact)
        self._limit_exact = exact is not None
        self._limit = exact if exact is not None else 16 * n + (1 << 16)
        if isinstance(serializer, VLenSerializer):
            self._limit = serializer.max_nbytes(n)
        # Decompress straight into a caller's buffer when nothing sits between the (single)
        # compressor and the raw C-order values.
        single = stages[0] if len(stages) == 1 else None
        self._direct = (
            isinstance(single, NumcodecStage)
            and getattr(single.codec, "codec_id", None) in _OUT_CAPABLE
            and not filters
            and perm is None
            and not steps
            and serializer is None
            and order == "C"
        )

    # ---------------------------------------------------------------- construction

    @staticmethod
    def from_meta(meta: ArrayMeta, *, write_empty_chunks: bool = False) -> ChunkCodec | ShardCodec:
        """Build the pipeline for ``meta``: a :class:`ShardCodec` for sharded v3 arrays.

        :param write_empty_chunks: sharded arrays only: keep inner chunks that equal the fill
            value when encoding (zarr-python's default, ``False``, leaves them out).
        :raises UnsupportedError: a codec this library cannot run.
        """
        if isinstance(meta, ArrayV2Meta):
            return ChunkCodec._from_v2(meta)
        sh = meta.sharding
        if sh is not None:
            from ngio_async.codecs._sharding import ShardCodec

            return ShardCodec.from_meta(meta, write_empty_chunks=write_empty_chunks)
        return ChunkCodec.from_v3_codecs(
            meta.codecs,
            shape=meta.chunks,
            dtype=meta.dtype,
            fill_value=meta.fill_value,
            path="$.codecs",
        )

    @staticmethod
    def _from_v2(meta: ArrayV2Meta) -> ChunkCodec:
        def get(cfg: dict[str, Any], path: str) -> Any:
            try:
                return numcodecs.get_codec(dict(cfg))
            except ValueError as exc:
                raise UnsupportedError(f"v2 codec {cfg.get('id')!r} at {path}: {exc}") from exc

        stages: tuple[BytesStage, ...] = ()
        if meta.compressor is not None:
            stages = (NumcodecStage(get(meta.compressor, "$.compressor")),)
        filters = tuple(get(f, f"$.filters[{i}]") for i, f in enumerate(meta.filters or ()))
        serializer = None
        if meta.items is not None:  # |O: the vlen filter (the first) is the serializer
            serializer = VLenSerializer(meta.items, meta.order)
            stages = (*(NumcodecStage(f) for f in filters[1:]), *stages)
            filters = ()
        return ChunkCodec(
            shape=meta.chunks,
            dtype=meta.dtype,
            fill_value=meta.fill_value,
            stored_dtype=meta.dtype,
            stages=stages,
            order=meta.order,
            filters=filters,
            v2=serializer is None,
            serializer=serializer,
        )

    @staticmethod
    def from_v3_codecs(
        codecs: Sequence[Codec | dict[str, Any]],
        *,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: np.generic,
        path: str,
        write_empty_chunks: bool = False,
    ) -> ChunkCodec:
        """Build a v3 pipeline for chunks of ``shape`` (also the inner chunks of a shard).

        Codecs are metadata Structs, or JSON objects for the ``numcodecs.*`` codecs zarr-python
        writes. A list that is one ``sharding_indexed`` codec (nested sharding: the inner chunks
        are shards) gives a :class:`~ngio_async.codecs._sharding.ShardedChunkCodec`.

        :raises UnsupportedError: a codec this library cannot run (``path`` locates it).
        """
        if any(isinstance(c, ShardingCodec) for c in codecs):
            from ngio_async.codecs._sharding import ShardCodec, ShardedChunkCodec

            first = codecs[0]
            if not isinstance(first, ShardingCodec) or any(
                isinstance(c, ShardingCodec) for c in codecs[1:]
            ):
                where = [i for i, c in enumerate(codecs) if isinstance(c, ShardingCodec)][-1]
                raise UnsupportedError(
                    "codecs before a nested sharding_indexed are not supported "
                    f"(at {path}[{where}])"
                )
            return ShardedChunkCodec(
                ShardCodec.from_codec(
                    first,
                    shape=shape,
                    dtype=dtype,
                    fill_value=fill_value,
                    path=f"{path}[0]",
                    write_empty_chunks=write_empty_chunks,
                    outer=bytes_stages(codecs[1:], dtype, path, 1),
                )
            )
        perm: tuple[int, ...] | None = None
        steps: list[ArrayStep] = []
        filtered = False  # a numcodecs array->array codec: run the steps one by one
        layout, resolved = shape, dtype  # shape and dtype reaching the array->bytes codec
        stored: np.dtype[Any] | None = None
        serializer: Any = None
        stages: list[BytesStage] = []
        for i, c in enumerate(codecs):
            cpath = f"{path}[{i}]"
            if isinstance(c, TransposeCodec):
                order = c.configuration.order
                perm = order if perm is None else tuple(perm[o] for o in order)
                steps.append(ArrayStep(layout, perm=order))
                layout = tuple(layout[o] for o in order)
            elif isinstance(c, BytesCodec):
                endian = c.configuration.endian or "little"
                stored = resolved.newbyteorder("<" if endian == "little" else ">")
            elif isinstance(c, BloscCodec | ZstdCodec | GzipCodec | Crc32cCodec):
                stages.append(_bytes_stage_v3(c, dtype.itemsize, cpath))
            elif isinstance(c, VLenUtf8Codec):
                if dtype != object:
                    raise MetadataError("the vlen-utf8 codec needs the 'string' data type", cpath)
                serializer, stored = VLenSerializer(), dtype
            else:
                name, cfg = codec_json(c)
                if name == "bytes" and isinstance(c, dict):
                    endian = cfg.get("endian") or "little"
                    stored = resolved.newbyteorder("<" if endian == "little" else ">")
                    continue
                kind = kind_of(name)
                if kind is None:
                    raise _unsupported(name, f"{cpath}.name")
                codec = make_numcodec(name, cfg, dtype, cpath)
                if kind == "bytes":
                    stages.append(NumcodecStage(codec))
                elif kind == "array":
                    filtered = True
                    steps.append(ArrayStep(layout, codec=codec))
                    layout, resolved = resolve_spec(codec.codec_id, codec, layout, resolved)
                else:
                    serializer = codec
                    stored = resolved
        if stored is None:
            raise MetadataError("no bytes codec in the codec list", path)
        if not filtered:
            steps = []
            if perm is not None and perm == tuple(range(len(perm))):
                perm = None
        return ChunkCodec(
            shape=shape,
            dtype=dtype,
            fill_value=fill_value,
            stored_dtype=stored,
            stages=tuple(stages),
            perm=None if filtered else perm,
            steps=tuple(steps),
            layout_shape=layout if filtered else None,
            serializer=serializer,
        )

    # ---------------------------------------------------------------- properties

    @property
    def nbytes(self) -> int:
        """Size in bytes of one decoded chunk."""
        return math.prod(self.shape) * self.dtype.itemsize

    def is_empty(self, array: NDArray[Any]) -> bool:
        """True if ``array`` equals the fill value everywhere (zarr then stores nothing)."""
        return all_equal(array, self.fill_value)

    def __repr__(self) -> str:
        return (
            f"ChunkCodec(shape={self.shape}, dtype={self.dtype}, stored={self._stored_dtype}, "
            f"perm={self._perm}, order={self._order!r}, stages={self._stages}, "
            f"filters={self._filters})"
        )

    # ---------------------------------------------------------------- decode

    def decode(self, buf: Buffer, key: str, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Decode the stored bytes of chunk ``key``.

        :param out: optional writeable array of :attr:`shape` (a view into the caller's output
            is fine); filled and returned. If it is C-contiguous with the stored dtype and the only
            codec is blosc or lz4 (no transpose/filters/F order), the decompressor writes straight
            into it; otherwise the chunk is decoded, then copied in.
        :raises CodecError: the bytes do not decode to a chunk (``.key`` names it).
        """
        try:
            if out is not None:
                return self._decode_into(buf, out, key)
            return self._decode(buf, key)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"cannot decode chunk {key!r}: {exc}", key=key) from exc

    def _decode_into(self, buf: Buffer, out: NDArray[Any], key: str) -> NDArray[Any]:
        if out.shape != self.shape:
            raise ValueError(f"out has shape {out.shape}, expected {self.shape}")
        if (
            self._direct
            and out.flags.c_contiguous
            and out.dtype == self._stored_dtype
            and out.flags.writeable
        ):
            stage = self._stages[0]
            assert isinstance(stage, NumcodecStage)
            size = _decoded_size(stage.codec.codec_id, buf)
            if size != out.nbytes:
                raise ValueError(f"chunk decodes to {size} bytes, expected {out.nbytes}")
            stage.decode_into(buf, out.reshape(-1).view(np.uint8))
            return out
        out[...] = self._decode(buf, key)
        return out

    def _decode(self, buf: Buffer, key: str) -> NDArray[Any]:
        data: Any = buf
        last = len(self._stages) - 1
        for i, stage in enumerate(reversed(self._stages)):
            if i == last:
                data = stage.decode(data, self._limit, exact=self._limit_exact)
            else:  # a compressor's output is never much larger than its input
                data = stage.decode(data, 2 * self._limit + (1 << 16))
        arr: NDArray[Any]
        if self._filters:
            for f in reversed(self._filters):
                data = f.decode(data)
            arr = ensure_ndarray_like(data)
            try:
                arr = arr.view(self._stored_dtype)
            except (TypeError, ValueError):
                arr = np.asarray(arr).astype(self._stored_dtype)
            arr = arr.reshape(-1, order="A")
        elif self._serializer is not None:
            if isinstance(self._serializer, VLenSerializer):
                arr = self._serializer.decode(data, math.prod(self._layout_shape), key)
            else:
                arr = np.asarray(self._serializer.decode(data)).reshape(-1)
        else:
            arr = np.frombuffer(data, dtype=self._stored_dtype)
        n = math.prod(self._layout_shape)
        if arr.size != n:
            raise ValueError(
                f"decoded {arr.size} elements of {self._stored_dtype}, "
                f"expected {n} for a chunk of shape {self.shape}"
            )
        arr = arr.reshape(self._layout_shape, order="F" if self._order == "F" else "C")
        if self._inverse is not None:
            arr = arr.transpose(self._inverse)
        for step in reversed(self._steps):
            arr = step.decode(arr)
        return arr

    # ---------------------------------------------------------------- encode

    def encode(self, array: ArrayLike, key: str) -> bytes:
        """Encode one full chunk (edge chunks padded to :attr:`shape` by the caller).

        The output is what zarr-python writes for the same chunk and metadata.

        :raises CodecError: wrong shape, or a codec failed (``.key`` names the chunk).
        """
        a = np.asarray(array)
        if a.shape != self.shape:
            raise CodecError(
                f"chunk {key!r}: array of shape {a.shape}, expected {self.shape}", key=key
            )
        try:
            return self._encode(a)
        except Exception as exc:
            raise CodecError(f"cannot encode chunk {key!r}: {exc}", key=key) from exc

    def _encode(self, a: NDArray[Any]) -> bytes:
        data: Any
        if self._v2:
            data = a.astype(self._stored_dtype, order=self._order, copy=False)  # type: ignore[call-overload]
            for f in self._filters:
                data = f.encode(data)
        elif self._steps or self._serializer is not None:
            data = a.astype(self.dtype, copy=False)
            for step in self._steps:  # as zarr-python runs them: numcodecs gets each array
                data = step.encode(data)
            if self._serializer is not None:
                data = self._serializer.encode(data)
            else:
                arr = np.asarray(data)
                if arr.dtype.itemsize > 1:
                    arr = arr.astype(arr.dtype.newbyteorder(self._stored_dtype.byteorder))
                data = arr.ravel().view(np.uint8)
        else:
            a = a.astype(self._stored_dtype, copy=False)
            if self._perm is not None:
                a = a.transpose(self._perm)
            data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        for stage in self._stages:
            data = stage.encode(data)
        out: bytes = ensure_bytes(data)
        return out
