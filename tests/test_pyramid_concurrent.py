"""Concurrent ``write(..., pyramid=True)`` calls through two opens of one image (local files,
moto S3): a lower-level tile both writes share ends equal to the pyramid rebuilt from level 0,
whichever rebuild reads level 0 first. The steps are ordered by a store wrapper that holds
writer A's read of level 0 (fault injection), not by timing."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import Limits, StoreError
from ngio_async.engine.pyramid import downsample
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from servers import S3Server

    from ngio_async.images import Dataset

pytestmark = pytest.mark.anyio


class HeldStore(InstrumentedStore):
    """Holds the first finished GET of ``key`` (any kind) until ``release()`` says so (at
    most 10 s: then it goes on, and the test's assertions tell); ``held`` is set then."""

    def __init__(self, inner: Any, key: str, release: Callable[[], bool]) -> None:
        super().__init__(inner)
        self.key = key
        self.release = release
        self.held = threading.Event()  # (set in the loop, waited for in tasks or threads)
        self.armed = False

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if self.armed and method == "get" and key == self.key:
            self.armed = False
            self.held.set()
            with anyio.move_on_after(10):
                while not self.release():  # noqa: ASYNC110 - polls the other writer's state
                    await anyio.sleep(0.005)


async def until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(30):
        while not condition():  # noqa: ASYNC110 - polls a flag set in the loop or a thread
            await anyio.sleep(0.005)


def location(where: str, tmp_path: Path, s3_server: S3Server | None) -> tuple[str, dict[str, Any]]:
    if where == "local":
        return str(tmp_path / "img.zarr"), {}
    assert s3_server is not None
    return s3_server.fresh_url(), s3_server.options()


def pyramid_of(level0: np.ndarray[Any, Any], levels: int) -> list[np.ndarray[Any, Any]]:
    out = [level0]
    for _ in range(levels - 1):
        out.append(downsample(out[-1], (1,) * (level0.ndim - 2) + (2, 2), "mean"))
    return out


async def check_pyramid(ds: Dataset) -> None:
    """Every level equals the pyramid built from level 0 from scratch."""
    level0 = await ds.levels[0][...]
    for i, want in enumerate(pyramid_of(level0, len(ds.levels))):
        np.testing.assert_array_equal(await ds.levels[i][...], want, err_msg=f"level {i}")


def users(ds: Dataset, level: int, key: str) -> int:
    """Holders and waiters of the write lock of ``key`` as ``ds``'s level sees it."""
    locks: dict[str, tuple[Any, int]] = ds.levels[level]._write_locks._locks
    return locks.get(key, (None, 0))[1]


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_two_opens_rebuilding_one_tile_end_like_level_0(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # A and B write neighbouring level-0 chunks sharing the one level-1 tile. A's rebuild of
    # that tile reads level 0 (B's chunk still absent), then B writes its chunk and rebuilds
    # the tile; A's rebuild, written last, left the tile without B's pixels
    s3 = request.getfixturevalue("s3_server") if where == "s3" else None
    url, options = location(where, tmp_path, s3)
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2, **options
    ):
        pass
    b_put = anyio.Event()

    class Counted(InstrumentedStore):
        async def _put_once(self, key: str, data: Any, *, if_absent: bool) -> bool:
            done = await super()._put_once(key, data, if_absent=if_absent)
            if key == "1/c/0/0":
                b_put.set()
            return done

    b_store = Counted(open_store(url, **options))
    a_store = HeldStore(
        open_store(url, **options),
        "0/c/1/1",  # B's chunk: A's rebuild reads it before B writes it
        lambda: b_put.is_set() or users(b, 1, "1/c/0/0") > 1,  # B wrote the tile, or waits
    )
    async with (
        await ngio_async.open_async(a_store, mode="r+") as a,
        await ngio_async.open_async(b_store, mode="r+") as b,
    ):

        async def write_b() -> None:
            await until(a_store.held.is_set)
            await b.write(np.full((16, 16), 2), y=slice(16, 32), x=slice(16, 32), pyramid=True)

        a_store.armed = True
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_b)
                await a.write(np.full((16, 16), 1), y=slice(0, 16), x=slice(0, 16), pyramid=True)
        assert a_store.held.is_set()  # the steps ran in the order meant
        await check_pyramid(b)
        tile = await b.levels[1][...]
        assert (tile[8:, 8:] == 2).all() and (tile[:8, :8] == 1).all()


@pytest.mark.parametrize("opens", [1, 2])
async def test_rebuilds_of_different_tiles_run_together(opens: int, tmp_path: Path) -> None:
    # A and B (two tasks on one dataset, or on two opens) write level-0 chunks below two
    # different level-1 tiles: A's rebuild, held in its read of level 0, does not keep B's
    # from running (B writes its tile meanwhile: two tiles rebuilt at once)
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(64, 64), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass
    peak = 0

    class Store(HeldStore):
        async def _put_once(self, key: str, data: Any, *, if_absent: bool) -> bool:
            nonlocal peak
            if key == "1/c/1/1":  # B's tile, while A's rebuild holds its own tile's lock
                held = [k for k in a.levels[1]._write_locks._locks if k.startswith("1/")]
                peak = max(peak, len(held))
            return await super()._put_once(key, data, if_absent=if_absent)

    store = Store(open_store(url), "0/c/0/1", lambda: peak > 0)  # in A's tile only
    async with (
        await ngio_async.open_async(store, mode="r+") as a,
        await ngio_async.open_async(store, mode="r+") as other,
    ):
        b = other if opens == 2 else a
        store.armed = True
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:

                async def write_b() -> None:
                    await until(store.held.is_set)  # A's rebuild holds its tile's lock
                    b_data = np.full((16, 16), 2)
                    await b.write(b_data, y=slice(32, 48), x=slice(32, 48), pyramid=True)

                tg.start_soon(write_b)
                await a.write(np.full((16, 16), 1), y=slice(0, 16), x=slice(0, 16), pyramid=True)
        assert store.held.is_set()
        assert peak == 2  # both tiles' rebuilds in progress at once (1: one after the other)
        await check_pyramid(a)


