"""Region reads equal zarr-python's, on file, memory, S3 (moto) and HTTP; request counts; faults."""

from __future__ import annotations

import json
import shutil
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st
from images import Spec, level_shapes, upload, write_image

import ngio_async
from ngio_async import (
    CodecError,
    MetadataError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

DTYPES = [
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "float32",
    "float64",
    "bool",
    "complex64",
]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    version = draw(st.sampled_from(["0.4", "0.5"]))
    ndim = draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(1, 12 if i < ndim - 2 else 40)) for i in range(ndim))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    shards = None
    if version == "0.5" and draw(st.booleans()):
        shards = tuple(c * draw(st.integers(1, 3)) for c in chunks)
    compressors = ["zstd", "gzip", "blosc", None] + (["zlib", "lz4"] if version == "0.4" else [])
    dtype = draw(st.sampled_from(DTYPES))
    fill = False if dtype == "bool" else draw(st.sampled_from([0, 7]))
    written = None
    if draw(st.booleans()):  # leave chunks unwritten: they read as the fill value
        written = tuple(slice(0, draw(st.integers(0, n))) for n in shape)
    return Spec(
        version=version,
        shape=shape,
        chunks=chunks,
        shards=shards,
        dtype=dtype,
        compressor=draw(st.sampled_from(compressors)),
        levels=draw(st.integers(1, 2)),
        fill_value=fill,
        written=written,
        seed=draw(st.integers(0, 2**16)),
    )


@st.composite
def regions(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["slice", "int", "neg", "step", "all"]))
        if kind == "int":
            out.append(draw(st.integers(0, n - 1)))
        elif kind == "neg":
            out.append(draw(st.integers(-n, -1)))
        elif kind == "all":
            out.append(slice(None))
        else:
            a = draw(st.integers(-n - 2, n + 2))
            b = draw(st.integers(-n - 2, n + 2))
            step = draw(st.integers(1, 3)) if kind == "step" else None
            out.append(slice(a, b, step))
    return tuple(out)


async def check_reads(
    url: Any, root: Path, spec: Spec, data: st.DataObject, **options: Any
) -> None:
    shapes = level_shapes(spec)
    async with ngio_async.open_async(url, **options) as ds:
        assert ds.shape == shapes[0]
        assert ds.dtype == np.dtype(spec.dtype)
        assert len(ds.levels) == spec.levels
        for i, shape in enumerate(shapes):
            expected = zarr.open_array(root / str(i), mode="r")
            for _ in range(2):
                sel = data.draw(regions(shape))
                got = await ds.level(i).getitem(sel)
                want = expected[sel]
                assert got.shape == np.shape(want)
                assert got.dtype == expected.dtype
                np.testing.assert_array_equal(got, want)


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


