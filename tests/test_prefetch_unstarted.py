"""A prefetch cut short by ``asyncio.run`` ending (a fire-and-forget read still in flight) leaves
no coroutine un-awaited: anyio creates a task's coroutine at ``start_soon``, and a task cancelled
before its first step never starts it."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

SCRIPT = """
import asyncio, sys
import anyio
import ngio_async
from ngio_async._prefetch import prefetch

async def fn(i):
    await anyio.sleep(10)

async def structured():
    async with prefetch(range(100), fn, window=8) as results:
        async for _ in results:
            pass

async def batched():
    async for _ in prefetch(range(100), fn, window=8):
        pass

async def owned():
    async with anyio.create_task_group() as tg:
        async for _ in prefetch(range(100), fn, window=8, owner=tg):
            pass

async def main(consume, steps):
    if consume is None:  # as a user would: the dataset left open, its read not awaited
        ds = await ngio_async.open_async(sys.argv[1])
        consume = ds.read
    asyncio.create_task(consume())
    for _ in range(steps):  # asyncio.run ends after each step of the engine's start
        await asyncio.sleep(0)

for consume in (structured, batched, owned, None):
    for steps in range(12):
        asyncio.run(main(consume, steps))
print("done")
"""


def test_a_prefetch_cut_by_the_end_of_asyncio_run_leaves_no_unawaited_coroutine(
    tmp_path: Path,
) -> None:
    image = tmp_path / "img.zarr"
    with ngio_async.create(image, shape=(64, 64), dtype="uint8", chunks=(8, 8), levels=1):
        pass
    out = subprocess.run(
        [sys.executable, "-W", "always", "-c", SCRIPT, str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
    assert "never awaited" not in out.stderr, out.stderr
