"""zarr-python's ``numcodecs.*`` v3 codecs and nested sharding, against zarr-python 3.1.

zarr-python writes each array into a dict-backed MemoryStore; we decode every stored object with
our codecs (built from the codec JSON zarr-python wrote) and compare with zarr-python's read, then
encode the same chunks and compare the bytes with zarr-python's.
"""

from __future__ import annotations

import gzip
import itertools
import json
import warnings
import zlib
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
import zarr.codecs.numcodecs as znc
from zarr.storage import MemoryStore

import ngio_async
from ngio_async._errors import CodecError, MetadataError, UnsupportedError
from ngio_async.codecs import ChunkCodec, ShardCodec, ShardedChunkCodec
from ngio_async.meta.zarr import Codec, ShardingCodec, ShardingConfig

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")

SHAPE = (30, 45)
CHUNKS = (16, 16)

#: name -> (dtype, create_array keyword arguments); built lazily (the codecs warn when made)
CASES: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "delta+zlib": (
        "u2",
        lambda: {"filters": [znc.Delta(dtype="u2")], "compressors": [znc.Zlib(level=1)]},
    ),
    "blosc": ("u2", lambda: {"compressors": [znc.Blosc(cname="lz4", clevel=3, shuffle=2)]}),
    "zstd": ("i4", lambda: {"compressors": [znc.Zstd(level=3)]}),
    "lz4": ("u2", lambda: {"compressors": [znc.LZ4()]}),
    "bz2": ("u1", lambda: {"compressors": [znc.BZ2(level=1)]}),
    "gzip": ("f4", lambda: {"compressors": [znc.GZip(level=1)]}),
    "lzma": ("u2", lambda: {"compressors": [znc.LZMA()]}),
    "shuffle+zlib": ("u2", lambda: {"compressors": [znc.Shuffle(), znc.Zlib()]}),
    "quantize": ("f4", lambda: {"filters": [znc.Quantize(digits=2, dtype="f4")]}),
    "fixedscaleoffset": (
        "f8",
        lambda: {"filters": [znc.FixedScaleOffset(offset=10, scale=100, dtype="f8", astype="i4")]},
    ),
    "bitround": ("f4", lambda: {"filters": [znc.BitRound(keepbits=5)]}),
    "packbits": ("bool", lambda: {"filters": [znc.PackBits()]}),
    "astype": ("f8", lambda: {"filters": [znc.AsType(encode_dtype="f4", decode_dtype="f8")]}),
    "delta-astype": ("i4", lambda: {"filters": [znc.Delta(dtype="i4", astype="i2")]}),
    "crc32": ("u2", lambda: {"compressors": [znc.CRC32()]}),
    "crc32-end": ("u2", lambda: {"compressors": [znc.CRC32(location="end")]}),
    "blosc-typesize": ("u4", lambda: {"compressors": [znc.Blosc(cname="zstd", typesize=4)]}),
    "crc32c": ("u2", lambda: {"compressors": [znc.CRC32C()]}),
    "adler32": ("u2", lambda: {"compressors": [znc.Adler32()]}),
    "fletcher32": ("u2", lambda: {"compressors": [znc.Fletcher32()]}),
    "jenkins_lookup3": ("u2", lambda: {"compressors": [znc.JenkinsLookup3()]}),
    "delta+big-endian+crc32c": (
        "u2",
        lambda: {
            "filters": [znc.Delta(dtype="u2")],
            "serializer": zc.BytesCodec(endian="big"),
            "compressors": [znc.Zstd(level=1), zc.Crc32cCodec()],
        },
    ),
    # (transpose then a numcodecs filter: zarr-python 3.1.6 reads back other values than it wrote)
    "transpose+big-endian+lz4": (
        "i4",
        lambda: {
            "filters": [zc.TransposeCodec(order=(1, 0))],
            "serializer": zc.BytesCodec(endian="big"),
            "compressors": [znc.LZ4()],
        },
    ),
}


