"""A tile stream keeps the decoded chunks its later runs need (``Limits.cache_bytes``).

Plane tiles of chunks several planes deep, in grid order (the default: ``ordered=True``), came
back to each chunk once per plane, a whole layer of chunks later: each chunk was fetched and
decoded once per plane (4 times over for chunks 4 planes deep, 16 for 16). A halo reached into
the next row's chunks, read again with that row. The stream counts how many of its tiles need
each chunk (``engine.chunk_uses``), keeps a chunk while the budget has room and drops it at its
last use. Counted on a real HTTP server, on moto S3 and on local files.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec, write_image
from served import count_decodes, served_image
from test_tiles_chunk_runs import DEEP, _check as _check_cover, _chunk_gets

import ngio_async
from ngio_async.engine import chunk_uses, tile_grid

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = pytest.mark.anyio

CHUNK_BYTES = 4 * 16 * 16 * 2  # a chunk of DEEP: 4 planes of 16 x 16 uint16


def _check(tiles: list[Any], data: np.ndarray[Any, Any]) -> None:
    """Each tile equals the data, in grid order; their cores cover the image once."""
    _check_cover(tiles, data)
    assert [t.index for t in tiles] == sorted(t.index for t in tiles)


@pytest.fixture
def deep(tmp_path: Path) -> Any:
    with served_image(tmp_path, DEEP) as both:
        yield both


def test_a_use_waiting_for_a_failed_read_is_not_a_hit() -> None:
    from ngio_async.images._reuse import ChunkReuse, Fetch, Pending

    cache = ChunkReuse(4 * CHUNK_BYTES, lambda coords: 3, CHUNK_BYTES, threaded=True)
    assert cache.claim("k", (0,), 1) is Fetch.KEEP
    waiting = cache.claim("k", (0,), 1)
    assert isinstance(waiting, Pending) and cache.hits == 1
    cache.keep("k", Fetch.FAILED)  # the run reading it failed: the waiter reads it itself
    assert waiting.wait_blocking() is Fetch.FAILED
    assert cache.hits == cache.held_bytes == 0
    assert cache.claim("k", (0,), 1) is Fetch.ONCE  # its last use: read, not kept
    assert isinstance(cache.claim("j", (1,), 1), Fetch)
    waiting = cache.claim("j", (1,), 1)
    assert isinstance(waiting, Pending) and cache.hits == 1
    cache.clear()  # the stream ended early
    assert waiting.chunk is Fetch.FAILED and cache.hits == 0


# ---------------------------------------------------------------------------- the counting
@pytest.mark.parametrize("seed", range(40))
def test_chunk_uses_counts_the_tiles_reading_each_chunk(seed: int) -> None:
    """Against walking the grid: every chunk's count equals the tiles whose region (halo
    included) reaches into it, for random shapes, regions, tiles, halos and list picks."""
    rng = random.Random(seed)
    ndim = rng.randint(1, 4)
    shape = tuple(rng.randint(1, 23) for _ in range(ndim))
    chunks = tuple(rng.randint(1, 9) for _ in range(ndim))
    region = []
    for n in shape:
        a = rng.randint(0, n - 1)
        region.append(slice(a, rng.randint(a + 1, n)))
    tile = [rng.choice([None, 1, 2, 3, 5, 8]) for _ in range(ndim)]
    overlap = [rng.choice([0, 0, 1, 3]) for _ in range(ndim)]
    picks: dict[int, set[int]] = {}
    if rng.random() < 0.5:
        axis = rng.randrange(ndim)
        tile[axis] = 1
        span = range(region[axis].start, region[axis].stop)
        picks[axis] = set(rng.sample(span, rng.randint(0, len(span))))
    _, specs = tile_grid(shape, tuple(region), tile, overlap)
    want: dict[tuple[int, ...], int] = {}
    for spec in specs:
        if not all(spec.core[a].start in keep for a, keep in picks.items()):
            continue
        ranges = [
            range(s.start // c, (s.stop - 1) // c + 1)
            for s, c in zip(spec.region, chunks, strict=True)
        ]
        for coords in itertools.product(*ranges):
            want[coords] = want.get(coords, 0) + 1
    uses = chunk_uses(shape, tuple(region), tile, overlap, chunks, picks)
    grid = [range(-(-n // c)) for n, c in zip(shape, chunks, strict=True)]
    for coords in itertools.product(*grid):
        assert uses(coords) == want.get(coords, 0), coords


# ------------------------------------------------------------------------------ over HTTP
async def test_ordered_plane_tiles_of_deep_chunks_read_each_chunk_once(
    deep: tuple[StaticServer, np.ndarray[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default tiles in grid order: 64 tiles, 16 GETs and 16 decodes (was 64 of each); every
    kept chunk dropped by the end."""
    server, data = deep
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        stream = ds.tiles()
        tiles = [t async for t in stream]
    _check(tiles, data)
    assert len(tiles) == 64
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 16
    assert len(decoded) == len(set(decoded)) == 16
    cache = stream.chunk_cache
    assert cache is not None
    assert cache.hits == 48 and cache.held_bytes == 0
    assert 0 < cache.peak_bytes <= 16 * CHUNK_BYTES


