"""A dataset keeps the big tile arrays its ended streams made (``_tile_pool.Spares``, at most
``Limits.prefetch_bytes``, dropped on close): its next stream takes them instead of making its
own, never an array something still holds. The pool's size threshold is lowered
(``_tile_pool.MIN_BYTES``) so that small tiles take the paths of 32 MiB ones."""

from __future__ import annotations

import gc
import weakref
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import Limits
from ngio_async.images import _tile_pool

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

# 12 tiles (one per plane) of one 64x64 shard of 32x32 inner chunks: 8 KiB each
SPEC = Spec(shape=(12, 64, 64), chunks=(1, 32, 32), shards=(1, 64, 64), levels=1)


@pytest.fixture(autouse=True)
def small_tiles_pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tile_pool, "MIN_BYTES", 1)


def _address(a: np.ndarray[Any, Any]) -> int:
    return int(a.__array_interface__["data"][0])


async def _drop_each(ds: Any, data: np.ndarray[Any, Any], seen: set[int] | None = None) -> Any:
    """Stream, checking each tile and dropping it (its buffer's address into ``seen``)."""
    stream = ds.tiles(prefetch=2)
    async for tile in stream:
        np.testing.assert_array_equal(tile.data, data[tile.region])
        if seen is not None:
            seen.add(_address(tile.data))
        del tile
    gc.collect()  # (what a stream's cancelled tasks left in reference cycles)
    return stream


async def test_the_next_stream_takes_the_arrays_the_last_one_left(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        first = await _drop_each(ds, data)
        assert first.array_pool.made >= 1
        made = []
        for _ in range(3):
            later = await _drop_each(ds, data)
            assert later.array_pool.made + later.array_pool.reused == SPEC.shape[0]
            made.append(later.array_pool.made)
        # a stream on its own makes at least one; with the arrays of the earlier ones, most
        # make none (one may make one: a thread can hold a free array a moment longer)
        assert sum(made) < len(made), made
        spares = _tile_pool._spares[ds]
        assert 0 < spares.held_bytes <= ds.limits.prefetch_bytes


async def test_arrays_still_held_are_never_taken(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        kept = [t async for t in ds.tiles(prefetch=2)]  # the consumer keeps every tile
        seen: set[int] = set()
        await _drop_each(ds, data, seen)
        assert not seen & {_address(t.data) for t in kept}
        for t in kept:
            np.testing.assert_array_equal(t.data, data[t.region])
        assert len({_address(t.data) for t in kept}) == len(kept)


async def test_the_spares_stay_within_prefetch_bytes(tmp_path: Path) -> None:
    """``Limits(prefetch_bytes=)`` of 3 tiles: at most 3 tiles' arrays kept across streams."""
    write_image(tmp_path, SPEC)
    tile_bytes = 64 * 64 * 2
    async with ngio_async.open_async(tmp_path, limits=Limits(prefetch_bytes=3 * tile_bytes)) as ds:
        kept = [t async for t in ds.tiles(prefetch=2)]  # 12 arrays given back, all held
        assert _tile_pool._spares[ds].held_bytes <= 3 * tile_bytes
        del kept


async def test_closing_the_dataset_frees_them(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    refs: list[weakref.ref[np.ndarray[Any, Any]]] = []
    async with ngio_async.open_async(tmp_path) as ds:
        async for tile in ds.tiles(prefetch=2):
            refs.append(weakref.ref(tile.data))
        del tile
        spares = _tile_pool._spares[ds]
        assert spares.held_bytes > 0
    assert spares.held_bytes == 0
    gc.collect()
    assert all(r() is None for r in refs)


def test_a_blocking_loop_of_short_streams_reuses_too(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, SPEC)
    with ngio_async.open(tmp_path) as ds:
        made = []
        for _ in range(4):
            with ds.tiles(prefetch=2) as tiles:
                for tile in tiles:
                    np.testing.assert_array_equal(tile.data, data[tile.region])
                del tile
                gc.collect()
                stream: Any = cast("tuple[Any, Any]", tiles.keep)[1]  # (dataset, stream)
            made.append(stream.array_pool.made)
        assert made[0] >= 1 and sum(made[1:]) < len(made[1:]), made  # (see above)
