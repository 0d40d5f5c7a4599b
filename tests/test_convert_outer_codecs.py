"""``convert`` with ``compressor=None`` keeps the compression of a source whose shards are
compressed whole (bytes->bytes codecs after ``sharding_indexed``; zarr-python's ``compressors=``
beside a sharding serializer).

A sharded destination keeps the codecs after ``sharding_indexed`` and the inner chunks' codecs,
settings included (a source's own shard shape, or another one). A destination without shards
(zarr v3 ``shards=False``, zarr v2) has no whole-shard stage: its chunks take the source's inner
compressor if it has one, else the whole-shard codecs (before: the whole-shard stage was dropped,
and with it the inner settings: ``zstd(level=1)`` became ``zstd(level=0)``, an image whose shards
only were compressed came out uncompressed; so did a numcodecs compressor in zarr v2). An explicit
``compressor=`` still wins. The sources are written by zarr-python, and zarr-python reads every
destination.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from cli_run import run
from test_shard_outer_codecs import write_ome, zarr_read

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

SHAPE = (2, 64, 96)
SHARDS = (1, 32, 32)
CHUNKS = (1, 16, 16)

BYTES: dict[str, Any] = {"name": "bytes", "configuration": {"endian": "little"}}
CRC32C: dict[str, Any] = {"name": "crc32c"}
INDEX = [BYTES, CRC32C]


def zstd(level: int) -> dict[str, Any]:
    return {"name": "zstd", "configuration": {"level": level, "checksum": False}}


GZIP1: dict[str, Any] = {"name": "gzip", "configuration": {"level": 1}}
ZLIB2: dict[str, Any] = {"name": "numcodecs.zlib", "configuration": {"level": 2}}
BLOSC: dict[str, Any] = {
    "name": "blosc",
    "configuration": {
        "typesize": 2, "cname": "lz4", "clevel": 3, "shuffle": "bitshuffle", "blocksize": 0
    },
}  # fmt: skip

#: variant: (inner chunk codecs after ``bytes``, codecs after ``sharding_indexed``), as
#: zarr-python writes them (and is given them)
VARIANTS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "both": ([zstd(1)], [zstd(3)]),
    "outer-gzip": ([], [GZIP1, CRC32C]),
    "outer-blosc": ([CRC32C], [BLOSC]),
    "outer-zlib": ([], [ZLIB2]),  # a numcodecs one
    "inner": ([zstd(4)], []),
}

#: the chunk compressor of a destination without shards (zarr v3, zarr v2)
UNSHARDED: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {
    "both": ([zstd(1)], {"id": "zstd", "level": 1}),
    "outer-gzip": ([GZIP1, CRC32C], {"id": "gzip", "level": 1}),  # v2: no checksum
    "outer-blosc": (
        [CRC32C, BLOSC],  # the inner checksum, then the whole-shard compressor
        {"id": "blosc", "cname": "lz4", "clevel": 3, "shuffle": 2, "blocksize": 0},
    ),
    "outer-zlib": ([ZLIB2], {"id": "zlib", "level": 2}),
    "inner": ([zstd(4)], {"id": "zstd", "level": 4}),
}


def write_source(root: Path, variant: str) -> np.ndarray[Any, Any]:
    """A one-level OME-Zarr 0.5 image written by zarr-python with ``variant``'s codecs; its data."""
    inner, outer = VARIANTS[variant]
    group = zarr.open_group(root, mode="w", zarr_format=3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Combining a `sharding_indexed` codec")
        warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr version 3")
        arr = zarr.create_array(
            store=root, name="0", shape=SHAPE, chunks=SHARDS, dtype="uint16",
            serializer=zc.ShardingCodec(chunk_shape=CHUNKS, codecs=[BYTES, *inner]),
            compressors=outer or None, fill_value=0, dimension_names=["c", "y", "x"],
        )  # fmt: skip
        data = np.random.default_rng(3).integers(1, 600, SHAPE, dtype=np.uint16)
        data[:, 32:, 64:] = 0  # shards of fill value only: not stored
        arr[...] = data
    write_ome(group)
    return data


def codecs_v3(path: Path) -> list[dict[str, Any]]:
    codecs: list[dict[str, Any]] = json.loads((path / "zarr.json").read_bytes())["codecs"]
    return codecs


def sharding(chunks: list[int], inner: list[dict[str, Any]]) -> dict[str, Any]:
    config = {"chunk_shape": chunks, "codecs": [BYTES, *inner], "index_codecs": INDEX}
    return {"name": "sharding_indexed", "configuration": config | {"index_location": "end"}}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray[Any, Any]]]:  # fmt: skip
    root = tmp_path_factory.mktemp("sources")
    return {v: (root / v, write_source(root / v, v)) for v in VARIANTS}


