"""The loopback test servers themselves (``tests/servers.py``): what they serve is what a real
static server would."""

from __future__ import annotations

import asyncio
import gc
import logging
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from servers import StaticServer


def test_static_server_decodes_a_path_once(http_root: Path, http_server: StaticServer) -> None:
    # the key a%20b (percent and all) is the URL path a%2520b; decoded twice it became "a b"
    (http_root / "a%20b").write_bytes(b"percent")
    (http_root / "a b").write_bytes(b"space")
    with urllib.request.urlopen(f"{http_server.url}a%2520b", timeout=10) as resp:
        assert resp.read() == b"percent"
    with urllib.request.urlopen(f"{http_server.url}a%20b", timeout=10) as resp:
        assert resp.read() == b"space"
    assert http_server.count("GET", "/a%20b") == 1
    assert http_server.count("GET", "/a b") == 1


def test_a_server_loops_garbage_is_kept_off_the_asyncio_log(
    http_server: StaticServer, caplog: pytest.LogCaptureFixture
) -> None:
    # a handler task of a client that hung up, waiting on a future only it holds, is collected
    # by a gc.collect() in a test: that is the server's garbage, not the library's
    loop = http_server._loop
    assert loop is not None

    async def orphan() -> None:
        await asyncio.get_running_loop().create_future()

    async def plant() -> None:
        asyncio.get_running_loop().create_task(orphan())
        await asyncio.sleep(0.01)  # the orphan runs to its await, then nothing holds it

    asyncio.run_coroutine_threadsafe(plant(), loop).result(10)
    caplog.set_level(logging.DEBUG)
    gc.collect()
    assert any("destroyed but it is pending" in m for m in http_server.loop_complaints)
    assert not [r for r in caplog.records if r.name == "asyncio"]
