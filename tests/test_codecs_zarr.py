"""Property tests: our codecs + planner against zarr-python 3.1 (v2 and v3, sharded or not).

Arrays are written by zarr-python into a MemoryStore backed by a plain dict; we read the raw
chunk/shard bytes from the dict, decode them with ``ngio_async.codecs``, assemble a random region
with ``ngio_async.engine.plan`` and compare with ``zarr_array[region]``. Then we encode the same data
with our codecs, store the bytes, and read them back with zarr-python (and check that the bytes are
identical to what zarr-python wrote).
"""

from __future__ import annotations

import gzip
import itertools
from typing import Any
from unittest import mock

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from hypothesis import HealthCheck, given, settings, strategies as st
from zarr.core.buffer import cpu
from zarr.storage import MemoryStore

from ngio_async.codecs import ChunkCodec, ShardCodec
from ngio_async.engine.plan import (
    Region,
    normalize_selection,
    plan_chunks,
    plan_shards,
    region_shape,
)
from ngio_async.meta.zarr import (
    V3_DATA_TYPES,
    ArrayV2Meta,
    ArrayV3Meta,
    decode_array_v2,
    decode_array_v3,
)

DTYPES = sorted(V3_DATA_TYPES)

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------------ helpers


def load_meta(store: dict[str, Any], name: str) -> ArrayV2Meta | ArrayV3Meta:
    if f"{name}/zarr.json" in store:
        return decode_array_v3(store[f"{name}/zarr.json"].to_bytes())
    return decode_array_v2(store[f"{name}/.zarray"].to_bytes())


def read_region(
    meta: ArrayV2Meta | ArrayV3Meta,
    codec: ChunkCodec | ShardCodec,
    get: Any,
    region: Region,
) -> np.ndarray[Any, Any]:
    """A synchronous reference reader built only from our planner and codecs."""
    out = np.full(region_shape(region), meta.fill_value, dtype=meta.dtype)
    if isinstance(codec, ShardCodec):
        for sp in plan_shards(meta, region):
            raw = get(sp.key)
            if raw is None:
                continue
            # what a reader does: one suffix (or prefix) request for the index ...
            index = codec.decode_index(raw[codec.index_slice(len(raw))], sp.key)
            for ic in sp.chunks:
                rng = index.chunk_range(ic.coords)
                if rng is None:  # empty inner chunk -> fill value
                    continue
                # ... then one range request per inner chunk
                chunk = codec.decode_chunk(raw[rng[0] : rng[1]], sp.key)
                assert chunk.shape == codec.chunk_shape
                out[ic.out_selection] = chunk[ic.chunk_selection]
    else:
        for cp in plan_chunks(meta, region):
            raw = get(cp.key)
            if raw is None:  # missing chunk -> fill value
                continue
            chunk = codec.decode(raw, cp.key)
            assert chunk.shape == codec.shape
            out[cp.out_selection] = chunk[cp.chunk_selection]
            # decoding into a caller's buffer gives the same values
            into = np.empty(codec.shape, dtype=meta.dtype)
            assert codec.decode(raw, cp.key, out=into) is into
            np.testing.assert_array_equal(into, chunk)
    return out


def encode_all(
    meta: ArrayV2Meta | ArrayV3Meta, codec: ChunkCodec | ShardCodec, data: np.ndarray[Any, Any]
) -> dict[str, bytes]:
    """Encode every stored object of ``data`` (edge objects padded with the fill value)."""
    obj_shape = meta.stored_chunks
    out: dict[str, bytes] = {}
    for coords in itertools.product(*(range(n) for n in meta.grid_shape)):
        sel = tuple(
            slice(c * s, min((c + 1) * s, n))
            for c, s, n in zip(coords, obj_shape, meta.shape, strict=True)
        )
        block = np.full(obj_shape, meta.fill_value, dtype=meta.dtype)
        part = data[sel]
        block[tuple(slice(0, m) for m in part.shape)] = part
        if codec.is_empty(block):  # zarr-python's write_empty_chunks=False
            continue
        out[meta.chunk_key(coords)] = codec.encode(block, meta.chunk_key(coords))
    return out


