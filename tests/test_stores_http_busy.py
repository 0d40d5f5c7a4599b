"""HTTP stores and busy servers: 503 / 429 with ``Retry-After``, on every GET path."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from servers import Faults, StaticServer

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import InstrumentedStore, RangeByteRequest, _retry, open_store

if TYPE_CHECKING:
    from ngio_async.stores import AsyncStore

BLOB = bytes(range(256)) * 4
KEY = "data/blob.bin"
PATH = "/data/blob.bin"


def _open(server: StaticServer, backend: str, limits: Limits) -> AsyncStore:
    if backend == "default":
        return open_store(server.url, limits=limits)
    return open_store(server.url, limits=limits, backend=backend)  # type: ignore[arg-type]


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits, recorded instead of slept."""
    waited: list[float] = []

    async def sleep(delay: float) -> None:
        waited.append(delay)

    monkeypatch.setattr(_retry, "_sleep", sleep)
    return waited


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("byte_range", [None, RangeByteRequest(10, 20)])
async def test_default_store_waits_the_retry_after_of_a_busy_server(
    http_server: StaticServer,
    delays: list[float],
    status: int,
    byte_range: RangeByteRequest | None,
) -> None:
    """GET bodies go through obstore's client, whose own retries ignore ``Retry-After``:
    a server asking for 3 s was asked again five times within a few hundred ms and the read
    failed. Its next tries now go through aiohttp, whose answer's wait is waited."""
    limits = Limits(backoff_base=0.001, backoff_max=5.0, max_retries=4)
    async with _open(http_server, "default", limits) as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"  # aiohttp
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"  # obstore
        http_server.reset()
        http_server.faults = Faults(status=status, status_times=3, retry_after="3")
        got = await store.get(KEY, byte_range)
        assert bytes(got or b"") == (BLOB if byte_range is None else BLOB[10:20])
    assert http_server.count("GET", PATH) == 4  # 3 busy answers, then the object
    assert delays[1:] == [3.0, 3.0]  # obstore's answer told no wait; aiohttp's did


async def test_default_store_retries_when_obstores_client_gets_no_answer(
    http_server: StaticServer, delays: list[float]
) -> None:
    """obstore's client has no retries of its own here: a connection dropped before the
    answer is retried by the store, within its budget."""
    limits = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=2)
    async with _open(http_server, "default", limits) as store:
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        http_server.reset()
        http_server.faults = Faults(drop=True, drop_times=2)
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert http_server.count("GET", PATH) == 3
        http_server.reset()
        http_server.faults = Faults(status=503, status_times=-1)
        with pytest.raises(StoreError, match="503"):
            await store.get(KEY)
    assert http_server.count("GET", PATH) == 1 + limits.max_retries


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_an_instrumented_http_store_waits_the_retry_after_too(
    http_server: StaticServer, delays: list[float], backend: str
) -> None:
    """The wrapper that counts requests asked its own (default) hook for the wait, which
    knows no Retry-After: a benchmark against a throttling server retried at once."""
    limits = Limits(backoff_base=0.001, backoff_max=5.0, max_retries=4)
    store = InstrumentedStore(_open(http_server, backend, limits))
    async with store:
        for _ in range(2):
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        http_server.faults = Faults(status=503, status_times=2, retry_after="3")
        assert bytes(await store.get(KEY) or b"") == BLOB
    assert delays[-1] == 3.0
    assert store.calls[("get", KEY)] == 3
