"""``exists`` and ``size`` on a server without HEAD: the one-byte GET sent instead must not
download the object (a server that also ignores ``Range`` answers it with all of it)."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web
from servers import Faults, StaticServer

from ngio_async.stores import open_store

pytestmark = pytest.mark.anyio

TOTAL = 64 << 20
PIECE = 64 << 10


async def test_exists_without_head_does_not_download_a_whole_object() -> None:
    sent = 0
    ended = anyio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        if request.method == "HEAD":
            return web.Response(status=405)
        resp = web.StreamResponse(status=200, headers={"Content-Length": str(TOTAL)})
        try:
            await resp.prepare(request)
            piece = bytes(PIECE)
            while sent < TOTAL:
                await resp.write(piece)
                sent += PIECE
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what it did not want
        finally:
            ended.set()
        return resp

    app = web.Application()
    app.router.add_route("*", "/{key:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with open_store(f"http://127.0.0.1:{port}/", backend="aiohttp") as store:
            assert await store.exists("big.bin")
            with anyio.fail_after(30):
                await ended.wait()
    finally:
        await runner.cleanup()
    assert sent < TOTAL // 2


async def test_size_without_head_asks_for_one_byte(http_server: StaticServer) -> None:
    """A server without HEAD: the size comes from a one-byte GET's ``Content-Range`` (or a
    ``200``'s length), not from downloading the object (a remote TIFF of gigabytes)."""
    http_server.faults = Faults(no_head=True)
    async with open_store(http_server.url) as store:
        assert await store.size("data/blob.bin") == 1024
        assert await store.size("data/empty.bin") == 0
        assert await store.size("data/missing.bin") is None
        gets = [r.range for r in http_server.requests if r.method == "GET"]
        assert gets == ["bytes=0-0"] * 3
        http_server.faults = Faults(no_head=True, ignore_range=True)
        assert await store.size("data/blob.bin") == 1024
        http_server.faults = Faults(no_head=True, gzip_stored=True)
        assert await store.size("data/blob.bin") == 1024  # decoded: by a full GET
