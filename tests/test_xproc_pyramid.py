"""Processes writing one image with ``pyramid=True`` at once leave every lower level equal to
the pyramid rebuilt from level 0 (local files, moto S3).

Two spawned workers write a 64x64 image (16x16 shards, 3 levels) at once (a shared barrier):
either each one band of columns with one ``write(..., pyramid=True)`` (the bands meet inside
a level-1 tile), or each one colour of a checkerboard of 16x16 blocks through one
``writer(pyramid=True)``. Either way some level-1 tiles and the single level-2 tile hold pixels
of both. A worker rebuilding such a tile could read level 0 before the other's pixels landed
and write the tile after the other's own rebuild: the tile then missed them. The workers do so
for many fresh images in a row (one barrier each); then every level of every image is checked.

To make that interleaving likely (fault injection, not timing assertions), one worker of each
image (in turn) gets the answers to its GETs of level 0 late (the pixels are read when asked,
handed on ``HOLD`` seconds later), and the other starts up to ``HOLD / 2`` seconds after
the barrier. Without the coordination, most images ended with a stale tile.
"""

from __future__ import annotations

import multiprocessing
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from processes import spawned_pool

import ngio_async
from ngio_async.engine.pyramid import downsample
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from multiprocessing.pool import Pool
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.timeout(180)

SHAPE = (64, 64)
BLOCK = 16  # one level-0 shard
LEVELS = 3
IMAGES = 6  # per test: without the coordination, 96 of 120 ended with a stale tile
SPLIT = 16  # the band of worker 0: x < SPLIT (whole shards: written without a read)
HOLD = 0.2  # seconds a slow worker's reads of pixels are held

#: in the workers: the barrier both pass before writing each image
_barrier: Any = None


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    ctx = multiprocessing.get_context("spawn")
    with spawned_pool(_share, (ctx.Barrier(2),)) as workers:
        yield workers


def _share(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


class LateReads(InstrumentedStore):
    """Hands on the answer to each GET of pixels ``hold`` seconds after it came."""

    def __init__(self, inner: Any, hold: float) -> None:
        super().__init__(inner)
        self.hold = hold

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if method == "get" and "/c/" in key:
            await anyio.sleep(self.hold)


def _blocks(worker: int) -> list[tuple[slice, slice]]:
    """The blocks of ``worker`` in the ``writer`` case: one colour of the checkerboard."""
    return [
        (slice(y, y + BLOCK), slice(x, x + BLOCK))
        for y in range(0, SHAPE[0], BLOCK)
        for x in range(0, SHAPE[1], BLOCK)
        if (y // BLOCK + x // BLOCK) % 2 == worker
    ]


def _band(worker: int) -> slice:
    """The columns of ``worker`` in the one-write case."""
    return slice(0, SPLIT) if worker == 0 else slice(SPLIT, SHAPE[1])


def _mine(worker: int, writer: bool) -> np.ndarray[Any, Any]:
    """The pixels ``worker`` writes."""
    mask = np.zeros(SHAPE, bool)
    for box in _blocks(worker) if writer else [(slice(None), _band(worker))]:
        mask[box] = True
    return mask


def _pixels(worker: int, image: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng([worker, image]).integers(1, 60000, SHAPE, dtype="uint16")


def _write(args: tuple[list[str], dict[str, Any], int, bool]) -> int:
    """In a worker: for each image, after the barrier, write this worker's band with one
    ``write(..., pyramid=True)`` (``writer``: its blocks through one ``writer(pyramid=True)``)."""
    urls, options, worker, writer = args

    async def one(url: str, image: int) -> None:
        data = _pixels(worker, image)
        slow = image % 2 == worker
        store = LateReads(open_store(url, **options), HOLD if slow else 0.0)
        async with ngio_async.open_async(store, mode="r+") as ds:
            await anyio.to_thread.run_sync(_barrier.wait, 60)
            if not slow:
                await anyio.sleep(random.uniform(0, HOLD / 2))
            if writer:
                async with ds.writer(pyramid=True) as w:
                    for box in _blocks(worker):
                        await w.write((box, data[box]))
            else:
                x = _band(worker)
                await ds.write(data[:, x], x=x, pyramid=True)

    async def main() -> None:
        for i, url in enumerate(urls):
            await one(url, i)

    anyio.run(main)
    return worker


def _expected(level0: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    out = [level0]
    for _ in range(LEVELS - 1):
        out.append(downsample(out[-1], (2, 2), "mean"))
    return out


def _stale(url: str, image: int, options: dict[str, Any], writer: bool) -> list[str]:
    """The levels of the image at ``url`` that differ from the pyramid of the workers'
    pixels."""
    want0 = np.where(_mine(0, writer), _pixels(0, image), _pixels(1, image))
    with ngio_async.open(url, **options) as ds:
        got = [np.asarray(lvl[:]) for lvl in ds.levels]
    return [
        f"{url} level {i}"
        for i, want in enumerate(_expected(want0))
        if not np.array_equal(got[i], want)
    ]


def _run(pool: Pool, base: str, options: dict[str, Any], images: int, writer: bool) -> None:
    urls = [f"{base}/i{i}.zarr" for i in range(images)]
    for url in urls:
        ngio_async.create(
            url, shape=SHAPE, dtype="uint16", axes="yx", chunks=(8, 8), shards=(BLOCK, BLOCK),
            levels=LEVELS, **options,
        ).close()  # fmt: skip
    jobs = [(urls, options, worker, writer) for worker in (0, 1)]
    assert pool.map(_write, jobs, chunksize=1) == [0, 1]
    stale = [s for i, url in enumerate(urls) for s in _stale(url, i, options, writer)]
    images_stale = len({s.rsplit(" level", 1)[0] for s in stale})
    assert not stale, f"{images_stale} of {images} images with stale levels: {stale}"


def test_two_processes_write_bands_with_pyramid_on_disk(pool: Pool, tmp_path: Path) -> None:
    _run(pool, str(tmp_path), {}, images=IMAGES, writer=False)
    # the tiles' lock files are gone: only metadata and objects are stored
    assert not list(tmp_path.rglob("*#*"))


def test_two_processes_write_blocks_through_pyramid_writers_on_disk(
    pool: Pool, tmp_path: Path
) -> None:
    _run(pool, str(tmp_path), {}, images=IMAGES, writer=True)


def test_two_processes_write_bands_with_pyramid_on_s3(pool: Pool, s3_server: S3Server) -> None:
    _run(pool, s3_server.fresh_url(), s3_server.options(), images=IMAGES, writer=False)


def test_two_processes_write_blocks_through_pyramid_writers_on_s3(
    pool: Pool, s3_server: S3Server
) -> None:
    _run(pool, s3_server.fresh_url(), s3_server.options(), images=IMAGES, writer=True)
