"""A label written at level k with ``pyramid=True`` upsamples its finer levels from the pixels
just written, as the cascade builds the coarser ones from them: it read level k back first
(each object of the region once more: 4 requests for 3 on a one-chunk 0.4 label, 45 for 41
on a partial write of four objects)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.stores import open_store
from ngio_async.stores._instrumented import InstrumentedStore

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _by_level(store: InstrumentedStore) -> Counter[tuple[str, str]]:
    by = Counter[tuple[str, str]]()
    for (method, key), n in store.calls.items():
        by[(method, key.split("/")[0])] += n
    return by


async def _label(tmp_path: Path) -> InstrumentedStore:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(128, 128), dtype="uint8", axes="yx", chunks=(16, 16), levels=3,
        ngff_version="0.4",
    ) as ds:  # fmt: skip
        await (await ds.labels.create("cells", dtype="uint16")).aclose()
    return InstrumentedStore(open_store(url / "labels" / "cells"))


def _up(coarse: np.ndarray, f: int) -> np.ndarray:
    return np.repeat(np.repeat(coarse, f, 0), f, 1)


async def test_a_partial_write_at_level2_reads_its_objects_once(tmp_path: Path) -> None:
    store = await _label(tmp_path)
    rng = np.random.default_rng(5)
    async with await ngio_async.open_async(store, mode="r+") as lab:
        before = rng.integers(1, 9, (32, 32), dtype=np.uint16)
        await lab.write(before, level=2, pyramid=True)
        patch = rng.integers(10, 20, (16, 16), dtype=np.uint16)
        store.calls.clear()
        await lab.write(patch, level=2, pyramid=True, y=slice(4, 20), x=slice(4, 20))
        by = _by_level(store)
        # level 2's 4 objects read once each, by the write's own read-modify-write (8 when
        # the upsampling read them back)
        assert by[("get", "2")] == 4, by
        # level 1's objects the region's edges cut (patched); level 0's written whole
        assert by[("get", "1")] == 8 and by[("get", "0")] == 0, by
        assert sum(by.values()) == 41, by  # 45 before
        expected = before.copy()
        expected[4:20, 4:20] = patch
        assert (await lab.read(level=2) == expected).all()
        for j, f in ((0, 4), (1, 2)):
            assert (await lab.read(level=j) == _up(expected, f)).all()


async def test_a_masked_write_at_level1_reads_its_object_once(tmp_path: Path) -> None:
    store = await _label(tmp_path)
    async with await ngio_async.open_async(store, mode="r+") as lab:
        base = np.full((64, 64), 3, np.uint16)
        await lab.write(base, level=1, pyramid=True)
        ys, xs = np.array([1, 2, 5]), np.array([3, 3, 9])  # in level 1's first object
        store.calls.clear()
        await lab.write_points((ys, xs), np.uint16(7), level=1, pyramid=True)
        by = _by_level(store)
        # its read-modify-write, and the 4 objects under level 2's tile rebuilt from the
        # store (a masked write is not aligned to the downsampling): the upsampling reads
        # none (it read the object again: 12 requests for 11)
        assert by[("get", "1")] == 5 and sum(by.values()) == 11, by
        expected = base.copy()
        expected[ys, xs] = 7
        assert (await lab.read(level=1) == expected).all()
        assert (await lab.read(level=0) == _up(expected, 2)).all()


async def test_overlapping_tiles_of_a_writer_upsample_the_last(tmp_path: Path) -> None:
    """Tiles written over each other: the finer levels follow what level 1 holds at the end
    (parts written twice are read back, not taken in the order they were told)."""
    store = await _label(tmp_path)
    async with await ngio_async.open_async(store, mode="r+") as lab:
        async with lab.writer(1, pyramid=True) as w:
            await w.write(((slice(0, 24), slice(0, 24)), np.full((24, 24), 1, np.uint16)))
            await w.write(((slice(8, 32), slice(8, 32)), np.full((24, 24), 2, np.uint16)))
            await w.write(((slice(4, 12), slice(4, 12)), np.full((8, 8), 3, np.uint16)))
        level1 = await lab.read(level=1)
        expected = np.zeros((64, 64), np.uint16)
        expected[0:24, 0:24] = 1
        expected[8:32, 8:32] = 2
        expected[4:12, 4:12] = 3
        assert (level1 == expected).all()
        assert (await lab.read(level=0) == _up(expected, 2)).all()
