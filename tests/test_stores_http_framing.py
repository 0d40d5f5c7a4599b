"""HTTP stores and how servers frame their answers: bodies without ``Content-Length``
(chunked), ``Connection: close``, HTTP/1.0 servers that ignore ``Range``, redirects."""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from servers import Faults, StaticServer

from ngio_async import StoreError, UnsupportedError
from ngio_async._limits import Limits
from ngio_async.stores import (
    AsyncStore,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BLOB = bytes(range(256)) * 4
KEY = "data/blob.bin"
FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=2, timeout=10)


@dataclass
class ChunkedServer(StaticServer):
    """A static server that sends GET bodies chunked (no ``Content-Length``) for paths
    ending in ``.bin``, as servers streaming a file do."""

    async def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        faults: Faults,
    ) -> web.StreamResponse:
        if request.method != "GET" or not request.path.endswith(".bin"):
            return await super()._send(request, status, body, headers, faults)
        resp = web.StreamResponse(status=status, headers={"Accept-Ranges": "bytes", **headers})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 300):
            await resp.write(body[start : start + 300])
        await resp.write_eof()
        return resp


@pytest.fixture
def chunked_server(http_root: Path) -> Iterator[ChunkedServer]:
    server = ChunkedServer(http_root).start()
    try:
        yield server
    finally:
        server.stop()


def _open(server: StaticServer | str, backend: str) -> AsyncStore:
    url = server if isinstance(server, str) else server.url
    if backend == "default":
        return open_store(url, limits=FAST)
    return open_store(url, limits=FAST, backend=backend)  # type: ignore[arg-type]


async def _reads(store: AsyncStore) -> None:
    assert bytes(await store.get(KEY) or b"") == BLOB
    assert bytes(await store.get(KEY, RangeByteRequest(10, 20)) or b"") == BLOB[10:20]
    assert bytes(await store.get(KEY, SuffixByteRequest(4)) or b"") == BLOB[-4:]
    assert bytes(await store.get(KEY, OffsetByteRequest(1000)) or b"") == BLOB[1000:]
    assert bytes(await store.get(KEY) or b"") == BLOB


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_chunked_bodies_after_plain_ones_are_read(
    chunked_server: ChunkedServer, backend: str
) -> None:
    """Metadata with a ``Content-Length``, chunks streamed chunked: once obstore's client had
    taken over (the second GET) every chunk failed with its 'Content-Length Header missing
    from response'; aiohttp reads them."""
    async with _open(chunked_server, backend) as store:
        for _ in range(2):
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        await _reads(store)


async def test_obstore_backend_names_the_way_out_of_a_chunked_body(
    chunked_server: ChunkedServer,
) -> None:
    async with _open(chunked_server, "obstore") as store:
        with pytest.raises(StoreError, match=r"cannot read.*Content-Length.*backend='aiohttp'"):
            await store.get(KEY)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """No access log on stderr."""