class FailingHeld(HeldStore):
    """A :class:`HeldStore` whose held GET then fails (a store error), or is cancelled."""

    def __init__(self, *args: Any, cancel: anyio.CancelScope | None = None) -> None:
        super().__init__(*args)
        self.cancel = cancel

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        was_armed = self.armed
        async with super()._track(method, key):
            yield
        if was_armed and not self.armed:  # this request was the held one
            if self.cancel is not None:
                self.cancel.cancel()
                await anyio.sleep(1)  # cancelled here
            raise StoreError("injected failure", url=self.url, key=key)


@pytest.mark.parametrize("how", ["error", "cancel"])
@pytest.mark.parametrize("opens", [1, 2])
async def test_a_writer_failing_while_holding_a_tile_leaves_the_other_finishing(
    tmp_path: Path, how: str, opens: int
) -> None:
    # A's rebuild of the shared tile fails (or A is cancelled) while B waits for the tile:
    # B goes on, rebuilds the tile from both writes' pixels, and no lock stays held
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass
    scope = anyio.CancelScope()
    store = FailingHeld(
        open_store(url, limits=Limits(max_retries=0)),
        "0/c/1/1",
        lambda: users(opened[0], 1, "1/c/0/0") > 1,  # B waits for the tile
        cancel=scope if how == "cancel" else None,
    )
    failed: list[StoreError] = []
    opened: list[Dataset] = []
    async with (
        await ngio_async.open_async(store, mode="r+") as a,
        await ngio_async.open_async(store, mode="r+") as other,
    ):
        b = other if opens == 2 else a
        opened.append(a)

        async def write_a() -> None:
            with scope:
                try:
                    await a.write(
                        np.full((16, 16), 1), y=slice(0, 16), x=slice(0, 16), pyramid=True
                    )
                except StoreError as exc:
                    failed.append(exc)

        async def write_b() -> None:
            await until(store.held.is_set)
            await b.write(np.full((16, 16), 2), y=slice(16, 32), x=slice(16, 32), pyramid=True)

        store.armed = True
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_a)
                tg.start_soon(write_b)
        if how == "error":
            assert len(failed) == 1 and not scope.cancel_called
        else:
            assert scope.cancel_called and not failed
        for ds in (a, b):
            assert all(len(lvl._write_locks) == 0 for lvl in ds.levels)  # none left held
        await check_pyramid(b)  # B's rebuild read A's level-0 pixels too
        tile = await b.levels[1][...]
        assert (tile[:8, :8] == 1).all() and (tile[8:, 8:] == 2).all()


async def test_levels_added_meanwhile_wait_for_the_rebuilds_running(tmp_path: Path) -> None:
    # a pyramid write's rebuild of a level-1 tile is in progress when build_pyramid(levels=3)
    # starts: the new level waits for it (built before it, level 2 missed the write's pixels)
    from ngio_async.images import _pyramid

    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass

    def waiting() -> bool:
        state = _pyramid._REBUILDS.get(ds)
        return state is not None and state.idle.statistics().tasks_waiting > 0

    store = HeldStore(
        open_store(url), "0/c/1/1", lambda: waiting() or ("put", "2/c/0/0") in store.calls
    )
    async with await ngio_async.open_async(store, mode="r+") as ds:

        async def grow() -> None:
            await until(store.held.is_set)
            await ds.build_pyramid(levels=3, regions=[])  # only the new level built

        store.armed = True
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(grow)
                await ds.write(np.full((16, 16), 4), y=slice(0, 16), x=slice(0, 16), pyramid=True)
        assert store.held.is_set() and len(ds.levels) == 3
        await check_pyramid(ds)


async def test_rebuilds_waiting_for_a_change_of_the_levels_all_start_after_it(
    tmp_path: Path,
) -> None:
    # three pyramid writes reach their rebuilds while the structure lock is held (a change of
    # the levels): once it is released they all run (the waiters handed the lock to each
    # other forever, each finding it held again)
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(64, 64), dtype="uint16", chunks=(16, 16), shards=False,
        levels=2,
    ) as ds:  # fmt: skip
        lock = ds.structure_lock()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                await lock.acquire()
                for i in range(3):  # unaligned: each rebuilds from the store at its end
                    rows = slice(16 * i + 1, 16 * i + 9)
                    tg.start_soon(
                        partial(ds.write, np.full((8, 8), i + 1), y=rows, x=rows, pyramid=True)
                    )
                await until(lambda: lock.statistics().tasks_waiting == 3)
                lock.release()
        await check_pyramid(ds)
