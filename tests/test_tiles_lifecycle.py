"""Tile streams and the lifetime of what runs them: dropped datasets, closed iterators."""

from __future__ import annotations

import asyncio
import gc
import itertools
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from ngio_async.images import Tile

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 40, 40), chunks=(1, 8, 8), levels=1)


async def settle(done: Callable[[], object]) -> None:
    """Let the loop run until ``done()`` holds (bounded: a few hundred checkpoints, then short
    sleeps for up to 5 s: a cancelled task may wait for a worker thread to finish its read)."""
    for i in range(1000):
        if done():
            return
        if i < 500:
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.sleep(0.01)


async def test_a_dropped_dataset_ends_the_task_of_its_bare_loops(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    before = asyncio.all_tasks()
    async with open_store(tmp_path) as store:
        ds = await ngio_async.open_async(store)
        n = 0
        async for _ in ds.tiles():
            n += 1
            if n == 3:
                break
        assert asyncio.all_tasks() - before  # the dataset's background task runs
        del ds
        gc.collect()  # the dataset is in a reference cycle (its labels)

        def left() -> set[asyncio.Task[object]]:
            return {t for t in asyncio.all_tasks() - before if not t.done()}

        await settle(lambda: not left())
        assert not left()  # was: its background task stayed until the loop ended


@pytest.mark.parametrize("form", ["bare", "with"])
async def test_a_cancelled_wait_for_a_tile_loses_no_tile(tmp_path: Path, form: str) -> None:
    datas = write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        stream = ds.tiles(prefetch=2)
        got: list[tuple[int, ...]] = []

        async def consume(it: AsyncIterator[Tile]) -> None:
            for attempt in itertools.count():
                with anyio.CancelScope() as scope:
                    if attempt % 2 == 0:
                        scope.cancel()  # a per-tile timeout that fires while waiting
                    try:
                        tile = await anext(it)
                    except StopAsyncIteration:
                        return
                    np.testing.assert_array_equal(tile.data, datas[0][tile.region])
                    got.append(tile.index)

        if form == "bare":
            await consume(aiter(stream))
        else:
            async with stream as tiles:
                await consume(tiles)
        # was: the first cancelled wait ended the stream, as if it were complete (0 tiles)
        assert got == [(c, y, x) for c in range(2) for y in range(5) for x in range(5)]


async def test_closing_the_dataset_under_a_bare_loop_says_so(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    ds = await ngio_async.open_async(tmp_path)

    async def close_on_the_second_tile() -> None:
        n = 0
        async for _ in ds.tiles(prefetch=1):
            n += 1
            if n == 2:
                await ds.aclose()

    # was: "the prefetch iterator was closed or its owner stopped" (internals)
    with pytest.raises(ngio_async.ClosedError, match="dataset was closed while its tiles"):
        await close_on_the_second_tile()