# ------------------------------------------------------------------------------------ strategies


@st.composite
def array_cases(draw: st.DrawFn, *, fmt: int, sharded: bool = False) -> dict[str, Any]:
    ndim = draw(st.integers(1, 4))
    max_side = {1: 40, 2: 12, 3: 7, 4: 5}[ndim]
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, s + 2)) for s in shape)
    dtype: np.dtype[Any] = np.dtype(draw(st.sampled_from(DTYPES)))
    kind = dtype.kind
    if kind == "b":
        fill: Any = draw(st.booleans())
    elif kind in "iu":
        info = np.iinfo(dtype)
        fill = draw(st.integers(max(int(info.min), -100), min(int(info.max), 100)))
    elif kind == "f":
        fill = draw(st.sampled_from([0.0, 1.5, -2.0, np.nan, np.inf]))
    else:
        fill = draw(st.sampled_from([0j, 1 + 2j, complex(np.nan, 0)]))
    case: dict[str, Any] = {
        "fmt": fmt,
        "shape": shape,
        "chunks": chunks,
        "dtype": dtype,
        "fill": fill,
        "seed": draw(st.integers(0, 2**32 - 1)),
        "blank": draw(st.booleans()),  # reset a sub-box to the fill value -> missing/empty chunks
    }
    if fmt == 2:
        case["order"] = draw(st.sampled_from(["C", "F"]))
        case["sep"] = draw(st.sampled_from([".", "/"]))
        case["compressor"] = draw(
            st.sampled_from(
                [
                    None,
                    numcodecs.Blosc(cname="lz4", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
                    numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE),
                    numcodecs.Zstd(level=1),
                    numcodecs.GZip(level=1),
                    numcodecs.Zlib(level=1),
                    numcodecs.LZ4(),
                ]
            )
        )
        dtype = dtype.newbyteorder(draw(st.sampled_from(["<", ">"])))
        case["dtype"] = dtype
        filters: list[Any] = []
        if kind in "iu" and draw(st.booleans()):
            filters.append(numcodecs.Delta(dtype=dtype.str))
        if draw(st.booleans()):
            filters.append(numcodecs.Shuffle(elementsize=dtype.itemsize))
        case["filters"] = filters or None
    else:
        ndim_perm = draw(st.permutations(range(ndim)))
        case["transpose"] = tuple(ndim_perm) if draw(st.booleans()) else None
        case["endian"] = draw(st.sampled_from(["little", "big"]))
        pool = [
            zc.BloscCodec(cname="lz4", clevel=3, shuffle="shuffle", typesize=dtype.itemsize),
            zc.BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle", typesize=dtype.itemsize),
            zc.ZstdCodec(level=1, checksum=draw(st.booleans())),
            zc.GzipCodec(level=1),
        ]
        comp = draw(st.lists(st.sampled_from(pool), max_size=1))
        if draw(st.booleans()):
            comp.append(zc.Crc32cCodec())
        case["compressors"] = comp
        case["key_encoding"] = draw(
            st.sampled_from(
                [
                    {"name": "default", "separator": "/"},
                    {"name": "default", "separator": "."},
                    {"name": "v2", "separator": "."},
                    {"name": "v2", "separator": "/"},
                ]
            )
        )
        if sharded:
            case["shards"] = tuple(c * draw(st.integers(1, 3)) for c in chunks)
            case["index_location"] = draw(st.sampled_from(["start", "end"]))
            case["index_crc"] = draw(st.booleans())
            case["index_endian"] = draw(st.sampled_from(["little", "big"]))
    return case


