"""``stream(ds.tiles(...), func, out=...)`` at its edges, on small real images: another image's
level (another dtype) as ``out``, results of the wrong shape or ``None``, ``ordered=False``,
halos, a progress callback, an empty region, and the bounds held while writing."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.stores import AsyncStore, Buffer

pytestmark = pytest.mark.anyio

DATA = (np.arange(64 * 96).reshape(1, 64, 96) % 200).astype("uint16")


async def _pair(root: Path, dtype: str = "uint8", chunks: int = 32) -> None:
    """``a.zarr`` (uint16, :data:`DATA`, two levels, chunks of 32x32, no shards: a default tile
    is a chunk) and an empty ``b.zarr`` of ``dtype`` and ``chunks``."""
    for name, dt, n in (("a", "uint16", 32), ("b", dtype, chunks)):
        async with ngio_async.create_async(
            root / f"{name}.zarr", shape=DATA.shape, dtype=dt, axes="cyx", chunks=(1, n, n),
            shards=False, levels=2, ngff_version="0.5",
        ) as ds:  # fmt: skip
            if name == "a":
                await ds.write(DATA, pyramid=True)


async def _into(dst: Any, tiles: Any, func: Any, level: int = 0, **bounds: Any) -> None:
    async with dst.writer(level) as w:
        await ngio_async.stream(tiles, func, out=w, **bounds)


async def test_out_another_images_level_casts_as_write_does(tmp_path: Path) -> None:
    await _pair(tmp_path)
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as dst,
    ):
        await _into(dst, src.tiles(), lambda a: a)  # uint16 values that fit uint8
        np.testing.assert_array_equal(await dst.read(), DATA)
        await _into(dst, src.tiles(), lambda a: a / 2)  # floats: truncated, as write does
        np.testing.assert_array_equal(await dst.read(), (DATA / 2).astype("uint8"))
        with pytest.raises(ValueError, match=r"do not fit a uint8 level") as info:
            await _into(dst, src.tiles(), lambda a: a + 300, threads=1)  # refused, as write
        assert "writing the result of the tile at [0:1, 0:32, 0:32]" in str(info.value.__notes__)
        await _into(dst, src.tiles(level=1), lambda a: a, level=1)  # level 1 into level 1
        np.testing.assert_array_equal(await dst.read(level=1), await src.read(level=1))
        before = await dst.read(level=1)
        with pytest.raises(ValueError, match=r"of shape \(1, 64, 96\) .* level '1' of shape"):
            await _into(dst, src.tiles(level=0), lambda a: a + 1, level=1)  # refused at the call
        np.testing.assert_array_equal(await dst.read(level=1), before)  # no tile written


async def test_a_result_of_the_wrong_shape_is_named_with_its_tile(tmp_path: Path) -> None:
    await _pair(tmp_path, "uint16")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as dst,
    ):
        with pytest.raises(
            ValueError, match=r"shape \(1, 5, 32\) does not fit .* \(1, 32, 32\)"
        ) as i:
            await _into(dst, src.tiles(), lambda a: a[:, :5], threads=1)
        assert "the tile at [0:1, 0:32, 0:32] of shape (1, 32, 32)" in str(i.value.__notes__)
        with pytest.raises(ValueError, match=r"func returned shape \(5, 32\) for the tile at"):
            await _into(dst, src.tiles(), lambda a: a[0, :5], threads=1)
        with pytest.raises(ValueError, match=r"func returned shape \(2, 1, 32, 32\)"):
            await _into(dst, src.tiles(), lambda a: np.stack([a, a]))
        with pytest.raises(TypeError, match=r"func returned None for the tile at \[0:1, 0:32, 0:"):
            await _into(dst, src.tiles(), lambda a: None, threads=1)  # an error, kept
        assert not (await dst.read()).any()  # none of these wrote anything
        # extra leading unit axes are dropped, as numpy assignment and write drop them
        await _into(dst, src.tiles(), lambda a: a[None, None] + 1)
        np.testing.assert_array_equal(await dst.read(), DATA + 1)


async def test_unordered_tiles_and_halos_write_each_result_at_its_core(tmp_path: Path) -> None:
    await _pair(tmp_path, "uint16")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as dst,
    ):
        await _into(dst, src.tiles(shape=(1, 16, 16), ordered=False), lambda a: a // 2, threads=3)
        np.testing.assert_array_equal(await dst.read(), DATA // 2)
        # halo'd tiles: the halo'd result (squeezed or not) is cropped back to the core
        await _into(dst, src.tiles(shape=(1, 32, 32), overlap=4), lambda a: a // 3)
        np.testing.assert_array_equal(await dst.read(), DATA // 3)
        await _into(dst, src.tiles(shape=(1, 32, 32), overlap=(0, 4, 4)), lambda a: a[0] // 4)
        np.testing.assert_array_equal(await dst.read(), DATA // 4)
        with pytest.raises(ValueError, match=r"\(1, 28, 28\) does not fit .* \(1, 32, 32\)") as i:
            # cropping 4 px each side is wrong at the borders, where the halo is clipped
            await _into(
                dst, src.tiles(shape=(1, 32, 32), overlap=4), lambda a: a[:, 4:-4, 4:-4], threads=1
            )
        assert "of shape (1, 36, 36) (core [0:1, 0:32, 0:32])" in str(i.value.__notes__)


async def test_progress_empty_regions_and_rois(tmp_path: Path) -> None:
    await _pair(tmp_path, "uint16")
    seen: list[tuple[int, int | None]] = []
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as dst,
    ):
        progress = src.tiles(shape=(1, 16, 16), progress=lambda d, t: seen.append((d, t)))
        await _into(dst, progress, lambda a: a)
        assert seen[-1] == (24, 24) and len(seen) == 24
        assert [d for d, _ in seen] == list(range(1, 25))
        assert await ngio_async.stream(src.tiles(y=slice(5, 5)), lambda a: a) == []
        await _into(dst, src.tiles(y=slice(5, 5)), lambda a: a + 1)
        region = (slice(0, 1), slice(10, 10), slice(0, 96))
        assert await ngio_async.stream(src.tiles(region=region), lambda a: a) == []
        assert await ngio_async.stream(src.read_rois([]), lambda a: a, out=dst) is None
        np.testing.assert_array_equal(await dst.read(), DATA)  # nothing else written


class CountingPuts(InstrumentedStore):
    """Puts take ``delay`` s; counts the tiles ``func`` started and whose put has not landed
    yet (one shard per tile), and the puts in flight, with their peaks."""

    def __init__(self, inner: AsyncStore, delay: float) -> None:
        super().__init__(inner)
        self.delay = delay
        self.lock = threading.Lock()
        self.tiles = self.peak_tiles = self.puts = self.peak_puts = 0

    def started(self) -> None:
        with self.lock:
            self.tiles += 1
            self.peak_tiles = max(self.peak_tiles, self.tiles)

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        counted = "/c/" in key
        if counted:
            self.puts += 1
            self.peak_puts = max(self.peak_puts, self.puts)
            await anyio.sleep(self.delay)
        try:
            return await super()._put_once(key, data, if_absent=if_absent)
        finally:
            if counted:
                self.puts -= 1
                with self.lock:
                    self.tiles -= 1


async def test_window_and_pending_bounds_hold_while_writing(tmp_path: Path) -> None:
    """Slow puts: the tiles between ``func`` and their landed write stay within the stream's
    ``window``, the one the consumer hands over and the writer's ``max_pending``."""
    await _pair(tmp_path, "uint16", chunks=16)  # a tile, a chunk: writes run side by side
    store = CountingPuts(open_store(tmp_path / "b.zarr"), delay=0.02)
    window, pending = 2, 2

    def func(a: Any) -> Any:
        store.started()
        return a + 1

    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        store,
        ngio_async.open_async(store, mode="r+") as dst,
    ):
        async with dst.writer(max_pending=pending) as w:
            tiles = src.tiles(shape=(1, 16, 16), prefetch=4)  # 24 tiles, one chunk each
            await ngio_async.stream(tiles, func, out=w, threads=2, window=window)
        np.testing.assert_array_equal(await dst.read(), DATA + 1)
    assert store.tiles == 0
    assert store.peak_puts <= pending
    assert store.peak_tiles <= window + 1 + pending
    assert store.peak_puts == pending  # it did keep the writer busy


