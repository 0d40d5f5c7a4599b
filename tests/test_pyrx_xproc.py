"""Processes that each write a region of level 0 (no pyramid) and then call
``build_pyramid(regions=[their region])`` at once leave every lower level equal to the pyramid
rebuilt from level 0 (local files, moto S3); a single process pays nothing for it on local
disk and one GET per tile reaching past its regions on S3.

Two spawned workers write one band of columns each of a 64x64 image (16x16 shards, 3 levels;
the bands meet inside a level-1 tile, and the level-2 tile holds both). A worker rebuilding a
tile of both could read level 0 (or level 1) before the other's pixels landed and store the
tile after the other's own rebuild: the tile then missed them. As in test_xproc_pyramid.py,
one worker of each image gets the answers to its GETs of pixels late (fault injection) and
the other starts up to ``HOLD / 2`` seconds after the barrier; several images in a row
(with the tiles rebuilt plainly, as before, 5 of 6 images ended stale, on disk and on S3).
"""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from processes import spawned_pool

import ngio_async
from ngio_async.engine.pyramid import downsample
from ngio_async.images import _pyramid
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from multiprocessing.pool import Pool
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.timeout(180)

SHAPE = (64, 64)
LEVELS = 3
IMAGES = 6
SPLIT = 16  # worker 0 writes x < SPLIT (whole level-0 shards: written without a read)
HOLD = 0.2  # seconds a slow worker's reads of pixels are held

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


def _band(worker: int) -> slice:
    return slice(0, SPLIT) if worker == 0 else slice(SPLIT, SHAPE[1])


def _pixels(worker: int, image: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng([worker, image]).integers(1, 60000, SHAPE, dtype="uint16")


def _build(args: tuple[list[str], dict[str, Any], int]) -> int:
    """In a worker: for each image, after the barrier, write this worker's band of level 0,
    then ``build_pyramid(regions=[band])``."""
    urls, options, worker = args

    async def one(url: str, image: int) -> None:
        x = _band(worker)
        slow = image % 2 == worker
        store = LateReads(open_store(url, **options), HOLD if slow else 0.0)
        async with ngio_async.open_async(store, mode="r+") as ds:
            await anyio.to_thread.run_sync(_barrier.wait, 60)
            if not slow:
                await anyio.sleep(random.uniform(0, HOLD / 2))
            await ds.write(_pixels(worker, image)[:, x], x=x)
            await ds.build_pyramid(regions=[(slice(None), x)])

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


def _stale(url: str, image: int, options: dict[str, Any]) -> list[str]:
    want0 = _pixels(1, image)
    want0[:, _band(0)] = _pixels(0, image)[:, _band(0)]
    with ngio_async.open(url, **options) as ds:
        got = [np.asarray(lvl[:]) for lvl in ds.levels]
    return [
        f"{url} level {i}"
        for i, want in enumerate(_expected(want0))
        if not np.array_equal(got[i], want)
    ]


def _create(url: str, options: dict[str, Any]) -> None:
    ngio_async.create(
        url, shape=SHAPE, dtype="uint16", axes="yx", chunks=(8, 8), shards=(16, 16),
        levels=LEVELS, **options,
    ).close()  # fmt: skip


def _run(pool: Pool, base: str, options: dict[str, Any]) -> None:
    urls = [f"{base}/i{i}.zarr" for i in range(IMAGES)]
    for url in urls:
        _create(url, options)
    jobs = [(urls, options, worker) for worker in (0, 1)]
    assert pool.map(_build, jobs, chunksize=1) == [0, 1]
    stale = [s for i, url in enumerate(urls) for s in _stale(url, i, options)]
    images_stale = len({s.rsplit(" level", 1)[0] for s in stale})
    assert not stale, f"{images_stale} of {IMAGES} images with stale levels: {stale}"


def test_two_processes_build_their_regions_on_disk(pool: Pool, tmp_path: Path) -> None:
    _run(pool, str(tmp_path), {})
    assert not list(tmp_path.rglob("*#*"))  # the tiles' lock files are gone


def test_two_processes_build_their_regions_on_s3(pool: Pool, s3_server: S3Server) -> None:
    _run(pool, s3_server.fresh_url(), s3_server.options())


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["disk", "s3"])
async def test_the_requests_of_one_process(
    where: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, a region build costs one GET more per lower tile reaching past its regions on
    S3 (the tile's version, read before its source), nothing more on disk; a build over the
    whole image costs what a build without regions does."""
    if where == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        url, options = server.fresh_url() + "/a.zarr", server.options()
    else:
        url, options = str(tmp_path / "a.zarr"), {}
    _create(url, options)
    store = InstrumentedStore(open_store(url, **options))
    data = _pixels(0, 0)
    async with ngio_async.open_async(store, mode="r+") as ds:
        await ds.write(data)
        store.reset()
        await ds.build_pyramid()
        full = dict(store.method_counts)
        store.reset()
        await ds.build_pyramid(regions=[(slice(None), slice(None))])
        assert store.method_counts == full
        left = (slice(None), slice(0, 16))
        counts = []
        for plain in (True, False):  # the rebuild as it was (plain puts), and as it is now
            data[left] += 1
            await ds.write(data[left], x=left[1])
            store.reset()
            with monkeypatch.context() as patch:
                if plain:
                    patch.setattr(_pyramid, "_beyond", lambda *_: lambda *_: False)
                await ds.build_pyramid(regions=[left])
            counts.append(store.calls.copy())
        levels = [await lvl[...] for lvl in ds.levels]
    # the level-1 tiles over the left 32 columns and the level-2 tile reach past the left 16
    extra = counts[1] - counts[0]
    tiles = {"1/c/0/0", "1/c/1/0", "2/c/0/0"}
    assert dict(extra) == ({("get", k): 1 for k in tiles} if where == "s3" else {})
    assert counts[0] - counts[1] == Counter()
    for got, want in zip(levels, _expected(data), strict=True):
        np.testing.assert_array_equal(got, want)
