"""A multi-file OME-TIFF on a store, read by ranged reads (no local copy).

- **Opening** reads the set's OME-XML (its companion file, or the TIFF holding it), checks that
  every file it names exists (one ``HEAD`` each: a missing one is named before anything is
  written), then parses one TIFF of the image (its *lead*: the file named, if it holds planes of
  the series, else the one holding the series' first plane) as :mod:`._tiffremote` parses a
  single TIFF, with the XML (its ``UUID`` the lead's, so that tifffile maps the lead's own
  planes). tifffile cannot open the other files over ranges: their planes are ``None`` in its
  series, and the XML's ``TiffData`` say where each one is (file, IFD).
- **Reading a region** maps each plane of it to its page: the lead's from tifffile's series,
  another file's from that file, opened when a plane of it is first read (its first
  ``prefix`` bytes, then its IFDs up to the plane's, and the plane's SubIFD for a pyramid
  level). At most ``members`` files are held open (their parsed pages and header bytes); the
  least recently used one not in use is closed past that. Each plane's tiles / strips are
  fetched concurrently with ``store.get_ranges`` (bounded by the store's limiter, its retries),
  then decoded in a worker thread from the fetched bytes (no file position is shared between
  threads), and dropped after the read.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import posixpath
import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import unquote, urlsplit

import anyio
import numpy as np

from .._errors import CodecError, NotFoundError, UnsupportedError
from .._prefetch import first_error
from ..stores import RangeByteRequest, open_store
from ._tiff import TiffSource
from ._tiffbytes import _bounds, _direct, _read_contiguous, _read_strips, _runs, _squeezed, _strips
from ._tiffmeta import _local
from ._tiffremote import (
    _MAX_MISSES,
    BLOCK,
    KEEP_BYTES,
    PREFIX,
    NeedBytes,
    NeedBytesError,
    RangeFile,
    _merged,
    _segments,
    _split,
    _strip_shares,
    set_layout,
)
from ._tiffsets import _COMPANION

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from numpy.typing import NDArray

    from .._limits import Limits
    from ..stores import AsyncStore

__all__ = ["MEMBERS", "RemoteSetSource", "open_remote_set"]

MEMBERS = 16  # files of a set held open at once (beyond those a read uses)
_HEADS = 16  # existence checks at open, at once


class _Plane(NamedTuple):
    """Where a plane of an image is: the file (its key on the store) and the IFD."""

    key: str
    ifd: int


class _Image(NamedTuple):
    """An OME-XML ``Image`` with ``TiffData`` (a tifffile series): its planes by index."""

    planes: dict[int, _Plane]
    unknown: list[str]  # files whose TiffData give no IFD nor plane count (all their pages)


class _MemberMiss(NeedBytesError):
    """Bytes of the set's file ``key`` that a read needs and are not fetched."""

    def __init__(self, key: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.key = key


# ------------------------------------------------------------------ the OME-XML's plane map
def _images(xml: str, folder: str, xml_key: str) -> list[_Image]:
    """The ``Image``\\ s of ``xml`` that have ``TiffData``, in order (tifffile's series), each
    plane mapped as tifffile maps it; ``TiffData`` without a ``UUID`` are in ``xml_key``."""
    out: list[_Image] = []
    for image in ET.fromstring(xml):
        if _local(image.tag) != "Image":
            continue
        for pixels in image:
            if _local(pixels.tag) == "Pixels":
                found = _pixels_planes(pixels, folder, xml_key)
                if found is not None:
                    out.append(found)
    return out


def _pixels_planes(pixels: ET.Element, folder: str, xml_key: str) -> _Image | None:
    axes = "".join(reversed(pixels.get("DimensionOrder", "XYZCT")))
    shape = [int(pixels.get("Size" + ax, "1")) for ax in axes]
    channel = next((e for e in pixels if _local(e.tag) == "Channel"), None)
    spp = int(channel.get("SamplesPerPixel", "1")) if channel is not None else 1
    if spp > 1:
        shape = [n // spp if ax == "C" else n for n, ax in zip(shape, axes, strict=True)]
    planes: dict[int, _Plane] = {}
    unknown: list[str] = []
    datas = [e for e in pixels if _local(e.tag) == "TiffData"]
    if not datas:
        return None
    for data in datas:
        ifd = int(data.get("IFD", "0"))
        num = int(
            data.get("PlaneCount", data.get("NumPlanes", "1" if "IFD" in data.attrib else "0"))
        )
        firsts = [int(data.get("First" + ax, "0")) for ax in axes[:-2]]
        try:
            idx = int(np.ravel_multi_index(firsts, shape[:-2]))
        except ValueError:
            continue  # tifffile skips it too
        uuid = next((u for u in data if _local(u.tag) == "UUID"), None)
        name = uuid.get("FileName") if uuid is not None else None
        key = _joined(folder, name) if name else xml_key
        if num == 0:
            unknown.append(key)
        for i in range(num):
            planes[idx + i] = _Plane(key, ifd + i)
    return _Image(planes, unknown)


def _uuid_of(xml: str, folder: str, key: str) -> str | None:
    """The ``UUID`` the XML's ``TiffData`` give the file ``key`` (their ``FileName``s are
    relative to ``folder``, the XML's)."""
    for e in ET.fromstring(xml).iter():
        name = e.get("FileName") if _local(e.tag) == "UUID" else None
        if name and _joined(folder, name) == key and (e.text or "").strip():
            return (e.text or "").strip()
    return None


def _joined(folder: str, name: str) -> str:
    """The key of the file ``name`` of an OME-XML in ``folder``."""
    return posixpath.normpath(posixpath.join(folder, name))


_ROOT_TAG = re.compile(r"<(?:[\w.-]+:)?OME\b[^>]*>")


def _rooted(xml: str, uuid: str | None) -> str:
    """``xml`` with its root ``OME`` element's ``UUID`` set to ``uuid``: tifffile reads the
    ``TiffData`` of that UUID from the file it parses (the lead), not from another file."""
    match = _ROOT_TAG.search(xml) if uuid else None
    if match is None:
        return xml
    tag = match[0]
    if re.search(r"\sUUID=\"[^\"]*\"", tag):
        new = re.sub(r"(\sUUID=\")[^\"]*(\")", lambda m: f"{m[1]}{uuid}{m[2]}", tag, count=1)
    else:
        new = tag[:-1].rstrip("/") + f' UUID="{uuid}"' + ("/>" if tag.endswith("/>") else ">")
    return xml[: match.start()] + new + xml[match.end() :]


# ------------------------------------------------------------------ the files of a set
class _Member:
    """One file of a set: opened (its first ``prefix`` bytes fetched, then its IFDs) when a
    plane of it is first read; its pages parsed as reads need them, under ``lock``."""

    def __init__(self, url: str, key: str, size: int) -> None:
        self.url = url
        self.key = key
        self.size = size
        self.file: RangeFile | None = None
        #: its version when first opened: every read asks for it (reopened too)
        self.version: str | None = None
        self.tif: Any = None
        self.pages: dict[tuple[int, int], Any] = {}
        self.users = 0
        self.lock = anyio.Lock()

    @property
    def is_open(self) -> bool:
        return self.file is not None

    def close(self) -> None:
        """Drop the parsed pages and the fetched bytes (opened again when needed)."""
        if self.tif is not None:
            self.tif.close()
        self.tif = None
        self.file = None
        self.pages.clear()


class RemoteSetSource(TiffSource):
    """A multi-file OME-TIFF on a store (see the module docstring); made by
    :func:`open_remote_set`. ``requests`` counts the ranged reads of pixel data; ``opened``
    how many times a file of the set was opened, ``peak_open`` the most held open at once."""

    _planes_elsewhere = True  # tifffile's series leaves the other files' planes out

    def __init__(
        self,
        url: str,
        lead: _Member,
        members: dict[str, _Member],
        image: _Image,
        picked: tuple[int, int],
        store: AsyncStore,
        series: int,
        threads: int,
        max_open: int,
        xml: tuple[str, str],
    ) -> None:
        import tifffile

        assert lead.file is not None
        self._picked_series, self._series_total = picked
        self._image = image
        lead.file.seek(0)
        tif = tifffile.TiffFile(
            cast("IO[bytes]", lead.file), name=posixpath.basename(lead.key), omexml=xml[1]
        )
        with _quiet_missing_files():
            super().__init__(url, series, threads, tif=tif)
        self.ome_xml = xml[0]  # as the set has it (tifffile read it with the lead's UUID)
        try:
            levels = self._series.levels[: self.levels]
            self._level_pages = [list(lvl.pages) for lvl in levels]
            for pages in self._level_pages:
                for page in pages:
                    if page is not None:
                        _touch(page)
            # an uncompressed level's chunks cut to at most 1024 x 1024 (:meth:`level_chunks`)
            self._direct = [_layout(lvl.keyframe)[0] for lvl in levels]
        except BaseException:
            tif.close()
            raise
        lead.tif = tif
        self._lead = lead
        self._members = members
        self._open: OrderedDict[str, _Member] = OrderedDict(  # least recently used first
            (k, m) for k, m in members.items() if m.is_open and m is not lead
        )
        self._max_open = max_open
        self._kept: OrderedDict[tuple[str, int, int], _Member] = OrderedDict()  # oldest first
        self._kept_bytes = 0
        self._fetching: dict[tuple[str, int, int], anyio.Event] = {}  # strips on their way
        self.store = store
        self.requests = 0
        self.opened = 0
        self.peak_open = 0

    def _picked(self, series: int) -> int:
        return self._picked_series

    def _counted(self, count: int) -> int:
        return self._series_total

    def _absent_planes(self, pages: list[Any]) -> list[Any]:
        return [True if p is None and i in self._image.planes else p for i, p in enumerate(pages)]

    def _select(self, level: int, selection: tuple[Any, ...]) -> NDArray[Any]:
        raise UnsupportedError(f"{self.url}: a multi-file OME-TIFF on a store reads by read()")

    @property
    def open_files(self) -> int:
        """How many files of the set (besides the lead) are open now."""
        return sum(m.is_open for m in self._members.values() if m is not self._lead)

    @property
    def pinned_bytes(self) -> int:
        """Bytes fetched for reads under way (none once every read is done or cancelled), the
        strips kept for the next reads aside."""
        files = [m.file for m in self._members.values() if m.file is not None]
        return sum(f.pinned_bytes for f in files) - self._kept_bytes

    # ---------------------------------------------------------------- reading
    def _refs(self, level: int, selection: tuple[Any, ...]) -> dict[int, tuple[str, int] | Any]:
        """Each page of ``selection``: the lead's page, or (file key, IFD) of another file's."""
        shape = tuple(int(n) for n in self._series.levels[level].shape)
        key = self._series.levels[level].keyframe
        lead = len(shape) - len(key.shape)
        bounds = _bounds(selection[:lead], shape[:lead])
        refs: dict[int, tuple[str, int] | Any] = {}
        for index in itertools.product(*(range(a, b) for a, b in bounds)):
            p = _ravel(index, shape[:lead])
            page = self._level_pages[level][p] if p < len(self._level_pages[level]) else None
            plane = self._image.planes.get(p)
            if page is not None:
                refs[p] = page
            elif plane is not None and plane.key != self._lead.key:
                refs[p] = (plane.key, plane.ifd)
        return refs

    async def read(self, region: tuple[slice, ...], level: int = 0) -> NDArray[Any]:
        """Fetch the tiles / strips of ``region`` (each plane from its file, opened if need
        be) concurrently, then decode them in a worker thread."""
        region = tuple(region)
        if len(region) != len(self.axes):
            raise ValueError(f"region needs {len(self.axes)} slices")
        if not 0 <= level < self.levels:
            raise IndexError(f"level {level} of a TIFF with {self.levels} levels")
        selection = self._source_selection(region)
        refs = self._refs(level, selection)
        keys = sorted({r[0] for r in refs.values() if isinstance(r, tuple)})
        async with self._using(keys) as members:
            pages: dict[int, tuple[_Member, Any]] = {}
            for p, ref in refs.items():
                if isinstance(ref, tuple):
                    m = members[ref[0]]
                    pages[p] = (m, await self._page(m, ref[1], level))
                else:
                    pages[p] = (self._lead, ref)
            pinned: dict[str, list[int]] = {}
            try:
                await self._fetch_planes(pages, level, selection, pinned)
                for _ in range(_MAX_MISSES):
                    try:
                        return await anyio.to_thread.run_sync(
                            self._decode, region, level, selection, pages, limiter=self._limiter
                        )
                    except _MemberMiss as miss:
                        m = self._lead if miss.key == self._lead.key else members[miss.key]
                        end = min(_miss_end(pages, m, miss.start, miss.end), m.size)
                        await self._fetch(m, [(miss.start, end)], pinned)
                raise RuntimeError(f"{self.url}: TIFF read of {region} does not converge")
            finally:
                for k, starts in pinned.items():
                    m = self._lead if k == self._lead.key else self._members[k]
                    if m.file is not None:
                        for start in starts:
                            m.file.unpin(start)

    async def _fetch_planes(
        self,
        pages: dict[int, tuple[_Member, Any]],
        level: int,
        selection: tuple[Any, ...],
        pinned: dict[str, list[int]],
    ) -> None:
        lead = self._lead_axes(level)
        inner = selection[lead:]
        wanted: dict[tuple[str, bool], tuple[_Member, list[tuple[int, int]]]] = {}
        for m, page in pages.values():
            strips = _layout(page)[1]
            whole = strips is not None and not strips.streamed  # decoded whole: kept
            wanted.setdefault((m.key, whole), (m, []))[1].extend(_page_ranges(m, page, inner))
        with first_error():  # (a file changed or gone: its error, not a group)
            async with anyio.create_task_group() as tg:
                for (_, whole), (m, ranges) in wanted.items():
                    assert m.file is not None
                    if whole:
                        tg.start_soon(self._fetch_kept, m, sorted(set(ranges)), pinned)
                        continue
                    todo = [part for r in _merged(ranges) for part in m.file.missing(*r)]
                    if todo:
                        tg.start_soon(self._fetch, m, todo, pinned)

    async def _fetch_kept(
        self, m: _Member, ranges: list[tuple[int, int]], pinned: dict[str, list[int]]
    ) -> None:
        """:meth:`_fetch` of whole strips (LZW, ZSTD, ...: a region needs its strip from the
        start): those kept, or on their way for another read, are not fetched again; those
        fetched are kept for the next reads (a plane stored as one strip, read shard by
        shard, is fetched once; as :class:`RemoteTiffSource` keeps them)."""
        todo: list[tuple[int, int]] = []
        waits: list[tuple[tuple[int, int], anyio.Event]] = []
        for r in ranges:
            if (m.key, *r) in self._fetching:
                waits.append((r, self._fetching[(m.key, *r)]))
            elif not self._reuse(m, r, pinned):
                todo.append(r)
        mine = {(m.key, *r): anyio.Event() for r in todo}
        self._fetching.update(mine)
        try:
            if todo:
                await self._fetch(m, todo, pinned)
                for r in todo:
                    self._keep(m, r)
        finally:
            for k, done in mine.items():
                self._fetching.pop(k, None)
                done.set()
        for r, done in waits:
            await done.wait()
            if not self._reuse(m, r, pinned):  # its fetch failed (or it was dropped since)
                await self._fetch(m, [r], pinned)

    def _reuse(self, m: _Member, r: tuple[int, int], pinned: dict[str, list[int]]) -> bool:
        """Pin the kept strip ``r`` of ``m`` for this read; ``False``: it is not kept."""
        k = (m.key, *r)
        if k not in self._kept or m.file is None or not m.file.pin(r[0]):
            return False
        self._kept.move_to_end(k)
        pinned.setdefault(m.key, []).append(r[0])
        return True

    def _keep(self, m: _Member, r: tuple[int, int]) -> None:
        """Keep strip ``r`` of ``m`` (its own pin) for the next reads; the oldest kept ones
        dropped past :data:`KEEP_BYTES` (the latest stays)."""
        k = (m.key, *r)
        if k in self._kept or m.file is None or not m.file.pin(r[0]):
            return
        self._kept[k] = m
        self._kept_bytes += r[1] - r[0]
        while self._kept_bytes > KEEP_BYTES and len(self._kept) > 1:
            (_, start, end), owner = self._kept.popitem(last=False)
            self._kept_bytes -= end - start
            if owner.file is not None:
                owner.file.unpin(start)

    def _forget(self, m: _Member) -> None:
        """Drop the strips kept of ``m`` (closed)."""
        for k in [k for k, owner in self._kept.items() if owner is m]:
            del self._kept[k]
            self._kept_bytes -= k[2] - k[1]

    async def _fetch(
        self, m: _Member, ranges: list[tuple[int, int]], pinned: dict[str, list[int]]
    ) -> None:
        bufs = await self.store.get_ranges(m.key, ranges, if_match=m.version)
        if bufs is None:
            raise NotFoundError(f"{m.url} disappeared (a file of {self.url})", url=m.url)
        assert m.file is not None
        self.requests += len(ranges)
        for (start, _), buf in zip(ranges, bufs, strict=True):
            m.file.add(start, buf, pin=True)
            pinned.setdefault(m.key, []).append(start)

    def _lead_axes(self, level: int) -> int:
        lvl = self._series.levels[level]
        return len(lvl.shape) - len(lvl.keyframe.shape)

    def _decode(
        self,
        region: tuple[slice, ...],
        level: int,
        selection: tuple[Any, ...],
        pages: dict[int, tuple[_Member, Any]],
    ) -> NDArray[Any]:
        """The region, each plane decoded from its file's fetched bytes (worker thread)."""
        lvl = self._series.levels[level]
        shape = tuple(int(n) for n in lvl.shape)
        lead = self._lead_axes(level)
        bounds = _bounds(selection, shape)
        out = np.zeros([b - a for a, b in bounds], self.dtype)  # planes in no file: zeros
        inner = tuple(slice(a, b) for a, b in bounds[lead:])
        for index in itertools.product(*(range(a, b) for a, b in bounds[:lead])):
            found = pages.get(_ravel(index, shape[:lead]))
            if found is None:
                continue
            m, page = found
            assert m.file is not None
            dst = tuple(i - a for i, (a, _) in zip(index, bounds, strict=False))
            try:
                out[dst] = _plane(m, page, inner)
            except (NeedBytes, NeedBytesError) as need:
                raise _MemberMiss(m.key, need.start, need.end) from None
            except (CodecError, UnsupportedError):
                raise
            except Exception as exc:
                raise CodecError(
                    f"cannot decode {m.url} (of {self.url}): {type(exc).__name__}: {exc}",
                    key=m.url,
                ) from exc
        return self._shaped(region, _squeezed(out, selection))

    # ---------------------------------------------------------------- the files
    @contextlib.asynccontextmanager
    async def _using(self, keys: list[str]) -> AsyncIterator[dict[str, _Member]]:
        """The files ``keys``, in use (not closed) while the block runs; opened as needed."""
        members = {k: self._members[k] for k in keys}
        for m in members.values():
            m.users += 1
            self._open[m.key] = m
            self._open.move_to_end(m.key)
        self._trim()  # before these open
        try:
            yield members
        finally:
            for m in members.values():
                m.users -= 1
            self._trim()

    def _trim(self) -> None:
        """Close the least recently used files not in use, past ``max_open``."""
        for k in list(self._open):
            if len(self._open) <= self._max_open:
                break
            m = self._open[k]
            if m.users == 0:
                self._forget(m)
                m.close()
                del self._open[k]

    async def _page(self, m: _Member, ifd: int, level: int) -> Any:
        """Page ``ifd`` of file ``m`` (its SubIFD ``level``), parsed (and ``m`` opened) if
        need be."""
        async with m.lock:
            page = m.pages.get((ifd, level))
            if page is not None:
                return page
            if m.file is None:
                await self._open_member(m)
            assert m.file is not None
            file = m.file
            page = await _parsed(
                self.store, m, lambda: _member_page(m, file, ifd, level), f"{m.url} (of {self.url})"
            )
            m.pages[(ifd, level)] = page
            return page

    async def _open_member(self, m: _Member) -> None:
        await _open_file(self.store, m, self.url)
        self.opened += 1
        self.peak_open = max(self.peak_open, self.open_files)

    async def aclose(self) -> None:
        try:
            for k, owner in self._kept.items():
                if owner.file is not None:
                    owner.file.unpin(k[1])
            self._kept.clear()
            for m in self._members.values():
                if m is not self._lead:
                    m.close()
            self._open.clear()
            await super().aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await self.store.aclose()


async def _open_file(store: AsyncStore, m: _Member, url: str) -> None:
    """Fetch the first bytes of ``m`` (its header, usually its IFDs too)."""
    head = RangeByteRequest(0, min(PREFIX, m.size))
    if m.version is None:
        first, m.version = await store.get_with_version(m.key, head)
    else:
        first = await store.get(m.key, head, if_match=m.version)
    if first is None:
        raise NotFoundError(f"{m.url} disappeared (a file of {url})", url=m.url)
    file = RangeFile(m.url, m.size)
    file.add(0, first)
    file.version = m.version
    m.file = file


async def _count_pages(store: AsyncStore, m: _Member, url: str) -> int:
    """How many pages (IFDs) ``m`` has: its whole IFD chain read (a ``TiffData`` naming the
    file with no ``IFD`` nor ``PlaneCount`` takes them all)."""
    import tifffile

    if m.file is None:
        await _open_file(store, m, url)
    file = m.file
    assert file is not None

    def count() -> int:
        file.seek(0)
        tif = tifffile.TiffFile(
            cast("IO[bytes]", file), name=posixpath.basename(m.key), _multifile=False
        )
        with tif:
            return len(tif.pages)

    n: int = await _parsed(store, m, count, f"{m.url} (of {url})")
    return n


def _counted(xml: str, folder: str, lead: str, counts: dict[str, int]) -> str:
    """``xml`` with a ``PlaneCount`` on each ``TiffData`` that names a file other than
    ``lead`` with no ``IFD`` nor plane count: its page count (``counts``), else 1 (an image
    not read: tifffile, which cannot open that file, refuses such a ``TiffData``)."""
    root = ET.fromstring(xml)
    for data in root.iter():
        if _local(data.tag) != "TiffData" or {"IFD", "PlaneCount", "NumPlanes"} & set(data.attrib):
            continue
        uuid = next((u for u in data if _local(u.tag) == "UUID"), None)
        name = uuid.get("FileName") if uuid is not None else None
        key = _joined(folder, name) if name else lead
        if key != lead:
            data.set("PlaneCount", str(counts.get(key, 1)))
    return ET.tostring(root, encoding="unicode")


def _ravel(index: tuple[int, ...], shape: tuple[int, ...]) -> int:
    p = 0
    for i, n in zip(index, shape, strict=True):
        p = p * n + i
    return p


def _touch(page: Any) -> None:
    """Load what decoding ``page`` reads from its tags (now, while misses are signals)."""
    _ = (page.dataoffsets, page.databytecounts, page.keyframe.decode)
    if int(page.keyframe.compression) in (6, 7, 34892, 33007):
        _ = (page.jpegtables, page.keyframe.jpegheader)


def _member_page(m: _Member, file: RangeFile, ifd: int, level: int) -> Any:
    """Page ``ifd`` of ``m`` (or its SubIFD ``level``), parsed from ``file``'s fetched bytes;
    a miss raises :class:`NeedBytes` (the TIFF parsed again once it is fetched)."""
    import tifffile

    tif = m.tif
    if tif is None:
        file.seek(0)
        tif = tifffile.TiffFile(
            cast("IO[bytes]", file), name=posixpath.basename(m.key), _multifile=False
        )
    try:
        page = tif.pages[ifd]
        if level:
            subifds = page.subifds or ()
            if level > len(subifds) or subifds[level - 1] < 8:
                raise CodecError(f"{m.url}: IFD {ifd} has no resolution level {level}", key=m.url)
            tif.filehandle.seek(subifds[level - 1])
            page = tifffile.TiffPage(tif, (page.index, level))
        _touch(page)
    except (NeedBytes, NeedBytesError):
        if tif is not m.tif:
            tif.close()
        m.tif = None  # parsed anew from the start (the pages handed out stay valid)
        raise
    m.tif = tif
    return page


async def _parsed(store: AsyncStore, m: _Member, parse: Callable[[], Any], name: str) -> Any:
    """``parse()`` run in a worker thread, each miss of ``m``'s bytes fetched (64 KiB on)."""
    assert m.file is not None
    for _ in range(_MAX_MISSES):
        try:
            return await anyio.to_thread.run_sync(parse)
        except (NeedBytes, NeedBytesError) as need:
            end = min(max(need.end, need.start + BLOCK), m.size)
            if need.start >= m.size:
                raise CodecError(
                    f"{name} is truncated or corrupt: its TIFF structure points to byte "
                    f"{need.start}, past its end",
                    key=m.url,
                ) from None
            buf = await store.get(m.key, RangeByteRequest(need.start, end), if_match=m.version)
            if buf is None:
                raise NotFoundError(f"{name} disappeared", url=m.url) from None
            m.file.add(need.start, buf)
    raise UnsupportedError(f"{name}: more than {_MAX_MISSES} reads to parse the TIFF")


# ------------------------------------------------------------------ one page's pixels
def _layout(page: Any) -> tuple[Any, Any]:
    """``(direct, strips)`` of ``page`` (see :func:`_direct`, :func:`_strips`)."""
    level = SimpleNamespace(
        keyframe=page.keyframe, shape=tuple(page.keyframe.shape), dataoffset=None, pages=[page]
    )
    tif = page.parent
    direct = _direct(tif, level)
    return direct, (None if direct is not None else _strips(tif, level))


def _page_ranges(m: _Member, page: Any, inner: tuple[Any, ...]) -> list[tuple[int, int]]:
    """The byte ranges of ``page`` that ``inner`` (a selection of the page) needs."""
    direct, strips = _layout(page)
    if direct is not None:
        return [(offset, offset + n) for offset, n in _runs(direct, inner)]
    if strips is not None:
        return _strip_shares(strips, inner)
    key = page.keyframe
    axes = str(key.axes)
    bounds = _bounds(inner, tuple(int(n) for n in key.shape))
    if "YX" not in axes or any(b <= a for a, b in bounds):
        return []
    y = axes.index("Y")
    (y0, y1), (x0, x1) = bounds[y], bounds[y + 1]
    segments = _segments(key, y0, y1, x0, x1) or []
    offsets, counts = page.dataoffsets, page.databytecounts
    return [
        (int(offsets[s]), int(offsets[s]) + int(counts[s]))
        for s in segments
        if s < len(offsets) and counts[s] > 0
    ]


def _miss_end(pages: dict[int, tuple[_Member, Any]], m: _Member, start: int, end: int) -> int:
    """``end``, or the end of the deflate strip of ``m`` holding byte ``start`` when the share
    of it fetched fell short (:func:`_strip_shares`): its rest in one request."""
    for owner, page in pages.values():
        if owner is m and _layout(page)[1] is not None:
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=False):
                if int(offset) <= start < int(offset) + int(count):
                    return max(end, int(offset) + int(count))
    return end


def _plane(m: _Member, page: Any, inner: tuple[slice, ...]) -> NDArray[Any]:
    """``inner`` (step-1 slices of the page's shape) of ``page``, from ``m``'s fetched bytes."""
    assert m.file is not None
    direct, strips = _layout(page)
    if direct is not None:
        return _read_contiguous(m.file, direct, inner)
    if strips is not None:
        return _read_strips(m.file, strips, inner)
    return _segments_read(m.file, page, inner)


def _segments_read(file: RangeFile, page: Any, inner: tuple[slice, ...]) -> NDArray[Any]:
    """``inner`` of ``page`` (tiles, or strips of other codecs), each tile / strip it overlaps
    decoded by tifffile from the fetched bytes."""
    key = page.keyframe
    shape = tuple(int(n) for n in key.shape)
    axes = str(key.axes)
    bounds = _bounds(inner, shape)
    y = axes.index("Y")
    (y0, y1), (x0, x1) = bounds[y], bounds[y + 1]
    sep, depth, _, _, contig = (int(n) for n in key.shaped)
    out5 = np.zeros((sep, depth, y1 - y0, x1 - x0, contig), key.dtype)
    decode = key.decode
    args: dict[str, Any] = {"_fullsize": bool(key.is_tiled)}
    if int(key.compression) in (6, 7, 34892, 33007):
        args.update(jpegtables=page.jpegtables, jpegheader=key.jpegheader)
    offsets, counts = page.dataoffsets, page.databytecounts
    segments = _segments(key, y0, y1, x0, x1)
    for s in range(len(offsets)) if segments is None else segments:
        data = file.view_at(int(offsets[s]), int(counts[s])) if counts[s] else None
        seg, (si, d, h, w, _), _ = decode(bytes(data) if data is not None else None, s, **args)
        if seg is None:
            continue
        # a segment: (depth, length, width, samples), at (plane, depth, y, x) of the page
        seg = seg[: int(key.imagedepth) - d, : int(key.imagelength) - h, : int(key.imagewidth) - w]
        lo_y, hi_y = max(h, y0), min(h + seg.shape[1], y1)
        lo_x, hi_x = max(w, x0), min(w + seg.shape[2], x1)
        if lo_y < hi_y and lo_x < hi_x:
            part = seg[:, lo_y - h : hi_y - h, lo_x - w : hi_x - w]
            out5[si, d : d + seg.shape[0], lo_y - y0 : hi_y - y0, lo_x - x0 : hi_x - x0] = part
    full = list(shape)
    full[y], full[y + 1] = y1 - y0, x1 - x0
    rest = tuple(slice(None) if i in (y, y + 1) else slice(a, b) for i, (a, b) in enumerate(bounds))
    return out5.reshape(full)[rest]


# ------------------------------------------------------------------ opening
@contextlib.contextmanager
def _quiet_missing_files() -> Iterator[None]:
    """tifffile's warnings, from this thread, that it could not open the set's other files
    (it opens local files only): their planes are read here, by ranges."""
    thread = threading.get_ident()

    def keep(record: logging.LogRecord) -> bool:
        return not (record.thread == thread and "OME series failed to read" in record.getMessage())

    log = logging.getLogger("tifffile")
    log.addFilter(keep)
    try:
        yield
    finally:
        log.removeFilter(keep)


async def _members(store: AsyncStore, root: str, keys: list[str], url: str) -> dict[str, _Member]:
    """The TIFFs ``keys`` of the set, each's size read (concurrently, a few at once).

    :raises NotFoundError: one is missing (named)."""
    sizes: dict[str, int | None] = {}
    limit = anyio.Semaphore(_HEADS)

    async def one(k: str) -> None:
        async with limit:
            sizes[k] = await store.size(k)

    with first_error():
        async with anyio.create_task_group() as tg:
            for k in keys:
                tg.start_soon(one, k)
    for k in keys:
        if sizes[k] is None:
            raise NotFoundError(
                f"{url} is a multi-file OME-TIFF whose OME-XML names "
                f"{posixpath.basename(k)}, not found beside it ({root}/{k})",
                url=f"{root}/{k}",
            )
    return {k: _Member(f"{root}/{k}", k, int(sizes[k] or 0)) for k in keys}


def _levels_up(key: str) -> int:
    """How many folders above the store's root ``key`` (``'../../a.tif'``: 2) lies."""
    parts = posixpath.normpath(key).split("/")
    return next((i for i, p in enumerate(parts) if p != ".."), len(parts))


def _ascend(root: str, up: int, url: str) -> tuple[str, str]:
    """The URL ``up`` folders above the folder URL ``root``, and the path from there down
    to ``root`` (a key prefix: http(s) names decoded, as :func:`._tiffremote._split`).

    :raises NotFoundError: ``root`` has fewer folders (the set names files above the host
        or bucket)."""
    parts = urlsplit(root)
    http = parts.scheme.lower() in ("http", "https")
    folders = [f for f in parts.path.split("/") if f]
    if len(folders) < up:
        raise NotFoundError(
            f"{url} is a multi-file OME-TIFF whose OME-XML names files {up} folder(s) above "
            f"{root}, past its {'host' if http else 'bucket'}",
            url=url,
        )
    above, below = folders[: len(folders) - up], folders[len(folders) - up :]
    top = "".join(f"/{f}" for f in above) + (f"?{parts.query}" if parts.query else "")
    prefix = "/".join(unquote(f) for f in below) if http else "/".join(below)
    return f"{parts.scheme}://{parts.netloc}{top}", prefix


def _pick(images: list[_Image], series: int, key: str, url: str) -> tuple[_Image, str, int]:
    """The image of ``series``, its lead file (``key`` if it holds planes of it, else the
    file of its first plane) and tifffile's index of the series in the lead."""
    if not 0 <= series < len(images):
        raise ValueError(
            f"series={series}: {url} has {len(images)} series (0 to {len(images) - 1})"
        )
    image = images[series]
    files = {p.key for p in image.planes.values()}
    lead = key if key in files else image.planes[min(image.planes)].key if image.planes else key
    index = sum(any(p.key == lead for p in im.planes.values()) for im in images[:series])
    return image, lead, index


async def open_remote_set(
    url: str,
    *,
    series: int = 0,
    threads: int = 4,
    limits: Limits | None = None,
    members: int = MEMBERS,
    fetched: RangeFile | None = None,
    **store_options: Any,
) -> TiffSource:
    """Open the multi-file OME-TIFF that ``url`` (a TIFF of it, or its ``.companion.ome``)
    belongs to, read by ranged reads (see the module docstring): no file is copied; a file it
    names that is missing is a ``NotFoundError`` naming it.

    :param members: files held open at once (their headers and parsed pages).
    :param fetched: bytes of the file ``url`` names fetched already (by :func:`open_remote_tiff`).
    :raises UnsupportedError: ``url`` is no file of a multi-file OME-TIFF.
    """
    root, key = _split(url)
    store = open_store(root, limits=limits, **store_options)
    try:
        layout = await set_layout(store, root, key, fetched)
        if layout is None:
            raise UnsupportedError(f"{url} is no file of a multi-file OME-TIFF")
        keys, xml, xml_key = layout
        up = max(_levels_up(k) for k in keys)
        if up:  # files in a folder beside the XML's ('../tifs/a.ome.tif'): a store above both
            root, prefix = _ascend(root, up, url)
            await store.aclose()
            store = open_store(root, limits=limits, **store_options)
            keys = [posixpath.normpath(posixpath.join(prefix, k)) for k in keys]
            key = posixpath.join(prefix, key)
            xml_key = None if xml_key is None else posixpath.join(prefix, xml_key)
        tiffs = [k for k in dict.fromkeys(keys) if not k.lower().endswith(_COMPANION)]
        found = await _members(store, root, tiffs, url)
        folder = posixpath.dirname(xml_key or keys[0])  # (names are relative to the XML's)
        images = _images(xml, folder, xml_key or key)
        image, lead_key, index = _pick(images, series, key, url)
        lead = found.get(lead_key) or (await _members(store, root, [lead_key], url))[lead_key]
        found[lead_key] = lead
        if fetched is not None and key in found:  # its header read once
            fetched.size = found[key].size
            found[key].file, found[key].version = fetched, fetched.version
        if lead.file is None:
            await _open_file(store, lead, url)
        read = xml  # the XML tifffile reads the lead with
        if any(u != lead_key for im in images for u in im.unknown):
            counts = {
                u: await _count_pages(store, found[u], url)
                for u in dict.fromkeys(image.unknown)
                if u != lead_key and u in found
            }
            read = _counted(xml, folder, lead_key, counts)
            image = _images(read, folder, xml_key or key)[series]
        rooted = _rooted(read, _uuid_of(read, folder, lead_key))
        total = len(images)

        def make() -> RemoteSetSource:
            return RemoteSetSource(
                url,
                lead,
                found,
                image,
                (index, total),
                store,
                series,
                threads,
                max(1, members),
                (xml, rooted),
            )

        return cast("TiffSource", await _parsed(store, lead, make, lead.url))
    except BaseException:
        with anyio.CancelScope(shield=True):
            await store.aclose()
        raise
