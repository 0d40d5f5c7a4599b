"""``InstrumentedStore``: a wrapper that counts requests, tracks concurrency and injects faults."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._base import AsyncStore, Buffer, ByteRequest

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager, AbstractContextManager

    from .._errors import NotFoundError

__all__ = ["FaultInjector", "InstrumentedStore"]

FaultInjector = Callable[[str, str], BaseException | None]
"""``fail(method, key)``: return an exception to raise for this request, or ``None``."""


class InstrumentedStore(AsyncStore):
    """Wrap ``inner``: count requests per method and key, track requests in flight, inject
    latency (``anyio.sleep``) and faults. For tests and benchmarks.

    Every request attempt (retries included) passes through here *inside* the store's limiter
    and per-attempt timeout, so :attr:`peak_in_flight` is what the store really ran at once
    and never exceeds ``limits.max_requests``. The wrapper shares ``inner``'s limits and
    limiter, and closing it closes ``inner``.

    :param latency: seconds each request waits before reaching ``inner``.
    :param fail: called as ``fail(method, key)`` before each request; a returned exception
        is raised as that request's failure (it goes through retries and error mapping).
    A subclass overriding ``_get_once`` sees every try of a plain GET (versioned and
    conditional GETs, :meth:`get_with_version` and ``if_match=``, go to ``inner`` directly).

    :param blocking: offer ``inner``'s blocking reads (local stores), counted as ``get`` too
        (worker threads: ``time.sleep`` latency; a fault is raised as is, no retries). Like a
        local store's, they run in the decode threads, outside the store's limiter. Versioned
        ones (:meth:`get_blocking_versioned`) are ``inner``'s, with its versions.
    """

    def __init__(
        self,
        inner: AsyncStore,
        latency: float = 0.0,
        fail: FaultInjector | None = None,
        *,
        blocking: bool = False,
    ) -> None:
        super().__init__(url=inner.url, limits=inner.limits, limiter=inner.limiter)
        self.inner = inner
        self.latency = latency
        self.fail = fail
        self.supports_writes = inner.supports_writes
        self.supports_listing = inner.supports_listing
        self.blocking_reads = blocking and inner.blocking_reads
        self.versioned = inner.versioned
        self.forbidden_is_missing = inner.forbidden_is_missing
        self.delete_batch = inner.delete_batch  # bulk deletes where inner has them
        self.calls: Counter[tuple[str, str]] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()  # blocking reads count from worker threads

    @property
    def method_counts(self) -> Counter[str]:
        """Requests per method (``get``, ``exists``, ``size``, ``list``, ``put``, ``delete``)."""
        counts: Counter[str] = Counter()
        for (method, _key), n in self.calls.items():
            counts[method] += n
        return counts

    @property
    def total_requests(self) -> int:
        """All requests seen so far (retries count separately)."""
        return sum(self.calls.values())

    def reset(self) -> None:
        """Forget the counts and the peak (not the requests in flight)."""
        self.calls.clear()
        self.peak_in_flight = self.in_flight

    def _start(self, method: str, key: str) -> None:
        with self._lock:
            self.calls[(method, key)] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _fault(self, method: str, key: str) -> None:
        if self.fail is not None:
            exc = self.fail(method, key)
            if exc is not None:
                raise exc

    @asynccontextmanager
    async def _track(self, method: str, key: str) -> AsyncIterator[None]:
        self._start(method, key)
        try:
            if self.latency > 0:
                await anyio.sleep(self.latency)
            self._fault(method, key)
            yield
        finally:
            self._end()

    async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
        async with self._track("get", key):
            return await self.inner._get_once(key, byte_range)

    def _get_attempts(
        self, key: str, byte_range: ByteRequest | None
    ) -> Callable[[], Awaitable[Buffer | None]]:
        if type(self)._get_once is not InstrumentedStore._get_once:
            return super()._get_attempts(key, byte_range)  # a subclass's hook sees every try
        inner = self.inner._get_attempts(key, byte_range)  # what one try tells the next

        async def attempt() -> Buffer | None:
            async with self._track("get", key):
                return await inner()

        return attempt

    def _checked_attempts(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> Callable[[], Awaitable[tuple[Buffer | None, str | None]]]:
        inner = self.inner._checked_attempts(key, byte_range, if_match)

        async def attempt() -> tuple[Buffer | None, str | None]:
            async with self._track("get", key):
                return await inner()

        return attempt

    async def _get_checked_once(
        self, key: str, byte_range: ByteRequest | None, if_match: str | None
    ) -> tuple[Buffer | None, str | None]:
        async with self._track("get", key):
            return await self.inner._get_checked_once(key, byte_range, if_match)

    def get_blocking(self, key: str, byte_range: ByteRequest | None = None) -> Buffer | None:
        if not self.blocking_reads:
            return super().get_blocking(key, byte_range)
        self._start("get", key)
        try:
            if self.latency > 0:
                time.sleep(self.latency)  # noqa: TID251 - a worker thread: blocking is the point
            with self._map_exceptions(key):  # as the real store maps its errors
                self._fault("get", key)
            return self.inner.get_blocking(key, byte_range)
        finally:
            self._end()

    def get_blocking_versioned(
        self, key: str, byte_range: ByteRequest | None = None, *, if_match: str | None = None
    ) -> tuple[Buffer | None, str | None]:
        if not self.blocking_reads:
            return super().get_blocking_versioned(key, byte_range, if_match=if_match)
        self._start("get", key)
        try:
            if self.latency > 0:
                time.sleep(self.latency)  # noqa: TID251 - a worker thread: blocking is the point
            with self._map_exceptions(key):
                self._fault("get", key)
            return self.inner.get_blocking_versioned(key, byte_range, if_match=if_match)
        finally:
            self._end()

    async def _exists_once(self, key: str) -> bool:
        async with self._track("exists", key):
            return await self.inner._exists_once(key)

    async def _size_once(self, key: str) -> int | None:
        async with self._track("size", key):
            return await self.inner._size_once(key)

    async def _version_once(self, key: str) -> str | None:
        async with self._track("version", key):
            return await self.inner._version_once(key)

    async def _list_once(self, prefix: str) -> list[str]:
        async with self._track("list", prefix):
            return await self.inner._list_once(prefix)

    async def _list_dir_once(self, prefix: str) -> tuple[list[str], list[str]]:
        async with self._track("list", prefix):
            return await self.inner._list_dir_once(prefix)

    async def _stored_bytes_once(self, prefix: str) -> int:
        async with self._track("list", prefix):
            return await self.inner._stored_bytes_once(prefix)

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        async with self._track("put", key):
            return await self.inner._put_once(key, data, if_absent=if_absent)

    def _update_guard(self, key: str) -> AbstractAsyncContextManager[None]:
        return self.inner._update_guard(key)  # the inner store's lock (across processes)

    async def _read_for_update_once(self, key: str) -> tuple[Buffer | None, object]:
        async with self._track("get", key):
            return await self.inner._read_for_update_once(key)

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        async with self._track("put", key):
            return await self.inner._write_for_update_once(key, data, version)

    async def _delete_once(self, key: str) -> None:
        async with self._track("delete", key):
            await self.inner._delete_once(key)

    async def _delete_many_once(self, keys: Sequence[str]) -> None:
        """One bulk request of ``inner`` (S3, Azure), counted (and faults asked) as a
        ``delete`` of each key."""
        async with self._track("delete", keys[0]):
            for key in keys[1:]:
                with self._lock:
                    self.calls[("delete", key)] += 1
                self._fault("delete", key)
            await self.inner._delete_many_once(keys)

    async def _aclose_backend(self) -> None:
        await self.inner.aclose()

    async def missing_bucket(self, key: str) -> NotFoundError | None:
        return await self.inner.missing_bucket(key)

    def _map_exceptions(self, key: str) -> AbstractContextManager[None]:
        return self.inner._map_exceptions(key)

    def _is_retryable(self, exc: Exception) -> bool:
        return self.inner._is_retryable(exc)

    def _retry_after(self, exc: Exception) -> float | None:
        return self.inner._retry_after(exc)

    def _forbidden_hint(self) -> str:
        return self.inner._forbidden_hint()

    def _ranges_honoured(self) -> bool:
        return self.inner._ranges_honoured()
