"""Retries with exponential backoff and full jitter, one timeout per attempt."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .._limits import Limits

__all__ = ["backoff_delay", "call_with_retry"]

T = TypeVar("T")


def backoff_delay(retry: int, limits: Limits, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): full jitter.

    A uniform draw from ``[0, min(backoff_max, backoff_base * 2**retry))`` (AWS "full jitter").
    """
    cap = min(limits.backoff_max, limits.backoff_base * (2.0**retry))
    return cap * rand()


async def call_with_retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    limits: Limits,
    retryable: Callable[[Exception], bool],
    limiter: anyio.CapacityLimiter | None = None,
    retry_after: Callable[[Exception], float | None] | None = None,
) -> T:
    """Run ``attempt()`` until it succeeds, fails for good, or retries run out.

    Each attempt holds one token of ``limiter`` (released while backing off) and runs under
    ``anyio.fail_after(limits.timeout)``; an attempt that times out raises ``TimeoutError``,
    which is retryable. Other exceptions are retried when ``retryable(exc)`` is true, at most
    ``limits.max_retries`` times; the last exception propagates unchanged. A delay that
    ``retry_after(exc)`` asks for (a server's ``Retry-After``) is waited, up to
    ``limits.backoff_max``, when it is longer than the backoff. Cancellation is never caught.
    """
    retry = 0
    while True:
        try:
            if limiter is None:
                return await _timed(attempt, limits.timeout)
            try:  # a free token is taken without a trip through the event loop
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
            try:
                return await _timed(attempt, limits.timeout)
            finally:
                limiter.release()
        except Exception as exc:
            if retry >= limits.max_retries or not (isinstance(exc, TimeoutError) or retryable(exc)):
                raise
            delay = backoff_delay(retry, limits)
            asked = retry_after(exc) if retry_after is not None else None
            if asked is not None:
                delay = max(delay, min(asked, limits.backoff_max))
        await _sleep(delay)
        retry += 1


async def _timed(attempt: Callable[[], Awaitable[T]], seconds: float | None) -> T:
    """``attempt()`` under ``anyio.fail_after(seconds)``, as one bare cancel scope: the
    generator layers of ``fail_after`` cost 5-10 µs of the event loop on every request."""
    if seconds is None:
        return await attempt()
    scope = anyio.CancelScope(deadline=anyio.current_time() + seconds)
    with scope:
        return await attempt()
    # only a cancellation this scope caught (its deadline) gets here
    raise TimeoutError


_sleep = anyio.sleep  # the backoff wait (tests record it)
