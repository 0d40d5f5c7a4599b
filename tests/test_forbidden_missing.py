"""Stores that answer 403 for an absent object (S3 or GCS when the caller may not list the
bucket): the ``forbidden_is_missing`` store option.

A loopback proxy (fault injection: a real public bucket cannot be reached from here) stands in
front of moto S3 or the static HTTP server and answers as such a bucket does: ``403
AccessDenied`` where the upstream answers ``404`` to a GET or HEAD, ``403`` for any listing, and
``403`` for every request about the keys in :attr:`ForbiddingProxy.forbidden`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from images import upload

import ngio_async
from ngio_async import NotFoundError, PermissionDeniedError
from ngio_async.stores import open_store
from ngio_async.stores._seen import seeing_versions

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from servers import S3Server, StaticServer

pytestmark = pytest.mark.anyio

_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)
_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class ForbiddingProxy:
    """A reverse proxy to ``upstream`` on 127.0.0.1 that answers 403 as a bucket granting
    ``GetObject`` only does, in its own thread and event loop."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.forbidden: set[str] = set()  # request paths always answered 403
        self.denied: list[tuple[str, str]] = []  # (method, path) answered 403
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ForbiddingProxy:
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
        app = web.Application()
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

    def _deny(self, request: web.Request) -> web.Response:
        self.denied.append((request.method, request.path))
        return web.Response(status=403, body=_DENIED, content_type="application/xml")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path))
        listing = request.method == "GET" and any(
            name in request.query for name in ("list-type", "prefix", "delimiter")
        )
        if request.path in self.forbidden or listing:
            return self._deny(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            if answer.status == 404 and request.method in ("GET", "HEAD"):
                return self._deny(request)
            out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
            return web.Response(status=answer.status, body=body, headers=out)


async def write_sparse(root: Path) -> np.ndarray[Any, Any]:
    """A 1 x 64 x 64 image (NGFF 0.4, chunks of 16 x 16, one level) with only the top-left
    16 x 32 written: 14 of its 16 chunks absent. Returns the data that reads back (0 elsewhere)."""
    expected = np.zeros((1, 64, 64), "uint16")
    expected[0, :16, :32] = np.arange(16 * 32, dtype="uint16").reshape(16, 32) + 1
    async with ngio_async.create_async(
        root / "img.zarr",
        shape=expected.shape,
        dtype="uint16",
        axes="cyx",
        chunks=(1, 16, 16),
        levels=1,
        ngff_version="0.4",
    ) as ds:
        await ds.write(expected[:, :16, :32], y=slice(0, 16), x=slice(0, 32))
    chunks = sorted(p for p in (root / "img.zarr" / "0").rglob("*") if p.is_file())
    assert len([p for p in chunks if not p.name.startswith(".")]) == 2  # (the others absent)
    return expected


@pytest.fixture
def proxy_http(http_server: StaticServer) -> Iterator[ForbiddingProxy]:
    proxy = ForbiddingProxy(http_server.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy_s3(s3_server: S3Server) -> Iterator[ForbiddingProxy]:
    proxy = ForbiddingProxy(s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(params=["http", "s3"])
async def sparse(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, dict[str, Any], ForbiddingProxy, np.ndarray[Any, Any]]]:
    """(url of the sparse image behind the proxy, store options, the proxy, its data)."""
    if request.param == "http":
        http_root: Path = request.getfixturevalue("http_root")
        expected = await write_sparse(http_root)
        proxy = request.getfixturevalue("proxy_http")
        yield f"{proxy.url}/img.zarr", {}, proxy, expected
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    expected = await write_sparse(tmp_path)
    url = s3.fresh_url()
    async with open_store(url, **s3.options()) as target:
        await upload(tmp_path / "img.zarr", target, "img.zarr/")
    proxy = request.getfixturevalue("proxy_s3")
    options = {**s3.options(), "endpoint": proxy.url, "allow_http": True}
    yield f"{url}/img.zarr", options, proxy, expected


async def test_default_fails_naming_the_option(
    sparse: tuple[str, dict[str, Any], ForbiddingProxy, np.ndarray[Any, Any]],
) -> None:
    url, options, proxy, _ = sparse
    async with ngio_async.open_async(url, **options) as ds:
        with pytest.raises(PermissionDeniedError, match="forbidden_is_missing=True") as info:
            await ds.read()
    assert "403" in str(info.value) or "denied" in str(info.value)
    assert any(method == "GET" for method, _ in proxy.denied)


async def test_option_reads_absent_chunks_as_fill_value(
    sparse: tuple[str, dict[str, Any], ForbiddingProxy, np.ndarray[Any, Any]],
) -> None:
    url, options, proxy, expected = sparse
    async with ngio_async.open_async(url, forbidden_is_missing=True, **options) as ds:
        got = await ds.read()
    np.testing.assert_array_equal(got, expected)
    assert proxy.denied  # the absent chunks were answered 403
    gets = [path for method, path in proxy.seen if method == "GET"]
    assert len(gets) == len(set(gets)), sorted(gets)  # each object asked for once


async def test_option_scope_get_head_only(
    sparse: tuple[str, dict[str, Any], ForbiddingProxy, np.ndarray[Any, Any]],
) -> None:
    """With the option: GET and HEAD of an absent or forbidden object read as missing; a
    forbidden existing chunk reads as the fill value (the documented trade-off); a listing's
    403 still raises, and so does a write's."""
    url, options, proxy, expected = sparse
    async with open_store(url, forbidden_is_missing=True, **options) as store:
        assert store.forbidden_is_missing
        assert await store.get("0/0/0/0") is not None  # present: read
        assert await store.get("0/0/3/3") is None
        assert await store.exists("0/0/3/3") is False
        assert await store.size("0/0/3/3") is None
        assert await store.version("0/0/3/3") is None
        assert await store.get_with_version("0/0/3/3") == (None, None)
        with seeing_versions() as seen:  # noted as a GET that found nothing
            assert await store.get("0/0/3/2") is None
        assert seen.knows("0/0/3/2") and seen.version("0/0/3/2") is None
        assert await store.get_many(["0/0/0/0", "0/0/3/3"]) == [
            await store.get("0/0/0/0"),
            None,
        ]
        if store.supports_listing:
            with pytest.raises(PermissionDeniedError) as listed:
                await store.list_prefix("0")
            assert "forbidden_is_missing" not in str(listed.value)
    proxy.forbidden.add(_request_path(url, "0/0/0/0"))
    async with ngio_async.open_async(url, forbidden_is_missing=True, **options) as ds:
        got = await ds.read()
    silent = expected.copy()
    silent[0, :16, :16] = 0  # the forbidden chunk: its fill value, silently
    np.testing.assert_array_equal(got, silent)
    async with ngio_async.open_async(url, **options) as ds:  # without: the 403 shows
        with pytest.raises(PermissionDeniedError, match="forbidden_is_missing"):
            await ds.read()


def _request_path(url: str, key: str) -> str:
    """The request path of ``key`` under ``url`` as the proxy sees it."""
    if url.startswith("s3://"):
        return "/" + url.removeprefix("s3://") + "/" + key
    return "/" + url.split("/", 3)[3] + "/" + key


async def test_write_403_stays_denied(s3_server: S3Server, proxy_s3: ForbiddingProxy) -> None:
    url = s3_server.fresh_url()
    options = {**s3_server.options(), "endpoint": proxy_s3.url, "allow_http": True}
    proxy_s3.forbidden.add(_request_path(url, "locked"))
    async with open_store(url, forbidden_is_missing=True, **options) as store:
        await store.put("free", b"x")  # passed through
        assert await store.get("free") == b"x"
        with pytest.raises(PermissionDeniedError) as info:
            await store.put("locked", b"x")
    assert "forbidden_is_missing" not in str(info.value)


async def test_missing_image_with_option_is_not_found(
    sparse: tuple[str, dict[str, Any], ForbiddingProxy, np.ndarray[Any, Any]],
) -> None:
    url, options, _, _ = sparse
    with pytest.raises(NotFoundError, match="or forbidden: forbidden_is_missing"):
        async with ngio_async.open_async(url + "-none", forbidden_is_missing=True, **options):
            pass
    with pytest.raises(PermissionDeniedError, match="forbidden_is_missing=True"):
        async with ngio_async.open_async(url + "-none", **options):  # without: the 403
            pass


def test_option_is_a_flag() -> None:
    with pytest.raises(ValueError, match="forbidden_is_missing"):
        open_store("memory://", forbidden_is_missing="maybe")
    assert open_store("memory://", forbidden_is_missing="true").forbidden_is_missing
    assert not open_store("memory://").forbidden_is_missing


def test_sharded_image_with_absent_shards(http_root: Path, proxy_http: ForbiddingProxy) -> None:
    """NGFF 0.5 with shards of 32 x 32 (four, three absent): a shard's index read (a range
    GET) answered 403 is an absent shard with the option, an error naming it without."""
    expected = np.zeros((1, 64, 64), "uint16")
    expected[0, :16, :32] = 7
    with ngio_async.create(
        http_root / "sharded.zarr",
        shape=expected.shape,
        dtype="uint16",
        axes="cyx",
        chunks=(1, 16, 16),
        shards=(1, 32, 32),
        levels=1,
    ) as ds:
        ds.write(expected[:, :16, :32], y=slice(0, 16), x=slice(0, 32))
    shards = [p for p in (http_root / "sharded.zarr" / "0" / "c").rglob("*") if p.is_file()]
    assert len(shards) == 1  # three of four absent
    url = f"{proxy_http.url}/sharded.zarr"
    with ngio_async.open(url, forbidden_is_missing=True) as ds:  # the blocking API too
        np.testing.assert_array_equal(ds.read(), expected)
    with ngio_async.open(url) as ds, pytest.raises(PermissionDeniedError, match="forbidden_is"):
        ds.read()
