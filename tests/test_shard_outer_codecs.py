"""Shards compressed whole: bytes->bytes codecs after ``sharding_indexed`` (zarr-python writes
them for ``serializer=ShardingCodec(...)`` beside ``compressors=``; they were refused).

Such a shard has no index or inner chunk readable by range: every read fetches the whole
object (one GET), decompresses it, then reads its index and inner chunks. Images are written
by zarr-python itself (zstd; gzip + crc32c; a nested shard compressed at the inner level) and
read back on local files, moto S3 and HTTP; ngio_async's writes are read back by zarr-python.
"""

from __future__ import annotations

import json
import shutil
import warnings
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
import zarr.codecs.numcodecs as znc
from cli_run import run
from images import upload
from servers import StaticServer

import ngio_async
from ngio_async import CodecError
from ngio_async.codecs import ChunkCodec, ShardCodec
from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs
from ngio_async.meta.zarr import decode_array_v3
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

SHAPE = (2, 64, 96)
SHARDS = (1, 32, 32)  # 2 x 2 x 3 = 12 shards of 2 x 2 inner chunks of 16 x 16
CHUNKS = (1, 16, 16)
STORED = 10  # the shards at y >= 32, x >= 64 hold only the fill value: zarr-python stores none
VARIANTS = ["zstd", "gzip-crc32c", "nested"]


def _serializer(variant: str) -> tuple[zc.ShardingCodec, list[Any]]:
    """The sharding codec and the codecs after it (whole shards) of ``variant``."""
    index: list[Any] = [zc.BytesCodec(), zc.Crc32cCodec()]
    if variant == "inner-zlib":  # plain outer shards of inner shards each compressed whole
        inner_zlib: list[Any] = [
            zc.ShardingCodec(chunk_shape=(1, 8, 8), codecs=[zc.BytesCodec()], index_codecs=index),
            znc.Zlib(level=1),
        ]
        return zc.ShardingCodec(chunk_shape=CHUNKS, codecs=inner_zlib, index_codecs=index), []
    if variant == "nested":  # inner chunks that are shards, each compressed whole
        inner: list[Any] = [
            zc.ShardingCodec(chunk_shape=(1, 8, 8), codecs=[zc.BytesCodec()], index_codecs=index),
            zc.ZstdCodec(level=1),
        ]
        return zc.ShardingCodec(chunk_shape=CHUNKS, codecs=inner, index_codecs=index), [
            zc.GzipCodec(level=1)
        ]
    sharding = zc.ShardingCodec(
        chunk_shape=CHUNKS, codecs=[zc.BytesCodec(), zc.ZstdCodec(level=1)], index_codecs=index
    )
    if variant == "zstd":
        return sharding, [zc.ZstdCodec(level=3)]
    return sharding, [zc.GzipCodec(level=1), zc.Crc32cCodec()]


def write_peer_image(root: Path, variant: str) -> np.ndarray[Any, Any]:
    """An OME-Zarr 0.5 image of one level written by zarr-python with whole shards compressed;
    its data."""
    group = zarr.open_group(root, mode="w", zarr_format=3)
    with warnings.catch_warnings():  # zarr-python's own, on each use of such a codec list
        warnings.filterwarnings("ignore", "Combining a `sharding_indexed` codec")
        warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr version 3")
        serializer, outer = _serializer(variant)
        arr = zarr.create_array(
            store=root, name="0", shape=SHAPE, chunks=SHARDS, dtype="uint16",
            serializer=serializer, compressors=outer or None, fill_value=0,
            dimension_names=["c", "y", "x"],
        )  # fmt: skip
        data = np.random.default_rng(5).integers(1, 60000, SHAPE, dtype=np.uint16)
        data[:, 32:, 64:] = 0
        data[0, :16, :16] = 0  # an inner chunk all fill value: not in its shard
        arr[...] = data
    write_ome(group)
    return data


def write_ome(group: zarr.Group) -> None:
    """``group``'s OME-Zarr 0.5 attributes: one level ``0`` of axes c, y, x."""
    axes = [
        Axis(name="c", type="channel"),
        Axis(name="y", type="space", unit="micrometer"),
        Axis(name="x", type="space", unit="micrometer"),
    ]
    scale = Scale(scale=[1.0, 0.5, 0.5])
    multiscale = Multiscale(axes=axes, datasets=[Dataset(path="0", coordinate_transformations=[scale])])  # fmt: skip
    group.attrs.update(to_attrs(OmeMetadata(version="0.5", multiscales=[multiscale]), "0.5"))


