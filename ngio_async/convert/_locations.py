"""Where a conversion reads and writes: sources and destinations as locations, their
overlap, and the refused destinations (a file, a memory or HTTP URL)."""

from __future__ import annotations

import os
import posixpath
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .._errors import ExistsError, PermissionDeniedError, UnsupportedError
from ..images import Dataset, Plate
from ..stores import AsyncStore
from ..stores._url import file_in_the_way
from ._formats import OmeZarrReader, find_reader

if TYPE_CHECKING:
    from collections.abc import Mapping


# ------------------------------------------------------------------------------ checks
_SCHEME_ALIASES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "azure": "az"}


_Location = tuple[str, Any, str]
"""Where a source or destination lives: ``(kind, base, path)``. ``kind`` ``"file"`` (``path``
a resolved local path), ``"url"`` (``base`` ``scheme://netloc``) or ``"object"`` (``base`` the
store object itself: in-memory stores); ``path`` is absolute, ``/``-separated."""


def _url_location(text: str) -> _Location | None:
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if len(scheme) <= 1 or scheme == "file":  # a path (or a Windows drive letter), file://
        path = unquote(parts.path) if scheme == "file" else text
        return ("file", "", os.path.realpath(os.path.expanduser(path)))
    if scheme == "memory":
        return None  # every memory:// URL opens a new, empty store
    scheme = _SCHEME_ALIASES.get(scheme, scheme)
    if scheme in ("http", "https"):  # the server decodes the path; the query is part of it
        path = posixpath.normpath("/" + unquote(parts.path).lstrip("/"))
        return (
            "url",
            f"{scheme}://{parts.netloc.lower()}",
            path + (f"?{parts.query}" * bool(parts.query)),
        )
    # bucket URLs: the path is the literal key prefix ('%', '?' and '#' included), as the stores
    # take it
    bucket, _, key = text.split("://", 1)[1].partition("/")
    return ("url", f"{scheme}://{bucket}", posixpath.normpath("/" + key.lstrip("/")))


def _location(obj: Any) -> _Location | None:
    """Where ``obj`` (a path, URL, store, dataset or image source) lives; ``None``: unknown."""
    from ..stores._obstore_clients import OBSTORE_TYPES, local_prefix

    if isinstance(obj, Dataset | Plate):
        loc = _location(obj.store)
        if loc is None or not obj.root:
            return loc
        return (loc[0], loc[1], posixpath.normpath(posixpath.join(loc[2], obj.root)))
    if isinstance(obj, str | os.PathLike):
        return _url_location(os.fspath(obj))
    if isinstance(obj, AsyncStore):
        if not obj.url.lower().startswith("memory:"):
            return _url_location(obj.url)
        return ("object", getattr(obj, "obstore", obj), "/")
    prefix = local_prefix(obj)
    if prefix is not None:
        return ("file", "", os.path.realpath(prefix))
    if isinstance(obj, OBSTORE_TYPES):
        return ("object", obj, "/")
    url = getattr(obj, "url", None)  # an ImageSource
    return _url_location(url) if isinstance(url, str) else None


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _same_file(a: str, b: str) -> bool:
    """``a`` and ``b`` name one existing file or directory (case-insensitive file systems)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _where(obj: Any) -> str:
    """How errors name a source or destination: its path or URL."""
    if isinstance(obj, str | os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Dataset | Plate):
        return obj.url
    url = getattr(obj, "url", None)
    return url if isinstance(url, str) else repr(obj)


def _endpoint(options: Mapping[str, Any] | None) -> Any:
    return (options or {}).get("endpoint") or (options or {}).get("endpoint_url")


def _at(loc: _Location | None, path: Any) -> _Location | None:
    """``loc`` moved down to ``path`` (a store path option; empty: ``loc`` itself)."""
    rel = str(path or "").strip("/")
    if loc is None or not rel:
        return loc
    return (loc[0], loc[1], posixpath.normpath(posixpath.join(loc[2], rel)))


def overlap(
    src: Any,
    dst: Any,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
) -> str | None:
    """How the place ``dst`` (with its ``path`` option) relates to ``src`` (with its): ``"is
    the source"``, ``"lies inside the source"``, ``"contains the source"``, or ``None``
    (apart, or unknown). Pure: nothing is opened (see :func:`check_distinct`)."""
    a = _at(_location(src), (src_options or {}).get("path"))
    b = _at(_location(dst), (dst_options or {}).get("path"))
    if a is None or b is None or a[0] != b[0]:
        return None
    if a[0] == "object" and a[1] is not b[1]:
        return None
    if a[0] != "object" and a[1] != b[1]:
        return None
    ea, eb = _endpoint(src_options), _endpoint(dst_options)
    if a[0] == "url" and ea and eb and str(ea).rstrip("/") != str(eb).rstrip("/"):
        return None
    if a[2] == b[2] or (a[0] == "file" and _same_file(a[2], b[2])):
        return "is the source"
    if _inside(b[2], a[2]):
        return "lies inside the source"
    if _inside(a[2], b[2]):
        return "contains the source"
    return None


def check_distinct(
    src: Any,
    dst: Any,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a destination that is the source, holds it or lies inside it (writing there
    would delete or mix with the source before it is read). Pure: nothing is opened.

    Local paths are compared resolved (``os.path.realpath``, ``file://`` URLs included),
    object-store and HTTP URLs by scheme, bucket / host and normalised key prefix (unless both
    sides name different ``endpoint`` options), in-memory stores by identity.

    :raises ValueError: naming both.
    """
    how = overlap(src, dst, src_options, dst_options)
    if how is None:
        return
    raise ValueError(
        f"the destination {_where(dst)} {how} {_where(src)}: writing it would destroy the source "
        "before it is read; choose another destination"
    )


