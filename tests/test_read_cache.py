"""``Limits.read_cache_bytes``: decoded chunks a read-only dataset keeps across region reads.

A plane read from chunks several planes deep decodes whole chunks; without a cache the next
plane (a viewer's z slider) fetches and decodes them again: 16 times over for chunks 16 planes
deep. The pool keeps them, least recently used dropped first, within its budget. Counted on a
real HTTP server, on moto S3 and on local files.
"""

from __future__ import annotations

import random
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec
from served import count_decodes, served_image

import ngio_async
from ngio_async import Limits
from ngio_async.images._reuse import ChunkPool, Fetch, Pending

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import StaticServer

pytestmark = pytest.mark.anyio

KIB = 1024


def _chunk(fill: int, nbytes: int = KIB) -> NDArray[Any]:
    return np.full(nbytes // 2, fill, dtype=np.uint16)


def _read(pool: ChunkPool, key: str, fill: int = 0, nbytes: int = KIB) -> Any:
    """Claim ``key`` at a level of ``nbytes`` chunks and, if asked to, keep it decoded."""
    view = pool.level(nbytes, threaded=True)
    got = view.claim(key, (0,), 1)
    if got is Fetch.KEEP:
        view.keep(key, _chunk(fill, nbytes))
    return got


# ------------------------------------------------------------------------------ the pool alone
def test_the_pool_keeps_chunks_and_drops_the_least_recently_used() -> None:
    pool = ChunkPool(3 * KIB)
    for key in "abc":
        assert _read(pool, key) is Fetch.KEEP
    assert pool.held_bytes == 3 * KIB
    got = _read(pool, "a")  # a hit: "a" becomes the most recently used
    assert isinstance(got, np.ndarray) and pool.hits == 1
    assert _read(pool, "d") is Fetch.KEEP  # drops "b", the least recently used
    assert isinstance(_read(pool, "a"), np.ndarray)
    assert isinstance(_read(pool, "c"), np.ndarray)
    assert _read(pool, "b") is Fetch.KEEP  # read again (it drops "d")
    assert isinstance(_read(pool, "c"), np.ndarray)
    assert pool.held_bytes == pool.peak_bytes == 3 * KIB


def test_the_budget_holds_for_chunks_of_several_sizes() -> None:
    pool = ChunkPool(10 * KIB)
    rng = np.random.default_rng(3)
    for i in range(500):
        size = int(rng.choice([1, 2, 4])) * KIB
        _read(pool, f"k{rng.integers(0, 40)}-{size}", nbytes=size)
        assert pool.held_bytes <= 10 * KIB, i
    assert pool.peak_bytes <= 10 * KIB
    assert pool.hits > 0


def test_a_chunk_larger_than_the_budget_is_read_once() -> None:
    pool = ChunkPool(KIB)
    assert _read(pool, "big", nbytes=2 * KIB) is Fetch.ONCE
    assert pool.held_bytes == 0


def test_chunks_being_read_are_waited_for_and_never_dropped() -> None:
    pool = ChunkPool(2 * KIB)
    view = pool.level(KIB, threaded=True)
    assert view.claim("a", (0,), 1) is Fetch.KEEP
    waiting = view.claim("a", (0,), 1)  # another read needs it while it is read
    assert isinstance(waiting, Pending)
    assert _read(pool, "b") is Fetch.KEEP
    assert _read(pool, "c") is Fetch.KEEP  # "b" goes, not "a" (being read)
    assert isinstance(_read(pool, "c"), np.ndarray)
    assert view.claim("d", (0,), 1) is Fetch.KEEP  # "c" goes: "a" and "d" being read
    assert view.claim("e", (0,), 1) is Fetch.ONCE  # no room: read, not kept
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(waiting.wait_blocking()))
    t.start()
    view.keep("a", _chunk(7))
    t.join(5)
    assert not t.is_alive()
    assert isinstance(got[0], np.ndarray) and int(got[0][0]) == 7
    assert pool.held_bytes == pool.peak_bytes == 2 * KIB


