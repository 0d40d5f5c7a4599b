"""Read-only file endpoints: the zarr passthrough (``/zarr/{name}/{key}``) and static files.

Keys and static paths are validated segment by segment on the *raw* (still percent-encoded)
path: ``.``, ``..``, empty segments, backslashes, NUL and encoded slashes are refused before
any store or file is touched.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import anyio
from aiohttp import web

from .._errors import PermissionDeniedError, StoreError, StoreTimeoutError
from ..images._open import join
from ..stores import RangeByteRequest
from ._errors import ApiError, logger
from ._params import etag_matches

if TYPE_CHECKING:
    from ..stores import AsyncStore, Buffer
    from ._state import WebState

__all__ = [
    "PIECE",
    "STATIC_DIR",
    "index",
    "is_single_range",
    "parse_range",
    "safe_key",
    "static_file",
    "zarr_object",
]

STATIC_DIR = Path(__file__).parent / "static"
_JSON_NAMES = frozenset({"zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata"})
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
#: the most bytes of an object ``/zarr`` reads at once: larger objects and ranges (whole
#: shards) are sent piece by piece
PIECE = 8 << 20
_WRITE = 1 << 20  # bytes handed to the connection at once


def safe_key(raw: str, what: str = "key") -> str:
    """Decode a raw URL path tail into a relative key, or raise a 400 ``ApiError``."""

    def refuse() -> ApiError:
        return ApiError(400, "bad_key", f"invalid {what} {unquote(raw)!r}: not a relative path")

    if not raw or raw.startswith("/"):
        raise refuse()
    parts = []
    for segment in raw.split("/"):
        try:
            part = unquote(segment, errors="strict")
        except UnicodeDecodeError:  # percent-escapes that are no UTF-8
            raise refuse() from None
        if part in ("", ".", "..") or any(ch in part for ch in "/\\\x00") or ":" in part[:3]:
            raise refuse()
        parts.append(part)
    return "/".join(parts)


def _raw_tail(request: web.Request, prefix_segments: int) -> str:
    """The raw path after the app's mount point and ``prefix_segments`` more segments
    (``/zarr/name/`` -> 2)."""
    from ._app import STATE

    path = request.raw_path.partition("?")[0]
    segments = path.split("/")
    mounted = request.app[STATE].mount().count("/")
    return "/".join(segments[mounted + prefix_segments + 1 :])


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` of a single ``bytes=`` range; ``None`` to serve the whole object.

    :raises ApiError: 416 when the range cannot be satisfied.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None  # not a single byte range: ignored (RFC 9110 allows it)
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]) + 1, size) if match[2] else size
        if match[2] and int(match[2]) < start:
            return None  # invalid range: ignored
    else:
        start, end = max(0, size - int(match[2])), size
        if int(match[2]) == 0:
            start = size
    if start >= size or end <= start:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "range_not_satisfiable",
        f"the object has {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )


async def zarr_object(request: web.Request) -> web.StreamResponse:
    """``GET|HEAD /zarr/{name}/{key}``: an object of the dataset's store, ranges supported.

    An object or range larger than :data:`PIECE` is sent piece by piece (each read once,
    all from the version of the object the first was read from), so a whole shard never
    sits in memory. Answers carry an ``ETag`` (from the object's version) and
    ``Cache-Control: no-cache`` (HEAD: no ``ETag``); ``If-None-Match`` costs one version
    lookup and answers 304, as does ``If-Range`` (a range of another version: the whole).
    HEAD and ranged GETs ask the store for the object's size first (one HEAD).
    """
    if request.method not in ("GET", "HEAD"):
        raise ApiError(
            405,
            "method_not_allowed",
            f"method {request.method} is not allowed for {request.path} (GET, HEAD)",
            headers={"Allow": "GET, HEAD"},
        )
    obj = _object(request)
    if request.method == "HEAD":  # one HEAD upstream: its size (no ETag)
        headers = obj.headers(None)
        headers["Content-Length"] = str(await obj.size())
        return web.Response(headers=headers)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match:  # a revalidation: the object's version alone decides
        etag = obj.etag(await obj.version())
        if etag is not None and etag_matches(if_none_match, etag):
            return web.Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    range_header = request.headers.get("Range")
    if is_single_range(range_header) and await _range_applies(obj, request.headers.get("If-Range")):
        size = await obj.size()
        span = parse_range(range_header, size)
        if span is not None:
            start, end = span
            headers = {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
            return await obj.send(request, start, end, size, 206, headers)
    first = await obj.first_piece()
    if first.data is not None and len(first.data) < PIECE:  # the whole object: one request
        return web.Response(body=bytes(first.data), headers=obj.headers(first.version))
    size = await obj.size()
    return await obj.send(request, 0, size, size, 200, {}, first)


async def _range_applies(obj: _StoredObject, if_range: str | None) -> bool:
    """Whether a ``Range`` is served given its ``If-Range``: none, or the object's current
    ``ETag`` (strongly compared: a weak one or a date never is, no ``Last-Modified`` being
    sent); else the whole object is (one version lookup)."""
    if if_range is None:
        return True
    return if_range.strip() == obj.etag(await obj.version())


@dataclass
class _Piece:
    """A piece of an object read, handed over to :meth:`_StoredObject.send` (which lets go
    of it once it is sent), and the version of the object it was read from."""

    data: Buffer | None
    version: str | None


@dataclass(frozen=True)
class _StoredObject:
    """An object served by ``/zarr``: its store, path, served name and key."""

    served: str
    key: str
    store: AsyncStore
    path: str

    def missing(self) -> ApiError:
        return ApiError(404, "not_found", f"no key {self.key!r} in dataset {self.served!r}")

    def etag(self, version: str | None) -> str | None:
        """The ``ETag`` of the object at ``version`` (``None``: the store cannot tell)."""
        if not version:
            return None
        text = f"{self.served}|{self.key}|{version}"
        return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'

    def headers(self, version: str | None) -> dict[str, str]:
        name = self.key.rpartition("/")[2]
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Type": "application/json"
            if name in _JSON_NAMES
            else "application/octet-stream",
            "Cache-Control": "no-cache",
        }
        etag = self.etag(version)
        if etag is not None:
            headers["ETag"] = etag
        return headers

    async def size(self) -> int:
        size = await self.store.size(self.path)
        if size is None:
            raise self.missing()
        return size

    async def version(self) -> str | None:
        version = await self.store.version(self.path)
        if version is None:
            raise self.missing()
        return version

    async def first_piece(self) -> _Piece:
        """The first :data:`PIECE` bytes (the whole object when it is smaller) and the version
        they were read from."""
        try:
            data, version = await self.store.get_with_version(self.path, RangeByteRequest(0, PIECE))
        except (StoreTimeoutError, PermissionDeniedError):
            raise
        except StoreError:  # an empty object: no range of it can be satisfied (HTTP 416)
            data, version = await self.store.get_with_version(self.path)
        if data is None:
            raise self.missing()
        return _Piece(data, version)

    async def send(
        self,
        request: web.Request,
        start: int,
        end: int,
        size: int,
        status: int,
        headers: dict[str, str],
        first: _Piece | None = None,
    ) -> web.StreamResponse:
        """Bytes ``[start, end)`` of the object of ``size`` bytes, piece by piece (``first``:
        the piece at ``start``, read), each from the version the first came from. A later
        piece that cannot be read (the object rewritten or removed meanwhile, a store error)
        ends the answer short: the client sees a truncated body, never bytes of two
        versions. A store that read the whole object to give the first piece (an HTTP server
        that ignores ``Range``) is not asked again: the rest is sent from what it read."""
        if first is None:
            span = RangeByteRequest(start, min(end, start + PIECE))
            first = _Piece(*await self.store.get_with_version(self.path, span))
            if first.data is None:
                raise self.missing()
        data, version = first.data, first.version
        first.data = None  # this frame holds the piece alone: let go of once sent
        whole = None if data is None else _whole_object(data, size)
        if whole is not None:
            data = memoryview(whole)[start:end]
        response = web.StreamResponse(status=status, headers={**self.headers(version), **headers})
        response.content_length = end - start
        await response.prepare(request)
        offset = start
        try:
            while data is not None:
                sent = await _write_all(response, data)
                offset += sent
                data = None  # freed before the next piece is read: one piece held at once
                if offset < end and sent:
                    data = await self.store.get(
                        self.path,
                        RangeByteRequest(offset, min(end, offset + PIECE)),
                        if_match=version,
                    )
                    if data is None:
                        raise self.missing()
        except (StoreError, ApiError, ConnectionError) as exc:
            if not isinstance(exc, ConnectionError):  # the client left: nothing to tell
                logger.warning(
                    "dataset %r: %r cut short after %d of %d bytes: %s",
                    self.served,
                    self.key,
                    offset - start,
                    end - start,
                    type(exc).__name__,
                )
            response.force_close()
            return response
        await response.write_eof()
        return response


def _whole_object(piece: Buffer, size: int) -> Buffer | None:
    """The whole object ``piece`` was cut from, when the store read all ``size`` bytes of it
    to give the piece (an HTTP server that ignores ``Range``, an object stored
    Content-Encoded): each later piece would be read whole again."""
    with memoryview(piece) as view:
        base = view.obj
        if isinstance(base, bytes) and len(base) == size > len(view):
            return base
    return None


async def _write_all(response: web.StreamResponse, data: Buffer) -> int:
    """Write ``data`` in parts of :data:`_WRITE` bytes (what the connection cannot take at
    once it copies); the bytes written."""
    with memoryview(data) as whole, whole.cast("B") as view:
        for at in range(0, len(view), _WRITE):
            await response.write(view[at : at + _WRITE])
        return len(view)


def _object(request: web.Request) -> _StoredObject:
    """The object a ``/zarr`` request names (validated; no store touched)."""
    from ._app import STATE

    state: WebState = request.app[STATE]
    served = request.match_info["name"]
    owner = state.plates.get(served) or state.containers.get(served)
    field = state.fields.get(served)
    if owner is not None:  # the whole plate or container: its images are under it
        store, root = owner.store, owner.root
    elif field is not None:  # a field or container image (its name's slashes as %2F): not opened
        store, root = field.owner.store, join(field.owner.root, field.where.path)
    else:
        entry = state.entry(served)
        store, root = entry.dataset.store, entry.dataset.root
    key = safe_key(_raw_tail(request, 2))
    return _StoredObject(served, key, store, join(root, key))


def is_single_range(header: str | None) -> bool:
    """Whether ``header`` is one ``bytes=`` range (anything else is ignored)."""
    match = _RANGE.match((header or "").strip())
    return match is not None and bool(match[1] or match[2])


async def index(request: web.Request) -> web.StreamResponse:
    """``GET /``: the viewer page."""
    return await _file_response(STATIC_DIR / "index.html", "index.html")


async def static_file(request: web.Request) -> web.StreamResponse:
    """``GET /static/{path}``: a file under the package's ``static`` directory."""
    rel = safe_key(_raw_tail(request, 1), "path")
    return await _file_response(STATIC_DIR.joinpath(*rel.split("/")), rel)


async def _file_response(path: Path, rel: str) -> web.StreamResponse:
    root = await anyio.Path(STATIC_DIR).resolve()
    resolved = await anyio.Path(path).resolve()
    if not resolved.is_relative_to(root) or not await resolved.is_file():
        raise ApiError(404, "not_found", f"no static file {rel!r}")
    return web.FileResponse(Path(resolved), headers={"Cache-Control": "no-cache"})
