"""Hostile array metadata: sizes numpy cannot hold, absurd shard indexes, wild fill values.

Each is a :class:`MetadataError` naming the JSON path when the image is opened (never a hang, an
``OverflowError`` or a ``MemoryError`` later), and opening modifies nothing.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async._errors import MetadataError
from ngio_async.meta.zarr import decode_array_v2, decode_array_v3

if TYPE_CHECKING:
    from pathlib import Path

BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}


def v3_doc(shape: list[int], grid: list[int], inner: list[int] | None = None) -> dict[str, Any]:
    codecs: list[Any] = [BYTES_LE]
    if inner is not None:
        codecs = [{"name": "sharding_indexed", "configuration": {"chunk_shape": inner}}]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": 0,
        "codecs": codecs,
    }


def v2_doc(shape: list[int], chunks: list[int]) -> dict[str, Any]:
    return {
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": "<u2",
        "compressor": None,
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }


@pytest.mark.parametrize("size", [2**63, 2**64, 2**70])
def test_a_dimension_numpy_cannot_index_is_refused(size: int) -> None:
    for decode, doc in (
        (decode_array_v3, v3_doc([size, 4], [1, 4])),
        (decode_array_v2, v2_doc([size, 4], [1, 4])),
    ):
        with pytest.raises(MetadataError, match="exceeds 2\\*\\*63") as info:
            decode(json.dumps(doc))
        assert info.value.path == "$.shape[0]"
    assert decode_array_v3(json.dumps(v3_doc([2**63 - 1, 4], [1, 4]))).shape[0] == 2**63 - 1


def test_a_chunk_numpy_cannot_hold_is_refused() -> None:
    with pytest.raises(MetadataError, match=r"holds \d+ bytes") as info:
        decode_array_v2(json.dumps(v2_doc([4, 4], [2**40, 2**40])))
    assert info.value.path == "$.chunks"
    with pytest.raises(MetadataError, match=r"holds \d+ bytes") as info:
        decode_array_v3(json.dumps(v3_doc([4, 4], [2**40, 2**40])))
    assert info.value.path == "$.chunk_grid.configuration.chunk_shape"


def test_a_shard_with_an_absurd_index_is_refused() -> None:
    """2**70 inner chunks per shard: the reader planned them one by one (a hang)."""
    doc = v3_doc([1, 64, 64], [1, 2**40, 2**40], inner=[1, 32, 32])
    with pytest.raises(MetadataError, match="inner chunks") as info:
        decode_array_v3(json.dumps(doc))
    assert info.value.path == "$.chunk_grid.configuration.chunk_shape"
    nested = v3_doc([64, 64], [2**20, 2**20], inner=[2**20, 2**20])
    nested["codecs"][0]["configuration"]["codecs"] = [
        {"name": "sharding_indexed", "configuration": {"chunk_shape": [1, 1]}}
    ]
    with pytest.raises(MetadataError, match="inner chunks") as info:
        decode_array_v3(json.dumps(nested))
    assert info.value.path == "$.codecs[0].configuration.codecs[0].configuration"
    ok = v3_doc([64, 64], [4096, 4096], inner=[1, 1])  # 2**24 inner chunks: accepted
    assert decode_array_v3(json.dumps(ok)).shards == (4096, 4096)


def test_an_out_of_range_fill_value_is_quoted_as_written() -> None:
    doc = v3_doc([4, 4], [2, 2])
    doc["fill_value"] = 1e300
    with pytest.raises(MetadataError, match=r"fill value 1e\+300 out of range") as info:
        decode_array_v3(json.dumps(doc))
    assert len(str(info.value)) < 200


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_opening_an_image_with_an_absurd_shard_fails_fast_and_changes_nothing(
    tmp_path: Path,
) -> None:
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(1, 64, 64), dtype="uint16", axes="cyx", chunks=(1, 32, 32), levels=1
    ) as ds:
        ds.write(np.ones((1, 64, 64), "uint16"))
    level = tmp_path / "img.ome.zarr" / "0" / "zarr.json"
    doc = json.loads(level.read_text())
    doc["chunk_grid"]["configuration"]["chunk_shape"] = [1, 2**40, 2**40]
    level.write_text(json.dumps(doc))
    before = _files(tmp_path)
    with pytest.raises(MetadataError, match="inner chunks") as info:
        ngio_async.open(url)
    assert "0/zarr.json" in str(info.value)
    assert _files(tmp_path) == before


DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (b',"x":' + DEEP, "nested too deeply"),
        (b',"x":"caf\xe9"', "not UTF-8"),
    ],
    ids=["deep", "latin1"],
)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_undecodable_json_is_a_metadata_error_naming_the_document(
    tmp_path: Path, version: str, tail: bytes, message: str
) -> None:
    """msgspec's RecursionError and UnicodeDecodeError escaped as they were."""
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(1, 32, 32), dtype="uint8", axes="cyx", levels=1, ngff_version=version
    ):
        pass
    for doc in (
        "zarr.json" if version == "0.5" else ".zattrs",
        "0/zarr.json" if version == "0.5" else "0/.zarray",
    ):
        if doc == "0/.zarray" and message == "not UTF-8":
            continue  # msgspec skips the keys a .zarray does not have, undecoded
        path = tmp_path / "img.ome.zarr" / doc
        good = path.read_bytes()
        path.write_bytes(good.rstrip()[:-1] + tail + b"}")
        before = _files(tmp_path)
        with pytest.raises(MetadataError, match=message) as info:
            ngio_async.open(url)
        assert doc in str(info.value)
        assert info.value.path == "$"
        assert _files(tmp_path) == before
        path.write_bytes(good)


