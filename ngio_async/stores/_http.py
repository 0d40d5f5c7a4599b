"""``HTTPStore``: a read-only aiohttp store for plain static HTTP(S) servers (nginx, http.server)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import socket
import urllib.request
import weakref
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aiohttp

from .._errors import (
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ._base import (
    AsyncStore,
    Buffer,
    ByteRequest,
    ChangedError,
    CredentialsRefusedError,
    ForbiddenError,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    Unanswered,
    byte_span,
    strong_etag,
)
from ._obstore import ObstoreStore, obstore_http
from ._obstore_errors import CREDENTIALS_REFUSED, _asked, obstore_transient, refusal_reason
from ._obstore_gets import decode_content
from ._obstore_messages import _server_words
from ._obstore_runtime import obstore_usable
from ._scrub import scrub_chain
from ._url_utils import redact_url, redact_urls

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence

    import anyio

    from .._limits import Limits

__all__ = ["HTTPStore"]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
# how obstore's client reports an HTTP answer that was an error (rather than no answer)
_ANSWERED = re.compile(r"status code: \d{3}")
# what of obstore's client's failures another try may not meet: the server busy (it may ask
# for a wait, with Retry-After, that only aiohttp sees) or no answer
_RUST_BUSY = re.compile(r"status code: (?:5\d\d|408|429)\b")
_RUST_UNANSWERED = re.compile(r"error sending request", re.IGNORECASE)
# obstore's client's refusal of a 206 whose range is not the one asked for, or whose
# Content-Range it cannot read ("bytes 10-19/*": the length unknown, as RFC 9110 allows)
_OTHER_RANGE = re.compile(
    r"Requested \d+\.\.\d+, got \d+\.\.\d+|Failed to parse value for CONTENT_RANGE", re.IGNORECASE
)
# answers obstore's client refuses to read and aiohttp reads: a body without Content-Length
# (sent chunked), a Last-Modified not in HTTP's date format
_UNREADABLE = re.compile(r"Content-Length Header missing|Invalid last modified", re.IGNORECASE)
_QUERY = re.compile(r"\?[^\s'\"]*")
_MISSING = frozenset({404, 410})
_GONE = re.compile(r"status code: 410\b")  # obstore's client raises on it (404 is a miss)
_SMALL_BODY = 1 << 16  # a body read to keep its connection; a longer one costs the connection
_DENIED = frozenset({401, 403})
# a 404 of a bucket (S3, GCS's XML API) or container (Azure) that does not exist: the error
# code of the answer's XML body, or of Azure's x-ms-error-code header (a page that only says
# so in words is a static server's own, of a missing object)
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "ContainerNotFound"})
_NO_BUCKET_BODY = re.compile(r"<Code>\s*(?:NoSuchBucket|ContainerNotFound)\s*</Code>")
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "x-auth-token"})


class _HTTPStatusError(Exception):
    """An unexpected HTTP status (internal: ``_map_exceptions`` translates it)."""

    def __init__(
        self, status: int, reason: str | None, retry_after: str | None = None, words: str = ""
    ) -> None:
        self.status = status
        self.reason = reason or ""
        self.retry_after = _parse_retry_after(retry_after)
        self.words = words  # the server's own: its error code and message
        # (a reason phrase that is a whole message, as Azurite's, is left to the words)
        phrase = self.reason if not words or len(self.reason) <= 40 else ""
        text = f"HTTP {status} {phrase}".strip()
        super().__init__(f"{text} ({words})" if words else text)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as the cause of the error it became (dask, tblib): rebuilt from its fields
        return (_status_error, (self.status, self.reason, self.retry_after, self.words))


def _status_error(
    status: int, reason: str, retry_after: float | None, words: str = ""
) -> _HTTPStatusError:
    error = _HTTPStatusError(status, reason, words=words)
    error.retry_after = retry_after
    return error


def _env_proxy(url: str) -> str | None:
    """The proxy that ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY`` name for ``url``'s host,
    as obstore's client, curl and requests read them (looked up once per session: aiohttp's
    ``trust_env`` costs two thread hops per request)."""
    host = urlsplit(url).hostname
    if host is None or urllib.request.proxy_bypass(host):
        return None
    proxy = urllib.request.getproxies().get(urlsplit(url).scheme.lower())
    if not proxy:
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _range_header(byte_range: ByteRequest) -> str:
    if isinstance(byte_range, RangeByteRequest):
        return f"bytes={byte_range.start}-{byte_range.end - 1}"
    if isinstance(byte_range, OffsetByteRequest):
        return f"bytes={byte_range.offset}-"
    return f"bytes=-{byte_range.suffix}"


def _empty_suffix(byte_range: ByteRequest | None, content_range: str | None) -> bool:
    """Whether a 416 answers a suffix range of an empty object (``Content-Range: bytes */0``)."""
    return (
        isinstance(byte_range, SuffixByteRequest)
        and (content_range or "").replace(" ", "") == "bytes*/0"
    )


# Every aiohttp session not closed yet, with its loop and the process that opened it. This
# strong reference keeps a session out of the cyclic GC's garbage: a store dropped unclosed in
# a reference cycle goes with its guard, whose finalizer has the session closed on its loop;
# were the session collected in that same pass, its own finalizer would warn "Unclosed client
# session" first (PEP 442 runs the finalizers of a cycle together) and cut its connections
# unclosed. An entry goes when its session is closed or dropped; the sessions of loops that
# closed without finalizing their guards (or of a forked parent) are dropped by _drop_ended
# once a guard is collected, and at exit.
_LIVE: dict[aiohttp.ClientSession, tuple[asyncio.AbstractEventLoop, int]] = {}


def _drop_ended() -> None:
    """Drop the sessions kept in ``_LIVE`` whose loop has closed or that a forked parent opened
    (neither can be closed on their loop any more)."""
    pid = os.getpid()
    for session, (loop, owner) in list(_LIVE.items()):
        if session.closed or loop.is_closed() or owner != pid:
            _drop_session(session, loop, forked=owner != pid)


atexit.register(_drop_ended)


def _close_at_loop_end(session: aiohttp.ClientSession) -> AsyncGenerator[None]:
    """An async generator, started here, that closes ``session`` when it is finalized: by the
    running loop's ``shutdown_asyncgens`` (``asyncio.run``, ``anyio.run`` and ``Runner`` call it
    before closing the loop), or on that loop when the store drops it unclosed."""

    async def guard() -> AsyncGenerator[None]:
        try:
            yield
        finally:
            try:
                if not session.closed:
                    await session.close()
            finally:
                _LIVE.pop(session, None)

    agen = guard()
    with contextlib.suppress(StopIteration):  # runs it to its yield: the loop now tracks it
        agen.asend(None).send(None)
    # collected on a loop that closed: that loop's finalizer does nothing, _drop_ended does
    weakref.finalize(agen, _drop_ended).atexit = False
    return agen


def _drop_session(
    session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop | None, *, forked: bool
) -> None:
    """Close a session of another event loop without awaiting it here: on its loop if that
    still runs (another thread's), else by closing its pooled sockets at once (a loop that
    ended or idles cannot run the close). ``forked``: the session is the parent process's (its
    loop does not run here); only this process's copies of its sockets are closed."""
    _LIVE.pop(session, None)  # a close scheduled on its loop holds it meanwhile
    if session.closed:
        return
    if not forked and loop is not None and loop.is_running() and not loop.is_closed():
        closing = session.close()
        try:
            asyncio.run_coroutine_threadsafe(closing, loop)
        except RuntimeError:  # it closed meanwhile: close the sockets here
            closing.close()
        else:
            return
    connector = session.connector
    pooled = list(getattr(connector, "_conns", {}).values())  # before close() empties it
    transports = [proto.transport for conns in pooled for proto, _ in conns]
    transports += [proto.transport for proto in getattr(connector, "_acquired", ())]
    for transport in transports:
        if transport is not None:
            _close_socket(transport, forked=forked)
    session.detach()  # its connector is not ours to close any more: no "unclosed" warning
    if connector is not None:
        connector._closed = True  # its sockets are closed above


