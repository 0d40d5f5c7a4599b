"""The messages of store errors on the obstore path (s3://, obstore's HTTP client): one short
line of our own naming the store URL and the key, with the HTTP status and the server's error
code when there is one, and at most a line of the server's own words; never an HTML page, an
XML document, obstore's request URL or its retry settings. The raw obstore error stays the
``__cause__``.

Real servers on 127.0.0.1: moto's S3, a port nobody listens on, and a proxy in front of moto
that answers some requests itself with the error pages real servers send (an S3 XML error, an
HTML page).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from aiohttp import web
from obstore import exceptions as obs_exc
from servers import FaultProxy, Faults, S3Server

import ngio_async
from ngio_async import Limits, NgioError, NotFoundError, PermissionDeniedError, StoreError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

FAST = Limits(max_retries=1, backoff_base=0.001, backoff_max=0.002, timeout=10)

S3_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Access Denied</Message><RequestId>4442587FB7D0A2F9</RequestId>"
    "<HostId>9Gjjt1m+cjU4OPvX9O9/8RuvnG41MRb/18Oux2o5H5MY7ISNTlXN+Dz9IG62/ILV</HostId></Error>"
)
S3_INTERNAL = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    "<Message>We encountered an internal error. Please try again.</Message></Error>"
)
HTML_PAGE = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
    "<title>Service Temporarily Unavailable</title>\n</head><body>\n"
    "<h1>Service Temporarily Unavailable</h1>\n<p>The server is temporarily unable to "
    "service your request due to maintenance downtime or capacity problems.</p>\n"
    "<hr>\n<address>Apache/2.4.41 (Ubuntu) Server at 127.0.0.1 Port 80</address>\n</body></html>"
)
NGINX_403 = (
    "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n"
    "<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class ErrorProxy(FaultProxy):
    """A proxy to moto that answers requests whose method and path match a rule itself:
    ``(methods or None, path regex, status, body)``; XML bodies go as ``application/xml``."""

    rules: list[tuple[Collection[str] | None, str, int, str]] = field(default_factory=list)

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        for methods, pattern, status, body in self.rules:
            if (methods is None or request.method in methods) and re.search(pattern, path):
                kind = "application/xml" if body.startswith("<?xml") else "text/html"
                return web.Response(status=status, text=body, content_type=kind)
        return await super()._answer(request, path, faults)


def _serve(target: str) -> Iterator[ErrorProxy]:
    server = ErrorProxy(Path("."), target=target).start()
    assert isinstance(server, ErrorProxy)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[ErrorProxy]:
    """An :class:`ErrorProxy` in front of moto's S3."""
    yield from _serve(s3_server.endpoint)


@pytest.fixture
def pages() -> Iterator[ErrorProxy]:
    """An :class:`ErrorProxy` to nowhere: every request needs a rule."""
    yield from _serve(f"http://127.0.0.1:{_free_port()}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _s3_options(s3: S3Server, endpoint: str | None = None) -> dict[str, Any]:
    return {**s3.options(), "endpoint": endpoint or s3.endpoint, "limits": FAST}


def check_message(exc: BaseException, url: str, key: str, *words: str) -> None:
    """``exc`` says what went wrong in one short line naming ``url``, ``key`` and ``words``,
    and carries obstore's own error as its ``__cause__``."""
    text = str(exc)
    assert "\n" not in text and len(text) < 300, text
    assert url in text and repr(key) in text, text
    for word in words:
        assert word in text, text
    for raw in ("<?xml", "<!DOCTYPE", "<html", "<Error>", "retry_timeout", "max_retries"):
        assert raw.lower() not in text.lower(), text
    assert "Debug source" not in text and "Error performing" not in text, text
    cause = exc.__cause__
    assert isinstance(cause, obs_exc.BaseError | FileNotFoundError), repr(cause)
    assert not isinstance(cause, NgioError)
    assert "Error performing" in str(cause)  # obstore's whole text is kept there


# -- obstore's HTTP client --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (403, S3_DENIED, PermissionDeniedError, ["403", "AccessDenied: Access Denied"]),
        (403, NGINX_403, PermissionDeniedError, ["HTTP 403 Forbidden"]),
        (500, S3_INTERNAL, StoreError, ["500", "InternalError", "after 1 retry"]),
        (503, HTML_PAGE, StoreError, ["503", "Service Temporarily Unavailable"]),
    ],
)
async def test_http_error_pages_become_one_line(
    pages: ErrorProxy, status: int, body: str, error: type[StoreError], words: list[str]
) -> None:
    pages.rules.append((None, r"^/site/", status, body))
    url = f"{pages.url}site/img.zarr"
    async with open_store(url, backend="obstore", limits=FAST) as store:
        with pytest.raises(error) as info:
            await store.get("0/c/0/0")
    check_message(info.value, url, "0/c/0/0", *words)
    assert body[:20] in str(info.value.__cause__)  # the page itself is in the cause


