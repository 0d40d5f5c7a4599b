"""A conditional put (``put_if_absent``) whose answer is lost after the server stored it is not
resent: a resend finds the object it stored itself and answers "exists", which a create takes
for another writer's claim. Moto on 127.0.0.1 behind a proxy that drops the connection after
forwarding the first conditional PUT."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web
from servers import keep_loop_complaints

from ngio_async import Limits, StoreError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server


@dataclass
class DropAfterPut:
    """Forward to ``upstream``; the first PUT with ``If-None-Match`` reaches it, then the
    client's connection is closed without an answer."""

    upstream: str
    conditional_puts: int = 0
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        skip = {"host", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body
            ) as answer,
        ):
            data = await answer.read()
            if request.method == "PUT" and "If-None-Match" in request.headers:
                self.conditional_puts += 1
                if self.conditional_puts == 1:
                    assert request.transport is not None
                    request.transport.close()  # stored upstream; the answer is lost
                    return web.Response(status=500)
            drop = {"content-length", "transfer-encoding", "content-encoding", "connection"}
            out = {k: v for k, v in answer.headers.items() if k.lower() not in drop}
            return web.Response(status=answer.status, body=data, headers=out)

    def run(self) -> Iterator[str]:
        ready = threading.Event()
        runner: list[web.AppRunner] = []
        keep_loop_complaints(self._loop)

        async def start() -> None:
            app = web.Application()
            app.router.add_route("*", "/{path:.*}", self._handle)
            runner.append(web.AppRunner(app, access_log=None))
            await runner[0].setup()
            site = web.TCPSite(runner[0], "127.0.0.1", 0)
            await site.start()
            self.port = runner[0].addresses[0][1]

        def serve() -> None:
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner[0].cleanup())
            self._loop.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        assert ready.wait(10)
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            thread.join(10)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[tuple[DropAfterPut, str]]:
    dropper = DropAfterPut(s3_server.endpoint)
    for endpoint in dropper.run():
        yield dropper, endpoint


async def test_a_conditional_put_with_a_lost_answer_is_not_resent(
    s3_server: S3Server, proxy: tuple[DropAfterPut, str]
) -> None:
    dropper, endpoint = proxy
    options = {**s3_server.options(), "endpoint": endpoint}
    limits = Limits(max_retries=3, backoff_base=0.01, timeout=10)
    async with open_store(s3_server.fresh_url(), limits=limits, **options) as store:
        with pytest.raises(StoreError):  # unknown outcome: said so, not "someone else's"
            await store.put_if_absent("claim.json", b"mine")
        assert dropper.conditional_puts == 1  # not resent by obstore
        assert await store.get("claim.json") == b"mine"  # it did land
        assert await store.put_if_absent("claim.json", b"other") is False  # truly exists now
        await store.put("plain.json", b"x")  # plain puts keep their retries
        assert await store.get("plain.json") == b"x"