async def test_no_func_starts_once_one_has_failed(tmp_path: Path) -> None:
    """func fails on tile 0 while the event loop is busy (blocked here on purpose): a worker
    thread takes the queued calls by itself then, and ran func on them (4 after the failure,
    before the loop had seen it); now none starts."""
    await _pair(tmp_path, "uint16")
    go, failed = threading.Event(), threading.Event()
    late: list[int] = []

    def func(a: Any) -> Any:
        index = int(a[0, 0, 0]) // 16  # the first row of tiles: DATA[0, 0, x] is x
        if failed.is_set():
            late.append(index)
        if index == 0:
            assert go.wait(10)
            failed.set()
            raise ZeroDivisionError("tile 0")
        if index == 1:  # runs beside tile 0: ends once tile 0 has failed, then takes tile 2
            assert go.wait(10) and failed.wait(10)
            threading.Event().wait(0.02)  # (tile 0's worker thread is done raising)
        return a

    async with ngio_async.open_async(tmp_path / "a.zarr") as src:
        tiles = src.tiles(shape=(1, 16, 16), region=(slice(0, 1), slice(0, 16), slice(0, 96)))

        async def consume() -> None:
            async with ngio_async.stream(tiles, func, threads=2, window=6) as results:
                await anyio.sleep(0.1)  # the window fills: tiles 0 and 1 run, 2-5 queued
                go.set()
                threading.Event().wait(0.3)  # the loop blocked: it cannot drop the queue
                async for _ in results:
                    pass

        with pytest.raises(ZeroDivisionError, match="tile 0"):
            await consume()
    assert late == []


