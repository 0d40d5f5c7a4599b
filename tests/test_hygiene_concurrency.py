"""Hygiene: metadata edits of one dataset object run concurrently (a service's request handlers).

Label images follow their image (``set_scale`` sets their pixel size, ``build_pyramid(levels=N)``
adds their levels): that must hold whatever the interleaving of the edits and ``labels.create``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Literal

import anyio
import pytest

import ngio_async
from ngio_async.stores import Buffer, InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from ngio_async.images import Dataset

pytestmark = pytest.mark.anyio

LISTING = "labels/zarr.json"  # the NGFF 0.5 labels group: labels.create lists a label there, last


class GatedStore(InstrumentedStore):
    """Holds the write of ``LISTING`` until :attr:`gate` is set (at most half a second, so an
    implementation that serialises the edits only waits, never hangs); :attr:`reached` tells
    that the write is waiting."""

    def __init__(self, url: str) -> None:
        super().__init__(open_store(url, mkdir=True))
        self.gate = anyio.Event()
        self.reached = anyio.Event()

    async def put(self, key: str, data: Buffer) -> None:
        if key == LISTING and not self.gate.is_set():
            self.reached.set()
            with anyio.move_on_after(0.5):
                await self.gate.wait()
        await super().put(key, data)


async def _edit_while_a_label_is_created(
    url: str, edit: Callable[[Dataset], Awaitable[object]]
) -> None:
    """``labels.create("cells")`` runs until it lists the label; ``edit`` runs there."""
    async with (
        GatedStore(url) as store,
        ngio_async.create_async(
            store, shape=(1, 128, 128), dtype="uint16", axes="cyx", levels=2, ngff_version="0.5"
        ) as ds,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(ds.labels.create, "cells")
        with anyio.move_on_after(2):
            await store.reached.wait()
        await edit(ds)
        store.gate.set()


async def _label(url: str) -> tuple[tuple[float, ...], int]:
    """Level 0's scale and the number of levels of label ``cells``, as stored."""
    async with ngio_async.open_async(url) as ds:
        label = await ds.labels.open("cells")
        async with label:
            return label.levels[0].scale, len(label.levels)


async def test_a_label_created_during_set_scale_gets_the_new_scale(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    await _edit_while_a_label_is_created(url, lambda ds: ds.set_scale({"y": 0.5, "x": 0.5}))
    assert (await _label(url))[0] == (0.5, 0.5)  # was: (1.0, 1.0), the image's old pixel size


async def test_a_label_created_during_build_pyramid_gets_every_level(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    await _edit_while_a_label_is_created(url, lambda ds: ds.build_pyramid(levels=3))
    assert (await _label(url))[1] == 3  # was: 2 (the image has 3)


async def test_the_same_edits_one_after_the_other_reach_the_label(tmp_path: Path) -> None:
    """The baseline the races above should match."""
    url = str(tmp_path / "img.ome.zarr")
    async with ngio_async.create_async(
        url, shape=(1, 128, 128), dtype="uint16", axes="cyx", levels=2, ngff_version="0.5"
    ) as ds:
        await ds.labels.create("cells")
        await ds.set_scale({"y": 0.5, "x": 0.5})
        await ds.build_pyramid(levels=3)
    assert await _label(url) == ((0.5, 0.5), 3)


@pytest.mark.parametrize("levels", [(2, 2), (2, 3)])
async def test_concurrent_build_pyramids_add_their_levels_once(
    tmp_path: Path, levels: tuple[int, int]
) -> None:
    url = str(tmp_path / "img.ome.zarr")
    async with (
        ngio_async.create_async(
            url, shape=(1, 256, 256), dtype="uint16", axes="cyx", levels=1
        ) as ds,
        anyio.create_task_group() as tg,
    ):
        for n in levels:
            tg.start_soon(functools.partial(ds.build_pyramid, levels=n))  # was: ValueError
    async with ngio_async.open_async(url) as ds:
        assert [lvl.shape[-1] for lvl in ds.levels] == [256, 128, 64][: max(levels)]


class RendezvousStore(InstrumentedStore):
    """Holds every write until two writers wait (at most half a second): two creators have
    both looked for an existing node before either writes, on every run."""

    def __init__(self, url: str) -> None:
        super().__init__(open_store(url, mkdir=True))
        self.waiting = 0
        self.both = anyio.Event()

    async def _meet(self) -> None:
        self.waiting += 1
        if self.waiting >= 2:
            self.both.set()
        with anyio.move_on_after(0.5):
            await self.both.wait()

    async def put(self, key: str, data: Buffer) -> None:
        await self._meet()
        await super().put(key, data)

    async def put_if_absent(self, key: str, data: Buffer) -> bool:
        await self._meet()
        return await super().put_if_absent(key, data)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_two_concurrent_creates_of_one_image_refuse_one(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    outcomes: list[str] = []

    async def create(store: RendezvousStore, shape: tuple[int, int, int]) -> None:
        try:
            async with ngio_async.create_async(
                store, shape=shape, dtype="uint16", axes="cyx", ngff_version=version
            ):
                outcomes.append("created")
        except ngio_async.ExistsError:
            outcomes.append("refused")

    async with (
        RendezvousStore(str(tmp_path / "img.ome.zarr")) as store,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(create, store, (1, 64, 64))
        tg.start_soon(create, store, (2, 32, 32))
    assert sorted(outcomes) == ["created", "refused"]  # was: both created
