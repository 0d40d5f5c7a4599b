"""Soak: the tile server under many tile requests, clients hanging up mid-request, and an image
rewritten on disk meanwhile.

Three images (local, HTTP, a bioformats2raw container whose images are opened on first use,
at most one kept open): after a warm-up, the process's file descriptors and asyncio tasks do
not grow, Python memory per request is bounded and the container keeps at most one image open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import shutil
import tracemalloc
from typing import TYPE_CHECKING

import anyio
import pytest
from images import Spec, write_image
from test_obstore_close import _connected
from test_validate_bf2raw import container
from webapp import running

import ngio_async
from ngio_async.web import create_app
from ngio_async.web._app import STATE

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp
    from servers import StaticServer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd"),
]
SPEC = Spec(version="0.5", shape=(2, 256, 256), chunks=(1, 64, 64), levels=2)
NAMES = ["a", "b", "c/0", "c/1", "c/2"]
#: measured 0.09 KB per request over 2,000 (172 KB in all, anyio's worker threads' last
#: results among them); an entry left open per request would be several KB
PER_REQUEST = 2 * 1024


def _fds(*ports: int) -> int:
    """This process's fds but the sockets to or from ``ports`` (both ends, as the servers run
    here): the test client's keep-alive pool to the app and the app's to the HTTP server
    grow with the bursts' concurrency (the latter is bounded below)."""
    sockets = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            sockets[fd] = target[8:-1] if target.startswith("socket:[") else None
    ours = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                ends = {int(fields[i].rsplit(":", 1)[1], 16) for i in (1, 2)}
                if ends & set(ports):
                    ours.add(fields[9])
    return sum(1 for inode in sockets.values() if inode not in ours)


def _tasks() -> int:
    return sum(1 for t in asyncio.all_tasks() if not t.done())


def _python_bytes() -> int:
    ignored = (
        "*/tests/servers.py",
        "*/aiohttp/client*",
        "*/aiohttp/connector.py",
        "*/tracemalloc.py",
    )
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, pattern, all_frames=True) for pattern in ignored]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


def _rewrite(root: Path, source: Path) -> None:
    """Replace image ``a``'s level-0 chunks with ``source``'s, each renamed over the old."""
    for path in (source / "0" / "c").rglob("*"):
        if path.is_file():
            target = root / "a" / path.relative_to(source)
            shutil.copyfile(path, f"{target}.tmp")
            os.replace(f"{target}.tmp", target)


async def _request(http: aiohttp.ClientSession, port: int, rng: random.Random, i: int) -> None:
    name = rng.choice(NAMES)
    level = rng.randrange(2) if name in "ab" else 0
    tiles = (256 >> level) // 64 if name in "ab" else 1
    url = (
        f"/api/datasets/{name}/tiles/{level}/0/0/{rng.randrange(tiles)}/{rng.randrange(tiles)}.png"
    )
    if i % 10 == 7:  # the client hangs up before the answer
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(rng.uniform(0, 0.003))
        writer.close()
        return
    async with http.get(url) as resp:
        assert resp.status == 200, await resp.text()
        if i % 10 == 8:  # ... or after the first bytes
            await resp.content.read(10)
            resp.close()
        else:
            await resp.read()


async def test_many_tile_requests_leave_nothing_behind(
    tmp_path: Path, http_server: StaticServer, http_root: Path
) -> None:
    write_image(tmp_path / "a", SPEC)
    write_image(tmp_path / "a0", SPEC)  # the same again, and other pixels
    write_image(tmp_path / "a2", Spec(**{**SPEC.__dict__, "seed": 5}))
    write_image(http_root / "b", SPEC)
    bf2raw = container(tmp_path, "0.5", ("0", "1", "2"))
    sources = {"a": str(tmp_path / "a"), "b": f"{http_server.url}b", "c": str(bf2raw)}
    app = create_app(sources, tile_size=64, max_open_fields=1)
    rng = random.Random(0)
    async with running(app) as (http, port):

        async def burst(first: int) -> None:
            async with anyio.create_task_group() as tg:
                for i in range(first, first + 20):
                    tg.start_soon(_request, http, port, rng, i)

        for first in range(0, 100, 20):
            await burst(first)
        gc.collect()
        fds, tasks = _fds(port, http_server.port), _tasks()
        tracemalloc.start(1)
        start = _python_bytes()
        n = 600
        for first in range(0, n, 20):
            await burst(first)
            if first % 200 == 0:
                _rewrite(tmp_path, tmp_path / ("a2" if first % 400 == 0 else "a0"))
            assert len(app[STATE].open_fields) <= 1
        gc.collect()
        grown = (_python_bytes() - start) / n
        tracemalloc.stop()
        ends = (port, http_server.port)
        for _ in range(500):  # hung-up connections closing on the server side
            if _fds(*ends) <= fds and _tasks() <= tasks:
                break
            await anyio.sleep(0.01)
        assert _fds(*ends) <= fds and _tasks() <= tasks, (fds, tasks, _fds(*ends), _tasks())
        # the app's connections to the HTTP image: its store's pool, within its request bound
        assert 0 < _connected(http_server.port) <= ngio_async.Limits().max_requests
        assert grown < PER_REQUEST, f"{grown / 1024:.2f} KB per request"
