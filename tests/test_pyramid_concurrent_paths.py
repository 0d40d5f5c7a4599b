"""The other write paths under concurrent writers in one process: partial writes of one shard
through two opens, two ``writer(pyramid=True)`` blocks, label images written with pyramids
through two opens, and display windows following the data. Steps ordered by holding one GET
(:class:`HeldStore`, fault injection), not by timing."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from test_pyramid_concurrent import HeldStore, check_pyramid, until

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


pytestmark = pytest.mark.anyio


def users_of(store_url: str, key: str) -> int:
    """Holders and waiters of the lock ``key`` shared by the opens of the store's images."""
    from ngio_async.images._write import KeyLocks

    return KeyLocks(store_url)._locks.get(key, (None, 0))[1]


async def test_windows_following_the_data_see_both_writes(tmp_path: Path) -> None:
    # A's windows scan of the lowest level ran before B's pixels reached it, and A's channel
    # window was written after B's: the window missed B's values
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url,
        shape=(1, 32, 32),
        dtype="uint16",
        axes="cyx",
        chunks=(1, 16, 16),
        shards=False,
        levels=2,
        channels=["a"],
    ):
        pass
    puts: list[str] = []

    def waiting() -> bool:  # B's window update waits for A's
        return users_of(store.url, "#windows") > 1

    class Store(HeldStore):
        @asynccontextmanager
        async def _track(self, method: str, key: str) -> AsyncIterator[None]:
            async with super()._track(method, key):
                yield
            if method == "put":
                puts.append(key)

    # A's scan held until B wrote its window (or, serialised, waits for A's)
    store = Store(open_store(url), "1/c/0/0/0", lambda: "zarr.json" in puts or waiting())
    async with await ngio_async.open_async(store, mode="r+") as ds:
        await ds.set_channels(windows="auto")  # follows the data from now on
        puts.clear()

        async def write_b() -> None:
            await until(store.held.is_set)  # A's scan of the lowest level read it
            await ds.write(
                np.full((1, 16, 16), 200), y=slice(16, 32), x=slice(16, 32), pyramid=True
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_b)
                store.armed = True
                await ds.write(
                    np.full((1, 16, 16), 100), y=slice(0, 16), x=slice(0, 16), pyramid=True
                )
        assert store.held.is_set()
        await check_pyramid(ds)
    with ngio_async.open(url) as again:
        omero = again.metadata.ome.omero
        assert omero is not None and omero.channels[0].window is not None
        window = omero.channels[0].window
        assert (window.start, window.end) == (0, 200)  # A's scan alone saw 0..100
