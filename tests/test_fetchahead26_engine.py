"""The prefetch engine's late reservation (``reserve_late=True``): an item's bytes are reserved
when its fn calls ``reserve_decoded()`` (between its fetch and its decode), so later items'
fetches run while earlier results wait for the consumer, within ``max_bytes`` all the same.

The fetches are held on events the test sets: counted, never timed.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest

from ngio_async._prefetch import prefetch, reserve_decoded

pytestmark = pytest.mark.anyio

SIZE = 10  # bytes each item's result is declared to hold
MAX = 30  # max_bytes: three results
AHEAD = 40  # ahead_bytes: four items fetched and not reserved yet


class Fetches:
    """A fake fn: each item's "fetch" waits for its event, then it reserves its bytes and
    "decodes"; counts the fetches under way, the grants (in order) and the bytes held."""

    def __init__(self, n: int, *, reserve: bool = True) -> None:
        self.release = [anyio.Event() for _ in range(n)]
        self.reserve = reserve
        self.fetching = 0
        self.peak_fetching = 0
        self.granted: list[int] = []
        self.held = 0  # bytes of decoded results not consumed yet
        self.peak_held = 0
        self.fail: int | None = None

    async def __call__(self, i: int) -> int:
        self.fetching += 1
        self.peak_fetching = max(self.peak_fetching, self.fetching)
        try:
            await self.release[i].wait()
        finally:
            self.fetching -= 1
        if i == self.fail:
            raise ValueError(f"item {i} failed")
        if self.reserve:
            await reserve_decoded()
            self.granted.append(i)
        self.held += SIZE
        self.peak_held = max(self.peak_held, self.held)
        return i

    def consumed(self) -> None:
        self.held -= SIZE


async def until(check: Any) -> None:
    """Let the other tasks run until ``check()`` holds (a bound number of steps)."""
    for _ in range(2000):
        if check():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("the state waited for was never reached")


async def settle() -> None:
    for _ in range(50):
        await anyio.lowlevel.checkpoint()


def late(items: Any, fn: Any, **kw: Any) -> Any:
    options: dict[str, Any] = {"window": 8, "max_bytes": MAX, "size_of": lambda i: SIZE}
    options.update(kw)
    return prefetch(items, fn, reserve_late=True, ahead_bytes=AHEAD, **options)


async def test_fetches_run_ahead_of_the_reserved_bytes() -> None:
    f = Fetches(12)
    got: list[int] = []
    async with late(range(12), f) as results:
        await until(lambda: f.fetching == 4)
        await settle()
        assert f.fetching == 4  # ahead_bytes: four fetched ahead, more than the three that fit
        for i in range(4):
            f.release[i].set()
        # three results reserved and decoded; the fourth waits with its body; three more fetch
        await until(lambda: f.fetching == 3 and len(f.granted) == 3)
        await settle()
        assert f.granted == [0, 1, 2] and f.held == MAX and f.fetching == 3
        for e in f.release:
            e.set()
        async for r in results:
            got.append(r)
            f.consumed()
            await settle()  # a slow consumer: the bytes held stay at the bound
    assert got == list(range(12))
    assert f.peak_held <= MAX
    assert f.peak_fetching == 4


async def test_ordered_grants_go_in_item_order() -> None:
    f = Fetches(6)
    async with late(range(6), f) as results:
        await until(lambda: f.fetching == 4)
        for i in (3, 2, 1):  # the later fetches end first: none is granted before item 0
            f.release[i].set()
        await settle()
        assert f.granted == []
        f.release[0].set()
        await until(lambda: len(f.granted) == 3)
        assert f.granted == [0, 1, 2]
        for e in f.release:
            e.set()
        got = []
        async for r in results:
            got.append(r)
            f.consumed()
    assert got == list(range(6))
    assert f.granted == list(range(6))
    assert f.peak_held <= MAX


async def test_unordered_grants_those_waiting_while_an_earlier_fetch_is_slow() -> None:
    f = Fetches(8)
    got: list[int] = []
    async with late(range(8), f, ordered=False) as results:
        await until(lambda: f.fetching == 4)
        for i in (1, 2, 3):  # item 0's fetch is slow: the others decode meanwhile
            f.release[i].set()
        await until(lambda: len(f.granted) == 3)
        assert f.granted == [1, 2, 3]
        for _ in range(3):
            got.append(await results.__anext__())
            f.consumed()
        for e in f.release:
            e.set()
        async for r in results:
            got.append(r)
            f.consumed()
    assert sorted(got) == list(range(8))
    assert got[:3] == [1, 2, 3]
    assert f.peak_held <= MAX


async def test_an_fn_that_never_asks_is_reserved_when_it_returns() -> None:
    f = Fetches(10, reserve=False)
    peak = 0
    for e in f.release:
        e.set()
    async with late(range(10), f) as results:
        engine = results._engine
        async for _ in results:
            await settle()
            peak = max(peak, engine.reserved)
            assert engine.reserved <= MAX
            f.consumed()
    assert peak == MAX


async def test_an_error_comes_after_the_earlier_results_and_nothing_runs_after() -> None:
    f = Fetches(10)
    f.fail = 2
    for e in f.release:
        e.set()
    got: list[int] = []

    async def consume() -> None:
        async with late(range(10), f) as results:
            async for r in results:
                got.append(r)
                f.consumed()

    with pytest.raises(ValueError, match="item 2 failed"):
        await consume()
    assert got == [0, 1]
    assert f.fetching == 0


@pytest.mark.parametrize("form", ["block", "owner"])
async def test_break_leaves_nothing_in_flight(form: str) -> None:
    f = Fetches(40)
    for i in range(6):
        f.release[i].set()
    got: list[int] = []
    if form == "block":
        async with late(range(40), f) as results:
            async for r in results:
                got.append(r)
                if len(got) == 5:
                    break
    else:
        async with anyio.create_task_group() as tg:
            it = late(range(40), f, owner=tg).__aiter__()
            async for r in it:
                got.append(r)
                if len(got) == 5:
                    break
            await it.aclose()
    assert got == [0, 1, 2, 3, 4]
    assert f.fetching == 0


async def test_a_consumed_result_is_not_kept_alive() -> None:
    """The reservation lives in a context variable, copied into whatever the fn leaves behind
    (a connection's keep-alive timer started by its request holds a copy of its context for
    seconds): that must not keep the result alive once the consumer dropped it."""
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []

    async def fn(i: int) -> Any:
        await reserve_decoded()
        timers.append(loop.call_later(3600, lambda: None))  # (copies this context)
        return np.full(1000, i)

    refs: list[weakref.ref[Any]] = []
    try:
        async with late(range(20), fn, window=4) as results:
            async for r in results:
                refs.append(weakref.ref(r))
                del r
                if len(refs) == 12:
                    gc.collect()
                    assert all(ref() is None for ref in refs[:8])
    finally:
        for timer in timers:
            timer.cancel()
    assert len(refs) == 20


async def test_batches_without_an_owner_reserve_at_the_start() -> None:
    f = Fetches(9)
    for e in f.release:
        e.set()
    got = []
    async for r in late(range(9), f):
        got.append(r)
        f.consumed()
    assert got == list(range(9))
    assert f.peak_held <= MAX


def test_ahead_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ahead_bytes"):
        prefetch(range(3), Fetches(3), window=2, reserve_late=True, ahead_bytes=0)
