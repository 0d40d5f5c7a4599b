"""TIFF / OME-TIFF on any store (``http(s)://``, ``s3://``, ``gs://``, ``az://``) through ranged
``store.get`` / ``get_ranges``.

tifffile parses and decodes; it reads from a :class:`RangeFile`, a read-only file object over
the byte ranges fetched so far. A read of bytes not fetched raises :class:`NeedBytes`, never
waits: the async side fetches them and runs the step again. So no thread ever blocks on I/O
and no thread bridges back to the event loop.

- **Opening** reads a prefix (``prefix`` bytes, one request), then parses the header, the
  series, every level's pages and tile tables in a worker thread; each miss (an IFD further in
  the file) fetches ``block`` bytes from there and parses again from the start. A TIFF whose
  IFDs lie within the prefix opens in one request; otherwise each IFD further on costs about
  one request (tifffile writes each page's IFD next to its pixels: an 8-page 4-channel
  pyramid took 8 requests).
- **Reading a region** computes, from the pages' ``dataoffsets`` / ``databytecounts``, the
  bytes it needs: uncompressed pixels, the region's own rows; deflate strips, the share of
  each strip down to the region's last row (the rest on a miss); other tiles or strips (LZW,
  ZSTD, JPEG, ... with ``imagecodecs``), those it overlaps. It fetches them concurrently with
  ``store.get_ranges`` (close ranges coalesced, bounded by the store's limiter), then decodes
  in a worker thread (deflate strips piece by piece, LZW / ZSTD / PackBits / LZMA strips one
  at a time, others through tifffile's zarr view). The fetched bytes are dropped after the
  read (the header stays), but for strips decoded whole (LZW, ZSTD, ...: a region needs its
  strip from the start): the last ones fetched are kept (``KEEP_BYTES``, the latest one in
  any case) and a strip being fetched is waited for, so the regions of a plane stored as one
  strip (a conversion's shards, read several at once) fetch it once, not once each.
- **A file of a multi-file OME-TIFF** (planes or metadata in other files beside it) opens the
  whole set, each of its files read by ranges in the same way (:mod:`._tiffremoteset`).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import math
import posixpath
import threading
from collections import OrderedDict
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio

from .._errors import CodecError, NotFoundError, StoreError, UnsupportedError
from ..stores import RangeByteRequest, open_store
from ._tiff import TiffSource
from ._tiffbytes import ByteSource, _bounds, _direct, _runs, _Strips, _strips
from ._tiffsets import MultiFileError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from numpy.typing import NDArray

    from .._limits import Limits
    from ..stores import AsyncStore, Buffer

__all__ = [
    "NeedBytes",
    "NeedBytesError",
    "RangeFile",
    "RemoteTiffSource",
    "open_remote_set",
    "open_remote_tiff",
]

PREFIX = 256 * 1024
BLOCK = 64 * 1024
_UNKNOWN_SIZE = 1 << 60  # until the end of the object has been seen
_MAX_MISSES = 4096
_SHARE_MARGIN = 64 * 1024  # bytes fetched past a strip's estimated share
KEEP_BYTES = 64 * 1024 * 1024  # strips decoded whole kept for the next reads (and the latest)


class NeedBytes(BaseException):
    """Bytes ``[start, end)`` are not fetched yet (a ``BaseException``, so that tifffile's
    ``except Exception`` around its parsing cannot swallow it)."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start = start
        self.end = end