def to_codec(doc: dict[str, Any]) -> Any:
    """A codec as the metadata layer holds it: a Struct, or the JSON of a ``numcodecs.*``."""
    if doc["name"].startswith("numcodecs."):
        return doc
    if doc["name"] == "sharding_indexed":
        cfg = doc["configuration"]
        return ShardingCodec(
            ShardingConfig(
                chunk_shape=tuple(cfg["chunk_shape"]),
                codecs=tuple(to_codec(c) for c in cfg["codecs"]),
                index_codecs=tuple(to_codec(c) for c in cfg["index_codecs"]),
                index_location=cfg["index_location"],
            )
        )
    return msgspec.convert(doc, Codec)


def build(arr: zarr.Array[Any], doc: dict[str, Any]) -> ChunkCodec | ShardCodec:
    codecs = [to_codec(c) for c in doc["codecs"]]
    dtype = np.dtype(arr.dtype)
    fill = dtype.type(arr.fill_value)
    grid = tuple(doc["chunk_grid"]["configuration"]["chunk_shape"])
    if isinstance(codecs[0], ShardingCodec):
        return ShardCodec.from_codec(
            codecs[0], shape=grid, dtype=dtype, fill_value=fill, path="$.codecs[0]"
        )
    return ChunkCodec.from_v3_codecs(
        codecs, shape=grid, dtype=dtype, fill_value=fill, path="$.codecs"
    )


def make_data(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(3)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) > 0.5
    if dt.kind == "f":
        return (rng.random(shape) * 100).astype(dt)
    return (np.arange(np.prod(shape)).reshape(shape) % 251 * 3).astype(dt)


