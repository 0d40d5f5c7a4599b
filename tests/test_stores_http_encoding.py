"""HTTP stores and objects served with ``Content-Encoding``: uploaded gzip-compressed (S3 or
GCS objects with that header, CloudVolume's chunks, nginx ``gzip_static always``)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import anyio
import numpy as np
import pytest
from servers import Faults, S3Server, StaticServer

import ngio_async
from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import (
    AsyncStore,
    ObstoreStore,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from aiohttp import web

BLOB = bytes(range(256)) * 4
KEY = "data/blob.bin"
FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=2, timeout=10)


@dataclass
class PartlyGzipServer(StaticServer):
    """A static server that serves the files whose path ends with one of ``gzip_suffixes``
    as stored gzip-compressed (``Faults.gzip_stored``), the others as they are."""

    gzip_suffixes: tuple[str, ...] = field(default_factory=tuple)

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        stored = faults.gzip_stored or path.endswith(self.gzip_suffixes)
        return await super()._answer(request, path, replace(faults, gzip_stored=stored))


@pytest.fixture
def partly_gzip(http_root: Path) -> Iterator[PartlyGzipServer]:
    server = PartlyGzipServer(http_root, gzip_suffixes=(".bin",)).start()
    try:
        yield server
    finally:
        server.stop()


def _open(server: StaticServer, backend: str) -> AsyncStore:
    if backend == "default":
        return open_store(server.url, limits=FAST)
    return open_store(server.url, limits=FAST, backend=backend)  # type: ignore[arg-type]


async def _reads(store: AsyncStore) -> None:
    assert bytes(await store.get(KEY) or b"") == BLOB
    assert bytes(await store.get(KEY, RangeByteRequest(0, 4)) or b"") == BLOB[:4]
    assert bytes(await store.get(KEY, RangeByteRequest(500, 600)) or b"") == BLOB[500:600]
    assert bytes(await store.get(KEY, SuffixByteRequest(4)) or b"") == BLOB[-4:]
    assert bytes(await store.get(KEY, OffsetByteRequest(1000)) or b"") == BLOB[1000:]
    assert await store.size(KEY) == len(BLOB)


async def test_default_store_decodes_gzip_stored_objects_after_a_plain_first_one(
    partly_gzip: PartlyGzipServer,
) -> None:
    """Plain metadata, chunks uploaded with ``Content-Encoding: gzip``: once aiohttp had read
    the plain first object, obstore's client returned the compressed bytes as the chunk (and
    ranges of them as ranges of the chunk) without a word."""
    async with _open(partly_gzip, "default") as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        await _reads(store)


async def test_obstore_backend_decodes_gzip_stored_objects(http_server: StaticServer) -> None:
    """``backend="obstore"``: the compressed bytes were the object; ranges of them too."""
    http_server.faults = Faults(gzip_stored=True)
    async with _open(http_server, "obstore") as store:
        await _reads(store)
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        empty = await store.get("data/empty.bin", SuffixByteRequest(3))
        assert empty is not None and bytes(empty) == b""
        assert await store.get("data/none.bin") is None


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_a_server_gzipping_the_range_it_serves_is_read_right(
    partly_gzip: PartlyGzipServer, backend: str
) -> None:
    """A range of an encoded object starting past the end of its compressed bytes is still
    inside the object: read from the decoded whole, never a 416 or compressed bytes."""
    async with _open(partly_gzip, backend) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB  # the first: plain or checked
        assert bytes(await store.get(KEY, RangeByteRequest(900, 910)) or b"") == BLOB[900:910]


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_gzip_data_stored_plainly_is_checked_once(
    http_root: Path, http_server: StaticServer, backend: str
) -> None:
    """Chunks of a gzip codec start as gzip data but are served as they are: one is checked
    with a plain GET (the others read meanwhile wait for its verdict), then each is read
    once."""
    chunks = [gzip.compress(BLOB[i:], mtime=0) for i in range(8)]
    for i, chunk in enumerate(chunks):
        (http_root / "data" / f"c{i}").write_bytes(chunk)
    async with _open(http_server, backend) as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        http_server.reset()
        got: dict[int, bytes] = {}

        async def read(i: int) -> None:
            got[i] = bytes(await store.get(f"data/c{i}") or b"")

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(read, i)
        for i in range(4, 8):
            await read(i)
    assert got == dict(enumerate(chunks))
    assert http_server.count("GET") == 9


async def test_obstore_backend_version_without_validators_is_unknown(
    http_server: StaticServer,
) -> None:
    """A server sending neither ``ETag`` nor ``Last-Modified``: obstore's client reports the
    epoch as the modification time, which made a version that never changed ('1970-01-01
    .../1024') where the store cannot tell (``""``: the tile server then sends no ETag)."""
    http_server.faults = Faults(no_validators=True)
    async with _open(http_server, "obstore") as store:
        assert await store.version(KEY) == ""
    http_server.faults = Faults()
    async with _open(http_server, "obstore") as store:
        assert "1970" not in (await store.version(KEY) or "1970")


@pytest.mark.parametrize("shards", [(32, 32), False])
def test_an_image_with_gzip_stored_chunks_reads_over_http(
    tmp_path: Path, shards: tuple[int, int] | Literal[False]
) -> None:
    """The whole way: NGFF metadata served plainly, every chunk (or shard) gzip-encoded;
    the default store read them as compressed bytes (a decoding error, or a shard index of
    garbage)."""
    root = tmp_path / "www"
    data = np.arange(64 * 64, dtype="uint16").reshape(64, 64)
    with ngio_async.create(
        str(root / "img.zarr"),
        shape=data.shape,
        dtype=data.dtype,
        chunks=(16, 16),
        shards=shards,
        levels=1,
    ) as ds:
        ds[...] = data
    objects = ("/0", "/1", "/2", "/3")  # v3 keys of chunks and shards: .../c/<y>/<x>
    server = PartlyGzipServer(root, gzip_suffixes=objects).start()
    try:
        with ngio_async.open(f"{server.url}img.zarr", limits=FAST) as ds:
            assert np.array_equal(ds[...], data)
            assert np.array_equal(ds[5:40, 20:21], data[5:40, 20:21])
    finally:
        server.stop()
    assert any(r.path.endswith("/c/1/1") for r in server.requests)


async def test_s3_objects_uploaded_gzip_encoded_are_decoded(s3_server: S3Server) -> None:
    """The same object over s3:// as over https://: S3 keeps the upload's Content-Encoding
    and serves the compressed bytes; they were returned as the object."""
    import obstore

    async with open_store(s3_server.fresh_url(), limits=FAST, **s3_server.options()) as store:
        assert isinstance(store, ObstoreStore)
        encoded = {"Content-Encoding": "gzip"}
        await obstore.put_async(store.obstore, KEY, gzip.compress(BLOB), attributes=encoded)
        await store.put("data/small.txt", b"hello world")
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        await _reads(store)


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
async def test_ranges_of_plain_objects_stay_ranges_beside_encoded_ones(
    http_root: Path, backend: str
) -> None:
    """One object stored encoded among plain ones: the others' ranges are still asked for as
    ranges (not whole objects cut), and those of the encoded one are cut from it."""
    (http_root / "data" / "shard").write_bytes(BLOB * 4)
    server = PartlyGzipServer(http_root, gzip_suffixes=("blob.bin",)).start()
    try:
        async with _open(server, backend) as store:
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            assert bytes(await store.get(KEY) or b"") == BLOB
            server.reset()
            got = await store.get("data/shard", RangeByteRequest(2000, 2010))
            assert bytes(got or b"") == (BLOB * 4)[2000:2010]
            assert [r.range for r in server.requests] == ["bytes=2000-2009"]
            assert bytes(await store.get(KEY, RangeByteRequest(900, 910)) or b"") == BLOB[900:910]
            with pytest.raises(StoreError, match="past the end"):
                await store.get(KEY, RangeByteRequest(2000, 2010))
    finally:
        server.stop()
