"""Hostile chunk bytes: decompression bombs, garbage for every codec, broken shard indexes.

Every failure is a :class:`CodecError` naming the chunk key; nothing allocates much more than a
chunk holds, whatever the bytes claim.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import numcodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ngio_async._errors import CodecError
from ngio_async.codecs import ChunkCodec
from ngio_async.codecs._stages import NumcodecStage
from ngio_async.meta.zarr import decode_array_v2, decode_array_v3

BYTES_LE = {"name": "bytes", "configuration": {"endian": "little"}}
SHAPE = (64, 64)  # 8 KiB of uint16 per chunk
BOMB = 64 << 20  # 64 MiB of zeros, a few KiB compressed


def v3(codecs: list[Any], shape: tuple[int, ...] = SHAPE) -> Any:
    doc = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shape)}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": 0,
        "codecs": codecs,
    }
    return ChunkCodec.from_meta(decode_array_v3(json.dumps(doc)))


def v2(compressor: dict[str, Any] | None, filters: list[Any] | None = None) -> Any:
    doc = {
        "zarr_format": 2,
        "shape": list(SHAPE),
        "chunks": list(SHAPE),
        "dtype": "<u2",
        "compressor": compressor,
        "fill_value": 0,
        "order": "C",
        "filters": filters,
    }
    return ChunkCodec.from_meta(decode_array_v2(json.dumps(doc)))


CODECS: dict[str, Any] = {
    "blosc": lambda: v3(
        [
            BYTES_LE,
            {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 1, "shuffle": "shuffle"}},
        ]
    ),
    "zstd": lambda: v3([BYTES_LE, {"name": "zstd", "configuration": {"level": 1}}]),
    "gzip": lambda: v3([BYTES_LE, {"name": "gzip", "configuration": {"level": 1}}]),
    "zstd+crc32c": lambda: v3([BYTES_LE, {"name": "zstd"}, {"name": "crc32c"}]),
    "numcodecs.lz4": lambda: v3([BYTES_LE, {"name": "numcodecs.lz4"}]),
    "v2 zlib": lambda: v2({"id": "zlib", "level": 1}),
    "v2 gzip": lambda: v2({"id": "gzip", "level": 1}),
    "v2 bz2": lambda: v2({"id": "bz2", "level": 1}),
    "v2 lzma": lambda: v2({"id": "lzma"}),
    "v2 lz4": lambda: v2({"id": "lz4"}),
    "v2 blosc": lambda: v2({"id": "blosc", "cname": "zstd"}),
    "v2 zstd": lambda: v2({"id": "zstd"}),
    "v2 delta+zlib": lambda: v2({"id": "zlib"}, [{"id": "delta", "dtype": "<u2"}]),
}
SHARDED = {
    "shard": lambda: v3(
        [
            {
                "name": "sharding_indexed",
                "configuration": {"chunk_shape": [16, 16], "codecs": [BYTES_LE, {"name": "zstd"}]},
            }
        ]
    ),
    "shard, index first, no crc32c": lambda: v3(
        [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [32, 16],
                    "codecs": [BYTES_LE],
                    "index_codecs": [BYTES_LE],
                    "index_location": "start",
                },
            }
        ]
    ),
}


def _bomb(codec: Any, name: str) -> bytes:
    """:data:`BOMB` zero bytes compressed by ``codec``'s pipeline (its stages, as it writes
    them); bz2 and lzma, slow, as 16 concatenated streams of 4 MiB (they decode as one)."""
    if name in ("v2 bz2", "v2 lzma"):
        comp = numcodecs.BZ2(1) if "bz2" in name else numcodecs.LZMA(preset=0)
        return bytes(comp.encode(bytes(BOMB // 16))) * 16
    data: Any = np.zeros(BOMB, np.uint8)
    for stage in codec._stages:
        data = stage.encode(data)
    return bytes(data)


@pytest.mark.parametrize("name", list(CODECS))
def test_decompression_bomb_is_refused_before_it_is_decoded(name: str) -> None:
    codec = CODECS[name]()
    bomb = _bomb(codec, name)
    assert len(bomb) < BOMB // 100
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=r"'c/1/2'.*(states|more bytes)") as info:
            codec.decode(bomb, "c/1/2")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.key == "c/1/2"
    assert peak < 4 << 20, f"{peak} bytes allocated to refuse a {len(bomb)}-byte chunk"


def _unsized(frame: bytes, size: int) -> bytes:
    """A zstd frame of ``size`` decoded bytes without its content size (as a streaming
    compressor writes it), with a window of at least ``size``."""
    fhd = frame[4]
    single = fhd >> 5 & 1
    fcs, did = (single, 2, 4, 8)[fhd >> 6], (0, 1, 2, 4)[fhd & 3]
    window = bytes([max(0, (size - 1).bit_length() - 10) << 3]) if single else frame[5:6]
    head = 5 + (not single)
    return (
        frame[:4]
        + bytes([fhd & 0x07])
        + window
        + frame[head : head + did]
        + frame[head + did + fcs :]
    )


def test_zstd_frame_without_a_stated_size_decodes_no_more_than_the_chunk() -> None:
    codec = CODECS["zstd"]()
    streaming = _unsized(numcodecs.Zstd(level=1).encode(bytes(BOMB)), BOMB)
    assert codec._stages[0].codec.decode(streaming) == bytes(BOMB)  # a valid frame
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match="'c/0/0'"):
            codec.decode(streaming, "c/0/0")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    chunk = np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE)
    streaming = _unsized(numcodecs.Zstd(level=1).encode(chunk.tobytes()), chunk.nbytes)
    np.testing.assert_array_equal(codec.decode(streaming, "c/0/0"), chunk)
    with pytest.raises(CodecError, match="'c/0/0'"):
        codec.decode(streaming[:-20], "c/0/0")


@pytest.mark.parametrize("name", list(CODECS))
def test_bounded_decoding_still_decodes_real_chunks(name: str) -> None:
    codec = CODECS[name]()
    chunk = np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE)
    stored = codec.encode(chunk, "c/0/0")
    np.testing.assert_array_equal(codec.decode(stored, "c/0/0"), chunk)
    out = np.empty(SHAPE, np.uint16)
    np.testing.assert_array_equal(codec.decode(stored, "c/0/0", out=out), chunk)


def test_concatenated_streams_decode_as_the_stdlib_does() -> None:
    """gzip members, bz2 and lzma streams one after another (the stdlib reads them all)."""
    chunk = np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE)
    raw = chunk.tobytes()
    for name, comp in (
        ("v2 gzip", numcodecs.GZip(1)),
        ("v2 bz2", numcodecs.BZ2(1)),
        ("v2 lzma", numcodecs.LZMA()),
    ):
        codec = CODECS[name]()
        two = comp.encode(raw[:3000]) + comp.encode(raw[3000:])
        np.testing.assert_array_equal(codec.decode(two, "k"), chunk)
        with pytest.raises(CodecError, match="'k'"):
            codec.decode(two[:-5], "k")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(CODECS) + sorted(SHARDED)),
    data=st.data(),
)
def test_garbage_is_a_codec_error_naming_the_key(name: str, data: st.DataObject) -> None:
    codec = {**CODECS, **SHARDED}[name]()
    good = codec.encode(np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE), "g")
    kind = data.draw(st.sampled_from(["random", "truncated", "flipped", "appended"]))
    if kind == "random":
        buf = data.draw(st.binary(max_size=400))
    elif kind == "truncated":
        buf = good[: data.draw(st.integers(0, len(good) - 1))]
    elif kind == "flipped":
        b = bytearray(good)
        for i in data.draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=4)):
            b[i] ^= data.draw(st.integers(1, 255))
        buf = bytes(b)
    else:
        buf = good + data.draw(st.binary(min_size=1, max_size=40))
    out = np.zeros(SHAPE, np.uint16) if data.draw(st.booleans()) else None
    try:
        decoded = codec.decode(buf, "c/3/4", out=out)
    except CodecError as exc:
        assert exc.key is not None
        assert exc.key.startswith("c/3/4")  # a shard's inner chunk: c/3/4[0, 1]
        assert f"'{exc.key}'" in str(exc)
    else:  # some damage goes unnoticed without a checksum: the shape and dtype still hold
        assert decoded.shape == SHAPE
        assert decoded.dtype.itemsize == 2


@pytest.mark.parametrize(
    "filters",
    [
        [{"id": "delta", "dtype": "<u2"}],
        [{"id": "fixedscaleoffset", "offset": 0, "scale": 1, "dtype": "<u2", "astype": "<u1"}],
        [{"id": "shuffle", "elementsize": 2}],
        [{"id": "base64"}],  # an output size the pipeline does not know: only a bound
    ],
    ids=["delta", "fixedscaleoffset", "shuffle", "base64"],
)
def test_unsized_zstd_frame_behind_v2_filters_is_bounded(filters: list[Any]) -> None:
    """Filters between zstd and the values: the frame's output size is not the chunk's."""
    codec = v2({"id": "zstd"}, filters)
    bomb = _unsized(numcodecs.Zstd(level=1).encode(bytes(BOMB)), BOMB)
    assert len(bomb) < 64 << 10
    tracemalloc.start()
    try:
        with pytest.raises(CodecError, match=r"'c/5/6'.*zstd") as info:
            codec.decode(bomb, "c/5/6")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.key == "c/5/6"
    assert peak < 4 << 20, f"{peak} bytes allocated to refuse a {len(bomb)}-byte chunk"
    # what these filters encode a chunk to has a known size: the frame must decode to it
    known = filters[0]["id"] != "base64"
    assert ("a chunk decodes to exactly" in str(info.value)) == known
    chunk = np.arange(64 * 64, dtype=np.uint16).reshape(SHAPE) % 200
    stored = codec.encode(chunk, "c/0/0")
    raw = numcodecs.Zstd().decode(stored)
    honest = _unsized(stored, len(raw))
    assert numcodecs.zstd.decompress(honest) == raw  # a valid frame, without its size
    np.testing.assert_array_equal(codec.decode(honest, "c/0/0"), chunk)
    np.testing.assert_array_equal(codec.decode(honest, "c/0/0", out=np.empty(SHAPE, "u2")), chunk)
    with pytest.raises(CodecError, match="'c/0/0'"):
        codec.decode(honest[:-20], "c/0/0")


def test_unsized_zstd_frame_of_unknown_size_decodes_up_to_its_bound() -> None:
    """Behind a numcodecs serializer or unknown filters, only a bound is known."""
    stage = NumcodecStage(numcodecs.Zstd())
    raw = bytes(range(256)) * 40
    honest = _unsized(numcodecs.Zstd(level=1).encode(raw), len(raw))
    assert bytes(stage.decode(honest, 1 << 16)) == raw
    assert bytes(stage.decode(honest, len(raw))) == raw
    bomb = _unsized(numcodecs.Zstd(level=1).encode(bytes(BOMB)), BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="zstd data decodes to more bytes"):
            stage.decode(bomb, 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    with pytest.raises(ValueError, match="at most 65536"):
        stage.decode(honest[:-20], 1 << 16)
