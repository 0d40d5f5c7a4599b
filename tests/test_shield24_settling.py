"""A write's stored objects, once begun, run to their end when the caller is stopped (bounded by
``SETTLE_SECONDS``), under one watcher task per region write (and per writer block), not one
per object: the tasks a write spawns do not grow with its objects."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import numpy as np
import pytest

import ngio_async
from ngio_async._prefetch import Settling, Unsettled, settling, to_the_end
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.stores import Buffer

pytestmark = pytest.mark.anyio


@pytest.fixture
def watchers(monkeypatch: pytest.MonkeyPatch) -> list[Settling]:
    """The settlings whose watcher task ran (one entry per watcher task)."""
    seen: list[Settling] = []
    watch = Settling._watch

    async def counted(self: Settling) -> None:
        seen.append(self)
        await watch(self)

    monkeypatch.setattr(Settling, "_watch", counted)
    return seen


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the tasks started by anyio task groups (asyncio backend)."""
    from anyio._backends._asyncio import TaskGroup

    names: list[str] = []
    start_soon = TaskGroup.start_soon

    def counted(self: TaskGroup, func: Any, *args: Any, name: object = None) -> None:
        names.append(str(name))
        start_soon(self, func, *args, name=name)

    monkeypatch.setattr(TaskGroup, "start_soon", counted)
    return names


async def _image(url: Path, size: int) -> None:
    async with ngio_async.create_async(
        url, shape=(size, size), dtype="uint16", axes="yx", chunks=(16, 16), shards=False,
        levels=1, ngff_version="0.5",
    ):  # fmt: skip
        pass


async def test_a_region_write_has_one_watcher_whatever_its_objects(
    tmp_path: Path, watchers: list[Settling], spawned: list[str]
) -> None:
    counts = {}
    for size in (32, 256):  # 4 objects, then 256
        await _image(tmp_path / f"{size}.zarr", size)
        async with ngio_async.open_async(tmp_path / f"{size}.zarr", mode="r+") as ds:
            data = np.arange(size * size, dtype=np.uint16).reshape(size, size)
            watchers.clear()
            spawned.clear()
            await ds.write(data)
            window = ds.levels[0]._window
            assert len(watchers) == 1  # one watcher for the write, not one per object
            counts[size] = len(spawned)
            np.testing.assert_array_equal(await ds.read(), data)
    assert window + 8 < 256  # (else a task per object would pass unnoticed)
    assert counts[256] <= window + 8, counts  # the prefetch's workers, its producer, 1 watcher


async def test_a_writer_block_has_one_watcher_for_its_tiles_spanning_objects(
    tmp_path: Path, watchers: list[Settling]
) -> None:
    await _image(tmp_path / "a.zarr", 64)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        watchers.clear()
        async with ds.writer(max_pending=4) as w:
            for y in range(0, 64, 32):  # 8 tiles of 32x16 (two objects each)
                for x in range(0, 64, 16):
                    await w.write(((slice(y, y + 32), slice(x, x + 16)), y + x))
        # the block's one, and each tile's region write's own (they were two per tile)
        assert len({id(s) for s in watchers}) == len(watchers) == 1 + 8
        got = await ds.read()
    assert got[40, 20] == 32 + 16


async def test_a_write_begun_runs_to_its_end_and_a_later_one_does_not_start() -> None:
    ended: list[int] = []
    started: list[int] = []

    async def write(k: int) -> int:
        started.append(k)
        await anyio.sleep(0.05)
        ended.append(k)
        return k

    with anyio.CancelScope() as scope:
        async with settling() as writes, anyio.create_task_group() as tg:
            for k in range(3):
                tg.start_soon(partial(writes.run, what="w"), write, k)
            await anyio.sleep(0.01)  # all three begun
            scope.cancel()
            await writes.run(write, 3, what="too late")  # the caller is cancelled: not begun
    assert scope.cancelled_caught
    assert sorted(ended) == [0, 1, 2] and 3 not in started


async def test_hung_writes_give_up_within_the_grace_each_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("ngio_async._prefetch.SETTLE_SECONDS", 0.2)
    gave_up: list[str] = []

    async def hung(what: str, writes: Settling) -> None:
        try:
            await writes.run(anyio.sleep_forever, what=what)
        except Unsettled as exc:
            gave_up.append(str(exc))

    with anyio.fail_after(20):  # (a hang fails the test; not a timing assertion)
        with anyio.CancelScope() as scope:
            async with settling() as writes, anyio.create_task_group() as tg:
                tg.start_soon(hung, "the write of 'a'", writes)
                tg.start_soon(hung, "the write of 'b'", writes)
                await anyio.sleep(0.01)
                scope.cancel()
    assert scope.cancelled_caught
    assert sorted(gave_up) == [
        f"the write of '{k}' did not finish within 0.2 s of being stopped (a hung store?): it "
        "was cancelled then and may be partly written"
        for k in "ab"
    ]


