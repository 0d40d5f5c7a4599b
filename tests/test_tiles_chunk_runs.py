"""Remote unsharded tile streams with more tiles to a chunk than a batch of four: runs.

A chunk several planes deep read plane by plane (the default tile of an image chunked over z,
as ome-zarr-py chunks small stacks), or tiles much smaller than the chunk, were fetched and
decoded once per tile: 16 times over for chunks 16 planes deep. Such tiles are now read in runs
(the tiles of one chunk, or in grid order of one row of chunks), each chunk fetched and decoded
once per run. Counted on a real HTTP server and on moto S3; the tiles equal the image and cover
it once; a failing chunk gives the tiles before it, then its error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, upload, write_image
from served import count_decodes, served_image
from test_tiles_together import _per_path

import ngio_async
from ngio_async import PermissionDeniedError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

pytestmark = pytest.mark.anyio

# z chunks 4 planes deep; 2 x 2 x 2 x 2 = 16 chunks (c, z, y, x)
DEEP = Spec(version="0.5", shape=(2, 8, 32, 32), chunks=(1, 4, 16, 16), levels=1)


def _chunk_gets(server: StaticServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "GET" and "/0/c/" in r.path]


def _check(tiles: list[Any], data: np.ndarray[Any, Any]) -> None:
    """Each tile equals the data; together their cores cover the image once."""
    seen = np.zeros(data.shape, dtype=int)
    for t in tiles:
        np.testing.assert_array_equal(t.data, data[t.region])
        seen[t.core] += 1
    assert (seen == 1).all()


@pytest.fixture
def deep(tmp_path: Path) -> Any:
    with served_image(tmp_path, DEEP) as both:
        yield both


async def test_plane_tiles_of_deep_chunks_fetch_each_chunk_once(
    deep: tuple[StaticServer, np.ndarray[Any, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default tiles (one plane of one chunk), unordered: 64 tiles, 16 GETs and 16 decodes
    (was 64 of each)."""
    server, data = deep
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        tiles = [t async for t in ds.tiles(ordered=False)]
    assert len(tiles) == 64 and tiles[0].data.shape == (1, 1, 16, 16)
    _check(tiles, data)
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 16
    assert len(decoded) == len(set(decoded)) == 16


@pytest.mark.parametrize("ordered", [True, False])
async def test_small_tiles_fetch_each_chunk_once(tmp_path: Path, ordered: bool) -> None:
    """4 x 4 tiles of 16 x 16 chunks (16 tiles a chunk): one GET per chunk in either order
    (was one per tile, or per batch of four), grid order kept when ordered."""
    spec = Spec(version="0.5", shape=(1, 32, 48), chunks=(1, 16, 16), levels=1)
    with served_image(tmp_path, spec) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.reset()
            tiles = [t async for t in ds.tiles(shape=(4, 4), ordered=ordered)]
    assert len(tiles) == 96
    _check(tiles, data)
    if ordered:
        assert [t.index for t in tiles] == sorted(t.index for t in tiles)
    gets = _chunk_gets(server)
    assert len(gets) == len(set(gets)) == 6


async def test_halo_tiles_in_runs_equal_the_image(
    deep: tuple[StaticServer, np.ndarray[Any, Any]],
) -> None:
    """Halos reach into neighbour chunks: runs of rows of chunks, every chunk of a run once."""
    server, data = deep
    async with ngio_async.open_async(server.url + "img.zarr") as ds:
        server.reset()
        tiles = [t async for t in ds.tiles(shape=(8, 8), overlap=3, ordered=False)]
    assert len(tiles) == 2 * 8 * 16
    _check(tiles, data)
    assert all(t.core_data.shape == (1, 1, 8, 8) for t in tiles)


@pytest.mark.parametrize("ordered", [False, True])
async def test_missing_chunks_read_as_fill_in_runs(tmp_path: Path, ordered: bool) -> None:
    """Missing chunks read as the fill value, each asked for once: in grid order a missing
    chunk is kept (as the fill value) for its later planes too."""
    spec = Spec(
        version="0.5", shape=(1, 8, 32, 32), chunks=(1, 4, 16, 16), levels=1, fill_value=7,
        written=(slice(None), slice(0, 4), slice(0, 16), slice(None)),
    )  # fmt: skip
    with served_image(tmp_path, spec) as (server, data):
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            server.reset()
            tiles = [t async for t in ds.tiles(ordered=ordered)]
    _check(tiles, data)
    assert (data[:, 4:] == 7).all()
    gets = _chunk_gets(server)
    assert len(set(gets)) == 8
    # each chunk asked once; the store asks its first miss again (of aiohttp: obstore's client
    # takes a 405 for a miss too), once
    repeated = [g for g in set(gets) if gets.count(g) > 1]
    written = {"/img.zarr/0/c/0/0/0/0", "/img.zarr/0/c/0/0/0/1"}  # z 0:4, y 0:16
    if ordered:  # (in grid order no miss was seen asked twice)
        assert len(gets) == 8
    else:
        assert len(gets) == 9 and len(repeated) == 1 and repeated[0] not in written


