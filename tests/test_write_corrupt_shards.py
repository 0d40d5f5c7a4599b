"""A shard whose index puts an inner chunk past the shard's end: one ``CodecError`` naming the
shard, the chunk's offset and length and the shard's size, on every path (a write's
read-modify-write, a whole-shard read, a ranged read of some inner chunks) and store (local
disk, S3, HTTP). The data is corrupt, the store answered right: never a ``StoreError`` (an
HTTP 416 of the ranged read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import upload

import ngio_async
from ngio_async import CodecError, StoreError
from ngio_async.codecs import ShardCodec
from ngio_async.meta.zarr import decode_array_v3
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

pytestmark = pytest.mark.anyio

KEY = "0/c/0/0"
OFFSET = 10**6
#: what every path says (the inner chunk [0, 0] is 512 bytes: 16x16 uint16, no compressor)
MESSAGE = (
    rf"shard '{KEY}' at \S+ is corrupt: its index puts inner chunk \[0, 0\] at offset {OFFSET}, "
    rf"512 bytes long \(to byte {OFFSET + 512}\), beyond the end of the shard \((\d+) bytes\)"
)


def _corrupt_image(image: Path) -> bytes:
    """A 64x64 image of one shard of 4x4 inner chunks whose chunk [0, 0] points past the
    shard's end; the shard's bytes."""
    with ngio_async.create(
        image, shape=(64, 64), dtype="uint16", chunks=(16, 16), shards=(64, 64), levels=1,
        compressor=None,
    ) as ds:  # fmt: skip
        ds.write(np.arange(64 * 64, dtype="uint16").reshape(64, 64))
    codec = ShardCodec.from_meta(decode_array_v3((image / "0" / "zarr.json").read_bytes()))
    shard = image.joinpath(*KEY.split("/"))
    raw = bytearray(shard.read_bytes())
    where = codec.index_slice(len(raw))
    table = codec.decode_index(bytes(raw[where]), KEY).table.copy()
    table[0, 0, 0] = OFFSET
    raw[where] = codec.encode_index(table)
    shard.write_bytes(bytes(raw))
    return bytes(raw)


async def test_a_partial_write_into_a_corrupt_shard_names_the_bad_range(tmp_path: Path) -> None:
    image = tmp_path / "img.zarr"
    before = _corrupt_image(image)
    async with ngio_async.open_async(image, mode="r+") as ds:
        with pytest.raises(CodecError, match=MESSAGE) as e:
            await ds.write(np.zeros((8, 8), "uint16"), y=slice(0, 8), x=slice(20, 28))
    assert e.value.key == KEY and e.value.args[0].endswith(f"({len(before)} bytes)")
    assert image.joinpath(*KEY.split("/")).read_bytes() == before  # nothing written


@pytest.mark.parametrize(
    "path",
    [
        # a whole-shard read (it said "inner chunk (0, 0) lies past its end")
        "whole",
        # a ranged read of one inner chunk (it gave the store's StoreError: 416 on S3 and HTTP)
        "ranged",
        # tiles of one inner chunk (local disk: read in batches in a worker thread)
        "tiles",
    ],
)
@pytest.mark.parametrize("where", ["file", "s3", "http"])
async def test_reading_a_corrupt_shard_names_the_bad_range(
    tmp_path: Path, s3_server: S3Server, http_server: StaticServer, where: str, path: str
) -> None:
    image = http_server.root / "img.zarr"
    _corrupt_image(image)
    url: Any = image
    options: dict[str, Any] = {}
    if where == "s3":
        url, options = s3_server.fresh_url(), s3_server.options()
        async with open_store(url, **options) as store:
            await upload(image, store)
    elif where == "http":
        url = http_server.url + "img.zarr"
    async with ngio_async.open_async(url, **options) as ds:
        region = (slice(0, 64), slice(0, 64)) if path == "whole" else (slice(0, 16),) * 2
        try:
            if path == "tiles":
                async for _ in ds.tiles(shape=(16, 16)):
                    pass
            else:
                await ds.levels[0].read(region)
        except StoreError as exc:
            raise AssertionError(f"a StoreError for corrupt data: {exc}") from exc
        except CodecError as exc:
            assert exc.key == KEY
            assert exc.args[0].endswith("bytes)")
            with pytest.raises(CodecError, match=MESSAGE):
                raise
        else:
            raise AssertionError("no error")


@pytest.mark.parametrize("where", ["file", "http"])
async def test_an_index_pointing_into_itself_is_refused_not_decoded(
    tmp_path: Path, http_server: StaticServer, where: str
) -> None:
    """An inner chunk whose range lies over the index (at the shard's end): uncompressed, its
    bytes decoded as pixels without a word (as zarr-python reads them)."""
    image = http_server.root / "img.zarr"
    _corrupt_image(image)  # then chunk [0, 0] moved to end with the index
    codec = ShardCodec.from_meta(decode_array_v3((image / "0" / "zarr.json").read_bytes()))
    shard = image.joinpath(*KEY.split("/"))
    raw = bytearray(shard.read_bytes())
    where_index = codec.index_slice(len(raw))
    table = codec.decode_index(bytes(raw[where_index]), KEY).table.copy()
    table[0, 0, 0] = len(raw) - 512  # its last bytes are the index
    raw[where_index] = codec.encode_index(table)
    shard.write_bytes(bytes(raw))
    url: Any = image if where == "file" else http_server.url + "img.zarr"
    async with ngio_async.open_async(url) as ds:
        with pytest.raises(CodecError, match=r"inner chunk \[0, 0\] at bytes .* over the index"):
            await ds.levels[0].read((slice(0, 64), slice(0, 64)))
