"""Bytes->bytes stages: thin, stateless wrappers around numcodecs and crc32c.

Each stage has ``decode(buf) -> buffer`` and ``encode(buf) -> buffer`` where a buffer is any object
with the buffer protocol (``bytes``, ``memoryview``, a contiguous ``ndarray``). Stages hold no
mutable state, so one instance is shared by every worker thread.

Blosc and threads: numcodecs' ``Blosc`` picks its API per call from ``numcodecs.blosc.use_threads``
(``None`` by default: the global, internally-threaded blosc API guarded by numcodecs' own mutex on
the main thread, the re-entrant ``blosc_*_ctx`` API on any other thread). We never change that
global. Decoding in worker threads (the intended use) therefore takes the re-entrant path with no
shared state. zarr-python sets ``use_threads = False`` when it is imported; that is also safe.

Blosc decoding: blosc frames (v2 ``blosc`` compressors, v3 ``blosc`` codecs) decode with c-blosc2
(``imagecodecs.blosc2_decode``: it reads blosc1 frames and releases the GIL) when ``imagecodecs``
is installed, for the frames where it is faster in a worker thread: zstd with a type size above
1 (2-26% less CPU than numcodecs' c-blosc1, single-threaded as in a worker). Every other frame
stays with c-blosc1: lz4, lz4hc, blosclz, zlib and snappy take the same or up to 9% more CPU
in c-blosc2, and any type size 1 with the shuffle flag 1.5-5x more (uint8 lz4 + shuffle,
zarr-python 2's default). So do frames c-blosc1 would refuse but c-blosc2 would read
(:func:`blosc1_streams_sized`). A frame c-blosc2 refuses goes to
numcodecs, whose error (or result) stands. ``NGIO_ASYNC_BLOSC_DECODER=numcodecs`` keeps numcodecs
for every frame. Encoding always uses numcodecs: byte for byte what zarr-python writes.

Decompression bombs: ``decode(buf, limit)`` never allocates much more than ``limit`` bytes. Blosc,
lz4 and zstd frames state their decoded size (refused before decoding when it exceeds ``limit``);
zstd frames that state none decode into a buffer of ``limit`` bytes; gzip, zlib, bz2 and lzma
decompress in bounded steps. ``exact``: the output must be ``limit`` bytes (a chunk's raw values).
"""

from __future__ import annotations

import bz2
import contextlib
import lzma
import os
import re
import struct
from typing import TYPE_CHECKING, Any, Protocol, cast

import crc32c as _crc32c
import numcodecs
from isal import isal_zlib
from numcodecs import zstd as _zstd

if TYPE_CHECKING:
    from collections.abc import Callable

    from typing_extensions import Buffer

__all__ = [
    "BytesStage",
    "Crc32cStage",
    "NumcodecStage",
    "blosc1_streams_sized",
    "blosc2_decoder",
    "blosc_sizes",
    "blosc_stage",
    "zstd_content_size",
]


class BytesStage(Protocol):
    """One bytes->bytes step of a pipeline."""

    def decode(self, buf: Buffer, limit: int | None = None, *, exact: bool = False) -> Buffer:
        """``limit``: the most bytes the output may hold (``exact``: must hold)."""
        ...

    def encode(self, buf: Buffer) -> Buffer: ...


def blosc_sizes(buf: Buffer) -> tuple[int, int]:
    """``(nbytes, cbytes)`` of a blosc1 frame: its decoded size and its own length.

    :raises ValueError: the frame is shorter than its header or than the length the header
        states (numcodecs' blosc reads past the end of a truncated frame and returns garbage).
    """
    mv = memoryview(buf).cast("B")
    if len(mv) < 16:
        raise ValueError(f"{len(mv)} bytes is too short for a blosc header")
    nbytes = int.from_bytes(mv[4:8], "little")
    cbytes = int.from_bytes(mv[12:16], "little")
    if len(mv) < cbytes:
        raise ValueError(f"truncated blosc frame: {len(mv)} bytes, its header says {cbytes}")
    return nbytes, cbytes


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def zstd_content_size(buf: Buffer) -> int | None:
    """The decoded size a zstd frame header states; ``None`` if it states none (a streaming
    frame) or ``buf`` does not start with a zstd frame (the decoder then reports it).

    :raises ValueError: the header is cut short.
    """
    mv = memoryview(buf).cast("B")
    if len(mv) < 5 or mv[:4] != _ZSTD_MAGIC:
        return None
    fhd = mv[4]
    single = (fhd >> 5) & 1
    size = (single, 2, 4, 8)[fhd >> 6]
    if not size:
        return None
    pos = 5 + (not single) + (0, 1, 2, 4)[fhd & 3]  # window descriptor, dictionary id
    if len(mv) < pos + size:
        raise ValueError(f"truncated zstd frame header ({len(mv)} bytes)")
    value = int.from_bytes(mv[pos : pos + size], "little")
    return value + 256 if size == 2 else value


