"""The store seam: byte requests, the ``Buffer`` type and the ``AsyncStore`` base class.

``AsyncStore`` owns everything that is the same for every backend: the per-store
``CapacityLimiter``, per-attempt timeouts, retries, range coalescing, capability checks and
the open/closed lifecycle. A backend implements a handful of one-request hooks
(``_get_once``, ``_exists_once``, ...) plus ``_map_exceptions`` and ``_is_retryable``.
"""

from __future__ import annotations

import abc
import enum
import os
import random
import stat
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, TypeAlias, TypeVar

import anyio
import anyio.to_thread

from .._errors import (
    ChangedError,
    ClosedError,
    CredentialsRefusedError,
    PermissionDeniedError,
    StoreError,
    StoreTimeoutError,
    UnsupportedError,
)
from .._limits import Limits
from .._prefetch import start_deferred
from ._coalesce import coalesce_ranges
from ._parts import PartPlan, get_in_parts, part_bounds
from ._retry import call_with_retry
from ._scrub import scrub_chain
from ._seen import seeing

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
    from contextlib import AbstractAsyncContextManager, AbstractContextManager
    from types import TracebackType
    from typing import Self

    from anyio.abc import TaskGroup

    from .._errors import NotFoundError

__all__ = [
    "AsyncStore",
    "Buffer",
    "ByteRequest",
    "NO_ANSWER",
    "ChangedError",
    "CredentialsRefusedError",
    "Edit",
    "ForbiddenError",
    "OffsetByteRequest",
    "RangeByteRequest",
    "SuffixByteRequest",
    "Unanswered",
    "check_complete",
    "check_key",
    "expected_length",
    "file_version",
    "read_file",
    "read_only_reason",
    "strong_etag",
]

T = TypeVar("T")

Buffer: TypeAlias = bytes | memoryview
"""Bytes returned by a store: ``bytes`` or a zero-copy ``memoryview`` over the backend's buffer."""


class ForbiddenError(PermissionDeniedError):
    """A 403 (Forbidden) answering a request about one object. A GET or HEAD of an object
    turns it into a plain ``PermissionDeniedError`` that says why a 403 may mean "missing",
    or into "missing" on a store with :attr:`AsyncStore.forbidden_is_missing`."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None) -> None:
        super().__init__(message, url=url, key=key, missing_credentials=False)


_DURING = "was closed during a request"  # (a ClosedError naming the request's key)
# (a sparse array's absent chunks are such objects)
_FORBIDDEN_HINT = (
    "; a bucket that denies listing answers 403 for absent objects too: open it with "
    "forbidden_is_missing=True to read those as missing"
)


@dataclass(frozen=True, slots=True)
class RangeByteRequest:
    """The bytes ``[start, end)`` of an object (``end`` exclusive)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ValueError(f"invalid byte range [{self.start}, {self.end})")


@dataclass(frozen=True, slots=True)
class OffsetByteRequest:
    """The bytes from ``offset`` to the end of an object."""

    offset: int

    def __post_init__(self) -> None:
        if self.offset < 0:
            raise ValueError(f"byte offset must be >= 0, got {self.offset}")


@dataclass(frozen=True, slots=True)
class SuffixByteRequest:
    """The last ``suffix`` bytes of an object (all of it if it is shorter)."""

    suffix: int

    def __post_init__(self) -> None:
        if self.suffix < 1:
            raise ValueError(f"byte suffix must be >= 1, got {self.suffix}")


ByteRequest: TypeAlias = RangeByteRequest | OffsetByteRequest | SuffixByteRequest


class Unanswered(enum.Enum):
    """The type of :data:`NO_ANSWER`."""

    NO_ANSWER = "no answer"


NO_ANSWER = Unanswered.NO_ANSWER
"""A batch's place for an object it has no answer for (:meth:`AsyncStore._get_together`):
fetched again with ``get``."""

Edit: TypeAlias = "Callable[[Buffer | None], Awaitable[Buffer | None]]"
"""An edit of one stored object (:meth:`AsyncStore.update`): its bytes (``None``: absent) to
the bytes to store (``None``: leave it as it is)."""


def strong_etag(tag: str | None) -> str | None:
    """``tag`` if it is a strong ETag (one ``If-Match`` can name), else ``None``: a weak one
    (``W/"..."``) never matches under ``If-Match`` (RFC 9110 13.1.1)."""
    return tag if tag and not tag.startswith("W/") else None