@examples(60)
@given(spec=specs(), data=st.data())
def test_file_backend_equals_zarr_python(
    tmp_path_factory: pytest.TempPathFactory, spec: Spec, data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("img")
    write_image(root, spec)
    anyio.run(check_reads, root, root, spec, data, backend="asyncio")


@examples(15)
@given(spec=specs(), data=st.data())
def test_memory_backend_equals_zarr_python(
    tmp_path_factory: pytest.TempPathFactory, spec: Spec, data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("img")
    write_image(root, spec)

    async def go() -> None:
        async with open_store("memory://") as store:
            await upload(root, store)
            await check_reads(store, root, spec, data)

    anyio.run(go, backend="asyncio")


@examples(12)
@given(spec=specs(), data=st.data())
def test_s3_backend_equals_zarr_python(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, spec: Spec, data: st.DataObject
) -> None:
    root = tmp_path_factory.mktemp("img")
    write_image(root, spec)
    url = s3_server.fresh_url()

    async def go() -> None:
        async with open_store(url, **s3_server.options()) as store:
            await upload(root, store)
        await check_reads(url, root, spec, data, **s3_server.options())

    anyio.run(go, backend="asyncio")


@examples(12)
@given(spec=specs(), data=st.data())
def test_http_backend_equals_zarr_python(
    tmp_path_factory: pytest.TempPathFactory,
    http_server: StaticServer,
    spec: Spec,
    data: st.DataObject,
) -> None:
    name = f"img-{uuid.uuid4().hex[:8]}.zarr"
    root = http_server.root / name
    write_image(root, spec)
    anyio.run(check_reads, http_server.url + name, root, spec, data, backend="asyncio")


# ---------------------------------------------------------------- round trips
def test_open_05_makes_one_get_per_level_plus_one(tmp_path: Path) -> None:
    spec = Spec(version="0.5", shape=(2, 64, 64), chunks=(1, 16, 16), levels=3)
    write_image(tmp_path, spec)

    async def go() -> None:
        store = InstrumentedStore(open_store(tmp_path))
        async with ngio_async.open_async(store) as ds:
            assert len(ds.levels) == 3
            assert store.method_counts["get"] == 1 + 3
            assert store.total_requests == 1 + 3
            store.reset()
            tile = await ds[1, 16:32, 32:48]  # exactly one chunk
            assert tile.shape == (16, 16)
            assert dict(store.calls) == {("get", "0/c/1/1/2"): 1}
        await store.aclose()

    anyio.run(go, backend="asyncio")


def test_sharded_tile_reads_index_then_inner_chunk(tmp_path: Path) -> None:
    spec = Spec(version="0.5", shape=(2, 64, 64), chunks=(1, 16, 16), shards=(1, 32, 32), levels=1)
    datas = write_image(tmp_path, spec)

    async def go() -> None:
        store = InstrumentedStore(open_store(tmp_path))
        async with ngio_async.open_async(store) as ds:
            store.reset()
            tile = await ds[0, 16:32, 32:48]
            np.testing.assert_array_equal(tile, datas[0][0, 16:32, 32:48])
            # the shard index (one ranged GET), then only that inner chunk (one ranged GET)
            assert dict(store.calls) == {("get", "0/c/0/0/1"): 2}
            store.reset()
            # same shard, another read: its index is read again (the shard may have been
            # rewritten by another writer in between; a tile stream reads it once)
            await ds[0, 0:16, 32:48]
            assert dict(store.calls) == {("get", "0/c/0/0/1"): 2}
            store.reset()
            whole = await ds[1, 32:64, 0:32]  # a whole shard: one GET
            np.testing.assert_array_equal(whole, datas[0][1, 32:64, 0:32])
            assert dict(store.calls) == {("get", "0/c/1/1/0"): 1}
        await store.aclose()

    anyio.run(go, backend="asyncio")


@pytest.mark.parametrize("blocking", [True, False], ids=["local", "remote"])
def test_a_shard_rewritten_by_another_writer_is_read_as_it_is_now(
    tmp_path: Path, blocking: bool
) -> None:
    # an open dataset must not keep a shard's old index (the new shard's bytes are elsewhere),
    # nor remember a shard as missing once another writer has written it
    spec = Spec(
        version="0.5",
        shape=(1, 32, 32),
        chunks=(1, 8, 8),
        shards=(1, 16, 16),
        levels=1,
        compressor=None,
        written=(slice(0, 1), slice(0, 16), slice(0, 16)),  # shard (0, 0) only
    )
    write_image(tmp_path, spec)
    arr = zarr.open_array(tmp_path / "0", mode="r+")

    async def go() -> None:
        store = InstrumentedStore(open_store(tmp_path), blocking=blocking)
        async with ngio_async.open_async(store) as ds:
            old = await ds[0, 4, 4:8]
            assert (await ds[0, 20, 20:24] == 0).all()  # shard (1, 1) is missing: fill
            new = np.zeros((1, 16, 16), dtype=arr.dtype)
            new[0, 4:8, 4:16] = np.arange(48, dtype=arr.dtype).reshape(4, 12) + 1000
            arr[:, 0:16, 0:16] = new  # another writer: inner chunks empty, offsets moved
            arr[:, 16:32, 16:32] = 7
            got = await ds[0, 4, 4:8]
            np.testing.assert_array_equal(got, new[0, 4, 4:8])
            assert not np.array_equal(got, old)
            assert (await ds[0, 20, 20:24] == 7).all()
            async for tile in ds.tiles(shape=(8, 8)):
                np.testing.assert_array_equal(tile.data, arr[tile.region])
        await store.aclose()

    anyio.run(go, backend="asyncio")


@pytest.mark.parametrize(
    ("chunks", "shards"),
    [((1, 16, 16), None), ((1, 16, 16), (1, 32, 32)), ((1, 16, 16), (1, 16, 16))],
    ids=["chunked", "sharded", "one-chunk-shards"],
)
def test_remote_reads_inside_one_chunk(
    tmp_path: Path, chunks: tuple[int, ...], shards: tuple[int, ...] | None
) -> None:
    """Regions inside one (inner) chunk: partial or whole, stored or absent, equal numpy."""
    spec = Spec(version="0.5", shape=(2, 40, 40), chunks=chunks, shards=shards, levels=1)
    (data,) = write_image(tmp_path, spec)
    # the last (partial) chunk or shard of channel 1: y, x in [32, 40)
    absent = "0/c/1/1/1" if shards == (1, 32, 32) else "0/c/1/2/2"
    (tmp_path / absent).unlink()
    expected = data.copy()
    expected[1, 32:40, 32:40] = 0  # the fill value where the object is gone

    async def go() -> None:
        store = InstrumentedStore(open_store(tmp_path))  # no blocking reads: the remote path
        counts: list[int] = []
        async with ngio_async.open_async(store) as ds:
            lvl = ds.levels[0]
            for region in [
                (slice(0, 1), slice(16, 32), slice(0, 16)),  # one whole chunk
                (slice(1, 2), slice(3, 9), slice(18, 31)),  # part of one
                (slice(0, 1), slice(32, 40), slice(32, 40)),  # a clipped edge chunk
                (slice(1, 2), slice(33, 39), slice(32, 40)),  # inside the absent object
            ]:
                store.reset()
                np.testing.assert_array_equal(await lvl.read(region), expected[region])
                counts.append(store.method_counts["get"])
        # chunks and one-chunk shards: one whole GET each (no index first); sharded: the index,
        # then the inner chunk's range (an absent shard: the index GET answers it)
        assert counts == ([2, 2, 2, 1] if shards == (1, 32, 32) else [1, 1, 1, 1])
        await store.aclose()

    anyio.run(go, backend="asyncio")


def test_http_tile_fetches_one_ranged_chunk(http_server: StaticServer) -> None:
    spec = Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1)
    write_image(http_server.root / "img.zarr", spec)

    async def go() -> None:
        async with ngio_async.open_async(http_server.url + "img.zarr") as ds:
            assert http_server.count("GET") == 2
            http_server.reset()
            await ds[0, 0:16, 0:16]
            assert http_server.count("GET", "/img.zarr/0/c/0/0/0") == 2  # index + inner chunk
            assert all(r.range is not None for r in http_server.requests)

    anyio.run(go, backend="asyncio")


def test_http_whole_shard_is_one_get_decoded_on_every_thread(http_server: StaticServer) -> None:
    # 64 inner chunks: the whole shard comes in one GET and is decoded in parts, in parallel
    spec = Spec(version="0.5", shape=(1, 64, 64), chunks=(1, 8, 8), shards=(1, 64, 64), levels=1)
    (data,) = write_image(http_server.root / "img.zarr", spec)

    async def go() -> None:
        async with ngio_async.open_async(
            http_server.url + "img.zarr", limits=ngio_async.Limits(decode_threads=4)
        ) as ds:
            http_server.reset()
            np.testing.assert_array_equal(await ds[...], data)
            np.testing.assert_array_equal(await ds[:, 3:61, 2:63], data[:, 3:61, 2:63])
            assert http_server.count("GET", "/img.zarr/0/c/0/0/0") == 2
            # whole objects: no range, or obstore's one bounded range from byte 0
            assert {r.range for r in http_server.requests} <= {None, f"bytes=0-{2**40 - 1}"}

    anyio.run(go, backend="asyncio")


# ---------------------------------------------------------------- faults
def serve_image(http_server: StaticServer, spec: Spec | None = None) -> list[Any]:
    return write_image(http_server.root / "img.zarr", spec or Spec(shape=(1, 32, 32), levels=1))


def test_503_twice_then_200_succeeds(http_server: StaticServer) -> None:
    datas = serve_image(http_server)

    async def go() -> None:
        async with ngio_async.open_async(http_server.url + "img.zarr") as ds:
            http_server.reset()
            http_server.faults.status, http_server.faults.status_times = 503, 2
            got = await ds[0, 0:16, 0:16]
            np.testing.assert_array_equal(got, datas[0][0, 0:16, 0:16])
            assert http_server.count("GET") == 3

    anyio.run(go, backend="asyncio")


def test_truncated_body_is_an_error(http_server: StaticServer) -> None:
    serve_image(http_server)

    async def go() -> None:
        async with ngio_async.open_async(
            http_server.url + "img.zarr", limits=ngio_async.Limits(max_retries=1)
        ) as ds:
            http_server.faults.drop = True
            with pytest.raises(StoreError, match=r"0/c/0/0/0.*img\.zarr"):
                await ds[0, 0:16, 0:16]

    anyio.run(go, backend="asyncio")


def test_403_is_permission_denied(http_server: StaticServer) -> None:
    serve_image(http_server)
    http_server.faults.status, http_server.faults.status_times = 403, -1

    async def go() -> None:
        async with ngio_async.open_async(http_server.url + "img.zarr"):
            pass

    with pytest.raises(PermissionDeniedError, match=r"img\.zarr"):
        anyio.run(go, backend="asyncio")


def test_missing_dataset_is_not_found(
    tmp_path: Path, http_server: StaticServer, s3_server: S3Server
) -> None:
    with pytest.raises(NotFoundError, match="no OME-Zarr group"):
        ngio_async.open(tmp_path)
    with pytest.raises(NotFoundError, match=r"nothing\.zarr"):
        ngio_async.open(http_server.url + "nothing.zarr")
    with pytest.raises(NotFoundError, match="no OME-Zarr group"):
        ngio_async.open(s3_server.fresh_url(), **s3_server.options())


def test_missing_level_names_the_key(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(levels=2))
    shutil.rmtree(tmp_path / "1")
    with pytest.raises(NotFoundError, match=r"level '1'.*1/zarr\.json"):
        ngio_async.open(tmp_path)


def test_corrupt_chunk_is_codec_error(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(shape=(1, 32, 32), chunks=(1, 16, 16), levels=1))
    (tmp_path / "0" / "c" / "0" / "1" / "1").write_bytes(b"garbage, not zstd")
    with ngio_async.open(tmp_path) as ds:
        np.testing.assert_array_equal(ds[0, :16, :16].shape, (16, 16))
        with pytest.raises(CodecError, match="0/c/0/1/1") as info:
            ds[0, 16:, 16:]
        assert info.value.key == "0/c/0/1/1"


def test_wrong_ndim_and_dimension_names(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(levels=1))
    group = zarr.open_group(tmp_path, mode="a")
    attrs: dict[str, Any] = dict(group.attrs)
    attrs["ome"]["multiscales"][0]["axes"] = [
        *[{"name": n, "type": "space"} for n in ("z", "y", "x")][:2],
        {"name": "q", "type": "space"},
    ]
    group.attrs.update(attrs)
    with pytest.raises(MetadataError, match="dimension_names"):
        ngio_async.open(tmp_path)


def test_plate_root_is_not_an_image(tmp_path: Path) -> None:
    zarr.open_group(tmp_path, mode="w").attrs.update(
        {
            "ome": {
                "version": "0.5",
                "plate": {
                    "rows": [{"name": "A"}],
                    "columns": [{"name": "1"}],
                    "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
                },
            }
        }
    )
    with pytest.raises(UnsupportedError, match=r"not an image.*plate"):
        ngio_async.open(tmp_path)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_unsupported_codec_names_the_level_file(tmp_path: Path, version: str) -> None:
    spec = Spec(version=version, shape=(1, 32, 32), chunks=(1, 16, 16), levels=2)
    write_image(tmp_path, spec)
    if version == "0.5":
        key = tmp_path / "1" / "zarr.json"
        doc = json.loads(key.read_text())
        doc["codecs"][-1] = {"name": "no-such-codec", "configuration": {}}
    else:
        key = tmp_path / "1" / ".zarray"
        doc = json.loads(key.read_text())
        doc["compressor"] = {"id": "no-such-codec"}
    key.write_text(json.dumps(doc))
    with pytest.raises(UnsupportedError, match=rf"{tmp_path.name}/1/{key.name}: .*no-such-codec"):
        ngio_async.open(tmp_path)


@pytest.mark.parametrize("shards", [None, (1, 128, 128)], ids=["chunked", "sharded"])
def test_strided_reads_fetch_only_the_chunks_they_need(
    tmp_path: Path, shards: tuple[int, ...] | None
) -> None:
    spec = Spec(version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), shards=shards, levels=1)
    data = write_image(tmp_path, spec)[0]

    async def go() -> None:
        store = InstrumentedStore(open_store(tmp_path))
        async with ngio_async.open_async(store) as ds:
            sels: list[tuple[Any, ...]] = [
                np.s_[0, ::100, ::100],
                np.s_[:, 5::64, 3::50],
                np.s_[..., 7, ::40],
                np.s_[0, ::16, ::16],  # every chunk holds one: the covering read
            ]
            for sel in sels:
                store.reset()
                got = await ds[sel]
                np.testing.assert_array_equal(got, data[sel])
            store.reset()
            await ds[0, ::100, ::100]  # 3 x 3 pixels: 9 inner chunks of 256
            needed = 9 if shards is None else 9 + 4  # + the indexes of the 4 shards holding them
            assert store.total_requests == needed
        await store.aclose()

    anyio.run(go, backend="asyncio")
