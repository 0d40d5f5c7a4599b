"""The exception tree of ngio_async (a leaf module: stdlib only).

::

    NgioError(Exception)
    ├─ MetadataError(NgioError, ValueError)          invalid NGFF / zarr metadata; ``.path`` is the JSON path
    ├─ NotFoundError(NgioError, FileNotFoundError)   image, level, label or store object missing
    ├─ StoreError(NgioError, OSError)                a store operation failed; ``.url``, ``.key``
    │   ├─ PermissionDeniedError(StoreError, PermissionError)
    │   │   └─ CredentialsRefusedError                the server refused the credentials given
    │   └─ StoreTimeoutError(StoreError, TimeoutError)
    ├─ CodecError(NgioError)                         a chunk failed to encode or decode; ``.url``, ``.key``
    ├─ UnsupportedError(NgioError, NotImplementedError)  NGFF version, codec, data type or event loop
    ├─ ClosedError(NgioError, RuntimeError)          use after close
    ├─ ReadOnlyError(NgioError, PermissionError)     a write on a dataset opened read-only
    └─ ExistsError(NgioError, FileExistsError)       create() found a node and overwrite=False

Builtin bases keep ordinary ``except ValueError`` / ``except FileNotFoundError`` clauses working.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ChangedError",
    "ClosedError",
    "CodecError",
    "CredentialsRefusedError",
    "ExistsError",
    "MetadataError",
    "NgioError",
    "NotFoundError",
    "PermissionDeniedError",
    "ReadOnlyError",
    "StoreError",
    "StoreTimeoutError",
    "UnsupportedError",
]


class NgioError(Exception):
    """Base class of every error raised by ngio_async."""


class MetadataError(NgioError, ValueError):
    """Metadata broke a rule; the message names the JSON path and the rule."""

    def __init__(self, message: str, path: str = "$") -> None:
        self.path = path
        self.rule = message
        super().__init__(f"{message} - at `{path}`" if path else message)

    def __reduce__(self) -> tuple[type[MetadataError], tuple[str, str]]:
        """Pickles as its rule and path (a dask worker's error reaches the client unchanged)."""
        return (type(self), (self.rule, self.path))


class _Located(NgioError):
    """An error about one place: ``url`` (the store) and ``key`` (the object in it)."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None) -> None:
        self.url = url
        self.key = key
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotFoundError(_Located, FileNotFoundError):
    """A node (image, level, label, store object) does not exist."""


class StoreError(_Located, OSError):
    """A store operation failed; ``url`` and ``key`` name what was asked for."""


class PermissionDeniedError(StoreError, PermissionError):
    """The store refused access (HTTP 401/403, missing credentials).

    ``missing_credentials``: none were given or found; the message then says how to give them
    in the API's words (``access_key_id=``, ``anonymous=True``). Inferred from those words
    when the raiser does not say.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        key: str | None = None,
        missing_credentials: bool | None = None,
    ) -> None:
        super().__init__(message, url=url, key=key)
        self.missing_credentials = (
            "anonymous=True" in message if missing_credentials is None else missing_credentials
        )


class CredentialsRefusedError(PermissionDeniedError):
    """The server refused the credentials given (a wrong secret or account key, an access
    key id it does not know, a mistyped or expired SAS or signed URL): no permission, and no
    option (``forbidden_is_missing``), would let any request of the store through."""

    def __init__(self, message: str, *, url: str | None = None, key: str | None = None) -> None:
        super().__init__(message, url=url, key=key, missing_credentials=False)


class StoreTimeoutError(StoreError, TimeoutError):
    """A store request timed out (after retries)."""


class ChangedError(StoreError):
    """A conditional read (``get(..., if_match=version)``) found another version of the object
    than ``version``: it was rewritten since that version was read (HTTP 412, or another ETag)."""


class CodecError(NgioError):
    """A chunk failed to encode or decode; ``key`` names the chunk, ``url`` the store it is
    in (set by the image level that read it: :func:`name_store`)."""

    def __init__(self, message: str, *, key: str | None = None, url: str | None = None) -> None:
        self.key = key
        self.url = url
        super().__init__(message)


def name_store(exc: BaseException, url: str) -> None:
    """Name ``url`` in ``exc`` in place: a :class:`CodecError` that names no store yet (the
    codecs know keys only), or each one in an exception group; anything else is left as is.

    The message then reads ``'0/c/1/2' at <url>`` where it named the key (many images read in
    one dask graph: which image's chunk), ``exc.url`` is ``url``.
    """
    if isinstance(exc, CodecError):
        if exc.url is None:
            exc.url = url
            text = str(exc)
            name = repr(exc.key) if exc.key else ""
            at = f"{name} at {url}"
            exc.args = (text.replace(name, at, 1) if name and name in text else f"{url}: {text}",)
    elif isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            name_store(inner, url)


class UnsupportedError(NgioError, NotImplementedError):
    """A feature, version, codec or runtime that ngio_async does not support."""


class ClosedError(NgioError, RuntimeError):
    """The object was used after it was closed."""


class ReadOnlyError(NgioError, PermissionError):
    """A write was asked of a dataset opened read-only (``mode="r"``); nothing was done."""


ExistsKind = Literal["node", "file", "parent"]


class ExistsError(_Located, FileExistsError):
    """Creating an image found an existing zarr node there (and ``overwrite`` was not set).

    ``kind`` says what is in the way: ``"node"``, a zarr node or stored objects, which
    ``overwrite=True`` replaces; ``"file"``, a file where a directory goes, or ``"parent"``, a
    parent that is a zarr array: ``overwrite`` replaces neither. Inferred from the message
    when the raiser does not say.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        key: str | None = None,
        kind: ExistsKind | None = None,
    ) -> None:
        super().__init__(message, url=url, key=key)
        self.kind: ExistsKind = kind if kind is not None else _exists_kind(message)

    @property
    def overwrite_replaces(self) -> bool:
        """Whether ``overwrite=True`` (``--overwrite``) replaces what is in the way."""
        return self.kind == "node"


def _exists_kind(message: str) -> ExistsKind:
    if "not a directory" in message:
        return "file"
    if "is a zarr array" in message and "parent" in message:
        return "parent"
    return "node"
