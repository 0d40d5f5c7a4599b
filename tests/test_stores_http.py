"""HTTP stores against a real loopback server: Range handling, coalescing and faults."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs

import anyio
import pytest
from servers import Faults, StaticServer, self_signed_tls

from ngio_async import PermissionDeniedError, StoreError, StoreTimeoutError
from ngio_async._limits import Limits
from ngio_async.stores import (
    AsyncStore,
    HTTPStore,
    ObstoreStore,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

BLOB = bytes(range(256)) * 4
KEY = "data/blob.bin"
PATH = "/data/blob.bin"
FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=2, timeout=10)


def _open(server: StaticServer, backend: str, limits: Limits = FAST) -> AsyncStore:
    """``default``: HTTPStore with GET bodies on obstore's client; ``aiohttp``: aiohttp alone;
    ``obstore``: obstore's HTTPStore alone."""
    if backend == "default":
        return open_store(server.url, limits=limits)
    return open_store(server.url, limits=limits, backend=backend)  # type: ignore[arg-type]


@pytest.fixture(params=["default", "aiohttp", "obstore"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _aiohttp_agent(agent: str) -> bool:
    return "aiohttp" in agent


async def test_default_http_store_gets_bodies_with_obstore_and_heads_with_aiohttp(
    http_server: StaticServer,
) -> None:
    async with open_store(http_server.url) as store:
        assert isinstance(store, HTTPStore)
        assert bytes(await store.get(KEY) or b"") == BLOB  # aiohttp first: it reaches the server
        assert bytes(await store.get(KEY, RangeByteRequest(10, 20)) or b"") == BLOB[10:20]
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert await store.exists(KEY)
    seen = [(r.method, r.range, _aiohttp_agent(r.agent)) for r in http_server.requests]
    assert seen == [
        ("GET", None, True),
        ("GET", "bytes=10-19", False),  # then obstore's client
        ("GET", f"bytes=0-{2**40 - 1}", False),  # a whole object as one bounded range
        ("HEAD", None, True),
    ]
    assert {r.path for r in http_server.requests} == {PATH}  # no doubled slash


_TLS_CLIENT = """
import asyncio, sys
from ngio_async.stores import RangeByteRequest, open_store

async def main():
    async with open_store(sys.argv[1]) as store:
        whole = [bytes(await store.get("data/blob.bin") or b"") for _ in range(3)]
        part = bytes(await store.get("data/blob.bin", RangeByteRequest(1, 3)) or b"")
    print(len(set(whole)), len(whole[0]), part.hex())

asyncio.run(main())
"""


def test_default_store_hands_gets_back_to_aiohttp_when_obstore_cannot_connect(
    tmp_path: Path, http_root: Path
) -> None:
    """HTTPS with a CA that Python's ssl trusts (SSL_CERT_FILE, read when aiohttp starts) and
    obstore's client does not: every read still succeeds, through aiohttp."""
    context, ca = self_signed_tls(tmp_path)
    server = StaticServer(http_root, ssl_context=context).start()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _TLS_CLIENT, server.url],
            capture_output=True,
            text=True,
            env={**os.environ, "SSL_CERT_FILE": str(ca)},
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split() == ["1", str(len(BLOB)), BLOB[1:3].hex()]
        # aiohttp answered every request that reached the server (obstore's never got through)
        assert [r.range for r in server.requests] == [None, None, None, "bytes=1-2"]
        assert all(_aiohttp_agent(r.agent) for r in server.requests)
    finally:
        server.stop()


async def test_obstore_backend_paths_have_no_doubled_slash(http_server: StaticServer) -> None:
    assert http_server.url.endswith("/")
    async with open_store(http_server.url, backend="obstore") as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert [r.path for r in http_server.requests] == [PATH]


@pytest.mark.parametrize("url_or_option", ["credentials", "headers", "backend=aiohttp"], ids=str)
async def test_aiohttp_alone_with_credentials_headers_or_when_asked(
    http_server: StaticServer, url_or_option: str
) -> None:
    url, options = http_server.url, cast("dict[str, Any]", {})
    if url_or_option == "credentials":
        url = url.replace("http://", "http://alice:s3cr3t@")
    elif url_or_option == "headers":
        options = {"headers": {"X-Token": "t"}}
    else:
        options = {"backend": "aiohttp"}
    async with open_store(url, **options) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert [_aiohttp_agent(r.agent) for r in http_server.requests] == [True]


async def test_backends_by_name(http_server: StaticServer) -> None:
    async with open_store(http_server.url, backend="aiohttp") as store:
        assert isinstance(store, HTTPStore)
    async with open_store(http_server.url, backend="obstore") as store:
        assert isinstance(store, ObstoreStore)


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_range_headers_sent(http_server: StaticServer, backend: str) -> None:
    async with _open(http_server, backend) as store:
        await store.get(KEY, RangeByteRequest(10, 20))
        await store.get(KEY, OffsetByteRequest(1000))
        await store.get(KEY, SuffixByteRequest(5))
        await store.get(KEY)
    assert [r.range for r in http_server.requests] == [
        "bytes=10-19",
        "bytes=1000-",
        "bytes=-5",
        None if backend == "aiohttp" else f"bytes=0-{2**40 - 1}",  # obstore: one bounded range
    ]


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_server_ignoring_range_is_sliced(http_server: StaticServer, backend: str) -> None:
    http_server.faults = Faults(ignore_range=True)
    async with _open(http_server, backend) as store:
        assert bytes(await store.get(KEY, RangeByteRequest(10, 20)) or b"") == BLOB[10:20]
        assert bytes(await store.get(KEY, SuffixByteRequest(3)) or b"") == BLOB[-3:]
        assert bytes(await store.get(KEY, OffsetByteRequest(1020)) or b"") == BLOB[1020:]
        bufs = await store.get_ranges(KEY, [(0, 2), (900, 902)])
        assert bufs is not None
        assert [bytes(b) for b in bufs] == [BLOB[0:2], BLOB[900:902]]
        with pytest.raises(StoreError, match="past the end"):
            await store.get(KEY, RangeByteRequest(2000, 2001))


async def test_obstore_whole_gets_drop_the_bounded_range_once_it_is_ignored(
    http_server: StaticServer,
) -> None:
    http_server.faults = Faults(ignore_range=True)
    async with _open(http_server, "obstore") as store:
        assert isinstance(store, ObstoreStore)
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert not store.whole_as_range
        assert bytes(await store.get(KEY) or b"") == BLOB
    # the bounded range answered with 200 (refused by obstore), the same GET plainly, then
    # plain GETs only
    assert [r.range for r in http_server.requests] == [f"bytes=0-{2**40 - 1}", None, None]


async def test_default_store_switches_ranges_to_aiohttp_once(http_server: StaticServer) -> None:
    http_server.faults = Faults(ignore_range=True)
    async with _open(http_server, "default") as store:
        assert bytes(await store.get(KEY) or b"") == BLOB  # aiohttp, the first read
        assert bytes(await store.get(KEY, RangeByteRequest(10, 20)) or b"") == BLOB[10:20]
        first = [_aiohttp_agent(r.agent) for r in http_server.requests]
        assert first == [True, False, True]  # obstore refused the 200, aiohttp sliced it
        for i in range(3):
            assert bytes(await store.get(KEY, RangeByteRequest(i, i + 5)) or b"") == BLOB[i : i + 5]
        assert bytes(await store.get(KEY) or b"") == BLOB  # whole bodies: still obstore
    agents = [_aiohttp_agent(r.agent) for r in http_server.requests]
    assert agents == [True, False, True, True, True, True, False]


@pytest.mark.parametrize(("gap", "expected_requests"), [(0, 4), (100, 3), (10_000, 1)])
async def test_get_ranges_coalesces_requests(
    http_server: StaticServer, backend: str, gap: int, expected_requests: int
) -> None:
    ranges = [(0, 10), (20, 30), (500, 510), (900, 1000)]
    limits = Limits(coalesce_gap=gap)
    async with _open(http_server, backend, limits) as store:
        bufs = await store.get_ranges(KEY, ranges)
    assert bufs is not None
    assert [bytes(b) for b in bufs] == [BLOB[s:e] for s, e in ranges]
    assert http_server.count("GET", PATH) == expected_requests


async def test_coalesced_range_header(http_server: StaticServer) -> None:
    async with _open(http_server, "aiohttp", Limits(coalesce_gap=100)) as store:
        await store.get_ranges(KEY, [(0, 10), (20, 30)])
    assert [r.range for r in http_server.requests] == ["bytes=0-29"]


async def test_503_twice_then_success(http_server: StaticServer, backend: str) -> None:
    http_server.faults = Faults(status=503, status_times=2)
    async with _open(http_server, backend) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert http_server.count("GET", PATH) == 3


async def test_429_is_retried(http_server: StaticServer, backend: str) -> None:
    http_server.faults = Faults(status=429, status_times=1)
    async with _open(http_server, backend) as store:
        assert bytes(await store.get(KEY, RangeByteRequest(0, 4)) or b"") == BLOB[:4]
    assert http_server.count("GET", PATH) == 2


async def test_persistent_503_gives_up_after_max_retries(
    http_server: StaticServer, backend: str
) -> None:
    http_server.faults = Faults(status=503, status_times=-1)
    async with _open(http_server, backend) as store:
        with pytest.raises(StoreError, match=r"data/blob\.bin") as info:
            await store.get(KEY)
    assert type(info.value) is StoreError
    assert http_server.count("GET", PATH) == 1 + FAST.max_retries


@pytest.mark.parametrize("status", [401, 403])
async def test_denied_is_permission_error_without_retry(
    http_server: StaticServer, backend: str, status: int
) -> None:
    http_server.faults = Faults(status=status, status_times=-1)
    async with _open(http_server, backend) as store:
        with pytest.raises(PermissionDeniedError) as info:
            await store.get(KEY)
    assert isinstance(info.value, PermissionError)
    assert info.value.key == KEY
    assert http_server.count() == 1


@pytest.mark.parametrize("status", [400, 405, 418])
async def test_other_4xx_is_not_retried(
    http_server: StaticServer, backend: str, status: int
) -> None:
    http_server.faults = Faults(status=status, status_times=-1)
    async with _open(http_server, backend) as store:
        if backend == "obstore" and status == 405:
            # obstore's HTTP client reads 405 as "not found" (WebDAV servers answer so)
            assert await store.get(KEY, RangeByteRequest(0, 8)) is None
        else:
            with pytest.raises(StoreError):
                await store.get(KEY, RangeByteRequest(0, 8))
    assert http_server.count() == 1


async def test_default_store_never_reads_a_405_as_missing(http_server: StaticServer) -> None:
    async with _open(http_server, "default") as store:
        assert bytes(await store.get(KEY) or b"") == BLOB  # aiohttp
        http_server.faults = Faults(status=405, status_times=-1)
        with pytest.raises(StoreError, match="405"):
            await store.get(KEY)  # obstore's client says "missing"; aiohttp says 405
        http_server.faults = Faults()
        assert bytes(await store.get(KEY) or b"") == BLOB
    # aiohttp, obstore's miss, aiohttp's 405, then aiohttp alone for good
    assert [_aiohttp_agent(r.agent) for r in http_server.requests] == [True, False, True, True]


async def test_default_store_confirms_its_first_miss_once(http_server: StaticServer) -> None:
    async with _open(http_server, "default") as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert await store.get("data/nope.bin") is None
        assert await store.get("data/other.bin") is None
    # aiohttp; obstore's first miss asked again of aiohttp; then obstore's word is taken
    agents = [_aiohttp_agent(r.agent) for r in http_server.requests]
    assert agents == [True, False, True, False]


async def test_errors_name_the_object_url_once_joined(
    http_server: StaticServer, backend: str
) -> None:
    http_server.faults = Faults(status=403, status_times=-1)
    async with _open(http_server, backend) as store:
        assert not store.url.endswith("/")
        with pytest.raises(PermissionDeniedError) as info:
            await store.get(KEY)
    assert f"{http_server.url.rstrip('/')}" in str(info.value) and "//data" not in str(info.value)


async def test_404_is_none_with_one_request(http_server: StaticServer, backend: str) -> None:
    async with _open(http_server, backend) as store:
        assert await store.get("data/nope.bin") is None
        assert await store.get("data/nope.bin", RangeByteRequest(0, 4)) is None
        assert await store.get("data/other.bin") is None
    assert http_server.count() == 3


async def test_short_range_answer_is_a_store_error(http_server: StaticServer, backend: str) -> None:
    http_server.faults = Faults(short=True)
    async with _open(http_server, backend) as store:
        with pytest.raises(StoreError, match=r"data/blob\.bin"):
            await store.get(KEY, RangeByteRequest(0, 100))
        with pytest.raises(StoreError):
            await store.get_ranges(KEY, [(0, 10), (20, 30)])
        # a range clamped by the object's real end is not truncation
        http_server.faults = Faults()
        assert bytes(await store.get(KEY, RangeByteRequest(1000, 2000)) or b"") == BLOB[1000:]


async def test_a_body_cut_off_once_is_fetched_again(
    http_server: StaticServer, backend: str
) -> None:
    # the connection drops mid-body on the first answer only: a retry, not an error
    async with _open(http_server, backend) as store:
        for request in (None, RangeByteRequest(0, 500)):
            http_server.reset()
            http_server.faults = Faults(drop=True, drop_times=1)
            got = await store.get(KEY, request)
            assert bytes(got or b"") == (BLOB if request is None else BLOB[:500])
            assert http_server.count("GET") == 2


async def test_dropped_connection_mid_body_is_a_store_error(
    http_server: StaticServer, backend: str
) -> None:
    http_server.faults = Faults(drop=True)
    async with _open(http_server, backend) as store:
        with pytest.raises(StoreError, match=r"data/blob\.bin"):
            await store.get(KEY)
        with pytest.raises(StoreError):
            await store.get(KEY, RangeByteRequest(0, 500))


async def test_dropped_connection_is_retried_by_aiohttp_store(http_server: StaticServer) -> None:
    http_server.faults = Faults(drop=True)
    async with _open(http_server, "aiohttp") as store:
        with pytest.raises(StoreError, match="ClientPayloadError"):
            await store.get(KEY)
    assert http_server.count("GET", PATH) == 1 + FAST.max_retries


async def test_timeout_is_store_timeout_error(http_server: StaticServer, backend: str) -> None:
    # obstore's client times a request out itself at twice limits.timeout, and then retries
    # on its own: a loaded machine whose loop lags past that saw 3 GETs. A 0.3 s timeout
    # keeps 0.3 s of margin before obstore's 0.6 s, which the 2 s answer never beats
    http_server.faults = Faults(delay=2.0)
    limits = Limits(timeout=0.3, max_retries=1, backoff_base=0.001)
    async with _open(http_server, backend, limits) as store:
        with pytest.raises(StoreTimeoutError, match=r"data/blob\.bin") as info:
            await store.get(KEY)
    assert isinstance(info.value, TimeoutError)
    assert http_server.count("GET", PATH) == 2  # one retry after the first timeout


async def test_exists_uses_head_and_falls_back_to_get(http_server: StaticServer) -> None:
    async with _open(http_server, "aiohttp") as store:
        assert await store.exists(KEY)
        assert not await store.exists("data/nope")
        assert await store.exists("data/empty.bin")
        assert http_server.count("HEAD") == 3
        http_server.faults = Faults(no_head=True)
        assert await store.exists(KEY)
        assert await store.exists("data/empty.bin")
        assert not await store.exists("data/nope")


async def test_server_side_peak_in_flight_is_bounded(
    http_server: StaticServer, backend: str
) -> None:
    http_server.faults = Faults(delay=0.02)
    store = _open(http_server, backend, Limits(max_requests=3))
    async with store, anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(store.get, KEY, RangeByteRequest(i, i + 1))
    assert http_server.count("GET") == 12
    assert 1 <= http_server.peak_in_flight <= 3


async def test_credentials_never_reach_url_or_messages(http_server: StaticServer) -> None:
    url = http_server.url.replace("http://", "http://alice:s3cr3t@")
    http_server.faults = Faults(status=403, status_times=-1)
    async with open_store(url, limits=FAST) as store:
        assert "s3cr3t" not in store.url
        assert "alice" not in store.url
        with pytest.raises(PermissionDeniedError) as info:
            await store.get(KEY)
    assert "s3cr3t" not in str(info.value)
    assert http_server.count() == 1


def test_obstore_backend_refuses_credentials_in_the_url(http_server: StaticServer) -> None:
    """obstore's client sends no credentials from the URL (every request was a 401, whose
    message showed the password): refused up front, naming the backend that sends them."""
    url = http_server.url.replace("http://", "http://alice:s3cr3t@")
    with pytest.raises(ValueError, match="credentials") as info:
        open_store(url, backend="obstore")
    assert "s3cr3t" not in str(info.value)


async def test_wrapped_obstore_http_store_errors_hide_credentials(
    http_server: StaticServer,
) -> None:
    from obstore.store import HTTPStore as ObstoreHTTPStore

    url = http_server.url.replace("http://", "http://alice:s3cr3t@")
    http_server.faults = Faults(status=401, status_times=-1)
    inner = ObstoreHTTPStore.from_url(url, client_options={"allow_http": True})
    async with open_store(inner, limits=FAST) as store:
        with pytest.raises(PermissionDeniedError) as info:
            await store.get(KEY)
    assert "s3cr3t" not in str(info.value)


async def test_session_is_created_lazily_and_closed(http_server: StaticServer) -> None:
    store = HTTPStore(http_server.url)
    assert store._session is None
    async with store:
        await store.get(KEY)
        session = store._session
        assert session is not None
    assert session.closed
    assert store._session is None


def test_http_store_rejects_bad_urls() -> None:
    with pytest.raises(ValueError, match="http"):
        HTTPStore("ftp://example.invalid/x")
    with pytest.raises(ValueError, match="fragment"):
        HTTPStore("http://127.0.0.1:1/x#part")


SIG = "sv=2024&sig=a%2Bb%2F%3D&se=x+y"  # a container SAS / token query, with escapes


async def test_query_string_is_kept_on_every_request(
    http_server: StaticServer, backend: str
) -> None:
    """A signed or token URL (``.../image.zarr/?sv=...&sig=...``): keys go into the path, the
    query is sent with every request (it was refused, or put after a doubled slash)."""
    url = f"{http_server.url}data/?{SIG}"
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    async with open_store(url, limits=FAST, **options) as store:
        assert store.url == f"{http_server.url}data"  # no secret in the store's URL
        for _ in range(2):  # the default store: aiohttp first, then (without a query) obstore
            assert bytes(await store.get("blob.bin") or b"") == BLOB
            assert bytes(await store.get("blob.bin", RangeByteRequest(1, 3)) or b"") == BLOB[1:3]
        assert await store.exists("small.txt")
        assert await store.size("small.txt") == len(b"hello world")
    targets = [target.partition("?") for target in http_server.raw_targets]
    assert {path for path, _, _ in targets} == {"/data/blob.bin", "/data/small.txt"}
    assert all(parse_qs(query) == parse_qs(SIG) for _, _, query in targets)


async def test_query_string_never_appears_in_errors(http_root: Path, backend: str) -> None:
    server = StaticServer(http_root).start()
    url = f"{server.url}data/?{SIG}"
    server.stop()  # nothing listens there any more: connection errors
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    async with open_store(url, limits=Limits(max_retries=0), **options) as store:
        with pytest.raises(StoreError) as info:
            await store.get("blob.bin")
    assert "sig" not in str(info.value)
    assert info.value.url == url.partition("/?")[0]


async def test_cancelled_requests_leave_nothing_borrowed(
    http_server: StaticServer, backend: str
) -> None:
    http_server.faults = Faults(delay=0.5)
    async with _open(http_server, backend, Limits(max_requests=2)) as store:
        with anyio.move_on_after(0.05):
            async with anyio.create_task_group() as tg:
                for i in range(6):
                    tg.start_soon(store.get, KEY, RangeByteRequest(i, i + 1))
        assert store.limiter.borrowed_tokens == 0
        assert http_server.peak_in_flight <= 2
        # the server keeps serving the abandoned requests; the store is still usable
        http_server.faults = Faults()
        assert bytes(await store.get(KEY, RangeByteRequest(0, 3)) or b"") == BLOB[:3]


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_objects_stored_with_content_encoding_gzip_are_decoded(
    http_server: StaticServer, backend: str
) -> None:
    """An object uploaded with ``Content-Encoding: gzip`` is served compressed whatever the
    client accepts; browsers and fsspec decode it. The compressed bytes were returned as the
    object (wrong data), and ranges of them as ranges of the object."""
    http_server.faults = Faults(gzip_stored=True)
    async with _open(http_server, backend) as store:
        for _ in range(2):  # the default store: obstore's client (which cannot tell) stays out
            assert bytes(await store.get(KEY) or b"") == BLOB
        assert bytes(await store.get(KEY, RangeByteRequest(10, 20)) or b"") == BLOB[10:20]
        assert bytes(await store.get(KEY, SuffixByteRequest(4)) or b"") == BLOB[-4:]
        assert await store.size(KEY) == len(BLOB)  # not the compressed Content-Length
    assert all(_aiohttp_agent(r.agent) for r in http_server.requests)


async def test_default_store_keeps_obstore_after_a_server_error_on_its_first_get(
    http_server: StaticServer,
) -> None:
    """A 5xx answered to obstore's first GET shows that its client reaches the server: the
    error is final (one retry budget, not one per client) and obstore's client stays in
    use. It handed every later GET to aiohttp and spent the retries twice."""
    async with _open(http_server, "default") as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"  # aiohttp
        http_server.reset()
        http_server.faults = Faults(status=503, status_times=-1)
        with pytest.raises(StoreError, match="503"):
            await store.get(KEY)
        assert http_server.count("GET", PATH) == 1 + FAST.max_retries
        http_server.reset()
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert [_aiohttp_agent(r.agent) for r in http_server.requests] == [False]


async def test_closing_with_a_request_in_flight_opens_no_new_session(
    http_server: StaticServer,
) -> None:
    """aclose() cuts the request in flight; its retry must not open a new aiohttp session
    (which nothing closed: a leaked session and connector)."""
    http_server.faults = Faults(delay=0.5)
    store = _open(http_server, "aiohttp")
    assert isinstance(store, HTTPStore)
    errors: list[Exception] = []

    async def get() -> None:
        try:
            await store.get(KEY)
        except Exception as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(get)
        while http_server.count() == 0:  # noqa: ASYNC110 - the server is in another thread
            await anyio.sleep(0.01)
        await store.aclose()
    assert store._session is None
    assert [type(e).__name__ for e in errors] == ["ClosedError"]


@pytest.mark.parametrize(("header", "expected"), [("1", 1.0), ("120", 5.0)])
async def test_retry_after_is_honoured_up_to_backoff_max(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch, header: str, expected: float
) -> None:
    """A 503 or 429 with ``Retry-After`` waits that long before the retry (capped at
    ``backoff_max``); the backoff ignored it and retried within milliseconds."""
    from ngio_async.stores import _retry

    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(_retry, "_sleep", sleep)
    http_server.faults = Faults(status=503, status_times=2, retry_after=header)
    limits = Limits(backoff_base=0.001, backoff_max=5.0, max_retries=2)
    async with open_store(http_server.url, limits=limits, backend="aiohttp") as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert delays == [expected, expected]


def test_retry_after_header_values() -> None:
    from ngio_async.stores._http import _parse_retry_after

    assert _parse_retry_after("7") == 7.0
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert 3590 < (_parse_retry_after(_http_date(3600)) or 0) <= 3600
    assert _parse_retry_after("soon") is None
    assert _parse_retry_after(None) is None


def _http_date(seconds_ahead: float) -> str:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_ahead), usegmt=True)


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_proxy_from_the_environment_is_used(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """``HTTP_PROXY`` / ``HTTPS_PROXY`` are honoured as by obstore's client, curl and
    requests (aiohttp ignored them: behind a proxy every request failed). The loopback
    server plays the proxy for an origin where nothing listens (port 9)."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", http_server.url)
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    async with open_store("http://localhost:9/", limits=FAST, **options) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert await store.exists(KEY)
    assert http_server.count(path=PATH) == 2


def test_proxy_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ngio_async.stores._http import _env_proxy

    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://u:p%40ss@proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.lab.internal")
    assert _env_proxy("https://data.example.org/x") == "http://u:p%40ss@proxy.internal:3128"
    assert _env_proxy("http://data.example.org/x") is None  # no HTTP_PROXY
    assert _env_proxy("https://zarr.lab.internal/x") is None  # NO_PROXY
    assert _env_proxy("https://localhost:8000/x") is None
