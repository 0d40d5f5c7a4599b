"""The v3 ``sharding_indexed`` codec: shard index parsing, inner-chunk byte ranges, shard encoding.

A reader fetches the index with one request (a suffix of :attr:`ShardCodec.index_nbytes` bytes when
``index_location`` is ``"end"``, a prefix when ``"start"``), calls :meth:`ShardCodec.decode_index`,
then :meth:`ShardIndex.chunk_range` gives the absolute byte range of each inner chunk it needs
(``None`` for an empty inner chunk, which reads as the fill value), and :meth:`ShardCodec.decode_chunk`
decodes each one. :meth:`ShardCodec.decode` decodes a whole shard held in memory.

:meth:`ShardCodec.encode` lays a shard out as zarr-python does: non-empty inner chunks
concatenated in Morton (Z) order, then (or before) the index.

Bytes->bytes codecs after ``sharding_indexed`` (zarr-python's ``compressors=`` beside a
sharding serializer) encode the whole shard object: :attr:`ShardCodec.outer` holds them
(:attr:`ShardCodec.compressed`). Such a shard cannot be read in parts; :meth:`ShardCodec.unwrap`
turns the stored object into the plain shard (index and inner chunks) that every other method
reads, :meth:`ShardCodec.wrap` does the reverse.
"""

from __future__ import annotations

import functools
import math
from itertools import product
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from numcodecs.compat import ensure_bytes

from ngio_async._errors import CodecError
from ngio_async.codecs._pipeline import ChunkCodec, all_equal, bytes_stages
from ngio_async.codecs._stages import Crc32cStage
from ngio_async.meta.zarr import BytesCodec, Crc32cCodec

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from numpy.typing import ArrayLike, NDArray
    from typing_extensions import Buffer

    from ngio_async.codecs._stages import BytesStage
    from ngio_async.meta.zarr import ArrayV3Meta, ShardingCodec

__all__ = [
    "EMPTY",
    "ShardCodec",
    "ShardIndex",
    "ShardedChunkCodec",
    "morton_order",
    "past_end_error",
]

#: Offset and length of an empty inner chunk in a shard index.
EMPTY: Final = 2**64 - 1


