"""Remote unsharded tile streams fetch a few tiles' chunks together (``store.get_many``).

Tiles that each lie inside one chunk of a remote unsharded level are read four per prefetch
item: one ``get_many`` (bare obstore calls started at once, a chunk two tiles share fetched
once) and one decode hand-off. Covered here: the planning predicate, request counts and equality
on a real HTTP server and on moto S3, the request limiter (no deadlock with fewer tokens than a
batch), early exits, and every fallback to one ``get`` per chunk (errors, the deadline, gzip
answers), with the tiles before a failing one delivered first. Also: region reads of remote
unsharded levels fetch their chunks 4 per ``get_many``, and ``Level.index_keys`` (counted, not
planned) names the shards a region needs only part of.
"""

from __future__ import annotations

import gc
import math
import random
import warnings
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from aiohttp import web
from images import Spec, upload, write_image
from served import count_decodes, served_image
from servers import Faults, StaticServer

import ngio_async
from ngio_async import Limits, PermissionDeniedError
from ngio_async.engine import tile_grid
from ngio_async.engine.plan import plan_shards
from ngio_async.images._dataset_tiles import _tiles_in_chunks
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

# 16 chunks of 16 x 16; tiles of 8 x 8: 64 tiles, two per chunk in each batch of four
IMAGE = Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 16, 16), levels=1)
TILE = (8, 8)


def _partly_written(shape: tuple[int, ...], fill: int, written: tuple[slice, ...]) -> Spec:
    """An unsharded image of 16 x 16 chunks with data only in ``written`` (the rest: fill)."""
    return Spec(
        version="0.5", shape=shape, chunks=(1, 16, 16), levels=1, fill_value=fill, written=written
    )


def _chunk_gets(server: StaticServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "GET" and "/0/c/" in r.path]


async def _tiles(ds: Any, **kwargs: Any) -> list[Any]:
    return [t async for t in ds.tiles(**kwargs)]


def _check(tiles: list[Any], data: np.ndarray[Any, Any], region: Any = ...) -> None:
    """Each tile equals the data; together they cover ``region`` once."""
    seen = np.zeros(data.shape, dtype=int)
    for t in tiles:
        np.testing.assert_array_equal(t.data, data[t.region])
        seen[t.region] += 1
    assert (seen[region] == 1).all()
    assert seen.sum() == seen[region].size


# ------------------------------------------------------------------------------ planning
def test_the_predicate_only_admits_tiles_inside_one_chunk() -> None:
    rng = random.Random(11)
    admitted = 0
    for _ in range(800):
        ndim = rng.randint(1, 3)
        shape = tuple(rng.randint(1, 50) for _ in range(ndim))
        chunks = tuple(rng.choice([1, 2, 4, 8, 16, 5, 12]) for _ in range(ndim))
        region = []
        for n in shape:
            a = rng.randint(0, n - 1)
            region.append(slice(a, rng.randint(a + 1, n)))
        tile = tuple(rng.choice([None, 1, 2, 3, 4, 8, 16]) for _ in range(ndim))
        halos = tuple(rng.choice([0, 0, 0, 1]) for _ in range(ndim))
        if not _tiles_in_chunks(region, tile, halos, chunks):
            continue
        admitted += 1
        _, specs = tile_grid(shape, tuple(region), tile, halos)
        for spec in specs:
            for r, c in zip(spec.region, chunks, strict=True):
                assert r.start // c == (r.stop - 1) // c, (shape, chunks, region, tile, spec)
    assert admitted > 100  # the sweep exercised the admitted side


def test_the_predicate_admits_storage_shaped_and_dividing_tiles() -> None:
    whole = (slice(0, 4), slice(0, 1000), slice(0, 1000))
    assert _tiles_in_chunks(whole, (1, 512, 512), (0, 0, 0), (1, 512, 512))
    assert _tiles_in_chunks(whole, (1, 256, 128), (0, 0, 0), (1, 512, 512))
    assert not _tiles_in_chunks(whole, (1, 384, 512), (0, 0, 0), (1, 512, 512))  # 384 ∤ 512
    assert not _tiles_in_chunks(whole, (1, 512, 512), (0, 4, 4), (1, 512, 512))  # halos
    assert not _tiles_in_chunks(whole, (2, 512, 512), (0, 0, 0), (1, 512, 512))
    one = (slice(2, 3), slice(520, 600), slice(0, 512))
    assert _tiles_in_chunks(one, (None, None, None), (0, 0, 0), (1, 512, 512))
    assert not _tiles_in_chunks(one, (None, None, 1024), (0, 0, 0), (1, 512, 512))


