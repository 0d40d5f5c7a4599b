"""Runs of a remote sharded tile stream fetched ahead of their bytes that need part of a shard
(read by range: a region cutting the shards, or rows of shards in grid order), or several
shards compressed whole, make their tiles' arrays only once their bytes are reserved.

Such runs made their arrays when they started, before their GETs were answered: the runs
fetched ahead held decoded-size arrays besides their bodies. Counted on real loopback servers
(the runs whose arrays were made, the GETs held at the store), never timed; a shard replaced
between its index and its ranges is read again, one version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from servers import StaticServer
from test_fetchahead26_stream import FITS, NAME, HeldStore, still, until
from test_fetchahead27_ordered import DataHeld
from test_shard_outer_codecs import write_peer_image
from test_shard_versions import SwappingServer, _one_version, write_versions

import ngio_async
from ngio_async import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def count_arrays(level: Any) -> list[int]:
    """The tiles of each run whose arrays ``level`` made, from now on."""
    made: list[int] = []
    real = level._shard_groups

    def shard_groups(regions: Any, *args: Any, **kw: Any) -> Any:
        made.append(len(regions))
        return real(regions, *args, **kw)

    level._shard_groups = shard_groups
    return made


async def test_runs_of_part_of_a_shard_fetched_ahead_hold_no_arrays(
    http_images: tuple[StaticServer, dict[str, Any]],
) -> None:
    """Shard by shard (``ordered=False``), a region cutting the shards: each run reads its
    shard's part by range (its index first, not held)."""
    server, datas = http_images
    run = 6 * 16 * 32 * 2  # 48 of a shard's 64 rows: six tiles of 16 x 32
    store = DataHeld(open_store(server.url + NAME, limits=Limits(prefetch_bytes=4 * run)))
    region = (slice(0, 1), slice(16, 64), slice(0, 256))  # four runs: one more than fit
    async with ngio_async.open_async(store) as ds:
        made = count_arrays(ds.levels[0])
        got = np.zeros_like(datas[NAME])
        async with ds.tiles(shape=(1, 16, 32), region=region, ordered=False) as tiles:
            await until(lambda: store.asking == FITS + 1)  # every run's ranges asked for
            await still(lambda: not made)  # no arrays while they fetch
            store.let_go()
            await until(lambda: len(made) == FITS)  # those whose bytes are reserved
            await still(lambda: len(made) == FITS)
            store.release_all()
            async for tile in tiles:
                got[tile.region] = tile.data
        store.held = False
        want = await ds.read(0, y=slice(16, 64))
    assert np.array_equal(got[region], want) and np.array_equal(want, datas[NAME][region])
    assert len(made) == 4 and set(made) == {6}  # one run per shard, its six tiles


async def test_rows_of_shards_compressed_whole_fetched_ahead_hold_no_arrays(
    tmp_path: Path,
) -> None:
    """Grid order, shards compressed whole (zstd after ``sharding_indexed``): each run reads a
    row of three shards, each whole."""
    data = write_peer_image(tmp_path / "comp.zarr", "zstd")  # (2, 64, 96): 12 shards of 32
    server = StaticServer(tmp_path).start()
    try:
        run = 12 * 16 * 16 * 2  # a row of three shards: twelve tiles of 16 x 16
        limits = Limits(prefetch_bytes=4 * run, max_requests=16)
        store = HeldStore(open_store(server.url + "comp.zarr", limits=limits))
        async with ngio_async.open_async(store) as ds:
            made = count_arrays(ds.levels[0])
            got = np.zeros_like(data)
            async with ds.tiles(shape=(1, 16, 16)) as tiles:
                # the four rows' twelve GETs (two of shards not stored), more than fit
                await until(lambda: store.asking == 12)
                await still(lambda: not made)  # no arrays while they fetch
                store.release_all()
                order = []
                async for tile in tiles:
                    got[tile.region] = tile.data
                    order.append(tile.index)
        assert np.array_equal(got, data) and order == sorted(order)
        assert len(made) == 4 and set(made) == {12}
    finally:
        server.stop()


async def test_a_shard_replaced_between_its_index_and_ranges_reads_one_version(
    tmp_path: Path,
) -> None:
    """A run fetched ahead finds its shard replaced when reading its ranges (412): its index
    is read again, and its tiles are the new version's."""
    versions = write_versions(tmp_path)
    server = SwappingServer(versions.root)
    server.if_match = []
    server.versions = (versions.a, versions.b)
    server.start()
    try:
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.gets = 0
            server.swap_at = 2  # the index read, then the ranges find the shard replaced
            region = (slice(0, 16), slice(0, 32))  # two of its four inner chunks
            seen = [
                _one_version(tile.data, tile.region)
                async for tile in ds.tiles(shape=(16, 16), region=region)
            ]
        assert seen == ["B", "B"]
        assert server.gets == 4  # index, ranges (412), index again, ranges
    finally:
        server.stop()