def refuse_file(dst: Any) -> None:
    """Refuse a local destination that is a regular file, or lies below one (an OME-Zarr is a
    directory; the store would only say "File exists"). The file is never replaced, even with
    ``overwrite``: it is no zarr node (a mistyped destination may be the source TIFF).

    :raises ExistsError: naming the file.
    """
    loc = _location(dst) if isinstance(dst, str | os.PathLike) else None
    if loc is None or loc[0] != "file":
        return
    path = file_in_the_way(loc[2])
    if path is not None:
        what = "is a file" if path == loc[2] else f"lies below the file {path}"
        raise ExistsError(
            f"the destination {_where(dst)} {what}, not a directory: an OME-Zarr is a "
            "directory; remove the file or choose another destination (overwrite=True "
            "replaces zarr nodes, never other files)",
            key=path,
            kind="file",
        )


def refuse_memory_url(dst: Any) -> None:
    """Refuse a ``memory://`` URL as a destination: every one opens a new, empty store, so
    what is written there could never be opened (pass a store: ``open_store("memory://")``).

    :raises ValueError: naming it."""
    if isinstance(dst, str | os.PathLike) and os.fspath(dst).lower().startswith("memory:"):
        raise ValueError(
            f"the destination {os.fspath(dst)} is a memory:// URL: each one opens a new, empty "
            'store, and the output would be lost; pass a store (open_store("memory://")) '
            "and open the result from it, or write to a path or an object store"
        )


def refuse_http_url(dst: Any) -> None:
    """Refuse an ``http(s)://`` URL as a destination before anything is read: HTTP stores are
    read-only.

    :raises UnsupportedError: naming it."""
    if isinstance(dst, str | os.PathLike) and _is_http(os.fspath(dst)):
        raise UnsupportedError(
            f"the destination {os.fspath(dst)} is an http(s):// URL, and HTTP stores are "
            "read-only: write to a path or an object store (s3://, gs://, az://)"
        )


async def _check_destination(base: str, options: Mapping[str, Any]) -> None:
    """A batch's object-store destination answers before any input is read: a missing bucket,
    missing credentials or an endpoint that does not answer fail here, once."""
    from ..stores import open_store

    if "://" not in base or base.lower().startswith(("file://", "memory:")):
        return
    async with open_store(base, **options) as store:
        await store.get("zarr.json")  # a GET: a HEAD's 404 does not tell a missing bucket


def _writes_to(exc: PermissionDeniedError, target: str) -> bool:
    """Whether ``exc`` refused a write to ``target`` (not a read of the source)."""
    where = _url_location(exc.url) if exc.url else None
    here = _url_location(target)
    if where is None or here is None:
        return False
    return where[:2] == here[:2] and _inside(where[2], here[2])


def _is_http(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _is_store_file(loc: _Location, src: str) -> bool:
    """Whether ``src`` (at ``loc``) is a file a reader other than OME-Zarr's takes on an
    object store (not over HTTP)."""
    return not loc[1].startswith("http") and not isinstance(find_reader(src), OmeZarrReader)