def check_key(key: str) -> str:
    """Validate a store key: relative, ``/``-separated, no empty, ``.`` or ``..`` segments."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    if "//" not in key and "/." not in key and key[0] not in "/." and key[-1] != "/":
        return key  # no empty segment, none starting with a dot: the usual chunk key
    if key.startswith("/") or any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid store key {key!r}: keys are relative paths like 'a/b/zarr.json'")
    return key


def _check_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return prefix


def byte_span(byte_range: ByteRequest | None, size: int) -> tuple[int, int]:
    """``[start, end)`` of ``byte_range`` in an object of ``size`` bytes (clamped at the end)."""
    if byte_range is None:
        return 0, size
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.start, min(byte_range.end, size)
    if isinstance(byte_range, OffsetByteRequest):
        return byte_range.offset, size
    return max(0, size - byte_range.suffix), size


def pread_span(fd: int, start: int, stop: int) -> bytes:
    """The bytes ``[start, stop)`` of an open file (fewer if it ends first): ``os.pread``
    until done, one buffer when one read gives them all."""
    parts = []
    while start < stop:
        piece = os.pread(fd, stop - start, start)
        if not piece:
            break
        parts.append(piece)
        start += len(piece)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def file_version(st: os.stat_result) -> str:
    """The version of a local file (its inode, modification time in microseconds and size,
    as obstore's ETag of a local file): a file replaced by another (written beside it and
    renamed over it) is another inode."""
    return f'"{st.st_ino:x}-{st.st_mtime_ns // 1000:x}-{st.st_size:x}"'


def read_file(
    path: str, byte_range: ByteRequest | None, if_match: str | None, *, url: str, key: str
) -> tuple[Buffer | None, str | None]:
    """The bytes of a local file (or of its ``byte_range``) and the version of the file they
    were read from (:func:`file_version` of the open descriptor read: one open, one ``fstat``,
    ``os.pread``); ``(None, None)`` when it does not exist. ``if_match``: a version an earlier
    read returned; ``ChangedError`` when the file is another one now (its bytes unread)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):  # a directory is no object
            return None, None
        version = file_version(st)
        if if_match is not None and version != if_match:
            raise ChangedError(
                f"{key!r} at {url} changed: it is no longer version {if_match} (now {version})",
                url=url,
                key=key,
            )
        size = st.st_size
        start, stop = byte_span(byte_range, size)
        if start > stop or (start == stop and start >= size and _bounded(byte_range)):
            raise StoreError(
                f"store error for {key!r} at {url}: requested range {byte_range} is invalid "
                f"for an object of {size} bytes",
                url=url,
                key=key,
            )
        data = pread_span(fd, start, stop)
    finally:
        os.close(fd)
    return check_complete(memoryview(data), byte_range, size, url=url, key=key), version


def _bounded(byte_range: ByteRequest | None) -> bool:
    """Whether a range that starts at the end of the object is refused (as obstore does):
    a non-empty range or an offset; never a whole read or a suffix."""
    if isinstance(byte_range, RangeByteRequest):
        return byte_range.end > byte_range.start
    return isinstance(byte_range, OffsetByteRequest)


def expected_length(byte_range: ByteRequest | None, size: int) -> int:
    """Bytes a complete answer holds for ``byte_range`` of an object of ``size`` bytes."""
    if byte_range is None:
        return size
    if isinstance(byte_range, RangeByteRequest):
        return max(0, min(byte_range.end, size) - byte_range.start)
    if isinstance(byte_range, OffsetByteRequest):
        return max(0, size - byte_range.offset)
    return min(byte_range.suffix, size)


def check_complete(
    buf: Buffer, byte_range: ByteRequest | None, size: int, *, url: str, key: str
) -> Buffer:
    """Return ``buf``, or raise ``StoreError`` when it is shorter or longer than asked for."""
    want = expected_length(byte_range, size)
    if len(buf) != want:
        raise StoreError(
            f"incomplete read of {key!r} from {url}: got {len(buf)} bytes, expected {want} "
            f"(object size {size}, request {byte_range})",
            url=url,
            key=key,
        )
    return buf


