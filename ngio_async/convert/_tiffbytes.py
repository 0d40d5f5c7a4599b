"""Reading a TIFF's pixels straight from its bytes: uncompressed tiles and strips region by
region, compressed strips decoded piece by piece into the region."""

from __future__ import annotations

import itertools
import math
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from .._errors import CodecError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

_Direct = tuple[tuple[int, ...], np.dtype[Any], tuple[int, ...], int]


class ByteSource(Protocol):
    """A TIFF's bytes by offset (a local file, or the ranges fetched of a remote one)."""

    def read_at(self, offset: int, n: int) -> bytes | bytearray:
        """Up to ``n`` bytes from ``offset`` (fewer at the end of the file)."""
        ...

    def fill_at(self, offset: int, out: memoryview) -> None:
        """``out`` filled with the bytes from ``offset``."""
        ...

    def view_at(self, offset: int, n: int) -> bytes | bytearray | memoryview:
        """As :meth:`read_at`, without a copy where the bytes are in memory already."""
        ...


class _FileBytes:
    """:class:`ByteSource` over an open local file (``name`` for errors)."""

    def __init__(self, f: Any, name: str) -> None:
        self.f = f
        self.name = name

    def read_at(self, offset: int, n: int) -> bytes:
        self.f.seek(offset)
        return bytes(self.f.read(n))

    def view_at(self, offset: int, n: int) -> bytes:
        return self.read_at(offset, n)

    def fill_at(self, offset: int, out: memoryview) -> None:
        self.f.seek(offset)
        while out.nbytes:
            n = self.f.readinto(out)
            if not n:
                raise CodecError(f"{self.name} is truncated: pixel data missing", key=self.name)
            out = out[n:]


_DIRECT_TILE = 1024  # y/x chunks of uncompressed levels read from the file


def _direct(tif: Any, level: Any) -> _Direct | None:
    """``(offsets, dtype, shape, lead)`` of a level whose pixels lie uncompressed in the
    file, each page's contiguous (``offsets``: one per page; the first ``lead`` axes of
    ``shape`` number the pages), or the whole level's (one offset, ``lead`` 0: as
    :func:`tifffile.memmap` maps it); else ``None``."""
    try:
        key = level.keyframe
        if key.dtype is None or not key.is_final:
            return None
        if int(key.bitspersample) != key.dtype.itemsize * 8:
            return None
        dtype = np.dtype(tif.byteorder + key.dtype.char)
        shape = tuple(int(n) for n in level.shape)
        if level.dataoffset is not None:
            return (int(level.dataoffset),), dtype, shape, 0
        pages = list(level.pages)
        lead = len(shape) - len(key.shape)
        if lead < 0 or shape[lead:] != tuple(int(n) for n in key.shape):
            return None
        if math.prod(shape[:lead]) != len(pages):
            return None
        if any(p is None or not len(p.dataoffsets) or not p.is_final for p in pages):
            return None
        if any(getattr(p, "parent", tif) is not tif for p in pages):
            return None  # a multi-file OME-TIFF: its other files' pages go through tifffile
        return tuple(int(p.dataoffsets[0]) for p in pages), dtype, shape, lead
    except (AttributeError, TypeError, ValueError):
        return None


