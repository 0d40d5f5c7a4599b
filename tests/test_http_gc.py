"""An HTTP store dropped unclosed in a reference cycle, then collected by the cyclic GC.

Its aiohttp session is closed (the server sees its connections end) and aiohttp never warns
"Unclosed client session" / "Unclosed connector": neither while the store's loop runs (the GC
collects the store with its loop-end guard, whose finalizer has the session closed on the loop)
nor after that loop closed without finalizing its async generators. A child forked while the
parent's session is open reads with the store and drops it without harm to the parent.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from processes import run_in_fork

from ngio_async.stores import AsyncStore, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from servers import StaticServer

KEY = "data/blob.bin"


@pytest.fixture(params=["default", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> str:
    """``default``: HTTPStore with GETs on obstore's client (HEADs and the first GET on
    aiohttp); ``aiohttp``: aiohttp alone."""
    return str(request.param)


async def _used_in_a_cycle(server: StaticServer, backend: str) -> AsyncStore:
    """A store whose aiohttp session holds a pooled connection, left in a reference cycle."""
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    store = open_store(server.url, **options)
    assert await store.get(KEY) is not None  # the aiohttp session exists, with a connection
    assert await store.get(KEY) is not None  # default: by obstore's client
    assert await store.exists(KEY)
    store.cycle = store  # type: ignore[attr-defined]
    return store


class _Complaints:
    """What aiohttp reports about unclosed objects: warnings and loop exception handler calls."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.messages.append(str(context.get("message")))

    @contextmanager
    def recording(self) -> Iterator[None]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                self.messages += [str(w.message) for w in seen if "nclosed" in str(w.message)]


def _connections(server: StaticServer) -> int:
    """The server's open connections, once they closed (or after 5 s: then still open)."""
    runner = server._runner
    assert runner is not None and runner.server is not None
    deadline = time.monotonic() + 5
    while runner.server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(runner.server.connections)


def _collect(store: list[AsyncStore]) -> None:
    store.clear()
    gc.collect()


@pytest.mark.parametrize("then", ["runs on", "ends at once"])
def test_collected_while_its_loop_runs(http_server: StaticServer, backend: str, then: str) -> None:
    complaints = _Complaints()

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(complaints.handler)
        with complaints.recording():
            _collect([await _used_in_a_cycle(http_server, backend)])
            if then == "runs on":  # the guard closes the session on this loop
                for _ in range(20):
                    await asyncio.sleep(0)

    asyncio.run(main())
    with complaints.recording():
        gc.collect()
    assert complaints.messages == []
    assert _connections(http_server) == 0


def test_collected_after_its_loop_closed(http_server: StaticServer, backend: str) -> None:
    """The loop closed without ``shutdown_asyncgens``: the guard was never finalized."""
    complaints = _Complaints()
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(complaints.handler)
    try:
        stores = [loop.run_until_complete(_used_in_a_cycle(http_server, backend))]
    finally:
        loop.close()
    with complaints.recording():
        _collect(stores)
    assert complaints.messages == []
    assert _connections(http_server) == 0


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(30)
def test_a_forked_child_reads_and_drops_the_parents_store(
    http_server: StaticServer, backend: str
) -> None:
    """The child closes only its copies of the parent's connections (the parent reads on), and
    reads through aiohttp (obstore's runtime does not survive fork: its client would hang)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        def call(make: Callable[[], Awaitable[Any]]) -> Any:
            async def run() -> Any:
                return await make()

            return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

        store = call(lambda: _used_in_a_cycle(http_server, backend))  # the parent's, in use

        def child() -> None:
            complaints = _Complaints()
            with complaints.recording():
                got = asyncio.run(store.get(KEY))
                _collect([store])
            assert got is not None
            assert complaints.messages == []

        run_in_fork(child)
        assert call(lambda: store.get(KEY)) is not None  # the parent's store reads on
        call(store.aclose)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
