"""``meta.zarr.codec_stages``: an array's codecs split around ``sharding_indexed`` (each chunk's
codecs, the codecs its shards are compressed with whole), the one place ``convert``,
``create_like`` and ``labels.create`` read them from.

Two behaviours changed with it (each was a bug): a label image of a zarr v3 image compressed with
a ``numcodecs.<id>`` codec was written uncompressed (its zarr v2 twin gave compressed labels), and
``convert`` of a zarr v2 image compressed with a codec that has no v3 core codec (``lz4``) to
zarr v3 fell back to zstd, where a v3 source's ``numcodecs.lz4`` is kept (and a v3 source's goes
to v2 as ``lz4``).
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pytest
import zarr
from images import Spec, write_image
from test_convert_outer_codecs import write_source
from test_shard_outer_codecs import write_ome, zarr_read
from zarr.codecs.numcodecs import Zstd as NumcodecsZstd

import ngio_async
from ngio_async.images._create_like import _compressor_of as create_name
from ngio_async.images._labels import _compressor_of as label_name
from ngio_async.meta.zarr import (
    ArrayV2Meta,
    ArrayV3Meta,
    BloscCodec,
    BytesCodec,
    BytesConfig,
    CodecStages,
    Crc32cCodec,
    GzipCodec,
    NumcodecsCodec,
    ShardingCodec,
    ShardingConfig,
    TransposeCodec,
    TransposeConfig,
    ZstdCodec,
    ZstdConfig,
    codec_stages,
    decode_array_v2,
    decode_array_v3,
)

if TYPE_CHECKING:
    from pathlib import Path

BYTES: dict[str, Any] = {"name": "bytes", "configuration": {"endian": "little"}}
ZSTD: dict[str, Any] = {"name": "zstd", "configuration": {"level": 3, "checksum": False}}
GZIP: dict[str, Any] = {"name": "gzip", "configuration": {"level": 5}}
CRC: dict[str, Any] = {"name": "crc32c"}
LE = BytesCodec(BytesConfig("little"))


def v3(codecs: list[dict[str, Any]], grid: tuple[int, ...] = (32, 32)) -> ArrayV3Meta:
    return decode_array_v3(
        json.dumps(
            {
                "zarr_format": 3,
                "node_type": "array",
                "shape": [64, 64],
                "data_type": "uint16",
                "chunk_grid": {
                    "name": "regular",
                    "configuration": {"chunk_shape": list(grid)},
                },
                "chunk_key_encoding": {"name": "default"},
                "fill_value": 0,
                "codecs": codecs,
            }
        )
    )


def sharded(inner: list[dict[str, Any]], outer: list[dict[str, Any]]) -> ArrayV3Meta:
    config = {"chunk_shape": [16, 16], "codecs": [BYTES, *inner]}
    return v3([{"name": "sharding_indexed", "configuration": config}, *outer])


def v2(
    compressor: dict[str, Any] | None,
    filters: list[dict[str, Any]] | None = None,
    dtype: str = "<u2",
) -> ArrayV2Meta:
    doc = {"zarr_format": 2, "shape": [64, 64], "chunks": [32, 32], "dtype": dtype}
    doc |= {"compressor": compressor, "fill_value": 0, "filters": filters}
    return decode_array_v2(json.dumps(doc))


# ---------------------------------------------------------------------------- the helper
def test_v3_unsharded_is_one_chunk_stage() -> None:
    assert codec_stages(v3([BYTES, ZSTD, CRC])) == CodecStages(
        chunk=(LE, ZstdCodec(ZstdConfig(level=3)), Crc32cCodec())
    )
    transposed = v3([{"name": "transpose", "configuration": {"order": [1, 0]}}, BYTES])
    assert codec_stages(transposed) == CodecStages(
        chunk=(TransposeCodec(TransposeConfig((1, 0))), LE)
    )


@pytest.mark.parametrize(
    ("inner", "outer", "chunk", "whole"),
    [
        ([ZSTD], [], (LE, ZstdCodec(ZstdConfig(level=3))), ()),  # inner codecs only
        ([], [GZIP, CRC], (LE,), (GzipCodec(), Crc32cCodec())),  # shards compressed whole only
        ([ZSTD], [GZIP], (LE, ZstdCodec(ZstdConfig(level=3))), (GzipCodec(),)),  # both
        ([], [], (LE,), ()),  # neither
    ],
)
def test_v3_sharded_splits_chunk_and_whole_shard_codecs(
    inner: list[dict[str, Any]],
    outer: list[dict[str, Any]],
    chunk: tuple[Any, ...],
    whole: tuple[Any, ...],
) -> None:
    stages = codec_stages(sharded(inner, outer))
    assert stages is not None
    assert stages.chunk == chunk
    assert stages.whole_shard == whole
    assert stages.shard_array == ()


def test_a_sharding_codec_after_array_codecs_keeps_them_apart() -> None:
    """Validation refuses array->array codecs before ``sharding_indexed``; a model built
    directly may hold them: they are neither chunk nor whole-shard codecs."""
    meta = v3([BYTES, ZSTD])
    transpose = TransposeCodec(TransposeConfig((1, 0)))
    sharding = ShardingCodec(ShardingConfig(chunk_shape=(16, 16), codecs=(LE,)))
    odd = msgspec.structs.replace(meta, codecs=(transpose, sharding, GzipCodec()))
    assert codec_stages(odd) == CodecStages(
        chunk=(LE,), whole_shard=(GzipCodec(),), shard_array=(transpose,)
    )
    assert create_name(odd) == "other"


def test_v2_is_one_chunk_stage_of_the_v3_codecs_that_write_it() -> None:
    assert codec_stages(v2(None)) == CodecStages(chunk=(LE,))
    assert codec_stages(v2(None, dtype=">u2")) == CodecStages(
        chunk=(BytesCodec(BytesConfig("big")),)
    )
    assert codec_stages(v2(None, dtype="|u1")) == CodecStages(chunk=(BytesCodec(),))
    zstd = codec_stages(v2({"id": "zstd", "level": 5, "checksum": True}))
    assert zstd == CodecStages(chunk=(LE, ZstdCodec(ZstdConfig(level=5, checksum=True))))
    blosc = codec_stages(v2({"id": "blosc", "cname": "lz4", "clevel": 3, "shuffle": 2}))
    assert blosc is not None
    conf = blosc.chunk[1]
    assert isinstance(conf, BloscCodec)
    assert (conf.configuration.cname, conf.configuration.clevel) == ("lz4", 3)
    assert conf.configuration.shuffle == "bitshuffle"
    auto = codec_stages(v2({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": -1}))
    assert auto is not None and isinstance(auto.chunk[1], BloscCodec)
    # AUTOSHUFFLE and the type size follow the data type, as in v2
    assert auto.chunk[1].configuration.shuffle is msgspec.UNSET
    assert auto.chunk[1].configuration.typesize is msgspec.UNSET


def test_v2_filters_and_other_ids_are_numcodecs_codecs() -> None:
    stages = codec_stages(v2({"id": "lz4", "acceleration": 2}, [{"id": "delta", "dtype": "<u2"}]))
    assert stages is not None
    delta, serializer, lz4 = stages.chunk
    assert serializer == LE
    assert isinstance(delta, NumcodecsCodec) and delta.kind == "array"
    assert type(delta).__struct_config__.tag == "numcodecs.delta"
    assert delta.configuration == {"dtype": "<u2"}
    assert isinstance(lz4, NumcodecsCodec) and type(lz4).__struct_config__.tag == "numcodecs.lz4"
    assert lz4.configuration == {"acceleration": 2}
    assert stages.whole_shard == ()


def test_a_v2_codec_with_no_v3_form_gives_none() -> None:
    # json2 is a numcodecs codec (the v2 metadata is valid) with no ``numcodecs.json2``
    assert codec_stages(v2({"id": "json2"})) is None
    assert create_name(v2({"id": "json2"})) == "other"
    assert label_name(v2({"id": "json2"})) == "zstd"


# ----------------------------------------------------------------- the callers' mappings
@pytest.mark.parametrize(
    ("meta", "create", "label"),
    [
        (v3([BYTES]), None, None),
        (v3([BYTES, ZSTD]), "zstd", "zstd"),
        (v3([BYTES, ZSTD, CRC]), "other", "zstd"),
        (sharded([], [GZIP, CRC]), "gzip", "gzip"),
        (sharded([ZSTD], [GZIP]), "zstd", "zstd"),
        (v2({"id": "zstd", "level": 1}), "zstd", "zstd"),
        (
            v2({"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1}),
            "blosc-zstd",
            "blosc-zstd",
        ),
        # blosc-lz4: no create name writes it (the default applies); the closest for labels
        (v2({"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1}), "other", "blosc-zstd"),
        (v2({"id": "zlib", "level": 1}), "other", "zstd"),
        (v2({"id": "gzip", "level": 1}, [{"id": "delta", "dtype": "<u2"}]), "other", "gzip"),
        (v2(None), None, None),
        (v3([BYTES, {"name": "numcodecs.zstd", "configuration": {"level": 1}}]), "other", "zstd"),
        (v3([BYTES, {"name": "numcodecs.blosc", "configuration": {}}]), "other", "blosc-zstd"),
        (v3([BYTES, {"name": "numcodecs.crc32", "configuration": {}}]), "other", None),
    ],
)
def test_each_caller_maps_the_stages_to_its_own_name(meta: Any, create: Any, label: Any) -> None:
    assert create_name(meta) == create
    assert label_name(meta) == label


# ------------------------------------------------------------ behaviours that changed


def _write_numcodecs_zstd_image(root: Path) -> np.ndarray[Any, Any]:
    """A one-level OME-Zarr 0.5 image (c, y, x) written by zarr-python, compressed with
    ``numcodecs.zstd``."""
    group = zarr.open_group(root, mode="w", zarr_format=3)
    data = np.random.default_rng(5).integers(0, 50, (2, 64, 96), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Numcodecs codecs are not in the Zarr version 3")
        arr = zarr.create_array(
            store=root, name="0", shape=data.shape, chunks=(1, 32, 32), dtype="uint16",
            compressors=NumcodecsZstd(level=1), fill_value=0, dimension_names=["c", "y", "x"],
        )  # fmt: skip
        arr[...] = data
    write_ome(group)
    return data


@pytest.mark.anyio
async def test_labels_of_a_numcodecs_compressed_v3_image_are_compressed(tmp_path: Path) -> None:
    """Before: ``labels.create`` found no ``zstd``/``gzip``/``blosc`` codec and wrote the
    labels uncompressed."""
    root = tmp_path / "img.zarr"
    _write_numcodecs_zstd_image(root)
    labels = np.arange(64 * 96, dtype=np.uint32).reshape(64, 96)
    async with ngio_async.open_async(root, mode="r+") as ds:
        cells = await ds.labels.create("cells", dtype="uint32")
        await cells.write(labels)
    doc = json.loads((root / "labels" / "cells" / "0" / "zarr.json").read_bytes())
    names = [c["name"] for c in doc["codecs"]]
    if names[0] == "sharding_indexed":
        names = [c["name"] for c in doc["codecs"][0]["configuration"]["codecs"]]
    assert "zstd" in names
    np.testing.assert_array_equal(zarr_read(root / "labels" / "cells" / "0"), labels)


@pytest.mark.anyio
async def test_convert_of_a_v2_lz4_image_to_v3_keeps_lz4(tmp_path: Path) -> None:
    """Before: a v2 compressor with no v3 core codec was replaced by zstd (a v3 source's
    ``numcodecs.lz4`` was kept, and went to v2 as ``lz4``)."""
    spec = Spec(version="0.4", shape=(2, 64, 64), compressor="lz4", levels=1)
    data = write_image(tmp_path / "src.zarr", spec)[0]
    await ngio_async.convert(
        tmp_path / "src.zarr", tmp_path / "dst.zarr", ngff_version="0.5", shards=False
    )
    doc = json.loads((tmp_path / "dst.zarr" / "0" / "zarr.json").read_bytes())
    assert [c["name"] for c in doc["codecs"]] == ["bytes", "numcodecs.lz4"]
    np.testing.assert_array_equal(zarr_read(tmp_path / "dst.zarr" / "0"), data)
    async with ngio_async.open_async(tmp_path / "dst.zarr") as back:
        np.testing.assert_array_equal(await back.read(), data)


@pytest.mark.anyio
async def test_convert_of_a_v2_blosc_image_writes_its_settings_out(tmp_path: Path) -> None:
    """As before the helper: blosc's type size and shuffle follow the data type."""
    spec = Spec(version="0.4", shape=(2, 64, 64), compressor="blosc", levels=1)
    data = write_image(tmp_path / "src.zarr", spec)[0]
    await ngio_async.convert(
        tmp_path / "src.zarr", tmp_path / "dst.zarr", ngff_version="0.5", shards=False
    )
    doc = json.loads((tmp_path / "dst.zarr" / "0" / "zarr.json").read_bytes())
    blosc = doc["codecs"][1]
    assert blosc["name"] == "blosc"
    assert blosc["configuration"] == {
        "cname": "lz4", "clevel": 3, "shuffle": "shuffle", "typesize": 2, "blocksize": 0
    }  # fmt: skip
    np.testing.assert_array_equal(zarr_read(tmp_path / "dst.zarr" / "0"), data)


def test_the_outer_codec_sources_split_as_zarr_python_wrote_them(tmp_path: Path) -> None:
    """The helper on what zarr-python writes for ``serializer=sharding`` + ``compressors=``."""
    write_source(tmp_path / "src.zarr", "outer-gzip")
    raw = (tmp_path / "src.zarr" / "0" / "zarr.json").read_bytes()
    stages = codec_stages(decode_array_v3(raw))
    assert stages is not None
    assert [type(c) for c in stages.chunk] == [BytesCodec]
    assert any(isinstance(c, GzipCodec) for c in stages.whole_shard)
