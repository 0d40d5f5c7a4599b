"""Remote sharded tile streams read tiles in runs: one coalesced request per shard, not per tile.

Unordered streams go shard by shard (``tile_grid(block=shards)``), ordered ones read the tiles of
one row of shards together in grid order. Covered here: the pure planning (block order, runs),
the request counts on a real HTTP server and on moto S3, equality with plain reads under edge
tiles, halos, regions and channel picks, and the bounds (tiles, bytes, early exit, timeouts).
"""

from __future__ import annotations

import math
import random
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from images import Spec, upload, write_image
from served import CountingReads, served_image

import ngio_async
from ngio_async import Limits
from ngio_async.engine import same_object_runs, tile_grid
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from servers import S3Server, StaticServer

    from ngio_async.engine import TileSpec

pytestmark = pytest.mark.anyio

# 16 shards of 4x4 inner chunks of 16x16: 256 one-chunk tiles
IMAGE = Spec(version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1)
TWO_CHANNELS = Spec(
    version="0.5",
    shape=(3, 96, 160),
    chunks=(1, 16, 16),
    shards=(1, 32, 64),
    levels=1,
    channels=("a", "b", "c"),
)


# ------------------------------------------------------------------------------ pure planning
def _block_key(spec: TileSpec, block: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(c.start // b for c, b in zip(spec.core, block, strict=True))


def _random_region(rng: random.Random, shape: tuple[int, ...], empty: bool) -> list[slice]:
    """A random region of ``shape`` (``empty``: axes of no pixels too)."""
    region = []
    for n in shape:
        a = rng.randint(0, n if empty else n - 1)
        region.append(slice(a, rng.randint(a if empty else a + 1, n)))
    return region


def _assert_block_by_block(specs: list[TileSpec], block: tuple[int, ...], case: object) -> None:
    """Each block's tiles come together, blocks in C order, C order within a block."""
    keys = [_block_key(s, block) for s in specs]
    firsts = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert firsts == sorted(set(keys)), case
    for key in set(keys):
        inside = [s.index for s in specs if _block_key(s, block) == key]
        assert inside == sorted(inside), case


def test_block_order_covers_the_grid_once_block_by_block() -> None:
    rng = random.Random(7)
    for _ in range(600):
        ndim = rng.randint(1, 3)
        shape = tuple(rng.randint(1, 40) for _ in range(ndim))
        region = _random_region(rng, shape, empty=True)
        tile = tuple(rng.randint(1, 12) for _ in range(ndim))
        block = tuple(rng.randint(1, 15) for _ in range(ndim))
        overlap = tuple(rng.randint(0, 2) for _ in range(ndim))
        grid, plain = tile_grid(shape, tuple(region), tile, overlap)
        grid_b, blocked = tile_grid(shape, tuple(region), tile, overlap, block=block)
        c_order = list(plain)
        by_block = list(blocked)
        case = (shape, region, tile, block)
        assert grid_b == grid, case
        # the same tiles (same index, core and halo), each once
        assert sorted(by_block, key=lambda s: s.index) == c_order, case
        _assert_block_by_block(by_block, block, case)


def test_picks_follow_their_order_in_c_order_and_filter_blocks() -> None:
    """``picks``: C order with the picked axis in the caller's order (each index once, those
    outside the region dropped); block order keeps only the picked tiles, block by block."""
    rng = random.Random(11)
    for _ in range(300):
        ndim = rng.randint(2, 3)
        shape = tuple(rng.randint(1, 30) for _ in range(ndim))
        region = _random_region(rng, shape, empty=False)
        ax = rng.randrange(ndim)
        tile = tuple(1 if i == ax else rng.randint(1, 9) for i in range(ndim))
        values = [rng.randint(0, shape[ax] - 1) for _ in range(rng.randint(0, 5))]
        picks = {ax: values}
        grid, plain = tile_grid(shape, tuple(region), tile)
        inside = [v for v in dict.fromkeys(values) if region[ax].start <= v < region[ax].stop]
        want = sorted(
            (s for s in plain if s.core[ax].start in inside),
            key=lambda s: (s.index[:ax], inside.index(s.core[ax].start), s.index[ax + 1 :]),
        )
        grid_p, picked = tile_grid(shape, tuple(region), tile, picks=picks)
        case = (shape, region, tile, picks)
        assert grid_p == grid, case
        assert list(picked) == want, case
        block = tuple(rng.randint(1, 12) for _ in range(ndim))
        _, blocked = tile_grid(shape, tuple(region), tile, block=block, picks=picks)
        by_block = list(blocked)
        assert sorted(by_block, key=lambda s: s.index) == sorted(want, key=lambda s: s.index)
        _assert_block_by_block(by_block, block, case)


def test_block_order_is_lazy_on_huge_axes() -> None:
    # 2**40 x 2**40 pixels: 2**62 tiles; the first shard's 64 tiles come first, then the next
    n = 2**40
    grid, specs = tile_grid((n, n), (slice(0, n), slice(0, n)), (512, 512), block=(4096, 4096))
    assert grid == (n // 512, n // 512)
    first = list(islice(specs, 65))
    assert [s.index for s in first[:64]] == [(y, x) for y in range(8) for x in range(8)]
    assert first[64].index == (0, 8)


def _specs(shape: tuple[int, ...], tile: tuple[int, ...], block: tuple[int, ...]) -> list[Any]:
    return list(tile_grid(shape, tuple(slice(0, n) for n in shape), tile, block=block)[1])


def test_runs_keep_to_one_object_and_to_their_caps() -> None:
    specs = _specs((100, 100), (10, 10), (40, 40))  # edge blocks are 20 wide
    for max_tiles, max_elements in ((1000, 10**9), (5, 10**9), (1000, 350), (3, 250)):
        runs = list(same_object_runs(iter(specs), (40, 40), max_tiles, max_elements))
        assert [s for run in runs for s in run] == specs  # all, in order
        for run in runs:
            assert len({_block_key(s, (40, 40)) for s in run}) == 1
            assert len(run) <= max_tiles
            assert sum(s.size for s in run) <= max(max_elements, run[0].size)
        if max_tiles == 1000 and max_elements == 10**9:
            assert [len(r) for r in runs] == [16, 16, 8, 16, 16, 8, 8, 8, 4]  # whole blocks


# ------------------------------------------------------------------------------ request counts
@pytest.fixture(scope="module")
def on_disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray[Any, Any]]:
    """:data:`IMAGE` written once for the tests of this module that only read it from disk."""
    root = tmp_path_factory.mktemp("image")
    return root, write_image(root, IMAGE)[0]


@pytest.fixture(scope="module")
def two_channels(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StaticServer, np.ndarray[Any, Any]]]:
    """:data:`TWO_CHANNELS` on a loopback HTTP server, for the tests that only read it."""
    with served_image(tmp_path_factory.mktemp("two"), TWO_CHANNELS) as both:
        yield both


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[StaticServer, np.ndarray[Any, Any]]]:
    with served_image(tmp_path, IMAGE) as both:
        yield both


