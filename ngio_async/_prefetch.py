"""Bounded prefetch: run ``fn(item)`` ahead of a consumer, with a window and a byte budget.

This is the engine behind ``async for tile in ds.tiles(...)``. It imports anyio only (no asyncio,
no third-party I/O), so it runs on any anyio backend.

Bounds
------
- ``window``: at most ``window`` items are *started and not yet consumed* (running plus finished
  and waiting for the consumer). The task count is therefore the window plus one at most (the
  workers plus one producer), never the number of items; ``items`` may be a lazy generator of 10**7 items,
  it is pulled one item at a time.
- ``max_bytes`` with ``size_of(item)``: the bytes of results that are running or finished but not
  yet consumed never exceed ``max_bytes``. The size is declared *per input item, before it
  starts* (a tile's size is its shape times the item size): only a budget reserved before a fetch
  starts bounds memory, because a result's size known after the fetch comes too late. A slow
  consumer holds memory at the bound. One item larger than the whole budget still runs, alone
  (it waits until nothing else is reserved), so an oversized item never deadlocks.
- Late reservation (opt-in, ``reserve_late=True``; background modes only): an item's bytes
  are reserved when its ``fn`` calls :func:`reserve_decoded` (between the fetch of a whole
  shard and its decode; when ``fn`` returns if it never does), not when it starts: the
  fetches of later items run while earlier ones decode or wait for the consumer. The bytes
  reserved still never exceed ``max_bytes``; grants go in item order (ordered mode: the
  earliest started, which the consumer needs first, so one item always fits when all before
  it are consumed; completion order: the earliest started of those asking). The items
  started and not granted (their fetched, encoded bodies) are bounded by ``window`` (which
  then counts them and the granted ones alike) and by ``ahead_bytes`` of their ``size_of``.
  An item of no bytes (``size_of`` 0: a tile stream's shard indexes) is reserved when it
  starts: the grants after it do not wait for it to end.
- ``ordered=True`` yields results in input order; ``ordered=False`` in completion order.
- Adaptive window (opt-in, ``max_window``): the window starts at ``window`` and doubles (after
  the first widening that did not pay: grows by half, at least one), up to ``max_window``, when
  the consumer has to wait while the producer is
  held back by the window (the consumer is starving: round trips, not the consumer, are the
  bottleneck), ``can_grow()`` (if given) agrees (the tile iterator passes "a decode thread is
  idle", so a CPU-bound stream does not widen), and the last widening paid off: completions
  per second over a full turnover of the window (at least ``window`` items and 10 ms) must
  beat the best rate seen at the narrower windows by 10%. A saturated server or link
  therefore stops the growth (the window holds what hides the round trips, not the byte
  bound), and growth resumes if the rate climbs again. It does not grow while the byte budget
  is what holds the producer back, so growth stays within ``max_bytes``. It never shrinks.

Errors
------
An exception raised by ``fn`` (or by ``items`` itself) is stored and raised to the consumer as
the plain exception, never as an ``ExceptionGroup``: in ordered mode when the consumer reaches that
item (earlier items are delivered first), in completion order otherwise. After an error no new
item starts and the iterator is finished. Exception groups from task groups stay internal:
:func:`single_leaf` unwraps a group with one leaf at the boundary; a group of several errors is
re-raised intact.

Three ways to consume, and why
------------------------------
1. **Structured (recommended):** ``async with prefetch(items, fn, window=8) as results:
   async for r in results: ...``. The context manager owns a task group (never an async generator
   that yields inside one, STYLE 2.3). Leaving the block for any reason (exhaustion, ``break``, an
   exception in the body, cancellation, an ``anyio.fail_after`` timeout) cancels every running
   ``fn`` and waits for it; when the block has exited nothing is in flight.
2. **Bare, with an owner:** ``async for r in prefetch(items, fn, window=8, owner=tg)``. The
   background work runs in ``owner``, a task group held by a long-lived object (a dataset opened
   with ``open_async`` enters one in ``__aenter__``). The iterator itself holds no cancel scope, so
   it can be advanced from different tasks (the sync shim calls ``__anext__`` once per item, each in
   a new portal task) and no cancel scope ever spans the consumer's own code. Background work
   stops on exhaustion, on an error, on ``aclose()``, when the iterator is garbage-collected on the
   event loop thread (a ``break`` out of ``async for`` drops the only reference in CPython), and in
   any case when the owner closes. Until then an abandoned iterator keeps at most ``window`` items
   finished and idles; ``aclose()`` (or ``contextlib.aclosing``) makes the release deterministic.
3. **Bare, without an owner:** ``async for r in prefetch(items, fn, window=8)``. There is no task
   group that could outlive one ``__anext__`` call without making a cancel scope span the
   consumer's code (a ``break`` in ``async for`` never calls ``aclose``, so a lazily entered task
   group would be left open on the consumer's task and corrupt its cancel-scope stack). So this
   mode fetches in **batches**: when its buffer is empty, ``__anext__`` runs the next window of
   items concurrently inside a task group that it enters *and exits* within the call, then hands
   them out one by one. Fetches are concurrent but do not overlap the consumer's own work. Nothing
   is ever left running, so ``break`` and abandonment are always safe. This is the fallback for
   an object with no task group of its own (a dataset from a plain ``await open_async(...)``).

The sync shim (:mod:`ngio_async.sync`) iterates a :class:`Prefetch` through its context manager
(mode 1, entered and exited in one portal task), advancing the iterator one portal call per item.

Progress: ``on_item(done, total)`` is called after each result is handed to the consumer;
``total`` is ``len(items)`` for sized inputs, ``None`` until a lazy input is exhausted.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Sized,
)
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, TypeVarTuple

import anyio
import anyio.lowlevel

from ._errors import ClosedError

if TYPE_CHECKING:
    from types import TracebackType

    from anyio.abc import TaskGroup

__all__ = [
    "SETTLE_SECONDS",
    "Prefetch",
    "PrefetchIterator",
    "ProgressCallback",
    "Settling",
    "Unsettled",
    "first_error",
    "fetched_ahead",
    "first_leaf",
    "raise_plainly",
    "prefetch",
    "reserve_decoded",
    "settling",
    "single_leaf",
    "start_deferred",
    "to_the_end",
]

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")

ProgressCallback = Callable[[int, int | None], object]
"""``on_item(done, total)``: ``done`` results handed out so far; ``total`` or ``None`` if unknown."""


def single_leaf(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """Return the only leaf exception of ``group`` (looking through nested groups), else ``None``.

    Used at public boundaries: ``except BaseExceptionGroup as eg: leaf = single_leaf(eg)`` and
    re-raise ``leaf`` if it is not ``None``, else re-raise the group intact.
    """
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


def first_leaf(exc: BaseException) -> BaseException:
    """The first leaf of (nested) exception groups, else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


