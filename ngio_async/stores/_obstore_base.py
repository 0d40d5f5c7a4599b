"""``_ObstoreBase``: an :class:`~ngio_async.stores.ObstoreStore`'s obstore client: what the store
can do by its kind, the client built in a worker thread when deferred, dropped at close, and
obstore's errors mapped to ``ngio_async`` errors naming the key."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from obstore import exceptions as obs_exc
from obstore.store import AzureStore, HTTPStore, LocalStore, MemoryStore, S3Store

from .._errors import (
    ClosedError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ._base import AsyncStore, ChangedError, CredentialsRefusedError, ForbiddenError
from ._obstore_clients import (
    OBSTORE_TYPES,
    DeferredClient,
    _retrieve,
    build_in_thread,
    describe_obstore,
)
from ._obstore_errors import (
    _DENIED,
    _HTTP_REFUSED,
    _IGNORED_RANGE,
    _NO_CREDENTIALS,
    _QUERY,
    _UNREADABLE,
    _USERINFO,
    CREDENTIALS_REFUSED,
    _allows_http,
    _anonymous,
    _asked,
    _credentials_hint,
    _GetRetriedError,
    _no_container,
    obstore_transient,
    refused_hint,
)
from ._obstore_gets import _HAS_PREAD
from ._obstore_messages import obstore_message
from ._obstore_runtime import _check_runtime, note_use
from ._scrub import scrub_chain

if TYPE_CHECKING:
    from collections.abc import Iterator

    import anyio
    from obstore.store import ObjectStore

    from .._limits import Limits


class _ObstoreBase(AsyncStore):
    """The obstore client of an :class:`ObstoreStore` (see there), and its errors as ours."""

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

    def _changed(self, key: str, if_match: str | None, why: str) -> ChangedError:
        what = "while it was read" if if_match is None else f"it is no longer version {if_match}"
        return ChangedError(f"{key!r} at {self.url} changed: {what} ({why})", url=self.url, key=key)

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

    def _no_bucket(self, key: str, exc: BaseException) -> NotFoundError:
        """The error of a request for ``key`` that found no bucket (or container)."""
        return NotFoundError(
            f"the bucket (or container) of {self.url} does not exist{_asked(key)}: "
            f"{self._describe(exc)}",
            url=self.url,
            key=key,
        )

    @contextmanager
    def _map_exceptions(self, key: str) -> Iterator[None]:
        """obstore's errors as ours, naming ``key``; the raw errors chained to them keep their
        types, with the secrets their texts quote (a signed URL, a SAS) cleaned
        (:func:`scrub_chain`)."""
        url = self.url
        try:
            try:
                yield
            except NgioError:
                raise
            except FileNotFoundError as exc:
                if _no_container(exc):
                    raise self._no_bucket(key, exc) from exc
                raise NotFoundError(
                    f"not found: {key!r} at {url}: {self._describe(exc)}", url=url, key=key
                ) from exc
            except obs_exc.PermissionDeniedError as exc:  # a 403
                if CREDENTIALS_REFUSED.search(str(exc)):  # no permission would make it read
                    message = (
                        f"access denied to {key!r} at {url}: {self._describe(exc)}: "
                        f"{refused_hint(self._store, str(exc))}"
                    )
                    if _anonymous(self._store):  # none given: the server asks for them
                        raise PermissionDeniedError(
                            message, url=url, key=key, missing_credentials=True
                        ) from exc
                    raise CredentialsRefusedError(message, url=url, key=key) from exc
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
                    raise self._no_bucket(key, exc) from exc
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
                        f"access denied to {key!r} at {url}: {self._describe(exc)}",
                        url=url,
                        key=key,
                    ) from exc
                raise StoreError(
                    f"store error for {key!r} at {url}: {self._describe(exc)}", url=url, key=key
                ) from exc

        except NgioError as err:
            scrub_chain(err)
            raise


def _is_kind(kind: object, classes: Any) -> bool:
    """Whether ``kind`` is a subclass of ``classes`` (``False`` for a stand-in that is no
    class, a test's counting factory)."""
    return isinstance(kind, type) and issubclass(kind, classes)
