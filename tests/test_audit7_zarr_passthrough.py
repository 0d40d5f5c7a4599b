"""The ``/zarr`` passthrough as zarr clients and browsers use it: objects larger than memory
should be (whole shards, ranges of them), revalidation (ETag, ``If-None-Match``, 304), empty
objects, an object rewritten while it is sent. Real stores (local files, a loopback HTTP
server) counted by ``InstrumentedStore``; the app on a loopback AppRunner."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tracemalloc
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import pytest
from images import Spec, upload, write_image
from servers import Faults, StaticServer
from webapp import running

from ngio_async import open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import _files, create_app
from ngio_async.web._files import PIECE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from servers import S3Server

BIG = 5 * PIECE + 12345


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A small image with a large object ``big.bin`` (five pieces and a bit) and an empty
    object ``empty.bin`` beside its metadata."""
    path = tmp_path / "img.zarr"
    write_image(path, Spec(shape=(2, 32, 32), chunks=(1, 16, 16), levels=1))
    (path / "big.bin").write_bytes(os.urandom(BIG))
    (path / "empty.bin").write_bytes(b"")
    return path


@contextlib.asynccontextmanager
async def served(image: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, InstrumentedStore]]:
    """``image`` served over a loopback HTTP server (with ETags) through the app, and the
    app's store, counted."""
    server = StaticServer(image.parent).start()
    try:
        store = InstrumentedStore(open_store(server.url + image.name))
        async with (
            store,
            await open_async(store) as ds,
            running(create_app({"img": ds})) as (http, _),
        ):
            store.reset()
            yield http, store
    finally:
        server.stop()


