"""A label written at a coarser level with pyramid=True (or build_pyramid(from_level=k)) reads
each stored object of that level once to upsample the finer levels, and writes each finer
level's objects whole, once: it read a level-2 object once per level-0 tile over it (16 times)
and patched each level-1 object 4 times (a GET and a PUT each), 260 requests for 88."""

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


async def test_upsampling_reads_and_writes_each_object_once(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url,
        shape=(128, 128),
        dtype="uint8",
        axes="yx",
        chunks=(16, 16),
        levels=3,
        ngff_version="0.4",
    ) as ds:
        await (await ds.labels.create("cells", dtype="uint16")).aclose()
    store = InstrumentedStore(open_store(url / "labels" / "cells"))
    async with await ngio_async.open_async(store, mode="r+") as lab:
        coarse = np.random.default_rng(2).integers(0, 9, (32, 32), dtype=np.uint16)
        store.calls.clear()
        await lab.write(coarse, level=2, pyramid=True)
        by = Counter[tuple[str, str]]()
        for (method, key), n in store.calls.items():
            by[(method, key.split("/")[0])] += n
        assert by[("get", "2")] == 0  # level 2's pixels as just written (not read back)
        assert by[("get", "1")] == 0  # level 1's 16 objects written whole
        assert by[("put", "1")] == 16
        assert by[("put", "0")] == 64
        assert sum(by.values()) == 84, by
        for j, f in ((0, 4), (1, 2)):
            got = await lab.read(level=j)
            assert (got == np.repeat(np.repeat(coarse, f, 0), f, 1)).all()


async def test_sharded_finer_levels_written_whole_once(tmp_path: Path) -> None:
    """NGFF 0.5, shards of 4x4 chunks: a label written at level 3 patched each level-1 shard
    4 times and each level-2 shard 16 times (113 requests); each is written whole once now."""
    url = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        url, shape=(256, 256), dtype="uint8", axes="yx", chunks=(16, 16), shards=(64, 64),
        levels=4, ngff_version="0.5",
    ) as ds:  # fmt: skip
        await (await ds.labels.create("cells", dtype="uint16")).aclose()
    store = InstrumentedStore(open_store(url / "labels" / "cells"))
    async with await ngio_async.open_async(store, mode="r+") as lab:
        coarse = np.random.default_rng(3).integers(0, 9, (32, 32), dtype=np.uint16)
        store.calls.clear()
        await lab.write(coarse, level=3, pyramid=True)
        by = Counter[tuple[str, str]]()
        for (method, key), n in store.calls.items():
            by[(method, key.split("/")[0])] += n
        assert by[("get", "1")] == by[("get", "2")] == 0, by
        assert (by[("put", "0")], by[("put", "1")], by[("put", "2")]) == (16, 4, 1), by
        got = await lab.read(level=0)
        assert (got == np.repeat(np.repeat(coarse, 8, 0), 8, 1)).all()
