"""One aiohttp-backed HTTP store used from several event loops, one after another: the
session of a loop that ended (or of another thread's loop) is closed, sockets included."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from typing import TYPE_CHECKING

import psutil  # type: ignore[import-untyped]
import pytest

from ngio_async.stores import AsyncStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import StaticServer

KEY = "data/blob.bin"
BLOB = bytes(range(256)) * 4


def _open_connections(server: StaticServer) -> int:
    """This process's client sockets still connected to ``server``."""
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == server.port and conn.status == psutil.CONN_ESTABLISHED
    )


async def _read(store: AsyncStore) -> None:
    assert bytes(await store.get(KEY) or b"") == BLOB


@pytest.fixture
def no_warnings() -> Iterator[None]:
    """Fail on any warning, those emitted while objects are collected included."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
        gc.collect()
    assert [str(w.message) for w in seen] == []


def test_asyncio_run_twice_leaves_no_connection_open(
    http_server: StaticServer, no_warnings: None
) -> None:
    store = open_store(http_server.url, backend="aiohttp")
    asyncio.run(_read(store))
    assert _open_connections(http_server) == 0  # closed with the loop that used it
    asyncio.run(_read(store))
    assert _open_connections(http_server) == 0
    asyncio.run(store.aclose())
    assert http_server.count("GET") == 2


def test_a_loop_closed_without_cleanup_has_its_sockets_closed(
    http_server: StaticServer, no_warnings: None
) -> None:
    store = open_store(http_server.url, backend="aiohttp")
    first = asyncio.new_event_loop()
    first.run_until_complete(_read(store))
    first.close()  # no shutdown_asyncgens: the session is still open
    assert _open_connections(http_server) == 1
    second = asyncio.new_event_loop()
    try:
        second.run_until_complete(_read(store))  # drops the first loop's session
        assert _open_connections(http_server) == 1  # the second loop's own
        second.run_until_complete(store.aclose())
        assert _open_connections(http_server) == 0
    finally:
        second.close()


def test_a_session_of_a_running_loop_is_closed_on_that_loop(
    http_server: StaticServer, no_warnings: None
) -> None:
    store = open_store(http_server.url, backend="aiohttp")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(_read(store), loop).result(10)
        assert _open_connections(http_server) == 1
        asyncio.run(_read(store))  # closes the other loop's session there
        deadline = time.monotonic() + 10
        while _open_connections(http_server) and time.monotonic() < deadline:
            time.sleep(0.01)  # the close runs on the other thread's loop
        assert _open_connections(http_server) == 0
        asyncio.run(store.aclose())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
