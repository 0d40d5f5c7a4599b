"""The other write paths under concurrent writers in one process: partial writes of one shard
through two opens, two ``writer(pyramid=True)`` blocks, label images written with pyramids
through two opens, and display windows following the data. Steps ordered by holding one GET
(:class:`HeldStore`, fault injection), not by timing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from test_pyramid_concurrent import HeldStore, check_pyramid, location, until

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from ngio_async.images import Dataset


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


Write = Callable[["Dataset", int, slice, slice], Awaitable[None]]


async def _write(ds: Dataset, value: int, y: slice, x: slice) -> None:
    data = np.full((y.stop - y.start, x.stop - x.start), value)
    await ds.write(data, y=y, x=x, pyramid=ds.levels[-1] is not ds.levels[0])


async def _writer(ds: Dataset, value: int, y: slice, x: slice) -> None:
    async with ds.writer(pyramid=True, max_pending=2) as w:
        for row in range(y.start, y.stop, 8):  # tiles of 8 rows
            await w.write(((slice(row, row + 8), x), np.full((8, x.stop - x.start), value)))


async def race(a: Dataset, b: Dataset, store: HeldStore, write: Write, tile: str) -> None:
    """A writes 1 to the upper-left 16 x 16 pixels, B 2 to the lower-right ones; A's GET of
    ``store.key`` is held until B finished or waits for the lock of the stored key ``tile``;
    no write lock is left held after."""
    put = anyio.Event()
    base = store.release
    store.release = lambda: put.is_set() or users_of(store.url, tile) > 1 or base()

    async def write_b() -> None:
        await until(store.held.is_set)
        await write(b, 2, slice(16, 32), slice(16, 32))
        put.set()

    store.armed = True
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(write_b)
            await write(a, 1, slice(0, 16), slice(0, 16))
    assert store.held.is_set()
    for ds in (a, b):
        assert all(len(lvl._write_locks) == 0 for lvl in ds.levels)


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_partial_writes_of_one_shard_through_two_opens_keep_both(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # both read-modify-write the one shard; A's read is held until B wrote it or waits
    s3 = request.getfixturevalue("s3_server") if where == "s3" else None
    url, options = location(where, tmp_path, s3)
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(8, 8), shards=(32, 32), levels=1, **options
    ):
        pass
    store = HeldStore(open_store(url, **options), "0/c/0/0", lambda: False)
    async with (
        await ngio_async.open_async(store, mode="r+") as a,
        await ngio_async.open_async(open_store(url, **options), mode="r+") as b,
    ):
        await race(a, b, store, _write, "0/c/0/0")
        got = await b.levels[0][...]
    want = np.zeros((32, 32), dtype="uint16")
    want[:16, :16], want[16:, 16:] = 1, 2
    np.testing.assert_array_equal(got, want)


async def test_two_pyramid_writers_through_two_opens_end_like_level_0(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass
    store = HeldStore(open_store(url), "0/c/1/1", lambda: False)  # B's chunk, read by A
    async with (
        await ngio_async.open_async(store, mode="r+") as a,
        await ngio_async.open_async(open_store(url), mode="r+") as b,
    ):
        await race(a, b, store, _writer, "1/c/0/0")
        await check_pyramid(b)


async def test_label_pyramid_writes_through_two_opens_end_like_level_0(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ) as ds:
        await ds.labels.create("cells", dtype="uint8")
    store = HeldStore(open_store(url), "labels/cells/0/c/1/1", lambda: False)
    async with (
        await ngio_async.open_async(store, mode="r+") as a_image,
        await ngio_async.open_async(open_store(url), mode="r+") as b_image,
    ):
        a = await a_image.labels.open("cells", mode="r+")
        b = await b_image.labels.open("cells", mode="r+")
        await race(a, b, store, _write, "labels/cells/1/c/0/0")
        level0 = await b.levels[0][...]
        assert (level0[:16, :16] == 1).all() and (level0[16:, 16:] == 2).all()
        # labels downsample with the mode: a tile missing B's pixels keeps 0 there
        np.testing.assert_array_equal(await b.levels[1][...], level0[::2, ::2])
        await a.aclose()
        await b.aclose()


async def test_pyramid_writers_of_two_opens_alive_together_write_nothing_from_memory(
    tmp_path: Path,
) -> None:
    # overlapping writes through two opens: which level-0 write lands last is not known to
    # the cascades, so neither writes a lower-level object from its memory (A's memory copy
    # of a tile, written after B's, disagreed with level 0, which held B's pixels)
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass
    async with (
        await ngio_async.open_async(url, mode="r+") as a,
        await ngio_async.open_async(url, mode="r+") as b,
        a.writer(pyramid=True) as wa,
        b.writer(pyramid=True) as wb,
    ):
        assert wa.cascade is not None and wb.cascade is not None
        assert wa.cascade.shared and wb.cascade.shared
        whole = (slice(0, 32), slice(0, 32))
        await wa.write((whole, np.full((32, 32), 1)))
        await wb.write((whole, np.full((32, 32), 2)))
    assert wa.cascade.cascaded == wb.cascade.cascaded == 0
    async with await ngio_async.open_async(url) as again:
        await check_pyramid(again)


async def test_a_pyramid_writer_block_and_pyramid_writes_of_one_dataset_end_like_level_0(
    tmp_path: Path,
) -> None:
    # a writer(pyramid=True) block and write(pyramid=True) calls interleaved on one dataset,
    # their regions side by side under shared tiles of levels 1 and 2: no deadlock, and
    # every level ends equal to a rebuild from level 0
    store = InstrumentedStore(open_store(tmp_path / "img.zarr", mkdir=True), latency=0.002)
    async with ngio_async.create_async(
        store, shape=(64, 64), dtype="uint16", chunks=(8, 8), shards=False, levels=3
    ) as ds:

        async def block() -> None:
            async with ds.writer(pyramid=True, max_pending=4) as w:
                for row in range(0, 64, 8):
                    await w.write(((slice(row, row + 8), slice(0, 36)), np.full((8, 36), 7)))

        async def calls() -> None:
            for row in range(0, 64, 16):
                await ds.write(
                    np.full((16, 28), 300), y=slice(row, row + 16), x=slice(36, 64), pyramid=True
                )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(block)
                tg.start_soon(calls)
        assert all(len(lvl._write_locks) == 0 for lvl in ds.levels)
        await check_pyramid(ds)