@pytest.fixture
def http10_server(http_root: Path) -> Iterator[str]:
    """Python's ``http.server``: HTTP/1.0, no ``Range`` support, a connection per request."""
    handler = functools.partial(_QuietHandler, directory=str(http_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_an_http_1_0_server_without_ranges(http10_server: str, backend: str) -> None:
    async with _open(http10_server, backend) as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        await _reads(store)
        assert await store.size(KEY) == len(BLOB)
        assert await store.get("data/none.bin") is None


@dataclass
class RedirectingFront(StaticServer):
    """A front that redirects every request to ``target`` (another server on 127.0.0.1)
    with ``code``; ``/loop/...`` redirects to itself."""

    target: str = ""
    code: int = 302

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if path.startswith("/loop/"):
            return web.Response(status=self.code, headers={"Location": request.path})
        location = self.target.rstrip("/") + request.path_qs
        return web.Response(status=self.code, headers={"Location": location})


@pytest.mark.parametrize("code", [301, 302, 307, 308])
@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_redirects_to_another_host_are_followed(
    http_server: StaticServer, backend: str, code: int
) -> None:
    front = RedirectingFront(http_server.root, target=http_server.url, code=code).start()
    try:
        async with _open(front, backend) as store:
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            await _reads(store)
            assert await store.size(KEY) == len(BLOB)
            assert await store.exists(KEY)
            assert await store.get("data/none.bin") is None
            with pytest.raises(StoreError, match="loop/x"):
                await store.get("loop/x")
        assert front.count("GET", "/loop/x") <= 12  # one request follows ~10; no retry
    finally:
        front.stop()


@dataclass
class BlockRangeServer(StaticServer):
    """A cache that answers a range with the ``block``-byte blocks holding it (a ``206`` of
    more than was asked for, with its honest ``Content-Range``); ``unknown_length``: the
    ``Content-Range`` gives no length (``bytes 10-19/*``, as RFC 9110 allows). Files not
    ending in ``.bin`` are served plainly."""

    block: int = 512
    unknown_length: bool = False

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        spec = request.headers.get("Range", "")
        file = self.root / path.lstrip("/")
        if not (request.method == "GET" and spec.startswith("bytes=") and path.endswith(".bin")):
            return await super()._answer(request, path, faults)
        data = file.read_bytes()
        first, _, last = spec[6:].partition("-")
        start = int(first) if first else max(0, len(data) - int(last))
        end = min(len(data), int(last) + 1 if first and last else len(data))
        block = self.block
        start, end = start // block * block, min(len(data), -(-end // block) * block)
        length = "*" if self.unknown_length else len(data)
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{length}"}
        return web.Response(status=206, body=data[start:end], headers=headers)


@pytest.mark.parametrize(("block", "unknown_length"), [(512, False), (1, True)])
async def test_a_206_wider_than_the_range_or_of_unknown_length_is_read(
    http_root: Path, block: int, unknown_length: bool
) -> None:
    """obstore's client refuses both ('Requested 10..20, got 0..512'; 'Failed to parse value
    for CONTENT_RANGE header: "bytes 10-19/*"'): once it had read an object there, every
    ranged read failed; aiohttp reads them (and cuts the range out)."""
    server = BlockRangeServer(http_root, block=block, unknown_length=unknown_length).start()
    try:
        async with _open(server, "default") as store:
            for _ in range(2):
                assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            await _reads(store)
            assert bytes(await store.get(KEY, RangeByteRequest(500, 600)) or b"") == BLOB[500:600]
    finally:
        server.stop()


@dataclass
class HangUpAfterServer(StaticServer):
    """A server that closes each connection after its answer: saying so (``Connection:
    close``) or silently (a keep-alive answer, then the socket closed under the pool)."""

    say_so: bool = True

    async def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        faults: Faults,
    ) -> web.StreamResponse:
        if self.say_so:
            headers = {**headers, "Connection": "close"}
        resp = web.StreamResponse(status=status, headers={"Accept-Ranges": "bytes", **headers})
        resp.content_length = len(body)
        await resp.prepare(request)
        if request.method != "HEAD":
            await resp.write(body)
        await resp.write_eof()
        if not self.say_so and request.transport is not None:
            request.transport.close()
        return resp


@pytest.mark.parametrize("say_so", [True, False])
@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_servers_closing_every_connection(
    http_root: Path, backend: str, say_so: bool
) -> None:
    server = HangUpAfterServer(http_root, say_so=say_so).start()
    try:
        async with _open(server, backend) as store:
            for _ in range(3):
                assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
                await _reads(store)
                assert await store.size(KEY) == len(BLOB)
    finally:
        server.stop()


@dataclass
class IsoDateServer(StaticServer):
    """A server that sends ``Last-Modified`` as an ISO 8601 date (not HTTP's) for the
    paths ending in ``.bin``."""

    async def _send(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: dict[str, str],
        faults: Faults,
    ) -> web.StreamResponse:
        if request.path.endswith(".bin"):
            headers = {**headers, "Last-Modified": "2024-01-01T00:00:00Z"}
        return await super()._send(request, status, body, headers, faults)


async def test_a_last_modified_not_in_http_date_format_is_read(http_root: Path) -> None:
    """obstore's client refuses the whole answer ('Invalid last modified'): once it had read
    an object there, every chunk failed; aiohttp reads it."""
    server = IsoDateServer(http_root).start()
    try:
        async with _open(server, "default") as store:
            for _ in range(2):
                assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            await _reads(store)
        async with _open(server, "obstore") as store:
            with pytest.raises(StoreError, match=r"cannot read.*last modified.*backend='aiohttp'"):
                await store.get(KEY)
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_a_range_past_the_end_is_one_416_and_an_error(
    http_server: StaticServer, backend: str
) -> None:
    async with _open(http_server, backend) as store:
        for _ in range(2):
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        http_server.reset()
        with pytest.raises(StoreError, match=r"416|past the end"):
            await store.get(KEY, RangeByteRequest(2000, 2100))
        assert http_server.count("GET") == 1  # not retried
        got = await store.get(KEY, RangeByteRequest(1000, 2000))
        assert bytes(got or b"") == BLOB[1000:]  # clamped at the end


async def test_obstore_backend_never_reads_a_suffix_the_server_ignored_as_missing(
    http_server: StaticServer,
) -> None:
    """A server ignoring ``Range`` and refusing HEAD: obstore's client took the 200 to a
    suffix range for 'not supported', asked a HEAD for the size, and read its 405 as a
    missing object: a shard's index read as missing, its pixels as fill values."""
    http_server.faults = Faults(ignore_range=True, no_head=True)
    async with _open(http_server, "obstore") as store:
        assert bytes(await store.get(KEY, SuffixByteRequest(4)) or b"") == BLOB[-4:]
        empty = await store.get("data/empty.bin", SuffixByteRequest(4))
        assert empty is not None and bytes(empty) == b""


@pytest.mark.parametrize("ignore_range", [False, True])
async def test_obstore_backend_tells_objects_from_missing_ones_without_head(
    http_server: StaticServer, ignore_range: bool
) -> None:
    """A server answering 405 to HEAD: obstore's client reads that as a missing object, so
    exists() was False, size() and version() None, for every object there."""
    http_server.faults = Faults(no_head=True, ignore_range=ignore_range)
    async with _open(http_server, "obstore") as store:
        assert await store.exists(KEY)
        assert await store.size(KEY) == len(BLOB)
        assert await store.version(KEY)
        assert await store.size("data/empty.bin") == 0
        assert not await store.exists("data/none.bin")
        assert await store.size("data/none.bin") is None
        assert await store.version("data/none.bin") is None


async def test_obstore_backend_refusing_a_server_that_ignores_ranges_names_the_way_out(
    http_server: StaticServer,
) -> None:
    http_server.faults = Faults(ignore_range=True)
    async with _open(http_server, "obstore") as store:
        with pytest.raises(UnsupportedError, match=r"ignores Range.*backend='aiohttp'"):
            await store.get(KEY, RangeByteRequest(10, 20))
