"""``stream(ds.tiles(), func)``: what ``func`` may be."""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

pytestmark = pytest.mark.anyio


async def test_an_async_func_is_refused_clearly(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1))

    async def total(a: NDArray[Any]) -> int:
        return int(a.sum())

    async with ngio_async.open_async(tmp_path) as ds:
        # was: the results were coroutine objects, never awaited (a RuntimeWarning at most)
        with pytest.raises(TypeError, match="must be a plain function"):
            ngio_async.stream(ds.tiles(), total)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "coroutine ... was never awaited"
            with pytest.raises(TypeError, match="must be a plain function"):
                await ngio_async.stream(ds.tiles(), lambda a: total(a))


def test_the_tiles_of_a_blocking_dataset_are_refused_clearly(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1))
    with ngio_async.open(tmp_path) as ds:
        tiles = ds.tiles()
        # was: a Stream that blocking code could not use ("'Stream' object is not iterable")
        with pytest.raises(TypeError, match=r"open_async.*got SyncTiles"):
            ngio_async.stream(tiles, lambda a: int(a.sum()))  # type: ignore[arg-type]
        assert sum(1 for _ in tiles) == 4  # the tiles are still there to iterate


async def _held_at_most(ds: Any, func: Any, **kwargs: Any) -> tuple[int, int]:
    """(the most tiles ``stream`` held, taken from the iterator and not yet consumed; the
    number of results) with a slow consumer."""
    taken = [0]
    tiles = ds.tiles(progress=lambda done, total: taken.__setitem__(0, done))
    consumed = worst = 0
    async with ngio_async.stream(tiles, func, **kwargs) as results:
        async for _tile, _value in results:
            await anyio.sleep(0.002)  # a slow consumer: the window fills
            worst = max(worst, taken[0] - consumed)
            consumed += 1
    return worst, consumed


@pytest.mark.parametrize("window", [1, 3, 16])
async def test_stream_holds_at_most_window_tiles(tmp_path: Path, window: int) -> None:
    """At most ``window`` tiles are being processed or waiting for the consumer (was: up to
    2 x window + 1: a result in the stream's buffer no longer counted)."""
    write_image(tmp_path, Spec(version="0.5", shape=(1, 128, 128), chunks=(1, 16, 16), levels=1))
    running = peak = 0
    lock = threading.Lock()

    def func(a: NDArray[Any]) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            return int(a.sum())
        finally:
            with lock:
                running -= 1

    async with ngio_async.open_async(tmp_path) as ds:
        worst, results = await _held_at_most(ds, func, window=window, threads=2)
    assert results == 64
    assert worst <= window + 1  # + the one the consumer holds
    assert peak <= 2


async def test_stream_holds_tiles_within_the_byte_bound(tmp_path: Path) -> None:
    """The tiles ``stream`` holds stay within ``Limits.prefetch_bytes`` (the last one taken
    may cross it), whatever the window (was: the window alone, 16 tiles here)."""
    write_image(tmp_path, Spec(version="0.5", shape=(1, 128, 128), chunks=(1, 32, 32), levels=1))
    tile_bytes = 32 * 32 * 2
    limits = ngio_async.Limits(prefetch_bytes=5 * 1024)  # 2.5 tiles
    async with ngio_async.open_async(tmp_path, limits=limits) as ds:
        worst, results = await _held_at_most(ds, lambda a: a, window=16)
    assert results == 16
    # room while under the bound: 3 tiles (6 KiB), + the one the consumer holds
    assert worst <= -(-limits.prefetch_bytes // tile_bytes) + 1


@pytest.mark.parametrize("out", [False, True])
async def test_the_consumers_error_is_the_one_raised(tmp_path: Path, out: bool) -> None:
    """The loop body (or the writer) fails while results wait to be handed over: its error
    comes out, not the ``BrokenResourceError`` of the results it no longer takes (seen under
    load: a writer's "does not fit" came out as BrokenResourceError)."""
    write_image(tmp_path, Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 16, 16), levels=1))

    class Failing:
        async def write(self, tile: Any) -> None:
            await anyio.sleep(0.05)  # the other results are computed and wait meanwhile
            raise ValueError("the consumer's own")

    async def consume(ds: Any) -> None:
        if out:
            await ngio_async.stream(ds.tiles(), lambda a: a, out=Failing(), threads=4)
            return
        async with ngio_async.stream(ds.tiles(), lambda a: a, threads=4) as results:
            async for _ in results:
                await Failing().write(None)

    for _ in range(3):
        async with ngio_async.open_async(tmp_path) as ds:
            with pytest.raises(ValueError, match="the consumer's own"):
                await consume(ds)
