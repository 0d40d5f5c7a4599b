"""Region writes equal a numpy model (read back by zarr-python), concurrency, the tile writer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st

import ngio_async
from ngio_async import Tile
from ngio_async.images._write import KeyLocks
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

    from ngio_async.images import TileWriter
    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

DTYPES = ["uint8", "int16", "uint16", "float32", "float64", "bool", "int64"]
COMPRESSORS = ["zstd", "blosc-zstd", "gzip", None]


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def layouts(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from(["0.5", "0.4"]))
    ndim = draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(1, 4 if i < ndim - 2 else 40)) for i in range(ndim))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    shards: Any = False
    if version == "0.5" and draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    return {
        "shape": shape,
        "axes": "tczyx"[5 - ndim :],
        "chunks": chunks,
        "shards": shards,
        "dtype": draw(st.sampled_from(DTYPES)),
        "compressor": draw(st.sampled_from(COMPRESSORS)),
        "ngff_version": version,
        "levels": 1,
        "units": None,
    }


@st.composite
def regions(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[slice, ...]:
    out = []
    for n in shape:
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, n))
        out.append(slice(a, b))
    return tuple(out)


def values(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], kind: str
) -> Any:
    if kind == "fill":
        return np.zeros(shape, dtype)
    if kind == "scalar":
        return dtype.type(1)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 100, size=shape).astype(dtype)


def stored_keys(root: Path) -> set[str]:
    """Chunk/shard objects of level 0 (metadata documents excluded)."""
    base = root / "0"
    names = {".zarray", ".zattrs", "zarr.json"}
    return {
        p.relative_to(base).as_posix()
        for p in base.rglob("*")
        if p.is_file() and p.name not in names
    }


async def run_writes(
    url: Any, layout: dict[str, Any], data: st.DataObject, **options: Any
) -> tuple[np.ndarray[Any, Any], Any]:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dtype = np.dtype(layout["dtype"])
    model = np.zeros(layout["shape"], dtype)
    async with ngio_async.create_async(url, **layout, **options) as ds:
        for _ in range(data.draw(st.integers(1, 6))):
            region = data.draw(regions(layout["shape"]))
            kind = data.draw(st.sampled_from(["data", "data", "fill", "scalar"]))
            shape = tuple(s.stop - s.start for s in region)
            value = values(rng, shape, dtype, kind)
            model[region] = value
            if data.draw(st.booleans()):
                await ds.write_at(region, value)
            else:
                await ds.levels[0].write(region, value)
        np.testing.assert_array_equal(await ds.read(), model)
    return model, ds


@examples(60)
@given(layout=layouts(), data=st.data())
def test_region_writes_equal_numpy_model(
    tmp_path_factory: pytest.TempPathFactory, layout: dict[str, Any], data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("img") / "img.zarr"
    model, _ = anyio.run(run_writes, root, layout, data, backend="asyncio")
    arr = zarr.open_array(root / "0", mode="r")
    np.testing.assert_array_equal(arr[...], model)
    # all-fill objects are not stored: the same objects zarr-python stores for the same data
    ref = root.parent / "ref.zarr"
    kwargs: dict[str, Any] = {}
    if layout["ngff_version"] == "0.5":
        if layout["shards"]:
            kwargs["shards"] = arr.shards
    else:
        kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    z = zarr.create_array(
        store=ref / "0",
        shape=model.shape,
        chunks=arr.chunks,
        dtype=model.dtype,
        zarr_format=3 if layout["ngff_version"] == "0.5" else 2,
        fill_value=arr.fill_value,
        **kwargs,
    )
    z[...] = model
    assert stored_keys(root) == stored_keys(ref)


@examples(8)
@given(layout=layouts(), data=st.data())
def test_region_writes_through_s3(
    s3_server: S3Server, layout: dict[str, Any], data: st.DataObject
) -> None:
    url = s3_server.fresh_url()

    async def go() -> None:
        model, _ = await run_writes(url, layout, data, **s3_server.options())
        async with ngio_async.open_async(url, **s3_server.options()) as back:
            np.testing.assert_array_equal(await back.read(), model)

    anyio.run(go, backend="asyncio")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
async def test_concurrent_writes_sharing_objects_lose_nothing(tmp_path: Path, version: str) -> None:
    url = tmp_path / "img.zarr"
    store = InstrumentedStore(open_store(tmp_path, mkdir=True), latency=0.001)
    model = np.zeros((2, 64, 64), "uint16")
    async with ngio_async.create_async(
        store,
        shape=(2, 64, 64),
        dtype="uint16",
        axes="cyx",
        chunks=(1, 32, 32) if version == "0.4" else (1, 8, 8),
        shards=None if version == "0.4" else (2, 64, 64),  # one shard holds everything
        ngff_version=version,  # type: ignore[arg-type]
        levels=1,
    ) as ds:
        # 2 x 16 x 16 writes of 4 x 4 pixels: many share a chunk (and all share the shard)
        async with anyio.create_task_group() as tg:
            for c in range(2):
                for i in range(16):
                    for j in range(16):
                        value = c * 1000 + i * 16 + j + 1
                        region = (slice(c, c + 1), slice(4 * i, 4 * i + 4), slice(4 * j, 4 * j + 4))
                        model[region] = value
                        tg.start_soon(ds.levels[0].write, region, value)
        assert len(ds.levels[0]._write_locks) == 0  # every lock released and dropped
        np.testing.assert_array_equal(await ds.read(), model)
    del url
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "0", mode="r")[...], model)


async def test_whole_object_writes_skip_the_read(tmp_path: Path) -> None:
    store = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.create_async(
        store, shape=(64, 64), dtype="uint8", chunks=(16, 16), shards=(32, 32)
    ) as ds:
        store.reset()
        await ds.write_at((slice(0, 32), slice(0, 64)), 5)  # two whole shards
        assert store.method_counts == {"put": 2}
        store.reset()
        await ds.write_at((slice(32, 40), slice(0, 16)), 6)  # part of one inner chunk
        assert store.method_counts == {"get": 1, "put": 1}
        store.reset()
        await ds.write_at((slice(0, 32), slice(0, 32)), 0)  # whole shard, all fill: deleted
        assert store.method_counts == {"delete": 1}
        assert not await store.exists("0/c/0/0")
        store.reset()
        await ds.write_at((slice(32, 40), slice(0, 16)), 0)  # back to fill: deleted
        assert store.method_counts == {"get": 1, "delete": 1}
        assert not await store.exists("0/c/1/0")
        expected = np.zeros((64, 64), "uint8")
        expected[0:32, 32:64] = 5
        np.testing.assert_array_equal(await ds.read(), expected)
    await store.aclose()


async def test_written_shard_refreshes_cached_index(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path, shape=(64, 64), dtype="uint16", chunks=(8, 8), shards=(64, 64)
    ) as ds:
        await ds.write_at((slice(0, 8), slice(0, 8)), 1)
        assert (await ds[0:8, 0:8] == 1).all()  # reads (and caches) the shard index
        await ds.write_at((slice(8, 16), slice(8, 16)), 2)
        assert (await ds[8:16, 8:16] == 2).all()
        assert (await ds[0:8, 0:8] == 1).all()


async def test_write_by_axis_name(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path,
        shape=(3, 4, 32, 32),
        dtype="int16",
        axes="czyx",
        channels=["A", "B", "C"],
        chunks=(1, 1, 16, 16),
    ) as ds:
        model = np.zeros(ds.shape, "int16")
        await ds.write(np.full((4, 32, 32), 3, "int16"), c="B")
        model[1] = 3
        await ds.write(np.arange(32, dtype="int16"), c="C", z=2, y=5)
        model[2, 2, 5] = np.arange(32)
        await ds.write(np.array([[7], [8]], "int16"), c=["A", "C"], z=0, y=slice(0, 3), x=1)
        model[0, 0, 0:3, 1] = 7
        model[2, 0, 0:3, 1] = 8
        await ds.write_at((slice(None), 3, slice(0, 32, 5), slice(1, None, 7)), -1)
        model[:, 3, 0:32:5, 1::7] = -1
        await ds.write_at((0, 1, -1, -1), 9)
        model[0, 1, -1, -1] = 9
        np.testing.assert_array_equal(await ds.read(), model)
        with pytest.raises(ValueError, match="unknown axis"):
            await ds.write(1, w=0)
        with pytest.raises(ValueError, match="broadcast"):
            await ds.write(np.zeros((3, 3)), c="A")
        with pytest.raises(KeyError):
            await ds.write(1, c="nope")
        with pytest.raises(ValueError, match="step-1"):
            await ds.levels[0].write((slice(0, 4, 2),) * 4, 1)


# ---------------------------------------------------------------- the tile writer
async def test_writer_bounds_pending_writes(tmp_path: Path) -> None:
    store = InstrumentedStore(open_store(tmp_path), latency=0.02)
    async with ngio_async.create_async(
        store, shape=(256, 256), dtype="uint8", chunks=(16, 16), shards=False
    ) as ds:
        store.reset()
        async with ds.writer(max_pending=3) as w:
            as_protocol: TileWriter = w  # statically a TileWriter
            assert callable(as_protocol.write)
            for i in range(16):
                for j in range(4):
                    region = (slice(16 * i, 16 * i + 16), slice(16 * j, 16 * j + 16))
                    await w.write((region, i * 4 + j + 1))
                    assert w.pending <= 3
        assert store.method_counts == {"put": 64}  # whole chunks: no reads
        assert 2 <= store.peak_in_flight <= 3
        assert w.written == 64
        got = await ds[0:256, 0:64]
        assert got[0, 0] == 1 and got[255, 63] == 64
    await store.aclose()


async def test_writer_raises_the_first_failure(tmp_path: Path) -> None:
    def fail(method: str, key: str) -> BaseException | None:
        return PermissionError("nope") if method == "put" and key.endswith("/3") else None

    store = InstrumentedStore(open_store(tmp_path), fail=fail)
    async with ngio_async.create_async(
        store, shape=(16, 64), dtype="uint8", chunks=(16, 16), shards=False
    ) as ds:

        async def run() -> None:
            async with ds.writer(max_pending=2) as w:
                holder.append(w)
                for j in range(4):
                    await w.write(((slice(0, 16), slice(16 * j, 16 * j + 16)), 1))
                await anyio.sleep(0.1)
                await w.write(((slice(0, 16), slice(0, 16)), 1))

        holder: list[Any] = []
        with pytest.raises(ngio_async.PermissionDeniedError):
            await run()
        w = holder[0]
        with pytest.raises(RuntimeError, match="async with"):
            await w.write(((slice(0, 1), slice(0, 1)), 1))
    await store.aclose()


async def test_stream_into_writer_transforms_an_image(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    source = rng.integers(0, 1000, size=(2, 100, 130)).astype("uint16")
    async with ngio_async.create_async(
        tmp_path / "src.zarr", shape=source.shape, dtype="uint16", axes="cyx", chunks=(1, 32, 32)
    ) as src:
        await src.write_at(..., source)
        async with ngio_async.create_like_async(src, tmp_path / "dst.zarr", dtype="float32") as dst:
            async with dst.writer(max_pending=4) as w:
                await ngio_async.stream(
                    src.tiles(shape=(1, 40, 50), overlap=3),
                    lambda a: np.sqrt(a.astype("float32")),
                    out=w,
                )
            np.testing.assert_allclose(await dst.read(), np.sqrt(source.astype("float32")))
    np.testing.assert_allclose(
        np.asarray(zarr.open_array(tmp_path / "dst.zarr" / "0", mode="r")[...]),
        np.sqrt(source.astype("float32")),
    )


async def test_writer_takes_tiles(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path, shape=(20, 20), dtype="uint8", chunks=(8, 8)
    ) as ds:
        async with ds.writer() as w:
            data = np.arange(100, dtype="uint8").reshape(10, 10)
            tile = Tile(data, (slice(0, 10), slice(0, 10)), (0, 0), (slice(1, 9), slice(1, 9)), 0)
            await w.write(tile)  # only the core is written
        got = await ds.read()
        np.testing.assert_array_equal(got[1:9, 1:9], data[1:9, 1:9])
        assert got[0].sum() == 0 and got[9].sum() == 0


def test_sync_writer(tmp_path: Path) -> None:
    with ngio_async.create(tmp_path, shape=(32, 32), dtype="uint8", chunks=(8, 8)) as ds:
        with ds.writer(max_pending=2) as w:
            for i in range(4):
                w.write(((slice(8 * i, 8 * i + 8), slice(0, 32)), i + 1))
        assert [int(ds[8 * i, 0]) for i in range(4)] == [1, 2, 3, 4]


async def test_key_locks_refcount() -> None:
    locks = KeyLocks()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with locks.hold("k"):
            order.append(name + "+")
            await anyio.sleep(0.01)
            order.append(name + "-")

    async with anyio.create_task_group() as tg:
        for n in "abc":
            tg.start_soon(hold, n)
    assert len(locks) == 0
    assert all(order[i][0] == order[i + 1][0] for i in range(0, 6, 2))


async def test_memory_store_round_trip() -> None:
    store: AsyncStore
    async with open_store("memory://") as store:
        ds = await ngio_async.create_async(
            store, shape=(3, 50, 70), dtype="float64", axes="zyx", chunks=(1, 16, 16)
        )
        data = np.random.default_rng(2).standard_normal((3, 50, 70))
        await ds.write_at(..., data)
        await ds.write_at((1, slice(3, 9), slice(60, 70)), np.nan)
        data[1, 3:9, 60:70] = np.nan
        np.testing.assert_array_equal(await ds.read(), data)
        await ds.aclose()


async def test_in_place_transform_with_tiles_smaller_than_shards(tmp_path: Path) -> None:
    # reads of a shard being rewritten must see one version of it (index and chunks)
    rng = np.random.default_rng(3)
    source = rng.integers(0, 1000, size=(2, 128, 128)).astype("uint16")
    async with ngio_async.create_async(
        tmp_path, shape=source.shape, dtype="uint16", chunks=(1, 16, 16), shards=(1, 128, 128)
    ) as ds:
        await ds.write_at(..., source)
        async with ds.writer(max_pending=8) as w:
            async for tile in ds.tiles(shape=(1, 16, 16)):
                await w.write((tile.region, tile.data + 1))
        np.testing.assert_array_equal(await ds.read(), source + 1)


async def test_data_that_does_not_fit_is_refused_naming_both_shapes(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img", shape=(1, 8, 8), dtype="uint16", axes="cyx", levels=1
    ) as ds:
        with pytest.raises(ValueError, match=r"shape \(2, 1, 8, 8\) does not fit .*\(1, 8, 8\)"):
            await ds.write(np.zeros((2, 1, 8, 8)))
        with pytest.raises(ValueError, match=r"shape \(3,\) does not fit .*\(8, 8\)"):
            await ds.write(np.zeros(3), c=0)
        with pytest.raises(ValueError, match="dtype <U3 cannot be written to a uint16 level"):
            await ds.write(np.full((1, 8, 8), "abc"))
        assert not (await ds.read()).any()  # nothing was written


@pytest.mark.parametrize("value", [70000, -1, [5, 70000], float("nan"), 1e10, 1j])
async def test_python_numbers_that_are_no_value_of_the_dtype_are_refused(
    tmp_path: Path, value: Any
) -> None:
    # numpy (and zarr-python) refuse them in an assignment; a silent wrap wrote 70000 as 4464
    async with ngio_async.create_async(
        tmp_path / "img", shape=(4, 2), dtype="uint16", axes="yx", levels=1
    ) as ds:
        with pytest.raises(ValueError, match="is not a uint16 value"):
            await ds.write(value)
        with pytest.raises(ValueError, match="is not a uint16 value"):
            await ds.write_at((0, slice(None)), value)
        async with ds.writer() as w:
            with pytest.raises(ValueError, match="is not a uint16 value"):
                await w.write(((slice(0, 1), slice(0, 2)), value))
        assert not (await ds.read()).any()  # nothing was written
        await ds.write_at((0, slice(None)), [3.7, 65535])  # numpy's casts otherwise
        with pytest.raises(ValueError, match="do not fit a uint16 level"):  # never wrapped
            await ds.write(np.array([[70000, -1]] * 4))
        await ds.write(np.array([[7, 65535]] * 4, dtype="int64"))  # arrays that fit: cast
        np.testing.assert_array_equal(await ds.read(), [[7, 65535]] * 4)
