"""A shard replaced while it is read: a read returns one version's pixels, never a mix.

Reads of part of a shard fetch its index, then the inner chunks' byte ranges. The chunk reads
are conditional on the index answer's ETag (``If-Match``); a shard rewritten in between is
seen (``412``, or another ETag) and its index is read again. The servers here replace the
shard with a version whose chunks are stored in another order, so the old index points at
the wrong chunks of the new shard.
"""

from __future__ import annotations

import os
import struct
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import crc32c
import numpy as np
import pytest
from servers import StaticServer

import ngio_async
from ngio_async.stores import (
    ChangedError,
    InstrumentedStore,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from aiohttp import web
    from servers import AzuriteServer, Faults, S3Server

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

SHARD = "img.zarr/0/c/0/0"  # the one shard of the test image (4 inner chunks of 16x16)
A = np.arange(32 * 32, dtype="uint16").reshape(32, 32)
B = A + 5000  # the other version's pixels


def _reversed_layout(shard: bytes, n: int = 4) -> bytes:
    """The same shard with its inner chunks stored in reverse order (a new index)."""
    body, index = shard[: -(n * 16 + 4)], shard[-(n * 16 + 4) :]
    entries = [struct.unpack("<QQ", index[i * 16 : (i + 1) * 16]) for i in range(n)]
    pieces = [body[o : o + length] for o, length in entries]
    out, new = b"", [(0, 0)] * n
    for i in reversed(range(n)):
        new[i] = (len(out), len(pieces[i]))
        out += pieces[i]
    table = b"".join(struct.pack("<QQ", *e) for e in new)
    return out + table + struct.pack("<I", crc32c.crc32c(table))


@dataclass
class Versions:
    """The test image (version A) under ``root``, and version B's shard bytes."""

    root: Path
    a: bytes
    b: bytes


@pytest.fixture
def versions(tmp_path: Path) -> Versions:
    return write_versions(tmp_path)


def write_versions(tmp_path: Path) -> Versions:
    """Version A of the image under ``tmp_path / "a"``, and both versions' shard bytes (B's
    inner chunks stored in reverse order: A's index points at the wrong ones)."""
    for name, data in (("a", A), ("b", B)):
        url = str(tmp_path / name / "img.zarr")
        with ngio_async.create(
            url, shape=data.shape, dtype=data.dtype, chunks=(16, 16), shards=(32, 32),
            levels=1, compressor=None,
        ) as ds:  # fmt: skip
            ds[...] = data
    a = (tmp_path / "a" / SHARD).read_bytes()
    b = _reversed_layout((tmp_path / "b" / SHARD).read_bytes())
    assert a[-68:] != b[-68:]  # another index: A's points at other chunks of B
    return Versions(tmp_path / "a", a, b)


class SwappingServer(StaticServer):
    """A static server that replaces one file just before its ``swap_at``-th GET (and
    alternately every GET after that when ``swap_every``), and answers ``If-Match``."""

    swap_path = "/" + SHARD
    swap_at = 0
    swap_every = False
    honour_if_match = True
    weak_etags = False
    delete = False  # delete the file instead of replacing it
    versions: tuple[bytes, bytes] = (b"", b"")
    gets = 0
    if_match: list[str | None]

    def _etag(self, file: Path) -> str:
        stat = file.stat()
        return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'  # as StaticServer sends it

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        from aiohttp import web

        file = self.root / path.lstrip("/")
        if request.method == "GET" and path == self.swap_path:
            self.gets += 1
            self.if_match.append(request.headers.get("If-Match"))
            if self.swap_at and (
                self.gets == self.swap_at or (self.swap_every and self.gets > self.swap_at)
            ):
                mtime = file.stat().st_mtime_ns + 10**9  # another ETag, whatever the clock
                file.write_bytes(self.versions[(self.gets - self.swap_at + 1) % 2])
                os.utime(file, ns=(mtime, mtime))
                if self.delete:
                    file.unlink()
        wanted = request.headers.get("If-Match")
        current = self._etag(file) if file.is_file() else None
        if self.honour_if_match and wanted is not None and current and wanted != current:
            return web.Response(status=412)
        resp = await super()._answer(request, path, faults)
        if self.weak_etags and "ETag" in resp.headers:
            resp.headers["ETag"] = "W/" + resp.headers["ETag"]
        return resp


@pytest.fixture
def server(versions: Versions) -> Iterator[SwappingServer]:
    srv = SwappingServer(versions.root)
    srv.if_match = []
    srv.versions = (versions.a, versions.b)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


BACKENDS = ["default", "aiohttp", "obstore"]
REGIONS = {  # two of the four inner chunks (ranges of one shard), and one inner chunk
    "two-chunks": (slice(0, 32), slice(0, 8)),
    "one-chunk": (slice(16, 32), slice(16, 32)),
}


def _http_store(server: StaticServer, backend: str) -> AsyncStore:
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    return open_store(server.url, **options)


def _one_version(got: np.ndarray[Any, Any], region: tuple[slice, ...]) -> str:
    for name, data in (("A", A), ("B", B)):
        if np.array_equal(got, data[region]):
            return name
    return "mixed"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("where", REGIONS)
async def test_http_shard_replaced_between_index_and_chunks_reads_one_version(
    server: SwappingServer, backend: str, where: str
) -> None:
    region = REGIONS[where]
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at = 2  # after the index answer, before the chunk reads
        got = await ds.levels[0].read(region)
    assert _one_version(got, region) == "B"
    # index, chunks (412: changed), index again, chunks: what tensorstore does
    assert server.gets == 4
    assert server.if_match[0] is None and server.if_match[1] is not None
    assert server.if_match[1] != server.if_match[3] is not None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_unchanged_shard_costs_no_extra_request(
    server: SwappingServer, backend: str
) -> None:
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        for where, region in REGIONS.items():
            server.gets = 0
            got = await ds.levels[0].read(region)
            assert _one_version(got, region) == "A", where
            assert server.gets == 2, where  # the index, then the chunks (one coalesced range)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_cached_index_after_a_replace_reads_the_new_pixels(
    server: SwappingServer, backend: str
) -> None:
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        level = ds.levels[0]
        indexes = level.index_cache()  # one read operation (as a tile stream): index cached
        first = (slice(0, 16), slice(0, 16))
        assert _one_version(await level.read(first, indexes), first) == "A"
        server.swap_at = server.gets + 1  # replaced between the two reads
        second = (slice(16, 32), slice(16, 32))  # stored elsewhere in B
        assert _one_version(await level.read(second, indexes), second) == "B"
        assert _one_version(await level.read(first, indexes), first) == "B"


