"""``get_many`` batches on obstore's client: ``Limits.timeout`` limits each request from its
start, never the time a batch waits for the limiter's tokens (a batch that waited longer than
that was dropped, its objects fetched again one by one: more GETs, and slower)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from ngio_async import StoreTimeoutError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

CALLS = 20  # get_many calls at once
PER_CALL = 10  # keys each
# two requests in flight, each answered after 10 ms: the 200 GETs take about 1 s, and most
# batches wait longer than the timeout for their first token; no request comes near it
LIMITS = Limits(max_requests=2, timeout=0.4, max_retries=0)


@pytest.fixture
def objects(http_root: Path) -> dict[str, bytes]:
    out = {}
    for call in range(CALLS):
        for i in range(PER_CALL):
            key = f"data/{call}/c/{i}"
            out[key] = f"{key} ".encode() * (1 + i)
            path = http_root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(out[key])
    return out


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_batches_waiting_for_tokens_are_not_fetched_again(
    http_server: StaticServer, objects: dict[str, bytes], backend: str
) -> None:
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(http_server.url, limits=LIMITS, **kwargs) as store:  # type: ignore[arg-type]
        await store.get("data/0/c/0")  # the default HTTP store's first GET is aiohttp's
        assert store.gets_together
        http_server.faults.delay = 0.01
        before = http_server.count("GET")
        got: dict[str, bytes | None] = {}

        async def batch(call: int) -> None:
            keys = [f"data/{call}/c/{i}" for i in range(PER_CALL)]
            for key, data in zip(keys, await store.get_many(keys), strict=True):
                got[key] = None if data is None else bytes(data)

        async with anyio.create_task_group() as tg:
            for call in range(CALLS):
                tg.start_soon(batch, call)
        assert got == objects
        assert http_server.count("GET") - before == CALLS * PER_CALL  # none fetched twice
        assert http_server.peak_in_flight <= LIMITS.max_requests


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_a_batch_request_past_its_timeout_times_out(
    http_server: StaticServer, objects: dict[str, bytes], backend: str
) -> None:
    """The limit still holds for each request of a batch: one answered too late ends it (then
    the objects are asked for one by one, which time out as well)."""
    kwargs = {} if backend == "default" else {"backend": backend}
    limits = Limits(max_requests=4, timeout=0.1, max_retries=0)
    async with open_store(http_server.url, limits=limits, **kwargs) as store:  # type: ignore[arg-type]
        await store.get("data/0/c/0")
        assert store.gets_together
        http_server.faults.delay = 5.0  # the server's stop() answers the held ones at once
        with pytest.raises(StoreTimeoutError, match="timed out"):
            await store.get_many([f"data/1/c/{i}" for i in range(PER_CALL)])
