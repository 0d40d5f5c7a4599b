"""Point, orthogonal and list-index writes read each stored object once: the object's own
read-modify-write (under its lock on local disk, a conditional put elsewhere) takes the
values at the points and keeps every other pixel. They read the span of the points first
(ranged GETs of the shard index and inner chunks), then the whole shard again to patch it:
two reads of one shard per write, and another process's write of the shard between the two
was lost."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.images._write import KeyLocks, write_at
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import S3Server

    from ngio_async import Dataset

pytestmark = pytest.mark.anyio

SHAPE = (48, 64)
CHUNKS = (8, 8)
SHARDS = (16, 32)  # 3 x 2 shards of 2 x 4 inner chunks; the last row of shards is whole


def _gets(store: InstrumentedStore) -> dict[str, int]:
    return {key: n for (method, key), n in store.calls.items() if method == "get"}


def _puts(store: InstrumentedStore) -> dict[str, int]:
    return {key: n for (method, key), n in store.calls.items() if method == "put"}


def _shard_key(y: int, x: int) -> str:
    return f"0/c/{y // SHARDS[0]}/{x // SHARDS[1]}"


def _start() -> NDArray[np.uint16]:
    return np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE) + 1


async def _image(
    store: InstrumentedStore, shards: tuple[int, int] | Literal[False] = SHARDS
) -> Dataset:
    ds = await ngio_async.create_async(
        store, shape=SHAPE, dtype="uint16", axes="yx", chunks=CHUNKS, shards=shards, levels=1
    )
    await ds.write(_start())
    store.reset()
    return ds


# the points: in two shards ((0, 0) and (1, 1)), several inner chunks of each, one repeated
ROWS = np.array([1, 3, 14, 3, 17, 30, 31])
COLS = np.array([2, 9, 30, 9, 40, 33, 63])
VALUES = np.array([100, 101, 102, 103, 104, 105, 106], dtype=np.uint16)


def _points_model() -> NDArray[np.uint16]:
    model = _start()
    model[ROWS, COLS] = VALUES  # numpy: the last value of a repeated point wins
    return model


def _touched_points() -> set[str]:
    return {_shard_key(int(y), int(x)) for y, x in zip(ROWS, COLS, strict=True)}


# an orthogonal selection: rows x columns in shards (0, 0), (0, 1), (2, 0), (2, 1)
OROWS = [2, 5, 40]
OCOLS = [1, 20, 50, 51]


def _orthogonal_model(values: NDArray[Any]) -> NDArray[np.uint16]:
    model = _start()
    model[np.ix_(OROWS, OCOLS)] = values
    return model


def _touched_orthogonal() -> set[str]:
    return {_shard_key(y, x) for y in OROWS for x in OCOLS}


async def _stores(
    where: str, tmp_path: Path, s3: Callable[[], S3Server]
) -> tuple[InstrumentedStore, str]:
    if where == "file":
        url = str(tmp_path / "img.zarr")
        return InstrumentedStore(open_store(url, mkdir=True)), url
    server = s3()
    url = server.fresh_url()
    return InstrumentedStore(open_store(url, **server.options())), url


@pytest.fixture
def s3_lazy(request: pytest.FixtureRequest) -> Callable[[], S3Server]:
    """The moto server, started only by the tests that use it."""

    def get() -> S3Server:
        server: S3Server = request.getfixturevalue("s3_server")
        return server

    return get


def _check_once(store: InstrumentedStore, touched: set[str]) -> None:
    """One GET and one PUT of each shard written, nothing else read or written."""
    assert _gets(store) == dict.fromkeys(touched, 1), _gets(store)
    assert _puts(store) == dict.fromkeys(touched, 1), _puts(store)
    assert set(store.method_counts) <= {"get", "put"}, store.method_counts


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_write_at_reads_each_shard_once(
    tmp_path: Path, s3_lazy: Callable[[], S3Server], where: str
) -> None:
    """``write_at``, what the point and orthogonal writes of a level call per stored object."""
    store, _ = await _stores(where, tmp_path, s3_lazy)
    async with store:
        ds = await _image(store)
        async with ds:
            level = ds.levels[0]
            region = (slice(0, 16), slice(0, 32))  # shard (0, 0)
            at = (np.array([1, 3, 14]), np.array([2, 9, 30]))
            await write_at(level, region, at, np.array([7, 8, 9]))
            _check_once(store, {"0/c/0/0"})
            model = _start()
            model[[1, 3, 14], [2, 9, 30]] = [7, 8, 9]
            np.testing.assert_array_equal(await ds.read(), model)


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_point_writes_read_each_shard_once(
    tmp_path: Path, s3_lazy: Callable[[], S3Server], where: str
) -> None:
    store, _ = await _stores(where, tmp_path, s3_lazy)
    async with store:
        ds = await _image(store)
        async with ds:
            await ds.write_points((ROWS, COLS), VALUES)
            _check_once(store, _touched_points())
            np.testing.assert_array_equal(await ds.read(), _points_model())


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_orthogonal_writes_read_each_shard_once(
    tmp_path: Path, s3_lazy: Callable[[], S3Server], where: str
) -> None:
    store, _ = await _stores(where, tmp_path, s3_lazy)
    values = np.arange(12, dtype=np.uint16).reshape(3, 4) + 500
    async with store:
        ds = await _image(store)
        async with ds:
            await ds.write_orthogonal((OROWS, OCOLS), values)
            _check_once(store, _touched_orthogonal())
            np.testing.assert_array_equal(await ds.read(), _orthogonal_model(values))


async def test_unsharded_chunks_are_read_once(tmp_path: Path) -> None:
    store = InstrumentedStore(open_store(str(tmp_path / "img.zarr"), mkdir=True))
    async with store:
        ds = await _image(store, shards=False)
        async with ds:
            await ds.write_points((ROWS, COLS), VALUES)
            touched = {f"0/c/{y // 8}/{x // 8}" for y, x in zip(ROWS, COLS, strict=True)}
            _check_once(store, touched)
            np.testing.assert_array_equal(await ds.read(), _points_model())


def _sync_writes(url: str) -> None:
    """``ds.vindex[...] = v``, ``ds.oindex[...] = v`` and ``ds[[..], [..]] = v``, blocking."""
    with ngio_async.open(url, mode="r+") as ds:
        ds.vindex[ROWS, COLS] = VALUES
        ds.oindex[OROWS, OCOLS] = 9
        ds[[0, 47], [0, 63]] = [11, 12]


def test_blocking_assignments_equal_numpy(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(
        url, shape=SHAPE, dtype="uint16", axes="yx", chunks=CHUNKS, shards=SHARDS, levels=1
    ) as ds:
        ds.write(_start())
    _sync_writes(url)
    model = _points_model()
    model[np.ix_(OROWS, OCOLS)] = 9
    model[[0, 47], [0, 63]] = [11, 12]
    with ngio_async.open(url) as ds:
        np.testing.assert_array_equal(ds[...], model)


async def test_masked_writes_keep_every_other_pixel_and_feed_the_pyramid(
    tmp_path: Path,
) -> None:
    """Points in every inner chunk of some shards, none in others, on an image whose edge
    shards are partial; with ``pyramid=True`` the lower levels equal a full rebuild (the
    cascade is given each object's pixels as stored, not only the points)."""
    rng = np.random.default_rng(3)
    shape = (40, 56)  # edge shards and edge inner chunks are partial
    start = rng.integers(1, 60000, size=shape, dtype=np.uint16)
    url = str(tmp_path / "img.zarr")
    async with ngio_async.create_async(
        url, shape=shape, dtype="uint16", axes="yx", chunks=CHUNKS, shards=SHARDS, levels=3
    ) as ds:
        await ds.write(start, pyramid=True)
        model = start.copy()
        for _ in range(4):
            n = int(rng.integers(1, 30))
            rows = rng.integers(0, shape[0], size=n)
            cols = rng.integers(0, shape[1], size=n)
            values = rng.integers(0, 60000, size=n, dtype=np.uint16)
            await ds.write_points((rows, cols), values, pyramid=True)
            model[rows, cols] = values
            rows = np.unique(rng.integers(0, shape[0], size=3))
            cols = np.unique(rng.integers(0, shape[1], size=5))
            await ds.write_orthogonal((rows, cols), 0, pyramid=True)  # fill value: chunks may go
            model[np.ix_(rows, cols)] = 0
        np.testing.assert_array_equal(await ds.read(), model)
        lower = [await ds.read(level=i) for i in (1, 2)]
    rebuilt = str(tmp_path / "rebuilt.zarr")
    async with ngio_async.create_async(
        rebuilt, shape=shape, dtype="uint16", axes="yx", chunks=CHUNKS, shards=SHARDS, levels=3
    ) as ds:
        await ds.write(model, pyramid=True)
        for i, got in zip((1, 2), lower, strict=True):
            np.testing.assert_array_equal(got, await ds.read(level=i))


class _HeldAfterFirstGet(InstrumentedStore):
    """Once ``armed``, holds the answer of its next GET until ``release`` is set
    (``first_get``: set when it is held): another writer's write lands between this writer's
    read and its write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed = False
        self.first_get = anyio.Event()
        self.release = anyio.Event()

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        async with super()._track(method, key):
            yield
        if method == "get" and self.armed and not self.first_get.is_set():
            self.first_get.set()
            await self.release.wait()


async def test_a_point_write_keeps_another_writers_points_written_meanwhile(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """Two writers of one S3 image (two processes' worth of state) write points of one shard;
    ``b`` reads it, then ``a`` writes, then ``b`` writes: both writers' points are there. The
    other pixels of a point write are read in the object's conditional update now (its put
    fails on ``a``'s version, and ``b`` reads and patches again); read before it, they
    overwrote ``a``'s points with the values ``b`` had read."""
    url = s3_server.fresh_url()
    async with ngio_async.create_async(
        url,
        shape=SHAPE,
        dtype="uint16",
        axes="yx",
        chunks=CHUNKS,
        shards=SHARDS,
        levels=1,
        **s3_server.options(),
    ) as ds:
        await ds.write(_start())
    held = _HeldAfterFirstGet(open_store(url, **s3_server.options()))
    pa = (np.array([5, 9]), np.array([10, 20]))
    pb = (np.array([0, 15]), np.array([0, 31]))  # two corners: b's box is the whole shard
    async with (
        ngio_async.open_async(url, mode="r+", **s3_server.options()) as a,
        ngio_async.open_async(held, mode="r+") as b,
        anyio.create_task_group() as tg,
    ):
        # (another process: b takes no lock a takes; in one process every open of the image
        # shares its object locks, so a waited for b's held read until it timed out, 30 s)
        for level in b.levels:
            level._write_locks = KeyLocks()
        held.armed = True
        tg.start_soon(_run, b.write_points(pb, 2000))
        await held.first_get.wait()
        with anyio.fail_after(10):
            await a.write_points(pa, 1000)  # between b's read and b's write
        held.release.set()
    model = _start()
    model[pa] = 1000
    model[pb] = 2000
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        np.testing.assert_array_equal(await ds.read(), model)


async def _run(coro: Coroutine[Any, Any, None]) -> None:
    await coro


# one list index, with integers, steps (backwards too), None, a mask and '...' around it: the
# list keeps its place in the result (zarr-python's reading; numpy's too for these, where no
# integer index stands apart from the list)
LIST_SELECTIONS: list[tuple[Any, ...]] = [
    (1, [2, 5, 40, 5], slice(None)),
    (slice(None), slice(3, 45, 4), [1, 20, 50, 51]),
    (slice(None, None, -1), [0, 47], slice(None, None, 3)),
    (None, 2, [40, 1], slice(10, 30)),
    ([True, False, True], slice(0, 16), 5),
    (Ellipsis, [3, 3, 7]),
]


@pytest.mark.parametrize("selection", LIST_SELECTIONS)
async def test_list_index_writes_read_each_shard_once(
    tmp_path: Path, selection: tuple[Any, ...]
) -> None:
    shape, chunks, shards = (3, 48, 64), (1, 8, 8), (1, 16, 32)
    store = InstrumentedStore(open_store(str(tmp_path / "img.zarr"), mkdir=True))
    async with store:
        start = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
        async with await ngio_async.create_async(
            store, shape=shape, dtype="uint16", axes="cyx", chunks=chunks, shards=shards,
            levels=1,
        ) as ds:  # fmt: skip
            await ds.write(start)
            store.reset()
            model = start.copy()
            values = np.random.default_rng(5).integers(
                1, 60000, model[selection].shape, dtype=np.uint16
            )
            await ds.levels[0].setitem(selection, values)
            model[selection] = values
            marked = np.zeros(shape, dtype=bool)
            marked[selection] = True
            cs, ys, xs = np.nonzero(marked)
            touched = {
                f"0/c/{c}/{y // shards[1]}/{x // shards[2]}"
                for c, y, x in zip(cs, ys, xs, strict=True)
            }
            _check_once(store, touched)
            np.testing.assert_array_equal(await ds.read(), model)