def _too_big(what: str, size: int | None, limit: int, exact: bool) -> ValueError:
    stated = f"states {size} decoded bytes" if size is not None else "decodes to more bytes"
    want = f"a chunk decodes to exactly {limit}" if exact else f"at most {limit} are possible"
    return ValueError(f"{what} data {stated}; {want} (refused before decoding it all)")


def _check_stated(what: str, size: int, limit: int, exact: bool) -> None:
    if size > limit:  # a smaller one decodes (bounded), and the pipeline says what it lacks
        raise _too_big(what, size, limit, exact)


_GOT = re.compile(r"expected to decompress \d+, got (\d+)")


def _unsized_zstd(buf: Buffer, limit: int, exact: bool) -> Buffer:
    """A zstd frame that does not state its size, decoded into a buffer of ``limit`` bytes.

    numcodecs decodes such a frame into a given buffer only if it fills it exactly; a shorter
    output is reported with its size (the bytes are in the buffer), a longer one refused.
    """
    dest = bytearray(limit)
    try:
        return _zstd.decompress(buf, dest)  # type: ignore[no-any-return]
    except RuntimeError as exc:
        got = None if exact else _GOT.search(str(exc))
        if got is not None:
            return memoryview(dest)[: int(got.group(1))]
        if "too small" in str(exc):
            raise _too_big("zstd", None, limit, exact) from None
        want = f"a chunk decodes to exactly {limit}" if exact else f"at most {limit} are possible"
        raise ValueError(f"{exc} ({want} bytes)") from None


_ISAL_ERROR = cast("type[Exception]", isal_zlib.error)  # igzip_lib.IsalError (untyped in its stub)


def _inflate(buf: Buffer, limit: int, exact: bool) -> bytes:
    """``zlib.decompress`` (trailing bytes ignored, as it does), at most ``limit`` bytes out;
    inflated by ISA-L (``isal``: about 2x zlib's speed)."""
    d = isal_zlib.decompressobj()
    try:
        out: bytes = d.decompress(buf, limit + 1)
    except _ISAL_ERROR as exc:  # as zlib.error, a ValueError like every stage's
        raise ValueError(f"invalid zlib stream: {exc}") from None
    if len(out) > limit:
        raise _too_big("zlib", None, limit, exact)
    if not d.eof:
        raise ValueError("incomplete or truncated zlib stream")
    return out


def _gunzip(buf: Buffer, limit: int, exact: bool) -> bytes:
    """numcodecs' gzip decoding (``GzipFile``: every member, zero padding after one skipped),
    at most ``limit`` bytes out; inflated by ISA-L (about 3x ``GzipFile``'s speed)."""
    data: Buffer = memoryview(buf).cast("B")
    parts: list[bytes] = []
    total = 0
    while len(data):  # type: ignore[arg-type]
        d = isal_zlib.decompressobj(wbits=31)  # a gzip member: header, deflate, trailer
        try:
            part: bytes = d.decompress(data, limit - total + 1)
        except _ISAL_ERROR as exc:
            raise ValueError(f"invalid gzip stream: {exc}") from None
        total += len(part)
        if total > limit:
            raise _too_big("gzip", None, limit, exact)
        if not d.eof:
            raise ValueError("compressed data ended before the end-of-stream marker was reached")
        parts.append(part)
        data = d.unused_data.lstrip(b"\0")
    return b"".join(parts)


