"""Table arrays, pure: the vlen-utf8 codec against numcodecs, hostile chunks refused by name,
and table arrays against zarr-python both ways (v2 ``|O`` + vlen-utf8, v3 ``string``; numbers
and booleans; several chunks, shards of several inner chunks, gzip/zstd/blosc)."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec

from ngio_async import CodecError, MetadataError
from ngio_async.codecs._strings import vlen_utf8_decode, vlen_utf8_encode
from ngio_async.tables._zarr import encode_table_array, parse_table_array

if TYPE_CHECKING:
    from pathlib import Path

WORDS = np.array(["", "a", "bé", "日本語", "x" * 300, "tab\tnl\n"], dtype=object)


def test_vlen_utf8_matches_numcodecs() -> None:
    ref = numcodecs.VLenUTF8()
    assert vlen_utf8_encode(WORDS) == bytes(ref.encode(WORDS))
    assert list(vlen_utf8_decode(bytes(ref.encode(WORDS)), len(WORDS))) == list(WORDS)
    assert list(vlen_utf8_decode(vlen_utf8_encode(np.array([], dtype=object)), 0)) == []
    with pytest.raises(TypeError, match="item 1 is int"):
        vlen_utf8_encode(np.array(["a", 3], dtype=object))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x01\x00", "no item count"),
        (struct.pack("<I", 2) + struct.pack("<I", 1) + b"a", "holds 2 items, expected 3"),
        (struct.pack("<II", 1, 5) + b"ab", "truncated at item 0"),
        (struct.pack("<II", 1, 1) + b"ab", "1 bytes after the last item"),
        (struct.pack("<II", 1, 2) + b"\xff\xfe", "item 0"),
        (struct.pack("<I", 2**31), "cannot fit"),
    ],
)
def test_vlen_utf8_hostile_chunks_name_the_key(raw: bytes, match: str) -> None:
    count = 3 if "expected 3" in match else None
    with pytest.raises(CodecError, match=match) as info:
        vlen_utf8_decode(raw, count, key="obs/name/0")
    assert info.value.key == "obs/name/0"


COLUMNS: list[Any] = [
    np.array(["FOV_1", "FOV_2", "é"], dtype=object),
    np.array([1.5, -2.0, np.nan]),
    np.array([1, 2, 3], dtype=np.int32),
    np.array([True, False, True]),
    np.arange(12.0).reshape(3, 4),
    np.array([], dtype=object),
    np.zeros(3),  # all fill values: still one chunk, as anndata writes it
    np.array(["", ""], dtype=object),
]


def _stored(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _doc(files: dict[str, bytes], v3: bool) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(files["zarr.json" if v3 else ".zarray"])
    return doc


@pytest.mark.parametrize("v3", [False, True])
@pytest.mark.parametrize("values", COLUMNS, ids=lambda v: f"{v.dtype}{v.shape}")
def test_written_arrays_read_by_zarr(tmp_path: Path, v3: bool, values: Any) -> None:
    doc, chunks = encode_table_array(values, {"encoding-type": "array"}, v3=v3)
    assert len(chunks) == (1 if values.size else 0)
    root = tmp_path / "a"
    root.mkdir()
    (root / ("zarr.json" if v3 else ".zarray")).write_bytes(doc)
    for key, data in chunks.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)
    got = np.asarray(zarr.open_array(root, mode="r")[...])
    if values.dtype == object:
        assert [str(v) for v in got] == list(values)
    else:
        np.testing.assert_array_equal(got, values)
    back = parse_table_array(json.loads(doc), "a").assemble(chunks)
    assert back.dtype == (object if values.dtype == object else values.dtype)
    np.testing.assert_array_equal(back, values)


ZARR_LAYOUTS: list[dict[str, Any]] = [
    {"zarr_format": 2, "chunks": (2,), "compressors": numcodecs.GZip(5)},
    {"zarr_format": 2, "chunks": (4,), "compressors": None},
    {"zarr_format": 3, "chunks": (2,), "compressors": GzipCodec()},
    {"zarr_format": 3, "chunks": (1,), "shards": (4,)},
    {"zarr_format": 3, "chunks": (2,), "compressors": BloscCodec()},
]


@pytest.mark.parametrize("layout", ZARR_LAYOUTS, ids=lambda d: str(sorted(d.items()))[:60])
@pytest.mark.parametrize("kind", ["str", "f4", "bool", "i8"])
def test_zarr_arrays_read(tmp_path: Path, layout: dict[str, Any], kind: str) -> None:
    """Several chunks (an edge one), shards of several inner chunks, each compressor."""
    values: Any = {
        "str": np.array(["a", "bb", "", "é", "zz"], dtype=object),
        "f4": np.array([1.5, 2, 3, 4, 5], dtype=">f4" if layout["zarr_format"] == 2 else "f4"),
        "bool": np.array([True, False, False, True, True]),
        "i8": np.arange(5, dtype=np.int64) - 2,
    }[kind]
    root = tmp_path / "a"
    dtype = str if kind == "str" else values.dtype  # v2: |O with the vlen-utf8 filter
    arr = zarr.create_array(root, shape=values.shape, dtype=dtype, **layout)
    arr[...] = values
    files = _stored(root)
    doc = _doc(files, layout["zarr_format"] == 3)
    chunks = {k: v for k, v in files.items() if k not in ("zarr.json", ".zarray", ".zattrs")}
    got = parse_table_array(doc, "a").assemble(chunks)
    np.testing.assert_array_equal(got, values)
    assert got.dtype.isnative


def test_unsupported_arrays_are_named() -> None:
    from ngio_async import UnsupportedError

    v3 = {
        "zarr_format": 3,
        "shape": [2],
        "node_type": "array",
        "data_type": "r16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": 0,
        "codecs": [{"name": "bytes"}],
    }
    with pytest.raises(UnsupportedError, match=r"obs/x: .*'r16' is not supported"):
        parse_table_array(v3, "obs/x")
    v3 |= {"data_type": "float32", "codecs": [{"name": "bytes"}, {"name": "lzma"}]}
    with pytest.raises(UnsupportedError, match="obs/x: codec 'lzma' is not supported"):
        parse_table_array(v3, "obs/x")
    v2 = {
        "zarr_format": 2, "shape": [2], "chunks": [2], "dtype": "|O", "compressor": None,
        "fill_value": None,
    }  # fmt: skip
    with pytest.raises(UnsupportedError, match=r"obs/y: .*needs a vlen-utf8"):
        parse_table_array(v2, "obs/y")


def test_huge_or_bomb_arrays_are_refused() -> None:
    """A document declaring more values than any table holds, and a chunk that inflates past
    its shape's size, are refused before memory is spent (the array named)."""
    v2 = {
        "zarr_format": 2, "shape": [2**40], "chunks": [1], "dtype": "<f8",
        "compressor": {"id": "zstd", "level": 1}, "fill_value": 0,
    }  # fmt: skip
    with pytest.raises(MetadataError, match=r"obs/x of shape .* too large"):
        parse_table_array(v2, "obs/x")
    with pytest.raises(MetadataError, match="obs/x"):
        parse_table_array(v2 | {"shape": [4], "chunks": [0]}, "obs/x")
    spec = parse_table_array(v2 | {"shape": [4], "chunks": [4]}, "obs/x")
    bomb = numcodecs.Zstd(level=1).encode(np.zeros(10 << 20, np.uint8))
    with pytest.raises(CodecError, match="obs/x/0"):
        spec.assemble({"0": bomb})
