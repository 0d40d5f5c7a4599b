"""A batch of GETs (``get_many`` on obstore's clients) that stops early, one request past its
``Limits.timeout`` say, leaves only the objects it had no answer for to be fetched again one by
one: those it answered (in flight at the time, and ended) are not asked for twice."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest
from aiohttp import web

from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

KEYS = [f"c/{i}" for i in range(8)]
SLOW = "c/2"  # its first GET is answered only after the batch gave up on it
OBJECTS = {key: f"{key} ".encode() * (i + 1) for i, key in enumerate(KEYS) if key != "c/5"}
LIMITS = Limits(max_requests=16, timeout=0.3, max_retries=0)


class Server:
    """An aiohttp server on 127.0.0.1 serving ``OBJECTS`` (``c/5``: 404); the first GET of
    ``SLOW`` waits until the client went away (or the test ends). Counts GETs per key."""

    def __init__(self) -> None:
        self.gets: Counter[str] = Counter()
        self.url = ""
        self.release = anyio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        if request.method == "GET":
            self.gets[key] += 1
            if key == SLOW and self.gets[key] == 1:
                with anyio.move_on_after(10):
                    await self.release.wait()
        data = OBJECTS.get(key)
        if data is None:
            raise web.HTTPNotFound()
        headers = {"ETag": f'"{len(data)}"', "Accept-Ranges": "bytes"}
        asked = request.headers.get("Range", "")
        if not asked.startswith("bytes=") or request.method != "GET":
            return web.Response(body=data, headers=headers)
        first, _, last = asked[6:].partition("-")  # (the ranges obstore and aiohttp send)
        if not first:
            start, stop = max(0, len(data) - int(last)), len(data)
        else:
            start, stop = int(first), min(len(data), int(last) + 1 if last else len(data))
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        return web.Response(status=206, body=data[start:stop], headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{key:.+}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    srv.url = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        srv.release.set()
        await runner.cleanup()


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_only_the_unanswered_keys_are_fetched_again(server: Server, backend: str) -> None:
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(server.url, limits=LIMITS, **kwargs) as store:  # type: ignore[arg-type]
        await store.get(KEYS[0])  # the default HTTP store's first GET is aiohttp's
        assert store.gets_together
        server.gets.clear()
        got = await store.get_many(KEYS)
        batch = Counter(server.gets)
        assert store.limiter.borrowed_tokens == 0  # every request's token given back
        server.release.set()
        # the answer is the plain path's: one get each
        plain = [await store.get(key) for key in KEYS]
    assert [None if g is None else bytes(g) for g in got] == [
        None if p is None else bytes(p) for p in plain
    ]
    assert [None if g is None else bytes(g) for g in got] == [OBJECTS.get(k) for k in KEYS]
    # one GET each, and the one that ran out of time asked again (not the whole batch)
    assert batch == Counter({key: 1 + (key == SLOW) for key in KEYS})
