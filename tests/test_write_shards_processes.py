"""Two processes writing disjoint parts of the same shards lose none of each other's writes.

A partial-shard write is a read-modify-write of the whole shard object. Each of two spawned
workers writes, 20 times, its half of every shard of one image (a shared start time, so that
their read-modify-writes interleave): the image ends with both workers' last writes, on local
disk (an advisory lock of the shard's own lock file) and on S3 (moto on 127.0.0.1: a put
conditional on the version read, create-only when the shard was absent). Before, the last PUT
won and the other worker's half went back to an older value (or the fill value).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from processes import spawned_pool

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.pool import Pool
    from pathlib import Path

    from servers import S3Server

ROUNDS = 20
SHAPE = (16, 64)  # two shards of 16x32, each of four 8x8 chunks per half
SHARD = (16, 32)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with spawned_pool() as workers:
        yield workers


def _value(worker: int, rnd: int) -> int:
    return 100 * (worker + 1) + rnd


def _write_halves(args: tuple[str, dict[str, Any], int, float]) -> int:
    """In a worker: ``ROUNDS`` times, write this worker's half (left: 0, right: 1) of every
    shard, the shards at once."""
    url, options, worker, start = args

    async def main() -> None:
        async with ngio_async.open_async(url, mode="r+", **options) as ds:
            level = ds.levels[0]
            delay = start - time.time()
            if delay > 0:
                await anyio.sleep(delay)
            half = SHARD[1] // 2
            for rnd in range(ROUNDS):
                async with anyio.create_task_group() as tg:
                    for x0 in range(0, SHAPE[1], SHARD[1]):
                        lo = x0 + worker * half
                        region = (slice(0, SHAPE[0]), slice(lo, lo + half))
                        tg.start_soon(level.write, region, _value(worker, rnd))

    anyio.run(main)
    return worker


def _round(pool: Pool, url: str, options: dict[str, Any]) -> None:
    ngio_async.create(
        url, shape=SHAPE, dtype="uint16", axes="yx", chunks=(8, 8), shards=SHARD, levels=1,
        **options,
    ).close()  # fmt: skip
    start = time.time() + 0.3
    assert pool.map(_write_halves, [(url, options, w, start) for w in (0, 1)], chunksize=1) == [
        0,
        1,
    ]
    expected = np.empty(SHAPE, "uint16")
    half = SHARD[1] // 2
    for x0 in range(0, SHAPE[1], SHARD[1]):
        expected[:, x0 : x0 + half] = _value(0, ROUNDS - 1)
        expected[:, x0 + half : x0 + SHARD[1]] = _value(1, ROUNDS - 1)
    with ngio_async.open(url, **options) as ds:
        got = np.asarray(ds.levels[0][:])
    np.testing.assert_array_equal(got, expected)


def test_two_processes_write_halves_of_shards_on_disk(pool: Pool, tmp_path: Path) -> None:
    for i in range(2):
        url = str(tmp_path / f"i{i}.zarr")
        _round(pool, url, {})
        # the lock files are gone: only the shards and the metadata are stored
        names = sorted(p.name for p in (tmp_path / f"i{i}.zarr").rglob("*") if p.is_file())
        assert names == ["0", "1", "zarr.json", "zarr.json"], names


def test_two_processes_write_halves_of_shards_on_s3(pool: Pool, s3_server: S3Server) -> None:
    for _ in range(2):
        _round(pool, s3_server.fresh_url() + "/i.zarr", s3_server.options())
