"""A pyramid write that fails part way (a ``writer(pyramid=True)`` block that raises or is
cancelled, a ``write(..., pyramid=True)`` whose store fails on one shard) leaves the lower
levels following what level 0 got: a full ``build_pyramid`` afterwards changes nothing. When
the rebuild fails too, the write's own error says so in a note."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import StoreError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.images import LevelWriter
    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

SHAPE = (1, 64, 128)  # c, y, x; shards 32x32 (chunks 16x16); 3 levels


class FailingPuts(InstrumentedStore):
    """Puts of keys starting with one of ``failing`` raise a ``StoreError``."""

    def __init__(self, inner: AsyncStore) -> None:
        super().__init__(inner)
        self.failing: tuple[str, ...] = ()
        self.fail = self._inject

    def _inject(self, method: str, key: str) -> Exception | None:
        if method == "put" and self.failing and key.startswith(self.failing):
            return StoreError(f"injected failure: {key}")
        return None


async def _image(tmp_path: Path) -> FailingPuts:
    store = FailingPuts(open_store(tmp_path / "img.ome.zarr", mkdir=True))
    async with ngio_async.create_async(
        store, shape=SHAPE, dtype="uint16", axes="cyx", chunks=(1, 16, 16), shards=(1, 32, 32),
        levels=3, ngff_version="0.5", scale=1.0,
    ) as ds:  # fmt: skip
        await ds.write(np.zeros(SHAPE, "uint16"), pyramid=True)
    return store


def _tile(k: int) -> tuple[tuple[slice, ...], np.ndarray]:
    """Tile ``k`` (32x32, along x) holding a ramp: downsampling it changes level 1."""
    data = (np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32) + 1000 * (k + 1)).astype(
        "uint16"
    )
    return (slice(0, 1), slice(0, 32), slice(32 * k, 32 * (k + 1))), data


async def _landed(w: LevelWriter, n: int) -> None:
    """Wait until ``n`` writes of ``w`` landed (a write not yet started when the block
    raises is dropped)."""
    with anyio.fail_after(10):
        while w.written < n:  # noqa: ASYNC110 - the writer has no event for a landing
            await anyio.sleep(0.01)


async def _levels(ds: ngio_async.Dataset) -> list[np.ndarray]:
    return [await ds.read(level=i) for i in range(len(ds.levels))]


async def _assert_follows_level0(store: FailingPuts) -> list[np.ndarray]:
    """The lower levels equal a full rebuild from level 0 (which must hold new pixels)."""
    store.failing = ()
    async with ngio_async.open_async(store, mode="r+") as ds:
        got = await _levels(ds)
        assert got[0].any(), "no tile landed: nothing to follow"
        await ds.build_pyramid()
        rebuilt = await _levels(ds)
    for i, (a, b) in enumerate(zip(got, rebuilt, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"level {i} does not follow level 0")
    return got


async def _failing_block(ds: ngio_async.Dataset, tiles: int, store: FailingPuts | None) -> None:
    """A ``writer(pyramid=True)`` block that writes ``tiles`` tiles, waits for them to land,
    (makes level 1 refuse puts when ``store`` is given) and raises."""
    async with ds.writer(pyramid=True) as w:
        for k in range(tiles):
            await w.write(_tile(k))
        await _landed(w, tiles)
        if store is not None:
            store.failing = ("1/",)  # level 1 takes no more puts
        raise ZeroDivisionError("stop here")


async def test_a_writer_block_that_raises_leaves_the_levels_following_level0(
    tmp_path: Path,
) -> None:
    store = await _image(tmp_path)
    async with ngio_async.open_async(store, mode="r+") as ds:
        with pytest.raises(ZeroDivisionError, match="stop here"):
            await _failing_block(ds, 2, None)
    got = await _assert_follows_level0(store)
    assert got[1][..., :16, :32].any()  # the two tiles reached level 1


async def test_a_cancelled_writer_block_leaves_the_levels_following_level0(
    tmp_path: Path,
) -> None:
    store = await _image(tmp_path)
    async with ngio_async.open_async(store, mode="r+") as ds:
        with anyio.CancelScope() as scope:
            async with ds.writer(pyramid=True) as w:
                await w.write(_tile(1))
                await _landed(w, 1)
                scope.cancel()
                await anyio.sleep(5)
        assert scope.cancelled_caught
    got = await _assert_follows_level0(store)
    assert got[1][..., :16, 16:32].any()


async def test_a_write_failing_on_one_shard_leaves_the_levels_following_level0(
    tmp_path: Path,
) -> None:
    store = await _image(tmp_path)
    store.failing = ("0/c/0/0/3",)  # the last shard along x of level 0's first row
    data = np.arange(64 * 128, dtype=np.uint16).reshape(SHAPE)
    async with ngio_async.open_async(store, mode="r+") as ds:
        with pytest.raises(StoreError, match="injected failure"):
            await ds.write(data[:, :32], y=slice(0, 32), pyramid=True)
    await _assert_follows_level0(store)


async def test_a_rebuild_failing_too_is_told_in_a_note(tmp_path: Path) -> None:
    store = await _image(tmp_path)
    async with ngio_async.open_async(store, mode="r+") as ds:
        with pytest.raises(ZeroDivisionError) as info:
            await _failing_block(ds, 1, store)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "lower levels were not rebuilt" in notes and "injected failure: 1/" in notes
    assert "build_pyramid(regions=...)" in notes


async def test_a_final_rebuild_failing_is_told_in_a_note(tmp_path: Path) -> None:
    """A write whose level 0 lands but whose lower levels' rebuild from the store fails (an
    unaligned region: rebuilt at the end) says so, and what mends it."""
    store = await _image(tmp_path)
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.failing = ("1/",)  # level 1 takes no more puts
        with pytest.raises(StoreError, match="injected failure: 1/") as info:
            await ds.write(
                np.full((1, 3, 5), 7, "uint16"), y=slice(1, 4), x=slice(1, 6), pyramid=True
            )
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "lower levels were not rebuilt" in notes and "build_pyramid(regions=...)" in notes
    store.failing = ()
    async with ngio_async.open_async(store, mode="r+") as ds:  # mended as the note says
        await ds.build_pyramid(regions=[(slice(0, 1), slice(1, 4), slice(1, 6))])
    got = await _assert_follows_level0(store)
    assert (got[0][0, 1:4, 1:6] == 7).all()
