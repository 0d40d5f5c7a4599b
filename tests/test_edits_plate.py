"""Plates written by several writers at once (two plate objects on one store stand for two
processes: their locks are their own).

A well's group made by another writer between this one's check and its write is kept: the
row and well groups are created create-only: the first finds the new well's group missing, the
second adds its field meanwhile, then the first goes on. Its plain put of a bare group
replaced the group holding the second's ``well`` metadata: that field was no longer listed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

import ngio_async
from ngio_async import ExistsError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


class PausedCheck(InstrumentedStore):
    """The ``nth`` existence check of ``key`` (``method="list"``: listing of the prefix
    ``key``) answers, then waits for ``resume``."""

    def __init__(self, root: Path, key: str, nth: int, method: str = "exists") -> None:
        super().__init__(open_store(root, mkdir=True))
        self.key = key
        self.nth = nth
        self.method = method
        self.paused = anyio.Event()
        self.resume = anyio.Event()

    async def _pause(self, method: str, key: str) -> None:
        if (method, key) == (self.method, self.key):
            self.nth -= 1
            if self.nth == 0:
                self.paused.set()
                await self.resume.wait()

    async def _exists_once(self, key: str) -> bool:
        found = await super()._exists_once(key)
        await self._pause("exists", key)
        return found

    async def _list_once(self, prefix: str) -> list[str]:
        keys = await super()._list_once(prefix)
        await self._pause("list", prefix)
        return keys


async def test_a_well_group_made_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    # the well group's first check is add_image's check of its zarr format; the second, the
    # check before its group is made
    store = PausedCheck(tmp_path, "p.zarr/B/2/zarr.json", nth=2)
    first = await ngio_async.create_plate_async(
        store, path="p.zarr", rows=["A", "B"], columns=["1", "2"], wells=["A/1"]
    )
    second = await ngio_async.open_plate_async(store, path="p.zarr", mode="r+")

    async def add(plate: ngio_async.Plate, field: str) -> None:
        await (await plate.add_image("B/2", field=field, shape=(4, 4), dtype="uint8")).aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(add, first, "a")
        await store.paused.wait()  # the first found no well group
        await add(second, "b")
        store.resume.set()
    async with await ngio_async.open_plate_async(store, path="p.zarr") as plate:
        assert plate.wells == ["B/2"]
        assert sorted((await plate.well("B/2")).fields) == ["a", "b"]
    await first.aclose()
    await second.aclose()


async def test_two_creates_of_one_plate_one_is_refused(tmp_path: Path) -> None:
    """Both creates find no node; the one that goes on second is refused (it replaced the
    first plate, and every field added to it meanwhile was unlisted)."""
    store = PausedCheck(tmp_path, "p.zarr", nth=1, method="list")  # its last check
    refused: list[BaseException] = []

    async def create_first() -> None:
        try:
            await ngio_async.create_plate_async(
                store, path="p.zarr", rows=["A"], columns=["1"], name="first"
            )
        except ExistsError as exc:
            refused.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(create_first)
        await store.paused.wait()  # the first found no node
        second = await ngio_async.create_plate_async(
            store, path="p.zarr", rows=["A"], columns=["1"], name="second"
        )
        await (await second.add_image("A/1", shape=(4, 4), dtype="uint8")).aclose()
        store.resume.set()
    assert len(refused) == 1
    assert "created meanwhile by another writer" in str(refused[0])
    async with await ngio_async.open_plate_async(store, path="p.zarr") as plate:
        assert plate.name == "second"
        assert plate.wells == ["A/1"]
    await second.aclose()
