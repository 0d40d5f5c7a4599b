"""review27s: a store closed at random moments under every kind of request at once (get,
get_many's batch, get_ranges, put, exists), on S3 and HTTP (both backends): each request
ends read, or with ClosedError; nothing is left pending or unclosed (asyncio's "Task was
destroyed", aiohttp's "Unclosed client session"; warnings are errors in this suite)."""

from __future__ import annotations

import gc
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from servers import FaultProxy, Faults, StaticServer

from ngio_async import ClosedError
from ngio_async._limits import Limits
from ngio_async.stores import AsyncStore, open_store

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from servers import S3Server

KEYS = [f"k{i}" for i in range(6)]
ROUNDS = 20


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def _race(store: AsyncStore, pause: float, *, writes: bool) -> list[BaseException]:
    """Every kind of request at once, the store closed after ``pause`` seconds: their errors."""
    errors: list[BaseException] = []

    async def run(call: Callable[[], Awaitable[object]]) -> None:
        try:
            await call()
        except Exception as exc:  # noqa: BLE001 - checked by the caller
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, lambda: store.get("k0"))
        tg.start_soon(run, lambda: store.get_many(KEYS))
        tg.start_soon(run, lambda: store.get_ranges("k1", [(0, 10), (50, 90)]))
        tg.start_soon(run, lambda: store.exists("k2"))
        if writes:
            tg.start_soon(run, lambda: store.put("w", b"y" * 1000))
        await anyio.sleep(pause)
        await store.aclose()
    return errors


def _left(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()
    return [r.getMessage() for r in caplog.records if r.name.startswith(("asyncio", "aiohttp"))]


async def test_s3_closed_at_random(
    s3_server: S3Server, s3_proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    url = s3_server.fresh_url()
    options: dict[str, Any] = {**s3_server.options(), "endpoint": s3_proxy.url.rstrip("/")}
    async with open_store(url, **options) as store:
        for key in KEYS:
            await store.put(key, b"x" * 100)
    rng = random.Random(27)
    for _ in range(ROUNDS):
        s3_proxy.faults = Faults(delay=rng.choice([0.0, 0.01, 0.05]))
        store = open_store(url, limits=Limits(max_requests=2, timeout=10), **options)
        for error in await _race(store, rng.choice([0.0, 0.01, 0.03, 0.08]), writes=True):
            assert isinstance(error, ClosedError), repr(error)
    assert not _left(caplog)


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_http_closed_at_random(
    backend: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING)
    (tmp_path / "d").mkdir()
    for key in KEYS:
        (tmp_path / "d" / key).write_bytes(b"x" * 100)
    server = StaticServer(tmp_path).start()
    kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    rng = random.Random(27)
    try:
        for _ in range(ROUNDS):
            server.faults = Faults(delay=rng.choice([0.0, 0.01, 0.05]))
            limits = Limits(max_requests=2, timeout=10)
            store = open_store(server.url + "d", limits=limits, **kwargs)
            await store.get("k5")  # (obstore's client built: get_many's batch path)
            for error in await _race(store, rng.choice([0.0, 0.01, 0.03, 0.08]), writes=False):
                assert isinstance(error, ClosedError), repr(error)
    finally:
        server.stop()
    assert not _left(caplog)
