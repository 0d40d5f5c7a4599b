"""Work cut short by the end of its event loop leaves no "coroutine ... was never awaited", no
unclosed stream and no pending task behind.

anyio's ``start_soon`` makes a task's coroutine at once; ``asyncio.run`` ending (a fire-and-forget
task still reading) cancels every task the asyncio way, and one cancelled before its first step
never awaits that coroutine. Each script below ends the loop right after the n-th task a job
starts, for every n until the job finishes: every ``start_soon`` on the job's path is cut once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
from servers import StaticServer

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

HARNESS = """
import asyncio, gc, sys
import numpy as np
import ngio_async

def cut(job, n):
    '''Run ``job`` until it has started ``n`` tasks, then end the loop as ``asyncio.run`` does
    once its main coroutine returns (the tasks left are cancelled before their next step);
    ``False`` if ``job`` ended first.'''
    started = 0
    running = True  # the loop's own shutdown (closing what was left open) is not cut

    def factory(loop, coro, **kw):
        nonlocal started
        task = asyncio.Task(coro, loop=loop, **kw)
        started += running
        if running and started == n:
            loop.stop()
        return task

    async def main():
        nonlocal running
        asyncio.get_running_loop().set_task_factory(factory)
        try:
            await job()
        finally:
            running = False

    try:
        asyncio.run(main())
    except RuntimeError as exc:
        assert "stopped before" in str(exc), exc
        return True
    finally:
        gc.collect()
    return False

def sweep(*jobs):
    gc.freeze()  # the imports: each collection looks at the new objects only
    for job in jobs:
        n = 1
        while cut(job, n):
            n += 1
        print(job.__name__, n - 1)
    print("done")

root = sys.argv[1]
"""

LIBRARY = """
from ngio_async.stores import open_store

async def opened():
    async with ngio_async.open_async(f"{root}/img.zarr") as ds:
        await ds.read(level=1)

async def streamed():
    async with ngio_async.open_async(f"{root}/img.zarr") as ds:
        await ngio_async.stream(ds.tiles(), np.sum)

async def ranges():
    async with open_store(root) as store:
        await store.get_ranges("blob", [(0, 10), (300_000, 300_010), (600_000, 600_010)])

async def deleted():
    async with open_store("memory://") as store:
        for i in range(3):
            await store.put(f"k{i}", b"x")
        store.delete_batch = 1
        await store.delete_many([f"k{i}" for i in range(3)])

sweep(opened, streamed, ranges, deleted)
"""

CLI = """
from ngio_async.cli._info import gather_info
from ngio_async.cli._validate import validate_hierarchy

async def info():
    await gather_info(f"{root}/plate.zarr")

async def validated():
    await validate_hierarchy(f"{root}/plate.zarr")

sweep(info, validated)
"""

REMOTE = """
from ngio_async.cli._info import gather_info
from ngio_async.cli._validate import validate_hierarchy

url = sys.argv[2]

def jobs(backend):  # EarlyGet.run aside, these passed before c11b147: a guard, not a repro
    async def opened():
        async with ngio_async.open_async(url + "img.zarr", backend=backend) as ds:
            async for _ in ds.tiles():
                pass

    async def left_open():  # as a script may: asyncio.run closes what the store holds
        ds = await ngio_async.open_async(url + "img.zarr", backend=backend)
        await ds.read(level=1)

    async def info():
        await gather_info(url + "plate.zarr", backend=backend)

    async def validated():
        await validate_hierarchy(url + "plate.zarr", backend=backend)

    return opened, left_open, info, validated

sweep(*jobs("aiohttp"))  # the pooled session: the client that can be left unclosed
"""

OTHERS = """
from ngio_async.stores import open_store
from ngio_async.stores._instrumented import InstrumentedStore

async def remote_open():  # a store without blocking reads is opened as a remote one is
    async with InstrumentedStore(open_store(root)) as store:
        async with ngio_async.open_async(store, path="img.zarr") as ds:
            await ds.read(level=1)

async def picked():
    async with ngio_async.open_async(f"{root}/img.zarr") as ds:
        await ds.read(c=[0, 1])

async def remote_tiles():  # tiles smaller than a shard: runs of tiles, shard indexes ahead
    async with InstrumentedStore(open_store(root)) as store:
        async with ngio_async.open_async(store, path="sharded.zarr") as ds:
            async for _ in ds.tiles(shape=(128, 128)):
                pass

async def converted():
    await ngio_async.convert(f"{root}/img.zarr", f"{root}/converted.zarr", overwrite=True)

