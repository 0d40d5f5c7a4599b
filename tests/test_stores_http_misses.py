"""The default HTTP store's first misses (obstore's client reads 405 as missing too): one
confirmation by aiohttp, whatever the number of misses meanwhile."""

from __future__ import annotations

import anyio
import pytest
from servers import Faults, StaticServer

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import AsyncStore, open_store

pytestmark = pytest.mark.anyio

KEY = "data/blob.bin"
BLOB = bytes(range(256)) * 4
FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=2, timeout=10)
N = 8


async def _gather(store: AsyncStore, keys: list[str]) -> list[object]:
    results: list[object] = [None] * len(keys)

    async def get(i: int) -> None:
        try:
            results[i] = await store.get(keys[i])
        except StoreError as exc:
            results[i] = exc

    async with anyio.create_task_group() as tg:
        for i in range(len(keys)):
            tg.start_soon(get, i)
    return results


async def test_concurrent_first_misses_are_confirmed_once(http_server: StaticServer) -> None:
    """A tile stream over a sparse image: many absent chunks at once cost a request each,
    plus one confirmation (two each before)."""
    async with open_store(http_server.url, limits=FAST) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB  # aiohttp: obstore's client may now
        http_server.reset()
        http_server.faults = Faults(delay=0.05)  # the misses all reach the server together
        keys = [f"data/absent/{i}" for i in range(N)]
        assert await _gather(store, keys) == [None] * N
        assert http_server.count() <= N + 1
        http_server.reset()
        assert await store.get("data/absent/again") is None  # confirmed: obstore's word
    assert http_server.count() == 1


async def test_concurrent_first_405s_are_never_missing(http_server: StaticServer) -> None:
    """Misses waiting for a confirmation that says 405 (not missing) ask aiohttp themselves."""
    async with open_store(http_server.url, limits=FAST) as store:
        assert bytes(await store.get(KEY) or b"") == BLOB
        http_server.faults = Faults(status=405, status_times=-1, delay=0.05)
        results = await _gather(store, [f"data/absent/{i}" for i in range(N)])
        assert all(isinstance(r, StoreError) and "405" in str(r) for r in results), results
        http_server.faults = Faults()
        assert bytes(await store.get(KEY) or b"") == BLOB