class NeedBytesError(Exception):
    """:class:`NeedBytes` raised where an event loop runs the read (zarr's), which must only see
    ``Exception``\\ s."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(f"bytes [{start}, {end}) not fetched")
        self.control_flow = True  # no decoding error: the reader fetches them and retries
        self.start = start
        self.end = end


class RangeFile(io.RawIOBase):
    """A seekable read-only file over fetched byte ranges; reading elsewhere raises.

    ``strict`` (default) raises :class:`NeedBytes`, otherwise :class:`NeedBytesError`.
    Ranges are kept in ``ranges`` (start -> bytes, possibly overlapping); ``pin`` / ``unpin``
    count the users of a range so that concurrent reads can drop theirs.
    """

    def __init__(self, name: str, size: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.size = _UNKNOWN_SIZE if size is None else size
        self.strict = True
        #: the version (ETag) of the object its bytes come from: every later fetch asks for
        #: it (``if_match``), a file rewritten meanwhile is a ``ChangedError``, never a mix
        self.version: str | None = None
        self._pos = 0
        self._starts: list[int] = []
        self._data: dict[int, Buffer] = {}
        self._pins: dict[int, int] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- the cache
    def add(self, start: int, data: Buffer, pin: bool = False) -> None:
        """Keep ``data`` as the bytes from ``start`` (a longer range at ``start`` wins)."""
        with self._lock:
            old = self._data.get(start)
            if old is None:
                bisect.insort(self._starts, start)
                self._data[start] = data
            elif len(data) > len(old):
                self._data[start] = data
            if pin and (old is None or start in self._pins):  # kept ranges stay kept
                self._pins[start] = self._pins.get(start, 0) + 1

    def pin(self, start: int) -> bool:
        """One more pin of the range at ``start``; ``False``: there is none (a kept range,
        never dropped, takes no pin)."""
        with self._lock:
            if start not in self._data:
                return False
            if start in self._pins:
                self._pins[start] += 1
            return True

    def unpin(self, start: int) -> None:
        """Release one pin of the range at ``start``; the last one drops it."""
        with self._lock:
            if start not in self._pins:
                return
            n = self._pins[start] - 1
            if n > 0:
                self._pins[start] = n
                return
            self._pins.pop(start, None)
            if self._data.pop(start, None) is not None:
                self._starts.remove(start)

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end)`` that no range fetched for good (no pin: a header, a
        parse's miss) holds: what a read still has to fetch of it."""
        with self._lock:
            kept = [(s, s + len(self._data[s])) for s in self._starts if s not in self._pins]
        out: list[tuple[int, int]] = []
        at = start
        for s, e in kept:
            if e <= at or s >= end:
                continue
            if s > at:
                out.append((at, s))
            at = max(at, e)
            if at >= end:
                break
        if at < end:
            out.append((at, end))
        return out

    @property
    def pinned_bytes(self) -> int:
        """Bytes of the ranges reads hold now (dropped when the last one is done)."""
        with self._lock:
            return sum(len(self._data[s]) for s in self._pins)

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(len(d) for d in self._data.values())

    def _copy(self, pos: int, out: memoryview) -> None:
        """Fill ``out`` with the bytes from ``pos``, from one or several adjacent ranges."""
        n, done = len(out), 0
        with self._lock:
            while done < n:
                at = pos + done
                i = bisect.bisect_right(self._starts, at)
                best: tuple[int, Buffer] | None = None
                for start in reversed(self._starts[max(0, i - 8) : i]):
                    data = self._data[start]
                    if start + len(data) > at and (
                        best is None or start + len(data) > best[0] + len(best[1])
                    ):
                        best = (start, data)
                if best is None:
                    end = pos + n
                    raise NeedBytes(at, end) if self.strict else NeedBytesError(at, end)
                start, data = best
                take = min(n - done, start + len(data) - at)
                out[done : done + take] = memoryview(data)[at - start : at - start + take]
                done += take

    def read_at(self, offset: int, n: int) -> bytearray:
        """Up to ``n`` fetched bytes from ``offset`` (fewer at the end of the object), apart
        from the file position (threads share the file); raises as :meth:`readinto` does."""
        n = max(0, min(n, self.size - offset))
        out = bytearray(n)
        if n:
            self._copy(offset, memoryview(out))
        return out

    def view_at(self, offset: int, n: int) -> bytearray | memoryview:
        """As :meth:`read_at`, but a view of the fetched range (no copy) when one holds them
        all: a strip decoded whole is not held twice."""
        n = max(0, min(n, self.size - offset))
        with self._lock:
            i = bisect.bisect_right(self._starts, offset)
            for start in reversed(self._starts[max(0, i - 8) : i]):
                data = self._data[start]
                if start + len(data) >= offset + n:
                    return memoryview(data).cast("B")[offset - start : offset - start + n]
        return self.read_at(offset, n)

    def fill_at(self, offset: int, out: memoryview) -> None:
        """``out`` filled with the fetched bytes from ``offset`` (as :meth:`read_at`)."""
        if offset + out.nbytes > self.size:
            raise CodecError(f"{self.name} is truncated: pixel data missing", key=self.name)
        self._copy(offset, out.cast("B"))

    # ---------------------------------------------------------------- io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        n = max(0, min(len(out), self.size - self._pos))
        if n:
            self._copy(self._pos, out[:n])
        self._pos += n
        return n