def zarr_read(path: Path) -> np.ndarray[Any, Any]:
    """The array at ``path`` as zarr-python reads it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Combining a `sharding_indexed` codec")
        warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr version 3")
        return np.asarray(zarr.open_array(path, mode="r")[...])


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray[Any, Any]]]:
    root = tmp_path_factory.mktemp("outer")
    return {v: (root / v, write_peer_image(root / v, v)) for v in VARIANTS}


@pytest.fixture(scope="module")
def served(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> Iterator[StaticServer]:
    server = StaticServer(next(iter(peers.values()))[0].parent).start()
    try:
        yield server
    finally:
        server.stop()


def _shard_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / "0" / "c").rglob("*") if p.is_file())  # fmt: skip


def test_zarr_python_writes_the_codecs_after_sharding(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> None:
    for variant, (root, _) in peers.items():
        codecs = json.loads((root / "0" / "zarr.json").read_bytes())["codecs"]
        assert codecs[0]["name"] == "sharding_indexed" and len(codecs) >= 2, variant
        assert len(_shard_files(root)) == STORED


# ------------------------------------------------------------------------------------ reads
async def _every_read_path(ds: Any, data: np.ndarray[Any, Any]) -> None:
    """Whole and region reads, oindex / vindex, read_many, and tile streams (tiles smaller
    than a shard, ordered and not, with halos) all equal ``data``."""
    lvl = ds.levels[0]
    np.testing.assert_array_equal(await ds.read(), data)
    np.testing.assert_array_equal(
        await ds.read(y=slice(5, 50), x=slice(20, 90)), data[:, 5:50, 20:90]
    )
    np.testing.assert_array_equal(await ds[1, 3:9, 70:75], data[1, 3:9, 70:75])  # one inner chunk
    np.testing.assert_array_equal(await lvl[0, ::3, 7::5], data[0, ::3, 7::5])
    np.testing.assert_array_equal(
        await lvl.oindex[[1, 0], [3, 40, 63], [0, 50, 95]],
        data[np.ix_([1, 0], [3, 40, 63], [0, 50, 95])],
    )
    pts = (np.array([0, 1, 1]), np.array([0, 33, 63]), np.array([95, 2, 64]))
    np.testing.assert_array_equal(await lvl.vindex[pts], data[pts])
    regions = [
        (slice(0, 1), slice(0, 16), slice(0, 16)),
        (slice(1, 2), slice(8, 40), slice(30, 70)),
    ]
    for got, region in zip(await lvl.read_many(regions), regions, strict=True):
        np.testing.assert_array_equal(got, data[region])
    for ordered, overlap in ((False, 0), (True, 2)):
        n = 0
        async for tile in ds.tiles(shape=(1, 16, 16), overlap=overlap, ordered=ordered):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            n += 1
        assert n == 2 * 4 * 6


@pytest.mark.parametrize("variant", VARIANTS)
async def test_local_reads(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], variant: str
) -> None:
    root, data = peers[variant]
    store = InstrumentedStore(open_store(root), blocking=True)
    async with ngio_async.open_async(store) as ds:
        await _every_read_path(ds, data)
        lvl = ds.levels[0]
        assert not lvl.reads_shards_in_parts
        store.reset()
        regions = [(slice(0, 2), slice(0, 64), slice(x, x + 8)) for x in range(0, 96, 8)]
        datas = await lvl.in_decode_thread(lvl.read_many_blocking, regions)
        for got, region in zip(datas, regions, strict=True):
            np.testing.assert_array_equal(got, data[region])
        store.reset()
        np.testing.assert_array_equal(await ds.read(), data)
        # one GET per stored shard, plus one of each absent one (it says: the fill value)
        gets = {k: n for (m, k), n in store.calls.items() if m == "get" and "/c/" in k}
        assert len(gets) == 12 and set(gets.values()) == {1}, gets
        for ordered in (False, True):  # tiles of a quarter shard: each shard read once
            store.reset()
            async for tile in ds.tiles(shape=(1, 16, 16), ordered=ordered):
                np.testing.assert_array_equal(tile.data, data[tile.region])
            gets = {k: n for (m, k), n in store.calls.items() if m == "get" and "/c/" in k}
            assert len(gets) == 12 and set(gets.values()) == {1}, gets
    await store.aclose()


def test_sync_shim_reads(peers: dict[str, tuple[Path, np.ndarray[Any, Any]]]) -> None:
    root, data = peers["zstd"]
    with ngio_async.open(root) as ds:
        np.testing.assert_array_equal(ds[:, 10:60, 33:95], data[:, 10:60, 33:95])
        np.testing.assert_array_equal(ds.read(c=1), data[1])
        tiles = list(ds.tiles(shape=(1, 8, 8), overlap=1))
        assert len(tiles) == 2 * 8 * 12
        for tile in tiles:
            np.testing.assert_array_equal(tile.data, data[tile.region])


WHOLE = (None, f"bytes=0-{2**40 - 1}")  # obstore's client asks for a whole object so


def _stored_gets(server: StaticServer, root: Path) -> dict[str, int]:
    """The GETs of each stored shard of ``root`` since the requests were cleared (asserting
    that every shard GET, of absent ones too, asks for the whole object: no index range)."""
    shards = [r for r in server.requests if r.method == "GET" and f"/{root.name}/0/c/" in r.path]
    assert all(r.range in WHOLE for r in shards), shards
    stored = {f"/{root.name}/{f}" for f in _shard_files(root)}
    return {p: sum(r.path == p for r in shards) for p in stored}


@pytest.mark.parametrize("variant", VARIANTS)
async def test_http_reads_fetch_each_shard_whole_once(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], served: StaticServer, variant: str
) -> None:
    root, data = peers[variant]
    async with ngio_async.open_async(served.url + variant) as ds:
        if variant == "zstd":  # (the others: as on local files, with the same counts here)
            await _every_read_path(ds, data)
        served.requests.clear()
        np.testing.assert_array_equal(await ds.read(), data)
        assert set(_stored_gets(served, root).values()) == {1}
        served.requests.clear()
        async for tile in ds.tiles(shape=(1, 16, 16), ordered=False):  # 4 tiles a shard
            np.testing.assert_array_equal(tile.data, data[tile.region])
        assert set(_stored_gets(served, root).values()) == {1}
        served.requests.clear()
        np.testing.assert_array_equal(await ds[0, 40:41, 50:51], data[0, 40:41, 50:51])
        assert sum(_stored_gets(served, root).values()) == 1  # one GET, no index range
        assert len(served.requests) == 1


async def test_s3_reads_and_writes(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], s3_server: S3Server, tmp_path: Path
) -> None:
    root, data = peers["gzip-crc32c"]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as target:
        await upload(root, target)
    store = InstrumentedStore(open_store(url, **s3_server.options()))
    async with ngio_async.open_async(store) as ds:
        await _every_read_path(ds, data)
        store.reset()
        async for tile in ds.tiles(shape=(1, 8, 32), ordered=True, overlap=1):
            np.testing.assert_array_equal(tile.data, data[tile.region])
        store.reset()
        np.testing.assert_array_equal(await ds.read(), data)
        gets = {k: n for (m, k), n in store.calls.items() if m == "get" and "/c/" in k}
        assert len(gets) == 12 and set(gets.values()) == {1}, gets
    expected = data.copy()
    async with ngio_async.open_async(store, mode="r+") as ds:
        await ds.write(np.full((10, 10), 7, np.uint16), c=0, y=slice(20, 30), x=slice(60, 70))
        expected[0, 20:30, 60:70] = 7
        await ds.write(np.zeros((2, 32, 32), np.uint16), y=slice(0, 32), x=slice(32, 64))
        expected[:, :32, 32:64] = 0
        # a partial write leaving its shard all fill value: stored as an empty shard (a
        # delete cannot be conditional on S3), compressed as zarr-python reads it
        await ds.write(np.full((5, 5), 9, np.uint16), c=1, y=slice(40, 45), x=slice(70, 75))
        await ds.write(np.zeros((5, 5), np.uint16), c=1, y=slice(40, 45), x=slice(70, 75))
        np.testing.assert_array_equal(await ds.read(), expected)
    await store.aclose()
    # zarr-python reads what was written (a copy of the bucket's objects on disk)
    copy = tmp_path / "copy"
    copy.mkdir()
    async with open_store(url, **s3_server.options()) as source, open_store(copy) as target:
        for key in await source.list_prefix():
            buf = await source.get(key)
            assert buf is not None
            await target.put(key, buf)
    assert (copy / "0" / "c" / "1" / "1" / "2").is_file()
    np.testing.assert_array_equal(zarr_read(copy / "0"), expected)


# ------------------------------------------------------------------------------------ writes
@pytest.mark.parametrize("variant", VARIANTS)
async def test_writes_read_back_by_zarr_python(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path, variant: str
) -> None:
    src, data = peers[variant]
    root = tmp_path / "img"
    shutil.copytree(src, root)
    expected = data.copy()
    async with ngio_async.open_async(root, mode="r+") as ds:
        # part of an existing shard (read, decompressed, patched, compressed again)
        await ds.write(np.arange(6 * 20, dtype=np.uint16).reshape(6, 20), c=1, y=slice(3, 9), x=slice(5, 25))  # fmt: skip
        expected[1, 3:9, 5:25] = np.arange(6 * 20).reshape(6, 20)
        # into an absent shard, in part
        await ds.write(np.full((5, 5), 9, np.uint16), c=0, y=slice(40, 45), x=slice(70, 75))
        expected[0, 40:45, 70:75] = 9
        # whole shards, one of them all fill value (its object goes)
        await ds.write(np.full((32, 32), 3, np.uint16), c=1, y=slice(32, 64), x=slice(0, 32))
        expected[1, 32:64, :32] = 3
        await ds.write(np.zeros((32, 32), np.uint16), c=0, y=slice(0, 32), x=slice(32, 64))
        expected[0, :32, 32:64] = 0
        # a partial write that leaves its shard all fill value: not stored either
        await ds.write(np.zeros((5, 5), np.uint16), c=0, y=slice(40, 45), x=slice(70, 75))
        expected[0, 40:45, 70:75] = 0
        # points and an orthogonal selection: each shard's own read-modify-write
        await ds.levels[0].write_points(
            (np.array([0, 1]), np.array([1, 62]), np.array([2, 93])), 11
        )
        expected[[0, 1], [1, 62], [2, 93]] = 11
        np.testing.assert_array_equal(await ds.read(), expected)
    np.testing.assert_array_equal(zarr_read(root / "0"), expected)
    files = _shard_files(root)
    assert "0/c/0/0/1" not in files and "0/c/0/1/2" not in files  # all fill value: no object
    assert "0/c/1/1/0" in files


async def test_a_whole_write_and_a_pyramid(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path
) -> None:
    src, data = peers["zstd"]
    root = tmp_path / "img"
    shutil.copytree(src, root)
    new = data[:, ::-1, :].copy()
    async with ngio_async.open_async(root, mode="r+") as ds:
        await ds.write(new)
        await ds.build_pyramid(levels=2)
        low = await ds.read(level=1)
    assert low.shape == (2, 32, 48)
    np.testing.assert_array_equal(zarr_read(root / "0"), new)
    meta = json.loads((root / "1" / "zarr.json").read_bytes())
    assert [c["name"] for c in meta["codecs"]] == ["sharding_indexed", "zstd"]
    np.testing.assert_array_equal(zarr_read(root / "1"), low)


async def test_a_memory_store_round_trip(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> None:
    src, data = peers["gzip-crc32c"]
    store = open_store("memory://outer")
    await upload(src, store)
    async with ngio_async.open_async(store, mode="r+") as ds:
        await _every_read_path(ds, data)
        await ds.write(np.full((4, 4), 5, np.uint16), c=0, y=slice(30, 34), x=slice(30, 34))
        expected = data.copy()
        expected[0, 30:34, 30:34] = 5
        np.testing.assert_array_equal(await ds.read(), expected)
    await store.aclose()


async def test_inner_shards_compressed_whole_in_plain_shards(tmp_path: Path) -> None:
    """Nested sharding, the codecs after the inner sharding_indexed (a numcodecs one): the
    outer shard is still read in parts (its index, then an inner shard's range), each inner
    shard decompressed whole; partial writes are read back by zarr-python."""
    root = tmp_path / "inner-zlib"
    data = write_peer_image(root, "inner-zlib")
    codecs = json.loads((root / "0" / "zarr.json").read_bytes())["codecs"]
    assert len(codecs) == 1 and codecs[0]["configuration"]["codecs"][1]["name"] == "numcodecs.zlib"
    server = StaticServer(tmp_path).start()
    try:
        async with ngio_async.open_async(server.url + "inner-zlib") as ds:
            await _every_read_path(ds, data)
            server.requests.clear()
            np.testing.assert_array_equal(await ds[1, 20:21, 40:41], data[1, 20:21, 40:41])
            ranges = [r.range for r in server.requests]
            assert len(ranges) == 2 and all(ranges), ranges  # the index, one inner shard
    finally:
        server.stop()
    expected = data.copy()
    async with ngio_async.open_async(root, mode="r+") as ds:
        await ds.write(np.full((5, 30), 4, np.uint16), c=0, y=slice(10, 15), x=slice(5, 35))
        expected[0, 10:15, 5:35] = 4
        np.testing.assert_array_equal(await ds.read(), expected)
    np.testing.assert_array_equal(zarr_read(root / "0"), expected)


# ------------------------------------------------------------------------------ corrupt data
@pytest.mark.parametrize("variant", ["zstd", "gzip-crc32c"])
async def test_a_corrupt_outer_frame_names_the_shard(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path, variant: str
) -> None:
    src, _ = peers[variant]
    root = tmp_path / "img"
    shutil.copytree(src, root)
    shard = root / "0" / "c" / "1" / "0" / "1"
    raw = bytearray(shard.read_bytes())
    if variant == "zstd":  # cut short (zstd without a checksum decodes flipped bytes)
        del raw[len(raw) // 2 :]
    else:  # bytes flipped: the crc32c says so
        raw[len(raw) // 2 : len(raw) // 2 + 8] = b"\xff" * 8
    shard.write_bytes(bytes(raw))
    async with ngio_async.open_async(root, mode="r+") as ds:
        for read in (
            ds.read,
            lambda: ds[1, 0:1, 40:41],
            lambda: ds.levels[0].read_many([(slice(1, 2), slice(0, 8), slice(32, 40))]),
        ):
            with pytest.raises(CodecError, match="codecs after sharding_indexed") as info:
                await read()
            assert info.value.key == "0/c/1/0/1"
        with pytest.raises(CodecError) as info:
            await ds.write(np.ones((2, 2), np.uint16), c=1, y=slice(0, 2), x=slice(40, 42))
        assert info.value.key == "0/c/1/0/1"


def test_a_shard_decompressing_past_any_plain_shard_is_refused(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> None:
    """A decompression bomb: a frame stating more bytes than a plain shard can hold is
    refused before it is decoded, naming the shard."""
    root, _ = peers["zstd"]
    codec = ChunkCodec.from_meta(decode_array_v3((root / "0" / "zarr.json").read_bytes()))
    assert isinstance(codec, ShardCodec) and codec.compressed
    plain = codec.encode_chunks({(0, 0, 0): codec.inner.encode(np.ones(CHUNKS, np.uint16), "k")})
    assert bytes(codec.unwrap(codec.wrap(plain, "k"), "k")) == plain
    bomb = numcodecs.Zstd(level=1).encode(bytes(2 * 32 * 32 * 2 + 32 * 32 * 32 + (1 << 17)))
    with pytest.raises(CodecError, match="0/c/9/9/9") as info:
        codec.unwrap(bomb, "0/c/9/9/9")
    assert info.value.key == "0/c/9/9/9"


# ------------------------------------------------------------------------------------ validate
def test_validate_accepts_them(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    for root, _ in peers.values():
        code, out, _err = run(["validate", str(root)], capsys)
        assert code == 0, out


def test_info_marks_the_codecs_of_whole_shards(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> None:
    from ngio_async.cli._info import codec_names
    from ngio_async.meta.zarr import decode_array_v3

    root, _ = peers["zstd"]
    meta = decode_array_v3((root / "0" / "zarr.json").read_bytes())
    assert codec_names(meta) == [
        "sharding_indexed",
        "bytes(little)",
        "zstd(level=1)",
        "zstd(level=3) (whole shard)",  # was: "zstd(level=3)", as if an inner chunk codec
    ]


async def test_the_read_cache_passes_compressed_shards_by(
    peers: dict[str, tuple[Path, np.ndarray[Any, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read cache keeps no inner chunk of a shard compressed whole (each read fetches the
    shard): a region over one shard's 4 inner chunks decompresses it once, not once per
    decode thread its pieces went to."""
    from ngio_async.codecs import ShardCodec

    unwrapped: list[str] = []
    real = ShardCodec.unwrap

    def counted(self: ShardCodec, buf: Any, key: str) -> Any:
        unwrapped.append(key)
        return real(self, buf, key)

    monkeypatch.setattr(ShardCodec, "unwrap", counted)
    root, data = peers["zstd"]
    limits = ngio_async.Limits(read_cache_bytes=1 << 20)
    async with ngio_async.open_async(root, limits=limits) as ds:
        for _ in range(2):
            got = await ds.read(c=1, y=slice(0, 32), x=slice(32, 64))
            np.testing.assert_array_equal(got, data[1, :32, 32:64])
        assert unwrapped == ["0/c/1/0/1"] * 2
        assert ds.read_cache is not None and ds.read_cache.held_bytes == 0
