"""Bytes->bytes stages: thin, stateless wrappers around numcodecs and crc32c.

Each stage has ``decode(buf) -> buffer`` and ``encode(buf) -> buffer`` where a buffer is any object
with the buffer protocol (``bytes``, ``memoryview``, a contiguous ``ndarray``). Stages hold no
mutable state, so one instance is shared by every worker thread.

Blosc and threads: numcodecs' ``Blosc`` picks its API per call from ``numcodecs.blosc.use_threads``
(``None`` by default: the global, internally-threaded blosc API guarded by numcodecs' own mutex on
the main thread, the re-entrant ``blosc_*_ctx`` API on any other thread). We never change that
global. Decoding in worker threads (the intended use) therefore takes the re-entrant path with no
shared state. zarr-python sets ``use_threads = False`` when it is imported; that is also safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import crc32c as _crc32c
import numcodecs

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["BytesStage", "Crc32cStage", "NumcodecStage", "blosc_sizes", "blosc_stage"]


class BytesStage(Protocol):
    """One bytes->bytes step of a pipeline."""

    def decode(self, buf: Buffer) -> Buffer: ...

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


class NumcodecStage:
    """Delegates to a numcodecs codec (blosc, zstd, gzip, zlib, lz4, ...)."""

    __slots__ = ("_blosc", "codec")

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self._blosc = getattr(codec, "codec_id", None) == "blosc"

    def decode(self, buf: Buffer) -> Buffer:
        if self._blosc:
            blosc_sizes(buf)
        out: Buffer = self.codec.decode(buf)
        return out

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

    def decode(self, buf: Buffer) -> Buffer:
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
