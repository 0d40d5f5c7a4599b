"""stream(..., stitch=StitchConfig(compact=True)) cancelled during its final pass (the
rewrite of every stored object to the numbers 1..N): tiles larger than the stored objects,
so tile 0's ids (1..) live in several objects and a number given in one object met an id
of tile 0 not yet rewritten in another: two objects under one id."""

from __future__ import annotations

import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async
from ngio_async import StitchConfig
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _segment(a: np.ndarray) -> np.ndarray:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


def _image() -> np.ndarray:
    img = np.zeros((96, 96), "uint16")
    for y in range(2, 96, 12):  # squares in every stored object, none cut by a tile seam
        for x in range(2, 96, 12):
            img[y : y + 6, x : x + 6] = 100
    img[50:54, 10:80] = 100  # a bar across the seams at x = 48
    return img


class CancelInFinalPass(InstrumentedStore):
    """Cancels ``scope`` once the label's first pixels were read back (the final pass) and
    one object was put since."""

    scope: anyio.CancelScope | None = None
    reading = False
    fail_once = False

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if "labels/seg/0/" in key and "zarr.json" not in key:
            if method == "get":
                self.reading = True
            elif method == "put" and self.reading and self.scope is not None:
                self.scope.cancel()
            elif method == "put" and self.reading and self.fail_once:
                self.fail_once = False
                raise PermissionError(f"injected: {key}")


async def test_a_compact_pass_cancelled_is_finished_first(tmp_path: Path) -> None:
    img = _image()
    (tmp_path / "img.zarr").mkdir()
    store = CancelInFinalPass(open_store(str(tmp_path / "img.zarr")))
    async with await ngio_async.create_async(
        store, shape=img.shape, dtype="uint16", axes="yx", chunks=(24, 24), shards=False,
        levels=1,
    ) as ds:  # fmt: skip
        await ds.write(img)
        seg = await ds.labels.create("seg", dtype="uint32")
        with anyio.CancelScope() as scope:
            store.scope = scope
            config = StitchConfig(compact=True)
            tiles = ds.tiles(shape=(48, 48), overlap=8)
            await ngio_async.stream(tiles, _segment, out=seg, unique_labels=1000, stitch=config)
        assert scope.cancel_called
        store.scope = None
        got = await seg.read()
    want = ndimage.label(img > 50)[0]
    pairs = set(zip(got[want > 0].tolist(), want[want > 0].tolist(), strict=True))
    # one id per object, one object per id: the pass ran to its end
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}) == want.max()
    assert sorted({a for a, _ in pairs}) == list(range(1, want.max() + 1))


async def test_a_compact_pass_failed_says_what_it_left(tmp_path: Path) -> None:
    img = _image()
    (tmp_path / "img.zarr").mkdir()
    store = CancelInFinalPass(open_store(str(tmp_path / "img.zarr")))
    store.fail_once = True
    async with await ngio_async.create_async(
        store, shape=img.shape, dtype="uint16", axes="yx", chunks=(24, 24), shards=False,
        levels=1,
    ) as ds:  # fmt: skip
        await ds.write(img)
        seg = await ds.labels.create("seg", dtype="uint32")
        config = StitchConfig(compact=True)
        tiles = ds.tiles(shape=(48, 48), overlap=8)
        with pytest.raises(Exception, match="injected") as caught:
            await ngio_async.stream(tiles, _segment, out=seg, unique_labels=1000, stitch=config)
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "stopped in its final pass: 0 of the 16 stored objects" in notes, notes
    assert "two objects under one id" in notes


class TellsLanded(InstrumentedStore):
    """Sets ``landed`` once a pixel object of the label was put."""

    landed = threading.Event()

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if method == "put" and "labels/seg/0/" in key and "zarr.json" not in key:
            self.landed.set()


async def test_a_stream_failing_midway_leaves_the_tiles_ids(tmp_path: Path) -> None:
    """As its doc says: nothing joined, nothing renumbered, each landed tile's ids in its
    block (no pair of objects under one id)."""
    img = _image()
    calls = 0
    (tmp_path / "img.zarr").mkdir()
    store = TellsLanded(open_store(str(tmp_path / "img.zarr")))
    store.landed = threading.Event()

    def flaky(a: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 3:  # once a result landed (the writes not begun when it fails are not)
            store.landed.wait(60)
            raise RuntimeError("segmentation failed")
        return _segment(a)

    async with await ngio_async.create_async(
        store, shape=img.shape, dtype="uint16", axes="yx", chunks=(24, 24),
    ) as ds:  # fmt: skip
        await ds.write(img)
        seg = await ds.labels.create("seg", dtype="uint32")
        tiles = ds.tiles(shape=(48, 48), overlap=8, prefetch=1)
        config = StitchConfig(compact=True)
        with pytest.raises(RuntimeError, match="segmentation failed"):
            await ngio_async.stream(
                tiles, flaky, out=seg, unique_labels=1000, stitch=config, threads=1
            )
        got = await seg.read()
    blocks = {v // 1000 for v in np.unique(got).tolist() if v}
    assert blocks and blocks < {0, 1, 2, 3}  # some tiles landed, each with its own block
    want = ndimage.label(img > 50)[0]
    for v in np.unique(got[got > 0]).tolist():  # each id one object (cut at seams maybe)
        assert len(np.unique(want[got == v])) == 1