def _multistream(
    what: str, make: Any, error: type[Exception], buf: Buffer, limit: int, exact: bool
) -> bytes:
    """``bz2.decompress`` / ``lzma.decompress`` (concatenated streams; trailing bytes that are
    not a stream are ignored, as they do), at most ``limit`` bytes out."""
    data = bytes(memoryview(buf).cast("B"))
    parts: list[bytes] = []
    total = 0
    while data:
        d = make()
        try:
            part = d.decompress(data, limit - total + 1)
        except error:
            if parts:
                break  # leftover bytes are not a stream
            raise
        total += len(part)
        if total > limit:
            raise _too_big(what, None, limit, exact)
        parts.append(part)
        if not d.eof:
            raise ValueError("compressed data ended before the end-of-stream marker was reached")
        data = d.unused_data
    return b"".join(parts)


_BLOSC_DECODER_ENV = "NGIO_ASYNC_BLOSC_DECODER"
_blosc2: list[Callable[..., Any] | None] = []  # resolved once: imagecodecs' decoder or None


def blosc2_decoder() -> Callable[..., Any] | None:
    """``imagecodecs.blosc2_decode`` if installed and not opted out (see the module), else
    ``None``; looked up once per process."""
    if not _blosc2:
        found: Callable[..., Any] | None = None
        if os.environ.get(_BLOSC_DECODER_ENV, "").strip().lower() != "numcodecs":
            try:
                from imagecodecs import blosc2_decode as found
            except ImportError:  # pragma: no cover - imagecodecs is a dependency
                found = None
        _blosc2.append(found)
    return _blosc2[0]


def blosc1_streams_sized(buf: Buffer) -> bool:
    """Whether ``buf`` is a blosc1 frame whose every compressed stream states a positive size.

    c-blosc2 reads a stream of size 0 as a block of zeros and a negative size as a run of one
    byte value (blosc2's own encodings); c-blosc1, which wrote the frame, fails on both. So a
    frame zeroed in part (a torn write) decodes to zeros in c-blosc2 and is an error in
    numcodecs: only frames this check passes go to c-blosc2. Streams follow c-blosc1's layout:
    ``nblocks`` block offsets after the 16-byte header; in each block ``typesize`` streams
    (one when the frame's flags say "don't split", for the last, partial block, or for
    ``typesize > 16`` or blocks under 128 bytes per stream), each an ``<i4`` size then its bytes.
    """
    mv = memoryview(buf).cast("B")
    version, flags, typesize = mv[0], mv[2], mv[3]
    if version > 2 or typesize == 0:
        return False
    if flags & 0x2:  # memcpyed: the values follow the header as they are
        return True
    nbytes, blocksize, cbytes = struct.unpack_from("<iii", mv, 4)
    if blocksize <= 0 or nbytes <= 0 or cbytes > len(mv):
        return False
    nblocks, leftover = divmod(nbytes, blocksize)
    nblocks += leftover > 0
    if 16 + 4 * nblocks > cbytes:
        return False
    split = not flags & 0x10 and typesize <= 16 and blocksize // typesize >= 128
    for j, pos in enumerate(struct.unpack_from(f"<{nblocks}i", mv, 16)):
        for _ in range(typesize if split and not (leftover and j == nblocks - 1) else 1):
            if pos < 16 or pos + 4 > cbytes:
                return False
            (size,) = struct.unpack_from("<i", mv, pos)
            if size <= 0:
                return False
            pos += 4 + size
    return True


#: by the compressor a frame's flags name (bits 5-7): whether c-blosc2 decodes it faster than
#: numcodecs' c-blosc1 in a worker thread (both single-threaded), measured on 512x512 uint16
#: microscopy chunks cast to 2, 4 and 8-byte types (thread CPU time, blosc2/blosc1, no /
#: byte / bit shuffle): zstd 0.74-0.99; lz4 0.98-1.09, lz4hc 1.00-1.07, blosclz 0.93-1.09, zlib
#: 0.99-1.00: the same or slower, so they stay with c-blosc1; snappy: c-blosc2 has none.
_FASTER_IN_BLOSC2 = (False, False, False, False, True, False, False, False)


def _blosc_decode(codec: Any, buf: Buffer, out: Any = None) -> Buffer:
    """A blosc frame decoded (into ``out`` if given) by c-blosc2, else by numcodecs."""
    fast = blosc2_decoder()
    head = memoryview(buf).cast("B")[:4]
    # type size 1 too stays with c-blosc1: with the shuffle flag c-blosc2 takes 1.5-5x longer
    if fast is not None and len(head) == 4 and head[3] > 1 and _FASTER_IN_BLOSC2[head[2] >> 5]:
        with contextlib.suppress(Exception):  # numcodecs decides: its error names the problem
            if blosc1_streams_sized(buf):
                return fast(buf, numthreads=1, out=out)  # type: ignore[no-any-return]
    result: Buffer = codec.decode(buf, out=out) if out is not None else codec.decode(buf)
    return result