async def test_a_stop_bounds_the_writes_under_way_and_those_begun_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sibling's failure (not the caller's cancellation) stops the writes: ``stop()``."""
    monkeypatch.setattr("ngio_async._prefetch.SETTLE_SECONDS", 0.2)
    with anyio.fail_after(20):
        async with settling() as writes:
            async with anyio.create_task_group() as tg:

                async def begun() -> None:
                    with pytest.raises(Unsettled, match="'under way'"):
                        await writes.run(anyio.sleep_forever, what="'under way'")

                tg.start_soon(begun)
                await anyio.sleep(0.01)
                writes.stop()
            with pytest.raises(Unsettled, match="'after'"):  # its deadline at once
                await writes.run(anyio.sleep_forever, what="'after'")


async def test_to_the_end_is_as_before() -> None:
    async def add(a: int, b: int) -> int:
        await anyio.sleep(0.02)
        return a + b

    with anyio.CancelScope() as scope:
        got = await to_the_end(add, 1, 2, what="x")
        scope.cancel()
        await anyio.sleep(1)
    assert got == 3 and scope.cancelled_caught
    with anyio.CancelScope() as scope:
        scope.cancel()
        await to_the_end(add, 1, 2, what="x")  # already cancelled: not started
        pytest.fail("not cancelled")  # pragma: no cover
    assert scope.cancelled_caught

    async def fails() -> None:
        raise KeyError("its own")

    with pytest.raises(KeyError, match="its own"):  # plainly, not in a group
        await to_the_end(fails, what="x")


class FailOneHangTheRest(InstrumentedStore):
    """The put of chunk ``0/c/0/0`` fails; every other chunk put never ends (``hanging`` is set
    once one has begun)."""

    hanging: anyio.Event | None = None

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        if "/c/" not in key:
            return await super()._put_once(key, data, if_absent=if_absent)
        if key.endswith("/c/0/0"):
            raise ZeroDivisionError(f"injected failure of {key}")
        if self.hanging is not None:
            self.hanging.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover


async def test_a_failed_object_bounds_its_siblings_writes_on_a_hung_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One object's put fails while the others' hang: the region write comes out with that
    failure within the grace (the others given up), not never."""
    monkeypatch.setattr("ngio_async._prefetch.SETTLE_SECONDS", 0.3)
    await _image(tmp_path / "a.zarr", 32)
    store = FailOneHangTheRest(open_store(tmp_path / "a.zarr"))
    async with ngio_async.open_async(store, mode="r+") as ds:
        with anyio.move_on_after(10) as guard:  # (a hang fails the test: see below)
            with pytest.raises(ZeroDivisionError, match=r"0/c/0/0"):
                await ds.write(np.ones((32, 32), np.uint16))
        assert not guard.cancel_called  # out by the grace, not by the guard's cancellation


async def test_a_cancelled_one_object_write_on_a_hung_store_names_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ngio_async._prefetch.SETTLE_SECONDS", 0.3)
    await _image(tmp_path / "a.zarr", 32)
    store = FailOneHangTheRest(open_store(tmp_path / "a.zarr"))
    store.hanging = anyio.Event()
    async with ngio_async.open_async(store, mode="r+") as ds:
        with anyio.fail_after(20), anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_cancel_when_hung, scope, store.hanging)
                with pytest.raises(Unsettled, match=r"the write of '0/c/1/1' \(level '0'\)"):
                    await ds.write(np.ones((16, 16), np.uint16), y=slice(16, 32), x=slice(16, 32))
        assert scope.cancel_called and store.hanging.is_set()


async def _cancel_when_hung(scope: anyio.CancelScope, hanging: anyio.Event) -> None:
    """Cancel once the object's put has begun (cancelled before, the write never starts: a
    plain cancellation, which ``pytest.raises`` lets through unchecked)."""
    await hanging.wait()
    scope.cancel()


@pytest.mark.parametrize("how", ["a write fails", "the block raises"])
async def test_a_stopped_writer_block_gives_up_its_hung_writes_within_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A tile spanning two objects hangs (the store never answers); another write fails, or the
    block raises: the block comes out with that error once the grace is over, not never."""
    monkeypatch.setattr("ngio_async._prefetch.SETTLE_SECONDS", 0.3)
    await _image(tmp_path / "a.zarr", 64)
    store = FailOneHangTheRest(open_store(tmp_path / "a.zarr"))
    error = ZeroDivisionError if how == "a write fails" else KeyError
    async with ngio_async.open_async(store, mode="r+") as ds:
        with anyio.move_on_after(10) as guard:  # (a hang fails the test: see below)
            with pytest.raises(error) as info:
                await _stopped_block(ds, how)
        assert not guard.cancel_called  # out by the grace, not by the guard's cancellation
    notes = " ".join(getattr(info.value, "__notes__", ()))
    assert how == "the block raises" or "0/c/0/0" in str(info.value) + notes


async def _stopped_block(ds: ngio_async.Dataset, how: str) -> None:
    async with ds.writer(max_pending=4) as w:
        await w.write(((slice(0, 16), slice(16, 48)), 5))  # objects 0/1 and 0/2: hung
        await anyio.sleep(0.05)
        if how == "the block raises":
            raise KeyError("the block's own")
        await w.write(((slice(0, 16), slice(0, 16)), 5))  # object 0/0: fails
        await anyio.sleep(5)


async def test_a_nested_write_gets_no_second_grace_after_its_enclosing_one() -> None:
    """A writer's tile (one settling) is a region write (another): once the tile's grace is
    over, its objects' writes are given up then, not given a grace of their own after it."""
    stopped: list[tuple[float, float]] = []

    async def tile(outer: Settling) -> None:
        async with settling() as inner:
            outer.stop()  # the block is stopped...
            await anyio.sleep(0.05)
            inner.stop()  # ...and its grace over: the tile's write is cancelled
            stopped.append((inner._deadline, outer._deadline))

    async with settling() as outer:
        await outer.run(tile, outer, what="the tile")
    async with settling() as alone:  # not within a write: a grace of its own
        outer.stop()
        await anyio.sleep(0.05)
        alone.stop()
    assert stopped == [(outer._deadline, outer._deadline)]
    assert alone._deadline > outer._deadline
