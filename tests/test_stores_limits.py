"""Concurrency limits, retries, timeouts and cancellation, measured with ``InstrumentedStore``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

from ngio_async import StoreError, StoreTimeoutError
from ngio_async._limits import Limits
from ngio_async.stores import InstrumentedStore, RangeByteRequest, open_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from servers import S3Server

BLOB = bytes(range(256)) * 4
KEY = "img.zarr/c/0/0"


async def _memory(limits: Limits, latency: float = 0.0) -> InstrumentedStore:
    inner = open_store("memory://", limits=limits)
    await inner.put(KEY, BLOB)
    return InstrumentedStore(inner, latency=latency)


@pytest.fixture
async def slow() -> AsyncIterator[InstrumentedStore]:
    async with await _memory(Limits(max_requests=4), latency=0.01) as store:
        yield store


async def test_peak_in_flight_equals_limit(slow: InstrumentedStore) -> None:
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(slow.get, KEY)
    assert slow.peak_in_flight == 4
    assert slow.in_flight == 0
    assert slow.calls[("get", KEY)] == 20
    assert slow.method_counts == {"get": 20}


async def test_limiter_is_shared_by_all_operations(slow: InstrumentedStore) -> None:
    assert slow.limiter is slow.inner.limiter
    assert slow.limiter.total_tokens == 4
    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(slow.get, KEY, RangeByteRequest(i, i + 1))
            tg.start_soon(slow.exists, KEY)
            tg.start_soon(slow.get_ranges, KEY, [(0, 1), (512, 513)])
    assert slow.peak_in_flight == 4
    assert slow.limiter.borrowed_tokens == 0


async def test_get_ranges_requests_per_merged_range() -> None:
    async with await _memory(Limits(coalesce_gap=64)) as store:
        bufs = await store.get_ranges(KEY, [(0, 8), (40, 48), (500, 510), (1000, 1024)])
        assert bufs is not None
        assert [bytes(b) for b in bufs] == [BLOB[0:8], BLOB[40:48], BLOB[500:510], BLOB[1000:]]
        assert store.calls[("get", KEY)] == 3


async def test_retryable_fault_is_retried_then_succeeds() -> None:
    failures = iter([TimeoutError(), TimeoutError()])
    async with await _memory(Limits(backoff_base=0.001)) as store:
        store.fail = lambda method, key: next(failures, None)
        assert bytes(await store.get(KEY) or b"") == BLOB
        assert store.calls[("get", KEY)] == 3


async def test_non_retryable_fault_fails_once_with_library_error() -> None:
    async with await _memory(Limits(backoff_base=0.001)) as store:
        store.fail = lambda method, key: OSError("disk on fire")
        with pytest.raises(StoreError, match="disk on fire") as info:
            await store.get(KEY)
        assert info.value.key == KEY
        assert info.value.url == "memory://"
        assert store.calls[("get", KEY)] == 1


async def test_latency_beyond_timeout_is_store_timeout_error() -> None:
    limits = Limits(timeout=0.02, max_retries=2, backoff_base=0.001)
    async with await _memory(limits, latency=5.0) as store:
        with pytest.raises(StoreTimeoutError, match=KEY):
            await store.get(KEY)
        assert store.calls[("get", KEY)] == 3
        assert store.in_flight == 0


async def test_put_if_absent_is_not_retried() -> None:
    async with await _memory(Limits(backoff_base=0.001)) as store:
        store.fail = lambda method, key: TimeoutError()
        with pytest.raises(StoreTimeoutError):
            await store.put_if_absent("new", b"x")
        assert store.calls[("put", "new")] == 1
        with pytest.raises(StoreTimeoutError):
            await store.put("new", b"x")
        assert store.calls[("put", "new")] == 1 + (1 + store.limits.max_retries)


async def test_cancellation_leaves_nothing_in_flight(slow: InstrumentedStore) -> None:
    slow.latency = 10.0
    with anyio.move_on_after(0.05):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(slow.get, KEY)
    assert slow.peak_in_flight == 4
    assert slow.in_flight == 0
    assert slow.limiter.borrowed_tokens == 0


async def test_get_ranges_failure_is_one_plain_error_and_cancels_the_rest() -> None:
    seen = 0

    def fail(method: str, key: str) -> BaseException | None:
        nonlocal seen
        seen += 1
        return OSError("boom") if seen == 2 else None

    async with await _memory(Limits(coalesce_gap=0, max_requests=1), latency=0.001) as store:
        store.fail = fail
        with pytest.raises(StoreError, match="boom"):
            await store.get_ranges(KEY, [(0, 1), (10, 11), (20, 21), (30, 31), (40, 41)])
        assert store.in_flight == 0
        assert store.calls[("get", KEY)] < 5  # the remaining requests were cancelled


async def test_closing_the_wrapper_closes_the_inner_store() -> None:
    store = await _memory(Limits())
    await store.aclose()
    assert store.closed
    assert store.inner.closed


async def test_s3_peak_in_flight_and_coalescing(s3_server: S3Server) -> None:
    limits = Limits(max_requests=2, coalesce_gap=100)
    inner = open_store(s3_server.fresh_url(), limits=limits, **s3_server.options())
    async with InstrumentedStore(inner, latency=0.005) as store:
        await store.put(KEY, BLOB)
        bufs = await store.get_ranges(KEY, [(0, 10), (50, 60), (600, 610)])
        assert bufs is not None
        assert [bytes(b) for b in bufs] == [BLOB[0:10], BLOB[50:60], BLOB[600:610]]
        assert store.calls[("get", KEY)] == 2
        store.reset()
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(store.get, KEY, RangeByteRequest(i, i + 2))
        assert store.peak_in_flight == 2
        assert store.calls[("get", KEY)] == 8


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeout", float("inf"), "or None for no limit, got inf"),  # was: OverflowError at open
        ("timeout", float("nan"), "timeout must be a positive number"),
        ("timeout", True, "timeout must be a positive number"),
        ("backoff_max", float("nan"), "backoff_max must be a non-negative number"),
        ("backoff_base", -0.1, "backoff_base must be a non-negative number"),
        ("max_retries", 1.5, "max_retries must be a non-negative integer"),  # was: accepted
        ("max_requests", True, "max_requests must be a positive integer"),  # was: accepted
        ("coalesce_gap", -1, "coalesce_gap must be a non-negative integer"),
        ("read_cache_bytes", 1.0, "read_cache_bytes must be a non-negative integer"),
    ],
)
def test_limits_refuse_what_is_no_bound_naming_the_field(
    field: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_limits_take_numpy_integers_as_ints() -> None:
    limits = Limits(max_requests=np.int64(8), read_cache_bytes=np.uint32(1 << 20))  # type: ignore[arg-type]
    assert limits.max_requests == 8 and type(limits.max_requests) is int
    assert limits.read_cache_bytes == 1 << 20 and type(limits.read_cache_bytes) is int
    assert Limits(timeout=None).timeout is None
