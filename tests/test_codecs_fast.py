"""The faster decoders give what numcodecs gives: blosc frames by c-blosc2 (imagecodecs), for every
compressor, shuffle, level, type size and block size zarr-python can write; gzip and zlib by ISA-L,
for whole, multi-member, padded, damaged and truncated streams (numcodecs' error is ours)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ngio_async.codecs import ChunkCodec
from ngio_async.codecs._stages import (
    NumcodecStage,
    _gunzip,
    _inflate,
    blosc1_streams_sized,
    blosc2_decoder,
)
from ngio_async.meta.zarr import decode_array_v2

if TYPE_CHECKING:
    from collections.abc import Callable

imagecodecs = pytest.importorskip("imagecodecs")

CNAMES = ["blosclz", "lz4", "lz4hc", "zlib", "zstd"]


def test_c_blosc2_is_the_decoder_when_imagecodecs_is_installed() -> None:
    assert blosc2_decoder() is imagecodecs.blosc2_decode


def test_the_environment_keeps_numcodecs() -> None:
    code = "from ngio_async.codecs._stages import blosc2_decoder; print(blosc2_decoder())"
    env = {**os.environ, "NGIO_ASYNC_BLOSC_DECODER": "numcodecs"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "None"


@settings(max_examples=120, deadline=None)
@given(
    cname=st.sampled_from(CNAMES),
    clevel=st.integers(0, 9),
    shuffle=st.sampled_from([-1, 0, 1, 2]),
    dtype=st.sampled_from(["u1", "<u2", "<i4", "<f4", "<f8"]),
    blocksize=st.sampled_from([0, 256, 4096, 65536]),
    n=st.integers(1, 40_000),
    seed=st.integers(0, 2**32 - 1),
)
def test_same_bytes_as_numcodecs(
    cname: str, clevel: int, shuffle: int, dtype: str, blocksize: int, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # smooth data with noise: every shuffle and compressor has something to find
    values = np.cumsum(rng.integers(-3, 4, size=n)).astype(dtype)
    codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=shuffle, blocksize=blocksize)
    frame = codec.encode(values)
    expected = bytes(codec.decode(frame))
    assert blosc1_streams_sized(frame)  # no frame numcodecs writes is kept from c-blosc2
    stage = NumcodecStage(codec)
    assert bytes(stage.decode(frame, len(expected), exact=True)) == expected
    out = np.full(len(expected), 0xAB, np.uint8)
    stage.decode_into(memoryview(frame), out)
    assert out.tobytes() == expected


@pytest.mark.parametrize("typesize", [1, 2, 4])
def test_a_chunk_decodes_straight_into_the_output(typesize: int) -> None:
    """The pipeline's direct path (blosc alone): the chunk lands in ``out``, equal to numcodecs."""
    dtype = {1: "u1", 2: "<u2", 4: "<u4"}[typesize]
    data = (np.arange(64 * 48).reshape(64, 48) % 251).astype(dtype)
    meta = {
        "zarr_format": 2,
        "shape": [64, 48],
        "chunks": [64, 48],
        "dtype": dtype,
        "compressor": {"id": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 2},
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }
    codec = ChunkCodec.from_meta(decode_array_v2(json.dumps(meta).encode()))
    frame = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2).encode(data)
    out = np.zeros((64, 48), dtype)
    got = codec.decode(frame, "0.0", out=out)
    assert got is out
    np.testing.assert_array_equal(out, data)


def test_a_torn_frame_is_an_error_naming_the_chunk_not_zeros() -> None:
    """A frame whose payload was zeroed (a torn write): c-blosc2 alone would read the zero
    stream sizes as blocks of zeros; numcodecs (c-blosc1, which wrote it) fails, and so must we."""
    meta = {
        "zarr_format": 2,
        "shape": [256],
        "chunks": [256],
        "dtype": "<u2",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
        "fill_value": 0,
        "order": "C",
        "filters": None,
    }
    codec = ChunkCodec.from_meta(decode_array_v2(json.dumps(meta).encode()))
    frame = bytearray(numcodecs.Blosc(cname="lz4").encode(np.arange(256, dtype="<u2")))
    frame[20:] = bytes(len(frame) - 20)  # the header says lz4, the payload is zeros
    with pytest.raises(Exception, match="'c/7'") as info:
        codec.decode(bytes(frame), "c/7")
    assert "decode" in str(info.value)
    assert imagecodecs.blosc2_decode(bytes(frame), numthreads=1) == bytes(512)  # what it hides