# ------------------------------------------------------------------------------ HTTP
@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[StaticServer, np.ndarray[Any, Any]]]:
    with served_image(tmp_path, IMAGE) as both:
        yield both


async def test_read_in_chunks_checks_each_region(
    served: tuple[StaticServer, np.ndarray[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regions inside one chunk (edges included) read as the data, each chunk fetched and
    decoded once; an empty one reads empty; one crossing a chunk border, or not a normalised
    region, is refused by name."""
    server, data = served
    decoded = count_decodes(monkeypatch)
    rng = random.Random(5)
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        lvl = ds.level(0)
        regions = []
        for _ in range(40):
            parts = [slice(0, 1)]
            for _axis in range(2):
                cy = rng.randrange(4) * 16
                a = cy + rng.randrange(16)
                parts.append(slice(a, rng.randint(a + 1, cy + 16)))
            regions.append(tuple(parts))
        server.reset()
        outs = await lvl.read_in_chunks(regions)
        for region, out in zip(regions, outs, strict=True):
            np.testing.assert_array_equal(out, data[region])
        chunks = {(r[1].start // 16, r[2].start // 16) for r in regions}
        assert len(chunks) < len(regions)  # (some regions share a chunk)
        assert len(_chunk_gets(server)) == len(set(decoded)) == len(decoded) == len(chunks)
        (empty,) = await lvl.read_in_chunks([(slice(0, 1), slice(20, 20), slice(0, 16))])
        assert empty.shape == (1, 0, 16)
        crossing = (slice(0, 1), slice(10, 20), slice(0, 8))
        with pytest.raises(ValueError, match=r"slice\(10, 20.*not inside one chunk"):
            await lvl.read_in_chunks([regions[0], crossing])
        with pytest.raises(ValueError, match="not a normalised"):
            await lvl.read_in_chunks([(slice(0, 1), slice(60, 70), slice(0, 8))])


@pytest.mark.parametrize("ordered", [True, False])
async def test_tiles_smaller_than_chunks_fetch_each_chunk_once(
    served: tuple[StaticServer, np.ndarray[Any, Any]], ordered: bool
) -> None:
    """Tiles smaller than the chunks are read in runs (a row of chunks in grid order, a chunk
    unordered; tests/test_tiles_chunk_runs.py): 16 GETs for 64 tiles of 16 chunks (32 in
    batches of four tiles along x, 64 one by one)."""
    server, data = served
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        stream = ds.tiles(shape=TILE, ordered=ordered)
        assert stream.tiles_per_call == 1  # (a run per prefetch item)
        tiles = [t async for t in stream]
    _check(tiles, data)
    if ordered:
        assert [t.index for t in tiles] == sorted(t.index for t in tiles)
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 16
    assert all(r.range is not None for r in server.requests if "/0/c/" in r.path)


async def test_chunk_shaped_tiles_are_one_get_each_and_missing_chunks_are_fill(
    tmp_path: Path,
) -> None:
    spec = _partly_written((2, 48, 40), 7, (slice(0, 1), slice(0, 30), slice(0, 40)))
    with served_image(tmp_path, spec) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.reset()
            stream = ds.tiles()  # one chunk each (edge chunks clipped)
            assert stream.tiles_per_call == 4
            tiles = [t async for t in stream]
            _check(tiles, data)
            assert (data[1] == 7).all()
            assert len(tiles) == 2 * 3 * 3
            stored = len([p for p in (tmp_path / "img.zarr" / "0" / "c").rglob("*") if p.is_file()])
            assert stored < len(tiles)  # some chunks were never written
            assert len(_chunk_gets(server)) == len(tiles)  # every chunk asked once, 404s too


async def test_the_aiohttp_client_and_wrapped_stores_read_one_tile_at_a_time(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = served
    async with ngio_async.open_async(server.url + "img.zarr", backend="aiohttp") as ds:
        stream = ds.tiles(shape=TILE)
        assert stream.tiles_per_call == 1  # its get_many would be one get each
        _check([t async for t in stream], data)
    inner = open_store(server.url + "img.zarr")
    async with InstrumentedStore(inner) as store:
        assert not store.gets_together
        async with ngio_async.open_async(store) as ds:
            assert ds.tiles(shape=TILE).tiles_per_call == 1


@pytest.mark.parametrize("max_requests", [1, 2, 3])
async def test_fewer_tokens_than_a_batch_bound_requests_without_deadlock(
    served: tuple[StaticServer, np.ndarray[Any, Any]], max_requests: int
) -> None:
    server, data = served
    limits = Limits(max_requests=max_requests)
    async with ngio_async.open_async(server.url + "img.zarr", limits=limits) as ds:
        server.reset()
        server.faults = Faults(delay=0.01)
        with anyio.fail_after(60):
            stream = ds.tiles(shape=(16, 16), ordered=False)  # 16 tiles, 4 batches of 4
            assert stream.tiles_per_call == 4
            tiles = [t async for t in stream]
            # three streams at once share the store's tokens
            results: list[list[Any]] = [[], [], []]

            async def one(i: int) -> None:
                results[i] = await _tiles(ds, shape=(8, 8), ordered=bool(i % 2))

            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(one, i)
        assert ds.store.limiter.borrowed_tokens == 0
    _check(tiles, data)
    for got in results:
        _check(got, data)
    assert server.peak_in_flight <= max_requests
    if max_requests > 1:
        assert server.peak_in_flight == max_requests  # batches do fill the limit


async def test_early_exits_leave_no_token_no_task_and_no_warning(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = served
    rng = random.Random(3)
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.faults = Faults(delay=0.005)
        async for _tile in ds.tiles(shape=TILE):  # bare: the dataset's tile owner starts
            break
        await anyio.sleep(0.05)
        tasks_before = len(anyio.get_running_tasks())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for i in range(25):
                stop_at = rng.randint(0, 20)
                mode = i % 3
                if mode == 0:  # break
                    async with ds.tiles(shape=TILE, ordered=bool(i % 2)) as tiles:
                        async for n, tile in _enumerate(tiles):
                            np.testing.assert_array_equal(tile.data, data[tile.region])
                            if n == stop_at:
                                break
                elif mode == 1:  # an error in the loop body of a bare loop
                    n = 0
                    try:
                        async for _tile in ds.tiles(shape=TILE):
                            if n == stop_at:
                                raise KeyError(n)
                            n += 1
                    except KeyError:
                        pass
                else:  # a timeout while requests are in flight
                    with anyio.move_on_after(0.002 * (stop_at + 1)):
                        await _tiles(ds, shape=TILE)
                # a bare loop's stream is cancelled by its owner: a few loop turns later (its
                # tasks end once their decode-thread calls return)
                with anyio.move_on_after(10):
                    while (  # noqa: ASYNC110 - polls state no event reports
                        ds.store.limiter.borrowed_tokens
                        or len(anyio.get_running_tasks()) != tasks_before
                    ):
                        await anyio.sleep(0.001)
                assert ds.store.limiter.borrowed_tokens == 0, i
                assert len(anyio.get_running_tasks()) == tasks_before, i
            gc.collect()


async def _enumerate(tiles: Any) -> Any:
    n = 0
    async for tile in tiles:
        yield n, tile
        n += 1


async def test_busy_answers_fall_back_to_gets_with_retries(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = served
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        server.faults = Faults(status=503, status_times=3)
        tiles = await _tiles(ds, shape=TILE)
    _check(tiles, data)
    gets = _chunk_gets(server)
    # 16 chunks, each in one run's get_many (tests/test_tiles_chunk_runs.py); the failed
    # get_many calls (at most 3, of 4 chunks each) again, one get per chunk, and retries
    assert 16 < len(gets) <= 16 + 3 + 4 * 3


class _PerPath(StaticServer):
    """Answers ``403`` for the paths in ``denied``, and waits ``slow[path]`` seconds the first
    time a path in ``slow`` is asked for."""

    denied: set[str]
    slow: dict[str, float]

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if path in self.denied:
            return web.Response(status=403, text="no")
        wait = self.slow.pop(path, 0.0)
        if wait:
            await anyio.sleep(wait)
        return await super()._answer(request, path, faults)


def _per_path(root: Path) -> _PerPath:
    server = _PerPath(root)
    server.denied, server.slow = set(), {}
    return server.start()


async def test_a_denied_chunk_fails_after_the_tiles_before_it(tmp_path: Path) -> None:
    data = write_image(tmp_path / "img.zarr", IMAGE)[0]
    server = _per_path(tmp_path)
    try:
        server.denied.add("/img.zarr/0/c/0/1/2")  # chunk (y=1, x=2): tiles of rows 16-31
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            got: list[Any] = []

            async def collect() -> None:
                async for tile in ds.tiles(shape=TILE):
                    got.append(tile)  # noqa: PERF401 - the tiles before the error are kept

            with pytest.raises(PermissionDeniedError, match=r"0/c/0/1/2"):
                await collect()
            assert ds.store.limiter.borrowed_tokens == 0
        # in grid order, every tile before the first one in the denied chunk
        first_bad = next(
            i
            for i, (y, x) in enumerate((y, x) for y in range(8) for x in range(8))
            if y // 2 == 1 and x // 2 == 2
        )
        assert [t.index[1:] for t in got] == [(y, x) for y in range(8) for x in range(8)][
            :first_bad
        ]
        for t in got:
            np.testing.assert_array_equal(t.data, data[t.region])
    finally:
        server.stop()


async def test_a_request_past_the_deadline_is_asked_again_alone(tmp_path: Path) -> None:
    data = write_image(tmp_path / "img.zarr", IMAGE)[0]
    server = _per_path(tmp_path)
    try:
        server.slow["/img.zarr/0/c/0/2/1"] = 1.5
        limits = Limits(timeout=0.4)
        async with ngio_async.open_async(server.url + "img.zarr", limits=limits) as ds:
            with anyio.fail_after(30):
                tiles = await _tiles(ds, shape=TILE)
            assert ds.store.limiter.borrowed_tokens == 0
        _check(tiles, data)
        paths = [r.path for r in server.requests if r.method == "GET"]
        assert paths.count("/img.zarr/0/c/0/2/1") >= 2  # the slow one, then again, on time
    finally:
        server.stop()


async def test_gzip_encoded_answers_are_decoded_by_the_fallback(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = served
    server.faults = Faults(gzip_stored=True)
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        tiles = await _tiles(ds, shape=TILE)
        assert not ds.store.gets_together  # an object came Content-Encoded: plain GETs
    _check(tiles, data)


async def test_get_many_equals_get_in_order(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, _ = served
    keys = ["0/c/0/0/0", "0/c/0/3/3", "0/c/0/9/9", "zarr.json", "0/c/0/0/0"]
    async with open_store(server.url + "img.zarr") as store:
        one = [await store.get(k) for k in keys]  # (the first GETs: aiohttp, then obstore's)
        assert store.gets_together
        server.reset()
        many = await store.get_many(keys)
        assert [None if b is None else bytes(b) for b in many] == [
            None if b is None else bytes(b) for b in one
        ]
        assert many[2] is None
        assert len(server.requests) == len(keys)
        assert all(r.agent == server.requests[0].agent for r in server.requests)
        assert store.limiter.borrowed_tokens == 0
    async with InstrumentedStore(open_store(server.url + "img.zarr")) as counted:
        many = await counted.get_many(keys)  # the default: one get each, concurrently
        assert counted.method_counts["get"] == len(keys)
        assert many[2] is None and bytes(many[0] or b"") == bytes(one[0] or b"")


# ------------------------------------------------------------------------------ S3 (moto)
async def test_s3_tiles_together_equal_the_image(s3_server: S3Server, tmp_path: Path) -> None:
    data = write_image(tmp_path / "img.zarr", IMAGE)[0]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(tmp_path / "img.zarr", store)
        assert store.gets_together
        got = await store.get_many(["0/c/0/0/0", "missing", "0/c/0/1/1"])
        assert got[1] is None
        assert bytes(got[0] or b"") == bytes(await store.get("0/c/0/0/0") or b"")
        assert bytes(got[2] or b"") == bytes(await store.get("0/c/0/1/1") or b"")
        assert store.limiter.borrowed_tokens == 0
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        strip = (slice(0, 1), slice(16, 48), slice(0, 64))  # 8 chunks, 8 tiles
        stream = ds.tiles(shape=(16, 16), region=strip, ordered=False)
        assert stream.tiles_per_call == 4
        _check([t async for t in stream], data, strip)
        strip = (slice(0, 1), slice(8, 40), slice(0, 64))  # 12 chunks, 32 tiles: runs
        _check([t async for t in ds.tiles(shape=(8, 8), region=strip, ordered=False)], data, strip)
        async with ds.tiles(shape=(8, 8)) as some:
            async for n, _tile in _enumerate(some):
                if n == 5:
                    break
        assert ds.store.limiter.borrowed_tokens == 0


# ------------------------------------------------------------------------------ region reads
async def test_region_reads_fetch_chunks_together_once_each(tmp_path: Path) -> None:
    spec = _partly_written((2, 64, 64), 3, (slice(0, 2), slice(0, 40), slice(0, 64)))
    with served_image(tmp_path, spec) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            level = ds.level(0)
            assert ds.store.gets_together
            calls: list[int] = []  # a spy on the real method: keys per get_many call
            real = ds.store.get_many

            async def spied(keys: Any) -> Any:
                calls.append(len(keys))
                return await real(keys)

            ds.store.get_many = spied  # type: ignore[method-assign]
            for region in (
                (slice(0, 2), slice(5, 61), slice(3, 64)),  # 2 x 4 x 4 chunks, partly
                (slice(1, 2), slice(30, 34), slice(0, 64)),  # across a chunk border
                (slice(0, 1), slice(0, 64), slice(17, 18)),  # one column of chunks
            ):
                server.reset()
                got = await level.read(region)
                np.testing.assert_array_equal(got, data[region])
                gets = _chunk_gets(server)
                assert len(gets) == len(set(gets))  # each chunk once, missing ones too
                spans = [
                    -(-r.stop // c) - r.start // c for r, c in zip(region, spec.chunks, strict=True)
                ]
                assert len(gets) == int(np.prod(spans))
                assert sum(calls) == len(gets)  # all of them by get_many, 4 at a time
                assert max(calls) == min(4, len(gets))
                calls.clear()
            assert ds.store.limiter.borrowed_tokens == 0
            assert (
                np.asarray(await level.read((slice(0, 2), slice(48, 64), slice(0, 64)))) == 3
            ).all()


# ------------------------------------------------------------------------------ index keys
async def test_index_keys_are_the_shards_a_region_needs_only_part_of(tmp_path: Path) -> None:
    spec = Spec(version="0.5", shape=(2, 90, 70), chunks=(1, 8, 8), shards=(1, 32, 16), levels=1)
    write_image(tmp_path / "img.zarr", spec)
    rng = random.Random(5)
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        level = ds.level(0)
        codec = level.codec
        per_shard = math.prod(codec.chunks_per_shard)  # type: ignore[union-attr]
        for _ in range(300):
            region = []
            for n in level.shape:
                a = rng.randint(0, n - 1)
                region.append(slice(a, rng.randint(a + 1, n)))
            region_t = tuple(region)
            # the planned answer: shards whose plan holds fewer inner chunks than a shard
            want = [
                "0/" + plan.key
                for plan in plan_shards(level.meta, region_t)
                if len(plan.chunks) < per_shard
            ]
            assert level.index_keys(region_t) == want, region_t
        whole = (slice(0, 1), slice(0, 32), slice(0, 16))  # one whole shard: no index needed
        assert level.index_keys(whole) == []
        assert level.index_keys((slice(0, 1), slice(0, 24), slice(0, 16))) == ["0/c/0/0/0"]
