"""``ObstoreStore``: the backend over any obstore store (local, memory, S3, GCS, Azure, HTTP).

Its layers: the client and its errors as ours in ``_obstore_base``, reads of one object in
``_obstore_reads``, whole objects fetched together in ``_obstore_batch``; here listing, puts
(conditional ones too), updates and deletes, and ``obstore_http``.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import obstore
from obstore import exceptions as obs_exc
from obstore.store import AzureStore, GCSStore, HTTPStore, LocalStore, S3Store

from .._errors import ClosedError, NgioError, NotFoundError
from ._local import directory_lock
from ._obstore_batch import _ObstoreBatchGets
from ._obstore_clients import (
    DeferredClient,
    _retrieve,
    build_errors,
    build_in_thread,
    obstore_client_options,
    obstore_retry_config,
    probe_client,
)
from ._obstore_errors import _no_container, _raise_if_no_container
from ._obstore_gets import _content_encoding, decode_content
from ._url_utils import redact_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import anyio
    from obstore import UpdateVersion
    from obstore.store import ClientConfig, ObjectStore

    from .._limits import Limits
    from ._base import Buffer

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


class ObstoreStore(_ObstoreBatchGets):
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

    async def missing_bucket(self, key: str) -> NotFoundError | None:
        """:meth:`AsyncStore.missing_bucket`: a cloud store lists the folder of ``key`` once
        (its twin without retries: a missing bucket may answer 500, as fake-gcs-server does)
        and reads the error."""
        if self.closed or self._http:
            return None
        await self.ready()
        if not isinstance(self._store, S3Store | GCSStore | AzureStore):
            return None
        folder = key.rpartition("/")[0]

        async def listing() -> None:
            await obstore.list_with_delimiter_async(await self._unretried(), folder or None)

        try:
            await self._call(key, listing, retry=False)
        except NotFoundError as err:
            return err if err.__cause__ is not None and _no_container(err.__cause__) else None
        except NgioError:  # (a listing denied, say: the store cannot tell)
            return None
        return None

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


#: objects larger than this are uploaded in concurrent parts (multipart); smaller ones in one PUT
MULTIPART_BYTES = 64 << 20
