"""The per-array chunk pipeline: stored bytes <-> one chunk as an ndarray (zarr v2 and v3)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
from numcodecs.compat import ensure_bytes, ensure_ndarray_like

from ngio_async._errors import CodecError, MetadataError, UnsupportedError
from ngio_async.codecs._stages import BytesStage, Crc32cStage, NumcodecStage, blosc_stage
from ngio_async.meta.zarr import (
    ArrayV2Meta,
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ShardingCodec,
    TransposeCodec,
    ZstdCodec,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
    from typing_extensions import Buffer

    from ngio_async.codecs._sharding import ShardCodec
    from ngio_async.meta.zarr import ArrayMeta, Codec

__all__ = ["ChunkCodec", "all_equal"]

# numcodecs codecs whose ``decode(buf, out=...)`` writes straight into ``out`` AND whose header
# states the decoded size, so a short payload cannot leave part of ``out`` stale (numcodecs' zstd and
# gzip accept a too-large ``out`` silently; they take the decode-then-copy path).
_OUT_CAPABLE = ("blosc", "lz4")


def _decoded_size(codec_id: str, buf: Buffer) -> int:
    """Decoded size announced by a blosc or numcodecs-lz4 frame header."""
    mv = memoryview(buf).cast("B")
    if codec_id == "blosc":  # blosc1 header: version, versionlz, flags, typesize, nbytes '<u4', ...
        if len(mv) < 16:
            raise ValueError(f"{len(mv)} bytes is too short for a blosc header")
        return int.from_bytes(mv[4:8], "little")
    return int.from_bytes(mv[:4], "little")  # numcodecs lz4: '<i4' size prefix


def all_equal(array: NDArray[Any], value: np.generic) -> bool:
    """True if every element equals ``value`` (NaN equals NaN), as zarr-python's empty-chunk test."""
    if array.dtype.kind in "fc" and np.isnan(value):
        return bool(np.all(np.isnan(array)))
    if array.size and array[(0,) * array.ndim] != value:  # data rarely starts with the fill
        return False
    if value == 0 and array.dtype.kind in "biu":
        return not array.any()  # no temporary boolean array
    return bool(np.all(array == value))


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
    raise MetadataError(f"{type(codec).__name__} is not a bytes->bytes codec", path)


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
        "_order",
        "_perm",
        "_stages",
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
    ) -> None:
        self.shape = shape
        self.dtype = dtype
        self.fill_value = fill_value
        self._stored_dtype = stored_dtype
        self._stages = stages
        self._perm = perm
        self._inverse = tuple(int(i) for i in np.argsort(perm)) if perm is not None else None
        self._layout_shape = tuple(shape[p] for p in perm) if perm is not None else shape
        self._order = order
        self._filters = filters
        self._v2 = v2
        # Decompress straight into a caller's buffer when nothing sits between the (single)
        # compressor and the raw C-order values.
        single = stages[0] if len(stages) == 1 else None
        self._direct = (
            isinstance(single, NumcodecStage)
            and getattr(single.codec, "codec_id", None) in _OUT_CAPABLE
            and not filters
            and perm is None
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
        return ChunkCodec(
            shape=meta.chunks,
            dtype=meta.dtype,
            fill_value=meta.fill_value,
            stored_dtype=meta.dtype,
            stages=stages,
            order=meta.order,
            filters=filters,
            v2=True,
        )

    @staticmethod
    def from_v3_codecs(
        codecs: tuple[Codec, ...],
        *,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: np.generic,
        path: str,
    ) -> ChunkCodec:
        """Build a non-sharding v3 pipeline (also used for the inner chunks of a shard)."""
        perm: tuple[int, ...] | None = None
        stored = dtype
        stages: list[BytesStage] = []
        seen_bytes = False
        for i, c in enumerate(codecs):
            cpath = f"{path}[{i}]"
            if isinstance(c, TransposeCodec):
                order = c.configuration.order
                perm = order if perm is None else tuple(perm[o] for o in order)
            elif isinstance(c, BytesCodec):
                endian = c.configuration.endian or "little"
                stored = dtype.newbyteorder("<" if endian == "little" else ">")
                seen_bytes = True
            elif isinstance(c, ShardingCodec):
                raise UnsupportedError(f"sharding_indexed is not supported here (at {cpath})")
            else:
                stages.append(_bytes_stage_v3(c, dtype.itemsize, cpath))
        if not seen_bytes:
            raise MetadataError("no bytes codec in the codec list", path)
        if perm is not None and perm == tuple(range(len(perm))):
            perm = None
        return ChunkCodec(
            shape=shape,
            dtype=dtype,
            fill_value=fill_value,
            stored_dtype=stored,
            stages=tuple(stages),
            perm=perm,
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
                return self._decode_into(buf, out)
            return self._decode(buf)
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"cannot decode chunk {key!r}: {exc}", key=key) from exc

    def _decode_into(self, buf: Buffer, out: NDArray[Any]) -> NDArray[Any]:
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
            stage.codec.decode(buf, out=out.reshape(-1).view(np.uint8))
            return out
        out[...] = self._decode(buf)
        return out

    def _decode(self, buf: Buffer) -> NDArray[Any]:
        data: Any = buf
        for stage in reversed(self._stages):
            data = stage.decode(data)
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
        else:
            a = a.astype(self._stored_dtype, copy=False)
            if self._perm is not None:
                a = a.transpose(self._perm)
            data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        for stage in self._stages:
            data = stage.encode(data)
        out: bytes = ensure_bytes(data)
        return out
