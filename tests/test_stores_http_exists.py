"""``exists`` on a server without HEAD that also ignores ``Range``: the one-byte GET it sends
instead is answered with the whole object, which must not be downloaded to learn that it
exists."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

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