def test_the_sources_are_as_zarr_python_writes_them(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]],
) -> None:
    for variant, (root, data) in sources.items():
        inner, outer = VARIANTS[variant]
        assert codecs_v3(root / "0") == [sharding(list(CHUNKS), inner), *outer], variant
        np.testing.assert_array_equal(zarr_read(root / "0"), data)


async def _same_values(dst: Path, data: np.ndarray[Any, Any]) -> None:
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), data)
    np.testing.assert_array_equal(zarr_read(dst / "0"), data)


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_a_sharded_destination_keeps_both_stages(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path, variant: str
) -> None:
    src, data = sources[variant]
    inner, outer = VARIANTS[variant]
    dst = tmp_path / "same.ome.zarr"
    await ngio_async.convert(src, dst)  # the source's shards and chunks
    assert codecs_v3(dst / "0") == [sharding(list(CHUNKS), inner), *outer]
    await _same_values(dst, data)
    other = tmp_path / "resharded.ome.zarr"
    await ngio_async.convert(src, other, chunks=(1, 8, 32), shards=(1, 64, 64))
    assert json.loads((other / "0" / "zarr.json").read_bytes())["chunk_grid"] == {
        "name": "regular",
        "configuration": {"chunk_shape": [1, 64, 64]},
    }
    assert codecs_v3(other / "0") == [sharding([1, 8, 32], inner), *outer]
    await _same_values(other, data)


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_an_unsharded_v3_destination_compresses_its_chunks(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path, variant: str
) -> None:
    src, data = sources[variant]
    dst = tmp_path / "plain.ome.zarr"
    await ngio_async.convert(src, dst, shards=False)
    assert codecs_v3(dst / "0") == [BYTES, *UNSHARDED[variant][0]]
    await _same_values(dst, data)


@pytest.mark.parametrize("variant", list(VARIANTS))
async def test_a_v2_destination_compresses_its_chunks(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path, variant: str
) -> None:
    src, data = sources[variant]
    dst = tmp_path / "v2.ome.zarr"
    await ngio_async.convert(src, dst, ngff_version="0.4")
    zarray = json.loads((dst / "0" / ".zarray").read_bytes())
    assert zarray["compressor"] == UNSHARDED[variant][1]
    assert zarray["filters"] is None
    await _same_values(dst, data)


async def test_an_explicit_compressor_wins(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path
) -> None:
    src, data = sources["both"]
    gzip = tmp_path / "gzip.ome.zarr"
    await ngio_async.convert(src, gzip, compressor="gzip")
    assert codecs_v3(gzip / "0") == [sharding(list(CHUNKS), [{"name": "gzip", "configuration": {"level": 5}}])]  # fmt: skip
    await _same_values(gzip, data)
    plain = tmp_path / "none.ome.zarr"
    await ngio_async.convert(src, plain, compressor=False)
    assert codecs_v3(plain / "0") == [sharding(list(CHUNKS), [])]
    await _same_values(plain, data)


async def test_a_built_level_keeps_them_too(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]], tmp_path: Path
) -> None:
    src, data = sources["outer-gzip"]
    dst = tmp_path / "two.ome.zarr"
    await ngio_async.convert(src, dst, levels=2)
    assert codecs_v3(dst / "1") == codecs_v3(dst / "0") == [sharding(list(CHUNKS), []), GZIP1, CRC32C]  # fmt: skip
    async with ngio_async.open_async(dst) as ds:
        low = await ds.read(level=1)
        assert low.shape == (2, 32, 48)
    np.testing.assert_array_equal(zarr_read(dst / "1"), low)
    await _same_values(dst, data)


def test_the_cli_keeps_them(
    sources: dict[str, tuple[Path, np.ndarray[Any, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, data = sources["outer-gzip"]
    dst = tmp_path / "cli.ome.zarr"
    code, out, err = run(["convert", str(src), str(dst), "--shards", "none"], capsys)
    assert code == 0, out + err
    assert codecs_v3(dst / "0") == [BYTES, GZIP1, CRC32C]  # was [bytes]: uncompressed
    np.testing.assert_array_equal(zarr_read(dst / "0"), data)
