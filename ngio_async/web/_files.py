"""Read-only file endpoints: the zarr passthrough (``/zarr/{name}/{key}``) and static files.

Keys and static paths are validated segment by segment on the *raw* (still percent-encoded)
path: ``.``, ``..``, empty segments, backslashes, NUL and encoded slashes are refused before
any store or file is touched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

import anyio
from aiohttp import web

from ..images._open import join
from ..stores import RangeByteRequest
from ._errors import ApiError

if TYPE_CHECKING:
    from ._state import WebState

__all__ = [
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

    HEAD and ranged GETs ask the store for the object's size first (one HEAD), so a range of
    a large shard never fetches the whole object.
    """
    from ._app import STATE

    if request.method not in ("GET", "HEAD"):
        raise ApiError(
            405,
            "method_not_allowed",
            f"method {request.method} is not allowed for {request.path} (GET, HEAD)",
            headers={"Allow": "GET, HEAD"},
        )
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
    path = join(root, key)
    missing = ApiError(404, "not_found", f"no key {key!r} in dataset {served!r}")
    name = key.rpartition("/")[2]
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": "application/json" if name in _JSON_NAMES else "application/octet-stream",
    }
    range_header = request.headers.get("Range")
    if request.method == "HEAD" or is_single_range(range_header):
        size = await store.size(path)
        if size is None:
            raise missing
        if request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return web.Response(headers=headers)
        span = parse_range(range_header, size)
        if span is not None:
            start, end = span
            part = await store.get(path, RangeByteRequest(start, end))
            if part is None:
                raise missing
            headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{size}"
            return web.Response(status=206, body=bytes(part), headers=headers)
    data = await store.get(path)
    if data is None:
        raise missing
    return web.Response(body=bytes(data), headers=headers)


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
