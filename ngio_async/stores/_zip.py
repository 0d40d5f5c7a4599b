"""``ZipStore``: the entries of one zip file (zipped OME-Zarr, ``.ozx``, NGFF RFC-9) as a
read-only store, read with ranged GETs of the zip object held by another store.

What the reader relies on, and what not: RFC-9 requires the archive's root to be the
hierarchy's root (``zarr.json`` at the top) and one single-part archive; it only recommends
entries stored uncompressed, ZIP64, the ``zarr.json`` entries first and a JSON comment naming
the version. None of those recommendations is relied on: any order, ZIP64 or not, with or
without a comment. Entries stored (method 0) are read by ranges; DEFLATE-compressed ones
(``zip -r``'s default) are read whole and inflated (a ranged read of one inflates it whole
too, up to :data:`INFLATE_RANGED` bytes: beyond, a sharded array's chunk reads would inflate
the shard again for every chunk, and the error says to rezip it stored).

The directory costs one GET (the file's last :data:`TAIL` bytes), two when the central
directory is bigger; each entry's data offset comes from the layout (the bytes between its
local header and the next one are its header, name, extra field and data), taken as is
where that local extra field is as long as the central directory's one (Python's zipfile,
ngff-zarr), else confirmed by the local header: read along with the entry's first whole
read, or alone (30 bytes, once) before its first ranged read. Every read after the first names
the zip's version (``if_match``): a zip replaced under a reader raises ``ChangedError``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from .._errors import ChangedError, NotFoundError, ReadOnlyError, StoreError, UnsupportedError
from ._base import (
    AsyncStore,
    Buffer,
    ByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    check_key,
)
from ._url_utils import redact_url
from ._zip_format import (
    LOCAL,
    STORED,
    Directory,
    ZipEntry,
    check_readable,
    directory_place,
    entry_span,
    inflate,
    local_start,
    nothing_to_read,
    parse_directory,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence
    from contextlib import AbstractContextManager

__all__ = [
    "INFLATE_RANGED",
    "TAIL",
    "ZipEntry",
    "ZipStore",
    "is_zip_file",
    "open_zip",
    "zip_target",
]

#: the bytes of the first GET, from the end of the file: the end record and its comment
#: (at most 64 KiB + 22 bytes), the ZIP64 records, and the central directory of most files
TAIL = 256 * 1024
#: the biggest DEFLATE-compressed entry (uncompressed bytes) a ranged read inflates whole
INFLATE_RANGED = 16 * 1024 * 1024
#: the DEFLATE-compressed entries that ranged reads inflated are kept, up to these bytes
#: (a shard's chunks are read one by one: the shard inflated once)
INFLATED_KEPT = 4 * INFLATE_RANGED
#: names of zip files opened as a store of their entries (any case)
ZIP_SUFFIXES = (".ozx", ".zip")

# ------------------------------------------------------------------------------ naming


#: where a zip file is: the folder holding it (a URL or a path), its name, and the path of
#: the group asked for inside it ("": its root)
ZipTarget = tuple[str, str, str]


def zip_target(url: object) -> ZipTarget | None:
    """Where the zip file is that ``url`` names, or names a group inside of (``.../img.ozx``,
    ``.../plate.ozx/A/1/0``): a remote URL (``s3://``, ``https://``...) with a path segment
    ending in ``.ozx`` or ``.zip``, a local path or ``file://`` URL through a file so named
    or starting as a zip file does (a local directory so named stays a folder). ``None``:
    anything else."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str) or not url.strip():
        return None
    text = url.strip()
    scheme, sep, _ = text.partition("://")
    if sep and scheme.lower() not in ("file", "memory") and len(scheme) > 1:
        return _remote_target(text, scheme.lower())
    if sep and scheme.lower() == "memory":
        return None
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(text).path) if scheme.lower() == "file" and sep else text
    return _local_target(os.path.abspath(os.path.expanduser(path)))


