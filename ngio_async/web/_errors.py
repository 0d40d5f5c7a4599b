"""JSON errors for the tile server, the middleware that produces them, and log redaction.

Every 4xx/5xx body is ``{"error": "<code>", "message": "<text>"}``. Messages name datasets,
parameters and keys, never store URLs; whatever is logged goes through :func:`redact` first.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import TYPE_CHECKING

from aiohttp import web

from .._errors import ClosedError, CodecError, NgioError, StoreError, StoreTimeoutError
from .._prefetch import first_leaf

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

__all__ = ["ApiError", "add_cors", "error_middleware", "json_error", "logger", "redact"]

logger = logging.getLogger("ngio_async.web")

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAMS = re.compile(
    r"(?i)(?P<name>(?:x-amz-[a-z-]+|x-goog-[a-z-]+|sig|signature|token|access_token|"
    r"api_key|apikey|key|se|sp|sv|skoid|sktid|password|secret)=)[^&\s\"']+"
)


_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact(text: str, *urls: str) -> str:
    """``text`` for the log: ``urls`` (store URLs, which may hold spaces) and every other URL
    (endpoints; user info and signed queries with them) replaced by ``<url>``, and any
    query-string secret left elsewhere masked."""
    for url in urls:
        text = text.replace(url, "<url>")
    text = _URL.sub("<url>", _USERINFO.sub(r"\g<scheme>***@", text))
    return _SECRET_PARAMS.sub(r"\g<name>***", text)


class ApiError(Exception):
    """An error answered as ``status`` with a JSON body ``{"error": code, "message": ...}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_error(status: int, code: str, message: str) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": code, "message": message}, status=status)


def _describe_store_error(exc: NgioError, request: web.Request) -> web.Response:
    name = request.match_info.get("name", "?")
    key = getattr(exc, "key", None)
    where = f" reading {key!r}" if key else ""
    url = getattr(exc, "url", None)
    text = redact(str(exc), *([url] if isinstance(url, str) and url else []))
    logger.warning("store error for dataset %r%s: %s", name, where, text)
    if isinstance(exc, StoreTimeoutError):
        return json_error(504, "store_timeout", f"the store of dataset {name!r} timed out{where}")
    kind = "undecodable data" if isinstance(exc, CodecError) else type(exc).__name__
    return json_error(502, "store_error", f"dataset {name!r}: {kind}{where}")


_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": (
        "Content-Range, Content-Length, Accept-Ranges, ETag, X-Shape, X-Dtype"
    ),
}
_PREFLIGHT = {
    **_CORS,
    "Access-Control-Allow-Methods": "GET, HEAD",
    "Access-Control-Allow-Headers": "Range, If-None-Match",
    "Access-Control-Max-Age": "86400",
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error response; never a traceback in a body.

    ``/api`` and ``/zarr`` answers allow any origin (read-only data, no cookies), so viewers
    served elsewhere can read through the server; CORS preflights get 204.
    """
    from ._app import STATE

    if (
        _shared(request)
        and request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
    ):
        return web.Response(status=204, headers=_PREFLIGHT)
    if STATE not in request.app:
        return await _answer(request, handler)
    answer: web.StreamResponse | None = None
    with request.app[STATE].handle():  # ended (cancelled) at shutdown
        answer = await _answer(request, handler)
    if answer is None:  # cancelled by the app's shutdown
        return json_error(503, "closed", "the server is shutting down")
    return answer


def _shared(request: web.Request) -> bool:
    """Whether ``request`` is for ``/api`` or ``/zarr`` (where the app is mounted)."""
    from ._app import STATE

    mount = request.app[STATE].mount() if STATE in request.app else ""
    return request.path.startswith((f"{mount}/api/", f"{mount}/zarr/"))


def _is_mount(request: web.Request) -> bool:
    """Whether ``request`` is a GET or HEAD of a mounted app's prefix without its slash
    (``/ngio`` of ``add_subapp("/ngio/", app)``)."""
    from ._app import STATE

    if request.method not in ("GET", "HEAD") or STATE not in request.app:
        return False
    mount = request.app[STATE].mount()
    return bool(mount) and request.path == mount


async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of ``/api`` and ``/zarr`` answers, set
    before any is sent (streamed answers too)."""
    if _shared(request):
        response.headers.update(_CORS)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = json_error(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404 and _is_mount(request):  # the viewer is at '<mount>/'
            url = request.rel_url
            raise web.HTTPPermanentRedirect(
                url.with_path(url.path + "/").with_query(url.query)
            ) from None
        code = (exc.reason or "error").lower().replace(" ", "_")
        message = {
            404: f"no such resource: {request.path}",
            405: f"method {request.method} is not allowed for {request.path}",
        }.get(exc.status, exc.reason or "error")
        response = json_error(exc.status, code, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # noqa: BLE001 - every error becomes a JSON answer
        leaf = first_leaf(exc)
        if isinstance(leaf, StoreError | CodecError):
            return _describe_store_error(leaf, request)
        if isinstance(leaf, ClosedError):
            return json_error(503, "closed", "the server is shutting down")
        text = "".join(traceback.format_exception(exc))
        logger.error("unexpected error for %s %s\n%s", request.method, request.path, redact(text))
        return json_error(500, "internal_error", "unexpected server error (see the server log)")
