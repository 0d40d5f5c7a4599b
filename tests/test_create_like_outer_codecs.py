"""``create_like`` and ``labels.create`` over an image whose shards are compressed whole.

Both copy the source's compressor (its name: ``create`` writes ``[bytes, compressor]``). A
source whose inner chunks are not compressed but whose shards are (codecs after
``sharding_indexed``) had its compression lost: ``create_like`` fell back to the default,
``labels.create`` wrote uncompressed labels. Now the new chunks take the shards' compressor.
The sources are written by zarr-python (``test_convert_outer_codecs.write_source``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_convert_outer_codecs import write_source

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

#: source variant -> the compressor its copies' chunks get: (create_like, labels.create)
EXPECTED = {
    "outer-gzip": ("gzip", "gzip"),  # inner chunks plain, shards gzip (+ crc32c)
    "both": ("zstd", "zstd"),  # inner zstd: as before
    "inner": ("zstd", "zstd"),
    "outer-blosc": ("zstd", "blosc"),  # blosc-lz4 is no create compressor: the default zstd
}


def _inner_compressors(path: Path) -> list[str]:
    """The names of the bytes->bytes codecs of the (inner) chunks of the array at ``path``."""
    codecs: list[dict[str, Any]] = json.loads((path / "zarr.json").read_bytes())["codecs"]
    if codecs[0]["name"] == "sharding_indexed":
        codecs = codecs[0]["configuration"]["codecs"]
    return [c["name"] for c in codecs if c["name"] not in ("bytes", "crc32c")]


@pytest.mark.parametrize("variant", sorted(EXPECTED))
async def test_copies_keep_the_compression_of_shards_compressed_whole(
    tmp_path: Path, variant: str
) -> None:
    src_path = tmp_path / "src.zarr"
    data = write_source(src_path, variant)
    like, label = EXPECTED[variant]
    async with (
        ngio_async.open_async(src_path) as src,
        ngio_async.create_like_async(src, tmp_path / "like.zarr") as like_ds,
    ):
        await like_ds.write(data)
    assert _inner_compressors(tmp_path / "like.zarr" / "0") == [like]
    async with ngio_async.open_async(tmp_path / "like.zarr") as back:
        np.testing.assert_array_equal(await back.read(), data)
    async with ngio_async.open_async(src_path, mode="r+") as ds:
        cells = await ds.labels.create("cells", dtype="uint32")
        await cells.write(np.arange(64 * 96, dtype="uint32").reshape(64, 96))
    assert _inner_compressors(src_path / "labels" / "cells" / "0") == [label]
    async with ngio_async.open_async(src_path / "labels" / "cells") as lab:
        np.testing.assert_array_equal(
            await lab.read(), np.arange(64 * 96, dtype="uint32").reshape(64, 96)
        )