def _local_target(path: str) -> ZipTarget | None:
    """:func:`zip_target` of an absolute local path: the first file along it, if a zip."""
    if os.path.isdir(path):
        return None  # (the usual image: one stat)
    inside: list[str] = []
    at = path
    while not os.path.isdir(at):
        if os.path.isfile(at):
            if at.lower().endswith(ZIP_SUFFIXES) or is_zip_file(at):
                return os.path.dirname(at), os.path.basename(at), "/".join(reversed(inside))
            return None  # a file in the way: the folder store says so
        parent, name = os.path.split(at)
        if parent == at:
            return None
        inside.append(name)
        at = parent
    if path.lower().endswith(ZIP_SUFFIXES):  # (missing: "no such file", and creates refused)
        return os.path.dirname(path), os.path.basename(path), ""
    return None


def open_zip(
    target: ZipTarget, options: dict[str, Any], open_folder: Callable[[str], AsyncStore]
) -> ZipStore:
    """The :class:`ZipStore` of ``target`` (:func:`zip_target`) over the store
    ``open_folder`` opens for its folder (with ``options``). ``mkdir=True`` (a local image
    to create) is refused at once: zips are never written in place (``convert`` makes
    one whole, from a folder it writes first)."""
    folder, name, inside = target
    if str(options.pop("mkdir", False)).strip().lower() not in ("false", "0", "no", "off", ""):
        shown = os.path.join(folder, name, *inside.split("/")) if inside else os.path.join(folder, name)  # fmt: skip
        if "://" in folder:
            shown = f"{redact_url(folder).rstrip('/')}/{name}" + (f"/{inside}" if inside else "")
        raise ReadOnlyError(
            f"cannot write {shown}: it names a zip file (zipped OME-Zarr, .ozx), which is "
            "never written in place; write a folder (.ome.zarr), or make the zip with "
            "`ngio_async convert SRC out.ozx` (convert(src, 'out.ozx'))"
        )
    return ZipStore(open_folder(folder), name, prefix=inside)


def _remote_target(url: str, scheme: str) -> ZipTarget | None:
    """:func:`zip_target` of a remote URL: an http(s) URL keeps its query (a token) for the
    folder, whose store sends it with every request; a bucket URL's path is literal."""
    from urllib.parse import unquote, urlsplit, urlunsplit

    if scheme in ("http", "https"):
        parts = urlsplit(url)
        found = _zip_segment(parts.path.split("/"), 1)
        if found is None:
            return None
        folder, name, inside = found
        where = urlunsplit(parts._replace(path=folder or "/", fragment=""))
        return where, unquote(name), unquote(inside)
    root, _, path = url.partition("://")[2].partition("/")
    found = _zip_segment(path.split("/"), 0)
    if found is None:
        return None
    folder, name, inside = found
    head = url[: url.index("://") + 3] + root
    return (f"{head}/{folder}" if folder else head), name, inside


def _zip_segment(segments: list[str], first: int) -> ZipTarget | None:
    """The first of ``segments`` (from ``first``) that names a zip file: ``(the segments
    before it, it, those after it)``, joined with "/"."""
    for i in range(first, len(segments)):
        if segments[i].lower().endswith(ZIP_SUFFIXES):
            rest = "/".join(s for s in segments[i + 1 :] if s)
            return "/".join(segments[:i]), segments[i], rest
    return None