def create(case: dict[str, Any], store_dict: dict[str, Any]) -> zarr.Array[Any]:
    store = MemoryStore(store_dict=store_dict)
    common: dict[str, Any] = {
        "store": store,
        "name": "a",
        "shape": case["shape"],
        "dtype": case["dtype"],
        "fill_value": case["fill"],
        "zarr_format": case["fmt"],
    }
    if case["fmt"] == 2:
        return zarr.create_array(
            **common,
            chunks=case["chunks"],
            order=case["order"],
            compressors=case["compressor"],
            filters=case["filters"],
            chunk_key_encoding={"name": "v2", "separator": case["sep"]},
        )
    inner: list[Any] = []
    if case["transpose"] is not None:
        inner.append(zc.TransposeCodec(order=case["transpose"]))
    inner.append(zc.BytesCodec(endian=case["endian"]))
    inner.extend(case["compressors"])
    if "shards" in case:
        index_codecs: list[Any] = [zc.BytesCodec(endian=case["index_endian"])]
        if case["index_crc"]:
            index_codecs.append(zc.Crc32cCodec())
        serializer = zc.ShardingCodec(
            chunk_shape=case["chunks"],
            codecs=inner,
            index_codecs=index_codecs,
            index_location=case["index_location"],
        )
        return zarr.create_array(
            **common,
            chunks=case["shards"],
            serializer=serializer,
            compressors=None,
            filters=None,
            chunk_key_encoding=case["key_encoding"],
        )
    return zarr.create_array(
        **common,
        chunks=case["chunks"],
        filters=inner[: -1 - len(case["compressors"])] or None,
        serializer=inner[-1 - len(case["compressors"])],
        compressors=case["compressors"] or None,
        chunk_key_encoding=case["key_encoding"],
    )


def make_data(case: dict[str, Any]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(case["seed"])
    dtype = np.dtype(case["dtype"])
    shape = case["shape"]
    if dtype.kind == "b":
        data = rng.random(shape) > 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -1000), min(int(info.max), 1000)
        data = rng.integers(lo, hi, size=shape, endpoint=True)
    elif dtype.kind == "f":
        data = rng.normal(size=shape) * 100
    else:
        data = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    data = data.astype(dtype)
    if case["blank"]:
        box = tuple(slice(int(rng.integers(0, s)), None) for s in shape)
        data[box] = case["fill"]
    out: np.ndarray[Any, Any] = data
    return out


@st.composite
def regions(draw: st.DrawFn, shape: tuple[int, ...]) -> Region:
    out = []
    for n in shape:
        a = draw(st.integers(0, n))
        b = draw(st.integers(a, n))
        out.append(slice(a, b))
    return tuple(out)


@st.composite
def basic_indices(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[Any, ...]:
    out: list[Any] = []
    for n in shape:
        if draw(st.booleans()):
            out.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 2, n + 2)
            out.append(slice(draw(bound), draw(bound), draw(st.integers(1, 3))))
    return tuple(out)


class _FrozenClock:
    """Stands in for the ``time`` module inside :mod:`gzip`: numcodecs' GZip stamps the current
    time into each gzip header, so without this zarr's and our bytes differ across a second."""

    @staticmethod
    def time() -> float:
        return 0.0


def check_case(case: dict[str, Any], data_strategy: st.DataObject) -> None:
    with mock.patch.object(gzip, "time", _FrozenClock):
        _check_case(case, data_strategy)


