"""zarr v2/v3 metadata Structs: decoding, normalised view, errors with JSON paths, encoding."""

from __future__ import annotations

import copy
import json
import math
from typing import TYPE_CHECKING, Any

import msgspec
import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from zarr.core.buffer import cpu
from zarr.storage import MemoryStore

if TYPE_CHECKING:
    from pathlib import Path

from ngio_async._errors import MetadataError, UnsupportedError
from ngio_async.meta.zarr import (
    ArrayV2Meta,
    ArrayV3Meta,
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GroupV2Meta,
    GroupV3Meta,
    ShardingCodec,
    decode_array_v2,
    decode_array_v3,
    decode_group_v2,
    decode_group_v3,
    decode_node_v3,
    encode_array_v2,
    encode_array_v3,
    encode_group_v2,
    encode_group_v3,
)

V3: dict[str, Any] = {
    "zarr_format": 3,
    "node_type": "array",
    "shape": [10, 20, 30],
    "data_type": "uint16",
    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 10, 30]}},
    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
    "fill_value": 0,
    "codecs": [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [2, 5, 15],
                "codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {
                        "name": "blosc",
                        "configuration": {
                            "cname": "zstd",
                            "clevel": 5,
                            "shuffle": "shuffle",
                            "typesize": 2,
                            "blocksize": 0,
                        },
                    },
                ],
                "index_codecs": [
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {"name": "crc32c"},
                ],
                "index_location": "end",
            },
        }
    ],
    "attributes": {"ome": {"version": "0.5"}},
    "dimension_names": ["z", "y", "x"],
    "storage_transformers": [],
}

V2: dict[str, Any] = {
    "zarr_format": 2,
    "shape": [5, 7],
    "chunks": [2, 3],
    "dtype": ">f8",
    "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
    "fill_value": "NaN",
    "order": "F",
    "filters": None,
    "dimension_separator": "/",
}


def v3(*drop: str, **changes: Any) -> bytes:
    doc = copy.deepcopy(V3)
    doc.update(changes)
    for k in drop:
        del doc[k]
    return json.dumps(doc).encode()


def v2(**changes: Any) -> bytes:
    doc = copy.deepcopy(V2)
    doc.update(changes)
    return json.dumps(doc).encode()


def plain_v3(codecs: list[Any], **changes: Any) -> bytes:
    doc = copy.deepcopy(V3)
    doc["codecs"] = codecs
    doc["chunk_grid"]["configuration"]["chunk_shape"] = [2, 5, 15]
    doc.update(changes)
    return json.dumps(doc).encode()


BYTES = {"name": "bytes", "configuration": {"endian": "little"}}


# ---------------------------------------------------------------------------- valid documents


def test_v3_sharded_view() -> None:
    meta = decode_array_v3(v3())
    assert isinstance(meta, ArrayV3Meta)
    assert meta.shape == (10, 20, 30)
    assert meta.ndim == 3
    assert meta.dtype == np.dtype("uint16")
    assert meta.chunks == (2, 5, 15)
    assert meta.shards == (4, 10, 30)
    assert meta.stored_chunks == (4, 10, 30)
    assert meta.grid_shape == (3, 2, 1)
    assert meta.fill_value == 0
    assert isinstance(meta.fill_value, np.uint16)
    assert meta.dimension_names == ("z", "y", "x")
    assert meta.attributes == {"ome": {"version": "0.5"}}
    assert meta.chunk_key((1, 0, 0)) == "c/1/0/0"
    sh = meta.sharding
    assert isinstance(sh, ShardingCodec)
    assert isinstance(sh.configuration.codecs[1], BloscCodec)
    assert isinstance(sh.configuration.index_codecs[1], Crc32cCodec)


def test_v2_view() -> None:
    meta = decode_array_v2(v2())
    assert isinstance(meta, ArrayV2Meta)
    assert meta.dtype == np.dtype(">f8")
    assert meta.chunks == (2, 3)
    assert meta.shards is None
    assert meta.dimension_names is None
    assert math.isnan(float(meta.fill_value))
    assert meta.order == "F"
    assert meta.chunk_key((1, 2)) == "1/2"
    assert decode_array_v2(v2(dimension_separator=".")).chunk_key((1, 2)) == "1.2"
    assert meta.grid_shape == (3, 3)