def test_a_failed_read_keeps_nothing_and_its_waiters_read_themselves() -> None:
    pool = ChunkPool(4 * KIB)
    view = pool.level(KIB, threaded=True)
    assert view.claim("a", (0,), 1) is Fetch.KEEP
    waiting = view.claim("a", (0,), 1)
    assert isinstance(waiting, Pending)
    assert pool.hits == 1
    view.keep("a", Fetch.FAILED)
    assert waiting.wait_blocking() is Fetch.FAILED
    assert pool.held_bytes == pool.hits == 0  # the waiter fetches it: not a hit
    assert view.claim("a", (0,), 1) is Fetch.KEEP  # asked again, not a hit


def test_missing_chunks_are_kept_as_none_and_clear_wakes_the_waiters() -> None:
    pool = ChunkPool(4 * KIB)
    view = pool.level(KIB, threaded=False)
    assert view.claim("gone", (0,), 1) is Fetch.KEEP
    view.keep("gone", None)
    assert view.claim("gone", (0,), 1) is None  # the fill value, no fetch
    assert pool.held_bytes == 0
    assert view.claim("x", (0,), 1) is Fetch.KEEP
    waiting = view.claim("x", (0,), 1)
    assert isinstance(waiting, Pending)
    assert pool.hits == 2
    pool.clear()
    assert waiting.chunk is Fetch.FAILED
    assert pool.hits == 1
    view.keep("x", _chunk(1))  # the read that was in flight ends: nothing is kept
    assert pool.held_bytes == 0
    assert view.claim("gone", (0,), 1) is Fetch.KEEP


# ------------------------------------------------------------------------ datasets reading
DEEP = Spec(version="0.5", shape=(1, 32, 64, 64), chunks=(1, 16, 32, 32), levels=1)
DEEP_SHARDED = Spec(
    version="0.5", shape=(1, 32, 64, 64), chunks=(1, 16, 32, 32), shards=(1, 32, 64, 64), levels=1
)
CHUNK = 16 * 32 * 32 * 2  # bytes of a decoded chunk: 32 KiB; a plane meets 4 of the 8
CACHED = Limits(read_cache_bytes=8 * CHUNK)


def _chunk_gets(server: StaticServer) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and "/0/c/" in r.path)


