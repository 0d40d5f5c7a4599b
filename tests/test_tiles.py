"""``ds.tiles()``: coverage, order, bounds (requests, bytes, early exit), timeouts, sync twin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr
from images import Spec, write_image
from served import served_image

import ngio_async
from ngio_async import Limits
from ngio_async.stores import ByteRequest, InstrumentedStore, SuffixByteRequest, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 3, 70, 90), chunks=(1, 1, 16, 32), levels=2)
SHARDED = Spec(version="0.5", shape=(2, 3, 70, 90), chunks=(1, 1, 16, 32), shards=(1, 1, 32, 64))


@pytest.fixture(params=["chunked", "sharded"])
def image(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Path, np.ndarray[Any, Any], Spec]:
    spec = SPEC if request.param == "chunked" else SHARDED
    return tmp_path, write_image(tmp_path, spec)[0], spec


def big_empty(root: Path) -> None:
    """A 1000x1000 level of 10x10 chunks, none stored: 10,000 one-chunk tiles."""
    zarr.create_array(
        store=root,
        name="0",
        shape=(1, 1000, 1000),
        chunks=(1, 10, 10),
        dtype="uint8",
        dimension_names=["c", "y", "x"],
    )
    zarr.open_group(root, mode="a").attrs.update(
        {
            "ome": {
                "version": "0.5",
                "multiscales": [
                    {
                        "axes": [
                            {"name": "c", "type": "channel"},
                            {"name": "y", "type": "space"},
                            {"name": "x", "type": "space"},
                        ],
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [
                                    {"type": "scale", "scale": [1, 1, 1]}
                                ],
                            }
                        ],
                    }
                ],
            }
        }
    )


@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(
    ("shape", "overlap"), [(None, 0), ((1, 2, 25, 40), 0), ((1, 1, 30, 30), 3)]
)
async def test_tiles_cover_the_level_once_and_equal_reads(
    image: tuple[Path, np.ndarray[Any, Any], Spec], ordered: bool, shape: Any, overlap: int
) -> None:
    root, data, spec = image
    async with ngio_async.open_async(root) as ds:
        stream = ds.tiles(shape=shape, overlap=overlap, ordered=ordered)
        cover = np.zeros(data.shape, dtype=int)
        indices = []
        async for tile in stream:
            assert tile.data.shape == data[tile.region].shape  # no axis squeezed
            np.testing.assert_array_equal(tile.data, data[tile.region])
            np.testing.assert_array_equal(tile.core_data, data[tile.core])
            np.testing.assert_array_equal(tile.data, await ds.levels[0].read(tile.region))
            cover[tile.core] += 1
            indices.append(tile.index)
        assert cover.min() == cover.max() == 1
        assert len(indices) == len(stream) == np.prod(stream.grid)
        if ordered:
            assert indices == sorted(indices)
        else:
            assert sorted(indices) == sorted(set(indices))
        if shape is None:  # default: one shard (else chunk) in y/x, one plane of c and z
            want = spec.shards or spec.chunks
            assert stream.grid == (2, 3, -(-70 // want[2]), -(-90 // want[3]))


async def test_named_axes_limit_the_iteration(tmp_path: Path) -> None:
    spec = Spec(
        version="0.4",
        shape=(3, 2, 40, 40),
        chunks=(1, 1, 16, 16),
        levels=1,
        channels=("DAPI", "GFP", "RFP"),
    )
    data = write_image(tmp_path, spec)[0]
    async with ngio_async.open_async(tmp_path) as ds:
        got = [t async for t in ds.tiles(c="GFP", z=1, y=slice(10, 30))]
        assert got
        assert all(t.region[0] == slice(1, 2) and t.region[1] == slice(1, 2) for t in got)
        cover = np.zeros(data.shape, dtype=int)
        for t in got:
            cover[t.region] += 1
            np.testing.assert_array_equal(t.data, data[t.region])
        assert cover[1, 1, 10:30].min() == 1
        assert cover.sum() == 20 * 40
        picked = [
            t
            async for t in ds.tiles(
                c=["RFP", "DAPI"], region=(slice(None), slice(0, 1), slice(0, 16), slice(0, 16))
            )
        ]
        assert sorted(t.region[0].start for t in picked) == [0, 2]


async def test_peak_requests_in_flight_equal_the_limit(tmp_path: Path) -> None:
    big_empty(tmp_path)
    store = InstrumentedStore(open_store(tmp_path, limits=Limits(max_requests=4)), latency=0.002)
    async with ngio_async.open_async(store) as ds:
        n = 0
        async for _ in ds.tiles(region=(slice(None), slice(0, 200), slice(None)), ordered=False):
            n += 1
        assert n == 2000
        assert store.peak_in_flight == 4
    await store.aclose()


@pytest.mark.parametrize("blocking", [False, True])
async def test_remote_streams_start_with_every_request_in_flight(
    tmp_path: Path, blocking: bool
) -> None:
    # remote: the first window is max(prefetch_tiles, max_requests) = 16 tiles; local
    # reads start with two batches of 16 tiles, each read in one worker-thread call (one
    # request after the other): the first tile comes with its whole batch, the second batch
    # has started (and maybe finished) meanwhile, and nothing more until a batch is consumed
    big_empty(tmp_path)
    limits = Limits(max_requests=16, prefetch_tiles=2)
    store = InstrumentedStore(open_store(tmp_path, limits=limits), latency=0.05, blocking=blocking)
    async with ngio_async.open_async(store) as ds:
        store.reset()
        tiles = ds.tiles(region=(slice(None), slice(0, 100), slice(None)))
        async with tiles as it:
            await it.__anext__()  # the first tile: nothing has finished before it
            started = store.total_requests
    if blocking:
        assert 16 < started <= 32
    else:
        assert started == 16
    await store.aclose()


async def test_slow_consumer_holds_memory_at_the_byte_bound(tmp_path: Path) -> None:
    big_empty(tmp_path)
    tile_bytes = 100  # 10x10 uint8
    bound = 12 * tile_bytes
    store = InstrumentedStore(
        open_store(tmp_path, limits=Limits(prefetch_bytes=bound, prefetch_tiles=64))
    )
    async with ngio_async.open_async(store) as ds:
        store.reset()
        held = 0
        consumed = 0
        async for _ in ds.tiles(region=(slice(None), slice(0, 100), slice(None))):
            consumed += 1
            held = max(held, (store.total_requests - consumed + 1) * tile_bytes)
            await anyio.sleep(0.001)
        assert consumed == 1000
        assert held <= bound
    await store.aclose()


@pytest.mark.parametrize("attempt", range(15))
@pytest.mark.parametrize("form", ["bare", "with"])
@pytest.mark.parametrize("blocking", [False, True], ids=["async-reads", "local-batches"])
async def test_break_after_5_of_10000_tiles(
    tmp_path: Path, attempt: int, form: str, blocking: bool
) -> None:
    big_empty(tmp_path)
    store = InstrumentedStore(open_store(tmp_path), latency=0.001, blocking=blocking)
    window = 8
    async with ngio_async.open_async(store) as ds:
        store.reset()
        stream = ds.tiles(prefetch=window)
        assert len(stream) == 10_000
        n = 0
        if form == "bare":
            it = aiter(stream)
            async for _ in it:
                n += 1
                if n == 5:
                    break
            await it.aclose()
        else:
            async with stream as tiles:
                async for _ in tiles:
                    n += 1
                    if n == 5:
                        break
        assert store.in_flight == 0
        started = store.total_requests
        assert started <= n + window + 1
        await anyio.sleep(0.01)
        assert store.total_requests == started  # nothing more starts after leaving
    await store.aclose()


@pytest.mark.parametrize("attempt", range(10))
@pytest.mark.parametrize("blocking", [False, True], ids=["async-reads", "local-batches"])
async def test_timeout_leaves_nothing_in_flight(
    tmp_path: Path, attempt: int, blocking: bool
) -> None:
    big_empty(tmp_path)
    store = InstrumentedStore(open_store(tmp_path), latency=0.003, blocking=blocking)
    async with ngio_async.open_async(store) as ds:

        async def consume_with_deadline() -> None:
            with anyio.fail_after(0.02):
                async with ds.tiles() as tiles:
                    async for _ in tiles:
                        pass

        with pytest.raises(TimeoutError):
            await consume_with_deadline()
        assert store.in_flight == 0
    await store.aclose()


@pytest.mark.parametrize("blocking", [False, True], ids=["async-reads", "local-batches"])
async def test_error_in_the_loop_body_stops_prefetching(tmp_path: Path, blocking: bool) -> None:
    big_empty(tmp_path)
    store = InstrumentedStore(open_store(tmp_path), latency=0.001, blocking=blocking)
    async with ngio_async.open_async(store) as ds:

        async def failing_body() -> None:
            async with ds.tiles(prefetch=4) as tiles:
                async for _ in tiles:
                    1 / 0  # noqa: B018

        with pytest.raises(ZeroDivisionError):
            await failing_body()
        assert store.in_flight == 0
        assert store.total_requests <= 1 + 1 + 4 + 1
    await store.aclose()


@pytest.mark.parametrize("blocking", [False, True], ids=["async-reads", "local-batches"])
async def test_closing_the_dataset_stops_bare_iterators(tmp_path: Path, blocking: bool) -> None:
    big_empty(tmp_path)
    store = InstrumentedStore(open_store(tmp_path), latency=0.001, blocking=blocking)
    ds = await ngio_async.open_async(store)
    it = aiter(ds.tiles(prefetch=4))
    await anext(it)
    await ds.aclose()
    assert store.in_flight == 0
    await store.aclose()


async def test_local_tiles_are_read_in_batches_remote_ones_singly(tmp_path: Path) -> None:
    big_empty(tmp_path)
    local = InstrumentedStore(open_store(tmp_path), blocking=True)
    remote = InstrumentedStore(open_store(tmp_path))
    region = (slice(None), slice(0, 200), slice(None))
    for store, expected in ((local, 8), (remote, 1)):
        async with ngio_async.open_async(store) as ds:
            store.reset()
            stream = ds.tiles(region=region, prefetch=16)
            assert stream.tiles_per_call == expected
            seen = [t.index async for t in stream]
            assert seen == [(0, y, x) for y in range(20) for x in range(100)]  # grid order
            assert store.method_counts["get"] == 2000  # every tile's one chunk, once
            # a prefetch smaller than a batch reads one tile per call
            assert ds.tiles(prefetch=2).tiles_per_call == 1
        await store.aclose()


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_failing_tile_in_a_batch_comes_after_the_tiles_before_it(
    tmp_path: Path, ordered: bool
) -> None:
    big_empty(tmp_path)
    bad = "0/c/0/0/10"  # the 11th tile of the first row: in the second batch of 8

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(f"disk error on {key}") if key == bad else None

    store = InstrumentedStore(open_store(tmp_path), fail=fail, blocking=True)
    async with ngio_async.open_async(store) as ds:
        got: list[tuple[int, ...]] = []
        stream = ds.tiles(
            region=(slice(None), slice(0, 10), slice(0, 200)), ordered=ordered, prefetch=16
        )
        assert stream.tiles_per_call == 8

        async def consume() -> None:
            async for tile in stream:
                got.append(tile.index)  # noqa: PERF401 - the tiles before the error are kept

        with pytest.raises(ngio_async.StoreError, match="0/c/0/0/10") as info:
            await consume()
        assert "disk error" in str(info.value)
        if ordered:
            assert got == [(0, 0, x) for x in range(10)]
        else:  # batches in completion order; the failing one still hands over 8 and 9 first
            assert got[-2:] == [(0, 0, 8), (0, 0, 9)]
            assert (0, 0, 10) not in got and (0, 0, 11) not in got
        assert store.in_flight == 0
    await store.aclose()


async def test_progress_callback(image: tuple[Path, np.ndarray[Any, Any], Spec]) -> None:
    root, _, _ = image
    seen: list[tuple[int, int | None]] = []
    async with ngio_async.open_async(root) as ds:
        stream = ds.tiles(progress=lambda done, total: seen.append((done, total)))
        async for _ in stream:
            pass
    assert [d for d, _ in seen] == list(range(1, len(stream) + 1))


async def test_stream_collects_and_writes(image: tuple[Path, np.ndarray[Any, Any], Spec]) -> None:
    root, data, _ = image

    class Collect:
        def __init__(self) -> None:
            self.out = np.zeros(data.shape, dtype=np.int64)

        async def write(self, tile: ngio_async.Tile) -> None:
            self.out[tile.region] += tile.data

    async with ngio_async.open_async(root) as ds:
        results = await ngio_async.stream(ds.tiles(), lambda a: int(a.astype(np.int64).sum()))
        assert results is not None
        assert sum(v for _, v in results) == int(data.astype(np.int64).sum())
        writer = Collect()
        assert (
            await ngio_async.stream(
                ds.tiles(overlap=2), lambda a: a.astype(np.int64) * 2, out=writer
            )
            is None
        )
        np.testing.assert_array_equal(writer.out, data.astype(np.int64) * 2)  # halos cropped
        with pytest.raises(ValueError, match="boom"):
            await ngio_async.stream(ds.tiles(), lambda a: (_ for _ in ()).throw(ValueError("boom")))


async def test_ready_hands_over_the_rest_of_a_batch(tmp_path: Path) -> None:
    big_empty(tmp_path)
    seen: list[int] = []
    async with ngio_async.open_async(tmp_path) as ds:
        stream = ds.tiles(prefetch=16, progress=lambda done, _: seen.append(done))
        assert stream.tiles_per_call == 8
        async with stream as tiles:
            first = await anext(tiles)
            rest = tiles.ready()
            assert [t.index for t in [first, *rest]] == [(0, 0, x) for x in range(8)]
            assert tiles.ready() == []  # nothing more without waiting
            assert (await anext(tiles)).index == (0, 0, 8)
    assert seen == list(range(1, 10))


def test_sync_tiles_take_whole_batches_in_grid_order(tmp_path: Path) -> None:
    big_empty(tmp_path)
    bad = "0/c/0/0/6"

    def fail(method: str, key: str) -> BaseException | None:
        return OSError("disk error") if key == bad else None

    with ngio_async.open(tmp_path) as ds:
        region = (slice(None), slice(0, 30), slice(None))
        got = [t.index for t in ds.tiles(region=region)]
        assert got == [(0, y, x) for y in range(3) for x in range(100)]
    store = InstrumentedStore(open_store(tmp_path), fail=fail, blocking=True)
    with ngio_async.open(store) as ds:
        got = []
        with pytest.raises(ngio_async.StoreError, match="0/c/0/0/6"):  # noqa: PT012
            for tile in ds.tiles(region=(slice(None), slice(0, 10), slice(None))):
                got.append(tile.index)
        assert got == [(0, 0, x) for x in range(6)]


def test_sync_tiles_are_lazy(tmp_path: Path) -> None:
    big_empty(tmp_path)
    with ngio_async.open(tmp_path) as ds:
        tiles = ds.tiles(prefetch=4)
        first = next(tiles)
        assert first.data.shape == (1, 10, 10)
        tiles.close()
        n = sum(1 for _ in ds.tiles(region=(slice(None), slice(0, 20), slice(0, 30))))
        assert n == 6


class RequestLog(InstrumentedStore):
    """Logs every GET as it starts: ``("index", key)`` for a shard index, else ``("data", key)``."""

    def __init__(self, inner: Any, **kwargs: Any) -> None:
        super().__init__(inner, **kwargs)
        self.log: list[tuple[str, str]] = []

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Any:
        kind = "index" if isinstance(byte_range, SuffixByteRequest) else "data"
        self.log.append((kind, key))
        return await super()._get_once(key, byte_range)


TILED_SHARDS = Spec(version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), shards=(1, 64, 64))


async def test_remote_tiles_fetch_each_shard_index_ahead_of_the_shard(tmp_path: Path) -> None:
    # 16 shards of 4x4 inner chunks, one tile per inner chunk: a row of tiles crosses 4 shards;
    # in grid order the tiles are read in runs of prefetch // 2 (a shard's part of a row, one
    # request), two runs ahead (unordered streams read whole shards, without their index)
    data = write_image(tmp_path, TILED_SHARDS)[0]
    store = RequestLog(open_store(tmp_path), latency=0.002)
    window = 8
    async with ngio_async.open_async(store) as ds:
        store.log.clear()
        first_tile: dict[str, int] = {}
        async for tile in ds.tiles(shape=(16, 16), prefetch=window, ordered=True):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            y, x = tile.region[1].start // 64, tile.region[2].start // 64
            first_tile.setdefault(f"0/c/0/{y}/{x}", len(first_tile))
    assert len(first_tile) == 16
    index_at = {key: i for i, (kind, key) in enumerate(store.log) if kind == "index"}
    assert len(index_at) == 16 == sum(kind == "index" for kind, _ in store.log)  # once each
    for key in index_at:
        first_data = next(i for i, entry in enumerate(store.log) if entry == ("data", key))
        between = sum(kind == "data" for kind, _ in store.log[index_at[key] : first_data])
        # without the look-ahead a shard's index is asked for by its first tile, with no
        # other tile started in between: here the window's tiles before the shard were
        shard_tile = int(np.ravel_multi_index(tuple(int(v) for v in key.split("/")[-2:]), (4, 4)))
        if shard_tile >= 2:  # the first two shards are needed by the first window itself
            assert between >= 2, (key, between)  # the requests of the two runs before it
    await store.aclose()


async def test_a_failed_index_fetched_ahead_is_raised_by_the_tile_that_needs_it(
    tmp_path: Path,
) -> None:
    write_image(tmp_path, TILED_SHARDS)
    bad = "0/c/0/1/1"  # the 6th shard: its tiles are 64 rows down

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(f"lost {key}") if key == bad else None

    store = RequestLog(open_store(tmp_path, limits=Limits(max_retries=0)), fail=fail)
    async with ngio_async.open_async(store) as ds:
        got: list[tuple[int, ...]] = []

        async def consume() -> None:
            async for tile in ds.tiles(shape=(16, 16), prefetch=8):
                got.append(tile.index)  # noqa: PERF401 - the tiles before the error are kept

        with pytest.raises(ngio_async.StoreError, match="0/c/0/1/1"):
            await consume()
        # every tile before the first tile of that shard came out, in order
        assert got == [(0, y, x) for y in range(4) for x in range(16)] + [
            (0, 4, x) for x in range(4)
        ]
    assert ("index", bad) in store.log
    await store.aclose()


async def test_tiles_refuse_steps_and_take_empty_and_numpy_selections(
    image: tuple[Path, np.ndarray[Any, Any], Spec],
) -> None:
    root, data, _ = image
    async with ngio_async.open_async(root) as ds:
        with pytest.raises(ValueError, match="axis 'x' has step 5"):
            ds.tiles(x=slice(0, 20, 5))
        with pytest.raises(ValueError, match="step-1 slices"):
            ds.tiles(region=(slice(None), slice(None), slice(None), slice(0, 20, 2)))
        empty = ds.tiles(c=[])
        assert len(empty) == 0
        assert [t async for t in empty] == []
        picked = [t async for t in ds.tiles(c=np.array([1]), z=np.int64(2))]
        assert picked and all(t.region[0] == slice(1, 2) for t in picked)
        for t in picked:
            np.testing.assert_array_equal(t.data, data[t.region])
        assert (await ds.read(c=[])).shape == (0, *data.shape[1:])
        np.testing.assert_array_equal(await ds.read(c=np.int64(1), z=0), data[1, 0])
        np.testing.assert_array_equal(await ds.read(c=np.array([1, 0])), data[[1, 0]])
        with pytest.raises(TypeError, match="list items must be ints"):
            await ds.read(z=[0.5])  # type: ignore[list-item]


async def test_errors_come_out_plain_and_a_shared_bare_iterator_hands_each_tile_once(
    tmp_path: Path,
) -> None:
    data = write_image(tmp_path, SHARDED)[0]

    def fail(method: str, key: str) -> BaseException | None:
        return OSError(f"boom {key}") if key == "0/c/1/0/0/0" else None

    store = InstrumentedStore(open_store(tmp_path, limits=Limits(max_retries=0)), fail=fail)
    async with ngio_async.open_async(store) as ds:
        for picked in (1, [1], [0, 1]):  # a list of planes is read concurrently: still plain
            with pytest.raises(ngio_async.StoreError, match="boom"):
                await ds.read(c=picked)
        # four tasks sharing one bare iterator: every tile once
        it = aiter(ds.tiles(c=0))
        seen: list[tuple[int, ...]] = []

        async def take() -> None:
            async for tile in it:
                np.testing.assert_array_equal(tile.data, data[tile.region])
                seen.append(tile.index)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(take)
        assert sorted(seen) == sorted(set(seen)) and len(seen) == len(ds.tiles(c=0))
    await store.aclose()


async def test_a_corrupt_inner_chunk_read_remotely_is_a_plain_codec_error(tmp_path: Path) -> None:
    write_image(tmp_path, SHARDED)
    shard = tmp_path / "0" / "c" / "0" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[:64] = b"\x00" * 64  # the first inner chunk's bytes (the index is at the end)
    shard.write_bytes(bytes(raw))
    store = InstrumentedStore(open_store(tmp_path))  # the remote (async) read path
    async with ngio_async.open_async(store) as ds:
        # two of the shard's four inner chunks: index, ranges, decodes in a task group
        reads: tuple[Callable[[], Awaitable[Any]], ...] = (
            lambda: ds[0, 0, 0:16, 0:64],
            lambda: ds.read(c=[0, 1], z=0),
        )
        for read in reads:
            with pytest.raises(ngio_async.CodecError, match=r"0/c/0/0/0/0"):
                await read()
    await store.aclose()


def test_local_batches_stay_within_a_quarter_of_the_byte_bound(tmp_path: Path) -> None:
    big_empty(tmp_path)  # 10x10 uint8 tiles: 100 bytes each

    async def go() -> None:
        for bound, most in ((400, 1), (4000, 10), (1 << 20, 16)):
            async with ngio_async.open_async(
                tmp_path, limits=Limits(prefetch_bytes=bound, prefetch_tiles=64)
            ) as ds:
                per_call = ds.tiles().tiles_per_call
                assert per_call <= max(1, bound // 4 // 100) and per_call <= most

    anyio.run(go, backend="asyncio")


CH3 = ("DAPI", "GFP", "RFP")
PICKED = {
    "chunked": Spec(version="0.5", shape=(3, 2, 40, 48), chunks=(1, 1, 16, 16), channels=CH3),
    "sharded": Spec(
        version="0.5",
        shape=(3, 2, 40, 48),
        chunks=(1, 1, 8, 16),
        shards=(1, 1, 16, 32),
        channels=CH3,
    ),
    "channels-in-one-chunk": Spec(  # both picks in each chunk: kept for the second pick
        version="0.5", shape=(3, 2, 40, 48), chunks=(3, 2, 16, 16), channels=CH3
    ),
}


@pytest.mark.parametrize(
    ("name", "shape", "overlap", "where"),
    [
        ("chunked", None, 0, "file"),
        ("chunked", (8, 8), 2, "http"),  # runs, halos: chunks kept
        ("sharded", None, 0, "file"),
        ("sharded", (8, 16), 0, "http"),  # runs of remote shards
        ("sharded", (8, 8), 3, "file"),
        ("sharded", (8, 8), 3, "http"),
        ("channels-in-one-chunk", None, 0, "file"),
        ("channels-in-one-chunk", (16, 8), 1, "http"),
    ],
)
async def test_a_list_selection_streams_in_its_own_order(
    tmp_path: Path, where: str, name: str, shape: tuple[int, int] | None, overlap: int
) -> None:
    """``c=["RFP", "DAPI"]`` in grid order yields RFP's tiles, then DAPI's, as ``read`` puts
    them (it came in grid order, DAPI first); a repeated pick streams once; unordered streams
    cover the same tiles."""
    with served_image(tmp_path, PICKED[name]) as (server, data):
        url = f"{server.url}/img.zarr" if where == "http" else tmp_path / "img.zarr"
        async with ngio_async.open_async(url) as ds:
            for picks in (["RFP", "DAPI"], [2, 0, 2], ["DAPI", "RFP"]):
                want = list(dict.fromkeys(c if isinstance(c, int) else CH3.index(c) for c in picks))
                stream = ds.tiles(shape=shape, overlap=overlap, c=picks, z=slice(0, 2))
                tiles = [t async for t in stream]
                assert len(tiles) == len(stream) > 0
                order = [t.region[0].start for t in tiles]
                per = len(tiles) // len(want)
                assert order == [c for c in want for _ in range(per)], (picks, order)
                cover = np.zeros(data.shape, int)
                for t in tiles:
                    np.testing.assert_array_equal(t.data, data[t.region])
                    cover[t.core] += 1
                assert {int(v) for v in np.unique(cover[want])} == {1}
                assert cover.sum() == cover[want].sum()
                firsts = [t.index for t in tiles if t.region[0].start == want[0]]
                assert firsts == sorted(firsts)  # grid order within a pick
                unordered = [
                    t.index
                    async for t in ds.tiles(
                        shape=shape, overlap=overlap, c=picks, z=slice(0, 2), ordered=False
                    )
                ]
                assert sorted(unordered) == sorted(t.index for t in tiles)