async def test_a_denied_chunk_fails_after_the_tiles_before_it(tmp_path: Path) -> None:
    """In grid order, a 403 on one chunk: every tile before its first tile, then
    ``PermissionDeniedError`` naming the chunk (the run falls back to one tile at a time)."""
    spec = Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1)
    data = write_image(tmp_path / "img.zarr", spec)[0]
    server = _per_path(tmp_path)
    try:
        server.denied.add("/img.zarr/0/c/0/1/0")  # chunk (y=1, x=0): tile rows 4-7
        async with ngio_async.open_async(server.url + "img.zarr") as ds:
            got: list[Any] = []

            async def collect() -> None:
                async for tile in ds.tiles(shape=(4, 4)):
                    got.append(tile)  # noqa: PERF401 - the tiles before the error are kept

            with pytest.raises(PermissionDeniedError, match=r"0/c/0/1/0"):
                await collect()
            assert ds.store.limiter.borrowed_tokens == 0
        assert [t.index[1:] for t in got] == [(y, x) for y in range(4) for x in range(8)]
        for t in got:
            np.testing.assert_array_equal(t.data, data[t.region])
    finally:
        server.stop()


async def test_s3_plane_tiles_of_deep_chunks_equal_the_image(
    s3_server: S3Server, tmp_path: Path
) -> None:
    data = write_image(tmp_path / "img.zarr", DEEP)[0]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(tmp_path / "img.zarr", store)
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        for ordered in (True, False):
            stream = ds.tiles(ordered=ordered)
            tiles = [t async for t in stream]
            if ordered:  # each chunk read once, its other 3 planes' tiles from the chunk cache
                assert stream.chunk_cache is not None and stream.chunk_cache.hits == 48
            assert len(tiles) == 64
            _check(tiles, data)


# ------------------------------------------------------------------------------ local disk
@pytest.mark.parametrize(("spec", "shape", "ordered", "chunks"), [
    (DEEP, None, False, 16),  # plane tiles of chunks 4 planes deep, chunk by chunk
    (Spec(version="0.4", shape=(1, 32, 48), chunks=(1, 16, 16), levels=1), (4, 4), True, 6),
    (Spec(version="0.5", shape=(1, 32, 48), chunks=(1, 16, 16), levels=1), (4, 4), False, 6),
])  # fmt: skip
async def test_local_runs_read_and_decode_each_chunk_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: Spec,
    shape: tuple[int, int] | None,
    ordered: bool,
    chunks: int,
) -> None:
    """On a local disk too (was: each tile read and decoded its chunk: 1024 opens of 16
    files for 64x64 tiles of 512x512 chunks)."""
    data = write_image(tmp_path / "img.zarr", spec)[0]
    decoded = count_decodes(monkeypatch)
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        tiles = [t async for t in ds.tiles(shape=shape, ordered=ordered)]
    _check(tiles, data)
    if ordered:
        assert [t.index for t in tiles] == sorted(t.index for t in tiles)
    assert len(decoded) == len(set(decoded)) == chunks


async def test_a_local_corrupt_chunk_fails_after_the_tiles_before_it(tmp_path: Path) -> None:
    spec = Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1)
    data = write_image(tmp_path / "img.zarr", spec)[0]
    (tmp_path / "img.zarr" / "0" / "c" / "0" / "1" / "0").write_bytes(b"not a chunk")
    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        got: list[Any] = []

        async def collect() -> None:
            async for tile in ds.tiles(shape=(4, 4)):
                got.append(tile)  # noqa: PERF401 - the tiles before the error are kept

        with pytest.raises(ngio_async.CodecError, match=r"0/c/0/1/0"):
            await collect()
    assert [t.index[1:] for t in got] == [(y, x) for y in range(4) for x in range(8)]
    for t in got:
        np.testing.assert_array_equal(t.data, data[t.region])