async def test_http_connection_refused() -> None:
    url = f"http://127.0.0.1:{_free_port()}/img.zarr"
    async with open_store(url, backend="obstore", limits=FAST) as store:
        with pytest.raises(StoreError) as info:
            await store.get("zarr.json")
    check_message(info.value, url, "zarr.json", "could not connect", "after 1 retry")


# -- S3 ---------------------------------------------------------------------------------------


async def test_s3_missing_bucket(s3_server: S3Server) -> None:
    url = "s3://no-such-bucket-msg/img.ome.zarr"
    with pytest.raises(NotFoundError) as info:
        await ngio_async.open_async(url, **_s3_options(s3_server))
    check_message(info.value, url, "zarr.json", "does not exist", "404", "NoSuchBucket")
    async with open_store(url, **_s3_options(s3_server)) as store:
        with pytest.raises(NotFoundError) as info:
            await store.put("0/zarr.json", b"{}")
    check_message(info.value, url, "0/zarr.json", "PUT", "NoSuchBucket")


async def test_s3_missing_image_is_short(s3_server: S3Server) -> None:
    url = f"{s3_server.fresh_url()}/nope.ome.zarr"
    with pytest.raises(NotFoundError) as info:
        await ngio_async.open_async(url, **_s3_options(s3_server))
    text = str(info.value)
    assert "\n" not in text and len(text) < 300 and url in text, text


async def test_s3_chunk_read_denied(s3_server: S3Server, proxy: ErrorProxy) -> None:
    """A read of a chunk the store refuses (S3 answers 403 for a missing object to those
    who may not list the bucket): the chunk's key and the image's URL, not S3's XML."""
    url = f"{s3_server.fresh_url()}/img.ome.zarr"
    options = _s3_options(s3_server)
    data = np.arange(32 * 32, dtype="uint8").reshape(32, 32)
    async with await ngio_async.create_async(
        url, shape=data.shape, dtype="uint8", axes="yx", chunks=(16, 16), shards=False, **options
    ) as ds:
        await ds.write(data)
    proxy.rules.append(({"GET"}, r"/0/c/1/0$", 403, S3_DENIED))
    async with await ngio_async.open_async(url, **_s3_options(s3_server, proxy.url)) as ds:
        assert np.array_equal(await ds.read(y=slice(0, 16)), data[:16])
        with pytest.raises(PermissionDeniedError) as info:
            await ds.read(y=slice(16, 32))
    check_message(info.value, url, "0/c/1/0", "HTTP 403", "AccessDenied")


async def test_s3_write_to_a_read_only_bucket(s3_server: S3Server, proxy: ErrorProxy) -> None:
    proxy.rules.append(({"PUT", "POST", "DELETE"}, r".", 403, S3_DENIED))
    url = f"{s3_server.fresh_url()}/new.ome.zarr"
    with pytest.raises(PermissionDeniedError) as info:
        await ngio_async.create_async(
            url, shape=(8, 8), dtype="uint8", axes="yx", **_s3_options(s3_server, proxy.url)
        )
    key = info.value.key
    assert key is not None and key.endswith("zarr.json")  # the first document written
    check_message(info.value, url, key, "PUT", "403", "AccessDenied")


async def test_s3_server_error(s3_server: S3Server, proxy: ErrorProxy) -> None:
    proxy.rules.append(({"GET"}, r".", 500, S3_INTERNAL))
    url = s3_server.fresh_url()
    async with open_store(url, **_s3_options(s3_server, proxy.url)) as store:
        with pytest.raises(StoreError) as info:
            await store.get("a/zarr.json")
    check_message(info.value, url, "a/zarr.json", "HTTP 500", "InternalError", "after 1 retry")


async def test_s3_connection_refused(s3_server: S3Server) -> None:
    url = s3_server.fresh_url()
    options = _s3_options(s3_server, f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(StoreError) as info:
        await ngio_async.open_async(f"{url}/img.ome.zarr", **options)
    check_message(info.value, f"{url}/img.ome.zarr", "zarr.json", "could not connect")
    async with open_store(url, **options) as store:
        with pytest.raises(StoreError) as info:
            await store.put("k", b"v")
    check_message(info.value, url, "k", "PUT", "could not connect")