async def test_http_server_ignoring_if_match_is_caught_by_the_etag(
    server: SwappingServer,
) -> None:
    server.honour_if_match = False
    async with (
        _http_store(server, "aiohttp") as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at = 2
        region = REGIONS["two-chunks"]
        assert _one_version(await ds.levels[0].read(region), region) == "B"


async def test_a_shard_rewritten_on_every_read_is_read_whole_in_one_version(
    server: SwappingServer,
) -> None:
    async with (
        _http_store(server, "default") as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at, server.swap_every = 2, True
        region = REGIONS["two-chunks"]
        assert _one_version(await ds.levels[0].read(region), region) in ("A", "B")
    assert server.gets == 9  # 4 tries of index + chunks (412 each), then the whole shard


class NodeEtagServer(SwappingServer):
    """Behind a load balancer whose nodes each make their own ETag (Apache's inode-based
    ones): every conditional GET meets another node's ETag and fails with 412."""

    def _etag(self, file: Path) -> str:
        return f'"{os.urandom(4).hex()}"'


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_server_with_an_etag_per_node_is_read_whole_after_four_tries(
    versions: Versions, backend: str
) -> None:
    srv = NodeEtagServer(versions.root)
    srv.if_match = []
    srv.start()
    try:
        async with (
            _http_store(srv, backend) as store,
            ngio_async.open_async(store, path="img.zarr") as ds,
        ):
            for where, region in REGIONS.items():
                srv.gets = 0
                assert _one_version(await ds.levels[0].read(region), region) == "A", where
                assert srv.gets == 9, where  # was: ChangedError after 8
            tiles = [t async for t in ds.tiles(shape=(16, 16), ordered=False)]
            assert all(_one_version(t.data, t.region) == "A" for t in tiles)
    finally:
        srv.stop()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_store_get_with_version_and_if_match(
    server: SwappingServer, versions: Versions, backend: str
) -> None:
    async with _http_store(server, backend) as store:
        for _ in range(2):  # the first GET of the default backend is aiohttp's, then obstore's
            data, tag = await store.get_with_version(SHARD, SuffixByteRequest(68))
            assert bytes(data or b"") == versions.a[-68:]
            assert tag is not None and tag.startswith('"')
            head = await store.get(SHARD, RangeByteRequest(0, 4), if_match=tag)
            assert bytes(head or b"") == versions.a[:4]
        server.swap_at = server.gets + 1
        before = server.gets
        with pytest.raises(ChangedError, match="changed: it is no longer version"):
            await store.get(SHARD, RangeByteRequest(0, 4), if_match=tag)
        assert server.gets == before + 1  # not retried
        assert await store.get_with_version("img.zarr/missing") == (None, None)


async def test_http_weak_etags_are_no_version(server: SwappingServer) -> None:
    server.weak_etags = True  # If-Match never matches a weak ETag: none is sent
    for backend in BACKENDS:
        async with _http_store(server, backend) as store:
            for _ in range(2):
                data, tag = await store.get_with_version(SHARD, SuffixByteRequest(68))
                assert data is not None and tag is None, backend


# -- S3 (moto) and Azure (Azurite) ---------------------------------------------------------------------------------


class SwapStore(InstrumentedStore):
    """Puts ``new`` at ``key`` just before the ``at``-th GET of it (each try counts); deletes
    it when ``new`` is ``None``."""

    def __init__(self, inner: AsyncStore, key: str, new: bytes | None) -> None:
        super().__init__(inner)
        self.key, self.new, self.at, self.gets = key, new, 0, 0

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        if method == "get" and key == self.key:
            self.gets += 1
            if self.gets == self.at:  # inside the request's limiter token: no put()
                if self.new is None:
                    await self.inner._delete_once(key)
                else:
                    await self.inner._put_once(key, self.new, if_absent=False)
        async with super()._track(method, key):
            yield


@pytest.mark.parametrize("where", REGIONS)
async def test_cloud_shard_replaced_between_index_and_chunks_reads_one_version(
    cloud: tuple[str, dict[str, Any]], versions: Versions, where: str
) -> None:
    store = await _put_tree(cloud, versions)
    region = REGIONS[where]
    async with store, ngio_async.open_async(store, path="img.zarr") as ds:
        store.at = 2
        got = await ds.levels[0].read(region)
        assert _one_version(got, region) == "B"
        assert store.gets == 4
        store.gets, store.at = 0, 0  # unchanged now: two GETs, as ever
        assert _one_version(await ds.levels[0].read(region), region) == "B"
        assert store.gets == 2


async def test_cloud_cached_index_after_a_replace_reads_the_new_pixels(
    cloud: tuple[str, dict[str, Any]], versions: Versions
) -> None:
    store = await _put_tree(cloud, versions)
    async with store, ngio_async.open_async(store, path="img.zarr") as ds:
        level = ds.levels[0]
        indexes = level.index_cache()
        first = (slice(0, 16), slice(0, 16))
        assert _one_version(await level.read(first, indexes), first) == "A"
        store.at = store.gets + 1
        second = (slice(16, 32), slice(16, 24))  # stored elsewhere in B
        assert _one_version(await level.read(second, indexes), second) == "B"
        assert _one_version(await level.read(first, indexes), first) == "B"


async def _put_tree(cloud: tuple[str, dict[str, Any]], versions: Versions) -> SwapStore:
    """Version A of the image in a fresh prefix of ``cloud`` (every file of it), in a
    ``SwapStore`` to version B."""
    url, options = cloud
    store = open_store(url, **options)
    for file in sorted(versions.root.rglob("*")):
        if file.is_file():
            await store.put(file.relative_to(versions.root).as_posix(), file.read_bytes())
    return SwapStore(store, SHARD, versions.b)


@pytest.fixture(params=["s3", "azure"])
def cloud(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """A fresh URL on moto's S3 or on Azurite (Azure has no suffix ranges: a HEAD, then
    the index range, conditional on the HEAD's ETag), and its options."""
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        return s3.fresh_url(), s3.options()
    azure: AzuriteServer = request.getfixturevalue("azurite")
    return azure.fresh_url(), azure.options()


async def test_cloud_store_get_with_version_and_if_match(
    cloud: tuple[str, dict[str, Any]], versions: Versions
) -> None:
    store = await _put_tree(cloud, versions)
    async with store:
        assert store.versioned
        data, tag = await store.get_with_version(SHARD, SuffixByteRequest(68))
        assert bytes(data or b"") == versions.a[-68:] and tag is not None
        assert (
            bytes(await store.get(SHARD, RangeByteRequest(0, 4), if_match=tag) or b"")
            == (versions.a[:4])
        )
        await store.put(SHARD, versions.b)
        store.reset()
        with pytest.raises(ChangedError, match="412"):
            await store.get(SHARD, RangeByteRequest(0, 4), if_match=tag)
        assert store.method_counts["get"] == 1  # not retried
        assert await store.get_with_version("img.zarr/missing") == (None, None)


@pytest.mark.parametrize("prefetch", [2, 4])  # tiles read one by one; in runs of two
@pytest.mark.parametrize("backend", BACKENDS)
async def test_http_tiles_of_a_shard_replaced_mid_stream_are_each_one_version(
    server: SwappingServer, backend: str, prefetch: int
) -> None:
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at = 3  # after the index and the first tile's (or run's) chunks
        seen = set()
        async for tile in ds.tiles(shape=(16, 16), prefetch=prefetch):
            seen.add(_one_version(tile.data, tile.region))
        assert "mixed" not in seen and "B" in seen


@pytest.mark.parametrize("backend", ["default", "aiohttp"])  # obstore's refuses such servers
async def test_http_server_ignoring_range_reads_one_version(
    server: SwappingServer, backend: str
) -> None:
    server.faults.ignore_range = True  # 200 and the whole shard to every ranged GET
    region = REGIONS["two-chunks"]
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        assert _one_version(await ds.levels[0].read(region), region) == "A"
        server.gets, server.swap_at = 0, 2
        assert _one_version(await ds.levels[0].read(region), region) == "B"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("where", REGIONS)
async def test_http_shard_deleted_between_index_and_chunks_reads_the_fill_value(
    server: SwappingServer, backend: str, where: str
) -> None:
    # a writer deletes a shard left all fill value: the read sees no shard, as it is now
    async with (
        _http_store(server, backend) as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at, server.delete = 2, True
        got = await ds.levels[0].read(REGIONS[where])
    assert not got.any()
    # index, chunks (404), index (404); obstore's client's first 404 is asked again of aiohttp
    assert server.gets == (4 if backend == "default" else 3)


@pytest.mark.parametrize("where", REGIONS)
async def test_cloud_shard_deleted_between_index_and_chunks_reads_the_fill_value(
    cloud: tuple[str, dict[str, Any]], versions: Versions, where: str
) -> None:
    store = await _put_tree(cloud, versions)
    store.new = None
    async with store, ngio_async.open_async(store, path="img.zarr") as ds:
        store.at = 2
        assert not (await ds.levels[0].read(REGIONS[where])).any()
        assert store.gets == 3


async def test_a_store_set_unversioned_reads_unconditionally(server: SwappingServer) -> None:
    async with _http_store(server, "obstore") as store:
        store.versioned = False  # opted out: no If-Match, no version
        async with ngio_async.open_async(store, path="img.zarr") as ds:
            region = REGIONS["two-chunks"]
            assert _one_version(await ds.levels[0].read(region), region) == "A"
    assert server.if_match == [None, None]


async def test_tiles_in_flight_when_their_shard_changes_read_its_index_again_once(
    server: SwappingServer,
) -> None:
    async with (
        _http_store(server, "default") as store,
        ngio_async.open_async(store, path="img.zarr") as ds,
    ):
        server.swap_at = 2  # the four tiles' chunk reads all find the shard changed
        seen = [
            _one_version(tile.data, tile.region)
            async for tile in ds.tiles(shape=(16, 16), prefetch=4)
        ]
    assert seen == ["B"] * 4
    # the index, four chunks (412), the index once again (not once per tile), four chunks
    assert server.gets <= 10