@pytest.mark.parametrize(
    ("encoding", "coords", "key"),
    [
        ({"name": "default", "configuration": {"separator": "/"}}, (1, 2, 3), "c/1/2/3"),
        ({"name": "default", "configuration": {"separator": "."}}, (1, 2, 3), "c.1.2.3"),
        ({"name": "default"}, (0, 0, 1), "c/0/0/1"),
        ({"name": "v2", "configuration": {"separator": "."}}, (1, 2, 3), "1.2.3"),
        ({"name": "v2", "configuration": {"separator": "/"}}, (1, 2, 3), "1/2/3"),
        ({"name": "v2"}, (4, 5, 6), "4.5.6"),
    ],
)
def test_v3_chunk_keys(encoding: dict[str, Any], coords: tuple[int, ...], key: str) -> None:
    assert decode_array_v3(v3(chunk_key_encoding=encoding)).chunk_key(coords) == key


def test_zero_dim_keys() -> None:
    doc = copy.deepcopy(V3)
    doc.update(shape=[], dimension_names=None, codecs=[BYTES])
    doc["chunk_grid"]["configuration"]["chunk_shape"] = []
    del doc["dimension_names"]
    meta = decode_array_v3(json.dumps(doc))
    assert meta.chunk_key(()) == "c"
    assert decode_array_v2(v2(shape=[], chunks=[])).chunk_key(()) == "0"


@pytest.mark.parametrize(
    ("data_type", "fill", "expected"),
    [
        ("float32", "NaN", np.float32("nan")),
        ("float64", "Infinity", np.inf),
        ("float64", "-Infinity", -np.inf),
        ("float32", "0x3fc00000", np.float32(1.5)),
        ("float64", "0x3ff8000000000000", 1.5),
        ("float16", "0x3e00", np.float16(1.5)),
        ("float64", 2, 2.0),
        ("bool", True, True),
        ("int8", -5, -5),
        ("uint64", 2**64 - 1, np.uint64(2**64 - 1)),
        ("complex64", [1.0, "NaN"], np.complex64(complex(1, math.nan))),
        ("complex128", ["0x3ff8000000000000", -2], complex(1.5, -2)),
    ],
)
def test_v3_fill_values(data_type: str, fill: Any, expected: Any) -> None:
    meta = decode_array_v3(plain_v3([BYTES], data_type=data_type, fill_value=fill))
    assert meta.fill_value.dtype == np.dtype(data_type)
    np.testing.assert_array_equal(meta.fill_value, expected)


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"),
    [
        ("<f4", "NaN", np.nan),
        ("<f8", "-Infinity", -np.inf),
        ("|b1", False, False),
        ("<i4", None, 0),
        ("<u2", 7, 7),
        ("<i8", 3.0, 3),
        ("<c8", [1.0, 2.0], 1 + 2j),
    ],
)
def test_v2_fill_values(dtype: str, fill: Any, expected: Any) -> None:
    meta = decode_array_v2(v2(dtype=dtype, fill_value=fill))
    np.testing.assert_array_equal(meta.fill_value, expected)
    assert meta.fill_value.dtype == np.dtype(dtype)


def test_groups() -> None:
    g = decode_node_v3(b'{"zarr_format": 3, "node_type": "group", "attributes": {"a": 1}}')
    assert isinstance(g, GroupV3Meta)
    assert g.attributes == {"a": 1}
    assert isinstance(decode_node_v3(v3()), ArrayV3Meta)
    assert decode_group_v3(b'{"zarr_format": 3, "node_type": "group"}').attributes == {}
    assert isinstance(decode_group_v2(b'{"zarr_format": 2}'), GroupV2Meta)
    assert json.loads(encode_group_v3()) == {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {},
    }
    assert json.loads(encode_group_v2()) == {"zarr_format": 2}


def test_must_understand_false_is_ignored() -> None:
    meta = decode_array_v3(v3(my_ext={"must_understand": False, "x": 1}))
    assert meta.shape == (10, 20, 30)


# ---------------------------------------------------------------------------- documents from zarr


