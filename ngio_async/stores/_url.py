"""``open_store``: turn a URL, a path or an obstore store into an :class:`AsyncStore`."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import anyio.to_thread
from obstore import exceptions as obs_exc
from obstore.store import AzureStore, GCSStore, LocalStore, MemoryStore, S3Store

from .._errors import ExistsError, NgioError, NotFoundError, StoreError, UnsupportedError
from .._limits import Limits, check_limits
from ._aws_profile import S3Keys, profile_settings
from ._base import AsyncStore
from ._obstore import ObstoreStore, obstore_http
from ._obstore_clients import (
    OBSTORE_TYPES,
    DeferredClient,
    obstore_client_options,
    obstore_retry_config,
    probe_client,
)
from ._obstore_messages import obstore_message
from ._obstore_runtime import obstore_usable
from ._scrub import scrub_chain
from ._url_utils import file_url, gcs_bucket_problem, redact_url
from ._zip import open_zip, zip_target

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from obstore.store import ClientConfig, ObjectStore

__all__ = ["file_in_the_way", "load_backend", "open_store"]

_HTTP_MODULE = f"{__package__}._http"


Backend = Literal["obstore", "aiohttp"]

_S3_SCHEMES = frozenset({"s3", "s3a"})
_GCS_SCHEMES = frozenset({"gs", "gcs"})
_AZURE_SCHEMES = frozenset({"az", "abfs", "abfss", "azure", "adl"})
_HTTP_SCHEMES = frozenset({"http", "https"})

# obstore reads these as the S3 endpoint (boto3's service-specific name first)
_AWS_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT")
# the variables that allow plain http and name the endpoint, as obstore reads them
_ENDPOINT_ENV = {
    S3Store: ("AWS_ALLOW_HTTP", _AWS_ENDPOINT_VARS),
    AzureStore: ("AZURE_ALLOW_HTTP", ("AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT")),
    GCSStore: ("GOOGLE_ALLOW_HTTP", ("GOOGLE_BASE_URL",)),
}
# the config key that names the endpoint: obstore's GCSStore calls it ``base_url``
_ENDPOINT_KEY: dict[type[Any], str] = {GCSStore: "base_url"}
# where obstore reads each store's settings from the environment
_ENV_PREFIX = {S3Store: "aws_", GCSStore: "google_", AzureStore: "azure_"}
# schemes obstore knows by another name
_SCHEME_FOR_OBSTORE = {"gcs": "gs"}

# Friendly option names -> obstore config keys.
_ALIASES = {
    "endpoint_url": "endpoint",
    "anonymous": "skip_signature",
    "region_name": "region",
}


async def load_backend(url: object, backend: Backend | None = None) -> None:
    """Import what :func:`open_store` needs for ``url`` in a worker thread, once per process.

    The HTTP store's first import (aiohttp, and the SSL contexts aiohttp makes at import: about
    0.4 s) would otherwise stall the event loop, and every other task on it, when the first
    http(s) URL opens; ``open_async`` awaits this first.
    """
    if (
        backend != "obstore"
        and isinstance(url, str)
        and url[:8].lower().startswith(("http://", "https://"))
        and _HTTP_MODULE not in sys.modules
    ):
        await anyio.to_thread.run_sync(importlib.import_module, _HTTP_MODULE)


def open_store(
    url_or_store: str | os.PathLike[str] | AsyncStore | ObjectStore,
    *,
    limits: Limits | None = None,
    backend: Backend | None = None,
    **options: Any,
) -> AsyncStore:
    """Open the store rooted at ``url_or_store``; keys are relative to that root.

    - a plain path or ``file://`` URL: a local directory (obstore ``LocalStore``; in a child
      forked from a process that had used obstore, whose runtime does not survive ``fork()``,
      the plain-Python ``LocalFileStore``); option ``mkdir=True`` creates it, otherwise a
      missing directory raises ``NotFoundError``;
    - ``memory://``: a new, empty in-memory store (obstore ``MemoryStore``);
    - ``s3://bucket/prefix``: options ``endpoint`` (or ``endpoint_url``), ``region``,
      ``access_key_id``, ``secret_access_key``, ``session_token``, ``anonymous`` (or
      ``skip_signature``), ``allow_http``, and any other obstore ``S3Config`` key. Unset values
      come from the standard ``AWS_*`` environment variables (``AWS_ENDPOINT_URL``,
      ``AWS_ALLOW_HTTP``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` /
      ``AWS_DEFAULT_REGION``, ...) as obstore reads them, but for ``AWS_SESSION_TOKEN``
      beside explicit keys: keys given without ``session_token`` are sent without a token.
      Without keys in the options or the environment, the static keys of the AWS profile
      (``AWS_PROFILE``, else ``default``) in ``~/.aws/credentials`` or ``~/.aws/config``
      (``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_CONFIG_FILE``) are used, with its ``region`` and
      ``endpoint_url`` where none is given; a profile named by ``AWS_PROFILE`` that is missing,
      or gets its credentials otherwise (a role, SSO, a program), is a ``ValueError``;
    - ``gs://bucket/prefix`` and ``az://`` / ``abfs://`` URLs: obstore ``GCSStore`` /
      ``AzureStore`` with their config keys as options (``anonymous`` -> ``skip_signature``);
      ``use_emulator=True`` with an ``endpoint`` (``http://127.0.0.1:10000``) reaches the
      Azurite emulator there (its account and key unless others are given);
    - ``gs://``: ``endpoint`` (or ``endpoint_url``) is obstore's ``base_url`` (accepted under
      that name too, and read from ``GOOGLE_BASE_URL``), the root of the GCS APIs, e.g. an
      emulator's ``http://127.0.0.1:4443`` (an ``http://`` one allows plain http). Without
      either, ``STORAGE_EMULATOR_HOST`` (the GCS emulators' variable: ``127.0.0.1:4443`` or a
      URL) is the endpoint, with ``use_emulator=True`` unless that option is given. With
      ``use_emulator=True`` (an endpoint required) no token is fetched or sent: obstore's
      emulator service account (``disable_oauth``) is used unless ``service_account``,
      ``service_account_key``, ``application_credentials``, ``bearer_token`` or
      ``credential_provider`` is given. ``anonymous=True`` alone serves reads only: obstore's
      GCS client fetches a token from the instance metadata for writes and deletes all the same;
    - ``http(s)://host/path``: the read-only :class:`HTTPStore` (option ``headers``): HEADs
      and fallbacks with aiohttp, GET bodies with obstore's Rust client when the URL has no
      credentials or query string and no ``headers`` are given; a query string (a signed or
      token URL: ``.../image.zarr?sv=...&sig=...``) is sent with every request; ``backend="aiohttp"`` keeps every request on
      aiohttp, ``backend="obstore"`` uses obstore's ``HTTPStore`` alone (it refuses servers
      that ignore ``Range``);
    - an obstore store object: wrapped as is; an :class:`AsyncStore`: returned unchanged.

    Option ``forbidden_is_missing=True`` (any store): a 403 answering a GET or HEAD of an object
    reads as "missing" (an absent chunk is the fill value), as S3 and GCS answer for a key that
    does not exist when the caller may not list the bucket (a public bucket granting
    ``s3:GetObject`` only). The trade-off: an object that exists but is forbidden then reads as
    missing too, silently; a 403 for a write or a listing still raises, as does one of
    credentials the server refused (:class:`CredentialsRefusedError`: a wrong key, this
    machine's clock off, an expired signature) (:attr:`AsyncStore.forbidden_is_missing`).

    :raises ValueError: an unknown option, backend or malformed URL.
    :raises UnsupportedError: an unknown URL scheme.
    """
    if isinstance(url_or_store, AsyncStore):
        if limits is not None or backend is not None or options:
            raise ValueError(
                "open_store() got an AsyncStore: limits/backend/options must not be set"
            )
        return url_or_store
    forbidden = _flag("forbidden_is_missing", options.pop("forbidden_is_missing", False))
    store = _open_new(url_or_store, limits, backend, options)
    store.forbidden_is_missing = forbidden
    return store


def _open_new(
    url_or_store: str | os.PathLike[str] | ObjectStore,
    limits: Limits | None,
    backend: Backend | None,
    options: dict[str, Any],
) -> AsyncStore:
    """:func:`open_store` of anything but an :class:`AsyncStore`."""
    if backend not in (None, "obstore", "aiohttp"):
        raise ValueError(f"unknown backend {backend!r}; expected 'obstore' or 'aiohttp'")
    check_limits(limits)
    limits = limits if limits is not None else Limits()
    if isinstance(url_or_store, OBSTORE_TYPES):
        _no_options(options, "an obstore store")
        return ObstoreStore(url_or_store, limits=limits)
    if (zipped := zip_target(url_or_store)) is not None:  # a zip file (.ozx): its entries
        return open_zip(zipped, options, lambda at: _open_new(at, limits, backend, options))
    if isinstance(url_or_store, os.PathLike):
        return _open_local(os.fspath(url_or_store), limits, options)
    if not isinstance(url_or_store, str):
        kind = type(url_or_store)
        hint = ""
        if kind.__module__.split(".")[0] == "zarr":  # zarr-python's own store classes
            hint = " (zarr-python stores are not read here: give its path or URL)"
        raise TypeError(
            "expected a URL, a path, an obstore store or an ngio_async store, got "
            f"{kind.__module__}.{kind.__qualname__}{hint}"
        )

    url = url_or_store
    if not url.strip():  # an unset variable, not "the current directory"
        raise ValueError("empty store URL or path (use '.' for the current directory)")
    scheme = urlsplit(url).scheme.lower()
    if backend == "aiohttp" and scheme not in _HTTP_SCHEMES:
        raise ValueError(f"backend='aiohttp' only serves http(s) URLs, not {scheme or 'paths'}")
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter)
        return _open_local(url, limits, options)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URLs must name a local path: {url!r}")
        return _open_local(unquote(parts.path), limits, options)
    if scheme == "memory":
        _no_options(options, "memory://")
        return ObstoreStore(MemoryStore(), url="memory://", limits=limits)
    if scheme in _HTTP_SCHEMES:
        return _open_http(url, limits, backend, options)
    if scheme in _S3_SCHEMES:
        return _open_cloud(url, S3Store, limits, options)
    if scheme in _GCS_SCHEMES:
        return _open_cloud(url, GCSStore, limits, options)
    if scheme in _AZURE_SCHEMES:
        return _open_cloud(url, AzureStore, limits, options)
    raise UnsupportedError(f"unsupported URL scheme {scheme!r} in {redact_url(url)}")


def _no_options(options: dict[str, Any], what: str) -> None:
    if options:
        raise ValueError(f"unknown options for {what}: {sorted(options)}")


def _open_local(path: str, limits: Limits, options: dict[str, Any]) -> AsyncStore:
    mkdir = _flag("mkdir", options.pop("mkdir", False))
    _no_options(options, "a local path")
    root = os.path.abspath(os.path.expanduser(path))
    url = file_url(root)
    blocker = file_in_the_way(root)
    if blocker is not None:  # the store would only say "File exists (os error 17)"
        what = "is a file" if blocker == root else f"lies below the file {blocker}"
        if mkdir:
            raise ExistsError(
                f"{root} {what}, not a directory: a zarr store is a directory (remove the "
                "file or choose another path)",
                url=url,
                key=blocker,
                kind="file",
            )
        raise NotFoundError(f"no such directory: {root} ({what})", url=url)
    if not mkdir and not os.path.isdir(root):
        raise NotFoundError(f"no such directory: {root}", url=url)
    if not obstore_usable():  # a child forked after obstore ran: plain file I/O
        from ._local import LocalFileStore

        return LocalFileStore(root, mkdir=mkdir, url=url, limits=limits)
    with _construction_errors(url):
        # deleting a key removes the directories it leaves empty (an overwritten image with
        # fewer axes must not keep old chunk directories where its chunk files go)
        store = LocalStore(prefix=root, mkdir=mkdir, automatic_cleanup=True)
    return ObstoreStore(store, url=url, limits=limits)


def file_in_the_way(path: str) -> str | None:
    """``path`` or its nearest existing ancestor, if that is not a directory."""
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return None if os.path.isdir(path) else path


def _open_http(
    url: str, limits: Limits, backend: Backend | None, options: dict[str, Any]
) -> AsyncStore:
    url = url.strip()  # pasted with a space or newline after it (a URL has none unescaped)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError as exc:
        raise ValueError(f"malformed URL {redact_url(url)!r}: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"malformed URL {redact_url(url)!r}: no host")
    if backend == "obstore":
        client_options = options.pop("client_options", None)
        _no_options(options, "obstore's HTTPStore")
        with _construction_errors(redact_url(url)):
            return obstore_http(url, limits, client_options=client_options)
    headers = options.pop("headers", None)
    _no_options(options, "the HTTP store")
    _check_headers(headers)
    from ._http import HTTPStore  # aiohttp is imported only when an http(s) URL is opened

    return HTTPStore(url, limits=limits, headers=headers, rust_gets=backend is None)


def _check_headers(headers: object) -> None:
    """``headers=``: ``None`` or a mapping of header names to values, all strings (the
    message names the option and the header, never a value: it may be a credential)."""
    from collections.abc import Mapping

    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise ValueError(
            f"headers= takes a mapping of header names to values, got {type(headers).__name__}"
        )
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(
                f"headers= takes strings as header names and values; header {name!r} has a "
                f"{type(value).__name__} value"
            )


def _open_cloud(
    url: str,
    cls: type[S3Store | GCSStore | AzureStore],
    limits: Limits,
    options: dict[str, Any],
) -> AsyncStore:
    config: dict[str, Any] = {}
    client_options: dict[str, Any] = dict(options.pop("client_options", None) or {})
    extra: dict[str, Any] = {}
    for name in ("credential_provider",):
        if name in options:
            extra[name] = options.pop(name)
    if "allow_http" in options:
        client_options["allow_http"] = _flag("allow_http", options.pop("allow_http"))
    endpoint_key = _ENDPOINT_KEY.get(cls, "endpoint")
    for name, value in options.items():
        key = _ALIASES.get(name, name)
        if key == "endpoint":
            key = endpoint_key
        if value is None:
            continue
        if key == "skip_signature":
            value = _flag(name, value)
        if key in config:
            raise ValueError(f"option {key!r} given twice (as {name!r})")
        config[key] = value
    if cls is GCSStore:
        _gcs_emulator_host(config)
        _gcs_emulator(config, has_provider="credential_provider" in extra)
    if cls is S3Store and "credential_provider" not in extra:
        _keys_without_env_token(config, extra)
    if cls is S3Store:
        _s3_profile(config, extra)
    root, prefix = _split_cloud_url(url)
    if cls is GCSStore:
        _check_gcs_bucket(url, root, config)
    if cls is AzureStore:
        _refuse_account_host(root, prefix)
        prefix = _sas_of_url(prefix, config)
        _azure_credential_type(config)
    endpoint = config.get(endpoint_key)
    env = _ENDPOINT_ENV.get(cls)
    named = "endpoint="
    allow = True  # plain http allowed by an http:// endpoint (not where a variable says)
    if endpoint is None and env is not None:
        # the endpoint obstore will read from the environment
        named, endpoint = next(
            ((n, os.environ[n]) for n in env[1] if os.environ.get(n)), ("", None)
        )
        allow = env[0] not in os.environ
    if isinstance(endpoint, str) and _tidy_endpoint(endpoint) != endpoint:
        config[endpoint_key] = endpoint = _tidy_endpoint(endpoint)
    if endpoint is not None:
        _check_endpoint(str(endpoint), named, query=cls is AzureStore)
    if allow and isinstance(endpoint, str) and endpoint.lower().startswith("http://"):
        client_options.setdefault("allow_http", True)  # the caller asked for plain HTTP
    display = f"{redact_url(root)}/{prefix}" if prefix else redact_url(root)
    settings: dict[str, Any] = {
        "client_options": obstore_client_options(
            limits, client_options, env_prefix=_ENV_PREFIX[cls]
        ),
        "retry_config": obstore_retry_config(limits),
        **extra,
    }
    # One client when the path reads the same as a URL path (building one costs 9-20 ms);
    # otherwise the path as written: from_url would percent-decode it and cut it at '?' or '#'
    plain = _PLAIN_PREFIX.fullmatch(prefix) is not None
    where = f"{root}/{prefix}" if prefix and plain else root

    def first(client_options: ClientConfig) -> ObjectStore:
        given = {**settings, "client_options": client_options}
        return cls.from_url(where, config=config, **given)  # type: ignore[arg-type]

    def build() -> ObjectStore:  # in a worker thread, at the first request
        with _construction_errors(display):
            return _finish_cloud(cls, first(settings["client_options"]), prefix, settings)

    with _construction_errors(display):  # the URL and the settings, checked here and now
        probed = probe_client(first, settings["client_options"])
        if probed is not None:
            return ObstoreStore(
                _finish_cloud(cls, probed, prefix, settings), url=display, limits=limits
            )
    return ObstoreStore(DeferredClient(cls, build, display), url=display, limits=limits)


def _finish_cloud(
    cls: type[S3Store | GCSStore | AzureStore],
    store: ObjectStore,
    prefix: str,
    settings: dict[str, Any],
) -> ObjectStore:
    """The store ``from_url`` built, made again where it is not the one asked for: Azure's
    emulator at the endpoint given, a key prefix that is no plain URL path."""
    if isinstance(store, AzureStore):
        emulator = _emulator_at_endpoint(store.config)
        if emulator is not None:
            settings = {
                **settings,
                "client_options": {**settings["client_options"], "allow_http": True},
            }
            store = AzureStore(config=emulator, **settings)  # type: ignore[arg-type]
    if prefix and store.prefix != prefix:  # type: ignore[union-attr]
        store = cls(prefix=prefix, config=store.config, **settings)  # type: ignore[arg-type, union-attr]
    return store


# GCS credential config keys (any of them, or a credential_provider, is the caller's own)
_GCS_CREDENTIALS = frozenset(
    ["service_account", "service_account_key", "application_credentials", "bearer_token"]
)


def _check_gcs_bucket(url: str, root: str, config: dict[str, Any]) -> None:
    """A ``gs://`` bucket name against Google Cloud Storage's rules, at open (its first
    request said only "Invalid bucket name", or "access denied"); not at another endpoint
    (an emulator, a server of its own rules; ``base_url`` as obstore also reads it:
    ``google_base_url``, any case)."""
    given = (v for k, v in config.items() if k.lower() in ("base_url", "google_base_url"))
    endpoint = next(given, None) or os.environ.get("GOOGLE_BASE_URL")
    if endpoint and urlsplit(str(endpoint)).hostname != "storage.googleapis.com":
        return
    bucket = root.partition("://")[2]
    rule = gcs_bucket_problem(bucket)
    if rule is not None:
        raise ValueError(
            f"{redact_url(url)}: {bucket!r} is no Google Cloud Storage bucket name: a bucket "
            f"name {rule}"
        )


def _gcs_emulator_host(config: dict[str, Any]) -> None:
    """``STORAGE_EMULATOR_HOST`` (the GCS client libraries' variable, ``host:port`` or a
    URL) as ``endpoint=`` with ``use_emulator=True``, unless an endpoint is given (as an
    option, or as obstore's ``GOOGLE_BASE_URL``): then that one is used."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").strip()
    if not host or config.get("base_url") or os.environ.get("GOOGLE_BASE_URL"):
        return
    config["base_url"] = host if "://" in host else f"http://{host}"
    config.setdefault("use_emulator", True)


def _gcs_emulator(config: dict[str, Any], *, has_provider: bool) -> None:
    """Turn the GCS ``use_emulator`` option (not an obstore key) into obstore's way of
    reaching an emulator: a service account with ``disable_oauth`` (no token fetched, none
    sent) at ``base_url``. Without one obstore asks the instance metadata for a token for
    every write and delete (``skip_signature`` covers only reads)."""
    emulator = config.pop("use_emulator", None)
    if emulator is None or not _truthy(emulator):
        return
    base_url = config.get("base_url") or os.environ.get("GOOGLE_BASE_URL")
    if not base_url:
        raise ValueError(
            "use_emulator=True for gs:// needs endpoint= (the emulator's URL, e.g. "
            "'http://127.0.0.1:4443'; or GOOGLE_BASE_URL, or STORAGE_EMULATOR_HOST)"
        )
    config["base_url"] = base_url
    if has_provider or _GCS_CREDENTIALS.intersection(config):
        return
    account = {
        "disable_oauth": True,
        "gcs_base_url": str(base_url),
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    }
    config["service_account_key"] = json.dumps(account)


# the S3 config keys that hold a session token (obstore reads AWS_SESSION_TOKEN, AWS_TOKEN)
_S3_TOKEN_KEYS = frozenset(["session_token", "token", "security_token"])


def _keys_without_env_token(config: dict[str, Any], extra: dict[str, Any]) -> None:
    """S3 keys given without a session token, in an environment that holds one
    (``AWS_SESSION_TOKEN``: temporary credentials of another login), as a credential
    provider of those keys alone: obstore would take the token from the environment for
    every setting not given, and S3 refuses a token of other credentials (boto3 and s3fs
    take explicit keys without a token as just that)."""
    names = {str(k).lower().removeprefix("aws_"): k for k in config}
    if "access_key_id" not in names or "secret_access_key" not in names:
        return
    if _S3_TOKEN_KEYS.intersection(names):
        return
    if not (os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_TOKEN")):
        return
    if str(config[names["access_key_id"]]) == os.environ.get("AWS_ACCESS_KEY_ID"):
        return  # the environment's own keys, given again: its token goes with them
    key = str(config.pop(names["access_key_id"]))
    secret = str(config.pop(names["secret_access_key"]))
    extra["credential_provider"] = S3Keys(key, secret)


def _s3_profile(config: dict[str, Any], extra: dict[str, Any]) -> None:
    """The AWS profile's keys, region and endpoint (``AWS_PROFILE``, ``~/.aws``), where
    neither the options nor the environment give them (:func:`profile_settings`)."""
    names = {str(k).lower().removeprefix("aws_") for k in config} | set(extra)
    if not _truthy(config.get("skip_signature", config.get("aws_skip_signature"))):
        names.discard("skip_signature")
    keys, settings = profile_settings(names)
    if keys is not None:
        extra["credential_provider"] = keys
    config.update(settings)


# Azurite's account and its published key (obstore uses them with ``use_emulator``)
_EMULATOR_ACCOUNT = "devstoreaccount1"
_EMULATOR_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_AZURE_CREDENTIALS = frozenset(
    ["access_key", "account_key", "bearer_token", "sas_key", "token", "client_secret"]
)


# Azure config keys of a credential (any spelling obstore takes, ``azure_storage_``,
# ``azure_`` prefixes off) -> obstore's ``credential_type`` of it
_AZURE_CREDENTIAL_TYPES = {
    "account_key": "access_key",
    "access_key": "access_key",
    "master_key": "access_key",
    "sas_key": "sas_token",
    "sas_token": "sas_token",
    "token": "bearer_token",
    "bearer_token": "bearer_token",
    "client_secret": "client_secret",
}


def _azure_credential_type(config: dict[str, Any]) -> None:
    """The one kind of credential given (an account key, a SAS, a bearer token, a client
    secret) as obstore's ``credential_type``: obstore reads every setting not given from the
    ``AZURE_*`` variables and picks by its own order (a token, then a key, ..., a SAS last),
    so an ``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_TOKEN`` of the environment took
    the place of the ``sas_key=`` given."""
    if any(_azure_name(k) == "credential_type" for k in config):
        return
    kinds = {
        _AZURE_CREDENTIAL_TYPES[name]
        for name in map(_azure_name, config)
        if name in _AZURE_CREDENTIAL_TYPES
    }
    if len(kinds) == 1:
        config["credential_type"] = kinds.pop()


# the host of an Azure storage account's blob or Data Lake endpoint
_AZURE_HOST = re.compile(r"([a-z0-9]+)\.(?:blob|dfs)\.core\.windows\.net", re.IGNORECASE)


def _refuse_account_host(root: str, prefix: str) -> None:
    """Refuse ``az://<account>.blob.core.windows.net/<container>/...`` (an https URL's host
    under ``az://``, which takes the container there), saying how to write it."""
    scheme, _, host = root.partition("://")
    account = _AZURE_HOST.fullmatch(host)
    if account is None:
        return
    container, _, path = prefix.partition("?")[0].partition("/")
    raise ValueError(
        f"{scheme}://{host}/... names the storage account where {scheme}:// takes the "
        f"container: write it as 'az://{container}/{path}' with account_name="
        f"'{account[1]}', or as 'abfs://{container}@{account[1]}.dfs.core.windows.net/{path}'"
    )


def _build_hint(exc: BaseException, url: str) -> str:
    """What to do about an error of building a store of ``url`` (the missing account of an
    Azure URL that names only its container)."""
    if "Account must be specified" not in str(exc):
        return ""
    container, _, path = url.partition("://")[2].partition("/")
    return (
        ": pass account_name= (or set AZURE_STORAGE_ACCOUNT_NAME), or write the URL as "
        f"abfs://{container}@<account>.dfs.core.windows.net/{path}"
    )


def _tidy_endpoint(endpoint: str) -> str:
    """``endpoint`` without spaces or line breaks around it (pasted so: obstore's clients
    panicked) nor a '/' ending its path (GCS's and Azure's clients put another after it:
    ``//bucket/key``, every key missing or refused)."""
    endpoint = endpoint.strip()
    parts = urlsplit(endpoint)
    if not parts.netloc or "?" in endpoint or "#" in endpoint:
        return endpoint
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def _check_endpoint(endpoint: str, named: str, *, query: bool) -> None:
    """Refuse an endpoint that is no http(s) URL with a host (``localhost:9000``: its
    scheme left out), saying how to write it: obstore's S3 and GCS clients panicked at the
    first request. ``named``: the option or variable that gave it. Unless ``query``, one
    with a query or fragment is refused too: those clients append the keys after it, so
    every request asked for something else (an S3 server's bucket listing read as data)."""
    parts = urlsplit(endpoint.strip())
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises for a port that is no number
    except ValueError:
        host = None
    if parts.scheme.lower() in ("http", "https") and host and not re.search(r"\s", endpoint):
        if query or not ("?" in endpoint or "#" in endpoint):
            return
        raise ValueError(
            f"the endpoint {redact_url(endpoint.partition('?')[0].partition('#')[0])!r} "
            f"({named}) has a query or fragment ('?' or '#'): the keys are put after the "
            "endpoint, so leave it out"
        )
    shown = endpoint.strip().partition("?")[0].partition("#")[0]  # (a query may sign it)
    shown = redact_url(shown) if "://" in shown else shown.rpartition("@")[2]
    example = "'http://127.0.0.1:9000'"
    if re.fullmatch(r"[\w.-]+:\d+", shown):  # a host:port
        example = f"'http://{shown}'"
    space = " (it holds a space)" if re.search(r"\s", endpoint.strip()) else ""
    raise ValueError(
        f"the endpoint {shown!r} ({named}) is not an http(s) URL with a host{space}: write it as "
        f"{example} (or https://...)"
    )


# a SAS: a query string with a signature and the service version it was signed for
_SAS_FIELDS = frozenset(["sig", "sv"])


def _sas_of_url(prefix: str, config: dict[str, Any]) -> str:
    """An Azure URL's key ``prefix`` without the SAS pasted after it (``az://c/img.zarr?sv=
    ...&sig=...``, as the portal gives a container's SAS URL), which goes to ``config`` as
    ``sas_key``: taken literally, it was part of every key (nothing found) and of every
    message. A ``?`` before a query of other fields is a character of a blob's name."""
    path, sep, query = prefix.rpartition("?")
    if not sep or not _SAS_FIELDS.issubset(name for name, _ in parse_qsl(query)):
        return prefix
    given = sorted(k for k in config if _azure_name(k) in _AZURE_CREDENTIAL_TYPES)
    if given:
        raise ValueError(
            f"the URL carries a SAS (its query) and credentials are given too ({given[0]}=): "
            "pass one of them (sas_key= takes a SAS)"
        )
    config["sas_key"] = query
    return path.strip("/")


def _azure_name(key: object) -> str:
    """An Azure config key without the prefixes obstore accepts on it."""
    name = str(key).lower()
    for prefix in ("azure_storage_", "azure_"):
        name = name.removeprefix(prefix)
    return name


def _emulator_at_endpoint(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """An Azure config that reaches the emulator at the given ``endpoint``, or ``None`` when
    obstore's own is right. With ``use_emulator`` obstore ignores ``endpoint`` (it reads
    ``AZURITE_BLOB_STORAGE_URL``, else 127.0.0.1:10000): say it as the emulator's account and
    key at that endpoint, whose path (path-style URLs) names the account."""
    emulator = config.get("use_emulator", os.environ.get("AZURE_STORAGE_USE_EMULATOR"))
    endpoint = config.get("endpoint")
    if endpoint is None:
        endpoint = os.environ.get("AZURE_STORAGE_ENDPOINT") or os.environ.get("AZURE_ENDPOINT")
    if not endpoint or not _truthy(emulator):
        return None
    out = {**config, "use_emulator": False}  # False: not even from the environment
    account = str(out.setdefault("account_name", _EMULATOR_ACCOUNT))
    if not _AZURE_CREDENTIALS.intersection(out) and not _truthy(out.get("skip_signature")):
        out["account_key"] = _EMULATOR_KEY
        out.setdefault("credential_type", "access_key")  # not a token of the environment
    parts = urlsplit(str(endpoint))
    if not parts.path.strip("/"):
        endpoint = urlunsplit(parts._replace(path=f"/{account}"))
    out["endpoint"] = endpoint
    return out


_FALSY = frozenset(["0", "false", "off", "no", "n", ""])


def _flag(name: str, value: object) -> bool:
    """A boolean option: a bool, 0 or 1, or a string as obstore reads its own (``"true"``,
    ``"1"``, ``"yes"``...; ``"false"``, ``"0"``, ``"no"``...); anything else is refused naming
    the option (``bool("false")`` is true: allow_http="false" allowed plain http)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if _truthy(text) or text in _FALSY:
            return _truthy(text)
    raise ValueError(f"option {name!r} takes True or False, got {value!r}")


def _truthy(value: object) -> bool:
    """A boolean option as obstore reads it (``True``, ``"true"``, ``"1"``, ``"yes"``...)."""
    return str(value).strip().lower() in ("1", "true", "on", "yes", "y")


# key prefixes that a URL path carries unchanged (no escapes, spaces, queries or fragments)
_PLAIN_PREFIX = re.compile(r"[A-Za-z0-9._~/=+,:@-]*")


def _split_cloud_url(url: str) -> tuple[str, str]:
    """``(root URL, key prefix)`` of a bucket URL. The path is a key prefix taken literally, as
    keys are (and as s3fs, gcsfs and adlfs take it): ``%``, ``?`` and ``#`` are characters of
    the key, not escapes, a query or a fragment."""
    _, sep, rest = url.partition("://")
    netloc, _, path = rest.partition("/")
    scheme = url.partition(":")[0].lower()
    if not sep or not netloc:
        raise ValueError(f"malformed URL {redact_url(url)!r}: expected {scheme}://bucket/path")
    return f"{_SCHEME_FOR_OBSTORE.get(scheme, scheme)}://{netloc}", path.strip("/")


@contextmanager
def _construction_errors(url: str) -> Iterator[None]:
    """obstore's errors of building a store as ours, in a line each (the raw error is the
    ``__cause__``)."""
    try:
        try:
            yield
        except obs_exc.UnknownConfigurationKeyError as exc:
            raise ValueError(f"unknown store option for {url}: {obstore_message(exc)}") from exc
        except FileNotFoundError as exc:
            raise NotFoundError(f"not found: {url}: {obstore_message(exc)}", url=url) from exc
        except (obs_exc.BaseError, OSError) as exc:
            raise StoreError(
                f"cannot open store {url}: {obstore_message(exc)}{_build_hint(exc, url)}", url=url
            ) from exc
    except (ValueError, NgioError) as err:
        scrub_chain(err)  # obstore's own words may quote the URL given (a SAS in its query)
        raise