def _shard_gets(server: StaticServer) -> list[str | None]:
    """The ``Range`` of every GET of a shard of level 0 (``None``: the whole object)."""
    return [r.range for r in server.requests if r.method == "GET" and "/0/c/" in r.path]


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_unordered_http_tiles_read_each_shard_in_one_request(
    served: tuple[StaticServer, np.ndarray[Any, Any]], backend: str
) -> None:
    server, data = served
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    async with ngio_async.open_async(server.url + "img.zarr", **options) as ds:
        server.requests.clear()
        seen = set()
        async for tile in ds.tiles(shape=(16, 16), ordered=False):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            assert tile.data.flags.c_contiguous and tile.data.base is None  # its own array
            seen.add(tile.index)
    assert seen == {(0, y, x) for y in range(16) for x in range(16)}
    gets = _shard_gets(server)
    assert len(gets) == 16  # one per shard (it was one per tile and one per index: 272)
    # whole shards, no index first (obstore's client asks for a whole object as bytes=0-2**40-1)
    assert all(g is None or g == f"bytes=0-{2**40 - 1}" for g in gets), gets


async def test_ordered_http_tiles_read_a_row_of_shards_together(
    served: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    server, data = served
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.requests.clear()
        order = []
        async for tile in ds.tiles(shape=(16, 16)):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            order.append(tile.index)
    assert order == [(0, y, x) for y in range(16) for x in range(16)]  # grid order
    gets = _shard_gets(server)
    # each shard: its index (fetched ahead), then its 16 tiles' chunks in one ranged GET
    assert len(gets) == 32
    assert all(g is not None for g in gets)


async def test_unordered_s3_tiles_read_each_shard_in_one_request(
    s3_server: S3Server, tmp_path: Path
) -> None:
    data = write_image(tmp_path / "img.zarr", IMAGE)[0]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as target:
        await upload(tmp_path / "img.zarr", target)
    store = InstrumentedStore(open_store(url, **s3_server.options()))
    async with ngio_async.open_async(store) as ds:
        store.reset()
        n = 0
        async for tile in ds.tiles(shape=(16, 16), ordered=False):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            n += 1
        assert n == 256
        assert store.method_counts["get"] == 16
    await store.aclose()


# ------------------------------------------------------------------ equal to reads, any layout
@pytest.mark.parametrize("ordered", [False, True])
@pytest.mark.parametrize(
    ("shape", "overlap", "region", "axes"),
    [
        ((1, 24, 24), 0, None, {}),  # tiles across shard borders
        ((1, 16, 16), 3, None, {}),  # halos reaching into neighbour shards
        ((1, 10, 30), 0, (slice(0, 3), slice(5, 90), slice(17, 150)), {}),  # a region
        ((1, 16, 16), 0, None, {"c": [2, 0]}),  # picked channels
        ((1, 32, 20), 1, (slice(1, 2), slice(0, 96), slice(3, 160)), {}),
    ],
)
async def test_runs_equal_plain_reads(
    two_channels: tuple[StaticServer, np.ndarray[Any, Any]],
    ordered: bool,
    shape: tuple[int, ...],
    overlap: int,
    region: tuple[slice, ...] | None,
    axes: dict[str, Any],
) -> None:
    server, data = two_channels
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        stream = ds.tiles(shape=shape, overlap=overlap, region=region, ordered=ordered, **axes)
        tiles = [t async for t in stream]
        lvl = ds.levels[0]
        reads: list[Any] = [None] * len(tiles)

        async def read(i: int) -> None:
            reads[i] = await lvl.read(tiles[i].region)

        async with anyio.create_task_group() as tg:  # all at once: one by one was slow
            for i in range(len(tiles)):
                tg.start_soon(read, i)
        for t, got in zip(tiles, reads, strict=True):
            np.testing.assert_array_equal(t.data, data[t.region])
            np.testing.assert_array_equal(t.data, got)
    indexes = [t.index for t in tiles]
    assert len(indexes) == len(set(indexes)) == len(stream)
    if ordered:  # grid order, picked channels in their own order
        picked = axes.get("c")
        assert indexes == sorted(
            indexes, key=lambda i: (i[0] if picked is None else picked.index(i[0]), *i[1:])
        )
    # the cores tile the region exactly once
    covered = np.zeros(data.shape, dtype=np.int32)
    for t in tiles:
        covered[t.core] += 1
    want = np.zeros(data.shape, dtype=np.int32)
    sel = region if region is not None else tuple(slice(None) for _ in data.shape)
    want[sel] = 1
    if "c" in axes:
        keep = np.zeros(data.shape[0], dtype=bool)
        keep[axes["c"]] = True
        want[~keep] = 0
    np.testing.assert_array_equal(covered, want)


async def test_runs_read_absent_shards_as_the_fill_value(tmp_path: Path) -> None:
    spec = Spec(
        version="0.5", shape=(1, 128, 128), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1,
        fill_value=7, written=(slice(None), slice(0, 64), slice(0, 64)),
    )  # fmt: skip
    data = write_image(tmp_path, spec)[0]
    store = InstrumentedStore(open_store(tmp_path), latency=0.001)
    async with ngio_async.open_async(store) as ds:
        for ordered in (False, True):
            n = 0
            async for tile in ds.tiles(shape=(16, 16), ordered=ordered):
                np.testing.assert_array_equal(tile.data, data[tile.region])
                n += 1
            assert n == 64
    assert (data[:, 64:, :] == 7).all()
    await store.aclose()


# --------------------------------------------------------------------------------- the bounds
async def test_a_slow_consumer_holds_runs_within_the_byte_bound(
    on_disk: tuple[Path, np.ndarray[Any, Any]],
) -> None:
    root = on_disk[0]
    tile_bytes = 16 * 16 * 2
    bound = 40 * tile_bytes  # runs of 40 // 4 = 10 tiles, 3 runs ahead
    store = InstrumentedStore(open_store(root, limits=Limits(prefetch_bytes=bound)))
    async with ngio_async.open_async(store) as ds:
        reads = CountingReads(ds.levels[0])
        consumed = held = 0
        async for _ in ds.tiles(shape=(16, 16), ordered=False):
            consumed += 1
            held = max(held, (reads.started - consumed + 1) * tile_bytes)
            await anyio.sleep(0.001)
        assert consumed == 256
        assert held <= bound
        assert store.method_counts["get"] > 16  # runs smaller than a shard: parts of shards
    await store.aclose()


@pytest.mark.parametrize("attempt", range(10))
@pytest.mark.parametrize("ordered", [False, True])
async def test_break_early_in_a_run_stream_starts_no_more(
    on_disk: tuple[Path, np.ndarray[Any, Any]], attempt: int, ordered: bool
) -> None:
    root = on_disk[0]
    store = InstrumentedStore(open_store(root), latency=0.002)
    window = 8  # tiles: runs of 4, two ahead
    async with ngio_async.open_async(store) as ds:
        reads = CountingReads(ds.levels[0])
        store.reset()
        n = 0
        async with ds.tiles(shape=(16, 16), prefetch=window, ordered=ordered) as tiles:
            async for _ in tiles:
                n += 1
                if n == 5:
                    break
        assert store.in_flight == 0
        started, requests = reads.started, store.total_requests
        assert started <= math.ceil(n / 4) * 4 + window  # the runs handed out, and the window
        await anyio.sleep(0.01)
        assert (reads.started, store.total_requests) == (started, requests)
    await store.aclose()


@pytest.mark.parametrize("attempt", range(10))
async def test_a_timeout_in_a_run_stream_leaves_nothing_in_flight(
    on_disk: tuple[Path, np.ndarray[Any, Any]], attempt: int
) -> None:
    root = on_disk[0]
    store = InstrumentedStore(open_store(root), latency=0.004)
    async with ngio_async.open_async(store) as ds:

        async def consume_with_deadline() -> None:
            with anyio.fail_after(0.01):
                async with ds.tiles(shape=(16, 16), ordered=False) as tiles:
                    async for _ in tiles:
                        pass

        with pytest.raises(TimeoutError):
            await consume_with_deadline()
        assert store.in_flight == 0
    await store.aclose()


# --------------------------------------------------------------------------------- failures
def _break_inner_chunk(root: Path, shard: str, inner: tuple[int, int]) -> None:
    """Overwrite the zstd magic of one inner chunk of a level-0 shard of :data:`IMAGE`."""
    path = root / "0" / "c" / shard
    b = bytearray(path.read_bytes())
    index = np.frombuffer(bytes(b[-(16 * 16 + 4) : -4]), "<u8").reshape(4, 4, 2)
    offset = int(index[inner][0])
    b[offset : offset + 4] = b"XXXX"
    path.write_bytes(bytes(b))


async def test_an_ordered_run_stream_yields_every_tile_before_a_corrupt_chunk(
    tmp_path: Path,
) -> None:
    data = write_image(tmp_path, IMAGE)[0]
    _break_inner_chunk(tmp_path, "0/1/1", (1, 2))  # the tile at (0, 5, 6)
    store = InstrumentedStore(open_store(tmp_path), latency=0.001)
    async with ngio_async.open_async(store) as ds:
        got: list[tuple[int, ...]] = []

        async def consume() -> None:
            async for tile in ds.tiles(shape=(16, 16)):
                np.testing.assert_array_equal(tile.data, data[tile.region])
                got.append(tile.index)

        with pytest.raises(ngio_async.CodecError, match=r"'0/c/0/1/1\[0, 1, 2\]'"):
            await consume()
        assert got == [(0, y, x) for y in range(16) for x in range(16) if (y, x) < (5, 6)]
    await store.aclose()


async def test_unordered_tiles_read_edge_shards_in_one_request(tmp_path: Path) -> None:
    spec = Spec(
        version="0.5", shape=(1, 100, 130), chunks=(1, 16, 16), shards=(1, 32, 64), levels=1
    )  # 4 x 3 shards, 6 of them at an edge
    with served_image(tmp_path, spec) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.requests.clear()
            async for tile in ds.tiles(shape=(16, 16), ordered=False):
                np.testing.assert_array_equal(tile.data, data[tile.region])
        assert len(_shard_gets(server)) == 12, [(r.path, r.range) for r in server.requests]


@pytest.mark.parametrize("ordered", [False, True])
async def test_a_chunk_that_many_tiles_of_a_run_need_is_decoded_once(
    tmp_path: Path, ordered: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4x4 tiles of 16x16 inner chunks: each chunk holds 16 tiles of one run
    from ngio_async.codecs import ChunkCodec

    data = write_image(tmp_path, IMAGE)[0]
    calls: list[str] = []
    decode = ChunkCodec.decode

    def counted(self: ChunkCodec, buf: Any, key: str, out: Any = None) -> Any:
        calls.append(key)
        return decode(self, buf, key, out=out)

    store = InstrumentedStore(open_store(tmp_path), latency=0.001)
    async with ngio_async.open_async(store) as ds:
        monkeypatch.setattr(ChunkCodec, "decode", counted)
        n = 0
        async for tile in ds.tiles(shape=(4, 4), ordered=ordered):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            n += 1
    assert n == 64 * 64
    assert len(calls) == len(set(calls)) == 16 * 16  # was one decode per tile: 4,096
    await store.aclose()