def _split(url: str) -> tuple[str, str]:
    """``scheme://host/dir/name.tif`` -> (``scheme://host/dir``, ``name.tif``). On http(s) the
    key is the decoded name (the store quotes it again) and a query stays with the root (the
    store sends it with every request); bucket URLs are literal, as their stores take them."""
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.path.rpartition("/")[2]:
        directory, _, name = parts.path.rpartition("/")
        root = urlunsplit((parts.scheme, parts.netloc, directory, parts.query, ""))
        return root, unquote(name)
    root, _, key = url.rpartition("/")
    if not key or root.endswith((":/", ":")):
        raise ValueError(f"{url!r}: a TIFF URL names a file (scheme://bucket-or-host/.../x.tif)")
    return root, key


class RemoteTiffSource(TiffSource):
    """A TIFF on a store: :class:`TiffSource`'s metadata and levels, pixels by ranged reads.

    Made by :func:`open_remote_tiff`. ``requests`` counts the ranged reads of pixel data.
    """

    def __init__(
        self, url: str, file: RangeFile, store: AsyncStore, key: str, series: int, threads: int
    ) -> None:
        import tifffile

        file.strict = True
        file.seek(0)  # tifffile takes the position as the start of the TIFF
        tif = tifffile.TiffFile(cast("IO[bytes]", file), name=key)
        try:
            super().__init__(url, series, threads, tif=tif)
            # every page's tile table, parsed now (while misses are signals) and kept, so
            # that planning a read never touches the file
            self._tables: list[list[tuple[tuple[int, ...], tuple[int, ...]] | None]] = []
            for lvl in self._series.levels[: self.levels]:
                table: list[tuple[tuple[int, ...], tuple[int, ...]] | None] = []
                for i in range(len(lvl.pages)):
                    page = lvl.pages[i]
                    table.append(
                        None
                        if page is None
                        else (
                            tuple(int(o) for o in page.dataoffsets),
                            tuple(int(n) for n in page.databytecounts),
                        )
                    )
                self._tables.append(table)
            self._keys = [lvl.keyframe for lvl in self._series.levels[: self.levels]]
            self._src_shapes = [
                tuple(int(n) for n in lvl.shape) for lvl in self._series.levels[: self.levels]
            ]
            # uncompressed regions and deflate strips read from the fetched bytes, as from a
            # local file: only the region's rows fetched, strips decoded piece by piece
            levels = self._series.levels[: self.levels]
            self._direct = [_direct(tif, lvl) for lvl in levels]
            self._strips = [
                None if d else _strips(tif, lvl)
                for d, lvl in zip(self._direct, levels, strict=True)
            ]
            # levels of strips decoded whole (LZW, ZSTD, ... strips; not tiles): their
            # strips are kept for the next reads (:meth:`_fetch_kept`)
            self._keeps = [
                d is None and not key.is_tiled and (st is None or not st.streamed)
                for d, st, key in zip(self._direct, self._strips, self._keys, strict=True)
            ]
            file.strict = False
            self._chunks = [self.level_chunks(i) for i in range(self.levels)]
        except BaseException:
            tif.close()
            raise
        self.file = file
        self.store = store
        self.key = key
        self.requests = 0
        self._kept: OrderedDict[tuple[int, int], None] = OrderedDict()  # oldest first
        self._kept_bytes = 0
        self._fetching: dict[tuple[int, int], anyio.Event] = {}  # strips on their way

    def ranges(self, region: tuple[slice, ...], level: int) -> list[tuple[int, int]] | None:
        """The byte ranges of the tiles / strips that ``region`` of ``level`` overlaps;
        ``None`` for a layout this does not map (then the read fetches what it misses).
        Uncompressed pixels: the byte runs of the region itself (not whole strips)."""
        direct, strips = self._direct[level], self._strips[level]
        if direct is not None:
            spans = _runs(direct, self._source_selection(region))
            return _merged([(offset, offset + n) for offset, n in spans])
        if strips is not None:
            return _strip_shares(strips, self._source_selection(region))
        key, table = self._keys[level], self._tables[level]
        page_shape = tuple(int(n) for n in key.shape)
        shape = self._src_shapes[level]
        lead = len(shape) - len(page_shape)
        axes = str(key.axes)
        if lead < 0 or shape[lead:] != page_shape or "YX" not in axes:
            return None
        src: list[slice] = [slice(None)] * len(shape)
        for sl, i in zip(self.physical(region), self._src_of, strict=True):
            src[i] = sl
        for i, name in enumerate(self._map):
            if name is None:
                src[i] = slice(0, 1)
        yaxis = lead + axes.index("Y")
        y0, y1, _ = src[yaxis].indices(shape[yaxis])
        x0, x1, _ = src[yaxis + 1].indices(shape[yaxis + 1])
        if y1 <= y0 or x1 <= x0:
            return []
        lead_ranges = [range(*s.indices(n)) for s, n in zip(src[:lead], shape[:lead], strict=True)]
        segments = _segments(key, y0, y1, x0, x1)
        if segments is None:
            return None
        out: list[tuple[int, int]] = []
        for index in _product(lead_ranges):
            p = _ravel(index, shape[:lead]) if lead else 0
            if p >= len(table):
                return None
            entry = table[p]
            if entry is None:
                continue
            offsets, counts = entry
            out.extend(
                (int(offsets[s]), int(offsets[s]) + int(counts[s]))
                for s in segments
                if s < len(offsets) and counts[s] > 0
            )
        return sorted(set(out))

    async def read(self, region: tuple[slice, ...], level: int = 0) -> NDArray[Any]:
        """Fetch the tiles / strips of ``region`` concurrently, then decode in a worker thread."""
        ranges = self.ranges(tuple(region), level)  # from the kept tables: no file access
        pinned: list[int] = []
        try:
            if ranges and self._keeps[level]:
                await self._fetch_kept(ranges, pinned)
            elif ranges:
                await self._fetch(ranges, pinned)
            for _ in range(_MAX_MISSES):
                try:
                    return await anyio.to_thread.run_sync(
                        self.read_sync, region, level, limiter=self._limiter
                    )
                except (NeedBytes, NeedBytesError) as need:  # a layout not mapped above
                    end = min(self._miss_end(level, need.start, need.end), self.file.size)
                    await self._fetch([(need.start, end)], pinned)
            raise RuntimeError(f"{self.url}: TIFF read of {region} does not converge")
        finally:
            for start in pinned:
                self.file.unpin(start)

    def _miss_end(self, level: int, start: int, end: int) -> int:
        """``end``, or the end of the strip holding byte ``start`` when a read of a level of
        deflate strips ran past the share fetched of it (:func:`_strip_shares`): its rest in
        one request, not 64 KiB at a time with the strip decoded anew after each."""
        strips = self._strips[level]
        if strips is not None:
            for offsets, counts in zip(strips.offsets, strips.counts, strict=True):
                for offset, count in zip(offsets, counts, strict=True):
                    if offset <= start < offset + count:
                        return max(end, offset + count)
        return end

    @contextlib.contextmanager
    def _bytes(self) -> Iterator[ByteSource]:
        yield self.file

    async def _fetch(self, ranges: Sequence[tuple[int, int]], pinned: list[int]) -> None:
        bufs = await self.store.get_ranges(self.key, ranges, if_match=self.file.version)
        if bufs is None:
            raise NotFoundError(f"{self.url} disappeared")
        self.requests += len(ranges)
        for (start, _), buf in zip(ranges, bufs, strict=True):
            self.file.add(start, buf, pin=True)
            pinned.append(start)

    async def _fetch_kept(self, ranges: Sequence[tuple[int, int]], pinned: list[int]) -> None:
        """:meth:`_fetch` of whole strips: those kept (or on their way for another read) are
        not fetched again; those fetched are kept for the next reads."""
        todo: list[tuple[int, int]] = []
        waits: list[tuple[tuple[int, int], anyio.Event]] = []
        for r in ranges:
            if r in self._fetching:
                waits.append((r, self._fetching[r]))
            elif not self._reuse(r, pinned):
                todo.append(r)
        mine = {r: anyio.Event() for r in todo}
        self._fetching.update(mine)
        try:
            if todo:
                await self._fetch(todo, pinned)
                for r in todo:
                    self._keep(r)
        finally:
            for r, done in mine.items():
                self._fetching.pop(r, None)
                done.set()
        for r, done in waits:
            await done.wait()
            if not self._reuse(r, pinned):  # its fetch failed (or it was dropped since)
                await self._fetch([r], pinned)

    def _reuse(self, r: tuple[int, int], pinned: list[int]) -> bool:
        """Pin the kept strip ``r`` for this read; ``False``: it is not kept."""
        if r not in self._kept or not self.file.pin(r[0]):
            return False
        self._kept.move_to_end(r)
        pinned.append(r[0])
        return True

    def _keep(self, r: tuple[int, int]) -> None:
        """Keep strip ``r`` (its own pin) for the next reads; the oldest kept ones dropped
        past :data:`KEEP_BYTES` (the latest stays)."""
        if r in self._kept or not self.file.pin(r[0]):
            return
        self._kept[r] = None
        self._kept_bytes += r[1] - r[0]
        while self._kept_bytes > KEEP_BYTES and len(self._kept) > 1:
            (start, end), _ = self._kept.popitem(last=False)
            self._kept_bytes -= end - start
            self.file.unpin(start)

    async def aclose(self) -> None:
        for start, _ in self._kept:
            self.file.unpin(start)
        self._kept.clear()
        self._kept_bytes = 0
        try:
            await super().aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.aclose()


