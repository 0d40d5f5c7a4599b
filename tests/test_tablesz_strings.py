"""String arrays through the project's zarr layer (meta.zarr + codecs), against zarr-python 3.1
both ways: v2 ``|O`` with the ``vlen-utf8`` filter, v3 ``string`` with the ``vlen-utf8`` codec,
sharded too; images refuse them naming the array; tables read with few requests."""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any, Literal

import numcodecs
import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import CodecError, MetadataError, UnsupportedError
from ngio_async.codecs import ChunkCodec
from ngio_async.meta.zarr import (
    ArrayV3Meta,
    codec_stages,
    decode_array,
    decode_array_v2,
    decode_array_v3,
    encode_array_v2,
    encode_array_v3,
)
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

WORDS = np.array(["a", "bé", "", "日本語", "x" * 300, "tab\t", "z"], dtype=object)

LAYOUTS: list[dict[str, Any]] = [
    {"zarr_format": 2, "chunks": (3,)},
    {"zarr_format": 2, "chunks": (4,), "compressors": numcodecs.Blosc("lz4")},
    {"zarr_format": 3, "chunks": (3,)},
    {"zarr_format": 3, "chunks": (2,), "shards": (4,)},
]


def _meta(root: Path, v3: bool) -> Any:
    raw = (root / ("zarr.json" if v3 else ".zarray")).read_bytes()
    return decode_array_v3(raw) if v3 else decode_array_v2(raw)


def _blocks(meta: Any) -> list[tuple[str, tuple[slice, ...]]]:
    out = []
    for coords in itertools.product(*map(range, meta.grid_shape)):
        sel = tuple(
            slice(i * c, min((i + 1) * c, s))
            for i, c, s in zip(coords, meta.stored_chunks, meta.shape, strict=True)
        )
        out.append((meta.chunk_key(coords), sel))
    return out


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: str(sorted(d.items()))[:50])
def test_zarr_python_strings_read_and_written_byte_for_byte(
    tmp_path: Path, layout: dict[str, Any]
) -> None:
    """zarr-python writes, we decode every chunk (an edge one, shards of several inner chunks)
    to object arrays of str; our encoding of each chunk is the bytes zarr-python stored."""
    v3 = layout["zarr_format"] == 3
    root = tmp_path / "a"
    arr = zarr.create_array(root, shape=WORDS.shape, dtype=str, **layout)
    arr[...] = WORDS
    meta = _meta(root, v3)
    assert meta.dtype == object and meta.fill_value == ""
    codec = ChunkCodec.from_meta(meta)
    got = np.full(meta.shape, meta.fill_value, dtype=object)
    for key, sel in _blocks(meta):
        stored = (root / key).read_bytes()
        block = codec.decode(stored, key)
        assert block.dtype == object and block.shape == meta.stored_chunks
        got[sel] = block[: sel[0].stop - sel[0].start]
        padded = np.full(meta.stored_chunks, "", dtype=object)
        padded[: sel[0].stop - sel[0].start] = WORDS[sel]
        assert codec.encode(padded, key) == stored, key
    assert got.tolist() == WORDS.tolist()
    assert all(type(v) is str for v in got)
    # the document round-trips as zarr-python wrote it
    doc = json.loads((root / ("zarr.json" if v3 else ".zarray")).read_bytes())
    again = encode_array_v3(meta) if v3 else encode_array_v2(meta)
    assert json.loads(again) == doc
    assert codec_stages(meta) is not None


@pytest.mark.parametrize(("v3", "sharded"), [(False, False), (True, False), (True, True)])
def test_our_string_chunks_read_by_zarr_python(tmp_path: Path, v3: bool, sharded: bool) -> None:
    root = tmp_path / "b"
    root.mkdir()
    if v3:
        codecs: list[Any] = [{"name": "vlen-utf8", "configuration": {}}, {"name": "gzip"}]
        if sharded:
            codecs = [
                {
                    "name": "sharding_indexed",
                    "configuration": {"chunk_shape": [2], "codecs": codecs},
                }
            ]
        doc: dict[str, Any] = {
            "zarr_format": 3, "node_type": "array", "shape": [7], "data_type": "string",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4]}},
            "chunk_key_encoding": {"name": "default"}, "fill_value": "", "codecs": codecs,
        }  # fmt: skip
    else:
        doc = {
            "zarr_format": 2, "shape": [7], "chunks": [4], "dtype": "|O", "fill_value": None,
            "filters": [{"id": "vlen-utf8"}], "compressor": {"id": "zlib", "level": 1},
        }  # fmt: skip
    meta = decode_array(doc)
    assert meta.fill_value == ""
    name, raw = (
        ("zarr.json", encode_array_v3(meta))
        if isinstance(meta, ArrayV3Meta)
        else (".zarray", encode_array_v2(meta))
    )
    (root / name).write_bytes(raw)
    codec = ChunkCodec.from_meta(meta)
    for key, sel in _blocks(meta):
        padded = np.full(meta.stored_chunks, "", dtype=object)
        padded[: sel[0].stop - sel[0].start] = WORDS[sel]
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(codec.encode(padded, key))
    back = np.asarray(zarr.open_array(root, mode="r")[...])
    assert [str(v) for v in back] == WORDS.tolist()