async def test_roi_results_cast_and_misfits_are_named_with_their_roi(tmp_path: Path) -> None:
    from ngio_async.tables import Roi

    await _pair(tmp_path, "uint16")
    rois = [Roi.box(f"R{k}", x=(10.0 * k, 10.0 * k + 8), y=(2.0, 12.0)) for k in range(6)]
    want = np.zeros(DATA.shape[1:], "uint8")  # a label image: y, x
    for k in range(6):
        want[2:12, 10 * k : 10 * k + 8] = DATA[0, 2:12, 10 * k : 10 * k + 8] // 2
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint8")
        unordered = ds.read_rois(rois, ordered=False)
        await ngio_async.stream(unordered, lambda a: a / 2, out=seg, threads=3)  # truncated
        np.testing.assert_array_equal(await seg.read(), want)
        with pytest.raises(ValueError, match=r"shape \(3, 8\) does not fit .* \(10, 8\)") as i:
            await ngio_async.stream(ds.read_rois(rois), lambda a: a[0, :3], out=seg, threads=1)
        assert "writing the result of ROI 'R0' (region [0:1, 2:12, 0:8])" in i.value.__notes__[0]
        with pytest.raises(ValueError, match=r"do not fit a uint8 level") as i:
            await ngio_async.stream(ds.read_rois(rois), lambda a: a + 300, out=seg, threads=1)
        assert "ROI 'R0'" in i.value.__notes__[0]
        with pytest.raises(TypeError, match=r"func returned None for ROI 'R0'"):
            await ngio_async.stream(ds.read_rois(rois), lambda a: None, out=seg, threads=1)
        np.testing.assert_array_equal(await seg.read(), want)  # none of these wrote anything
        await seg.aclose()


async def test_image_tiles_into_a_label_writer_map_by_axis_name(tmp_path: Path) -> None:
    """(Tiles of c, y, x into a label image of y, x: mapped by axis name, the length-1 c
    left out; was refused at the first tile, by the writer.)"""
    await _pair(tmp_path, "uint16")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint8")
        await _into(seg, ds.tiles(), lambda a: a > 100)
        np.testing.assert_array_equal(await seg.read(), DATA[0] > 100)
        await seg.aclose()
