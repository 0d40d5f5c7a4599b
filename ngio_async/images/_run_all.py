"""``_run_all``: run a coroutine function over many plans, a bounded number at a time (the
concurrency every level read and write, and the conversions, use)."""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, TypeVar

from .._prefetch import prefetch

P = TypeVar("P")

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable


async def _run_all(plans: Iterable[P], fn: Callable[[P], Awaitable[None]], window: int) -> None:
    """Run ``fn(plan)`` for every plan, at most ``window`` at a time; errors propagate plainly.

    A region of one stored object (a tile) runs inline: no task group, no extra tasks.
    """
    it = iter(plans)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if second is None:
        await fn(first)
        return
    async with prefetch(chain((first, second), it), fn, window=window, ordered=False) as results:
        async for _ in results:
            pass