def test_v2_vlen_bytes_and_fortran_order_strings() -> None:
    base = {"zarr_format": 2, "shape": [2, 2], "chunks": [2, 2], "compressor": None}
    meta = decode_array(
        base | {"dtype": "|O", "fill_value": None, "filters": [{"id": "vlen-bytes"}]}
    )
    assert meta.fill_value == b""
    values = np.array([[b"a", b""], [b"\xff", b"cd"]], dtype=object)
    codec = ChunkCodec.from_meta(meta)
    raw = codec.encode(values, "0.0")
    assert raw == bytes(numcodecs.VLenBytes().encode(values.reshape(-1)))
    assert codec.decode(raw, "0.0").tolist() == values.tolist()
    meta = decode_array(
        base | {"dtype": "|O", "fill_value": "", "order": "F", "filters": [{"id": "vlen-utf8"}]}
    )
    words = np.array([["a", "b"], ["c", "d"]], dtype=object)
    raw = ChunkCodec.from_meta(meta).encode(words, "0.0")
    assert raw == bytes(numcodecs.VLenUTF8().encode(words.ravel(order="F")))
    assert ChunkCodec.from_meta(meta).decode(raw, "0.0").tolist() == words.tolist()


def test_string_metadata_refused_by_name() -> None:
    v3: dict[str, Any] = {
        "zarr_format": 3, "node_type": "array", "shape": [2], "data_type": "string",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
        "chunk_key_encoding": {"name": "default"}, "fill_value": "",
        "codecs": [{"name": "bytes"}],
    }  # fmt: skip
    with pytest.raises(
        UnsupportedError, match=r"'string' needs the vlen-utf8 codec.*\$\.codecs\[0\]"
    ):
        decode_array(v3)
    bad = v3 | {"data_type": "float32", "fill_value": 0, "codecs": [{"name": "vlen-utf8"}]}
    with pytest.raises(MetadataError, match="vlen-utf8 codec needs the 'string' data type"):
        decode_array(bad)
    with pytest.raises(MetadataError, match="string fill value") as info:
        decode_array(v3 | {"fill_value": 0, "codecs": [{"name": "vlen-utf8"}]})
    assert info.value.path == "$.fill_value"
    v2 = {
        "zarr_format": 2,
        "shape": [2],
        "chunks": [2],
        "dtype": "|O",
        "fill_value": None,
        "compressor": None,
    }
    with pytest.raises(UnsupportedError, match="needs a vlen-utf8 or vlen-bytes filter"):
        decode_array(v2)
    with pytest.raises(UnsupportedError, match="must be the only vlen filter and come first"):
        decode_array(v2 | {"filters": [{"id": "zlib"}, {"id": "vlen-utf8"}]})
    with pytest.raises(MetadataError, match=r"'vlen-utf8' needs the \|O dtype"):
        decode_array(v2 | {"dtype": "<f8", "fill_value": 0, "filters": [{"id": "vlen-utf8"}]})


def test_a_hostile_string_chunk_names_its_key() -> None:
    v2 = {
        "zarr_format": 2, "shape": [3], "chunks": [3], "dtype": "|O", "fill_value": "",
        "filters": [{"id": "vlen-utf8"}], "compressor": None,
    }  # fmt: skip
    codec = ChunkCodec.from_meta(decode_array(v2))
    with pytest.raises(CodecError, match="holds 1 items, expected 3") as info:
        codec.decode(numcodecs.VLenUTF8().encode(np.array(["a"], dtype=object)), "obs/n/0")
    assert info.value.key == "obs/n/0"


@pytest.mark.parametrize("fmt", [2, 3])
def test_an_image_of_strings_is_refused_naming_the_array(tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "s.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=fmt)  # type: ignore[arg-type]
    arr = group.create_array("0", shape=(2, 3), chunks=(2, 3), dtype=str)
    arr[...] = np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [{"type": "scale", "scale": [1, 1]}]
    ms: dict[str, Any] = {
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": scale}],
    }
    if fmt == 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        group.attrs["multiscales"] = [ms | {"version": "0.4"}]
    doc = "0/zarr.json" if fmt == 3 else "0/.zarray"
    kind = "'string'" if fmt == 3 else "'|O'"
    with pytest.raises(
        UnsupportedError, match=f"{doc}: the array holds strings \\(data type {kind}\\)"
    ):
        ngio_async.open(path)


@pytest.mark.anyio
# ("kind" repeats: a categorical group, its codes and categories, as anndata writes it)
@pytest.mark.parametrize(("version", "most"), [("0.4", 39), ("0.5", 17)])
async def test_a_table_read_takes_a_few_batched_requests(
    tmp_path: Path, version: Literal["0.4", "0.5"], most: int
) -> None:
    """The counts before the tables read through meta.zarr and codecs: no more now."""
    n = 50
    cols = {
        "m": np.linspace(0, 1, n),
        "count": np.arange(n),
        "kind": np.array(["a", "b"] * (n // 2), dtype=object),
    }
    path = tmp_path / "t.zarr"
    async with ngio_async.create_async(
        path, shape=(8, 8), dtype="uint8", levels=1, ngff_version=version
    ) as ds:
        await ds.tables.write_features("f", cols, labels=np.arange(1, n + 1))
    store = InstrumentedStore(open_store(path))
    async with ngio_async.open_async(store) as ds:
        store.calls.clear()
        table = await ds.tables.read("f")
        assert store.total_requests <= most
    assert table["kind"].tolist() == cols["kind"].tolist()
    np.testing.assert_array_equal(table["count"], cols["count"])