def _close_socket(transport: asyncio.BaseTransport, *, forked: bool) -> None:
    """Close the socket under ``transport`` (a TLS transport: the one it wraps) without its
    event loop; the transport then counts as closed (no ``ResourceWarning`` at collection)."""
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if inner is not None:
        transport = inner
    sock = getattr(transport, "_sock", None)
    if sock is None:  # not a selector transport: end the connection, the fd goes at collection
        if forked:  # the connection is still the parent's
            return
        with contextlib.suppress(OSError, AttributeError):
            transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        sock.close()
    transport._sock = None  # type: ignore[attr-defined]


def _build_when_sent(rust: ObstoreStore) -> aiohttp.TraceConfig:
    """A session's trace that starts building obstore's client once aiohttp's first request
    is on its way: the build (7-20 ms) holds the GIL (obstore 0.12), and started before, it held
    up the connection and the request's sending, which it now overlaps with the server's
    answer. (A weak reference: ``_LIVE`` holds the session, which must not hold the store.)"""
    store = weakref.ref(rust)

    async def sent(*_: object) -> None:
        target = store()
        if target is not None:
            target.start_client()

    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(sent)
    trace.freeze()
    return trace


class HTTPStore(AsyncStore):
    """A read-only store over a static HTTP(S) server, with one pooled ``aiohttp`` session.

    Ranged reads send ``Range: bytes=a-b`` (``bytes=-n`` for suffixes). A ``206`` answer must
    cover what was asked for (else ``StoreError``); a server that ignores ``Range`` and answers
    ``200`` has the full body sliced. ``404``/``410`` is a missing key; ``401``/``403`` raise
    ``PermissionDeniedError``; ``5xx``, ``429``, connection errors, broken bodies and timeouts
    are retried (after at least a ``Retry-After`` the answer carries, up to ``backoff_max``). Listing and writes raise ``UnsupportedError``.
    Versions are strong ETags: ``get(..., if_match=tag)`` sends ``If-Match``, and a ``412``
    or an answer with another ETag (a server that ignores ``If-Match``) is ``ChangedError``;
    a server without ETags (or with weak ones only) gives no versions. Objects stored with
    ``Content-Encoding: gzip`` (or ``deflate``) are decoded, as browsers and fsspec do (a range
    of one is cut from the whole decoded object), and their server's GETs stay on aiohttp.

    ``rust_gets=True`` (the default of ``open_store`` for http(s) URLs without credentials or
    custom headers): once aiohttp has read one object (the first metadata document), GETs go
    through obstore's HTTP client (built in a thread of its own once that first GET is sent,
    overlapping its answer: 7-20 ms of work, which holds the GIL; a build that fails leaves
    every GET to aiohttp), which reads bodies on its own threads, outside the GIL
    (aiohttp reads them on the event loop: 14 MB shards streamed 1.5x faster, 512 KiB chunks
    ~1.1x, while decode threads run); HEADs stay with aiohttp. Until obstore's client has
    had an answer from the server (an error status counts), a ``StoreError`` from it (a CA
    that only Python's ``ssl`` trusts, a proxy) hands this and every later GET back to aiohttp. The first ranged read that the server
    answers without honouring ``Range`` switches ranged reads to aiohttp for good (sliced as
    above). obstore's client also reads ``405`` as a missing object, so its first "missing" is
    asked again of aiohttp (once: the misses met meanwhile wait for that answer): if aiohttp disagrees (an error, or data), every GET goes through
    aiohttp from then on; a missing chunk never turns into fill values because of a misread
    status. Requests of both clients share this store's limiter, timeout and retry budget
    (obstore's client retries nothing itself; after it met a busy server, 5xx or 429, a GET's
    next tries go through aiohttp, whose ``Retry-After`` is waited).

    The ``aiohttp.ClientSession`` is created lazily inside the running event loop on first
    use and closed by :meth:`aclose`; use the store from that one loop only.
    """

    supports_writes = False
    supports_listing = False
    versioned = True  # ETags of the answers, where the server sends strong ones

    def __init__(
        self,
        url: str,
        *,
        limits: Limits | None = None,
        limiter: anyio.CapacityLimiter | None = None,
        headers: Mapping[str, str] | None = None,
        rust_gets: bool = False,
    ) -> None:
        parts = urlsplit(url.strip())  # (a URL has no unescaped space: one pasted after it)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {redact_url(url)!r}")
        if parts.fragment:
            raise ValueError(  # (the fragment itself not shown: it may hold a token)
                f"HTTP store URLs take no fragment: {redact_url(url)}#... (a '#' in a "
                "directory's name is written %23 in its URL)"
            )
        self._base = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/", query=""))
        # a signed or token URL: keys go into the path, the query goes with every request
        self._query = f"?{parts.query}" if parts.query else ""
        super().__init__(url=redact_url(self._base).rstrip("/"), limits=limits, limiter=limiter)
        self._secret = parts.password
        # what the errors chained to ours must not show: the URL's user info and query, the
        # values of credential headers (see _map_exceptions)
        given = [v for k, v in (headers or {}).items() if k.lower() in _CREDENTIAL_HEADERS]
        self._secrets = tuple(
            {s for w in (parts.username, parts.password) if w for s in (w, unquote(w))}
            | ({parts.query} if parts.query else set())
            | {str(v) for v in given if v}
        )
        # credentials of the URL (its user, its query: a token) or of headers= (for a 401)
        self._credentials = bool(parts.username or parts.password or parts.query) or any(
            name.lower() in _CREDENTIAL_HEADERS for name in headers or {}
        )
        self._headers = {"Accept-Encoding": "identity", **(headers or {})}
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._session_guard: AsyncGenerator[None] | None = None
        self._session_pid = os.getpid()
        self._rust: ObstoreStore | None = None
        self._ranges_ok = True  # the server honours Range (cleared at the first 200 to one)
        self._aiohttp_ok = False  # aiohttp has read an object here (then obstore's client may)
        self._rust_ok = False  # obstore's client has answered here (its errors are then final)
        self._missing_ok = False  # a miss seen by obstore's client was confirmed by aiohttp
        # the confirmation of a first miss under way (its loop, set once it ends)
        self._confirming: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._encoded = False  # an object came Content-Encoded: a 416 may be a range of one
        # obstore's client reads the bodies, except in a child forked after it was used
        secret = parts.username or parts.password or parts.query or headers
        if rust_gets and not secret and obstore_usable():
            # without retries of its own: ours wait what a Retry-After asks (obstore's don't)
            no_retries = replace(self._limits, max_retries=0)
            self._rust = obstore_http(self._base, no_retries, limiter=self._limiter)

    def _session_for_loop(self) -> aiohttp.ClientSession:
        self._check_open()  # a retry after aclose() must not open a session nobody closes
        loop = asyncio.get_running_loop()
        if self._session is not None and self._session_loop is not loop:
            # used on another event loop (asyncio.run twice, a notebook alternating the sync
            # shim with its own loop): the old session cannot be awaited here
            old, self._session = self._session, None
            _drop_session(old, self._session_loop, forked=self._session_pid != os.getpid())
            self._end_guard(old)
        if self._session is None:
            self._session_loop = loop
            self._session_pid = os.getpid()
            connector = aiohttp.TCPConnector(limit=self._limits.max_requests)
            rust = self._obstore()
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),  # per attempt: anyio.fail_after
                auto_decompress=False,
                proxy=_env_proxy(self._base),  # credentials in it are sent to the proxy
                trace_configs=None
                if rust is None or rust.client_ready
                else [_build_when_sent(rust)],
            )
            _LIVE[self._session] = (loop, self._session_pid)
            self._session_guard = _close_at_loop_end(self._session)
        return self._session

    def _end_guard(self, session: aiohttp.ClientSession) -> None:
        """Finish the guard of ``session`` here once it is closed (else its finalizer would
        call on the loop it was started on, which may have ended, or be a forked parent's)."""
        guard, self._session_guard = self._session_guard, None
        if guard is not None and session.closed:
            with contextlib.suppress(StopIteration, RuntimeError):
                guard.aclose().send(None)  # its finally has nothing to await

    @property
    def gets_together(self) -> bool:
        """While GETs go through obstore's client (an object was read here with aiohttp
        first, nothing made it fall back since), :meth:`get_many` starts them in one step."""
        rust = self._obstore()
        return rust is not None and self._aiohttp_ok and rust.gets_together

    def _obstore(self) -> ObstoreStore | None:
        """obstore's client, unless this process was forked from one where it ran (its
        runtime's threads are gone: a call would hang); aiohttp then makes every GET here."""
        if self._rust is not None and not obstore_usable():
            self._rust = None
        return self._rust

    async def _get_together(self, keys: Sequence[str]) -> list[Buffer | Unanswered | None] | None:
        """By obstore's client, under this store's limiter and timeout (the objects without an
        answer, or whose answer needs a second look: ``NO_ANSWER``, then one ``get`` each,
        with the fallbacks to aiohttp)."""
        rust = self._obstore()
        if rust is None or (not rust.client_ready and not await self._built(rust)):
            return None
        return await rust.get_together(
            keys, self.limiter, self.limits.timeout, forbidden_is_missing=self.forbidden_is_missing
        )

    async def _built(self, rust: ObstoreStore) -> bool:
        """Whether obstore's client is built: its build (started in a worker thread with
        aiohttp's first GET) awaited; a failed one hands every GET to aiohttp."""
        try:
            await rust.ready()
        except Exception:  # noqa: BLE001 - no client: aiohttp serves (a closed store fails there)
            if self._rust is rust:
                self._rust = None
            return False
        return True

    def _ranges_honoured(self) -> bool:
        """Until the server answered a ranged GET with the whole object (then parts and
        merged ranges would each fetch all of it)."""
        return self._ranges_ok

    def _object_url(self, key: str) -> str:
        return self._base + quote(key, safe="/") + self._query

    def _get_attempts(
        self, key: str, byte_range: ByteRequest | None
    ) -> Callable[[], Awaitable[Buffer | None]]:
        """After obstore's client found the server busy (5xx, 429), the call's next tries go
        through aiohttp, which reads the ``Retry-After`` the retries then wait."""
        attempt = self._attempts(key, byte_range, None, checked=False)

        async def data() -> Buffer | None:
            return (await attempt())[0]

        return data

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        return self._attempts(key, byte_range, if_match, checked=True)

    def _attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None, *, checked: bool
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        busy = False

        async def attempt() -> tuple[Buffer | None, str | None]:
            nonlocal busy
            if busy:
                return await self._aiohttp_fetch(key, byte_range, if_match)
            try:
                return await self._get_with(key, byte_range, if_match, checked=checked)
            except ChangedError:
                raise
            except StoreError as exc:
                busy = exc.__cause__ is not None and bool(_RUST_BUSY.search(str(exc.__cause__)))
                raise

        return attempt

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        return (await self._get_with(key, byte_range, None, checked=False))[0]

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        return await self._get_with(key, byte_range, if_match, checked=True)

    async def _get_with(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None, *, checked: bool
    ) -> tuple[Buffer | None, str | None]:
        """One GET, by obstore's client or aiohttp; ``checked``: with the answer's ETag (and
        ``If-Match: if_match`` when given; a ``412`` or another ETag: ``ChangedError``)."""
        rust = self._obstore()
        if rust is None or not self._aiohttp_ok or (byte_range is not None and not self._ranges_ok):
            got = await self._aiohttp_fetch(key, byte_range, if_match)
            self._aiohttp_ok = self._aiohttp_ok or got[0] is not None
            return got
        if not rust.client_ready and not await self._built(rust):
            return await self._aiohttp_fetch(key, byte_range, if_match)
        try:
            if checked:
                got = await rust.get_checked_attempt(key, byte_range, if_match)
            else:
                got = await rust.get_attempt(key, byte_range), None
        except ChangedError:
            raise
        except UnsupportedError:  # "Range request not supported": a 200 to a ranged GET
            if byte_range is None:
                raise
            self._ranges_ok = False
            rust.whole_as_range = False  # whole GETs plainly, too
            return await self._aiohttp_fetch(key, byte_range, if_match)
        except StoreError as exc:
            if _OTHER_RANGE.search(str(exc.__cause__ or exc)):
                # a 206 of more than was asked for (block-aligned caches) or of an unknown
                # length, which obstore's client refuses: ranged reads go through aiohttp
                self._ranges_ok = False
                rust.whole_as_range = False  # whole GETs plainly (as one range they fail)
                return await self._aiohttp_fetch(key, byte_range, if_match)
            if _GONE.search(str(exc.__cause__ or exc)):
                self._rust_ok = True  # 410 Gone: a missing key, as aiohttp's GETs take it
                return None, None
            if _UNREADABLE.search(str(exc.__cause__ or exc)):
                # an answer obstore's client refuses to read (a body sent chunked, a bad
                # Last-Modified): aiohttp reads it, and every later GET (a server's habit)
                self._rust = None
                return await self._aiohttp_fetch(key, byte_range, if_match)
            if self._rust_ok or _ANSWERED.search(str(exc.__cause__ or exc)):
                self._rust_ok = True  # the server answered obstore's client: its error stands
                raise
            # aiohttp reached this server and obstore's client did not (its own TLS roots,
            # proxies): aiohttp answers this request and every later one
            self._rust = None
            return await self._aiohttp_fetch(key, byte_range, if_match)
        if got[0] is not None or self._missing_ok:
            self._rust_ok = True
            return got
        return await self._confirm_miss(key, byte_range, if_match, got)

    async def _confirm_miss(
        self,
        key: str,
        byte_range: ByteRequest | None,
        if_match: str | None,
        got: tuple[Buffer | None, str | None],
    ) -> tuple[Buffer | None, str | None]:
        """obstore's client reads 405 as "missing" too: its first miss (``got``) is asked
        again of aiohttp; if aiohttp disagrees, every GET goes through aiohttp from now on.
        One miss at a time is asked: the others met meanwhile wait for that answer, then are
        taken as missing (confirmed) or asked of aiohttp (it disagreed or failed)."""
        loop = asyncio.get_running_loop()
        while True:
            if self._missing_ok:
                self._rust_ok = True
                return got
            if self._rust is None:
                return await self._aiohttp_fetch(key, byte_range, if_match)
            pending = self._confirming
            if pending is None or pending[0] is not loop:  # none, or one of an ended loop
                break
            await pending[1].wait()  # it ended without an answer (cancelled): ask again
        done = asyncio.Event()
        self._confirming = (loop, done)
        try:
            try:
                got = await self._aiohttp_fetch(key, byte_range, if_match)
            except Exception:
                self._rust = None
                raise
            if got[0] is None:
                self._missing_ok = True
            else:
                self._rust = None
            return got
        finally:
            if self._confirming is not None and self._confirming[1] is done:
                self._confirming = None
            done.set()

    async def _aiohttp_get(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        return (await self._aiohttp_fetch(key, byte_range, None))[0]

    async def _aiohttp_fetch(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """One GET by aiohttp: the bytes and the answer's strong ETag (``None`` for objects
        stored Content-Encoded); with ``if_match``, sent as ``If-Match``."""
        headers = {"Range": _range_header(byte_range)} if byte_range is not None else None
        if if_match is not None:
            headers = {**(headers or {}), "If-Match": if_match}
        session = self._session_for_loop()
        body, encoding = b"", ""
        async with session.get(self._object_url(key), headers=headers) as resp:
            status, content_range = resp.status, resp.headers.get("Content-Range")
            if status in _MISSING:
                await self._raise_if_no_bucket(resp, key)
                return None, None
            if status == 412 and if_match is not None:
                raise self._changed(key, if_match, "412 Precondition Failed")
            tag = strong_etag(resp.headers.get("ETag"))
            if if_match is not None and tag is not None and tag != if_match:
                raise self._changed(key, if_match, f"the answer's ETag is {tag}")
            if status == 416 and _empty_suffix(byte_range, content_range):
                return memoryview(b""), tag  # the last bytes of an empty object: none
            if status in _DENIED:
                raise await self._denied(resp)
            if status not in (200, 206) and not (status == 416 and self._encoded):
                raise _HTTPStatusError(status, resp.reason, resp.headers.get("Retry-After"))
            if status != 416:
                body = await resp.read()  # aiohttp raises ClientPayloadError on a cut-off body
                encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        if status == 416:  # objects come encoded here: the range may lie past the encoded bytes
            body = await self._aiohttp_whole(key)
            tag = None
        elif encoding not in ("", "identity"):
            # stored compressed (uploaded with Content-Encoding): served so whatever we
            # accept. obstore's client would return the compressed bytes as the object
            self._rust = None
            self._encoded = True
            tag = None
            if status == 206:  # a range of the compressed bytes: decode the whole
                body = await self._aiohttp_whole(key)
            else:
                body = decode_content(body, encoding, url=self.url, key=key)
        elif status == 206:
            return self._from_partial(key, byte_range, body, content_range), tag
        # 200: the whole object (also when the server ignored Range): slice what was asked for.
        if byte_range is None:
            return body, tag
        start, end = byte_span(byte_range, len(body))
        # a range starting at the end starts past it, as a 416 says (a suffix: what there is)
        if start >= len(body) and not isinstance(byte_range, SuffixByteRequest):
            raise StoreError(
                f"range {byte_range} of {key!r} at {self.url} starts past the end of the "
                f"object ({len(body)} bytes)",
                url=self.url,
                key=key,
            )
        return memoryview(body)[start:end], tag

    async def _denied(self, resp: aiohttp.ClientResponse) -> _HTTPStatusError:
        """The error of a 401 or 403 answering a GET, with the server's own words (its
        error code and message, of a short body): they tell refused credentials (a signature
        that does not match) from a permission the credentials lack."""
        body = ""
        length = resp.content_length
        if length is None or length <= _SMALL_BODY:
            body = (await resp.content.read(_SMALL_BODY)).decode("utf-8", "replace")
        status, phrase = str(resp.status), (resp.reason or "").strip()
        code = resp.headers.get("x-ms-error-code", "")
        words = _server_words(body, status, phrase) if body.lstrip().startswith("<") else code
        return _HTTPStatusError(resp.status, resp.reason, resp.headers.get("Retry-After"), words)

    async def _raise_if_no_bucket(self, resp: aiohttp.ClientResponse, key: str) -> None:
        """Raise ``NotFoundError`` naming the bucket (or container) when a 404 (or 410) says
        that it is what is missing, not the object: S3's and GCS's ``NoSuchBucket``, Azure's
        ``ContainerNotFound``, in the body of a GET's answer (read when short) or in Azure's
        ``x-ms-error-code`` header (a HEAD's too). No request more."""
        code = resp.headers.get("x-ms-error-code", "")
        body = ""
        length = resp.content_length
        if resp.method != "HEAD" and (length is None or length <= _SMALL_BODY):
            body = (await resp.content.read(_SMALL_BODY)).decode("utf-8", "replace")
        if code not in _NO_BUCKET_CODES and not _NO_BUCKET_BODY.search(body):
            return
        status, phrase = str(resp.status), (resp.reason or "").strip()
        words = _server_words(body, status, phrase) or code
        raise NotFoundError(
            f"the bucket (or container) of {self.url} does not exist{_asked(key)}: "
            f"{resp.method} got HTTP {status} {phrase}".rstrip()
            + (f" ({words})" if words else ""),
            url=self.url,
            key=key,
        )

    def _changed(self, key: str, if_match: str, why: str) -> ChangedError:
        return ChangedError(
            f"{key!r} at {self.url} changed: it is no longer version {if_match} ({why})",
            url=self.url,
            key=key,
        )

    async def _aiohttp_whole(self, key: str) -> bytes:
        body = await self._aiohttp_get(key, None)
        if body is None:  # gone between two requests
            raise StoreError(f"{key!r} at {self.url} disappeared while read", url=self.url, key=key)
        return bytes(body)

    def _from_partial(
        self, key: str, byte_range: ByteRequest | None, body: bytes, content_range: str | None
    ) -> Buffer:
        match = _CONTENT_RANGE.match(content_range or "")
        if match is None:
            raise StoreError(
                f"206 answer for {key!r} at {self.url} has a bad Content-Range {content_range!r}",
                url=self.url,
                key=key,
            )
        first, last = int(match[1]), int(match[2])
        size = int(match[3]) if match[3] != "*" else last + 1
        if len(body) != last - first + 1:
            raise StoreError(
                f"truncated body for {key!r} at {self.url}: got {len(body)} bytes, "
                f"Content-Range {content_range!r} promised {last - first + 1}",
                url=self.url,
                key=key,
            )
        start, end = byte_span(byte_range, size)
        if first > start or last + 1 < end:
            raise StoreError(
                f"truncated range for {key!r} at {self.url}: asked for bytes [{start}, {end}) "
                f"of {size}, got [{first}, {last + 1})",
                url=self.url,
                key=key,
            )
        return memoryview(body)[start - first : end - first]

    async def _exists_once(self, key: str) -> bool:
        session = self._session_for_loop()
        async with session.head(self._object_url(key), allow_redirects=True) as resp:
            status, reason, wait = resp.status, resp.reason, resp.headers.get("Retry-After")
            if status in _MISSING:
                await self._raise_if_no_bucket(resp, key)
        if status in (405, 501):  # no HEAD support: ask for one byte instead
            async with session.get(self._object_url(key), headers={"Range": "bytes=0-0"}) as resp:
                status, reason, wait = resp.status, resp.reason, resp.headers.get("Retry-After")
                if status in _MISSING:
                    await self._raise_if_no_bucket(resp, key)
                length = resp.content_length
                if status != 200 or (length is not None and length <= _SMALL_BODY):
                    await resp.read()  # else (Range ignored): hang up, not download it all
        if status in _MISSING:
            return False
        if status == 416:  # an empty object has no byte 0
            return True
        if not 200 <= status < 300:
            raise _HTTPStatusError(status, reason, wait)
        return True

    async def _head(self, key: str) -> tuple[int, Mapping[str, str]]:
        """``(status, headers)`` of a HEAD of ``key``: 2xx, missing (404, 410) or no HEAD
        (405, 501); other answers raise."""
        session = self._session_for_loop()
        async with session.head(self._object_url(key), allow_redirects=True) as resp:
            status, reason, headers = resp.status, resp.reason, resp.headers
            if status in _MISSING:
                await self._raise_if_no_bucket(resp, key)
        if not (200 <= status < 300 or status in _MISSING or status in (405, 501)):
            raise _HTTPStatusError(status, reason, headers.get("Retry-After"))
        return status, headers

    async def _version_once(self, key: str) -> str | None:
        status, headers = await self._head(key)
        if status in _MISSING:
            return None
        if status in (405, 501):  # no HEAD: whether it exists, by a GET
            return await super()._version_once(key)
        if etag := headers.get("ETag", "").strip():
            return etag
        if modified := headers.get("Last-Modified", "").strip():
            return f"{modified}/{headers.get('Content-Length', '')}"
        return ""

    async def _size_once(self, key: str) -> int | None:
        status, headers = await self._head(key)
        if status in _MISSING:
            return None
        length = headers.get("Content-Length")
        if headers.get("Content-Encoding", "").strip().lower() not in ("", "identity"):
            length = None  # the length of the compressed body, not of the object
        if status in (405, 501) or not (length or "").isdigit():
            return await self._size_by_get(key)  # no HEAD or no length
        return int(length or 0)

    async def _size_by_get(self, key: str) -> int | None:
        """The size of ``key`` from a GET of its first byte: the total of a ``206``'s (or
        ``416``'s) ``Content-Range``, the ``Content-Length`` of a ``200`` (its body left unread
        when long); a full GET where none says (stored Content-Encoded, no length)."""
        session = self._session_for_loop()
        async with session.get(self._object_url(key), headers={"Range": "bytes=0-0"}) as resp:
            status, headers = resp.status, resp.headers
            if status in _MISSING:
                await self._raise_if_no_bucket(resp, key)
                return None
            if status not in (200, 206, 416):
                raise _HTTPStatusError(status, resp.reason, headers.get("Retry-After"))
            total: int | None = None
            length = resp.content_length
            if headers.get("Content-Encoding", "").strip().lower() in ("", "identity"):
                if status == 200:  # Range ignored; without a length, the body is counted
                    total = length if length is not None else len(await resp.read())
                elif (whole := headers.get("Content-Range", "").rpartition("/")[2]).isdigit():
                    total = int(whole)
            if status != 200 or (length is not None and length <= _SMALL_BODY):
                await resp.read()  # else: hang up rather than download it all
        return total if total is not None else await super()._size_once(key)

    async def _aclose_backend(self) -> None:
        if self._rust is not None:
            rust, self._rust = self._rust, None
            await rust.aclose()
        if self._session is not None:
            session, self._session = self._session, None
            if self._session_loop is asyncio.get_running_loop():
                try:
                    await session.close()
                finally:
                    _LIVE.pop(session, None)
            else:  # closed from another loop than the one it was used on
                _drop_session(session, self._session_loop, forked=self._session_pid != os.getpid())
            self._end_guard(session)
        self._session_guard = None

    def _is_retryable(self, exc: Exception) -> bool:
        if isinstance(exc, _HTTPStatusError):
            return exc.status >= 500 or exc.status in (408, 429)
        if isinstance(exc, StoreError) and exc.__cause__ is not None:  # obstore's client's
            text = str(exc.__cause__)
            if _RUST_BUSY.search(text) or _RUST_UNANSWERED.search(text):
                return True
        return isinstance(
            exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError
        ) or obstore_transient(exc)

    def _unauthorized(self, message: str, key: str) -> PermissionDeniedError:
        """A 401: the server asks for credentials (none given), or refused those given."""
        if self._credentials:
            hint = "; the server refused the credentials given (in the URL or headers=)"
            return CredentialsRefusedError(message + hint, url=self.url, key=key)
        hint = (
            "; the server asks for credentials: give them in the URL "
            "(https://user:password@host/...) (or pass headers={'Authorization': ...})"
        )
        return PermissionDeniedError(
            message + hint, url=self.url, key=key, missing_credentials=True
        )

    def _refused(self, message: str, key: str) -> PermissionDeniedError:
        """A 403 of credentials the server refused (a signature that does not match), not of
        a permission they lack: no option reads it as missing."""
        if not self._credentials:
            hint = "; the server asks for credentials (the container or bucket is not public)"
            return PermissionDeniedError(
                message + hint, url=self.url, key=key, missing_credentials=True
            )
        if (reason := refusal_reason(message)) is not None:
            hint = f"; the server refused the credentials given: {reason}"
        elif self._query:
            hint = (
                "; the server refused the credentials given: the URL's signature or token "
                "(mistyped, expired, or signed for another path: the query string of the "
                "store's URL is sent with every key, and a URL signed for one object, a "
                "presigned URL, grants access to that object only; an image or plate needs "
                "a token or signature for its whole prefix, or credentials)"
            )
        else:
            hint = "; the server refused the credentials given (in the URL or headers=)"
        return CredentialsRefusedError(message + hint, url=self.url, key=key)

    def _forbidden_hint(self) -> str:
        """A URL with a query string: that query (a signature, a token) is sent with every
        key, and a URL signed for one object grants no other (a presigned S3 or GCS URL):
        reading 403s as missing objects (``forbidden_is_missing``) would read fill values."""
        if not self._query:
            return super()._forbidden_hint()
        return (
            "; the query string of the store's URL (a signature or token) is sent with every "
            "key: a URL signed for one object (a presigned URL) grants access to that object "
            "only, and an image or plate needs access to all of its keys (open it with "
            "credentials, or with a token or signature for the whole prefix)"
        )

    @property
    def _chain_secrets(self) -> tuple[str, ...]:
        return self._secrets

    def _retry_after(self, exc: Exception) -> float | None:
        return exc.retry_after if isinstance(exc, _HTTPStatusError) else None

    def _describe(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = redact_urls(text)  # a redirect's target, with its signature or password
        if self._secret:  # as a word of its own (a password "1" left addresses as they were)
            for secret in {self._secret, unquote(self._secret)}:
                text = re.sub(rf"(?<![\w.:/@-]){re.escape(secret)}(?![\w.:/@-])", "***", text)
        if self._query:  # aiohttp's messages show request URLs, with their signed queries
            text = _QUERY.sub("?***", text)
        return f"{type(exc).__name__}: {text}"

    @contextmanager
    def _map_exceptions(self, key: str) -> Iterator[None]:
        """aiohttp's errors (and our HTTP statuses) as ours, naming ``key``; the errors chained
        to them keep their types, with the secrets their texts quote (a redirect's signed
        target, the URL's password or query) cleaned (:func:`scrub_chain`)."""
        url = self.url
        try:
            try:
                yield
            except ForbiddenError:
                raise
            except PermissionDeniedError as exc:  # obstore's client's
                if "HTTP 401" not in str(exc):
                    raise
                raise self._unauthorized(str(exc), key) from exc.__cause__
            except NgioError:
                raise
            except _HTTPStatusError as exc:
                if exc.status == 401:
                    raise self._unauthorized(
                        f"access denied (HTTP 401) to {key!r} at {url}", key
                    ) from exc
                if exc.status == 403 and CREDENTIALS_REFUSED.search(exc.words):
                    raise self._refused(f"access denied ({exc}) to {key!r} at {url}", key) from exc
                if exc.status == 403:
                    raise ForbiddenError(
                        f"access denied (HTTP 403) to {key!r} at {url}", url=url, key=key
                    ) from exc
                raise StoreError(f"{exc} for {key!r} at {url}", url=url, key=key) from exc
            except TimeoutError as exc:
                raise self._timed_out(key, url) from exc
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise StoreError(
                    f"HTTP request for {key!r} at {url} failed: {self._describe(exc)}",
                    url=url,
                    key=key,
                ) from exc
        except NgioError as err:
            scrub_chain(err, self._chain_secrets)
            raise