class NumcodecStage:
    """Delegates to a numcodecs codec (blosc, zstd, gzip, zlib, lz4, ...)."""

    __slots__ = ("_id", "codec")

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self._id = getattr(codec, "codec_id", None)

    def decode(self, buf: Buffer, limit: int | None = None, *, exact: bool = False) -> Buffer:
        cid = self._id
        if cid == "blosc":
            nbytes = blosc_sizes(buf)[0]
            if limit is not None:
                _check_stated("blosc", nbytes, limit, exact)
        elif limit is None:
            pass
        elif cid == "lz4":  # numcodecs' frame: a '<i4' decoded size, then an lz4 block
            _check_stated(
                "lz4", int.from_bytes(memoryview(buf).cast("B")[:4], "little"), limit, exact
            )
        elif cid == "zstd":
            size = zstd_content_size(buf)
            if size is not None:
                _check_stated("zstd", size, limit, exact)
            else:  # no stated size: decode into ``limit`` bytes, never more
                return _unsized_zstd(buf, limit, exact)
        elif cid == "zlib":
            return _inflate(buf, limit, exact)
        elif cid == "gzip":
            return _gunzip(buf, limit, exact)
        elif cid == "bz2":
            return _multistream("bz2", bz2.BZ2Decompressor, OSError, buf, limit, exact)
        elif cid == "lzma":
            c = self.codec
            # a stream's header sets the dictionary the decoder allocates (up to 1.5 GiB):
            # xz -9 needs 65 MiB
            mem = None if c.format == lzma.FORMAT_RAW else max(128 << 20, 2 * limit)
            return _multistream(
                "lzma",
                lambda: lzma.LZMADecompressor(format=c.format, memlimit=mem, filters=c.filters),
                lzma.LZMAError,
                buf,
                limit,
                exact,
            )
        if cid == "blosc":
            return _blosc_decode(self.codec, buf)
        out: Buffer = self.codec.decode(buf)
        return out

    def decode_into(self, buf: Buffer, out: Any) -> None:
        """Decode a blosc or numcodecs-lz4 frame straight into ``out`` (the caller checked the
        size its header states against ``out``)."""
        if self._id == "blosc":
            _blosc_decode(self.codec, buf, out)
        else:
            self.codec.decode(buf, out=out)

    def encode(self, buf: Buffer) -> Buffer:
        out: Buffer = self.codec.encode(buf)
        return out

    def __repr__(self) -> str:
        return f"NumcodecStage({self.codec!r})"


class Crc32cStage:
    """The v3 ``crc32c`` codec: a little-endian CRC-32C of the payload appended after it.

    Decoding verifies the checksum and returns a zero-copy view of the payload.
    """

    __slots__ = ()

    def decode(self, buf: Buffer, limit: int | None = None, *, exact: bool = False) -> Buffer:
        mv = memoryview(buf).cast("B")
        if len(mv) < 4:
            raise ValueError(f"buffer of {len(mv)} bytes is too short for a crc32c checksum")
        payload = mv[:-4]
        stored = int.from_bytes(mv[-4:], "little")
        computed = _crc32c.crc32c(payload)
        if stored != computed:
            raise ValueError(f"crc32c mismatch: stored {stored:#010x}, computed {computed:#010x}")
        return payload

    def encode(self, buf: Buffer) -> Buffer:
        mv = memoryview(buf).cast("B")
        out = bytearray(len(mv) + 4)
        out[:-4] = mv
        out[-4:] = _crc32c.crc32c(mv).to_bytes(4, "little")
        return out

    def __repr__(self) -> str:
        return "Crc32cStage()"


def blosc_stage(
    *, cname: str, clevel: int, shuffle: str, typesize: int, blocksize: int
) -> NumcodecStage:
    """A v3 ``blosc`` stage configured exactly as zarr-python configures numcodecs."""
    shuffle_int = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[shuffle]
    return NumcodecStage(
        numcodecs.Blosc(
            cname=cname, clevel=clevel, shuffle=shuffle_int, blocksize=blocksize, typesize=typesize
        )
    )