def _zarr_docs() -> list[tuple[str, bytes]]:
    store: dict[str, Any] = {}
    s = MemoryStore(store_dict=store)
    zarr.create_array(store=s, name="a", shape=(9, 9), chunks=(4, 4), dtype="<i4", zarr_format=2)
    zarr.create_array(
        store=s,
        name="b",
        shape=(9, 9),
        chunks=(4, 4),
        dtype="float32",
        zarr_format=2,
        filters=[numcodecs.Delta(dtype="<f4")],
        compressors=numcodecs.GZip(level=2),
        fill_value=np.nan,
        order="F",
    )
    zarr.create_array(
        store=s,
        name="c",
        shape=(9, 9),
        chunks=(4, 4),
        shards=(8, 8),
        dtype="complex64",
        dimension_names=["y", None],
        compressors=[zc.GzipCodec(level=1), zc.Crc32cCodec()],
        serializer=zc.BytesCodec(endian="big"),
    )
    zarr.create_array(
        store=s,
        name="d",
        shape=(9, 9),
        chunks=(4, 4),
        dtype="bool",
        filters=[zc.TransposeCodec(order=(1, 0))],
    )
    return [
        (k, v.to_bytes()) for k, v in sorted(store.items()) if k.endswith(("zarr.json", ".zarray"))
    ]


@pytest.mark.parametrize(("key", "raw"), _zarr_docs())
def test_zarr_written_metadata_roundtrips(key: str, raw: bytes) -> None:
    if key == "zarr.json":
        assert isinstance(decode_node_v3(raw), GroupV3Meta)
        return
    meta: ArrayV2Meta | ArrayV3Meta
    if key.endswith(".zarray"):
        meta = decode_array_v2(raw)
        encoded = encode_array_v2(meta)
        assert decode_array_v2(encoded) == meta
        name = ".zarray"
    else:
        meta = decode_array_v3(raw)
        encoded = encode_array_v3(meta)
        assert decode_array_v3(encoded) == meta
        name = "zarr.json"
    assert json.loads(encoded) == {
        k: v for k, v in json.loads(raw).items() if not (k == "dimension_names" and v is None)
    }
    # zarr-python reads what we encode
    fresh: dict[str, Any] = {f"x/{name}": cpu.Buffer.from_bytes(encoded)}
    arr = zarr.open_array(store=MemoryStore(store_dict=fresh), path="x", mode="r")
    assert arr.shape == meta.shape
    assert arr.dtype == meta.dtype


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (v3(shape="big"), "$.shape"),
        (v3(shape=[10, "x", 30]), "$.shape[1]"),
        (v3(shape=[10, -1, 30]), "$.shape[1]"),
        (v3(zarr_format=2), "$.zarr_format"),
        (v3(node_type="thing"), "$.node_type"),
        (v3("chunk_grid"), "$"),
        (v3(fill_value=None), "$.fill_value"),
        (v3(fill_value="oops"), "$.fill_value"),
        (v3(fill_value=1.5), "$.fill_value"),
        (v3(fill_value=70000), "$.fill_value"),
        (v3(dimension_names=["a"]), "$.dimension_names"),
        (v3(unknown_key=1), "$.unknown_key"),
        (v3(unknown_key={"must_understand": True}), "$.unknown_key"),
        (
            v3(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [4, 10]}}),
            "$.chunk_grid.configuration.chunk_shape",
        ),
        (
            v3(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [4, 0, 30]}}),
            "$.chunk_grid.configuration.chunk_shape[1]",
        ),
        (
            v3(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [3, 10, 30]}}),
            "$.codecs[0].configuration.chunk_shape[0]",
        ),
        (
            v3(chunk_key_encoding={"name": "default", "configuration": {"separator": "-"}}),
            "$.chunk_key_encoding.configuration.separator",
        ),
        (
            plain_v3([BYTES, {"name": "zstd", "configuration": {"level": "high"}}]),
            "$.codecs[1].configuration.level",
        ),
        (plain_v3([BYTES, {"name": "gzip", "configuration": 5}]), "$.codecs[1].configuration"),
        (
            plain_v3([BYTES, {"name": "blosc", "configuration": {"shuffle": "x"}}]),
            "$.codecs[1].configuration.shuffle",
        ),
        (
            plain_v3([{"name": "bytes", "configuration": {"endian": "middle"}}]),
            "$.codecs[0].configuration.endian",
        ),
        (plain_v3([{"name": "crc32c"}]), "$.codecs"),
        (plain_v3([BYTES, BYTES]), "$.codecs"),
        (plain_v3([{"name": "crc32c"}, BYTES]), "$.codecs[0]"),
        (
            plain_v3([BYTES, {"name": "transpose", "configuration": {"order": [0, 1, 2]}}]),
            "$.codecs[1]",
        ),
        (
            plain_v3([{"name": "transpose", "configuration": {"order": [0, 0, 2]}}, BYTES]),
            "$.codecs[0].configuration.order",
        ),
        (
            plain_v3([{"name": "bytes", "configuration": {"endian": "little"}, "x": 1}, 5]),
            "$.codecs[1]",
        ),
        (plain_v3([{"configuration": {}}]), "$.codecs[0]"),
        (b"[1, 2]", "$"),
        (b"{not json", "$"),
    ],
)
def test_v3_errors_name_the_path(raw: bytes, path: str) -> None:
    with pytest.raises(MetadataError) as info:
        decode_array_v3(raw)
    assert info.value.path == path, str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"at `{path}`" in str(info.value)


