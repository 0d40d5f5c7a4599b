"""``gs://`` answered 403 (Forbidden), as Google Cloud Storage answers a caller without the
permission: a read, a listing and a write each raise ``PermissionDeniedError`` naming the key
and the store's URL, never obstore's own error, a "not found", nor (a chunk) fill values.

A loopback proxy stands in front of fake-gcs-server (the ``gcs`` fixture of
``test_stores_gcs``) and answers, for the requests a rule matches, what GCS answers: a 403
with its XML API error body (``AccessDenied``) on the XML API paths obstore's GCS client
reads, lists and writes with, its JSON API error on ``/storage/v1`` ones. Everything else
goes to the emulator.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import aiohttp
import numpy as np
import pytest
import test_stores_gcs
from aiohttp import web
from test_stores_gcs import BUCKET, FAST, GCSServer

import ngio_async
from ngio_async import NotFoundError, PermissionDeniedError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio

gcs = test_stores_gcs.gcs  # fake-gcs-server (skips, saying why, where it is missing)

_XML_DENIED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Access denied.</Message><Details>tester@example.iam.gserviceaccount.com does "
    b"not have storage.objects.get access to the Google Cloud Storage object. Permission "
    b"'storage.objects.get' denied on resource (or it may not exist).</Details></Error>"
)
_JSON_DENIED = (
    b'{"error": {"code": 403, "message": "tester@example.iam.gserviceaccount.com does not '
    b'have storage.objects.list access to the Google Cloud Storage bucket.", "errors": '
    b'[{"message": "denied", "domain": "global", "reason": "forbidden"}]}}'
)
_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class DenyingProxy:
    """A reverse proxy to fake-gcs-server on 127.0.0.1, in its own thread and event loop,
    answering 403 as GCS does to the requests ``deny(method, key, listing)`` matches."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.deny: Callable[[str, str, bool], bool] = lambda method, key, listing: False
        self.denied: list[tuple[str, str]] = []  # (method, key) answered 403
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def options(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "use_emulator": True, "limits": FAST}

    def start(self) -> DenyingProxy:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=2**26)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        async with aiohttp.ClientSession(auto_decompress=False) as self._session:
            self._ready.set()
            await self._stopping.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.path)
        json_api = path.startswith(("/storage/v1/", "/upload/storage/v1/"))
        key = "" if json_api else path.removeprefix(f"/{BUCKET}").lstrip("/")
        listing = request.method == "GET" and (
            (json_api and path.rstrip("/").endswith("/o"))
            or (not json_api and any(q in request.query for q in ("list-type", "prefix")))
        )
        if listing:
            key = request.query.get("prefix", "")
        if self.deny(request.method, key, listing):
            self.denied.append((request.method, key))
            if json_api:
                return web.Response(status=403, body=_JSON_DENIED, content_type="application/json")
            return web.Response(status=403, body=_XML_DENIED, content_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            return web.Response(status=answer.status, body=body, headers=out)


@pytest.fixture
def proxy(gcs: GCSServer) -> Iterator[DenyingProxy]:
    started = DenyingProxy(gcs.endpoint).start()
    try:
        yield started
    finally:
        started.stop()


def _image(gcs: GCSServer, root: Path) -> tuple[str, str, np.ndarray[Any, Any]]:
    """A 2 x 32 x 32 image (a shard per channel, of 4 chunks) uploaded to a fresh prefix:
    its ``gs://`` URL, its bucket prefix and its data."""
    data = np.arange(2 * 32 * 32, dtype="uint16").reshape(2, 32, 32)
    src = root / "img.ome.zarr"
    with ngio_async.create(
        src, shape=data.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=1
    ) as ds:
        ds.write(data)
    prefix = f"t-{uuid.uuid4().hex[:12]}/img.ome.zarr"
    gcs.upload_tree(src, prefix)
    return f"gs://{BUCKET}/{prefix}", prefix, data


def _names_key_and_url(exc: PermissionDeniedError, key: str, url: str) -> None:
    """A 403, said so: the key and the URL in the message and attributes, GCS's reason kept,
    not a missing object, not a lack of credentials."""
    assert type(exc).__module__.startswith("ngio_async"), type(exc)
    assert not isinstance(exc, FileNotFoundError)
    assert key in str(exc) and url in str(exc), str(exc)
    assert exc.url == url and exc.key is not None, (exc.url, exc.key)
    assert exc.key.endswith(key) or key.endswith(exc.key), (exc.key, key)
    assert "403" in str(exc) or "denied" in str(exc).lower(), str(exc)
    assert "not found" not in str(exc).lower() and "no OME-Zarr" not in str(exc)
    assert not exc.missing_credentials


async def test_a_forbidden_read(gcs: GCSServer, proxy: DenyingProxy, tmp_path: Path) -> None:
    url, prefix, data = _image(gcs, tmp_path)
    chunk = "0/c/1/0/0"  # the shard of channel 1
    proxy.deny = lambda method, key, listing: key == f"{prefix}/{chunk}"
    async with ngio_async.open_async(url, **proxy.options()) as ds:
        assert np.array_equal(await ds.read(c=0), data[0])  # the other chunks read
        with pytest.raises(PermissionDeniedError) as info:
            await ds.read()
        _names_key_and_url(info.value, chunk, url)
        with pytest.raises(PermissionDeniedError) as info:  # one chunk of it (ranged GETs)
            await ds.read(c=1, y=slice(20, 22), x=slice(3, 5))
        _names_key_and_url(info.value, chunk, url)
    async with open_store(url, **proxy.options()) as store:
        for ask in (store.get(chunk), store.exists(chunk), store.size(chunk)):
            with pytest.raises(PermissionDeniedError) as info:
                await ask
            _names_key_and_url(info.value, chunk, url)
    assert {m for m, _ in proxy.denied} <= {"GET", "HEAD"} and proxy.denied

    # the image's metadata forbidden: opening says so, not "no OME-Zarr group"
    proxy.deny = lambda method, key, listing: key == f"{prefix}/zarr.json"
    with pytest.raises(PermissionDeniedError) as info:
        await ngio_async.open_async(url, **proxy.options())
    _names_key_and_url(info.value, "zarr.json", url)

    # forbidden_is_missing=True reads a 403 as absent (a bucket denying listings answers 403
    # for absent objects): the chunk reads as fill values, as asked
    proxy.deny = lambda method, key, listing: key == f"{prefix}/{chunk}"
    async with ngio_async.open_async(url, forbidden_is_missing=True, **proxy.options()) as ds:
        got = await ds.read()
    want = data.copy()
    want[1] = 0
    assert np.array_equal(got, want)


async def test_a_forbidden_listing(gcs: GCSServer, proxy: DenyingProxy, tmp_path: Path) -> None:
    url, prefix, _ = _image(gcs, tmp_path)
    proxy.deny = lambda method, key, listing: listing and key.startswith(prefix)
    root, _, name = url.rpartition("/")
    async with open_store(root, **proxy.options()) as store:
        for ask in (store.list_prefix(name), store.stored_bytes(name)):
            with pytest.raises(PermissionDeniedError) as info:
                await ask
            _names_key_and_url(info.value, name, root)
        assert await store.get(f"{name}/zarr.json") is not None  # reads are allowed
    assert proxy.denied and all(m == "GET" for m, _ in proxy.denied)


async def test_a_forbidden_write(gcs: GCSServer, proxy: DenyingProxy, tmp_path: Path) -> None:
    # fake-gcs-server refuses obstore's XML-API PUT itself (400, test_stores_gcs): here each
    # PUT and DELETE is answered 403 first, as GCS answers a caller without objects.create
    url, _, data = _image(gcs, tmp_path)
    proxy.deny = lambda method, key, listing: method in ("PUT", "POST", "DELETE")
    async with open_store(url, **proxy.options()) as store:
        with pytest.raises(PermissionDeniedError) as info:
            await store.put("new/key", b"123")
        _names_key_and_url(info.value, "new/key", url)
        with pytest.raises(PermissionDeniedError) as info:
            await store.delete("0/c/0/0/0")
        _names_key_and_url(info.value, "0/c/0/0/0", url)
    async with ngio_async.open_async(url, mode="r+", **proxy.options()) as ds:
        with pytest.raises(PermissionDeniedError) as info:
            await ds.write(np.ones((16, 16), "uint16"), c=0, y=slice(0, 16), x=slice(0, 16))
        _names_key_and_url(info.value, "0/c/0/0/0", url)
        assert np.array_equal(await ds.read(), data)  # nothing changed
    new = url.rpartition("/")[0] + "/new.ome.zarr"
    with pytest.raises(PermissionDeniedError) as info:
        await ngio_async.create_async(
            new, shape=(16, 16), dtype="uint8", axes="yx", **proxy.options()
        )
    _names_key_and_url(info.value, "zarr.json", new)
    with pytest.raises(NotFoundError):  # nothing was left behind
        await ngio_async.open_async(new, **proxy.options())