@functools.lru_cache(maxsize=64)
def morton_order(chunks_per_shard: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Inner-chunk coordinates in the (compressed) Morton order zarr-python writes them.

    Bits are interleaved dimension 0 first, skipping dimensions that have run out of bits.
    """
    if not chunks_per_shard:
        return ((),)
    bits = [(c - 1).bit_length() for c in chunks_per_shard]
    coords = np.indices(chunks_per_shard, dtype=np.uint64).reshape(len(chunks_per_shard), -1)
    code = np.zeros(coords.shape[1], dtype=np.uint64)
    out_bit = 0
    for b in range(max(bits, default=0)):
        for d, nb in enumerate(bits):
            if b < nb:
                code |= ((coords[d] >> np.uint64(b)) & np.uint64(1)) << np.uint64(out_bit)
                out_bit += 1
    ordered = coords[:, np.argsort(code, kind="stable")].T.tolist()
    return tuple(map(tuple, ordered))


class ShardIndex:
    """The decoded index of one shard: ``offsets`` and ``nbytes`` per inner chunk (uint64)."""

    __slots__ = ("table",)

    def __init__(self, table: NDArray[np.uint64]) -> None:
        #: shape ``chunks_per_shard + (2,)``: ``[..., 0]`` offsets, ``[..., 1]`` byte counts
        self.table = table

    @property
    def chunks_per_shard(self) -> tuple[int, ...]:
        return self.table.shape[:-1]

    def chunk_range(self, coords: tuple[int, ...]) -> tuple[int, int] | None:
        """``(start, stop)`` byte range of an inner chunk in the shard, ``None`` if empty."""
        offset, nbytes = self.table[coords]
        if offset == EMPTY and nbytes == EMPTY:
            return None
        return int(offset), int(offset) + int(nbytes)

    def chunk_ranges(
        self, coords: Iterable[tuple[int, ...]]
    ) -> list[tuple[tuple[int, ...], tuple[int, int] | None]]:
        """:meth:`chunk_range` for many inner chunks."""
        return [(c, self.chunk_range(c)) for c in coords]

    def past_end(
        self, size: int, coords: Iterable[tuple[int, ...]] | None = None
    ) -> tuple[tuple[int, ...], tuple[int, int]] | None:
        """The first inner chunk (of ``coords``; default every stored one) whose byte range
        ends past ``size``, the shard's length, with that range; ``None`` when none does."""
        for c in self.nonempty() if coords is None else coords:
            rng = self.chunk_range(c)
            if rng is not None and rng[1] > size:
                return c, rng
        return None

    @property
    def is_empty(self) -> bool:
        """True if no inner chunk is stored."""
        return bool(np.all(self.table == EMPTY))

    def nonempty(self) -> Iterator[tuple[int, ...]]:
        """Coordinates of the stored inner chunks (C order)."""
        for c in zip(*np.nonzero(self.table[..., 0] != EMPTY), strict=True):
            yield tuple(int(i) for i in c)


def past_end_error(
    key: str, coords: tuple[int, ...], rng: tuple[int, int], size: int
) -> CodecError:
    """The error of shard ``key``, ``size`` bytes long, whose index puts inner chunk
    ``coords`` at bytes ``rng`` (start, stop), past its end: the stored data is corrupt (the
    store answered right). Every read and write path raises this one."""
    start, stop = rng
    return CodecError(
        f"shard {key!r} is corrupt: its index puts inner chunk {list(coords)} at offset "
        f"{start}, {stop - start} bytes long (to byte {stop}), beyond the end of the shard "
        f"({size} bytes)",
        key=key,
    )


class ShardCodec:
    """Pipeline of a sharded v3 array: one shard <-> its inner chunks.

    Immutable and thread-safe like :class:`ChunkCodec`. ``shape`` is the shard shape,
    ``chunk_shape`` the inner chunk shape, ``inner`` the inner chunks' :class:`ChunkCodec`.
    """

    __slots__ = (
        "_index_big",
        "_index_crc",
        "_plain_limit",
        "chunk_shape",
        "chunks_per_shard",
        "dtype",
        "fill_value",
        "index_location",
        "index_nbytes",
        "inner",
        "outer",
        "shape",
        "write_empty_chunks",
    )

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        inner: ChunkCodec,
        index_location: Literal["start", "end"],
        index_big_endian: bool,
        index_crc32c: int,
        write_empty_chunks: bool = False,
        outer: tuple[BytesStage, ...] = (),
    ) -> None:
        self.shape = shape
        self.inner = inner
        self.chunk_shape = inner.shape
        self.dtype = inner.dtype
        self.fill_value = inner.fill_value
        self.chunks_per_shard = tuple(s // c for s, c in zip(shape, inner.shape, strict=True))
        self.index_location = index_location
        self._index_big = index_big_endian
        self._index_crc = index_crc32c
        self.index_nbytes = 16 * math.prod(self.chunks_per_shard) + 4 * index_crc32c
        self.write_empty_chunks = write_empty_chunks
        #: the bytes->bytes stages that encode the whole shard object (after the sharding codec)
        self.outer = outer
        # Decompression bombs: the most bytes a plain shard may hold (raw values with room for
        # inner codecs that expand, nested indexes and per-chunk headers)
        n = math.prod(shape)
        self._plain_limit = 2 * n * self.dtype.itemsize + 32 * n + self.index_nbytes + (1 << 16)

    @staticmethod
    def from_meta(meta: ArrayV3Meta, *, write_empty_chunks: bool = False) -> ShardCodec:
        sh = meta.sharding
        if sh is None or meta.shards is None:
            raise ValueError("array is not sharded")
        return ShardCodec.from_codec(
            sh,
            shape=meta.shards,
            dtype=meta.dtype,
            fill_value=meta.fill_value,
            path="$.codecs[0]",
            write_empty_chunks=write_empty_chunks,
            outer=bytes_stages(meta.codecs[1:], meta.dtype, "$.codecs", 1),
        )

    @staticmethod
    def from_codec(
        codec: ShardingCodec,
        *,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        fill_value: np.generic,
        path: str,
        write_empty_chunks: bool = False,
        outer: tuple[BytesStage, ...] = (),
    ) -> ShardCodec:
        """The codec of shards of ``shape`` laid out by one ``sharding_indexed`` codec (at
        ``path``); its inner codecs may hold another one (nested sharding). ``outer``: the
        stages of the bytes->bytes codecs after it (they encode whole shards)."""
        cfg = codec.configuration
        inner = ChunkCodec.from_v3_codecs(
            cfg.codecs,
            shape=cfg.chunk_shape,
            dtype=dtype,
            fill_value=fill_value,
            path=f"{path}.configuration.codecs",
            write_empty_chunks=write_empty_chunks,
        )
        first = cfg.index_codecs[0]
        assert isinstance(first, BytesCodec)  # checked when the metadata was decoded
        return ShardCodec(
            shape=shape,
            inner=inner,
            index_location=cfg.index_location,
            index_big_endian=first.configuration.endian == "big",
            index_crc32c=sum(isinstance(c, Crc32cCodec) for c in cfg.index_codecs),
            write_empty_chunks=write_empty_chunks,
            outer=outer,
        )

    def __repr__(self) -> str:
        return (
            f"ShardCodec(shape={self.shape}, chunk_shape={self.chunk_shape}, "
            f"index_location={self.index_location!r}, inner={self.inner!r}"
            + (f", outer={self.outer!r})" if self.outer else ")")
        )

    # ---------------------------------------------------------------- the stored object

    @property
    def compressed(self) -> bool:
        """Whether bytes->bytes codecs encode the whole shard object: it is then read whole
        (no index or inner chunk can be read by range)."""
        return bool(self.outer)

    def unwrap(self, buf: Buffer, key: str) -> Buffer:
        """The plain shard (inner chunks and index) of the stored object ``buf`` of shard
        ``key``: its bytes->bytes codecs decoded (``buf`` itself when it has none).

        :raises CodecError: they do not decode (corrupt data, a decompression bomb).
        """
        if not self.outer:
            return buf
        data: Any = buf
        try:
            for stage in reversed(self.outer):
                data = stage.decode(data, self._plain_limit)
        except Exception as exc:
            raise CodecError(
                f"cannot decode shard {key!r} (the codecs after sharding_indexed): {exc}", key=key
            ) from exc
        return data  # type: ignore[no-any-return]

    def wrap(self, plain: Buffer, key: str) -> bytes:
        """The stored object of shard ``key`` whose plain bytes are ``plain``: its bytes->bytes
        codecs encoded (the bytes themselves when it has none).

        :raises CodecError: a codec failed.
        """
        if not self.outer:
            return plain if isinstance(plain, bytes) else bytes(plain)
        data: Any = plain
        try:
            for stage in self.outer:
                data = stage.encode(data)
            out: bytes = ensure_bytes(data)
        except Exception as exc:
            raise CodecError(
                f"cannot encode shard {key!r} (the codecs after sharding_indexed): {exc}", key=key
            ) from exc
        return out

    # ---------------------------------------------------------------- index

    @property
    def _index_dtype(self) -> np.dtype[Any]:
        return np.dtype(">u8" if self._index_big else "<u8")

    def index_slice(self, shard_nbytes: int) -> slice:
        """Where the index lies in a shard of ``shard_nbytes`` bytes."""
        if self.index_location == "start":
            return slice(0, self.index_nbytes)
        return slice(shard_nbytes - self.index_nbytes, shard_nbytes)

    def decode_index(self, buf: Buffer, key: str) -> ShardIndex:
        """Decode the :attr:`index_nbytes` index bytes of shard ``key``.

        :raises CodecError: wrong length, checksum mismatch, or entries out of order.
        """
        try:
            data: Any = memoryview(buf).cast("B")
            if len(data) != self.index_nbytes:
                raise ValueError(f"index has {len(data)} bytes, expected {self.index_nbytes}")
            crc = Crc32cStage()
            for _ in range(self._index_crc):
                data = crc.decode(data)
            table = np.frombuffer(data, dtype=self._index_dtype).reshape(
                (*self.chunks_per_shard, 2)
            )
            # a copy (also when it needs no byte swap): the index never pins its source, which
            # may be a whole shard held for its chunks (a cached index would keep it alive)
            table = table.astype("<u8")
            offsets, nbytes = table[..., 0], table[..., 1]
            if np.any((offsets == EMPTY) != (nbytes == EMPTY)):
                raise ValueError("index entry with only one of offset/nbytes empty")
            stored = offsets != EMPTY
            if np.any(offsets[stored] + nbytes[stored] < offsets[stored]):
                raise ValueError("index entry overflows")
        except Exception as exc:
            raise CodecError(f"cannot decode the index of shard {key!r}: {exc}", key=key) from exc
        return ShardIndex(table)

    def encode_index(self, table: NDArray[np.uint64]) -> bytes:
        """Encode an index table (shape ``chunks_per_shard + (2,)``)."""
        data: Any = np.ascontiguousarray(table, dtype=self._index_dtype).reshape(-1).view(np.uint8)
        crc = Crc32cStage()
        for _ in range(self._index_crc):
            data = crc.encode(data)
        return bytes(data)

    # ---------------------------------------------------------------- inner chunks

    def decode_chunk(self, buf: Buffer, key: str, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Decode one inner chunk's bytes (``key`` names it in errors, e.g. ``"c/0/1[2,3]"``)."""
        return self.inner.decode(buf, key, out)

    def decode(self, buf: Buffer, key: str, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Decode a whole stored shard held in memory; empty inner chunks read as the fill
        value.

        :param out: optional writeable array of :attr:`shape` to fill and return.
        """
        mv = memoryview(self.unwrap(buf, key)).cast("B")
        n = len(mv)
        if n < self.index_nbytes:
            raise CodecError(
                f"shard {key!r} has {n} bytes, less than its {self.index_nbytes}-byte index",
                key=key,
            )
        index = self.decode_index(mv[self.index_slice(n)], key)
        if out is None:
            out = np.full(self.shape, self.fill_value, dtype=self.dtype)
        elif out.shape != self.shape:
            raise CodecError(
                f"shard {key!r}: out has shape {out.shape}, expected {self.shape}", key=key
            )
        else:
            out[...] = self.fill_value
        if (bad := index.past_end(n)) is not None:
            raise past_end_error(key, *bad, n)
        for coords in index.nonempty():
            rng = index.chunk_range(coords)
            assert rng is not None
            start, stop = rng
            sel = tuple(
                slice(c * s, (c + 1) * s) for c, s in zip(coords, self.chunk_shape, strict=True)
            )
            out[sel] = self.inner.decode(mv[start:stop], f"{key}{list(coords)}")
        return out

    # ---------------------------------------------------------------- encode

    def is_empty(self, array: NDArray[Any]) -> bool:
        """True if ``array`` equals the fill value everywhere (zarr then stores no shard)."""
        return all_equal(array, self.fill_value)

    def encode_chunks(self, chunks: dict[tuple[int, ...], bytes]) -> bytes:
        """Lay out already-encoded inner chunks (missing/empty ones omitted) as zarr-python
        does: the plain shard (:meth:`wrap` makes it the stored object)."""
        table = np.full((*self.chunks_per_shard, 2), EMPTY, dtype=np.uint64)
        parts: list[bytes] = []
        pos = self.index_nbytes if self.index_location == "start" else 0
        for coords in morton_order(self.chunks_per_shard):
            value = chunks.get(coords)
            if not value:
                continue
            table[coords] = (pos, len(value))
            parts.append(value)
            pos += len(value)
        index = self.encode_index(table)
        if self.index_location == "start":
            return b"".join([index, *parts])
        return b"".join([*parts, index])

    def encode(self, array: ArrayLike, key: str) -> bytes:
        """Encode one full shard (edge shards padded to :attr:`shape` by the caller): its
        stored object (the codecs after ``sharding_indexed`` applied).

        Inner chunks equal to the fill value are left out unless ``write_empty_chunks``. A shard
        with no stored inner chunk still encodes (index only); zarr-python instead stores no
        object, so writers should test :meth:`is_empty` first.
        """
        a = np.asarray(array)
        if a.shape != self.shape:
            raise CodecError(
                f"shard {key!r}: array of shape {a.shape}, expected {self.shape}", key=key
            )
        chunks: dict[tuple[int, ...], bytes] = {}
        for coords in product(*(range(c) for c in self.chunks_per_shard)):
            sel = tuple(
                slice(c * s, (c + 1) * s) for c, s in zip(coords, self.chunk_shape, strict=True)
            )
            part = a[sel]
            if not self.write_empty_chunks and self.inner.is_empty(part):
                continue
            chunks[coords] = self.inner.encode(part, f"{key}{list(coords)}")
        return self.wrap(self.encode_chunks(chunks), key)


class ShardedChunkCodec(ChunkCodec):
    """Inner chunks that are shards themselves (a ``sharding_indexed`` codec nested in another).

    A :class:`ChunkCodec` whose stored chunk is a whole inner shard: :meth:`decode` and
    :meth:`encode` run :attr:`shard`, so readers and writers of the outer shard need nothing else.
    """

    __slots__ = ("shard",)

    def __init__(self, shard: ShardCodec) -> None:
        super().__init__(
            shape=shard.shape,
            dtype=shard.dtype,
            fill_value=shard.fill_value,
            stored_dtype=shard.dtype,
        )
        self.shard = shard

    def decode(self, buf: Buffer, key: str, out: NDArray[Any] | None = None) -> NDArray[Any]:
        """Decode one inner shard (its inner chunks absent from its index read as the fill)."""
        return self.shard.decode(buf, key, out)

    def encode(self, array: ArrayLike, key: str) -> bytes:
        """Encode one inner shard (as zarr-python lays it out)."""
        return self.shard.encode(array, key)

    def __repr__(self) -> str:
        return f"ShardedChunkCodec({self.shard!r})"