def test_a_byte_order_mark_is_named() -> None:
    from ngio_async.meta import validate

    with pytest.raises(MetadataError, match="byte order mark"):
        validate(b"\xef\xbb\xbf{}")
    with pytest.raises(MetadataError, match="byte order mark"):
        decode_array_v3(b"\xef\xbb\xbf" + json.dumps(v3_doc([4], [4])).encode())


@pytest.mark.parametrize(
    "path", ["%2e%2e/secret", "..%2fsecret", "%252e%252e/secret", "..\\secret"]
)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_level_path_never_reaches_outside_the_image_over_http(
    http_server: Any, http_root: Path, version: str, path: str
) -> None:
    """The test server decodes its paths twice (as some proxies do): ``%2e%2e`` reached the
    array beside the image."""
    from ngio_async.meta import validate

    image = http_root / "img"
    with ngio_async.create(
        str(image), shape=(1, 32, 32), dtype="uint8", axes="cyx", levels=2, ngff_version=version
    ):
        pass
    (http_root / "secret").mkdir()
    for name in ("zarr.json", ".zarray"):
        if (image / "1" / name).exists():
            (http_root / "secret" / name).write_bytes((image / "1" / name).read_bytes())
    doc_path = image / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(doc_path.read_text())
    ms = doc["attributes"]["ome"] if version == "0.5" else doc
    ms["multiscales"][0]["datasets"][1]["path"] = path
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match="not a path inside the group") as info:
        ngio_async.open(http_server.url + "img")
    assert info.value.path.endswith(".datasets[1].path")
    assert not any("secret" in t for t in http_server.raw_targets)
    with pytest.raises(MetadataError, match="not a path inside the group"):
        validate(doc_path.read_bytes())


@pytest.mark.parametrize(
    ("config", "field"),
    [({"typesize": 0}, "typesize"), ({"clevel": 12}, "clevel"), ({"blocksize": -5}, "blocksize")],
)
def test_a_blosc_configuration_out_of_range_names_its_field(
    config: dict[str, int], field: str
) -> None:
    """typesize 0 was numcodecs' bare ValueError when the image was opened."""
    doc = v3_doc([4, 4], [2, 2])
    doc["codecs"].append({"name": "blosc", "configuration": {"cname": "zstd", **config}})
    with pytest.raises(MetadataError, match=field) as info:
        decode_array_v3(json.dumps(doc))
    assert info.value.path == f"$.codecs[1].configuration.{field}"