async def test_without_a_cache_each_plane_reads_its_chunks_again(
    deep: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    """``cache_bytes=0``: what the cache saves, 4 GETs of each chunk, one per plane."""
    server, data = deep
    limits = ngio_async.Limits(cache_bytes=0)
    async with ngio_async.open_async(server.url + "img.zarr", limits=limits) as ds:
        server.reset()
        stream = ds.tiles()
        tiles = [t async for t in stream]
    _check(tiles, data)
    assert stream.chunk_cache is None
    gets = _chunk_gets(server)
    assert len(gets) == 64 and len(set(gets)) == 16


@pytest.mark.parametrize("kept", [1, 2, 3])
async def test_a_budget_smaller_than_a_layer_keeps_the_first_chunks(
    deep: tuple[StaticServer, np.ndarray[Any, Any]], kept: int
) -> None:
    """Room for ``kept`` of a layer's 4 chunks, one tile in flight: those are read once, the
    others once per plane (4 layers x (kept + 4 x (4 - kept)) GETs). With the default window
    (every tile of a layer in flight at once: the chunks of one layer still reserved while
    the next is claimed) fewer are kept. The budget holds either way."""
    server, data = deep
    limits = ngio_async.Limits(cache_bytes=kept * CHUNK_BYTES)
    async with ngio_async.open_async(server.url + "img.zarr", limits=limits) as ds:
        for prefetch in (1, None):
            server.reset()
            stream = ds.tiles(prefetch=prefetch)
            tiles = [t async for t in stream]
            _check(tiles, data)
            gets = _chunk_gets(server)
            if prefetch == 1:
                assert len(gets) == 4 * (kept + 4 * (4 - kept))
            else:
                assert 4 * (kept + 4 * (4 - kept)) <= len(gets) < 64
            cache = stream.chunk_cache
            assert cache is not None
            assert cache.peak_bytes <= kept * CHUNK_BYTES and cache.held_bytes == 0


async def test_halo_tiles_in_grid_order_read_each_chunk_once(
    deep: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    """8 x 8 tiles with a halo of 3, in grid order: the halo's neighbour chunks are kept for
    the next row of tiles instead of read again (each chunk once)."""
    server, data = deep
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        tiles = [t async for t in ds.tiles(shape=(8, 8), overlap=3)]
    assert len(tiles) == 2 * 8 * 16
    _check(tiles, data)
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 16


async def test_a_picked_list_of_planes_counts_only_its_tiles(
    deep: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    """``z=[0, 2, 5]``: chunks of z 0-3 serve two planes, those of z 4-7 one; each is read
    once and nothing stays kept for the planes not picked."""
    server, data = deep
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        stream = ds.tiles(z=[0, 2, 5])
        tiles = [t async for t in stream]
    assert sorted({t.core[1].start for t in tiles}) == [0, 2, 5]
    for t in tiles:
        np.testing.assert_array_equal(t.data, data[t.region])
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 16
    assert stream.chunk_cache is not None and stream.chunk_cache.held_bytes == 0


@pytest.mark.parametrize("how", ["break", "async with"])
async def test_leaving_early_drops_the_kept_chunks(
    deep: tuple[StaticServer, np.ndarray[Any, Any]], how: str
) -> None:
    """After 6 of 64 tiles the stream holds chunks for the planes to come; closing the
    iterator (or leaving ``async with``) drops them."""
    server, _ = deep
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        stream = ds.tiles(prefetch=2)
        cache = stream.chunk_cache
        assert cache is not None
        if how == "break":
            tiles = stream.__aiter__()
            for _ in range(6):
                await tiles.__anext__()
            held = cache.held_bytes
            await tiles.aclose()
        else:
            async with stream as tiles:
                for _ in range(6):
                    await tiles.__anext__()
                held = cache.held_bytes
        assert held > 0
        assert cache.held_bytes == 0


@pytest.mark.parametrize("where", ["http", "local"])
async def test_early_exits_leave_nothing_in_flight_or_kept(
    deep: tuple[StaticServer, np.ndarray[Any, Any]], tmp_path: Path, where: str
) -> None:
    """30 times over: a ``break`` after tile k, an exception in the loop body, or a timeout
    while runs wait for chunks other runs are reading: no request or decode left in flight,
    no kept chunk, no task left, and the next stream reads every tile right."""
    server, data = deep
    url: Any = server.url + "img.zarr" if where == "http" else tmp_path / "local.zarr"
    if where == "local":
        write_image(url, DEEP)
    rng = random.Random(7)
    async with ngio_async.open_async(url, limits=ngio_async.Limits(max_requests=4)) as ds:
        before = asyncio.all_tasks()
        for i in range(30):
            stream = ds.tiles()
            cache = stream.chunk_cache
            assert cache is not None
            stop = rng.randrange(1, 40)
            how = i % 3
            with contextlib.suppress(ValueError, TimeoutError):
                with anyio.fail_after(0.005 if how == 2 else 30):
                    async with stream as tiles:
                        n = 0
                        async for tile in tiles:
                            np.testing.assert_array_equal(tile.data, data[tile.region])
                            n += 1
                            if n == stop and how == 0:
                                break
                            if n == stop and how == 1:
                                raise ValueError("the loop body failed")
            assert cache.held_bytes == 0
            assert ds.store.limiter.borrowed_tokens == 0
            assert not {t for t in asyncio.all_tasks() - before if not t.done()}
        tiles_ = [t async for t in ds.tiles()]
    _check(tiles_, data)


# ------------------------------------------------------------------------------ local disk
@pytest.mark.parametrize(
    ("cache", "prefetch", "decodes"), [(None, None, 16), (0, None, 64), (2 * CHUNK_BYTES, 1, 40)]
)
async def test_local_ordered_plane_tiles_decode_each_chunk_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cache: int | None,
    prefetch: int | None,
    decodes: int,
) -> None:
    """On local files the runs claim chunks in the decode threads (a chunk another thread is
    reading is waited for, not read twice): 16 decodes, 64 without the cache, 40 with room
    for 2 chunks of a layer's 4 (one tile in flight: the count does not hang on timing)."""
    data = write_image(tmp_path / "img.zarr", DEEP)[0]
    decoded = count_decodes(monkeypatch)
    limits = ngio_async.Limits() if cache is None else ngio_async.Limits(cache_bytes=cache)
    async with ngio_async.open_async(tmp_path / "img.zarr", limits=limits) as ds:
        tiles = [t async for t in ds.tiles(prefetch=prefetch)]
    _check(tiles, data)
    assert len(decoded) == decodes and len(set(decoded)) == 16


@pytest.mark.parametrize(
    ("per_axis", "grid", "run"),
    [
        ((1, 16, 1, 2), (1, 32, 2, 2), 2),  # plane tiles of shards 16 deep: one row of a plane
        ((1, 16, 1, 4), (1, 32, 4, 4), 4),
        ((1, 1, 8, 16), (1, 4, 16, 16), 128),  # a row of shards, one plane: all of it
        ((1, 4, 2, 2), (1, 4, 2, 2), 16),  # the whole grid
        ((2, 1, 1, 3), (2, 1, 1, 6), 3),
    ],
)
def test_a_run_in_grid_order_counts_the_tiles_that_come_together(
    per_axis: tuple[int, ...], grid: tuple[int, ...], run: int
) -> None:
    """The window in runs assumed a run holds every tile of its block (a row of shards 16
    planes deep: 16 planes' tiles), though in grid order only one plane's row comes together:
    runs 8x smaller than assumed left 3 runs in flight (1.5 planes), not a layer's worth."""
    from ngio_async.images._dataset_tiles import _consecutive

    assert _consecutive(per_axis, grid) == run


def test_limits_cache_bytes_is_checked() -> None:
    with pytest.raises(ValueError, match="cache_bytes"):
        ngio_async.Limits(cache_bytes=-1)
    assert ngio_async.Limits(cache_bytes=0).cache_bytes == 0


# ------------------------------------------------------------------------------ sharded
# shards of 2 x 2 inner chunks in y/x, the whole z; inner chunks 4 planes deep: 32 inner chunks
SHARDED = Spec(
    version="0.5", shape=(1, 8, 64, 64), chunks=(1, 4, 16, 16), shards=(1, 8, 32, 32), levels=1
)


@pytest.mark.parametrize("shape", [None, (16, 16)])
async def test_remote_shards_decode_each_inner_chunk_once_in_grid_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int] | None
) -> None:
    """Plane tiles (whole shards in y/x, or inner-chunk sized) in grid order over HTTP: each
    of the 32 inner chunks decoded once (was once per plane: 128) and 12 GETs (4 indexes,
    a ranged read per shard for the first plane and for the second layer: was 36)."""
    decoded = count_decodes(monkeypatch)
    with served_image(tmp_path, SHARDED) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.reset()
            stream = ds.tiles(shape=shape)
            tiles = [t async for t in stream]
        gets = _chunk_gets(server)
    _check(tiles, data)
    assert len(decoded) == len(set(decoded)) == 32
    assert len(gets) == 12
    assert stream.chunk_cache is not None and stream.chunk_cache.held_bytes == 0


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize("shape", [None, (8, 8)])
async def test_local_shards_decode_each_inner_chunk_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ordered: bool,
    shape: tuple[int, int] | None,
) -> None:
    """Local sharded levels read tiles that share inner chunks in runs too: each inner chunk
    decoded once, in either order (was once per tile: 128 for plane tiles, 512 for 8x8)."""
    data = write_image(tmp_path / "img.zarr", SHARDED)[0]
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        tiles = [t async for t in ds.tiles(shape=shape, ordered=ordered)]
    seen = np.zeros(data.shape, dtype=int)
    for t in tiles:
        np.testing.assert_array_equal(t.data, data[t.region])
        seen[t.core] += 1
    assert (seen == 1).all()
    if ordered:
        assert [t.index for t in tiles] == sorted(t.index for t in tiles)
    assert len(decoded) == len(set(decoded)) == 32