@pytest.fixture(params=["chunked", "sharded"])
def deep(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with served_image(tmp_path, DEEP if request.param == "chunked" else DEEP_SHARDED) as both:
        yield both


@pytest.mark.parametrize("where", ["file", "http"])
@pytest.mark.parametrize("cached", [True, False])
async def test_planes_of_deep_chunks_are_fetched_and_decoded_once(
    deep: tuple[StaticServer, NDArray[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    cached: bool,
) -> None:
    """A z slider over chunks 16 planes deep: 8 chunk decodes for 32 planes (128 without)."""
    server, data = deep
    decoded = count_decodes(monkeypatch)
    url = f"{server.url}img.zarr" if where == "http" else tmp_path / "img.zarr"
    async with ngio_async.open_async(url, limits=CACHED if cached else Limits()) as ds:
        server.reset()
        for z in [*range(32), *range(31, -1, -1)]:  # up and back down: all held
            np.testing.assert_array_equal(await ds.read(z=z), data[:, z])
        pool = ds.read_cache
        if not cached:
            assert pool is None
            assert len(decoded) == 2 * 32 * 4
            return
        assert pool is not None
        assert len(decoded) == 8
        assert pool.hits == 2 * 32 * 4 - 8
        assert pool.held_bytes == pool.peak_bytes == 8 * CHUNK
        if where == "http":
            assert _chunk_gets(server) <= 8 + 1  # (+ the shard index, read once)
    assert pool.held_bytes == 0  # closing the dataset drops them


async def test_the_blocking_api_and_concurrent_reads_share_the_pool(
    deep: tuple[StaticServer, NDArray[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, data = deep
    decoded = count_decodes(monkeypatch)
    with ngio_async.open(f"{server.url}img.zarr", limits=CACHED) as ds:
        for z in range(32):
            np.testing.assert_array_equal(ds[0, z], data[0, z])
        assert len(decoded) == 8
    decoded.clear()
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=CACHED) as ads:
        server.reset()
        got: list[NDArray[Any]] = []

        async def one(z: int) -> None:
            got.append(await ads.read(z=z))

        async with anyio.create_task_group() as tg:
            for z in [3] * 12 + [20] * 12:  # each chunk read by one, waited for by the rest
                tg.start_soon(one, z)
        assert sum(1 for g in got if np.array_equal(g, data[:, 3])) == 12
        assert sum(1 for g in got if np.array_equal(g, data[:, 20])) == 12
        assert len(decoded) == 8
        assert _chunk_gets(server) <= 8 + 1


def test_dask_blocks_of_deep_chunks_are_decoded_once(
    deep: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """napari over dask: each plane computes the blocks it meets (whole chunks 16 planes
    deep), again for every plane; the pool keeps them."""
    da = pytest.importorskip("dask.array")
    server, data = deep
    decoded = count_decodes(monkeypatch)
    with ngio_async.open(f"{server.url}img.zarr", limits=CACHED) as ds:
        arr = da.from_array(ds, chunks=ds.chunks)
        for z in range(32):
            np.testing.assert_array_equal(arr[0, z].compute(scheduler="threads"), data[0, z])
        assert len(decoded) == 8
        assert ds.read_cache is not None and ds.read_cache.hits == 32 * 4 - 8


@pytest.mark.parametrize("where", ["file", "http"])
async def test_random_regions_through_the_pool_equal_the_data(
    deep: tuple[StaticServer, NDArray[Any]], tmp_path: Path, where: str
) -> None:
    """Regions across chunk borders (a local read split among the decode threads, each
    piece read into its place), read twice: the second time from the pool."""
    server, data = deep
    url = f"{server.url}img.zarr" if where == "http" else tmp_path / "img.zarr"
    rng = random.Random(9)
    regions = []
    for _ in range(40):
        spans = []
        for n in data.shape:
            a = rng.randrange(n)
            spans.append(slice(a, rng.randint(a + 1, n)))
        regions.append(tuple(spans))
    async with ngio_async.open_async(url, limits=Limits(read_cache_bytes=16 * CHUNK)) as ds:
        pool = ds.read_cache
        assert pool is not None
        for _ in range(2):
            for region in regions:
                got = await ds.read(z=region[1], y=region[2], x=region[3])
                np.testing.assert_array_equal(got, data[:, region[1], region[2], region[3]])
        assert pool.held_bytes == 8 * CHUNK and pool.hits > 0


async def test_the_budget_holds_and_large_reads_pass_by(
    deep: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, data = deep
    decoded = count_decodes(monkeypatch)
    limits = Limits(read_cache_bytes=2 * CHUNK)  # half a plane's chunks
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=limits) as ds:
        pool = ds.read_cache
        assert pool is not None
        for z in range(32):
            np.testing.assert_array_equal(await ds.read(z=z, y=slice(0, 20)), data[:, z, :20])
        assert pool.peak_bytes <= 2 * CHUNK
        assert len(decoded) == 4  # two chunks per plane, both held: once per layer
        decoded.clear()
        np.testing.assert_array_equal(await ds.read(), data)  # 256 KiB: more than a quarter
        assert len(decoded) == 8
        assert pool.held_bytes <= 2 * CHUNK and pool.hits == 32 * 2 - 4


async def test_writable_datasets_keep_nothing(
    deep: tuple[StaticServer, NDArray[Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, data = deep
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+", limits=CACHED) as ds:
        assert ds.read_cache is None
        for z in range(4):
            np.testing.assert_array_equal(await ds.read(z=z), data[:, z])
        assert len(decoded) == 4 * 4


async def test_cancelled_reads_leave_nothing_pending(
    deep: tuple[StaticServer, NDArray[Any]],
) -> None:
    """Reads cancelled at random points (some while others wait for their chunks): the
    waiting reads finish, later reads equal the data, and no chunk stays claimed."""
    server, data = deep
    server.faults.delay = 0.003
    rng = random.Random(5)
    async with ngio_async.open_async(f"{server.url}img.zarr", limits=CACHED) as ds:
        pool = ds.read_cache
        assert pool is not None
        for _ in range(30):
            zs = [rng.randrange(32) for _ in range(6)]
            with anyio.move_on_after(rng.uniform(0, 0.01)):
                async with anyio.create_task_group() as tg:
                    for z in zs:
                        tg.start_soon(partial(ds.read, z=z))
            if rng.random() < 0.3:
                pool.clear()
        with anyio.fail_after(20):
            for z in range(0, 32, 5):
                np.testing.assert_array_equal(await ds.read(z=z), data[:, z])
        assert not any(isinstance(v, Pending) for v in pool._held.values())


async def test_a_list_of_planes_fetches_each_chunk_once(
    deep: tuple[StaticServer, NDArray[Any]],
) -> None:
    """``read(z=[0, 5, 3, 3])`` (no read cache): the four planes of one layer of chunks are
    read together, 4 chunk GETs (it was a read per pick: 16)."""
    server, data = deep
    async with ngio_async.open_async(f"{server.url}img.zarr") as ds:
        server.reset()
        got = await ds.read(z=[0, 5, 3, 3], y=slice(8, 60))
        np.testing.assert_array_equal(got, data[:, [0, 5, 3, 3], 8:60])
        assert _chunk_gets(server) <= 4 + 1  # (+ the shard index)
        np.testing.assert_array_equal(await ds.read(z=[20, 2], x=7), data[:, [20, 2]][..., 7])


@pytest.mark.parametrize("cached", [True, False])
async def test_a_tile_server_stepping_through_z_decodes_each_chunk_once(
    deep: tuple[StaticServer, NDArray[Any]], monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    """``ngio-async serve --read-cache`` (``create_app(..., limits=...)``): a viewer's tiles
    of 32 x 32 over every plane, 8 chunk decodes with the cache (128 without)."""
    from aiohttp.test_utils import TestClient, TestServer

    from ngio_async.web import create_app

    server, _ = deep
    limits = CACHED if cached else Limits()
    app = create_app({"deep": f"{server.url}img.zarr"}, tile_size=32, limits=limits)
    async with TestClient(TestServer(app)) as client:
        first = await client.get("/api/datasets/deep/tiles/0/0/0/0/0.png")
        assert first.status == 200
        decoded = count_decodes(monkeypatch)
        for z in range(32):
            for row, col in [(0, 0), (0, 1), (1, 0), (1, 1)]:
                resp = await client.get(f"/api/datasets/deep/tiles/0/0/{z}/{row}/{col}.png")
                assert resp.status == 200, await resp.text()
        assert len(decoded) == (7 if cached else 128)  # (the first chunk: read for the warm-up)


def test_serve_read_cache_reaches_the_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    from ngio_async.cli import _serve
    from ngio_async.cli.main import main

    seen: dict[str, Any] = {}

    async def fake_serve(datasets: object, host: str, port: int, **kw: Any) -> None:
        seen.update(kw)  # where serve_urls would open the datasets and listen

    monkeypatch.setattr(_serve, "serve_urls", fake_serve)
    assert main(["serve", "p.zarr", "--read-cache", "64", "--port", "0"]) == 0
    assert seen["options"]["limits"].read_cache_bytes == 64 << 20
    assert main(["serve", "p.zarr", "--port", "0"]) == 0
    assert "limits" not in seen["options"]
