"""Building obstore's clients: client options and retry settings from ``Limits``, settings
checked without building a client, builds in a thread of their own, deferred clients, and
where a client is rooted."""

from __future__ import annotations

import asyncio
import os
import threading
from contextlib import contextmanager, suppress
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from obstore import exceptions as obs_exc
from obstore.store import AzureStore, GCSStore, HTTPStore, LocalStore, MemoryStore, S3Store

from .._errors import NgioError, StoreError
from ._obstore_messages import obstore_message
from ._scrub import scrub_chain
from ._url_utils import file_url, redact_url

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from obstore.store import ClientConfig, ObjectStore, RetryConfig

    from .._limits import Limits

__all__ = [
    "OBSTORE_TYPES",
    "DeferredClient",
    "build_errors",
    "build_in_thread",
    "bucket_root_client",
    "describe_obstore",
    "local_prefix",
    "obstore_client_options",
    "obstore_retry_config",
    "probe_client",
]

OBSTORE_TYPES = (AzureStore, GCSStore, HTTPStore, LocalStore, MemoryStore, S3Store)
"""The obstore store classes ``open_store`` accepts directly."""


# obstore's HTTP client settings (ClientConfig keys), also read from <PREFIX>_<KEY> variables
_CLIENT_KEYS = frozenset(
    [
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "http1_only",
        "http2_keep_alive_interval",
        "http2_keep_alive_timeout",
        "http2_keep_alive_while_idle",
        "http2_only",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "timeout",
        "user_agent",
    ]
)


def obstore_client_options(
    limits: Limits, given: Mapping[str, Any] | None = None, *, env_prefix: str | None = None
) -> ClientConfig:
    """obstore's client settings: ``given``, then those of the environment variables named
    ``env_prefix`` + key (which an explicit ``ClientConfig`` would otherwise drop), and a
    request timeout that leaves ``limits.timeout`` in charge (obstore's own default of 30 s
    cut off slower transfers, whatever ``limits.timeout`` said, and every retry again)."""
    options: dict[str, Any] = {}
    if env_prefix:
        for name, value in os.environ.items():
            key = name.lower()
            if key.startswith(env_prefix) and key[len(env_prefix) :] in _CLIENT_KEYS:
                options[key[len(env_prefix) :]] = value
    options.update(given or {})
    seconds = _NO_TIMEOUT if limits.timeout is None else 2 * limits.timeout
    options.setdefault("timeout", timedelta(seconds=seconds))
    return options  # type: ignore[return-value]


_NO_TIMEOUT = 365 * 86400.0  # "no limit" for obstore's request timeout (it needs a value)


def obstore_retry_config(limits: Limits) -> RetryConfig:
    """obstore's own retry settings (it retries 5xx, 429 and connection errors) from ``limits``."""
    return {
        "max_retries": limits.max_retries,
        "backoff": {
            "init_backoff": timedelta(seconds=limits.backoff_base),
            "max_backoff": timedelta(seconds=limits.backoff_max),
            "base": 2,
        },
    }


# a client option that no obstore store knows (see probe_client)
_PROBE_KEY = "ngio_async_probe"


def probe_client(
    build: Callable[[ClientConfig], ObjectStore], client_options: ClientConfig
) -> ObjectStore | None:
    """Check the settings of an obstore store without building its HTTP client (which loads
    the TLS roots: 7-20 ms of the caller's thread): ``build`` is called with ``client_options``
    and one key obstore does not know, which it refuses only after reading the URL, the
    store's config and the other client options (each refused as ``build`` refuses it, at
    once). ``None``: nothing else was refused (build it later, see :class:`DeferredClient`);
    a store: obstore took that key too, and built it."""
    try:
        probe: dict[str, Any] = {**client_options, _PROBE_KEY: "1"}
        return build(probe)  # type: ignore[arg-type]
    except ValueError as exc:
        if type(exc) is ValueError and _PROBE_KEY in str(exc):
            return None
        raise


@contextmanager
def build_errors(url: str) -> Iterator[None]:
    """obstore's errors of building a store (in a worker thread, for :class:`DeferredClient`)
    as ours, naming ``url`` (the raw error is the ``__cause__``)."""
    try:
        try:
            yield
        except NgioError:
            raise
        except obs_exc.UnknownConfigurationKeyError as exc:
            raise ValueError(f"unknown store option for {url}: {obstore_message(exc)}") from exc
        except Exception as exc:
            raise StoreError(f"cannot open store {url}: {obstore_message(exc)}", url=url) from exc
    except (ValueError, NgioError) as err:
        scrub_chain(err)  # obstore's own words may quote the URL given (a SAS in its query)
        raise