@pytest.mark.parametrize("cut", [20, 24, 40, 100])
def test_torn_frames_decode_as_numcodecs_does(cut: int) -> None:
    codec = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=2, blocksize=256)
    frame = bytearray(codec.encode(np.arange(2048, dtype="<u2") * 7))
    frame[cut:] = bytes(len(frame) - cut)
    with pytest.raises(RuntimeError):
        codec.decode(bytes(frame))
    assert not blosc1_streams_sized(bytes(frame))
    with pytest.raises(RuntimeError):
        NumcodecStage(codec).decode(bytes(frame), 4096, exact=True)


def _outcome(decode: Callable[[], Any]) -> bytes | None:
    try:
        return bytes(decode())
    except (ValueError, RuntimeError, OSError, EOFError, zlib.error):
        return None  # an error: both must fail


@settings(max_examples=200, deadline=None)
@given(
    raw=st.binary(max_size=3000),
    level=st.integers(0, 9),
    damage=st.sampled_from(["none", "members", "padding", "flip", "truncate", "garbage"]),
    where=st.floats(0, 1, exclude_max=True),
)
def test_gzip_decodes_as_numcodecs(raw: bytes, level: int, damage: str, where: float) -> None:
    frame = bytearray(gzip.compress(raw, level, mtime=0))
    at = int(where * len(frame))
    if damage == "members":
        frame += gzip.compress(raw[::-1], mtime=0)
    elif damage == "padding":
        frame += bytes(1 + at % 7)
    elif damage == "flip":
        frame[at] ^= 0x10
    elif damage == "truncate":
        del frame[at:]
    elif damage == "garbage":
        frame += b"PK"
    expected = _outcome(lambda: numcodecs.GZip().decode(bytes(frame)))
    assert _outcome(lambda: _gunzip(bytes(frame), 1 << 20, False)) == expected


@settings(max_examples=150, deadline=None)
@given(
    raw=st.binary(max_size=3000),
    level=st.integers(0, 9),
    damage=st.sampled_from(["none", "trailing", "flip", "truncate"]),
    where=st.floats(0, 1, exclude_max=True),
)
def test_zlib_decodes_as_numcodecs(raw: bytes, level: int, damage: str, where: float) -> None:
    frame = bytearray(zlib.compress(raw, level))
    at = int(where * len(frame))
    if damage == "trailing":
        frame += b"junk"
    elif damage == "flip":
        frame[at] ^= 0x10
    elif damage == "truncate":
        del frame[at:]
    expected = _outcome(lambda: numcodecs.Zlib().decode(bytes(frame)))
    assert _outcome(lambda: _inflate(bytes(frame), 1 << 20, False)) == expected


@pytest.mark.parametrize("kind", ["gzip", "zlib"])
def test_deflate_bombs_stop_at_the_limit(kind: str) -> None:
    raw = bytes(10_000_000)
    frame = gzip.compress(raw) if kind == "gzip" else zlib.compress(raw)
    decode = _gunzip if kind == "gzip" else _inflate
    with pytest.raises(ValueError, match="refused before decoding it all"):
        decode(frame, 4096, True)


@pytest.mark.parametrize(
    ("cname", "dtype", "shuffle", "by_blosc2"),
    [
        ("zstd", "<u2", 2, True),  # the only frames c-blosc2 decodes faster in a worker thread
        ("zstd", "<f8", 1, True),
        ("zstd", "u1", 1, False),  # type size 1 with shuffle: 1.5x slower in c-blosc2
        ("lz4", "u1", 1, False),  # zarr-python 2's default on uint8: 5x slower in c-blosc2
        ("lz4", "<u2", 1, False),
        ("blosclz", "<u2", 1, False),
        ("zlib", "<u2", 1, False),
    ],
)
def test_which_frames_c_blosc2_decodes(
    cname: str, dtype: str, shuffle: int, by_blosc2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c-blosc2 takes only zstd frames of 2-byte and wider types; the others stay with numcodecs
    (c-blosc2 is as fast or slower there: see ``_FASTER_IN_BLOSC2``). The real c-blosc2 runs,
    counted."""
    from ngio_async.codecs import _stages

    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return imagecodecs.blosc2_decode(*args, **kwargs)

    monkeypatch.setattr(_stages, "_blosc2", [counted])
    data = (np.arange(20_000) % 251).astype(dtype)
    codec = numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle)
    stage = NumcodecStage(codec)
    got = np.frombuffer(bytes(stage.decode(codec.encode(data))), dtype=dtype)
    np.testing.assert_array_equal(got, data)
    assert bool(calls) is by_blosc2
