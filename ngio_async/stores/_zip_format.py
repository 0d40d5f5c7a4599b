"""The zip format for :mod:`~ngio_async.stores._zip` (pure, no I/O): the end records (ZIP64
too), the central directory, each entry's data offset from the layout or its local header, and
what an entry's bytes need (a range of it, DEFLATE inflation)."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .._errors import StoreError, UnsupportedError
from ._base import Buffer, ByteRequest, OffsetByteRequest, RangeByteRequest, byte_span

__all__ = [
    "DEFLATED",
    "LOCAL",
    "STORED",
    "Directory",
    "ZipEntry",
    "check_readable",
    "directory_place",
    "entry_span",
    "inflate",
    "local_start",
    "not_a_zip",
    "nothing_to_read",
    "parse_directory",
]

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_LOCATOR = struct.Struct("<4sLQL")  # ZIP64 end of central directory locator
_END64 = struct.Struct("<4sQ2H2L4Q")  # ZIP64 end of central directory record
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
LOCAL = struct.Struct("<4s5H3L2H")  # local file header
STORED, DEFLATED = 0, 8
_METHODS = {1: "shrink", 6: "implode", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd"}


@dataclass(slots=True)
class ZipEntry:
    """One file of the archive, as its central directory record tells."""

    name: str
    header: int  # offset of its local header in the zip
    size: int  # bytes stored in the zip (compressed size)
    length: int  # bytes of the file (uncompressed size)
    method: int  # 0: stored, 8: DEFLATE
    flags: int
    start: int | None  # offset of its data: from the layout (None: unknown), or the header's
    checked: bool = False  # ``start`` is the local header's
    limit: int = 0  # where its data must end: the next local header, or the central directory


@dataclass(frozen=True, slots=True)
class Directory:
    entries: dict[str, ZipEntry]
    version: str | None  # the zip object's version (ETag), None: unknown
    deflated: bool  # some entry is compressed


def not_a_zip(url: str, why: str) -> StoreError:
    return StoreError(f"{url} is not a readable zip file: {why}", url=url)


def _end_record(tail: memoryview, url: str) -> int:
    """The offset in ``tail`` of the end of central directory record: the first whose
    comment ends the file (a signature inside that comment is the comment's), else the last
    whose comment fits (bytes after the archive)."""
    shift = max(0, len(tail) - _END.size - 0xFFFF)
    data = bytes(tail[shift:])
    found: int | None = None
    pos = data.rfind(b"PK\x05\x06", 0, len(data) - _END.size + 4)
    while pos >= 0:
        end = pos + _END.size + struct.unpack_from("<H", data, pos + 20)[0]
        if end == len(data) or (end < len(data) and found is None):
            found = pos
        pos = data.rfind(b"PK\x05\x06", 0, pos)
    if found is not None:
        return found + shift
    raise not_a_zip(url, "no end of central directory record in its last bytes (not a zip file, or "
               "a truncated one)")  # fmt: skip


def directory_place(
    tail: memoryview, file_at: int | None, url: str
) -> tuple[int, int, int, int, int]:
    """``(offset of the central directory, its size, its entries, offset of tail[0], bytes
    before the archive)`` in the file, ``tail[0]`` at ``file_at`` (``None``: unknown, taken
    as where the directory says, bytes before the archive as none)."""
    pos = _end_record(tail, url)
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = _END.unpack_from(tail, pos)
    end_at = cd_offset + cd_size  # where the end record is, in a file of nothing else after
    loc = pos - _LOCATOR.size
    if loc >= 0 and bytes(tail[loc : loc + 4]) == b"PK\x06\x07":
        _, _, rec_offset, disks = _LOCATOR.unpack_from(tail, loc)
        rec = loc - _END64.size
        if rec < 0 or bytes(tail[rec : rec + 4]) != b"PK\x06\x06":
            raise not_a_zip(url, "its ZIP64 end record is not before its locator")
        _, _, _, _, disk, cd_disk, _, count, cd_size, cd_offset = _END64.unpack_from(tail, rec)
        if disks > 1:
            disk = 1
        end_at, pos = rec_offset, rec
    if disk or cd_disk:
        raise UnsupportedError(f"{url} is a multi-part zip file (RFC-9 takes one part)")
    base = end_at - pos if file_at is None else file_at
    before = base + pos - end_at  # (a self-extracting zip's program; offsets count from after)
    if base < 0 or before < 0 or cd_offset + cd_size > end_at:
        raise not_a_zip(url, f"its central directory ({cd_size} bytes at {cd_offset}) lies past the "
                   "end records (a truncated file?)")  # fmt: skip
    return cd_offset + before, cd_size, count, base, before


def _zip64_extra(extra: bytes, sizes: list[int]) -> None:
    """Replace the 0xFFFFFFFF fields of ``sizes`` ([length, size, header]) by the values of
    the ZIP64 extra field (they come in that order, only those that overflowed)."""
    at = 0
    while at + 4 <= len(extra):
        tag, n = struct.unpack_from("<2H", extra, at)
        if tag == 1:
            field = at + 4
            for i, value in enumerate(sizes):
                if value == 0xFFFFFFFF and field + 8 <= at + 4 + n:
                    sizes[i] = struct.unpack_from("<Q", extra, field)[0]
                    field += 8
            return
        at += 4 + n


def parse_directory(
    cd: memoryview, count: int, cd_offset: int, url: str, before: int = 0
) -> list[ZipEntry]:
    """The entries of the central directory ``cd`` (``count`` records expected; ``before``:
    bytes before the archive, added to the offsets it states)."""
    out: list[ZipEntry] = []
    lengths: list[tuple[int, int]] = []  # each record's name and extra field lengths
    at = 0
    while at + _CENTRAL.size <= len(cd) and bytes(cd[at : at + 4]) == b"PK\x01\x02":
        fields = _CENTRAL.unpack_from(cd, at)
        flags, method, csize, usize = fields[3], fields[4], fields[8], fields[9]
        nlen, elen, clen, header = fields[10], fields[11], fields[12], fields[16]
        at += _CENTRAL.size
        raw = bytes(cd[at : at + nlen])
        sizes = [usize, csize, header]
        _zip64_extra(bytes(cd[at + nlen : at + nlen + elen]), sizes)
        at += nlen + elen + clen
        try:
            name = raw.decode("utf-8" if flags & 0x800 else "cp437").replace("\\", "/")
        except UnicodeDecodeError:
            raise not_a_zip(url, f"the name {raw!r} is not UTF-8, as its flag says") from None
        while name.startswith(("/", "./")):  # (as unzip reads them: relative)
            name = name[2:] if name.startswith("./") else name[1:]
        out.append(ZipEntry(name, sizes[2] + before, sizes[1], sizes[0], method, flags, None))
        lengths.append((nlen, elen))
    if len(out) != count and count != 0xFFFF:
        raise not_a_zip(url, f"its central directory holds {len(out)} records, not {count}")
    _layout(out, lengths, cd_offset, url)
    return out


def _layout(
    entries: list[ZipEntry], lengths: list[tuple[int, int]], cd_offset: int, url: str
) -> None:
    """Each entry's data offset from the layout: its data ends where the next local header
    (or the central directory) begins, unless a data descriptor follows it (flag bit 3:
    unknown, read from its local header). Confirmed where that leaves a local extra field as
    long as the central one (as most writers make them: bytes between entries would have to
    be as many as the local field is shorter); else its local header confirms it."""
    order = sorted(range(len(entries)), key=lambda i: entries[i].header)
    for k, i in enumerate(order):
        entry = entries[i]
        end = entries[order[k + 1]].header if k + 1 < len(order) else cd_offset
        entry.limit = end
        if entry.header + LOCAL.size > cd_offset:
            raise not_a_zip(url, f"the local header of {entry.name!r} (at {entry.header}) lies past "
                       f"its central directory (at {cd_offset})")  # fmt: skip
        start = end - entry.size
        extra = start - entry.header - LOCAL.size - lengths[i][0]
        if not entry.flags & 0x8 and 0 <= extra <= 0xFFFF:
            entry.start, entry.checked = start, extra == lengths[i][1]


def local_start(head: Buffer, entry: ZipEntry, url: str) -> int:
    """The data offset an entry's local header (its first 30 bytes, ``head``) tells, its
    data ending before the next header (or the central directory)."""
    if len(head) < LOCAL.size or bytes(memoryview(head)[:4]) != b"PK\x03\x04":
        raise not_a_zip(url, f"no local header for {entry.name!r} at offset {entry.header} (bytes "
                   "before the archive, as in a self-extracting one, or its start cut off?)")  # fmt: skip
    nlen, elen = LOCAL.unpack_from(head, 0)[9:11]
    start = int(entry.header + LOCAL.size + nlen + elen)
    if start + entry.size > entry.limit:
        raise not_a_zip(url, f"{entry.name!r} ({entry.size} bytes at {start}) runs past the next "
                   f"entry or the central directory (at {entry.limit})")  # fmt: skip
    return start


def check_readable(entry: ZipEntry, url: str) -> None:
    if entry.method == STORED and entry.size != entry.length:
        raise not_a_zip(url, f"{entry.name!r} is stored, yet states {entry.size} bytes stored and "
                   f"{entry.length} bytes long")  # fmt: skip
    if entry.flags & 0x1:
        raise UnsupportedError(f"{entry.name!r} in {url} is encrypted: it cannot be read")
    if entry.method not in (STORED, DEFLATED):
        kind = _METHODS.get(entry.method, f"method {entry.method}")
        raise UnsupportedError(
            f"{entry.name!r} in {url} is compressed with {kind}: only entries stored or "
            "DEFLATE-compressed are read (rezip it stored, as RFC-9 recommends)"
        )


def entry_span(byte_range: ByteRequest | None, length: int, url: str, key: str) -> tuple[int, int]:
    """``[start, end)`` of ``byte_range`` in an entry of ``length`` bytes; a range starting
    at or past its end (not empty, not a suffix) is refused, as stores refuse it."""
    start, end = byte_span(byte_range, length)
    bounded = isinstance(byte_range, OffsetByteRequest) or (
        isinstance(byte_range, RangeByteRequest) and byte_range.end > byte_range.start
    )
    if start > end or (start == end and start >= length and bounded):
        raise StoreError(
            f"store error for {key!r} at {url}: requested range {byte_range} is invalid for "
            f"an object of {length} bytes",
            url=url,
            key=key,
        )
    return start, end


def nothing_to_read(entry: ZipEntry, stored: tuple[int, int] | None) -> bool:
    """Whether the stored bytes ``stored`` of ``entry`` (``None``: all) are none: an empty
    range of the zip is no range a server takes (HTTP: 416)."""
    if stored is None:
        return entry.method == STORED and entry.size == 0
    return stored[0] == stored[1]


def inflate(data: Buffer, entry: ZipEntry, url: str) -> bytes:
    try:
        out = zlib.decompressobj(-15).decompress(data, entry.length + 1)
    except zlib.error as exc:
        raise StoreError(f"{entry.name!r} in {url} does not inflate: {exc}", url=url) from exc
    if len(out) != entry.length:
        raise StoreError(
            f"{entry.name!r} in {url} inflates to {len(out)} bytes, not {entry.length}", url=url
        )
    return out