def is_zip_file(path: str) -> bool:
    """Whether the local file ``path`` starts as a zip file does (a local file header, or the
    end record of an empty archive)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


# ------------------------------------------------------------------------------ parsing


# ------------------------------------------------------------------------------ the store


class ZipStore(AsyncStore):
    """The entries of the zip file ``name`` of ``inner`` as a read-only store (keys: the
    entries' names), for zipped OME-Zarr (``.ozx``). Its requests are ranged GETs of the zip
    under ``inner``'s limits and limiter (so reads coalesce and prefetch as on a folder); the
    directory is read at the first request. ``prefix``: the folder inside the zip that is
    the store's root (``A/1/0``: a plate's field; default: the zip's root). Closing it closes
    ``inner``."""

    supports_listing = True

    def __init__(
        self, inner: AsyncStore, name: str, *, prefix: str = "", url: str | None = None
    ) -> None:
        self._prefix = check_key(prefix.strip("/")) if prefix.strip("/") else ""
        inside = f"/{self._prefix}" if self._prefix else ""
        url = url or f"{inner.url.rstrip('/')}/{name}{inside}"
        super().__init__(url=url, limits=inner.limits, limiter=inner.limiter)
        self.inner = inner
        self._name = check_key(name)
        self.versioned = inner.versioned or inner._root is not None
        self._unready = True
        self._dir: Directory | None = None
        #: the archive's offsets are the file's: known, or a local header was where they say
        #: (until then, every entry's local header is confirmed at its first read)
        self._placed = False
        self._loading = anyio.Lock()
        self._blocking_lock = threading.Lock()
        self._inflated: OrderedDict[str, bytes] = OrderedDict()  # (the latest last)
        self._inflated_lock = threading.Lock()
        #: ``inner``'s blocking reads (local files): readers fetch and decode in one thread call
        self.blocking_reads = inner.blocking_reads

    @property
    def forbidden_is_missing(self) -> bool:
        """``inner``'s, which reads the zip (a 403 on it: the zip missing, its entries too)."""
        return self.inner.forbidden_is_missing

    @forbidden_is_missing.setter
    def forbidden_is_missing(self, value: bool) -> None:
        self.inner.forbidden_is_missing = value

    @property
    def read_only_reason(self) -> str:
        return f"{self._url} is a zip file (zipped OME-Zarr): it opens read-only"

    def _check_writable(self, key: str) -> None:
        self._check_open()
        check_key(key)
        raise ReadOnlyError(f"cannot write {key!r}: {self.read_only_reason}")

    # -- the directory --------------------------------------------------------------------

    async def _make_ready(self) -> None:
        async with self._loading:
            if self._unready:
                steps = self._directory_steps()
                ask = next(steps)
                try:
                    while True:
                        rng, version = ask
                        if version is None:
                            got = await self.inner.get_with_version(self._name, rng)
                        else:
                            data = await self.inner.get(self._name, rng, if_match=version)
                            got = (data, version)
                        ask = steps.send(got)
                except StopIteration as done:
                    self._dir = done.value
                self._unready = False

    def _load_blocking(self) -> Directory:
        """The directory read with ``inner``'s blocking reads (a worker thread's first read)."""
        with self._blocking_lock:
            if self._dir is None:
                steps = self._directory_steps()
                ask = next(steps)
                try:
                    while True:
                        rng, version = ask
                        read = self.inner.get_blocking_versioned
                        ask = steps.send(read(self._name, rng, if_match=version))
                except StopIteration as done:
                    self._dir = done.value
                self._unready = False
            return self._dir

    def _directory_steps(
        self,
    ) -> Generator[tuple[ByteRequest, str | None], tuple[Buffer | None, str | None], Directory]:
        """Reading the directory: yields each read of the zip (its range, and the version it
        must be: ``None`` for the first), is sent its bytes and version."""
        tail, version = yield SuffixByteRequest(TAIL), None
        if tail is None:
            raise NotFoundError(f"no such file: {self._url}", url=self._url)
        view = memoryview(tail)
        file_at = 0 if len(view) < TAIL else self._tail_at(len(view))
        cd_offset, cd_size, count, base, before = directory_place(view, file_at, self._url)
        if cd_offset >= base:
            cd = view[cd_offset - base : cd_offset - base + cd_size]
        else:
            rng = RangeByteRequest(cd_offset, cd_offset + cd_size)
            got, _ = yield rng, version
            if got is None or len(got) != cd_size:
                raise ChangedError(f"{self._url} changed while its directory was read", url=self._url)  # fmt: skip
            cd = memoryview(got)
        entries = parse_directory(cd, count, cd_offset, self._url, before)
        under = f"{self._prefix}/" if self._prefix else ""
        named = {
            e.name[len(under) :]: e
            for e in entries
            if e.name.startswith(under) and not e.name.endswith("/") and _plain(e.name)
        }
        deflated = any(e.method != STORED for e in named.values())
        self._placed = file_at is not None and before == 0
        return Directory(named, version, deflated)

    def _tail_at(self, size: int) -> int | None:
        """The file offset of the last ``size`` bytes of a local zip (``None``: not local)."""
        if self.inner._root is None:
            return None
        try:
            return os.stat(self.inner._local_path(self._name)).st_size - size
        except OSError:
            return None

    @property
    def _directory(self) -> Directory:
        if self._dir is None:  # (read by _make_ready before any request)
            return self._load_blocking()
        return self._dir

    def _replaced(self) -> None:
        """The zip was replaced (a read of it answered another version): its directory is read
        again at the next request, and the entries inflated from the old one are dropped."""
        with self._blocking_lock:
            self._dir = None
            self._unready = True
            self._placed = False
        with self._inflated_lock:
            self._inflated.clear()

    def versions_blocking(self, keys: Sequence[str]) -> list[str | None] | None:
        """The versions of ``keys`` (the zip's, ``None`` for a key it does not hold) for a
        worker thread, from a local zip: one ``stat`` of the zip for all of them; a zip
        replaced since its directory was read has it read again (a served tile's validator
        changes with the file, as a folder's does). ``None`` for a remote zip."""
        if not self.blocking_reads or self.inner._root is None:
            return None
        self._check_open()
        current = (self.inner.versions_blocking([self._name]) or [None])[0]
        if self._dir is not None and current is not None and current != self._dir.version:
            self._replaced()
        directory = self._directory
        return [(directory.version or "") if k in directory.entries else None for k in keys]

    # -- reads ------------------------------------------------------------------------------

    def _checked(self, data: Buffer | None, start: int, end: int, entry: ZipEntry) -> Buffer:
        """``data``, the zip's bytes ``[start, end)`` read for ``entry``, if it is all there."""
        if data is None:
            raise ChangedError(f"{self._url} is gone (reading {entry.name!r})", url=self._url)
        if len(data) != end - start:
            raise StoreError(
                f"{entry.name!r} in {self._url} ends past the end of the file (a truncated "
                f"zip file?): got {len(data)} of {end - start} bytes at {start}",
                url=self._url,
                key=entry.name,
            )
        return data

    def _data_start(self, entry: ZipEntry) -> Generator[tuple[int, int], Buffer, int]:
        """The entry's data offset, confirmed by its local header (read once, 30 bytes)."""
        if not (entry.checked and self._placed):
            head = yield entry.header, entry.header + LOCAL.size
            entry.start, entry.checked = local_start(head, entry, self._url), True
            self._placed = True
        assert entry.start is not None
        return entry.start

    def _steps(
        self, entry: ZipEntry, span: tuple[int, int] | None
    ) -> Generator[tuple[int, int], Buffer, Buffer]:
        """Reading ``entry``'s stored bytes ``span`` (``None``: whole): yields each range of
        the zip to read, is sent its bytes. A whole read takes the local header along while
        it is unconfirmed (and reads again where the layout was wrong)."""
        if span is not None:
            at = yield from self._data_start(entry)
            return (yield at + span[0], at + span[1])
        if (entry.checked and self._placed) or entry.start is None:
            at = yield from self._data_start(entry)
            return (yield at, at + entry.size)
        guess = entry.start
        got = memoryview((yield entry.header, guess + entry.size))
        entry.start, entry.checked = local_start(got, entry, self._url), True
        self._placed = True
        if entry.start == guess:
            return got[guess - entry.header :]
        return (yield entry.start, entry.start + entry.size)

    def _plan(
        self, key: str, byte_range: ByteRequest | None
    ) -> tuple[ZipEntry, tuple[int, int], tuple[int, int] | None] | None:
        """``(entry, the span of it asked for, the span of its stored bytes to read: None,
        all)``; ``None``: no such entry."""
        entry = self._directory.entries.get(key)
        if entry is None:
            return None
        check_readable(entry, self._url)
        span = entry_span(byte_range, entry.length, self._url, key)
        if entry.method == STORED:
            return entry, span, None if byte_range is None else span
        if byte_range is not None and entry.length > INFLATE_RANGED:
            raise UnsupportedError(
                f"{key!r} in {self._url} is DEFLATE-compressed ({entry.length} bytes): a "
                "read of part of it would inflate it whole each time; rezip it with its "
                "entries stored (zip -0, zipfile.ZIP_STORED), as RFC-9 recommends"
            )
        return entry, span, None

    async def _read(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        plan = self._plan(key, byte_range)
        if plan is None:
            return None
        entry, span, stored = plan
        if nothing_to_read(entry, stored):
            return b""
        if (kept := self._kept(entry, byte_range)) is not None:
            return memoryview(kept)[span[0] : span[1]]
        version = self._directory.version
        steps = self._steps(entry, stored)
        ask = next(steps)
        try:
            while True:
                rng = RangeByteRequest(*ask)
                if version is not None:
                    data, _ = await self.inner._checked_attempts(self._name, rng, version)()
                else:
                    data = await self.inner._get_attempts(self._name, rng)()
                ask = steps.send(self._checked(data, *ask, entry))
        except StopIteration as done:
            got: Buffer = done.value
        except ChangedError:
            self._replaced()  # (the next request reads the new zip's directory)
            raise
        if entry.method == STORED:
            return got
        if entry.length > 1 << 20:
            data = await anyio.to_thread.run_sync(inflate, got, entry, self._url)
        else:
            data = inflate(got, entry, self._url)
        if byte_range is None:
            return data
        self._keep(entry, data)
        return memoryview(data)[span[0] : span[1]]

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        if not self.blocking_reads:
            return super().get_blocking(key, byte_range)  # (refused)
        return self.get_blocking_versioned(key, byte_range)[0]

    def get_blocking_versioned(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> tuple[Buffer | None, str | None]:
        """The entry read with ``inner``'s blocking reads (local files), in the caller's
        worker thread; its version is the zip's."""
        if not self.blocking_reads:
            return self.get_blocking(key, byte_range), None  # (refused)
        self._check_open()
        check_key(key)
        version = self._directory.version
        self._same_version(key, if_match, version)
        plan = self._plan(key, byte_range)
        if plan is None:
            return None, version
        entry, span, stored = plan
        if nothing_to_read(entry, stored):
            return b"", version
        if (kept := self._kept(entry, byte_range)) is not None:
            return memoryview(kept)[span[0] : span[1]], version
        steps = self._steps(entry, stored)
        ask = next(steps)
        try:
            while True:
                rng = RangeByteRequest(*ask)
                data, _ = self.inner.get_blocking_versioned(self._name, rng, if_match=version)
                ask = steps.send(self._checked(data, *ask, entry))
        except StopIteration as done:
            got: Buffer = done.value
        except ChangedError:
            self._replaced()
            raise
        if entry.method == STORED:
            return got, version
        out = inflate(got, entry, self._url)
        if byte_range is None:
            return out, version
        self._keep(entry, out)
        return memoryview(out)[span[0] : span[1]], version

    def _kept(self, entry: ZipEntry, byte_range: ByteRequest | None) -> bytes | None:
        """The inflated bytes of a DEFLATE-compressed ``entry`` kept by an earlier ranged read
        (for a ranged read; ``None``: none)."""
        if entry.method == STORED or byte_range is None:
            return None
        with self._inflated_lock:
            data = self._inflated.get(entry.name)
            if data is not None:
                self._inflated.move_to_end(entry.name)
            return data

    def _keep(self, entry: ZipEntry, data: bytes) -> None:
        """Keep an entry a ranged read inflated, forgetting the least recent beyond
        :data:`INFLATED_KEPT` bytes."""
        with self._inflated_lock:
            self._inflated[entry.name] = data
            self._inflated.move_to_end(entry.name)
            total = sum(len(d) for d in self._inflated.values())
            while total > INFLATED_KEPT and len(self._inflated) > 1:
                total -= len(self._inflated.popitem(last=False)[1])

    def _same_version(self, key: str, if_match: str | None, version: str | None) -> None:
        if if_match is not None and version is not None and if_match != version:
            raise ChangedError(
                f"{key!r} at {self._url} changed: it is no longer version {if_match} (now "
                f"{version})",
                url=self._url,
                key=key,
            )

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        return await self._read(key, byte_range)

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        version = self._directory.version
        self._same_version(key, if_match, version)
        return await self._read(key, byte_range), version

    async def _exists_once(self, key: str) -> bool:
        return key in self._directory.entries

    async def _size_once(self, key: str) -> int | None:
        entry = self._directory.entries.get(key)
        return None if entry is None else entry.length

    async def _version_once(self, key: str) -> str | None:
        if key not in self._directory.entries:
            return None
        return self._directory.version or ""

    async def _list_once(self, prefix: str) -> list[str]:
        base = f"{prefix}/" if prefix else ""
        return [name for name in self._directory.entries if name.startswith(base)]

    async def _stored_bytes_once(self, prefix: str) -> int:
        base = f"{prefix}/" if prefix else ""
        return sum(e.size for n, e in self._directory.entries.items() if n.startswith(base))

    async def missing_bucket(self, key: str) -> NotFoundError | None:
        """For a group document ``key`` not found: the error naming the nearest group below
        its folder, when the zip holds one (zipped with its folder: ``img.ome.zarr/...``,
        where RFC-9 puts the group at the zip's root), and the ``path=`` that opens it."""
        folder = key.rpartition("/")[0]
        if self._dir is None or key.rpartition("/")[2] not in ("zarr.json", ".zattrs"):
            return None
        base = f"{folder}/" if folder else ""
        groups = [
            name.rpartition("/")[0]
            for name in self._dir.entries
            if name.startswith(base) and name.endswith(("/zarr.json", "/.zattrs"))
        ]
        if not groups:
            return None
        group = min(groups, key=lambda g: (g.count("/"), g))
        at = f"{self._url}/{folder}" if folder else self._url
        return NotFoundError(
            f"no OME-Zarr group at {at} (RFC-9 puts it at the zip's root): the zip holds one "
            f"at {self._prefix + '/' if self._prefix else ''}{group}; open it with "
            f"path={group!r}",
            url=self._url,
            key=key,
        )

    # -- the rest is inner's ------------------------------------------------------------------

    async def _aclose_backend(self) -> None:
        await self.inner.aclose()

    def _map_exceptions(self, key: str) -> AbstractContextManager[None]:
        return self.inner._map_exceptions(self._name)

    def _is_retryable(self, exc: Exception) -> bool:
        return self.inner._is_retryable(exc)

    def _retry_after(self, exc: Exception) -> float | None:
        return self.inner._retry_after(exc)

    def _forbidden_hint(self) -> str:
        return self.inner._forbidden_hint()

    def _ranges_honoured(self) -> bool:
        """``inner``'s, but for a zip holding DEFLATE-compressed entries: a big one read in
        parts (:meth:`AsyncStore.get_with_version`) would be inflated whole for each."""
        deflated = self._dir is None or self._dir.deflated
        return self.inner._ranges_honoured() and not deflated

    @property
    def _chain_secrets(self) -> tuple[str, ...]:
        return self.inner._chain_secrets


def _plain(name: str) -> bool:
    """Whether an entry's name is a store key (relative, no empty, ``.`` or ``..`` parts)."""
    try:
        check_key(name)
    except ValueError:
        return False
    return True