@contextlib.contextmanager
def first_error() -> Iterator[None]:
    """Around a task group: its first failure raised plainly, never an ``ExceptionGroup``
    (the others were cancelled by it, or failed alike)."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise_plainly(first_leaf(group))


def raise_plainly(leaf: BaseException) -> NoReturn:
    """Raise ``leaf`` of the group being handled with its own context, not that group: the
    group holds it, a cycle that picklers keeping contexts (tblib, installed by
    dask.distributed) recurse on forever (the error reached a client as a bare Exception)."""
    prior = leaf.__context__
    try:
        raise leaf
    finally:
        leaf.__context__ = None if isinstance(prior, BaseExceptionGroup) else prior
        leaf.__suppress_context__ = True


#: seconds a write under way may still run once its caller is stopped (a stream's ``func``
#: failed, a writer block raised or was cancelled): it is finished rather than cut in half, but
#: a hung store holds the caller no longer than this (one request's ``Limits.timeout``)
SETTLE_SECONDS = 30.0


class Unsettled(TimeoutError):
    """A write under way did not finish within :data:`SETTLE_SECONDS` of its caller being
    stopped: it was cancelled then, and may be partly written."""


async def settled(fn: Callable[[], Awaitable[object]]) -> Exception | None:
    """Run ``fn()`` shielded from the caller's cancellation, for at most
    :data:`SETTLE_SECONDS` (mending after a failed or cancelled write: the other levels made to
    follow what landed); its error, or a ``TimeoutError`` past the deadline, is returned, not
    raised (the caller notes it on the write's own error)."""
    failed: Exception | None = None
    with anyio.CancelScope(shield=True) as scope:
        scope.deadline = anyio.current_time() + SETTLE_SECONDS
        try:
            await fn()
        except Exception as exc:  # noqa: BLE001 - handed back to be told in a note
            failed = exc
    if scope.cancelled_caught:
        failed = TimeoutError(f"not finished within {SETTLE_SECONDS:g} s")
    return failed


#: the :class:`Settling` whose write is running in this context (nested writes' grace ends
#: no later than theirs)
_SETTLING: ContextVar[Settling | None] = ContextVar("ngio_async_settling", default=None)


class Settling:
    """Writes that, once begun, run to their end when their caller is stopped (cancelled, or
    failed: :meth:`stop`), within :data:`SETTLE_SECONDS` of that; one watcher task for all of
    them, not one per write. Made by :func:`settling`."""

    __slots__ = ("_deadline", "_outer", "_shields")

    def __init__(self) -> None:
        self._deadline = float("inf")  # when the writes under way are given up (once stopped)
        self._shields: set[anyio.CancelScope] = set()
        self._outer = _SETTLING.get()  # the one whose write this is part of (a writer's tile)

    def stop(self) -> None:
        """The caller is stopped: every write under way, and any begun later, gets its deadline
        (:data:`SETTLE_SECONDS` from the first stop; no later than that of an enclosing write
        under way, whose grace running out stops this one: not a second grace after it)."""
        if self._deadline == float("inf"):
            self._deadline = anyio.current_time() + SETTLE_SECONDS
            if self._outer is not None and self._outer._shields:
                self._deadline = min(self._deadline, self._outer._deadline)
        for shield in self._shields:
            shield.deadline = min(shield.deadline, self._deadline)

    async def _watch(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:  # the caller is cancelled (or the block ended)
            self.stop()

    async def run(self, fn: Callable[[*Ts], Awaitable[R]], *args: *Ts, what: str) -> R:
        """``await fn(*args)`` shielded from the caller's cancellation until :meth:`stop`'s
        deadline (then :class:`Unsettled`, naming ``what``); a caller already cancelled does
        not start it."""
        await anyio.lowlevel.checkpoint_if_cancelled()
        with anyio.CancelScope(shield=True, deadline=self._deadline) as shield:
            self._shields.add(shield)
            token = _SETTLING.set(self)
            try:
                return await fn(*args)
            finally:
                _SETTLING.reset(token)
                self._shields.discard(shield)
        # only the deadline cancels it: raised here, the caller cancelled or not
        raise Unsettled(
            f"{what} did not finish within {SETTLE_SECONDS:g} s of being stopped (a hung "
            "store?): it was cancelled then and may be partly written"
        )


@asynccontextmanager
async def settling() -> AsyncIterator[Settling]:
    """A :class:`Settling` whose watcher stops it when the caller is cancelled. Where the
    writes run in tasks that another failure cancels (a sibling's error in a task group), call
    ``stop()`` on that failure too: the watcher does not see it until the block ends."""
    writes = Settling()
    try:
        async with anyio.create_task_group() as tg:
            start_deferred(tg, writes._watch)
            try:
                yield writes
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the block's error (the watcher raises none): as is
        if len(group.exceptions) != 1:
            raise
        raise_plainly(group.exceptions[0])


async def to_the_end(fn: Callable[[*Ts], Awaitable[R]], *args: *Ts, what: str) -> R:
    """``await fn(*args)`` run to its end even when the caller is cancelled meanwhile (a write
    under way is finished, not cut in half), within :data:`SETTLE_SECONDS` from the
    cancellation (then :class:`Unsettled`, naming ``what``); the caller's cancellation is
    raised after. A caller already cancelled does not start it. (For many writes of one
    caller, :func:`settling`: one watcher task for them all.)"""
    await anyio.lowlevel.checkpoint_if_cancelled()
    async with settling() as writes:
        return await writes.run(fn, *args, what=what)


class _Grant:
    """The reservation of a late-reserving prefetch item while its fn runs (emptied then: the
    contexts its fn's tasks and threads were given may outlive it, and must not keep its
    result, the tiles the consumer dropped, alive)."""

    __slots__ = ("engine", "slot")

    def __init__(self, engine: _Engine[Any, Any], slot: _Slot[Any]) -> None:
        self.engine: _Engine[Any, Any] | None = engine
        self.slot: _Slot[Any] | None = slot

    def clear(self) -> None:
        self.engine = self.slot = None


#: the reservation of the late-reserving prefetch item whose fn runs in this context
_GRANT: ContextVar[_Grant | None] = ContextVar("ngio_async_prefetch_grant", default=None)


def fetched_ahead() -> bool:
    """Whether this runs in the fn of an item of a prefetch with ``reserve_late`` whose bytes
    are not reserved yet (fetched ahead of the decoded window). Such an item must not lead
    a fetch that other reads wait for: its reservation waits for the consumer, who may be
    one of them (a loop body reading the same image), and neither would move again."""
    grant = _GRANT.get()
    return grant is not None and grant.slot is not None and not grant.slot.granted


async def reserve_decoded() -> None:
    """In the fn of an item of a prefetch with ``reserve_late``: wait until the item's bytes
    (its ``size_of``) are reserved, in item order; call it between the fetch and the decode.
    Later calls, and calls outside such an item, return at once."""
    grant = _GRANT.get()
    if grant is not None and grant.engine is not None and grant.slot is not None:
        await grant.engine._grant(grant.slot)


class _Idle(Generic[T, R]):
    """A worker task waiting for its next item (``job`` is ``None`` when the producer stopped)."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.wake = anyio.Event()
        self.job: tuple[T, _Slot[R]] | None = None


class _Slot(Generic[R]):
    """One started item: its result or error, once finished."""

    __slots__ = ("cost", "error", "finished", "granted", "index", "value", "waiting")

    value: R

    def __init__(self, index: int, cost: int, granted: bool = True) -> None:
        self.index = index
        self.cost = cost
        self.error: Exception | None = None
        self.finished = False
        self.granted = granted  # its ``cost`` is reserved (late reservation: once asked for)
        self.waiting = 0  # its fn's tasks waiting in :meth:`_Engine._grant`


_NO_ITEM: Any = object()
_MIN_SAMPLE = 0.01  # seconds: the shortest rate sample the adaptive window decides on
_GAIN = 1.1  # a wider window must raise the completion rate by 10% to widen again


class _Deferred(Coroutine[Any, Any, Any]):
    """``fn(*args)``, called at the task's first step rather than by ``start_soon``. anyio
    (4.14+) calls the function in ``start_soon`` and awaits its coroutine from a wrapper: a task
    cancelled before its first step (``asyncio.run`` ending with a fire-and-forget read in
    flight cancels every task) never awaits it, and Python prints "coroutine ... was never
    awaited". Here nothing is made until the task runs."""

    def __init__(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        self._call: tuple[Callable[..., Coroutine[Any, Any, Any]], tuple[Any, ...]] | None = (
            fn,
            args,
        )
        self._coro: Coroutine[Any, Any, Any] | None = None

    def _inner(self) -> Coroutine[Any, Any, Any]:
        if self._coro is None:
            assert self._call is not None
            fn, args = self._call
            # the arguments are the coroutine's own from now on: a worker reused for later
            # items must not keep its first item (and the tiles read for it) alive here
            self._call = None
            self._coro = fn(*args)
        return self._coro

    def send(self, value: Any) -> Any:
        return self._inner().send(value)

    def throw(self, *exc: Any) -> Any:
        return self._inner().throw(*exc)

    def close(self) -> None:
        self._call = None
        if self._coro is not None:
            self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return (yield from self._inner().__await__())


def start_deferred(
    tg: TaskGroup, fn: Callable[[*Ts], Coroutine[Any, Any, Any]], *args: *Ts
) -> None:
    """``tg.start_soon(fn, *args)``, making ``fn``'s coroutine only once the task runs: a task
    cancelled before its first step (``asyncio.run`` ending, which cancels every task the
    asyncio way) leaves no "coroutine ... was never awaited" warning. Use it for every task an
    ngio_async task group starts."""
    call: tuple[Any, ...] = (fn, *args)
    tg.start_soon(_Deferred, *call, name=getattr(fn, "__qualname__", None))


async def _ended(item: object) -> Any:
    """The work function of an engine whose run has ended (none is called)."""
    raise RuntimeError("this prefetch has ended")


class _Engine(Generic[T, R]):
    """State shared by the producer, the workers and the consumer (one event loop, no locks)."""

    def __init__(
        self,
        items: Iterable[T],
        fn: Callable[[T], Awaitable[R]],
        *,
        window: int,
        max_bytes: int | None,
        size_of: Callable[[T], int] | None,
        ordered: bool,
        on_item: ProgressCallback | None,
        max_window: int | None = None,
        can_grow: Callable[[], bool] | None = None,
        reserve_late: bool = False,
        ahead_bytes: int | None = None,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        if max_window is not None and (
            isinstance(max_window, bool) or not isinstance(max_window, int) or max_window < window
        ):
            raise ValueError(f"max_window must be an integer >= window, got {max_window!r}")
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
                raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
            if size_of is None:
                raise ValueError("max_bytes needs size_of(item) -> bytes of that item's result")
        if ahead_bytes is not None and (
            isinstance(ahead_bytes, bool) or not isinstance(ahead_bytes, int) or ahead_bytes < 1
        ):
            raise ValueError(f"ahead_bytes must be a positive integer or None, got {ahead_bytes!r}")
        self._items = items
        self._fn = fn
        self.window = window
        self._max_window = max_window or window
        self._window_limited = False  # the producer waits for the window, not for bytes
        self._can_grow = can_grow
        self.completed = 0  # items whose fn finished (the rate the window is judged by)
        self._sample: tuple[float, int] | None = None  # (time, completed) at the window's start
        self._best_rate = 0.0  # completions per second at the narrower windows
        self._slow_start = True  # double the window until a widening does not pay, then +50%
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._ordered = ordered
        self._on_item = on_item
        self.total: int | None = len(items) if isinstance(items, Sized) else None
        self._iter: Iterator[T] | None = None
        self._lookahead: T = _NO_ITEM
        self._lookahead_cost = 0
        self.started = 0  # items whose fn was started
        self.consumed = 0  # results (or errors) handed to the consumer
        self.reserved = 0  # bytes of started-and-not-consumed items (late: granted ones)
        self._late = reserve_late  # reserve each item's bytes when its fn asks (background)
        self._ahead_bytes = max_bytes if ahead_bytes is None else ahead_bytes
        self.pending = 0  # late: bytes of started items not granted yet
        self._ungranted: dict[int, _Slot[R]] = {}  # late: those items, in start order
        self._ready: dict[int, _Slot[R]] = {}  # ordered mode: index -> finished slot
        self._ready_q: deque[_Slot[R]] = deque()  # unordered mode: completion order
        self._exhausted = False  # no more items will start
        self._error: Exception | None = None  # raised after every started item is consumed
        self._failed = False  # an fn failed: start nothing new
        self._finished = False  # the consumer got StopAsyncIteration or an error
        self._closed = False
        self._running = False  # background run() active
        self._stopped = False  # background run() ended
        self._changed: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None
        self._idle: list[_Idle[T, R]] = []  # worker tasks waiting for an item
        self._producing = True  # the producer may still hand out items
        self._unfinished: list[tuple[T, _Slot[R]]] = []  # of a cancelled batch (no owner)

    # -- waiting: one broadcast event, replaced on every change -----------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            event, self._changed = self._changed, None
            event.set()

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    # -- input -----------------------------------------------------------------------------

    def _peek(self) -> bool:
        """Pull the next item into the lookahead; ``False`` when the input is done or failed."""
        if self._lookahead is not _NO_ITEM:
            return True
        if self._exhausted:
            return False
        try:
            if self._iter is None:
                self._iter = iter(self._items)
            item = next(self._iter)
            cost = 0 if self._size_of is None else int(self._size_of(item))
        except StopIteration:
            self._exhaust(None)
            return False
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, in order
            self._exhaust(exc)
            return False
        self._lookahead, self._lookahead_cost = item, cost
        return True

    def _exhaust(self, error: Exception | None) -> None:
        self._exhausted = True
        self._error = error
        self._lookahead = _NO_ITEM
        if self.total is None or error is not None:
            self.total = self.started
        self._notify()

    def _fits(self, in_use: int, count: int) -> bool:
        if count >= self.window:
            return False
        if self._max_bytes is None or in_use == 0:
            return True
        return in_use + self._lookahead_cost <= self._max_bytes

    def _fits_ahead(self, count: int) -> bool:
        """Late reservation: whether the next item may start (its bytes are reserved later):
        within the window, and the bytes of the items started and not granted within
        ``ahead_bytes`` (one always fits)."""
        if count >= self.window:
            return False
        if self._ahead_bytes is None or self.pending == 0:
            return True
        return self.pending + self._lookahead_cost <= self._ahead_bytes

    def _take(self, late: bool = False) -> tuple[T, _Slot[R]]:
        slot: _Slot[R] = _Slot(self.started, self._lookahead_cost, not late)  # (not _Slot[R]())
        item = self._lookahead
        self._lookahead = _NO_ITEM
        self.started += 1
        if late:
            self.pending += slot.cost
            self._ungranted[slot.index] = slot
        else:
            self.reserved += slot.cost
        return item, slot

    # -- late reservation ------------------------------------------------------------------

    def _next_grant(self) -> _Slot[R] | None:
        """The item whose bytes are granted next: the earliest started one (ordered: the
        consumer needs it first, and every earlier one is consumed when it fits alone), or in
        completion order the earliest started of those waiting (any granted one completes)."""
        for slot in self._ungranted.values():
            if self._ordered or slot.waiting:
                return slot
        return None

    async def _grant(self, slot: _Slot[R]) -> None:
        """Reserve ``slot``'s bytes, waiting until they fit and its turn came (at once: it
        has them already; once for all its fn's tasks asking together)."""
        max_bytes = self._max_bytes
        slot.waiting += 1
        try:
            while not slot.granted and (
                self._next_grant() is not slot
                or not (
                    max_bytes is None
                    or self.reserved == 0
                    or self.reserved + slot.cost <= max_bytes
                )
            ):
                await self._wait()
        finally:  # (several of its fn's tasks may ask at once; one cancelled asks no more)
            slot.waiting -= 1
        if not slot.granted:
            self._settle(slot)
            self.reserved += slot.cost

    def _settle(self, slot: _Slot[R]) -> None:
        """``slot`` leaves the items started and not granted."""
        slot.granted = True
        del self._ungranted[slot.index]
        self.pending -= slot.cost
        self._notify()

    # -- work ------------------------------------------------------------------------------

    async def _work(self, item: T, slot: _Slot[R]) -> None:
        grant = None if slot.granted else _Grant(self, slot)
        token = None if grant is None else _GRANT.set(grant)
        try:
            slot.value = await self._fn(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, in order
            slot.error = exc
            self._failed = True
        finally:
            if grant is not None and token is not None:
                grant.clear()
                _GRANT.reset(token)
        if not slot.granted:  # (late: its fn did not ask)
            if slot.error is None:
                await self._grant(slot)
            else:  # an error holds nothing: the later items need not wait for it
                self._settle(slot)
                slot.cost = 0
        slot.finished = True
        self.completed += 1
        if self._ordered:
            self._ready[slot.index] = slot
        else:
            self._ready_q.append(slot)
        self._notify()

    async def _produce(self, tg: TaskGroup) -> None:
        try:
            while not self._failed and not self._closed and self._peek():
                while not (
                    self._fits_ahead(self.started - self.consumed)
                    if self._late
                    else self._fits(self.reserved, self.started - self.consumed)
                ):
                    self._window_limited = self.started - self.consumed >= self.window
                    await self._wait()
                    if self._failed or self._closed:
                        return
                self._window_limited = False
                # (late: an item of no bytes, a tile stream's shard indexes, holds none to
                # reserve: it need not wait for its turn, nor count as fetched ahead)
                job = self._take(self._late and self._lookahead_cost > 0)
                if self._idle:  # hand the item to a waiting worker task
                    worker = self._idle.pop()
                    worker.job = job
                    worker.wake.set()
                else:  # at most one task per item in the window, reused for later items
                    start_deferred(tg, self._worker, job)
                del job  # (kept here, its result would outlive the consumer's use of it)
                await anyio.lowlevel.checkpoint()
        finally:
            self._producing = False
            for worker in self._idle:
                worker.wake.set()  # no job: the worker ends
            self._idle.clear()

    async def _worker(self, job: tuple[T, _Slot[R]] | None) -> None:
        """Run items handed over by the producer until it stops (a task costs far more to
        start than to wake, so tasks are reused rather than started per item)."""
        while job is not None:
            await self._work(*job)
            job = None  # its result is the consumer's: not kept alive while this task waits
            if not self._producing:
                return
            worker: _Idle[T, R] = _Idle()
            self._idle.append(worker)
            await worker.wake.wait()
            job, worker.job = worker.job, None

    async def run(self) -> None:
        """Prefetch in the background until the input is done or :meth:`cancel` is called."""
        if self._scope is None:
            self._scope = anyio.CancelScope()
        self._done = anyio.Event()
        self._running = True
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    await self._produce(tg)
        except Exception as exc:  # noqa: BLE001 - a bug or broken callback: hand it over
            leaf = single_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc
            self._failed = True
            if self._error is None:
                self._error = leaf if isinstance(leaf, Exception) else exc
        finally:
            self._stopped = True
            # nothing starts any more: let the input and the work function (a read's closure
            # over its level, and so the store) go; the frames of cancelled workers may stay
            # in cyclic garbage (anyio's cancellation) holding this engine until collected
            self._items, self._iter, self._fn = (), None, _ended
            self._done.set()
            self._notify()

    def cancel(self) -> None:
        """Stop starting items and cancel running ones (idempotent, synchronous)."""
        self._closed = True
        if self._scope is None:
            self._scope = anyio.CancelScope()
        self._scope.cancel()
        self._notify()

    async def wait_stopped(self) -> None:
        """Wait until :meth:`run` has returned (shielded: used for cleanup)."""
        if self._running and self._done is not None:
            with anyio.CancelScope(shield=True):
                await self._done.wait()

    # -- consumer --------------------------------------------------------------------------

    def _pop_ready(self) -> _Slot[R] | None:
        if self._ordered:
            return self._ready.pop(self.consumed, None)
        return self._ready_q.popleft() if self._ready_q else None

    def _deliver(self, slot: _Slot[R]) -> R:
        self.consumed += 1
        self.reserved -= slot.cost
        self._notify()
        if slot.error is not None:
            self._finish()
            raise slot.error
        if self._on_item is not None:
            self._on_item(self.consumed, self.total)
        return slot.value

    def _maybe_grow(self) -> None:
        """The consumer is about to wait: widen the window if all of it is still running and
        the last widening raised the completion rate (see the module docstring)."""
        if not (
            self._window_limited
            and self.window < self._max_window
            and not self._failed
            and (self._can_grow is None or self._can_grow())
        ):
            return
        now = anyio.current_time()
        if self._sample is None:  # measure the current window first
            self._sample = (now, self.completed)
            return
        since, done = now - self._sample[0], self.completed - self._sample[1]
        if done < self.window or since < _MIN_SAMPLE:
            return
        rate = done / since
        self._sample = (now, self.completed)
        if rate <= self._best_rate * _GAIN:
            self._slow_start = False
            return  # the last widening did not pay: hold (a saturated server or link)
        self._best_rate = rate
        step = self.window if self._slow_start else max(1, self.window // 2)
        self.window = min(self._max_window, self.window + step)
        self._notify()

    def _finish(self) -> None:
        self._finished = True
        self.cancel()

    def _end(self) -> R:
        """All started items are consumed and nothing more will start."""
        self._finish()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        raise StopAsyncIteration

    async def next_background(self) -> R:
        """The next result while :meth:`run` prefetches in the background."""
        while True:
            if self._finished:
                raise StopAsyncIteration
            slot = self._pop_ready()
            if slot is not None:
                return self._deliver(slot)
            if self.consumed == self.started and (self._exhausted or self._failed):
                return self._end()
            if self._closed or self._stopped:
                self._finished = True
                raise ClosedError("the prefetch iterator was closed or its owner stopped")
            self._maybe_grow()
            await self._wait()

    async def _fill_batch(self) -> None:
        leaf: BaseException | None = None
        # the items of a batch that was cancelled run again first: their results are owed
        jobs, self._unfinished = self._unfinished, []
        while self._peek() and self._fits(self.reserved, len(jobs)):
            jobs.append(self._take())
        try:
            try:
                async with anyio.create_task_group() as tg:
                    for item, slot in jobs:
                        start_deferred(tg, self._work, item, slot)
            except BaseExceptionGroup as group:  # only BaseExceptions (workers keep errors)
                leaf = single_leaf(group)
                if leaf is None:
                    raise
            if leaf is not None:
                raise leaf
        except BaseException:  # cancelled: the next call runs what did not finish
            self._unfinished = [job for job in jobs if not job[1].finished]
            raise

    async def next_batched(self) -> R:
        """The next result, fetching a window of items at once when the buffer is empty."""
        if self._finished:
            raise StopAsyncIteration
        if self._closed:
            raise ClosedError("the prefetch iterator is closed")
        slot = self._pop_ready()
        if slot is None:
            if self._failed or not (self._unfinished or self._peek()):
                return self._end()
            await self._fill_batch()
            slot = self._pop_ready()
            if slot is None:  # pragma: no cover - every started item is ready after the group
                return self._end()
        return self._deliver(slot)


class PrefetchIterator(AsyncIterator[R]):
    """Async iterator over prefetched results; see the module docstring for the three modes.

    Call :meth:`aclose` (or use ``contextlib.aclosing``) to stop background work early; results
    not yet consumed are dropped.
    """

    def __init__(self, engine: _Engine[Any, R], *, owner: TaskGroup | None, started: bool) -> None:
        self._engine = engine
        self._owner = owner
        self._started = started
        self._thread = threading.get_ident()

    def __aiter__(self) -> PrefetchIterator[R]:
        return self

    async def __anext__(self) -> R:
        engine = self._engine
        if not self._started:
            if self._owner is None:
                return await engine.next_batched()
            self._started = True
            start_deferred(self._owner, engine.run)
        return await engine.next_background()

    async def aclose(self) -> None:
        """Cancel background work and wait until nothing is in flight (idempotent)."""
        self._engine.cancel()
        await self._engine.wait_stopped()
        await anyio.lowlevel.checkpoint()

    @property
    def in_progress(self) -> tuple[int, int]:
        """``(started, consumed)`` item counts, for progress and tests."""
        return self._engine.started, self._engine.consumed

    @property
    def window(self) -> int:
        """The current window (grows only with ``max_window``)."""
        return self._engine.window

    def __del__(self) -> None:
        # A ``break`` out of a bare ``async for`` drops the iterator: stop its background work.
        # Cancel scopes are not thread-safe, so only do this on the thread that created it.
        engine = getattr(self, "_engine", None)
        if (
            engine is not None
            and self._started
            and self._owner is not None
            and threading.get_ident() == self._thread
        ):
            with contextlib.suppress(Exception):  # interpreter shutdown
                engine.cancel()


class Prefetch(Generic[T, R]):
    """What :func:`prefetch` returns: an async context manager and, for bare use, an iterable.

    - ``async with prefetch(...) as results:`` owns a task group for the block (structured).
    - ``async for r in prefetch(..., owner=tg):`` runs the background work in ``owner``.
    - ``async for r in prefetch(...)`` without an owner fetches window-sized batches.
    """

    def __init__(
        self,
        items: Iterable[T],
        fn: Callable[[T], Awaitable[R]],
        *,
        window: int,
        max_bytes: int | None = None,
        size_of: Callable[[T], int] | None = None,
        ordered: bool = True,
        on_item: ProgressCallback | None = None,
        owner: TaskGroup | None = None,
        max_window: int | None = None,
        can_grow: Callable[[], bool] | None = None,
        reserve_late: bool = False,
        ahead_bytes: int | None = None,
    ) -> None:
        self._engine: _Engine[T, R] = _Engine(
            items,
            fn,
            window=window,
            max_bytes=max_bytes,
            size_of=size_of,
            ordered=ordered,
            on_item=on_item,
            max_window=max_window,
            can_grow=can_grow,
            reserve_late=reserve_late,
            ahead_bytes=ahead_bytes,
        )
        self._owner = owner
        self._used = False
        self._cm: Any = None

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a prefetch can be iterated or entered only once")
        self._used = True

    def __aiter__(self) -> PrefetchIterator[R]:
        self._claim()
        return PrefetchIterator(self._engine, owner=self._owner, started=False)

    async def __aenter__(self) -> PrefetchIterator[R]:
        self._claim()
        self._cm = _structured(self._engine)
        result: PrefetchIterator[R] = await self._cm.__aenter__()
        return result

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        cm, self._cm = self._cm, None
        result: bool | None = await cm.__aexit__(exc_type, exc_val, exc_tb)
        return result


@asynccontextmanager
async def _structured(engine: _Engine[Any, R]) -> AsyncIterator[PrefetchIterator[R]]:
    leaf: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            start_deferred(tg, engine.run)
            try:
                yield PrefetchIterator(engine, owner=None, started=True)
            finally:
                engine.cancel()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        leaf = single_leaf(group)
        if leaf is None:
            raise
    if leaf is not None:
        # Raised outside the ``except`` block so the group is not chained as its context.
        raise leaf


def prefetch(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    window: int,
    max_bytes: int | None = None,
    size_of: Callable[[T], int] | None = None,
    ordered: bool = True,
    on_item: ProgressCallback | None = None,
    owner: TaskGroup | None = None,
    max_window: int | None = None,
    can_grow: Callable[[], bool] | None = None,
    reserve_late: bool = False,
    ahead_bytes: int | None = None,
) -> Prefetch[T, R]:
    """Run ``fn(item)`` for ``items``, at most ``window`` items ahead of the consumer.

    :param items: the inputs, pulled lazily one at a time (any iterable, may be endless).
    :param fn: the async function to run per item (fetch + decode one tile).
    :param window: the most items started and not yet consumed.
    :param max_bytes: the most result bytes started and not yet consumed (``None``: no bound);
        an item larger than this runs alone.
    :param size_of: ``size_of(item)`` -> bytes that ``fn(item)``'s result holds; required with
        ``max_bytes``.
    :param ordered: yield in input order (default) or in completion order.
    :param on_item: progress callback ``on_item(done, total)``.
    :param owner: a task group that runs the background work for bare ``async for`` use.
    :param max_window: let the window grow up to this while the consumer starves (``None``:
        fixed window).
    :param can_grow: consulted before each growth step (``None``: always may grow).
    :param reserve_late: reserve an item's ``size_of`` bytes when its fn calls
        :func:`reserve_decoded` (after its fetch, before its decode), else when it returns;
        the items started and not reserved yet are bounded by ``window`` and ``ahead_bytes``
        (default ``max_bytes``). With background work only (batches reserve at the start).
    :return: a :class:`Prefetch`; use ``async with`` (recommended) or ``async for`` on it.
    :raises ValueError: if ``window``/``max_bytes`` are not positive integers, or ``max_bytes``
        is given without ``size_of``.
    """
    return Prefetch(
        items,
        fn,
        window=window,
        max_bytes=max_bytes,
        size_of=size_of,
        ordered=ordered,
        on_item=on_item,
        owner=owner,
        max_window=max_window,
        can_grow=can_grow,
        reserve_late=reserve_late,
        ahead_bytes=ahead_bytes,
    )