async def _in_order(count: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """``call(i)`` for ``i`` in ``range(count)``, concurrently; the results in order. On a
    failure the other calls are cancelled and the lowest-numbered failure is raised plainly."""
    out: list[T | None] = [None] * count
    errors: list[tuple[int, Exception]] = []

    async def one(i: int, tg: TaskGroup | None) -> None:
        try:
            out[i] = await call(i)
        except Exception as exc:  # noqa: BLE001 - re-raised after the group
            errors.append((i, exc))
            if tg is not None:
                tg.cancel_scope.cancel()

    if count == 1:
        await one(0, None)
    else:
        async with anyio.create_task_group() as tg:
            for i in range(count):
                start_deferred(tg, one, i, tg)
    if errors:
        raise min(errors, key=lambda item: item[0])[1]
    return out  # type: ignore[return-value]  # every slot was filled


class AsyncStore(abc.ABC):
    """An asyncio store of byte objects addressed by relative keys (``image.zarr/zarr.json``).

    Every request holds one token of :attr:`limiter` (one ``CapacityLimiter(max_requests)``
    per store, shared by everything that uses the store), runs under a per-attempt timeout and
    is retried on transient failures (see :class:`~ngio_async.Limits`). Errors are always from
    :mod:`ngio_async._errors`; a missing key is ``None`` (``get``) or ``False`` (``exists``).

    Use as ``async with store: ...`` or call :meth:`aclose`. A closed store raises
    ``ClosedError``.

    Each request borrows a :attr:`limiter` token for the calling task, so do not call store
    methods while the same task holds ``store.limiter`` (anyio raises ``RuntimeError``).
    Backoff sleeps between retries do not hold a token.
    """

    supports_writes: bool = False
    supports_listing: bool = False
    #: ``get_blocking`` is available and cheap (local files, memory): readers may fetch and
    #: decode in one worker-thread call instead of awaiting the fetch on the event loop
    blocking_reads: bool = False
    #: the most keys one request of :meth:`delete_many` deletes (1: no bulk deletes)
    delete_batch: int = 1
    #: GETs may tell the object's ETag (:meth:`get_with_version`) and take ``if_match=``
    #: (remote stores: S3, GCS, Azure, HTTP; in-memory ones). Stores over local files
    #: (:attr:`_root` set) tell versions too, without this: each versioned or conditional read
    #: checks the ``fstat`` of the descriptor it reads (:func:`read_file`). Other stores set to
    #: False have no versions: readers rely on an object not being rewritten while they read
    #: it. Plain GETs of any store stay unconditional (on obstore's clients one event-loop
    #: wake-up less per request: a conditional GET takes two)
    versioned: bool = False
    #: the directory whose files the keys name (``key`` ``a/b`` is ``<_root>/a/b``), set by
    #: backends over local files (``None``: not local files): versioned and conditional reads
    #: (:meth:`get_with_version`, ``if_match=``, :meth:`get_blocking_versioned`) then read the
    #: file with :func:`read_file`, whose versions are the file's inode, mtime and size
    _root: str | None = None
    #: the backend's client is still to be made (:meth:`_make_ready` makes it before the
    #: first request): checked once per request, at the cost of one attribute read
    _unready: bool = False
    #: a 403 answering a GET or HEAD of an object reads as "missing" (``None``, ``False``: an
    #: absent chunk is the fill value), as S3 and GCS answer for a key that does not exist when
    #: the caller may not list the bucket (a public bucket granting ``s3:GetObject`` only).
    #: The trade-off: an object that exists but is forbidden reads as missing too, silently
    #: (a chunk as the fill value). Other 403s (writes, listings) still raise. The
    #: ``open_store`` option ``forbidden_is_missing=True`` sets it; default ``False``: such
    #: reads raise ``PermissionDeniedError`` naming the option
    forbidden_is_missing: bool = False

    def __init__(
        self,
        *,
        url: str,
        limits: Limits | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self._url = url
        self._limits = limits if limits is not None else Limits()
        self._limiter = (
            limiter if limiter is not None else anyio.CapacityLimiter(self._limits.max_requests)
        )
        self._closed = False
        self._edit_locks: dict[str, tuple[anyio.Lock, list[int]]] = {}
        self._parts = PartPlan()  # for big reads in parts

    # -- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where the store is rooted, for messages (never contains credentials)."""
        return self._url

    @property
    def limits(self) -> Limits:
        """The limits this store applies."""
        return self._limits

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The ``CapacityLimiter`` bounding this store's requests in flight."""
        return self._limiter

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def read_only_reason(self) -> str | None:
        """Why this store takes no writes, for the errors refusing a write before any I/O
        (``None``: it takes them)."""
        if self.supports_writes:
            return None
        return read_only_reason(self._url) or f"it is read-only ({type(self).__name__})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._url!r})"

    # -- public API -------------------------------------------------------------------------

    async def get(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> Buffer | None:
        """Return the object's bytes (or the requested part), ``None`` if it does not exist.

        A range reaching past the end of the object is clamped to it; a body shorter than
        that (a truncated response) raises ``StoreError``. ``if_match``: a version that
        :meth:`get_with_version` returned; the read fails with ``ChangedError`` (never
        retried) when the object is another version now (the server's ``412``, or another
        ETag in the answer). Inside :func:`~ngio_async.stores._seen.seeing_versions`, a store
        with versions notes the answer's (no other request).
        """
        self._check_open()
        check_key(key)
        if isinstance(byte_range, RangeByteRequest) and byte_range.start == byte_range.end:
            return b"" if await self.exists(key) else None
        seen = seeing()
        try:
            if if_match is not None:
                data, _ = await self._call(key, self._checked_attempts(key, byte_range, if_match))
                if seen is not None:
                    seen.note(key, if_match, data is not None)
                return data
            if seen is not None and (self.versioned or self._root is not None):
                # a caller notes the versions its reads got: the GET reads the answer's
                data, version = await self._call(key, self._checked_attempts(key, byte_range, None))
                seen.note(key, version, data is not None)
                return data
            return await self._call(key, self._get_attempts(key, byte_range))
        except ForbiddenError as exc:
            missing = self._forbidden(exc, None)
            if seen is not None:
                seen.note(key, None, False)  # (as a GET that found none)
            return missing

    async def get_with_version(
        self, key: str, byte_range: ByteRequest | None = None
    ) -> tuple[Buffer | None, str | None]:
        """``get``, and the version of the object that answered: its strong ETag (local files:
        :func:`file_version` of the file read), to pass as ``if_match=`` to later reads of it;
        ``None`` when the store cannot tell (an HTTP server without ETags, objects stored
        Content-Encoded). One request, as ``get``; a remote object read whole, whose array's
        last one read whole was bigger than ``limits.part_size``: ranged GETs of at most that
        size, all at once (:mod:`~ngio_async.stores._parts`)."""
        if not (self.versioned or self._root is not None) or (
            isinstance(byte_range, RangeByteRequest) and byte_range.start == byte_range.end
        ):
            return await self.get(key, byte_range), None
        self._check_open()
        check_key(key)
        try:
            if byte_range is None:
                data, version = await self._get_whole_versioned(key)
            else:
                checked = self._checked_attempts(key, byte_range, None)
                data, version = await self._call(key, checked)
        except ForbiddenError as exc:
            data, version = self._forbidden(exc, (None, None))
        seen = seeing()
        if seen is not None:
            seen.note(key, version, data is not None)
        return data, version

    async def _get_whole_versioned(self, key: str) -> tuple[Buffer | None, str | None]:
        """Object ``key`` whole with its version: in parts (:func:`get_in_parts`) where
        :meth:`_part_size` allows and its array's last object read whole was bigger than a
        part, else in one GET (timed: :meth:`PartPlan.timed`); its size noted for the next."""
        plan = self._parts
        part = self._part_size(probe=True) if plan.versions and self.versioned else None
        hint = None if part is None or not plan.slow else plan.hint(key)
        got = None
        began: list[float] = []  # when each try began (its token held)
        if part is not None and hint is not None and hint > part:

            async def get(start: int, end: int | None) -> tuple[Buffer | None, str | None]:
                rng = OffsetByteRequest(start) if end is None else RangeByteRequest(start, end)
                data, tag = await self._call(key, self._timed_attempts(key, rng, began))
                if data is not None and tag is None:  # (ranged answers without ETags)
                    plan.versions = False
                return data, tag

            bounds = part_bounds(hint, part)
            got = await get_in_parts(get, bounds)
            if got is not None and got[0] is not None:
                at_once = min(len(bounds), int(self._limiter.total_tokens))
                plan.timed_parts(len(got[0]), time.perf_counter() - min(began), at_once)
        if got is None:
            got = await self._call(key, self._timed_attempts(key, None, began))
            if got[0] is not None and part is not None:
                plan.timed(len(got[0]), time.perf_counter() - began[-1], part)
        if got[0] is not None and part is not None:
            plan.note(key, len(got[0]))
            if got[1] is None:  # no strong ETag (none, weak, Content-Encoded): whole GETs
                plan.versions = False
        return got

    def _timed_attempts(
        self, key: str, byte_range: ByteRequest | None, began: list[float]
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        """:meth:`_checked_attempts`, each try noting in ``began`` when it began: its limiter
        token held by then (time spent queued for one tells nothing of the connection)."""
        attempt = self._checked_attempts(key, byte_range, None)

        async def timed() -> tuple[Buffer | None, str | None]:
            began.append(time.perf_counter())
            return await attempt()

        return timed

    def _part_size(self, *, probe: bool = False) -> int | None:
        """``limits.part_size`` where big reads go in parts: remote stores whose ranges are
        honoured and whose connections came slow (``probe``: whether or not they did yet;
        ``None``: local files, memory, ``part_size=0``)."""
        part = self._limits.part_size
        remote = not self.blocking_reads and self._root is None and self._ranges_honoured()
        return part if part and remote and (probe or self._parts.slow) else None

    def _ranges_honoured(self) -> bool:
        """Whether the server answers ranged GETs with the range only (default: ``True``)."""
        return True

    async def get_many(self, keys: Sequence[str]) -> list[Buffer | None]:
        """Whole objects ``keys``, in order (``None`` for a missing one), requested at once.

        A store whose :attr:`gets_together` is true starts them all in one step; else one
        :meth:`get` each, concurrently (also for the objects such a step left without an
        answer: past their deadline, say; those it answered are not asked for again). On
        failure the other requests are cancelled and one plain error is raised (that of the
        lowest-numbered failed key), never an ``ExceptionGroup``.
        """
        self._check_open()
        for key in keys:
            check_key(key)
        if len(keys) > 1 and self.gets_together and seeing() is None:  # (no versions)
            got = await self._get_together(keys)
            if got is not None:
                again = [i for i, data in enumerate(got) if data is NO_ANSWER]
                if again:
                    fetched = await _in_order(len(again), lambda j: self.get(keys[again[j]]))
                    for i, data in zip(again, fetched, strict=True):
                        got[i] = data
                return got  # type: ignore[return-value]  # (every NO_ANSWER replaced)
        return await _in_order(len(keys), lambda i: self.get(keys[i]))

    async def _get_together(self, keys: Sequence[str]) -> list[Buffer | Unanswered | None] | None:
        """The backend's one-step ``get_many`` while :attr:`gets_together`: each object, or
        :data:`NO_ANSWER` for those to ask for one by one; ``None``: every one. Default:
        ``None``."""
        return None

    @property
    def gets_together(self) -> bool:
        """Whether :meth:`get_many` starts its GETs in one step, at less event-loop work than
        one :meth:`get` each (readers then batch chunk reads); default ``False``."""
        return False

    async def get_ranges(
        self, key: str, ranges: Sequence[tuple[int, int]], *, if_match: str | None = None
    ) -> list[Buffer] | None:
        """Return the bytes ``[start, end)`` for each of ``ranges`` of one object, in order.

        Ranges closer than ``limits.coalesce_gap`` are fetched as one request (on remote
        stores one of at most ``limits.part_size`` bytes, unless a range is bigger); the results
        are zero-copy ``memoryview`` slices of the merged buffers. ``None`` if the object does
        not exist. On failure the other requests are cancelled and one plain error is raised
        (that of the lowest-numbered failed request), never an ``ExceptionGroup``.
        ``if_match``: as for :meth:`get`, for every request.
        """
        self._check_open()
        check_key(key)
        pairs = [(int(start), int(end)) for start, end in ranges]
        cap = self._part_size()
        plan = coalesce_ranges(pairs, self._limits.coalesce_gap, max_size=cap)
        if not plan:
            if not await self.exists(key):
                return None
            return [memoryview(b"") for _ in pairs]
        probe = None if cap is not None else self._part_size(probe=True)

        async def fetch(i: int) -> Buffer | None:
            rng = RangeByteRequest(plan[i].start, plan[i].end)
            began = time.perf_counter()
            free = self._limiter.available_tokens >= 1  # (else queued: not the link's time)
            got = await self.get(key, rng, if_match=if_match)
            if probe is not None and got is not None and free:
                self._parts.timed(len(got), time.perf_counter() - began, probe)
            return got

        merged = await _in_order(len(plan), fetch)

        out: list[Buffer] = [memoryview(b"")] * len(pairs)
        for request, buf in zip(plan, merged, strict=True):
            if buf is None:
                return None
            view = memoryview(buf)
            for member in request.members:
                start, end = pairs[member]
                if len(view) < end - request.start and start - request.start >= len(view):
                    # a merged request was clamped at the end of the object: a range of it
                    # starting there fails, as it does alone (a truncated object, not no data)
                    raise StoreError(
                        f"range [{start}, {end}) of {key!r} at {self._url} starts past the end "
                        f"of the object ({request.start + len(view)} bytes)",
                        url=self._url,
                        key=key,
                    )
                out[member] = view[start - request.start : end - request.start]
        return out

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        """``get`` for worker threads; only where :attr:`blocking_reads` is true."""
        raise UnsupportedError(f"{self._url} has no blocking reads")

    def get_blocking_versioned(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> tuple[Buffer | None, str | None]:
        """:meth:`get_blocking` and the version of the object that answered (as
        :meth:`get_with_version`; ``None``: unknown); ``if_match``: a version it returned, and
        ``ChangedError`` when the object is another one now. Local files: one open, ``fstat``
        and ``pread`` (:func:`read_file`); other stores: ``get_blocking``, no version."""
        if self._root is None:
            return self.get_blocking(key, byte_range), None
        self._check_open()
        check_key(key)
        try:
            return read_file(self._local_path(key), byte_range, if_match, url=self._url, key=key)
        except OSError:
            with self._map_exceptions(key):  # (no context manager on the hot path)
                raise

    def _local_path(self, key: str) -> str:
        """The file of ``key`` (a checked key) in :attr:`_root` (set)."""
        root = self._root
        assert root is not None
        if os.sep == "/":  # (os.path.join takes a few microseconds: once per chunk read)
            return root + key if root.endswith("/") else f"{root}/{key}"
        return os.path.join(root, *key.split("/"))

    async def size(self, key: str) -> int | None:
        """The size in bytes of the object ``key`` (a HEAD where the backend has one, else a
        full GET), ``None`` if it does not exist (nor its bucket: a HEAD's 404 has no body to
        tell them apart; :meth:`missing_bucket` does, with one listing)."""
        self._check_open()
        check_key(key)
        try:
            return await self._call(key, lambda: self._size_once(key))
        except ForbiddenError as exc:
            return self._forbidden(exc, None)

    async def version(self, key: str) -> str | None:
        """A token that changes whenever the object ``key`` is rewritten (its ETag, else its
        modification time and size), ``None`` if it does not exist, ``""`` if the backend cannot
        tell (an HTTP server that sends neither ``ETag`` nor ``Last-Modified``)."""
        self._check_open()
        check_key(key)
        try:
            return await self._call(key, lambda: self._version_once(key))
        except ForbiddenError as exc:
            return self._forbidden(exc, None)

    def versions_blocking(self, keys: Sequence[str]) -> list[str | None] | None:
        """The versions of ``keys`` (as :meth:`version`; ``None``: missing) for a worker
        thread, one ``stat`` each, from a store over local files (:attr:`_root` set: one
        thread call instead of one :meth:`version` each); ``None`` from other stores."""
        if self._root is None:
            return None
        self._check_open()
        out: list[str | None] = []
        for key in keys:
            check_key(key)
            try:
                st = os.stat(self._local_path(key))
            except (FileNotFoundError, NotADirectoryError):
                out.append(None)
                continue
            except OSError:
                with self._map_exceptions(key):
                    raise
            out.append(None if stat.S_ISDIR(st.st_mode) else file_version(st))
        return out

    async def missing_bucket(self, key: str) -> NotFoundError | None:
        """For a caller that found nothing at ``key`` where something was asked for (an
        image): the error naming the bucket (or container) when it is the bucket that is
        missing, ``None`` when it exists or the store cannot tell. Cloud stores ask with one
        listing (never retried) where a 404 did not say which is missing; the others make no
        request."""
        return None

    async def exists(self, key: str) -> bool:
        """Whether the object ``key`` exists (``False`` in a missing bucket too: a HEAD's 404
        has no body to tell them apart; :meth:`missing_bucket` does, with one listing)."""
        self._check_open()
        check_key(key)
        try:
            return await self._call(key, lambda: self._exists_once(key))
        except ForbiddenError as exc:
            return self._forbidden(exc, False)

    async def list_prefix(self, prefix: str = "") -> list[str]:
        """All keys under the directory-like ``prefix`` (recursive, sorted, relative to root).

        :raises UnsupportedError: when the backend cannot list (plain HTTP).
        """
        self._check_open()
        if not self.supports_listing:
            raise UnsupportedError(f"{self._url} does not support listing")
        prefix = _check_prefix(prefix)
        return sorted(await self._call(prefix, lambda: self._list_once(prefix)))

    async def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """One level under the directory-like ``prefix``: its folders and its keys (both
        sorted, relative to root, folders without a trailing ``/``). One delimiter listing
        where the backend has one (S3, GCS, Azure, local, memory): nothing below its
        folders is listed.

        :raises UnsupportedError: when the backend cannot list (plain HTTP).
        """
        self._check_open()
        if not self.supports_listing:
            raise UnsupportedError(f"{self._url} does not support listing")
        prefix = _check_prefix(prefix)
        folders, keys = await self._call(prefix, lambda: self._list_dir_once(prefix))
        return sorted(folders), sorted(keys)

    async def stored_bytes(self, prefix: str = "") -> int:
        """The total size of the objects under the directory-like ``prefix`` (one listing
        where the backend lists sizes).

        :raises UnsupportedError: when the backend cannot list (plain HTTP).
        """
        self._check_open()
        if not self.supports_listing:
            raise UnsupportedError(f"{self._url} does not support listing")
        prefix = _check_prefix(prefix)
        return await self._call(prefix, lambda: self._stored_bytes_once(prefix))

    async def put(self, key: str, data: Buffer) -> None:
        """Write ``data`` to ``key``, replacing any existing object (a memoryview of any
        format or shape, of a numpy array say, writes its bytes in C order)."""
        self._check_writable(key)
        data = _byte_buffer(data)
        await self._call(key, lambda: self._put_once(key, data, if_absent=False))

    async def put_if_absent(self, key: str, data: Buffer) -> bool:
        """Write ``data`` to ``key`` unless it exists; return whether it was written.

        Not retried: a lost response could otherwise turn a successful write into ``False``.
        """
        self._check_writable(key)
        data = _byte_buffer(data)
        return await self._call(key, lambda: self._put_once(key, data, if_absent=True), retry=False)

    async def update(
        self, key: str, edit: Edit, *, attempts: int = 10, idempotent: bool = True
    ) -> Buffer | None:
        """Edit the small object ``key`` atomically, also against other processes: read it
        (``None``: absent), ``await edit(old)``, and store what it returns (``None``, or the same
        bytes: nothing is written) only if the object is still the one read; otherwise read it
        again and edit again, up to ``attempts`` times, then ``ChangedError``. Returns the bytes
        stored now. ``edit`` may thus run several times: it must depend on its argument alone
        (an exception it raises ends the update, nothing written).

        S3, GCS, Azure and memory stores write with a conditional put (``If-Match`` on the
        version read, create-only when it was absent); local directories hold an exclusive
        ``flock`` of the object's directory from the read to the atomic replace (processes of
        one machine; no lock file); other stores hold a lock of this store object. The usual
        cost is one GET and one PUT, as a plain read-modify-write. A conditional put refused
        although it was stored (its answer lost, and a resend of it refused as a conflict) is
        told by the object then holding exactly the bytes it sent: the edit does not run again.
        That takes another writer's edit giving the same bytes for this one's: right when the
        edit is idempotent (editing its result again changes nothing: a write, a max). Else
        (``idempotent=False``: a sum) a refused put is always edited again: concurrent edits
        all land, and a lost answer may apply the edit twice.
        """
        self._check_writable(key)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        async with self._update_guard(key):
            sent: bytes | None = None  # the bytes of the last conditional put refused
            for attempt in range(attempts):
                old, token = await self._call(key, partial(self._read_for_update_once, key))
                if sent is not None and old is not None and bytes(memoryview(old)) == sent:
                    # that put was stored after all: its answer was lost and a resend of it
                    # (a retry) was refused as a conflict with itself; editing again would
                    # apply the edit twice
                    return old
                new = await edit(old)
                if new is None or (old is not None and new == old):
                    return old
                new = _byte_buffer(new)
                if token is None:  # no versions: the guard keeps other writers out
                    await self._call(key, partial(self._put_once, key, new, if_absent=False))
                    return new
                if await self._call(key, partial(self._write_for_update_once, key, new, token)):
                    return new
                sent = bytes(memoryview(new)) if idempotent else None
                # another writer came in between: its version is read and edited again
                await anyio.sleep(random.uniform(0, min(1.0, 0.01 * 2**attempt)))
        raise ChangedError(
            f"{key!r} at {self._url} could not be updated: other writers rewrote it between "
            f"each of {attempts} reads and writes",
            url=self._url,
            key=key,
        )

    async def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        self._check_writable(key)
        await self._call(key, lambda: self._delete_once(key))

    async def delete_many(self, keys: Iterable[str]) -> None:
        """Delete every key of ``keys`` (missing ones are fine): in bulk requests of up to
        :attr:`delete_batch` keys where the backend has them (S3, Azure), else one request per
        key; the requests run concurrently within the store's limiter. On failure the other
        requests are cancelled and one plain error is raised, never an ``ExceptionGroup``."""
        keys = list(keys)
        for key in keys:
            self._check_writable(key)
        size = max(1, self.delete_batch)
        pending = iter([keys[i : i + size] for i in range(0, len(keys), size)])
        errors: list[Exception] = []

        async def worker(tg: TaskGroup) -> None:
            for batch in pending:  # one iterator shared by the workers
                try:
                    await self._call(batch[0], partial(self._delete_many_once, batch))
                except Exception as exc:  # noqa: BLE001 - re-raised after the group
                    errors.append(exc)
                    tg.cancel_scope.cancel()
                    return

        async with anyio.create_task_group() as tg:
            for _ in range(min(self._limits.max_requests, -(-len(keys) // size))):
                start_deferred(tg, worker, tg)
        if errors:
            raise errors[0]

    async def aclose(self) -> None:
        """Release the store's resources (connection pools). Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await self._aclose_backend()

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- machinery --------------------------------------------------------------------------

    def _forbidden(self, exc: ForbiddenError, missing: T) -> T:
        """A GET or HEAD of an object answered 403: ``missing`` where
        :attr:`forbidden_is_missing`, else the ``PermissionDeniedError`` naming that option."""
        if self.forbidden_is_missing:
            return missing
        raise PermissionDeniedError(  # (caused by the backend's error, as other errors)
            f"{exc}{self._forbidden_hint()}", url=exc.url, key=exc.key, missing_credentials=False
        ) from exc.__cause__

    def _forbidden_hint(self) -> str:
        """What to add to the message of a 403 answering a GET or HEAD of an object."""
        return _FORBIDDEN_HINT

    @property
    def _chain_secrets(self) -> tuple[str, ...]:
        """Secrets of this store that its backend's error texts may quote (beyond URLs' user
        info and queries, which :func:`scrub_chain` cleans anyway); default: none."""
        return ()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"store {self._url} is closed")

    def _check_writable(self, key: str) -> None:
        self._check_open()
        check_key(key)
        if not self.supports_writes:
            raise UnsupportedError(f"{self._url}: cannot write {key!r}: {self.read_only_reason}")

    async def _call(
        self, key: str, attempt: Callable[[], Awaitable[T]], *, retry: bool = True
    ) -> T:
        limits = self._limits if retry else _no_retries(self._limits)
        try:
            if self._unready:
                await self._make_ready()
            return await self._call_mapped(key, attempt, limits)
        except Exception as exc:
            if not self._closed or (isinstance(exc, ClosedError) and _DURING in str(exc)):
                raise
            error = self._closed_during(key, exc)
        raise error  # (out of the handler: the raw error is its cause only, cleaned)

    def _closed_during(self, key: str, exc: Exception) -> ClosedError:
        """The error of a request for ``key`` that the store's close ended: whatever the
        backend raised for the connection closed under it (aiohttp: even an AssertionError;
        obstore: any of its errors; a retry: the bare "is closed") chained, its secrets
        cleaned (:func:`scrub_chain`), as are those of mapped errors."""
        error = ClosedError(f"store {self._url} {_DURING} for {key!r}")
        error.__cause__ = exc.__cause__ if isinstance(exc, ClosedError) else exc
        scrub_chain(error, self._chain_secrets)
        return error

    async def _call_mapped(
        self, key: str, attempt: Callable[[], Awaitable[T]], limits: Limits
    ) -> T:
        with self._map_exceptions(key):
            return await call_with_retry(
                attempt,
                limits=limits,
                retryable=self._is_retryable,
                limiter=self._limiter,
                retry_after=self._retry_after,
            )

    # -- backend hooks: one request each, no limiter, retry or timeout ------------------------

    @abc.abstractmethod
    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        """One GET; ``None`` when missing; ``StoreError`` on a truncated body."""

    def _get_attempts(
        self, key: str, byte_range: ByteRequest | None
    ) -> Callable[[], Awaitable[Buffer | None]]:
        """The attempt of one ``get`` call, run once per try (a backend may carry what one
        try learnt to the next); default: ``_get_once``."""
        return partial(self._get_once, key, byte_range)

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        """The attempt of one versioned or conditional GET; default: ``_get_checked_once``
        (local files, :attr:`_root` set: :func:`read_file` in a worker thread)."""
        if self._root is not None:
            return partial(self._get_file_once, key, byte_range, if_match)
        return partial(self._get_checked_once, key, byte_range, if_match)

    async def _get_file_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        read = partial(read_file, self._local_path(key), byte_range, if_match)
        return await anyio.to_thread.run_sync(partial(read, url=self._url, key=key))

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """One GET returning the answer's strong ETag (``None``: unknown); with ``if_match``,
        ``ChangedError`` when the object's is another. Default (stores without versions):
        ``_get_once``, ``if_match`` unchecked (only versions this hook gave come back)."""
        return await self._get_once(key, byte_range), None

    @abc.abstractmethod
    async def _exists_once(self, key: str) -> bool:
        """One HEAD (or equivalent)."""

    async def _version_once(self, key: str) -> str | None:
        """One HEAD (or equivalent); default: existence only (the version is unknown)."""
        return None if await self._size_once(key) is None else ""

    async def _size_once(self, key: str) -> int | None:
        """One HEAD (or equivalent); default: a full GET."""
        data = await self._get_once(key, None)
        return None if data is None else len(data)

    async def _list_once(self, prefix: str) -> list[str]:
        raise UnsupportedError(f"{self._url} does not support listing")

    async def _list_dir_once(self, prefix: str) -> tuple[list[str], list[str]]:
        """Default: from the full listing (backends with a delimiter listing override it)."""
        base = f"{prefix}/" if prefix else ""
        folders: set[str] = set()
        keys: list[str] = []
        for key in await self._list_once(prefix):
            rest = key[len(base) :]
            if "/" in rest:
                folders.add(base + rest.split("/", 1)[0])
            else:
                keys.append(key)
        return sorted(folders), keys

    async def _stored_bytes_once(self, prefix: str) -> int:
        """Backends whose listing has sizes answer in one listing; default: a size per key."""
        return sum([await self._size_once(key) or 0 for key in await self._list_once(prefix)])

    def _update_guard(self, key: str) -> AbstractAsyncContextManager[None]:
        """What :meth:`update` holds from its first read to its last write: a lock of this
        store object per key (local stores add a lock across processes)."""
        return self._keyed_lock(key)

    @asynccontextmanager
    async def _keyed_lock(self, name: str) -> AsyncIterator[None]:
        """One ``anyio.Lock`` per ``name`` on this store object, dropped when unused."""
        entry = self._edit_locks.get(name)
        if entry is None:
            entry = self._edit_locks[name] = (anyio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if not entry[1][0]:
                del self._edit_locks[name]

    async def _read_for_update_once(self, key: str) -> tuple[Buffer | None, object]:
        """One GET for :meth:`update`: the bytes, and the version :meth:`_write_for_update_once`
        writes on (``None``: the store keeps none, :meth:`update` puts under its guard)."""
        return await self._get_once(key, None), None

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        """One conditional PUT for :meth:`update`, unless the object is no longer ``version``
        (a version :meth:`_read_for_update_once` gave): then ``False``."""
        raise UnsupportedError(f"{self._url} has no conditional updates (cannot write {key!r})")

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        raise UnsupportedError(f"{self._url} is read-only (cannot write {key!r})")

    async def _delete_once(self, key: str) -> None:
        raise UnsupportedError(f"{self._url} is read-only (cannot delete {key!r})")

    async def _delete_many_once(self, keys: Sequence[str]) -> None:
        """One bulk delete of ``keys`` (at most :attr:`delete_batch`); default: one by one."""
        for key in keys:
            await self._delete_once(key)

    async def _make_ready(self) -> None:  # noqa: B027 - optional hook
        """Make what the requests need that the (sync, I/O-free) constructor left to the first
        one, while :attr:`_unready` (a client built in a worker thread); then clear it."""

    async def _aclose_backend(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources (called once, shielded from cancellation)."""

    @abc.abstractmethod
    def _map_exceptions(self, key: str) -> AbstractContextManager[None]:
        """Translate backend exceptions into ``ngio_async`` errors naming ``url`` and ``key``."""

    def _timed_out(self, key: str, url: str) -> StoreTimeoutError:
        """The error for a request that ran out of time (``raise ... from`` the backend's)."""
        return StoreTimeoutError(
            f"request for {key!r} at {url} timed out "
            f"({self._limits.timeout}s per attempt, {self._limits.max_retries} retries)",
            url=url,
            key=key,
        )

    def _is_retryable(self, exc: Exception) -> bool:
        """Whether a raw backend exception is transient (timeouts always are)."""
        return False

    def _retry_after(self, exc: Exception) -> float | None:
        """Seconds the server asked to wait before retrying after ``exc`` (``Retry-After``)."""
        return None


def read_only_reason(url: object) -> str | None:
    """Why the store of ``url`` (a URL or a path) takes no writes: plain HTTP(S) servers take
    none here (``None``: the URL's kind does not say; its store may still)."""
    if isinstance(url, str) and url[:8].lower().startswith(("http://", "https://")):
        scheme = url.split(":", 1)[0].lower()
        return (
            f"{scheme}:// is read-only here (a static HTTP server takes no writes); "
            "write to a local path, s3://, gs:// or az://"
        )
    return None


def _byte_buffer(data: Buffer) -> Buffer:
    """``data`` as one flat run of bytes: backends take a typed (``'H'``), multi-dimensional
    or strided memoryview for a sequence of numbers, or refuse it."""
    if isinstance(data, bytes):
        return data
    view = memoryview(data)
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    return view.cast("B") if view.c_contiguous else view.tobytes()


def _no_retries(limits: Limits) -> Limits:
    return replace(limits, max_retries=0)