def test_sharding_index_codecs_path() -> None:
    doc = copy.deepcopy(V3)
    doc["codecs"][0]["configuration"]["index_codecs"] = [{"name": "crc32c"}]
    with pytest.raises(MetadataError) as info:
        decode_array_v3(json.dumps(doc))
    assert info.value.path == "$.codecs[0].configuration.index_codecs"
    doc["codecs"][0]["configuration"]["codecs"][1]["configuration"]["clevel"] = "x"
    doc["codecs"][0]["configuration"]["index_codecs"] = [BYTES]
    with pytest.raises(MetadataError) as info:
        decode_array_v3(json.dumps(doc))
    assert info.value.path == "$.codecs[0].configuration.codecs[1].configuration.clevel"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (plain_v3([BYTES, {"name": "lzma"}]), "lzma"),
        (plain_v3([BYTES, {"name": "numcodecs.nosuch", "configuration": {}}]), "numcodecs.nosuch"),
        (v3(data_type="string"), "string"),
        (v3(data_type={"name": "datetime64"}), "datetime64"),
        (v3(chunk_grid={"name": "rectilinear", "configuration": {}}), "rectilinear"),
        (v3(chunk_key_encoding={"name": "fancy"}), "fancy"),
        (v3(storage_transformers=[{"name": "x"}]), "storage transformers"),
    ],
)
def test_v3_unsupported(raw: bytes, needle: str) -> None:
    with pytest.raises(UnsupportedError, match=needle):
        decode_array_v3(raw)


def test_unknown_codec_inside_sharding() -> None:
    doc = copy.deepcopy(V3)
    doc["codecs"][0]["configuration"]["codecs"].append({"name": "bz2"})
    with pytest.raises(UnsupportedError, match=r"bz2.*\$\.codecs\[0\]\.configuration\.codecs\[2\]"):
        decode_array_v3(json.dumps(doc))


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (v2(shape=[5]), "$.chunks"),
        (v2(chunks=[2, "a"]), "$.chunks[1]"),
        (v2(dtype="<q9"), "$.dtype"),
        (v2(fill_value="NaNa"), "$.fill_value"),
        (v2(dtype="<i4", fill_value="NaN"), "$.fill_value"),
        (v2(order="X"), "$.order"),
        (v2(dimension_separator="-"), "$.dimension_separator"),
        (v2(compressor={"cname": "lz4"}), "$.compressor.id"),
        (v2(compressor={"id": "zlib", "level": "x", "bogus": 1}), "$.compressor"),
        (v2(filters=[{"id": "delta"}]), "$.filters[0]"),
        (v2(zarr_format=3), "$.zarr_format"),
        (b"{}", "$"),
    ],
)
def test_v2_errors_name_the_path(raw: bytes, path: str) -> None:
    with pytest.raises(MetadataError) as info:
        decode_array_v2(raw)
    assert info.value.path == path, str(info.value)


def test_v2_unsupported() -> None:
    with pytest.raises(UnsupportedError, match="no-such-codec"):
        decode_array_v2(v2(compressor={"id": "no-such-codec"}))
    with pytest.raises(UnsupportedError, match="<U4"):
        decode_array_v2(v2(dtype="<U4", fill_value=""))
    with pytest.raises(UnsupportedError):
        decode_array_v2(v2(dtype="|O", fill_value=0))


def test_node_errors() -> None:
    with pytest.raises(MetadataError) as info:
        decode_node_v3(b'{"zarr_format": 3}')
    assert info.value.path == "$"
    with pytest.raises(MetadataError) as info:
        decode_node_v3(b'{"zarr_format": 3, "node_type": "x"}')
    assert info.value.path == "$.node_type"
    with pytest.raises(MetadataError) as info:
        decode_group_v3(b'{"zarr_format": 3, "node_type": "group", "attributes": 1}')
    assert info.value.path == "$.attributes"
    with pytest.raises(MetadataError) as info:
        decode_group_v2(b'{"zarr_format": 3}')
    assert info.value.path == "$.zarr_format"