async def drain(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    """The body's length and SHA-256, read piece by piece (the client keeps none of it)."""
    digest, n = hashlib.sha256(), 0
    async for part in resp.content.iter_chunked(1 << 20):
        digest.update(part)
        n += len(part)
    return n, digest.hexdigest()


async def test_a_large_object_is_sent_in_pieces(image: Path) -> None:
    """A whole shard asked for without a range was read into memory whole (a 4 GiB shard:
    4 GiB per client); it is now sent piece by piece, each read once."""
    data = (image / "big.bin").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    async with served(image) as (http, store):
        resp = await http.get("/zarr/img/big.bin")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(BIG)
        assert await drain(resp) == (BIG, digest)
        assert store.calls[("get", "big.bin")] == 6  # five pieces and the rest
        # a range of it too
        resp = await http.get("/zarr/img/big.bin", headers={"Range": "bytes=100-"})
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 100-{BIG - 1}/{BIG}"
        assert await drain(resp) == (BIG - 100, hashlib.sha256(data[100:]).hexdigest())
    # what the server holds meanwhile (a local store: no test server in this process)
    async with running(create_app({"img": str(image)})) as (http, _):
        tracemalloc.start()
        try:
            resp = await http.get("/zarr/img/big.bin")
            assert await drain(resp) == (BIG, digest)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 2 * PIECE, peak  # was the whole object and its copy


async def test_small_objects_still_take_one_request(image: Path) -> None:
    async with served(image) as (http, store):
        resp = await http.get("/zarr/img/0/c/0/0/0")
        assert resp.status == 200
        assert await resp.read() == (image / "0/c/0/0/0").read_bytes()
        assert store.total_requests == 1


async def test_objects_carry_an_etag_and_revalidate_without_reading(image: Path) -> None:
    """No ETag nor Cache-Control: a browser or zarr client read every chunk again in full;
    now ``If-None-Match`` costs one version lookup and answers 304 until the object is
    rewritten."""
    async with served(image) as (http, store):
        resp = await http.get("/zarr/img/zarr.json")
        assert resp.status == 200
        etag = resp.headers["ETag"]
        assert resp.headers["Cache-Control"] == "no-cache"
        store.reset()
        resp = await http.get("/zarr/img/zarr.json", headers={"If-None-Match": etag})
        assert resp.status == 304 and await resp.read() == b""
        assert resp.headers["ETag"] == etag
        assert store.method_counts["get"] == 0  # its version alone was looked up
        chunk = "/zarr/img/0/c/0/0/0"
        first = (await http.get(chunk)).headers["ETag"]
        assert first != etag
        path = image / "0/c/0/0/0"
        path.write_bytes(path.read_bytes())  # rewritten: another version
        resp = await http.get(chunk, headers={"If-None-Match": first})
        assert resp.status == 200 and resp.headers["ETag"] != first


async def test_an_empty_object_over_http(image: Path) -> None:
    """An empty object answers 200 and no bytes (a range of it cannot be satisfied)."""
    server = StaticServer(image.parent).start()
    try:
        app = create_app({"img": server.url + image.name})
        async with running(app) as (http, _):
            resp = await http.get("/zarr/img/empty.bin")
            assert resp.status == 200, await resp.text()
            assert await resp.read() == b""
            resp = await http.get("/zarr/img/big.bin")
            assert resp.status == 200
            assert await drain(resp) == (
                BIG,
                hashlib.sha256((image / "big.bin").read_bytes()).hexdigest(),
            )
    finally:
        server.stop()


async def test_an_object_rewritten_while_it_is_sent_is_cut_short(image: Path) -> None:
    """The pieces of one answer come from one version of the object: a rewrite between two
    pieces ends the answer short (the client sees a truncated body), never mixed bytes."""
    gets = 0

    def rewrite_on_the_third(method: str, key: str) -> Any:
        nonlocal gets
        if method == "get" and key == "big.bin":
            gets += 1
            if gets == 3:
                (image / "big.bin").write_bytes(os.urandom(BIG))
        return None

    async with served(image) as (http, store):
        store.fail = rewrite_on_the_third
        resp = await http.get("/zarr/img/big.bin")
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await drain(resp)
        store.fail = None
        resp = await http.get("/zarr/img/big.bin")  # the server still serves
        assert resp.status == 200
        assert (await drain(resp))[0] == BIG


async def test_a_client_leaving_mid_object_stops_its_reads(image: Path) -> None:
    async with served(image) as (http, store):
        store.latency = 0.2  # each piece waits: the client leaves during the second
        resp = await http.get("/zarr/img/big.bin")
        assert resp.status == 200
        await resp.content.readexactly(1 << 20)
        resp.close()  # hangs up
        with anyio.fail_after(10):
            while store.in_flight:  # noqa: ASYNC110 - polls a counter
                await anyio.sleep(0.01)
        started = store.calls[("get", "big.bin")]
        await anyio.sleep(0.5)
        assert store.calls[("get", "big.bin")] == started < 6  # no piece read after it left


async def test_pieces_on_s3(
    image: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over moto S3 (pieces of 64 KiB here): a whole object, a range, an empty object and a
    revalidation."""
    monkeypatch.setattr(_files, "PIECE", 64 << 10)
    (image / "big.bin").write_bytes(data := os.urandom(300_000))
    store = InstrumentedStore(open_store(s3_server.fresh_url(), **s3_server.options()))
    async with store:
        await upload(image, store)
        async with await open_async(store) as ds, running(create_app({"img": ds})) as (http, _):
            store.reset()
            resp = await http.get("/zarr/img/big.bin")
            assert resp.status == 200 and await resp.read() == data
            assert store.calls[("get", "big.bin")] == 5  # 300,000 bytes in 64 KiB pieces
            resp = await http.get("/zarr/img/big.bin", headers={"Range": "bytes=70000-200000"})
            assert resp.status == 206 and await resp.read() == data[70000:200001]
            resp = await http.get("/zarr/img/empty.bin")
            assert resp.status == 200 and await resp.read() == b""
            etag = (await http.get("/zarr/img/zarr.json")).headers["ETag"]
            resp = await http.get("/zarr/img/zarr.json", headers={"If-None-Match": etag})
            assert resp.status == 304


async def test_a_server_that_ignores_ranges_is_read_once(image: Path) -> None:
    """An HTTP source that answers every range with the whole object (python -m
    http.server does): the first piece brought the whole object, and each later piece
    would bring it again (a 40 MiB object: 6 downloads); it is sent from the first."""
    data = (image / "big.bin").read_bytes()
    server = StaticServer(image.parent, faults=Faults(ignore_range=True)).start()
    try:
        async with running(create_app({"img": server.url + image.name})) as (http, _):
            for _ in range(2):  # the first time, the store learns that ranges are ignored
                server.requests.clear()
                resp = await http.get("/zarr/img/big.bin")
                assert resp.status == 200
                assert await drain(resp) == (BIG, hashlib.sha256(data).hexdigest())
            assert server.count("GET", "/img.zarr/big.bin") == 1
            server.requests.clear()
            resp = await http.get("/zarr/img/big.bin", headers={"Range": "bytes=10000000-"})
            assert resp.status == 206
            assert await drain(resp) == (BIG - 10**7, hashlib.sha256(data[10**7 :]).hexdigest())
            print([(r.method, r.range, r.agent[:12]) for r in server.requests])
            assert server.count("GET", "/img.zarr/big.bin") == 1
    finally:
        server.stop()
