"""Shard layouts other writers produce, read as zarr-python reads them.

zarr-python stores a shard's inner chunks in C order, back to back. The format allows any
layout: tensorstore and other writers may store the chunks in another order, leave gaps, or
point two index entries at the same bytes (identical chunks stored once). Every read path
(whole shard, some inner chunks, coalesced ranges over HTTP, tiles) must honour the index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest
import zarr
import zarr.codecs as zc
from servers import StaticServer

import ngio_async
from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from numpy.typing import NDArray

SHAPE = (4, 8)
INNER = (2, 2)
MISSING = (1, 3)  # this inner chunk is absent: it reads as the fill value
FILL = 9


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    srv = StaticServer(tmp_path_factory.mktemp("layouts")).start()
    try:
        yield srv
    finally:
        srv.stop()


def write_shuffled_shard(root: Path, location: str) -> NDArray[Any]:
    """One shard whose inner chunks are stored in reverse order with junk between them,
    chunk (0, 1) sharing the bytes of chunk (1, 2); return what zarr-python reads."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, SHAPE, dtype=np.uint16)
    data[0:2, 2:4] = data[2:4, 4:6]  # chunk (0, 1) == chunk (1, 2)
    sharding = zc.ShardingCodec(
        chunk_shape=INNER,
        codecs=[zc.BytesCodec(), zc.ZstdCodec(level=1)],
        index_codecs=[zc.BytesCodec(), zc.Crc32cCodec()],
        index_location=location,
    )
    arr = zarr.create_array(
        store=root,
        name="0",
        shape=SHAPE,
        chunks=SHAPE,
        dtype="uint16",
        fill_value=FILL,
        serializer=sharding,
        compressors=None,
        zarr_format=3,
        dimension_names=["y", "x"],
    )
    zstd = numcodecs.Zstd(level=1)
    grid = (SHAPE[0] // INNER[0], SHAPE[1] // INNER[1])
    index = np.full((*grid, 2), 2**64 - 1, dtype="<u8")
    header = 8 * 2 * grid[0] * grid[1] + 4  # the index and its crc32c
    offset = header if location == "start" else 0
    body = b""
    for i, j in sorted(np.ndindex(grid), reverse=True):
        if (i, j) in (MISSING, (0, 1)):
            continue
        chunk = np.ascontiguousarray(data[i * 2 : i * 2 + 2, j * 2 : j * 2 + 2])
        encoded = zstd.encode(chunk.tobytes())
        body += encoded + b"junk"
        index[i, j] = (offset, len(encoded))
        offset += len(encoded) + 4
    index[0, 1] = index[1, 2]
    raw = index.tobytes()
    raw += bytes(numcodecs.CRC32C().encode(raw))[-4:]
    shard = raw + body if location == "start" else body + raw
    key = root / "0" / "c" / "0" / "0"
    key.parent.mkdir(parents=True)
    key.write_bytes(shard)
    multiscale = Multiscale(
        axes=[Axis(name=a, type="space") for a in "yx"],
        datasets=[Dataset(path="0", coordinate_transformations=[Scale(scale=[1.0, 1.0])])],
    )
    zarr.open_group(root, mode="a", zarr_format=3).attrs.update(
        to_attrs(OmeMetadata(version="0.5", multiscales=[multiscale]), "0.5")
    )
    want: NDArray[Any] = np.asarray(arr[...])
    expected = data.copy()
    expected[2:4, 6:8] = FILL
    np.testing.assert_array_equal(want, expected)  # zarr-python honours the layout
    return want


SELECTIONS: list[Any] = [
    ...,
    (slice(0, 3), slice(1, 7)),
    (slice(0, 2), slice(2, 6)),  # the two chunks sharing their bytes
    (slice(None), slice(None, None, -3)),
    (0, slice(2, 4)),
    (slice(2, 4), slice(6, 8)),  # the missing chunk alone
]


@pytest.mark.parametrize("location", ["start", "end"])
@pytest.mark.parametrize("remote", [False, True], ids=["local", "http"])
@pytest.mark.parametrize("gap", [1, 1 << 16], ids=["no-coalescing", "coalesced"])
def test_shards_in_any_layout_read_as_zarr_python(
    server: StaticServer, location: str, remote: bool, gap: int
) -> None:
    name = f"{location}-{remote}-{gap}.ome.zarr"
    want = write_shuffled_shard(server.root / name, location)
    where = f"{server.url}{name}" if remote else server.root / name
    with ngio_async.open(where, limits=ngio_async.Limits(coalesce_gap=gap)) as ds:
        for selection in SELECTIONS:
            np.testing.assert_array_equal(ds[selection], want[selection])
        for shape in [(1, 3), (2, 2), (4, 8)]:
            for tile in ds.tiles(shape=shape, ordered=False):
                np.testing.assert_array_equal(tile.data, want[tile.region])
