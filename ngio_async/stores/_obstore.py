"""``ObstoreStore``: the backend over any obstore store (local, memory, S3, GCS, Azure, HTTP)."""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import obstore
from obstore import exceptions as obs_exc
from obstore.store import AzureStore, GCSStore, HTTPStore, LocalStore, MemoryStore, S3Store

from .._errors import (
    ClosedError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ._base import (
    NO_ANSWER,
    AsyncStore,
    Buffer,
    ByteRequest,
    ChangedError,
    ForbiddenError,
    RangeByteRequest,
    SuffixByteRequest,
    Unanswered,
    byte_span,
    check_complete,
    check_key,
    strong_etag,
)
from ._local import directory_lock
from ._obstore_clients import (
    OBSTORE_TYPES,
    DeferredClient,
    _retrieve,
    build_errors,
    build_in_thread,
    describe_obstore,
    obstore_client_options,
    obstore_retry_config,
    probe_client,
)
from ._obstore_errors import (
    _DENIED,
    _HTTP_REFUSED,
    _IGNORED_RANGE,
    _NO_CREDENTIALS,
    _NOT_PARTIAL,
    _QUERY,
    _UNREADABLE,
    _UNSATISFIABLE,
    _USERINFO,
    _allows_http,
    _asked,
    _credentials_hint,
    _GetRetriedError,
    _missing,
    _no_container,
    _raise_if_no_container,
    _range_refused,
    obstore_transient,
)
from ._obstore_gets import (
    _FALLBACK,
    _GZIP_MAGIC,
    _HAS_PREAD,
    _WHOLE,
    _content_encoding,
    _from_byte_0,
    _get_options,
    _pread,
    decode_content,
)
from ._obstore_messages import obstore_message
from ._obstore_runtime import _check_runtime, note_use
from ._url_utils import redact_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from obstore import GetOptions, ObjectMeta, UpdateVersion
    from obstore.store import ClientConfig, ObjectStore

    from .._limits import Limits

__all__ = ["ObstoreStore", "obstore_http"]


def obstore_http(
    url: str,
    limits: Limits,
    *,
    client_options: ClientConfig | None = None,
    limiter: anyio.CapacityLimiter | None = None,
) -> ObstoreStore:
    """obstore's HTTP client rooted at ``url`` (plain ``http`` allowed when the URL says so).

    Its keys are joined to the base with ``/``, so the base path loses any trailing slash (a
    query string stays, and goes with every request).
    """
    options = obstore_client_options(limits, client_options)
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError(
            f"obstore's HTTP client sends no credentials from the URL {redact_url(url)}: use "
            "the default backend (or backend='aiohttp'), which does"
        )
    if parts.scheme.lower() == "http":
        options.setdefault("allow_http", True)
    base = urlunsplit(parts._replace(path=parts.path.rstrip("/")))
    retry = obstore_retry_config(limits)
    display = redact_url(base).rstrip("/")

    def build(client_options: ClientConfig) -> ObjectStore:
        return HTTPStore.from_url(base, client_options=client_options, retry_config=retry)

    def build_later() -> ObjectStore:
        with build_errors(display):
            return build(options)

    probed = probe_client(build, options)
    # the settings are good: the client is built on first use
    store = probed if probed is not None else DeferredClient(HTTPStore, build_later, display)
    return ObstoreStore(store, url=display, limits=limits, limiter=limiter)


class ObstoreStore(AsyncStore):
    """An :class:`AsyncStore` over an obstore store.

    obstore's async calls run on tokio threads, so nothing blocks the event loop. obstore
    retries transient HTTP failures itself (configure it with :func:`obstore_retry_config`);
    this layer adds the per-attempt timeout, retries after timeouts and the request limiter.
    ``HTTPStore`` is treated as read-only and unlistable (plain static servers). Remote
    objects stored with ``Content-Encoding: gzip`` (or ``deflate``: uploaded with that header,
    as CloudVolume does) are decoded, as browsers do, a range of one cut from the whole decoded
    object. Bodies read as one range carry no headers, so one that starts as gzip data is
    checked once per store with a plain GET; once an encoded object is seen, every GET of the
    store is a plain one (its headers checked; a 416 is asked again as the whole object).
    Remote stores (S3, GCS, Azure, HTTP) have versions, the objects' strong ETags: versioned
    and conditional GETs (``if_match=``, sent as ``If-Match``) are one ``get_async`` each, a
    ``412`` is ``ChangedError``. In-memory stores have them too (obstore's ``MemoryStore``
    tags each put with a number of its own), also for blocking reads
    (:meth:`get_blocking_versioned`); local files have theirs (see ``AsyncStore._root``).

    ``store`` may be a :class:`DeferredClient` (``open_store`` gives S3, GCS, Azure and HTTP
    stores so): its client is built in a worker thread at the first request (one build for
    every request that comes meanwhile; its failure is each one's), not on the event loop.
    """

    def __init__(
        self,
        store: ObjectStore | DeferredClient,
        *,
        url: str | None = None,
        limits: Limits | None = None,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        deferred = store if isinstance(store, DeferredClient) else None
        if deferred is not None:
            kind: type[ObjectStore] = deferred.kind
            url = deferred.url if url is None else url
        elif isinstance(store, OBSTORE_TYPES):
            kind = type(store)
            url = describe_obstore(store) if url is None else url
        else:
            raise TypeError(f"expected an obstore store, got {type(store).__name__}")
        _check_runtime(url)
        note_use()
        super().__init__(url=url, limits=limits, limiter=limiter)
        # obstore's client (its connection pool): dropped at close, see _aclose_backend;
        # None until built when deferred (see _make_ready)
        self._client: ObjectStore | None = None if deferred is not None else store  # type: ignore[assignment]
        self._deferred = deferred
        self._building: asyncio.Task[None] | None = None  # the build in a worker thread
        self._unready = deferred is not None
        read_only = _is_kind(kind, HTTPStore)
        self.supports_writes = not read_only
        self.supports_listing = not read_only
        self.blocking_reads = _is_kind(kind, LocalStore | MemoryStore)
        # ETags of cloud objects, HTTP answers and memory objects (local files: _root)
        self.versioned = not _is_kind(kind, LocalStore)
        # S3's DeleteObjects takes 1,000 keys, Azure's blob batch 256 (obstore splits by that)
        self.delete_batch = 256 if _is_kind(kind, S3Store | AzureStore) else 1
        # local files: blocking reads with os.pread (one syscall, no runtime hop)
        prefix = getattr(store, "prefix", None) if isinstance(store, LocalStore) else None
        self._root: str | None = str(prefix) if prefix is not None and _HAS_PREAD else None
        self.whole_as_range = True  # whole GETs as one bounded range (cleared if refused)
        self._no_retries: ObjectStore | None = None  # see _unretried
        self._no_retries_building: asyncio.Task[None] | None = None  # its build, in a thread
        self._plain_updates = False  # the server refused a conditional put: update() puts
        self._http = read_only
        # remote objects may come Content-Encoded (uploaded with the header): decoded
        self._decodes = not self.blocking_reads
        self._encoded = False  # an object here came Content-Encoded: every GET shows headers
        self._magic_checked = False  # a body starting as gzip data was checked: stored so
        self._magic_check: anyio.Event | None = None  # set when the check in flight ends

    @property
    def obstore(self) -> ObjectStore:
        """The wrapped obstore store (``ClosedError`` once this store is closed)."""
        return self._store

    @property
    def _store(self) -> ObjectStore:
        """obstore's client; ``ClosedError`` after :meth:`aclose` (a request still in flight
        then fails as one asked after it). A deferred one not built yet (the requests wait
        for it in :meth:`_make_ready`; this is the sync :attr:`obstore`) is built here."""
        client = self._client
        if client is None:
            deferred = self._deferred
            if deferred is None or self.closed:
                raise ClosedError(f"store {self.url} is closed")
            client = self._built(deferred, deferred.build())
        return client

    def _built(self, deferred: DeferredClient, client: ObjectStore) -> ObjectStore:
        """Take the client built of ``deferred`` (the first one built, if two were)."""
        if self._deferred is deferred and not self.closed:
            self._client, self._deferred, self._unready = client, None, False
            self.delete_batch = 256 if isinstance(client, S3Store | AzureStore) else 1
            return client
        if self._client is None:  # closed meanwhile: dropped, it never connected
            raise ClosedError(f"store {self.url} is closed")
        return self._client

    @property
    def client_ready(self) -> bool:
        """Whether obstore's client is built (a deferred one: once its build has ended)."""
        return self._client is not None

    def start_client(self) -> None:
        """Start building a deferred client in a worker thread, if not under way yet (on the
        running event loop): for a caller that knows it will soon need it."""
        deferred = self._deferred
        if deferred is None or self.closed:
            return
        task = self._building
        loop = asyncio.get_running_loop()
        if task is not None and not task.cancelled() and (task.get_loop() is loop or task.done()):
            return  # under way here, or failed (its failure is every caller's)
        # none yet, one cancelled (its loop ended), or one under way on another loop
        self._building = task = loop.create_task(self._build(deferred))
        task.add_done_callback(_retrieve)

    async def _build(self, deferred: DeferredClient) -> None:
        """Build the client in a thread of its own (:func:`build_in_thread`)."""
        client = await build_in_thread(deferred.build, deferred.url)
        with suppress(ClosedError):  # closed meanwhile: the waiters say so
            self._built(deferred, client)

    async def ready(self) -> None:
        """Wait until obstore's client is built (see :meth:`_make_ready`); its build's failure
        (naming the URL), or ``ClosedError``."""
        if self._unready:
            await self._make_ready()
        elif self._client is None:
            raise ClosedError(f"store {self.url} is closed")

    async def _make_ready(self) -> None:
        """Wait for the deferred client's build (started here, in a worker thread, if no
        request did yet); a waiter cancelled leaves it to the others."""
        while self._client is None:
            if self._deferred is None or self.closed:
                raise ClosedError(f"store {self.url} is closed")
            self.start_client()
            task = self._building
            assert task is not None
            if task.done():
                task.result()  # its failure
            else:
                await asyncio.shield(task)

    async def _aclose_backend(self) -> None:
        """Drop every reference to obstore's clients: the last one gone closes their
        connection pools (their sockets stayed connected until the garbage collector found
        the closed store, as long as anything, a closed dataset say, still held it). A
        build under way ends in a worker thread; its client, which never connected, is
        dropped then."""
        self._client = None
        self._deferred = None
        self._no_retries = None
        self._no_retries_building = None  # (its waiters hold it; what it builds is dropped)

    def _check_open(self) -> None:
        super()._check_open()
        _check_runtime(self.url)  # a store carried into a forked child

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        """Blocking ``get`` for worker threads, on local stores (``blocking_reads``).

        obstore's sync API releases the GIL; one thread hop then both reads and decodes a chunk.
        No limiter or retries: the caller's thread limiter bounds the concurrency.
        """
        if not self.blocking_reads:
            return super().get_blocking(key, byte_range)
        self._check_open()
        check_key(key)
        if self._root is not None:
            read = _pread(os.path.join(self._root, *key.split("/")), byte_range)
            if read is not _FALLBACK:
                if read is None:
                    return None
                data, size = read
                return check_complete(data, byte_range, size, url=self.url, key=key)
        with self._map_exceptions(key):
            try:
                result = obstore.get(self._store, key, options=_get_options(byte_range))
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            data = result.bytes()
            return check_complete(
                memoryview(data), byte_range, result.meta["size"], url=self.url, key=key
            )

    def get_blocking_versioned(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> tuple[Buffer | None, str | None]:
        """:meth:`AsyncStore.get_blocking_versioned`; in-memory stores: one ``get`` with the
        object's ETag (``if_match``: conditional on it, ``ChangedError`` if it is another)."""
        if not (self.blocking_reads and self.versioned):  # local files (_root), remote
            return super().get_blocking_versioned(key, byte_range, if_match=if_match)
        self._check_open()
        check_key(key)
        options = _get_options(byte_range)
        if if_match is not None:
            options["if_match"] = if_match
        with self._map_exceptions(key):
            try:
                result = obstore.get(self._store, key, options=options)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            except obs_exc.PreconditionError:
                raise self._changed(key, if_match, "another version is stored") from None
            data = memoryview(result.bytes())
            meta = result.meta
            complete = check_complete(data, byte_range, meta["size"], url=self.url, key=key)
            return complete, strong_etag(meta.get("e_tag"))

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        try:
            return await self._get_body(key, byte_range)
        except obs_exc.GenericError as exc:
            self._raise_if_refetched(key, exc)
            raise

    def _raise_if_refetched(self, key: str, exc: obs_exc.GenericError) -> None:
        """A transient GET failure that obstore's own retries already fetched again is final."""
        if not obstore_transient(exc) or self.limits.max_retries == 0:
            return  # (a client without retries of its own: its caller retries)
        raise _GetRetriedError(
            f"store error for {key!r} at {self.url}: {self._describe(exc)} (fetched "
            f"{self.limits.max_retries + 1} times)",
            url=self.url,
            key=key,
        ) from exc

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        if not self.versioned or self._encoded:  # no versions: local, or decoded objects
            return await self._get_once(key, byte_range), None
        try:
            return await self._get_checked(key, byte_range, if_match)
        except obs_exc.GenericError as exc:
            self._raise_if_refetched(key, exc)
            raise

    async def _get_checked(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """One GET (``If-Match: if_match`` when given) that reads the answer's ETag."""
        options = _get_options(byte_range)
        if if_match is not None:
            options["if_match"] = if_match
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None, None
        except obs_exc.PreconditionError:
            raise self._changed(key, if_match, "412 Precondition Failed") from None
        except obs_exc.NotSupportedError as exc:
            if isinstance(byte_range, SuffixByteRequest) and not self._http:
                return await self._get_suffix_checked(key, byte_range, if_match)  # Azure
            if if_match is not None or not _range_refused(exc):
                raise
            return await self._get_once(key, byte_range), None  # a range ignored: no version
        except obs_exc.GenericError as exc:
            if if_match is not None or not (_range_refused(exc) or _NOT_PARTIAL.search(str(exc))):
                raise
            # a range the server refused or ignored (an empty object's suffix): the plain
            # path's answer, without a version
            return await self._get_once(key, byte_range), None
        data = memoryview(await result.bytes_async())
        encoding = _content_encoding(result.attributes) if self._decodes else ""
        if encoding:  # stored Content-Encoded: decoded, no version (ranges are cut)
            ranged = "range" in options
            return await self._decoded(key, byte_range, encoding, data, ranged=ranged), None
        meta = result.meta
        tag = strong_etag(meta.get("e_tag"))
        if if_match is not None and tag is not None and tag != if_match:
            # a server that ignores If-Match
            raise self._changed(key, if_match, f"the answer's ETag is {tag}")
        return check_complete(data, byte_range, meta["size"], url=self.url, key=key), tag

    async def _get_suffix_checked(
        self, key: str, byte_range: SuffixByteRequest, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """A suffix where the store has none (Azure): a HEAD for the size and the ETag, then
        the range, conditional on that ETag (asked again if it changed in between, unless
        ``if_match`` named the version)."""
        for _ in range(3):
            try:
                meta = await obstore.head_async(self._store, key)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            tag = strong_etag(meta.get("e_tag"))
            if if_match is not None and tag != if_match:
                raise self._changed(key, if_match, f"its ETag is {tag}")
            size = meta["size"]
            if size == 0:
                return memoryview(b""), tag
            options: GetOptions = {"range": (max(0, size - byte_range.suffix), size)}
            if tag is not None:
                options["if_match"] = tag
            try:
                result = await obstore.get_async(self._store, key, options=options)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None, None
            except obs_exc.PreconditionError:
                if if_match is not None:
                    raise self._changed(key, if_match, "412 Precondition Failed") from None
                continue  # rewritten between the HEAD and the GET
            data = memoryview(await result.bytes_async())
            return check_complete(data, byte_range, size, url=self.url, key=key), tag
        raise self._changed(key, None, "rewritten between its size and its bytes, 3 times")

    def _changed(self, key: str, if_match: str | None, why: str) -> ChangedError:
        what = "while it was read" if if_match is None else f"it is no longer version {if_match}"
        return ChangedError(f"{key!r} at {self.url} changed: {what} ({why})", url=self.url, key=key)

    async def _get_body(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        if self._encoded:  # objects come encoded here: plain GETs, whose headers tell
            try:
                return await self._get_plain(key, byte_range)
            except obs_exc.GenericError as exc:
                if byte_range is None or not _UNSATISFIABLE.search(str(exc)):
                    raise
            # a range past the end of the object, or only of its encoded bytes
            whole = await self._get_plain(key, None)
            return None if whole is None else self._cut(key, whole, byte_range)
        data = await self._get_ranged(key, byte_range)
        while (
            self._decodes
            and not self._magic_checked
            and data is not None
            and bytes(data[:2]) == _GZIP_MAGIC
            and _from_byte_0(byte_range)
        ):
            # gzip data at byte 0: a gzip codec's chunk, or an object stored gzip-encoded
            # (uploaded with Content-Encoding: gzip); the headers of a plain GET tell. One
            # request checks; the others wait for its verdict (a stream's first window)
            if self._encoded:
                return await self._get_plain(key, byte_range)
            if self._magic_check is not None:
                await self._magic_check.wait()
                continue  # checked (or failed: then this one checks)
            self._magic_check = check = anyio.Event()
            try:
                data = await self._get_plain(key, byte_range)
                self._magic_checked = not self._encoded  # not encoded: stored gzip data
            finally:
                self._magic_check = None
                check.set()
        return data

    async def _get_ranged(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        if byte_range is None and self.whole_as_range:
            # a whole object as the range [0, 2**40): one runtime round trip, not two
            try:
                data = await obstore.get_range_async(self._store, key, start=0, end=_WHOLE)
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            except (obs_exc.NotSupportedError, obs_exc.GenericError) as exc:
                if not _range_refused(exc):
                    raise
                # an empty object has no byte 0 (416), or the server ignores ranges: ask for
                # the object plainly; a non-empty answer means ranges never do here
                whole = await self._get_plain(key, None)
                if whole is not None and len(whole):
                    self.whole_as_range = False
                return whole
            if len(data) < _WHOLE:
                return memoryview(data)
            # an object of 1 TiB or more: ask for all of it
        if isinstance(byte_range, RangeByteRequest):
            # one runtime round trip (get_async + bytes_async take two loop wake-ups)
            try:
                data = await obstore.get_range_async(
                    self._store, key, start=byte_range.start, end=byte_range.end
                )
            except FileNotFoundError as exc:
                _raise_if_no_container(exc)
                return None
            view = memoryview(data)
            if len(view) == byte_range.end - byte_range.start:
                return view
            # shorter: the object ends inside the range; the answer with its size decides
        return await self._get_plain(key, byte_range)

    async def _get_plain(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        options = _get_options(byte_range)
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None
        except obs_exc.NotSupportedError as exc:
            if not isinstance(byte_range, SuffixByteRequest):
                raise
            if self._http or _IGNORED_RANGE.search(str(exc)):  # a 200 to it: a whole came
                whole = await self._get_plain(key, None)  # (a HEAD's 405 reads as "missing")
                return None if whole is None else memoryview(whole)[-byte_range.suffix :]
            return await self._get_suffix_via_head(key, byte_range)  # Azure: no suffix ranges
        except obs_exc.GenericError as exc:
            if not isinstance(byte_range, SuffixByteRequest):
                raise
            text = str(exc)
            if _UNSATISFIABLE.search(text):  # a suffix of an empty object (RFC 9110 14.1.1)
                return memoryview(b"")
            if not _NOT_PARTIAL.search(text):
                raise
            whole = await self._get_plain(key, None)  # a 200 to the range: the whole object
            return None if whole is None else memoryview(whole)[-byte_range.suffix :]
        data = await result.bytes_async()
        encoding = _content_encoding(result.attributes) if self._decodes else ""
        if encoding:
            body = memoryview(data)
            return await self._decoded(key, byte_range, encoding, body, ranged="range" in options)
        size = result.meta["size"]
        return check_complete(memoryview(data), byte_range, size, url=self.url, key=key)

    async def _decoded(
        self, key: str, byte_range: ByteRequest | None, encoding: str, body: Buffer, *, ranged: bool
    ) -> Buffer | None:
        """The object (or its ``byte_range``) from an answer served ``Content-Encoding``d:
        ``body`` is that answer's, of a range of the encoded bytes if ``ranged``."""
        self._encoded = True
        if ranged:  # a range of the compressed bytes: decode the whole
            whole = await obstore.get_async(self._store, key)
            encoding = _content_encoding(whole.attributes)
            body = memoryview(await whole.bytes_async())
        data = decode_content(body, encoding, url=self.url, key=key) if encoding else body
        return memoryview(data) if byte_range is None else self._cut(key, data, byte_range)

    def _cut(self, key: str, data: Buffer, byte_range: ByteRequest) -> Buffer:
        """``byte_range`` of a whole object's bytes (as a backend cuts it: clamped at the end,
        an error when it starts there or later)."""
        start, end = byte_span(byte_range, len(data))
        at_end = isinstance(byte_range, RangeByteRequest) and start == len(data) < byte_range.end
        if start > len(data) or at_end:
            raise StoreError(
                f"range {byte_range} of {key!r} at {self.url} starts past the end of the "
                f"object ({len(data)} bytes)",
                url=self.url,
                key=key,
            )
        return memoryview(data)[start:end]

    async def get_checked_attempt(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        """``get_attempt`` reading the answer's ETag, conditional on ``if_match`` if given
        (see :meth:`AsyncStore.get_with_version`)."""
        if self._unready:
            await self._make_ready()
        with self._map_exceptions(key):
            return await self._get_checked_once(key, byte_range, if_match)

    async def get_attempt(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        """One GET, errors mapped to ``ngio_async`` errors, without this store's limiter,
        timeout or retries (obstore's own retries still apply): for a store that sends some of
        its requests through this client under its own limiter (``HTTPStore``)."""
        if self._unready:
            await self._make_ready()
        with self._map_exceptions(key):
            return await self._get_once(key, byte_range)

    @property
    def gets_together(self) -> bool:
        """Remote stores whose whole objects come as one bounded range each (none seen
        Content-Encoded): :meth:`get_many` starts them as bare obstore calls."""
        return not self.blocking_reads and self.whole_as_range and not self._encoded

    async def _get_together(self, keys: Sequence[str]) -> list[Buffer | Unanswered | None] | None:
        return await self.get_together(keys, self.limiter, self.limits.timeout)

    async def get_together(
        self,
        keys: Sequence[str],
        limiter: anyio.CapacityLimiter,
        seconds: float | None,
        *,
        forbidden_is_missing: bool | None = None,
    ) -> list[Buffer | Unanswered | None]:
        """Whole objects ``keys`` (``None``: missing), each as one bounded range, all started
        at once, each within ``seconds`` of its start (``None``: no limit; a per-request limit,
        as ``Limits.timeout``: the time spent waiting for a token never counts). Each holds a
        token of ``limiter`` while in flight; short of tokens, the batch waits for its own
        oldest request first (it never waits for a token while it holds one: no deadlock
        between batches).

        Bare obstore calls (no retry loop, error mapping or timeout per request: 3-4x less
        event-loop work than ``get``). ``NO_ANSWER`` for the objects better fetched one by
        one with ``get`` (which retries, maps errors and checks answers): at any failure but a
        final one, a request past its deadline, a missing bucket, a body starting as gzip data
        that no plain GET has checked yet, the batch stops, and every object without an answer
        by then (that one, those in flight, those not started) is one. A transient failure
        obstore's own retries met is final, as in ``get``. With ``forbidden_is_missing``
        (default: the store's own) a 403 is ``None``, else it stops the batch.
        """
        if self._unready:
            await self._make_ready()
        # started, not awaited: each with its token, its deadline (its start + seconds) and
        # its key's place in keys
        pending: deque[tuple[asyncio.Future[Any], object, float, int]] = deque()
        out: list[Buffer | Unanswered | None] = []

        forbidden = (
            self.forbidden_is_missing if forbidden_is_missing is None else forbidden_is_missing
        )

        def answered(view: memoryview) -> bool:
            """Whether a body is the object's (else it is fetched apart)."""
            return len(view) < _WHOLE and not (
                self._decodes and not self._magic_checked and view[:2] == _GZIP_MAGIC
            )

        def stop() -> list[Buffer | Unanswered | None]:
            """The answers so far, those of the requests in flight that ended (in the order
            of keys), ``NO_ANSWER`` for the others."""
            got: list[Buffer | Unanswered | None] = [*out, *[NO_ANSWER] * (len(keys) - len(out))]
            for started, _, _, i in pending:
                if not started.done() or started.cancelled():
                    continue
                error = started.exception()
                if error is None:
                    view = memoryview(started.result())
                    if answered(view):
                        got[i] = view
                elif (isinstance(error, FileNotFoundError) and _missing(error)) or (
                    forbidden and isinstance(error, obs_exc.PermissionDeniedError)
                ):
                    got[i] = None
                del error  # (its traceback holds this frame)
            return got

        async def finish_oldest() -> bool:
            """Await the oldest request (until its own deadline), give its token back;
            ``False``: stop the batch there."""
            started, token, deadline, _ = pending.popleft()
            try:
                if started.done() or deadline == math.inf:  # (no cancel scope to set up)
                    view = memoryview(await started)
                else:
                    with anyio.CancelScope(deadline=deadline) as scope:
                        view = memoryview(await started)
                    if scope.cancelled_caught:
                        return False  # this request ran out of time
            except FileNotFoundError as exc:
                if _no_container(exc):
                    return False
                out.append(None if _missing(exc) else NO_ANSWER)
                return True
            except obs_exc.PermissionDeniedError:  # a 403
                if not forbidden:
                    raise
                out.append(None)
                return True
            finally:
                started.cancel()  # (cancelled here while it ran; else a no-op)
                limiter.release_on_behalf_of(token)
                # a failed future holds its exception, whose traceback holds this frame: no
                # reference back from the frame, or the store waits in a cycle for the GC
                # (an unclosed store's aiohttp session then warns "unclosed" there)
                del started
            if not answered(view):
                return False
            out.append(view)
            return True

        limit = math.inf if seconds is None else seconds
        try:
            for index, key in enumerate(keys):
                token = object()
                while True:
                    try:
                        limiter.acquire_on_behalf_of_nowait(token)
                        break
                    except anyio.WouldBlock:
                        if not pending:
                            await limiter.acquire_on_behalf_of(token)
                            break
                        if not await finish_oldest():
                            return stop()
                try:  # (obstore's calls return started futures: no task each)
                    future: asyncio.Future[Any] = asyncio.ensure_future(
                        obstore.get_range_async(self._store, key, start=0, end=_WHOLE)
                    )
                except BaseException:
                    limiter.release_on_behalf_of(token)
                    raise
                # (the deadline from the token on)
                pending.append((future, token, anyio.current_time() + limit, index))
            while pending:
                if not await finish_oldest():
                    return stop()
            return out
        except obs_exc.GenericError as exc:
            key = keys[len(out)]  # the first key without an answer
            with self._map_exceptions(key):
                self._raise_if_refetched(key, exc)
            return stop()
        except Exception:  # noqa: BLE001 - fetched again one by one: a real error shows there
            return stop()
        finally:
            _abandon(pending, limiter)

    async def _get_suffix_via_head(self, key: str, byte_range: SuffixByteRequest) -> Buffer | None:
        # Azure has no suffix ranges: ask for the size, then an explicit range.
        try:
            size = (await obstore.head_async(self._store, key))["size"]
            if size == 0:
                return memoryview(b"")
            start = max(0, size - byte_range.suffix)
            data = await obstore.get_range_async(self._store, key, start=start, end=size)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None
        return check_complete(memoryview(data), byte_range, size, url=self.url, key=key)

    async def _head(self, key: str) -> ObjectMeta | None:
        """The object's metadata, ``None`` when it is missing."""
        try:
            return await obstore.head_async(self._store, key)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            if not self._http:
                return None
        # obstore's HTTP client reads a 405 (no HEAD here) as "missing": a GET tells
        try:
            result = await obstore.get_async(self._store, key, options={"range": (0, 1)})
        except FileNotFoundError:
            return None
        except (obs_exc.NotSupportedError, obs_exc.GenericError) as exc:
            if not _range_refused(exc):  # an empty object has no byte 0; ranges ignored
                raise
            result = await obstore.get_async(self._store, key)
        await result.bytes_async()
        return result.meta

    async def _exists_once(self, key: str) -> bool:
        return await self._head(key) is not None

    async def _size_once(self, key: str) -> int | None:
        if self._encoded:  # a HEAD gives the size of the encoded body
            data = await self._get_plain(key, None)
            return None if data is None else len(data)
        meta = await self._head(key)
        return None if meta is None else int(meta["size"])

    async def _version_once(self, key: str) -> str | None:
        meta = await self._head(key)
        if meta is None:
            return None
        tag = meta.get("e_tag") or meta.get("version")  # local files: inode, mtime and size
        if tag:
            return str(tag)
        modified = meta.get("last_modified")
        if modified is None or (self._http and modified.timestamp() == 0):
            return ""  # obstore's HTTP client gives the epoch for no Last-Modified
        return f"{modified.isoformat()}/{meta['size']}"

    async def _list_once(self, prefix: str) -> list[str]:
        keys: list[str] = []
        async for chunk in obstore.list(self._store, prefix or None, chunk_size=1000):
            keys.extend(meta["path"] for meta in chunk)
        return keys

    async def _list_dir_once(self, prefix: str) -> tuple[list[str], list[str]]:
        found = await obstore.list_with_delimiter_async(self._store, prefix or None)
        folders = [p.rstrip("/") for p in found["common_prefixes"]]
        return folders, [meta["path"] for meta in found["objects"]]

    async def _stored_bytes_once(self, prefix: str) -> int:
        total = 0
        async for chunk in obstore.list(self._store, prefix or None, chunk_size=1000):
            total += sum(int(meta["size"]) for meta in chunk)
        return total

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        if not if_absent:
            # one PUT for what is already in memory (obstore's default made anything over
            # 5 MiB a multipart upload: 6 requests for a 17 MB shard); parts above 64 MiB
            multipart = memoryview(data).nbytes > MULTIPART_BYTES
            await obstore.put_async(self._store, key, data, use_multipart=multipart)
            return True
        try:
            await obstore.put_async(
                await self._unretried(), key, data, mode="create", use_multipart=False
            )
        except (obs_exc.AlreadyExistsError, obs_exc.PreconditionError):
            return False
        return True

    @asynccontextmanager
    async def _update_guard(self, key: str) -> AsyncIterator[None]:
        if not isinstance(self._store, LocalStore):  # the others put conditionally
            async with self._keyed_lock(key):
                yield
            return
        root = str(self._store.prefix) if self._store.prefix is not None else "/"
        directory = os.path.dirname(os.path.join(root, *key.split("/")))
        async with self._keyed_lock(directory), directory_lock(directory, self.url, key):
            yield

    async def _read_for_update_once(self, key: str) -> tuple[Buffer | None, object]:
        if isinstance(self._store, LocalStore) or self._plain_updates:
            return await self._get_once(key, None), None  # under the guard, put plainly
        try:
            result = await obstore.get_async(self._store, key)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            return None, {}  # absent: created only if still absent
        data: Buffer = memoryview(await result.bytes_async())
        encoding = _content_encoding(result.attributes) if self._decodes else ""
        if encoding:  # stored Content-Encoded: its version is the encoded object's
            data = decode_content(data, encoding, url=self.url, key=key)
        meta = result.meta
        version: UpdateVersion = {}
        if meta.get("e_tag"):
            version["e_tag"] = meta["e_tag"]
        if meta.get("version"):
            version["version"] = meta["version"]  # GCS: the generation
        return data, version or None

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        mode: Any = version or "create"
        try:
            await obstore.put_async(self._store, key, data, mode=mode, use_multipart=False)
        except (obs_exc.AlreadyExistsError, obs_exc.PreconditionError):
            return False  # another writer's version came in between
        except (NotImplementedError, obs_exc.NotSupportedError):
            # a server without conditional puts (some S3-compatible ones): plain puts from
            # now on, exclusive within this store object only
            self._plain_updates = True
            await obstore.put_async(self._store, key, data)
        return True

    async def _unretried(self) -> ObjectStore:
        """The store for conditional puts: a cloud store's twin without obstore's own retries.
        A resent conditional PUT whose first answer was lost after the server stored it finds
        that object and answers "exists", as if another writer had claimed the key.

        The twin is a client of its own (7-20 ms to build: the TLS roots), built once in a
        thread of its own (:func:`build_in_thread`), not on the event loop: the callers that
        come meanwhile wait for that one build (one cancelled leaves it to the others), its
        failure, naming the URL, is each one's (and stays: it is not built again), and a close
        meanwhile drops what it builds (the callers get ``ClosedError``)."""
        store = self._store
        if not isinstance(store, S3Store | GCSStore | AzureStore):
            return store  # local and memory stores do not retry
        while (twin := self._no_retries) is None:
            if self.closed or self._client is not store:
                raise ClosedError(f"store {self.url} is closed")
            loop = asyncio.get_running_loop()
            task = self._no_retries_building
            if (
                task is None
                or task.cancelled()
                or (task.get_loop() is not loop and not task.done())
            ):
                # none yet, one cancelled (its loop ended), or one under way on another loop
                task = loop.create_task(self._build_unretried(store))
                task.add_done_callback(_retrieve)
                self._no_retries_building = task
            if task.done():
                task.result()  # its failure
            else:
                await asyncio.shield(task)
        return twin

    async def _build_unretried(self, store: S3Store | GCSStore | AzureStore) -> None:
        """Build :meth:`_unretried`'s twin of ``store`` in a thread; kept unless this store
        was closed meanwhile (or has one already: built on another event loop)."""

        def build() -> ObjectStore:
            retry = dict(store.retry_config or {})
            retry["max_retries"] = 0
            return type(store)(
                prefix=store.prefix,
                config=store.config,  # type: ignore[arg-type]
                client_options=store.client_options,
                retry_config=retry,  # type: ignore[arg-type]
                credential_provider=store.credential_provider,  # type: ignore[arg-type]
            )

        twin = await build_in_thread(build, self.url)
        if self._no_retries is None and self._client is store and not self.closed:
            self._no_retries = twin

    async def _delete_many_once(self, keys: Sequence[str]) -> None:
        if len(keys) == 1:
            return await self._delete_once(keys[0])
        try:
            await obstore.delete_async(self._store, keys)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)
            # Azure's batch answer names a key already gone, and obstore stops there
            for key in keys:
                await self._delete_once(key)
        return None

    async def _delete_once(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError as exc:
            _raise_if_no_container(exc)  # a missing key is fine, a missing bucket is not

    def _is_retryable(self, exc: Exception) -> bool:
        return obstore_transient(exc)

    def _describe(self, exc: BaseException) -> str:
        """A backend error in one short line (:func:`obstore_message`), without the query
        strings of HTTP URLs (a signed URL's query is a credential; HTTP keys never hold a
        raw ``?``)."""
        text = obstore_message(exc)
        if not self._http:
            return text
        return _USERINFO.sub(r"\1", _QUERY.sub("?***", text))

    @contextmanager
    def _map_exceptions(self, key: str) -> Iterator[None]:
        url = self.url
        try:
            yield
        except NgioError:
            raise
        except FileNotFoundError as exc:
            if _no_container(exc):
                raise NotFoundError(
                    f"the bucket (or container) of {url} does not exist{_asked(key)}: "
                    f"{self._describe(exc)}",
                    url=url,
                    key=key,
                ) from exc
            raise NotFoundError(
                f"not found: {key!r} at {url}: {self._describe(exc)}", url=url, key=key
            ) from exc
        except obs_exc.PermissionDeniedError as exc:  # a 403
            raise ForbiddenError(
                f"access denied to {key!r} at {url}: {self._describe(exc)}", url=url, key=key
            ) from exc
        except (obs_exc.UnauthenticatedError, PermissionError) as exc:
            raise PermissionDeniedError(
                f"access denied to {key!r} at {url}: {self._describe(exc)}", url=url, key=key
            ) from exc
        except TimeoutError as exc:
            raise self._timed_out(key, url) from exc
        except obs_exc.NotSupportedError as exc:
            hint = ""
            if self._http and _IGNORED_RANGE.search(str(exc)):
                hint = (
                    " (the server ignores Range: open it with the default backend or "
                    "backend='aiohttp', which cut ranges from whole objects)"
                )
            raise UnsupportedError(
                f"operation on {key!r} not supported by {url}: {self._describe(exc)}{hint}"
            ) from exc
        except (obs_exc.BaseError, OSError, ValueError) as exc:
            if _no_container(exc):  # a listing of a missing bucket, for one
                raise NotFoundError(
                    f"the bucket (or container) of {url} does not exist{_asked(key)}: "
                    f"{self._describe(exc)}",
                    url=url,
                    key=key,
                ) from exc
            if _NO_CREDENTIALS in str(exc):  # none given: it asked the instance metadata
                raise PermissionDeniedError(
                    f"no credentials for {url}: {_credentials_hint(self._store)} "
                    f"({self._describe(exc)})",
                    url=url,
                    key=key,
                ) from exc
            if _HTTP_REFUSED.search(str(exc)) and not _allows_http(self._store):
                # obstore's whole word for it is "builder error"
                raise StoreError(
                    f"plain http:// refused for {key!r} at {url}: pass allow_http=True (or set "
                    f"the endpoint to an https:// URL) ({self._describe(exc)})",
                    url=url,
                    key=key,
                ) from exc
            if _UNREADABLE.search(str(exc)) and self._http:
                raise StoreError(
                    f"obstore's HTTP client cannot read the answer for {key!r} at {url} "
                    f"({self._describe(exc)}): open it with the default backend or "
                    "backend='aiohttp'",
                    url=url,
                    key=key,
                ) from exc
            if denied := _DENIED.search(str(exc)):  # listings, bulk deletes: generic errors
                error = ForbiddenError if denied[1] == "3" else PermissionDeniedError
                raise error(
                    f"access denied to {key!r} at {url}: {self._describe(exc)}", url=url, key=key
                ) from exc
            raise StoreError(
                f"store error for {key!r} at {url}: {self._describe(exc)}", url=url, key=key
            ) from exc


#: objects larger than this are uploaded in concurrent parts (multipart); smaller ones in one PUT
MULTIPART_BYTES = 64 << 20


def _is_kind(kind: object, classes: Any) -> bool:
    """Whether ``kind`` is a subclass of ``classes`` (``False`` for a stand-in that is no
    class, a test's counting factory)."""
    return isinstance(kind, type) and issubclass(kind, classes)


def _abandon(
    pending: deque[tuple[asyncio.Future[Any], object, float, int]],
    limiter: anyio.CapacityLimiter,
) -> None:
    """Cancel the requests of :meth:`ObstoreStore.get_together` still in flight (their results
    retrieved if they ended: no "never retrieved" warning) and give their tokens back."""
    while pending:
        started, token, _, _ = pending.popleft()
        if not started.done():
            started.cancel()
        elif not started.cancelled():
            started.exception()
        limiter.release_on_behalf_of(token)