def _bounds(selection: tuple[Any, ...], shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(start, stop)`` per axis of ``selection`` (integers and step-1 slices)."""
    bounds: list[tuple[int, int]] = []
    for sel, n in zip(selection, shape, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            if step != 1:
                raise ValueError(f"step {step} in a TIFF region")
            bounds.append((start, max(start, stop)))
        else:
            i = int(sel) + (n if int(sel) < 0 else 0)
            bounds.append((i, i + 1))
    return bounds


def _squeezed(out: NDArray[Any], selection: tuple[Any, ...]) -> NDArray[Any]:
    """``out`` (one axis per selection item) without the axes selected by an integer."""
    return out.reshape(
        [n for n, sel in zip(out.shape, selection, strict=True) if isinstance(sel, slice)]
    )


def _runs(direct: _Direct, selection: tuple[Any, ...]) -> list[tuple[int, int]]:
    """``(offset, bytes)`` in the file of each contiguous run of ``selection`` (integers and
    step-1 slices) of a level :func:`_direct` located (a row segment, or several whole rows of
    a page), in the region's C order; all runs are of one length."""
    offsets, dtype, shape, lead = direct
    bounds = _bounds(selection, shape)
    if any(b <= a for a, b in bounds):
        return []
    # axes after k are whole: a run spans axis k's range and everything after it in a page
    k = len(shape) - 1
    while k > lead and bounds[k] == (0, shape[k]):
        k -= 1
    strides = [math.prod(shape[i + 1 :]) for i in range(lead, len(shape))]
    size = math.prod(b - a for a, b in bounds[k:]) * dtype.itemsize
    out: list[tuple[int, int]] = []
    for index in itertools.product(*(range(a, b) for a, b in bounds[:k])):
        page = int(np.ravel_multi_index(index[:lead], shape[:lead])) if lead else 0
        inner = sum(i * st for i, st in zip(index[lead:], strides, strict=False))
        inner += bounds[k][0] * strides[k - lead]
        out.append((offsets[page] + inner * dtype.itemsize, size))
    return out


def _read_contiguous(
    source: ByteSource, direct: _Direct, selection: tuple[Any, ...]
) -> NDArray[Any]:
    """``array[selection]`` (integers and step-1 slices) of a level :func:`_direct` located,
    one read per contiguous run of the region (:func:`_runs`): no more bytes than the region's
    are read or kept."""
    bounds = _bounds(selection, direct[2])
    out = np.empty([b - a for a, b in bounds], direct[1])
    if out.size:
        spans = _runs(direct, selection)
        for row, (offset, _) in zip(out.reshape(len(spans), -1), spans, strict=True):
            source.fill_at(offset, memoryview(row.view(np.uint8).data))
    return _squeezed(out, selection)


class _Strips(NamedTuple):
    """Where a level's compressed strips lie in the file (see :func:`_strips`)."""

    offsets: tuple[tuple[int, ...], ...]  # per page, per strip
    counts: tuple[tuple[int, ...], ...]
    dtype: np.dtype[Any]  # in the file's byte order
    shape: tuple[int, ...]  # the level's: ``lead`` axes numbering the pages, then y, x(, s)
    lead: int
    rows: int  # per strip
    predictor: bool  # horizontal differencing
    compression: int = 8  # the TIFF Compression tag's value

    @property
    def streamed(self) -> bool:
        """Whether a strip decodes a piece at a time (deflate) rather than whole."""
        return self.compression in _STREAMED


_PIECE = 1 << 16  # bytes decoded (and read compressed) at a time


_STREAMED = (8, 32946)  # deflate: zlib decodes a piece of a strip at a time


#: compressions whose strips ``imagecodecs`` decodes into a given buffer, and (``_STOPS``)
#: those that stop where the buffer ends (a strip's rows down to the region's last)
_WHOLE = {5: "lzw", 32773: "packbits", 34925: "lzma", 34926: "zstd", 50000: "zstd"}


_STOPS = (5, 34925)


def _decoder(compression: int) -> Any:
    """``imagecodecs``' decoder of the strips of ``compression`` (one of :data:`_WHOLE`);
    ``None`` without the package (tifffile then reads the level, or the open refuses it)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return getattr(imagecodecs, f"{_WHOLE[compression]}_decode", None)


def _strips(tif: Any, level: Any) -> _Strips | None:
    """The strips of a level whose pages are compressed strips (no tiles): deflate, or with
    ``imagecodecs`` LZW, PackBits, LZMA, ZSTD; with no predictor or horizontal differencing of
    integers. :func:`_read_strips` decodes them (deflate piece by piece, the others a strip at
    a time); ``None`` for any other layout (read through tifffile)."""
    try:
        key = level.keyframe
        if key.dtype is None or key.is_tiled or int(key.fillorder) != 1:
            return None
        compression = int(key.compression)
        if compression not in _STREAMED and (
            compression not in _WHOLE or _decoder(compression) is None
        ):
            return None
        predictor = int(key.predictor)
        if predictor not in (1, 2) or (predictor == 2 and key.dtype.kind not in "ui"):
            return None
        if int(key.bitspersample) != key.dtype.itemsize * 8 or key.shaped[:2] != (1, 1):
            return None
        shape = tuple(int(n) for n in level.shape)
        page_shape = tuple(int(n) for n in key.shape)
        lead = len(shape) - len(page_shape)
        if lead < 0 or shape[lead:] != page_shape or len(page_shape) not in (2, 3):
            return None
        pages = list(level.pages)
        if math.prod(shape[:lead]) != len(pages) or any(p is None for p in pages):
            return None
        if any(getattr(p, "parent", tif) is not tif for p in pages):
            return None
        rows = min(int(key.rowsperstrip) or page_shape[0], page_shape[0])
        strips = -(-page_shape[0] // rows)
        offsets = tuple(tuple(int(o) for o in p.dataoffsets) for p in pages)
        counts = tuple(tuple(int(n) for n in p.databytecounts) for p in pages)
        if any(len(o) != strips or len(n) != strips for o, n in zip(offsets, counts, strict=True)):
            return None
        dtype = np.dtype(tif.byteorder + key.dtype.char)
        return _Strips(offsets, counts, dtype, shape, lead, rows, predictor == 2, compression)
    except (AttributeError, TypeError, ValueError):
        return None


def _inflate(
    source: ByteSource, offset: int, count: int, nbytes: int, piece: int
) -> Iterator[bytes]:
    """The first ``nbytes`` of the zlib stream of ``count`` bytes at ``offset``, in pieces of
    ``piece`` bytes (the last shorter): read and decoded a piece at a time.

    :raises ValueError: the stream ends (or the strip's bytes do) before ``nbytes``.
    """
    inflater = zlib.decompressobj()
    at, left, done = offset, count, 0
    pending: bytes | bytearray = b""
    while done < nbytes:
        want = min(piece, nbytes - done)
        parts: list[bytes] = []
        got = 0
        while got < want:
            if not pending:
                if not left or inflater.eof:
                    raise ValueError(f"strip at byte {offset} ends after {done + got} bytes")
                pending = source.read_at(at, min(_PIECE, left))
                if not pending:
                    raise ValueError(f"strip at byte {offset} is cut short by the end of file")
                left -= len(pending)
                at += len(pending)
            part = inflater.decompress(pending, want - got)
            pending = inflater.unconsumed_tail
            parts.append(part)
            got += len(part)
        done += want
        yield parts[0] if len(parts) == 1 else b"".join(parts)


def _read_strips(source: ByteSource, strips: _Strips, selection: tuple[Any, ...]) -> NDArray[Any]:
    """``array[selection]`` of a level :func:`_strips` located: each strip the region
    overlaps decoded a piece of rows at a time (up to its last row in the region) and the
    region's part of each piece copied out, so that no strip is held whole (a plane stored as
    one compressed strip is converted with about its own size in memory)."""
    shape, lead, rows = strips.shape, strips.lead, strips.rows
    bounds = _bounds(selection, shape)
    out = np.empty([b - a for a, b in bounds], strips.dtype.newbyteorder("="))
    if not out.size:
        return _squeezed(out, selection)
    y0, y1 = bounds[lead]
    for index in itertools.product(*(range(a, b) for a, b in bounds[:lead])):
        page = int(np.ravel_multi_index(index, shape[:lead])) if lead else 0
        dst = out[tuple(i - a for i, (a, _) in zip(index, bounds, strict=False))]
        for s in range(y0 // rows, (y1 - 1) // rows + 1):
            _strip_rows(source, strips, page, s, bounds[lead:], dst)
    return _squeezed(out, selection)


def _strip_rows(
    source: ByteSource,
    strips: _Strips,
    page: int,
    strip: int,
    bounds: list[tuple[int, int]],
    dst: NDArray[Any],
) -> None:
    """Decode strip ``strip`` of page ``page`` up to the last row in ``bounds`` (y, x(, s))
    and copy its rows in the region into ``dst`` (the region's rows of that page)."""
    y0, y1 = bounds[0]
    row_shape = strips.shape[strips.lead + 1 :]
    row_bytes = math.prod(row_shape) * strips.dtype.itemsize
    at = strip * strips.rows  # the strip's first row, then of each piece
    needed = min(y1, at + strips.rows, strips.shape[strips.lead]) - at
    offset, count = strips.offsets[page][strip], strips.counts[page][strip]
    if not offset or not count:  # a strip never written: zeros, as tifffile reads it
        dst[max(at, y0) - y0 : at + needed - y0] = 0
        return
    if not strips.streamed:
        _whole_strip(source, strips, (offset, count), at, needed, bounds, dst)
        return
    piece = max(row_bytes, _PIECE // row_bytes * row_bytes)
    for buf in _inflate(source, offset, count, needed * row_bytes, piece):
        block = np.frombuffer(buf, strips.dtype).reshape(-1, *row_shape)
        _place(strips, block, at, bounds, dst)
        at += len(block)


def _place(
    strips: _Strips, block: NDArray[Any], at: int, bounds: list[tuple[int, int]], dst: NDArray[Any]
) -> None:
    """Copy the rows in the region (``bounds``: y, x(, s)) of ``block``, decoded rows from row
    ``at``, into ``dst`` (the region's rows of the page), the predictor undone."""
    (y0, y1), (x0, x1) = bounds[0], bounds[1]
    if block.dtype != dst.dtype or (strips.predictor and not block.flags.writeable):
        block = block.astype(dst.dtype)  # writable, native
    if strips.predictor:
        np.cumsum(block, axis=1, dtype=dst.dtype, out=block)
    lo, hi = max(at, y0), min(at + len(block), y1)
    if lo < hi:
        rest = tuple(slice(a, b) for a, b in bounds[2:])
        dst[lo - y0 : hi - y0] = block[(slice(lo - at, hi - at), slice(x0, x1), *rest)]


def _whole_strip(
    source: ByteSource,
    strips: _Strips,
    segment: tuple[int, int],
    at: int,
    needed: int,
    bounds: list[tuple[int, int]],
    dst: NDArray[Any],
) -> None:
    """Decode the strip at ``segment`` (offset, bytes), first row ``at``, of a compression
    :func:`_decoder` decodes whole (its first ``needed`` rows where the codec stops early):
    straight into ``dst`` when the region takes those rows whole (a plane stored as one strip
    is decoded into the output, with only its compressed bytes beside it), else into a buffer
    of the strip's rows, copied out."""
    offset, count = segment
    row_shape = strips.shape[strips.lead + 1 :]
    own = min(strips.rows, strips.shape[strips.lead] - at)  # the strip's rows
    rows = needed if strips.compression in _STOPS else own
    data = source.view_at(offset, count)
    if len(data) < count:
        raise ValueError(f"strip at byte {offset} is cut short by the end of file")
    y0 = bounds[0][0]
    whole = all(b == (0, n) for b, n in zip(bounds[1:], row_shape, strict=True))
    if whole and at >= y0 and rows == needed and dst.dtype == strips.dtype:
        block = dst[at - y0 : at - y0 + rows]
        if block.flags.c_contiguous:
            _decode_into(strips.compression, data, block, offset)
            if strips.predictor:
                np.cumsum(block, axis=1, dtype=block.dtype, out=block)
            return
    block = np.empty((rows, *row_shape), strips.dtype)
    _decode_into(strips.compression, data, block, offset)
    _place(strips, block, at, bounds, dst)


def _decode_into(compression: int, data: Any, out: NDArray[Any], offset: int) -> None:
    """Fill ``out`` (C-contiguous) with the first bytes the strip ``data`` (at byte
    ``offset``) decodes to.

    :raises ValueError: the strip decodes to fewer bytes than ``out`` holds.
    """
    decode = _decoder(compression)
    view = out.reshape(-1).view(np.uint8)
    try:
        got = memoryview(decode(data, out=view)).nbytes
    except Exception:
        if compression in _STOPS:
            raise
        # a strip of more rows than the image has left (a last strip written whole): the
        # codec refuses a buffer too small for it, so it is decoded into its own
        decoded = np.frombuffer(decode(data), np.uint8)
        got = min(decoded.nbytes, view.nbytes)
        view[:got] = decoded[:got]
    if got < view.nbytes:
        raise ValueError(f"strip at byte {offset} decodes to {got} bytes, not {view.nbytes}")