def _check_case(case: dict[str, Any], data_strategy: st.DataObject) -> None:
    store_dict: dict[str, Any] = {}
    arr = create(case, store_dict)
    data = make_data(case)
    arr[...] = data
    meta = load_meta(store_dict, "a")
    codec = ChunkCodec.from_meta(meta)

    def get(key: str) -> bytes | None:
        buf = store_dict.get(f"a/{key}")
        return None if buf is None else buf.to_bytes()

    # read: full array and a random region
    full = tuple(slice(0, n) for n in meta.shape)
    np.testing.assert_array_equal(read_region(meta, codec, get, full), arr[...])
    region = data_strategy.draw(regions(meta.shape))
    np.testing.assert_array_equal(read_region(meta, codec, get, region), arr[region])
    # numpy basic indexing with steps and integers, through normalize_selection
    index = data_strategy.draw(basic_indices(meta.shape))
    sel = normalize_selection(index, meta.shape)
    got = sel.apply(read_region(meta, codec, get, sel.region))
    np.testing.assert_array_equal(got, np.asarray(arr[index]))

    # write: our bytes equal zarr-python's, and zarr-python reads them
    encoded = encode_all(meta, codec, data)
    zarr_keys = {
        k[2:]
        for k in store_dict
        if k.startswith("a/") and not k.endswith(("json", ".zarray", ".zattrs"))
    }
    assert set(encoded) == zarr_keys
    for key, raw in encoded.items():
        assert raw == get(key), key
    fresh: dict[str, Any] = {
        k: v for k, v in store_dict.items() if k.endswith(("zarr.json", ".zarray", ".zattrs"))
    }
    for key, raw in encoded.items():
        fresh[f"a/{key}"] = cpu.Buffer.from_bytes(raw)
    back = zarr.open_array(store=MemoryStore(store_dict=fresh), path="a", mode="r")
    np.testing.assert_array_equal(back[...], arr[...])


# ------------------------------------------------------------------------------------ tests


@SETTINGS
@given(case=array_cases(fmt=2), data=st.data())
def test_v2_roundtrip(case: dict[str, Any], data: st.DataObject) -> None:
    check_case(case, data)


@SETTINGS
@given(case=array_cases(fmt=3), data=st.data())
def test_v3_roundtrip(case: dict[str, Any], data: st.DataObject) -> None:
    check_case(case, data)


@SETTINGS
@given(case=array_cases(fmt=3, sharded=True), data=st.data())
def test_v3_sharded_roundtrip(case: dict[str, Any], data: st.DataObject) -> None:
    check_case(case, data)


@pytest.mark.parametrize("location", ["start", "end"])
def test_sharded_empty_inner_chunks(location: str) -> None:
    case = {
        "fmt": 3,
        "shape": (10, 10),
        "chunks": (2, 5),
        "shards": (4, 10),
        "dtype": np.dtype("uint16"),
        "fill": 9,
        "seed": 1,
        "blank": False,
        "transpose": None,
        "endian": "big",
        "compressors": [zc.ZstdCodec(level=1), zc.Crc32cCodec()],
        "key_encoding": {"name": "default", "separator": "/"},
        "index_location": location,
        "index_crc": True,
        "index_endian": "little",
    }
    store_dict: dict[str, Any] = {}
    arr = create(case, store_dict)
    data = np.full((10, 10), 9, dtype="uint16")
    data[0:2, 0:5] = 1  # only inner chunk (0, 0) of shard (0, 0) is stored
    data[9, 9] = 2  # shard (2, 0), inner chunk (0, 1); shard (1, 0) stays missing
    arr[...] = data
    meta = load_meta(store_dict, "a")
    codec = ChunkCodec.from_meta(meta)
    assert isinstance(codec, ShardCodec)
    assert "a/c/1/0" not in store_dict
    raw = store_dict["a/c/0/0"].to_bytes()
    index = codec.decode_index(raw[codec.index_slice(len(raw))], "c/0/0")
    assert index.chunk_range((1, 0)) is None
    assert index.chunk_range((0, 1)) is None
    rng = index.chunk_range((0, 0))
    assert rng is not None
    if location == "start":
        assert rng[0] == codec.index_nbytes
    else:
        assert rng[0] == 0
    assert list(index.nonempty()) == [(0, 0)]
    np.testing.assert_array_equal(codec.decode(raw, "c/0/0"), data[0:4])
    assert codec.encode(data[0:4], "c/0/0") == raw