def test_bytes_codec_defaults() -> None:
    meta = decode_array_v3(plain_v3([{"name": "bytes"}], data_type="uint8"))
    codec = meta.codecs[0]
    assert isinstance(codec, BytesCodec)
    assert codec.configuration.endian is None
    assert json.loads(encode_array_v3(meta))["codecs"] == [{"name": "bytes"}]


@pytest.mark.filterwarnings(
    "ignore:Consolidated metadata is currently not part:zarr.errors.ZarrUserWarning"
)
def test_consolidated_group_from_zarr() -> None:
    store: dict[str, Any] = {}
    s = MemoryStore(store_dict=store)
    root = zarr.open_group(store=s, mode="w", zarr_format=3)
    root.create_array("x", shape=(4,), chunks=(2,), dtype="uint8")
    zarr.consolidate_metadata(s)
    g = decode_node_v3(store["zarr.json"].to_bytes())
    assert isinstance(g, GroupV3Meta)
    assert g.consolidated_metadata is not None
    assert "x" in g.consolidated_metadata["metadata"]
    again = decode_group_v3(encode_group_v3(g))
    assert again == g
    plain = decode_group_v3(
        b'{"zarr_format": 3, "node_type": "group", "consolidated_metadata": null}'
    )
    assert plain.consolidated_metadata is None


def test_lenient_values() -> None:
    assert decode_array_v3(plain_v3([BYTES], fill_value=3.0)).fill_value == 3
    blosc = {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 1}}
    meta = decode_array_v3(plain_v3([BYTES, blosc]))
    cfg = meta.codecs[1]
    assert isinstance(cfg, BloscCodec)
    assert cfg.configuration.shuffle is msgspec.UNSET  # left to the writer, never written
    assert cfg.configuration.typesize is msgspec.UNSET


@pytest.mark.parametrize("shards", [None, False])
def test_blosc_configuration_is_written_whole(tmp_path: Path, shards: Any) -> None:
    """zarr v3's blosc codec requires cname, clevel, shuffle, typesize (when shuffling) and
    blocksize; tensorstore refuses a configuration without them (they were left out when they
    equalled the defaults), and reads the image once they are there."""
    import json

    import numpy as np

    import ngio_async

    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    path = tmp_path / "img.zarr"
    options: dict[str, Any] = {} if shards is None else {"shards": shards}
    with ngio_async.create(
        path, shape=(64, 64), dtype="uint16", axes="yx", compressor="blosc-zstd", **options
    ) as ds:
        ds[...] = data
    doc = json.loads((path / "0" / "zarr.json").read_text())
    codecs = doc["codecs"]
    if codecs[0]["name"] == "sharding_indexed":
        codecs = codecs[0]["configuration"]["codecs"]
    (blosc,) = [c for c in codecs if c["name"] == "blosc"]
    assert blosc["configuration"] == {
        "cname": "zstd", "clevel": 5, "shuffle": "shuffle", "typesize": 2, "blocksize": 0,
    }  # fmt: skip
    ts = pytest.importorskip("tensorstore")
    arr = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / "0")}}
    ).result()
    np.testing.assert_array_equal(arr.read().result(), data)


def test_a_compressor_after_sharding_compresses_whole_shards() -> None:
    """zarr-python writes zstd after a sharding serializer (whole shards compressed): read as
    plain shards they failed on a misleading crc32c error (then refused by name); now the
    shard codec holds the compressor for the whole shard object, and an array->array codec
    after it is still refused, naming it."""
    meta = json.loads(plain_v3([BYTES]))  # chunks (2, 5, 15)
    meta["codecs"] = [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [1, 5, 5],
                "codecs": [BYTES],
                "index_codecs": [BYTES, {"name": "crc32c"}],
                "index_location": "end",
            },
        },
        {"name": "zstd", "configuration": {"level": 0, "checksum": False}},
    ]
    from ngio_async.codecs import ChunkCodec, ShardCodec

    codec = ChunkCodec.from_meta(decode_array_v3(json.dumps(meta).encode()))
    assert isinstance(codec, ShardCodec) and codec.compressed and len(codec.outer) == 1
    meta["codecs"].append({"name": "transpose", "configuration": {"order": [0, 1, 2]}})
    with pytest.raises(MetadataError, match=r"array->array codec must precede") as info:
        decode_array_v3(json.dumps(meta).encode())
    assert info.value.path == "$.codecs[2]"