def check_against_zarr(arr: zarr.Array[Any], store: dict[str, Any], data: Any) -> None:
    """Decode every stored object with our codec == zarr-python's read; encode == its bytes."""
    doc = json.loads(store["a/zarr.json"].to_bytes())
    codec = build(arr, doc)
    grid = codec.shape
    expected = arr[...]
    got = np.full(arr.shape, codec.fill_value, dtype=codec.dtype)
    stored = 0
    for coords in itertools.product(
        *(range(-(-s // g)) for s, g in zip(arr.shape, grid, strict=True))
    ):
        key = "a/c/" + "/".join(map(str, coords))
        sel = tuple(slice(c * g, (c + 1) * g) for c, g in zip(coords, grid, strict=True))
        if key not in store:
            continue
        stored += 1
        raw = store[key].to_bytes()
        block = codec.decode(raw, key)
        got[sel] = block[tuple(slice(0, n) for n in got[sel].shape)]
        padded = np.full(grid, codec.fill_value, dtype=codec.dtype)
        part = np.asarray(data)[sel]
        padded[tuple(slice(0, n) for n in part.shape)] = part
        assert codec.encode(padded, key) == raw, key
    assert stored
    np.testing.assert_array_equal(got, expected)


def write(dtype: str, shards: tuple[int, ...] | None, kwargs: Callable[[], dict[str, Any]]) -> Any:
    store: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr-python warns that numcodecs.* are not in the spec
        arr = zarr.create_array(
            MemoryStore(store),
            name="a",
            shape=SHAPE,
            chunks=CHUNKS,
            shards=shards,
            dtype=dtype,
            fill_value=0,
            **kwargs(),
        )
        data = make_data(dtype)
        arr[...] = data
    return arr, store, data


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("shards", [None, (32, 32)], ids=["chunks", "sharded"])
def test_numcodecs_codecs_match_zarr_python(
    name: str, shards: tuple[int, ...] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a gzip header holds the second it was written in: zarr-python's encoding and ours, made
    # a moment apart, differed there when a second ended between them
    monkeypatch.setattr(gzip, "time", SimpleNamespace(time=lambda: 1_700_000_000.0))
    dtype, kwargs = CASES[name]
    arr, store, data = write(dtype, shards, kwargs)
    check_against_zarr(arr, store, data)


def test_unknown_codec_is_refused_naming_it() -> None:
    codecs: list[Any] = [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "numcodecs.nope"},
    ]
    with pytest.raises(UnsupportedError, match=r"'numcodecs\.nope'.*\$\.codecs\[1\]"):
        ChunkCodec.from_v3_codecs(
            codecs, shape=(4,), dtype=np.dtype("u2"), fill_value=np.uint16(0), path="$.codecs"
        )


def test_checksum_mismatch_is_a_codec_error() -> None:
    arr, store, _ = write("u2", None, lambda: {"compressors": [znc.CRC32()]})
    codec = build(arr, json.loads(store["a/zarr.json"].to_bytes()))
    raw = bytearray(store["a/c/0/0"].to_bytes())
    raw[-1] ^= 1
    with pytest.raises(CodecError, match="c/0/0"):
        codec.decode(bytes(raw), "c/0/0")


# ------------------------------------------------------------------------------ nested sharding


def nested_array(
    store: dict[str, Any], *, fill: int, location: str = "end", inner_location: str = "end"
) -> Any:
    inner = zc.ShardingCodec(
        chunk_shape=(4, 8),
        codecs=[zc.BytesCodec(), zc.ZstdCodec(level=1)],
        index_location=inner_location,
    )
    return zarr.create_array(
        MemoryStore(store),
        name="a",
        shape=(50, 70),
        dtype="uint16",
        chunks=(32, 32),
        serializer=zc.ShardingCodec(chunk_shape=(16, 16), codecs=[inner], index_location=location),
        compressors=None,
        fill_value=fill,
    )


@pytest.mark.parametrize(("location", "inner_location"), [("end", "end"), ("start", "end"),
                                                          ("end", "start")])  # fmt: skip
def test_nested_sharding_matches_zarr_python(location: str, inner_location: str) -> None:
    store: dict[str, Any] = {}
    arr = nested_array(store, fill=7, location=location, inner_location=inner_location)
    data = (np.arange(50 * 70).reshape(50, 70) % 1000).astype("u2")
    data[:20, :20] = 7  # whole inner shards and inner chunks equal to the fill: not stored
    arr[...] = data
    codec = build(arr, json.loads(store["a/zarr.json"].to_bytes()))
    assert isinstance(codec, ShardCodec)
    assert isinstance(codec.inner, ShardedChunkCodec)
    check_against_zarr(arr, store, data)
    # a reader's path: the outer index, then the byte range of one inner shard only
    raw = store["a/c/0/0"].to_bytes()
    index = codec.decode_index(raw[codec.index_slice(len(raw))], "c/0/0")
    assert index.chunk_range((0, 0)) is None  # inner shard all fill
    rng = index.chunk_range((1, 1))
    assert rng is not None
    np.testing.assert_array_equal(codec.decode_chunk(raw[rng[0] : rng[1]], "k"), data[16:32, 16:32])
    out = np.empty((16, 16), "u2")
    rng = index.chunk_range((0, 1))
    assert rng is not None
    codec.decode_chunk(raw[rng[0] : rng[1]], "k", out=out)
    np.testing.assert_array_equal(out, data[0:16, 16:32])


def test_nested_sharding_compresses_whole_inner_shards_and_refuses_codecs_before_it() -> None:
    """Codecs after a nested sharding_indexed encode each inner shard whole (they were
    refused); codecs before it still are."""
    nested = ShardingCodec(ShardingConfig(chunk_shape=(2, 2)))
    after: dict[str, Any] = {"name": "numcodecs.zlib", "configuration": {}}
    codec = ChunkCodec.from_v3_codecs(
        [nested, after], shape=(4, 4), dtype=np.dtype("u2"), fill_value=np.uint16(0), path="$.c"
    )
    assert isinstance(codec, ShardedChunkCodec) and codec.shard.compressed
    data = np.arange(1, 17, dtype="u2").reshape(4, 4)
    raw = codec.encode(data, "k")
    plain = codec.shard.encode_chunks(
        {c: data[2 * c[0] : 2 * c[0] + 2, 2 * c[1] : 2 * c[1] + 2].tobytes() for c in itertools.product(range(2), range(2))}
    )  # fmt: skip
    assert zlib.decompress(raw) == plain
    np.testing.assert_array_equal(codec.decode(raw, "k"), data)
    with pytest.raises(UnsupportedError, match=r"before a nested sharding_indexed.*\$\.c\[1\]"):
        ChunkCodec.from_v3_codecs(
            [after, nested], shape=(4, 4), dtype=np.dtype("u2"), fill_value=np.uint16(0), path="$.c"
        )


# ------------------------------------------------------------------------- through the reader


def image_around(root: Path, make: Callable[[Any], Any]) -> str:
    """An NGFF 0.5 image whose one level is the array ``make(store_path)`` writes."""
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    ms: dict[str, Any] = {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "scale", "scale": [1.0, 1.0]}]}]}  # fmt: skip
    zarr.open_group(root, mode="w", attributes={"ome": {"version": "0.5", "multiscales": [ms]}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make(zarr.storage.LocalStore(root / "0"))
    return str(root)


def test_open_reads_and_writes_numcodecs_arrays(tmp_path: Path) -> None:
    data = make_data("u2")

    def make(store: Any) -> None:
        arr = zarr.create_array(
            store, shape=SHAPE, chunks=CHUNKS, dtype="u2", fill_value=0,
            filters=[znc.Delta(dtype="u2")], compressors=[znc.Zlib(level=1)],
        )  # fmt: skip
        arr[...] = data

    url = image_around(tmp_path / "img.zarr", make)
    with ngio_async.open(url, mode="r+") as ds:
        np.testing.assert_array_equal(ds[...], data)
        ds.write(np.full((5, 7), 9, "u2"), y=slice(13, 18), x=slice(14, 21))
    data[13:18, 14:21] = 9
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "img.zarr" / "0")[...], data)