async def build_in_thread(build: Callable[[], ObjectStore], url: str) -> ObjectStore:
    """``build()`` in a thread of its own, awaited: its errors as ours, naming ``url``
    (:func:`build_errors`). Not one of anyio's workers, which hold the task that first used
    them (its result, a store say) until they end, up to 10 s after a loop closed without its
    workers stopped: a store dropped then stayed, with its connections, past the collection
    that should have closed them. obstore 0.12 holds the GIL while it builds a client (7-20
    ms: the TLS roots): the event loop's Python waits meanwhile, its I/O (obstore's requests
    on tokio threads, the sockets) goes on."""
    loop = asyncio.get_running_loop()
    built: asyncio.Future[ObjectStore] = loop.create_future()

    def run() -> None:
        try:
            with build_errors(url):  # (errors of the build itself name it)
                outcome: tuple[ObjectStore | None, BaseException | None] = (build(), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop
            outcome = (None, exc)
        with suppress(RuntimeError):  # the loop closed: nobody waits, the client goes
            loop.call_soon_threadsafe(_settle, built, *outcome)

    threading.Thread(target=run, name=f"obstore client for {url}").start()
    return await built


class DeferredClient:
    """An obstore store to build in a worker thread (:class:`ObstoreStore` does on its first
    request): its class (``kind``) is known at once, its client (7-20 ms of work: the TLS
    roots) is not built on the event loop. ``build`` raises ``ngio_async`` errors naming
    ``url``."""

    __slots__ = ("build", "kind", "url")

    def __init__(self, kind: type[ObjectStore], build: Callable[[], ObjectStore], url: str) -> None:
        self.kind = kind
        self.build = build
        self.url = url


def bucket_root_client(store: S3Store | GCSStore | AzureStore) -> DeferredClient:
    """A client of ``store``'s settings at the root of its bucket (or container), to build in
    a worker thread at its first request (see :class:`DeferredClient`): building one takes
    7-20 ms (the TLS roots)."""
    kind = type(store)
    config = store.config

    def build() -> ObjectStore:
        return kind(
            config=config,  # type: ignore[arg-type]
            client_options=store.client_options,
            retry_config=store.retry_config,
            credential_provider=store.credential_provider,  # type: ignore[arg-type]
        )

    if isinstance(store, AzureStore):
        url = f"az://{config.get('container_name', '')}"
    else:
        scheme = "s3" if isinstance(store, S3Store) else "gs"
        url = f"{scheme}://{config.get('bucket', '')}"
    return DeferredClient(kind, build, url)


def local_prefix(obj: object) -> str | None:
    """The directory an obstore ``LocalStore`` is rooted at; ``None`` for anything else."""
    if isinstance(obj, LocalStore) and obj.prefix is not None:
        return str(obj.prefix)
    return None


def describe_obstore(store: ObjectStore) -> str:
    """A credential-free URL naming where an obstore store is rooted (for messages)."""
    if isinstance(store, LocalStore):
        return file_url(str(store.prefix)) if store.prefix is not None else "file:///"
    if isinstance(store, MemoryStore):
        return "memory://"
    if isinstance(store, HTTPStore):
        return redact_url(store.url)
    prefix = (store.prefix or "").strip("/")
    if isinstance(store, S3Store):
        root = f"s3://{store.config.get('bucket', '')}"
    elif isinstance(store, GCSStore):
        root = f"gs://{store.config.get('bucket', '')}"
    else:
        root = f"az://{store.config.get('container_name', '')}"
    return f"{root}/{prefix}" if prefix else root


def _settle(
    future: asyncio.Future[ObjectStore], client: ObjectStore | None, error: BaseException | None
) -> None:
    """Hand a build's outcome to its awaiting task (gone if it was cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(client)  # type: ignore[arg-type]


def _retrieve(task: asyncio.Task[None]) -> None:
    """Retrieve a build's failure (each waiter raises it; none may have come)."""
    if not task.cancelled():
        task.exception()