sweep(remote_open, picked, remote_tiles, converted)
"""

WEB = """
import aiohttp
from ngio_async.web import create_app, serve

async def tile():  # a tile of two channels and a label image, then the server's shutdown
    ready = asyncio.Event()
    urls = []
    app = create_app({"img": f"{root}/img.zarr", "plate": f"{root}/plate.zarr"})
    server = asyncio.create_task(serve(app, port=0, on_ready=lambda u: (urls.append(u), ready.set())))
    await ready.wait()
    async with aiohttp.ClientSession() as session:
        path = "api/datasets/img/tiles/0/0/0/0/0.png?c=0,1&labels=cells"
        async with session.get(urls[0] + path) as response:
            assert response.status == 200, await response.text()
            await response.read()
    server.cancel()
    await asyncio.gather(server, return_exceptions=True)

sweep(tile)
"""

LEFT_BEHIND = (
    "never awaited",
    "Unclosed",
    "unclosed",
    "Task was destroyed",
    "Event loop is closed",
    "Traceback",
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image of 3 levels with a label image, a plate of two wells, a row of two shards,
    a 700 kB object."""
    root = tmp_path_factory.mktemp("cut")
    with ngio_async.create(
        root / "img.zarr",
        shape=(2, 64, 64),
        dtype="uint8",
        axes="cyx",
        chunks=(1, 16, 16),
        levels=3,
    ) as ds:
        ds.labels.create("cells", dtype="uint32")
    with ngio_async.create_plate(root / "plate.zarr", rows=["A"], columns=["1", "2"]) as plate:
        for column in ("1", "2"):
            with plate.add_image("A", column, field="0", shape=(16, 16), dtype="uint8", levels=2):
                pass
    with ngio_async.create(
        root / "sharded.zarr", shape=(256, 512), dtype="uint8", chunks=(32, 32), shards=(256, 256)
    ) as ds:
        ds.write(np.ones((256, 512), "uint8"))
    (root / "blob").write_bytes(os.urandom(700_000))
    return root


def _run_cut(script: str, root: Path, *, allowed: str = "", url: str = "") -> str:
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", HARNESS + script, str(root), url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.endswith("done\n"), out.stdout + out.stderr
    left = [
        line
        for line in out.stderr.splitlines()
        if any(s in line for s in LEFT_BEHIND) and not (allowed and allowed in line)
    ]
    assert not left, out.stderr
    return out.stdout


def test_open_read_stream_and_store_requests_cut_at_every_task_leave_nothing_behind(
    root: Path,
) -> None:
    out = _run_cut(LIBRARY, root)
    # every job started tasks (so was cut at least once): the sweep is not vacuous
    assert all(int(line.split()[1]) > 0 for line in out.splitlines()[:-1]), out


def test_cli_info_and_validate_cut_at_every_task_leave_nothing_behind(root: Path) -> None:
    out = _run_cut(CLI, root)
    assert all(int(line.split()[1]) > 0 for line in out.splitlines()[:-1]), out


def test_a_tile_request_and_the_server_cut_at_every_task_leave_nothing_behind(root: Path) -> None:
    # asyncio's own: a connection accepted by the server whose protocol task never ran
    out = _run_cut(WEB, root, allowed="ResourceWarning: unclosed <socket.socket")
    assert int(out.split()[1]) > 0, out


def test_http_reads_and_cli_cut_at_every_task_leave_no_session_or_task_behind(root: Path) -> None:
    server = StaticServer(root).start()
    try:
        out = _run_cut(REMOTE, root, url=server.url)
    finally:
        server.stop()
    assert all(int(line.split()[1]) > 0 for line in out.splitlines()[:-1]), out


@pytest.fixture(scope="module")
def others(root: Path) -> str:
    """What a sweep over paths with ``start_soon`` in other modules leaves on stderr."""
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", HARNESS + OTHERS, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.endswith("done\n"), out.stdout + out.stderr
    return out.stderr


def _unawaited(stderr: str, *names: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "never awaited" in line and any(f"'{name}'" in line for name in names)
    ]


def test_dataset_tasks_cut_short_leave_no_unawaited_coroutine(others: str) -> None:
    assert not _unawaited(
        others, "EarlyGet.run", "Dataset.read.<locals>.one", "Level.load_index"
    ), others


def test_level_decode_tasks_cut_short_leave_no_unawaited_coroutine(others: str) -> None:
    assert not _unawaited(others, "Workers.run"), others


def test_writer_tasks_cut_short_leave_no_unawaited_coroutine(others: str) -> None:
    assert not _unawaited(others, "LevelWriter._one"), others