async def test_a_local_shard_with_a_corrupt_inner_chunk_fails_after_the_tiles_before_it(
    tmp_path: Path,
) -> None:
    """A shard whose index points past its end: the tiles before it, then ``CodecError``
    naming the shard (the run falls back to one tile at a time)."""
    write_image(tmp_path / "img.zarr", SHARDED)
    shard = tmp_path / "img.zarr" / "0" / "c" / "0" / "0" / "1" / "1"
    body = shard.read_bytes()
    shard.write_bytes(body[:40] + body[-(8 * 16 + 4) :])  # chunks cut, the index (8 chunks) kept
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        got: list[Any] = []

        async def collect() -> None:
            async for tile in ds.tiles():
                got.append(tile)  # noqa: PERF401 - the tiles before the error are kept

        with pytest.raises(ngio_async.CodecError, match=r"0/c/0/0/1/1"):
            await collect()
    assert got and all(t.index < (0, 0, 1, 1) for t in got)


# ---------------------------------------------------------------------------- random grids
@pytest.mark.parametrize("where", ["local", "http"])
@pytest.mark.parametrize("seed", range(6))
async def test_random_streams_equal_the_image_with_and_without_the_cache(
    tmp_path: Path, where: str, seed: int
) -> None:
    """Random 5-D images (chunked or sharded, chunks several planes deep), tiles, halos, order,
    picks and cache budgets (none, room for a chunk or two, plenty): every tile equals the
    image, the cores cover the selection once, in grid order when asked, nothing stays kept."""
    rng = random.Random(seed)
    shape = (2, 2, rng.randint(3, 9), rng.randint(10, 40), rng.randint(10, 40))
    chunks = (1, 1, rng.randint(2, 5), rng.choice([8, 16]), rng.choice([8, 16]))
    shards = None if seed % 2 else (1, 2, chunks[2] * 2, chunks[3] * 2, chunks[4] * 2)
    spec = Spec(version="0.5", shape=shape, chunks=chunks, shards=shards, levels=1)
    tile = (rng.choice([4, 8, 12, 16]), rng.choice([4, 8, 12, 16]))
    overlap = rng.choice([0, 0, 2])
    ordered = rng.random() < 0.7
    picks: dict[str, Any] = {"t": 1} if rng.random() < 0.5 else {}
    if rng.random() < 0.5:
        picks["z"] = sorted(rng.sample(range(shape[2]), 2))
    want = np.ones(shape, dtype=int)
    if "t" in picks:
        want[0] = 0
    if "z" in picks:
        want[:, :, [z for z in range(shape[2]) if z not in picks["z"]]] = 0
    chunk_bytes = math.prod(chunks) * 2
    with served_image(tmp_path, spec) as (server, data):
        url: Any = tmp_path / "img.zarr" if where == "local" else server.url + "img.zarr"
        for cache in (0, chunk_bytes, 1 << 20):
            async with ngio_async.open_async(
                url, limits=ngio_async.Limits(cache_bytes=cache)
            ) as ds:
                stream = ds.tiles(shape=tile, overlap=overlap, ordered=ordered, **picks)
                seen = np.zeros(shape, dtype=int)
                order = []
                async for t in stream:
                    np.testing.assert_array_equal(t.data, data[t.region])
                    seen[t.core] += 1
                    order.append(t.index)
            assert (seen == want).all()
            if ordered:
                assert order == sorted(order)
            if stream.chunk_cache is not None:
                assert stream.chunk_cache.held_bytes == 0
                assert stream.chunk_cache.peak_bytes <= cache