def _strip_shares(strips: _Strips, selection: tuple[Any, ...]) -> list[tuple[int, int]]:
    """The byte ranges to fetch for ``selection`` of a level of compressed strips: each strip
    it overlaps whole (LZW, ZSTD, ... decode a strip whole); of a deflate strip, the share of
    its bytes its rows down to the region's last take (a strip decodes from its start), with
    a margin; the rest, where those rows compress worse than the average, comes on the read's
    miss (:meth:`RemoteTiffSource._miss_end`). The top quarter of a plane stored as one
    deflate strip fetches about a third of it, not all of it."""
    bounds = _bounds(selection, strips.shape)
    if any(b <= a for a, b in bounds):
        return []
    lead, rows, length = strips.lead, strips.rows, strips.shape[strips.lead]
    y0, y1 = bounds[lead]
    out: list[tuple[int, int]] = []
    for index in _product([range(a, b) for a, b in bounds[:lead]]):
        page = _ravel(index, strips.shape[:lead]) if lead else 0
        for s in range(y0 // rows, (y1 - 1) // rows + 1):
            offset, count = strips.offsets[page][s], strips.counts[page][s]
            first = s * rows
            whole = min(rows, length - first)
            needed = min(y1, first + whole) - first
            if offset and count and not strips.streamed:  # decoded whole: fetched whole
                out.append((offset, offset + count))
            elif offset and count:
                share = count * needed // whole + count // 8 + _SHARE_MARGIN
                out.append((offset, offset + min(count, share)))
    return out


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` sorted, the touching or overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _product(ranges: list[range]) -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*ranges))


def _ravel(index: tuple[int, ...], shape: tuple[int, ...]) -> int:
    p = 0
    for i, n in zip(index, shape, strict=True):
        p = p * n + i
    return p


def _segments(key: Any, y0: int, y1: int, x0: int, x1: int) -> list[int] | None:
    """Segment indices (tiles or strips) of a page that rows ``[y0, y1)`` and columns
    ``[x0, x1)`` overlap, for every sample plane and depth."""
    planes = int(key.shaped[0]) * int(key.shaped[1])  # separate samples x depth
    length, width = int(key.imagelength), int(key.imagewidth)
    if key.is_tiled:
        th, tw = int(key.tilelength), int(key.tilewidth)
        ny, nx = math.ceil(length / th), math.ceil(width / tw)
        if int(key.tiledepth) != 1 and int(key.shaped[1]) != 1:
            return None
        per_plane = ny * nx
        cells = [
            ty * nx + tx
            for ty in range(y0 // th, (y1 - 1) // th + 1)
            for tx in range(x0 // tw, (x1 - 1) // tw + 1)
        ]
    else:
        rows = int(key.rowsperstrip) or length
        per_plane = math.ceil(length / rows)
        cells = list(range(y0 // rows, (y1 - 1) // rows + 1))
    return [p * per_plane + c for p in range(planes) for c in cells]


async def open_remote_tiff(
    url: str,
    *,
    series: int = 0,
    threads: int = 4,
    limits: Limits | None = None,
    prefix: int = PREFIX,
    block: int = BLOCK,
    **store_options: Any,
) -> TiffSource:
    """Open the TIFF at ``url`` on its store (ranged reads; see the module docstring).

    :param prefix: bytes read first (the header and, usually, the IFDs).
    :param block: bytes read from each later miss onwards while parsing.
    :raises NotFoundError: no object at ``url``.

    A file of a multi-file OME-TIFF (its planes or its metadata in other files beside it)
    opens the whole set (:func:`open_remote_set`).
    """
    try:
        return await _open_one(url, series, threads, limits, prefix, block, store_options)
    except MultiFileError as exc:  # one file of a multi-file OME-TIFF: the whole set
        return await open_remote_set(
            url,
            series=series,
            threads=threads,
            limits=limits,
            fetched=exc.fetched,
            **store_options,
        )


async def _open_one(
    url: str,
    series: int,
    threads: int,
    limits: Limits | None,
    prefix: int,
    block: int,
    store_options: dict[str, Any],
) -> RemoteTiffSource:
    root, key = _split(url)
    store = open_store(root, limits=limits, **store_options)
    try:
        first, version = await store.get_with_version(key, RangeByteRequest(0, prefix))
        if first is None:
            raise NotFoundError(f"no TIFF at {url}")
        file = RangeFile(url, len(first) if len(first) < prefix else None)
        file.add(0, first)
        file.version = version
        for _ in range(_MAX_MISSES):
            try:
                return await anyio.to_thread.run_sync(
                    lambda: RemoteTiffSource(url, file, store, key, series, threads)
                )
            except MultiFileError as exc:
                exc.fetched = file  # the set's reader reads on from what is fetched
                raise
            except (NeedBytes, NeedBytesError) as need:
                start = need.start
                end = max(need.end, start + block)
                try:
                    buf = await store.get(key, RangeByteRequest(start, end), if_match=file.version)
                except StoreError:  # a range past the end is refused (416): a truncated TIFF?
                    size = await store.size(key)
                    if size is None or start < size:
                        raise
                    buf = b""
                if buf is None:
                    raise NotFoundError(f"{url} disappeared") from None
                if len(buf) < end - start:
                    file.size = start + len(buf)  # the end of the object
                if len(buf) == 0:
                    raise CodecError(
                        f"{url} is truncated or corrupt: its TIFF structure points to byte "
                        f"{start}, past its end",
                        key=url,
                    ) from None
                file.add(start, buf)
        raise UnsupportedError(f"{url}: more than {_MAX_MISSES} reads to parse the TIFF")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await store.aclose()
        raise


# ------------------------------------------------------------------ multi-file OME-TIFF sets
_XML_PREFIX = 16 * 1024  # bytes read first for an OME-TIFF's OME-XML (misses: 64 KiB more)


async def remote_ome_xml(
    store: AsyncStore, url: str, key: str, file: RangeFile | None = None
) -> str | None:
    """The OME-XML of the TIFF ``key`` on ``store`` (its first IFD's description), by ranged
    reads (``file``: bytes of it fetched already); ``None`` for a TIFF that has none."""
    import tifffile

    def parse(file: RangeFile) -> str | None:
        file.seek(0)
        with tifffile.TiffFile(cast("IO[bytes]", file), name=key, _multifile=False) as tif:
            return tif.pages.first.description if tif.is_ome else None

    xml: str | None = await _parsed(store, url, key, parse, _XML_PREFIX, file)
    return xml


async def _parsed(
    store: AsyncStore, url: str, key: str, parse: Any, prefix: int, file: RangeFile | None
) -> Any:
    """``parse(file)`` run over a :class:`RangeFile` of ``key`` (``file``, or its first
    ``prefix`` bytes read first), each miss fetched."""
    if file is None:
        first, version = await store.get_with_version(key, RangeByteRequest(0, prefix))
        if first is None:
            raise NotFoundError(f"no TIFF at {url}", url=url)
        file = RangeFile(url, len(first) if len(first) < prefix else None)
        file.add(0, first)
        file.version = version
    file.strict = True
    for _ in range(_MAX_MISSES):
        try:
            return await anyio.to_thread.run_sync(parse, file)
        except (NeedBytes, NeedBytesError) as need:
            buf = await store.get(
                key,
                RangeByteRequest(need.start, max(need.end, need.start + BLOCK)),
                if_match=file.version,
            )
            if not buf:
                raise CodecError(f"{url} is truncated or corrupt", key=url) from None
            file.add(need.start, buf)
    raise UnsupportedError(f"{url}: more than {_MAX_MISSES} reads to parse the TIFF")


def _xml_files(xml: str) -> list[str]:
    """The file names an OME-XML's ``TiffData`` name (``UUID FileName``), once each."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    names = (e.get("FileName") for e in root.iter() if e.tag.rpartition("}")[2] == "UUID")
    return list(dict.fromkeys(n for n in names if n))


async def remote_set_keys(store: AsyncStore, root: str, key: str) -> list[str] | None:
    """The keys of the multi-file OME-TIFF that ``key`` (a TIFF or a ``.companion.ome``) on
    ``store`` belongs to: its companion file first, then the TIFFs its OME-XML names, in
    order (beside it); ``None`` for a file that is a whole image by itself. Reads the OME-XML
    of ``key`` (and of the metadata file a ``BinaryOnly`` one names)."""
    layout = await set_layout(store, root, key)
    return None if layout is None else layout[0]


async def set_layout(
    store: AsyncStore, root: str, key: str, fetched: RangeFile | None = None
) -> tuple[list[str], str, str | None] | None:
    """As :func:`remote_set_keys`, with the set's OME-XML and the key of the TIFF holding it
    (``None``: a companion file); ``fetched``: bytes of ``key`` fetched already."""
    from ._tiffsets import _COMPANION, binary_only

    folder = posixpath.dirname(key)
    url = f"{root}/{key}"
    if key.lower().endswith(_COMPANION):
        raw = await store.get(key)
        if raw is None:
            raise NotFoundError(f"no companion file at {url}", url=url)
        text = bytes(raw).decode("utf-8", errors="replace")
        files = [posixpath.normpath(posixpath.join(folder, n)) for n in _xml_files(text)]
        return [key, *files], text, None
    xml = await remote_ome_xml(store, url, key, fetched)
    holder = key
    meta = binary_only(xml)
    if meta is not None:  # its OME-XML is in the file it names: that file's set
        if not meta:
            return None
        target = posixpath.join(folder, meta)
        if target.lower().endswith(_COMPANION):
            return await set_layout(store, root, target)
        xml = await remote_ome_xml(store, f"{root}/{target}", target)
        if binary_only(xml) is not None:
            return None
        holder = target
    files = [posixpath.normpath(posixpath.join(folder, n)) for n in _xml_files(xml)] if xml else []
    if xml is None or not any(f != key for f in files):
        return None
    return files, xml, holder


async def open_remote_set(url: str, **options: Any) -> TiffSource:
    """Open the multi-file OME-TIFF that ``url`` belongs to, by ranged reads (see
    :func:`._tiffremoteset.open_remote_set`)."""
    from ._tiffremoteset import open_remote_set as open_set

    return await open_set(url, **options)
