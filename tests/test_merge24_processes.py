"""Six processes each ``write(ones, merge="sum")`` into the same region of one image at once:
every pixel ends up 6 (local files and moto S3). The merge happens inside each stored object's
own read-modify-write (its lock file on disk, a put conditional on the version read on S3,
merged again on a conflict). Before, the selection was read, summed and written back under a
lock of the open image only: processes overwrote each other's sums (pixels of 1 to 3).

Each worker's GETs are answered late (``LATE`` seconds: fault injection) so that the reads of
all six land before any write, as on a busy store."""

from __future__ import annotations

import multiprocessing
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import numpy as np
import pytest

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from servers import S3Server

pytestmark = pytest.mark.timeout(180)

WORKERS = 6
SHAPE = (40, 40)
REGION = (slice(4, 36), slice(6, 30))  # 20 chunks of 8x8 (14 partly), 6 shards of 16x16
LATE = 0.1  # seconds each GET of pixels is answered late

_barrier: Any = None


def _share(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


class LateReads(InstrumentedStore):
    """Hands on the answer to each GET of pixels ``LATE`` seconds after it came."""

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if method == "get" and "/c/" in key:
            await anyio.sleep(LATE)


def _merge_one(args: tuple[str, dict[str, Any]]) -> int:
    """In a worker: after the barrier, add 1 to every pixel of ``REGION``."""
    url, options = args

    async def main() -> None:
        store = LateReads(open_store(url, **options))
        async with ngio_async.open_async(store, mode="r+") as ds:
            await anyio.to_thread.run_sync(_barrier.wait, 120)
            ones = np.ones(tuple(s.stop - s.start for s in REGION), dtype="uint8")
            await ds.write(ones, y=REGION[0], x=REGION[1], merge="sum")

    anyio.run(main)
    return 1


def _run(url: str, options: dict[str, Any], shards: tuple[int, int] | Literal[False]) -> None:
    ngio_async.create(
        url, shape=SHAPE, dtype="uint16", axes="yx", chunks=(8, 8), shards=shards, levels=1,
        **options,
    ).close()  # fmt: skip
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WORKERS, initializer=_share, initargs=(ctx.Barrier(WORKERS),)) as pool:
        assert pool.map(_merge_one, [(url, options)] * WORKERS, chunksize=1) == [1] * WORKERS
    want = np.zeros(SHAPE, dtype="uint16")
    want[REGION] = WORKERS
    with ngio_async.open(url, **options) as ds:
        got = np.asarray(ds.levels[0][:])
    assert np.array_equal(got, want), f"pixels of the region: {sorted(set(got[REGION].flat))}"


def test_six_processes_sum_into_one_region_on_disk(tmp_path: Any) -> None:
    _run(str(tmp_path / "a.zarr"), {}, False)


def test_six_processes_sum_into_one_region_on_s3(s3_server: S3Server) -> None:
    _run(s3_server.fresh_url() + "/a.zarr", s3_server.options(), (16, 16))