def test_open_reads_and_writes_nested_shards(tmp_path: Path) -> None:
    data = (np.arange(50 * 70).reshape(50, 70) % 1000).astype("u2")

    def make(store: Any) -> None:
        inner = zc.ShardingCodec(chunk_shape=(4, 8), codecs=[zc.BytesCodec(), zc.ZstdCodec()])
        arr = zarr.create_array(
            store, shape=data.shape, dtype="u2", chunks=(32, 32), compressors=None,
            serializer=zc.ShardingCodec(chunk_shape=(16, 16), codecs=[inner]), fill_value=7,
        )  # fmt: skip
        arr[...] = data

    url = image_around(tmp_path / "img.zarr", make)
    with ngio_async.open(url, mode="r+") as ds:
        np.testing.assert_array_equal(ds[...], data)
        np.testing.assert_array_equal(ds[5:9, 60:63], data[5:9, 60:63])
        ds.write(np.full((10, 30), 5, "u2"), y=slice(17, 27), x=slice(1, 31))
    data[17:27, 1:31] = 5
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "img.zarr" / "0")[...], data)


def test_a_bad_codec_configuration_names_the_array(tmp_path: Path) -> None:
    def make(store: Any) -> None:
        arr = zarr.create_array(
            store, shape=(8, 8), chunks=(4, 4), dtype="u2",
            filters=[znc.FixedScaleOffset(offset=0, scale=1, dtype="u2")],
        )  # fmt: skip
        arr[...] = 1

    url = image_around(tmp_path / "img.zarr", make)
    doc_path = tmp_path / "img.zarr" / "0" / "zarr.json"
    doc = json.loads(doc_path.read_text())
    for codec in doc["codecs"]:
        if codec["name"] == "numcodecs.fixedscaleoffset":
            codec["configuration"]["dtype"] = "nonsense"
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match=r"img\.zarr/0/zarr\.json: .*nonsense"):  # noqa: SIM117
        with ngio_async.open(url) as ds:
            ds.read()
