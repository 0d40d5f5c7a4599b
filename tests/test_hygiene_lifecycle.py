"""Hygiene: a long-running process opens, reads, cancels and closes datasets over and over.

File descriptors, tasks and non-worker threads come back to where they were; datasets sharing one
store stay within its ``Limits.max_requests`` together; reads and tile loops cancelled at random
points leave the dataset usable and nothing running.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 64, 64), chunks=(1, 16, 16), levels=2)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    """Threads other than the shared worker pool's (those end after being idle a while)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("ngio-worker"))


def _tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if not t.done()}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_open_read_break_close_many_times_leaves_nothing_behind(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)

    async def once() -> None:
        async with ngio_async.open_async(str(tmp_path)) as ds:
            await ds.read(level=1)
            async for _ in ds.tiles():
                break

    await once()  # imports, the worker pool, malloc tuning
    fds, threads, tasks = _fds(), _threads(), _tasks()
    for _ in range(100):
        await once()
    assert (_fds(), _threads(), _tasks()) == (fds, threads, tasks)


async def test_datasets_sharing_a_store_share_its_request_bound(tmp_path: Path) -> None:
    for name in "abcd":
        write_image(tmp_path / name, SPEC)
    limits = ngio_async.Limits(max_requests=3)
    async with InstrumentedStore(open_store(tmp_path, limits=limits), latency=0.002) as store:
        datasets = [await ngio_async.open_async(store, path=name) for name in "abcd"]

        async def stream(ds: ngio_async.images.Dataset) -> None:
            async for _ in ds.tiles():
                pass

        async with anyio.create_task_group() as tg:
            for ds in datasets:
                tg.start_soon(ds.read)
                tg.start_soon(stream, ds)
        for ds in datasets:
            await ds.aclose()
    assert 1 < store.peak_in_flight <= 3


async def test_reads_and_tile_loops_cancelled_at_random_points(tmp_path: Path) -> None:
    (data, _) = write_image(tmp_path, SPEC)
    rng = random.Random(0)
    tasks = _tasks()
    async with ngio_async.open_async(str(tmp_path)) as ds:
        for _ in range(60):
            with anyio.move_on_after(rng.uniform(0, 0.004)):
                match rng.randrange(3):
                    case 0:
                        await ds.read()
                    case 1:
                        async for _ in ds.tiles(ordered=False, overlap=2):
                            pass
                    case _:
                        async with ds.tiles() as tiles:
                            async for _ in tiles:
                                pass
        assert np.array_equal(await ds.read(), data)
    await anyio.lowlevel.checkpoint()
    assert _tasks() == tasks
