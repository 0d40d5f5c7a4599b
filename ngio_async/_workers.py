"""Worker threads for blocking calls (decode, encode, local reads), with cheap hand-offs.

``anyio.to_thread.run_sync`` wakes a worker thread and then the event loop once per call, and
each wake-up (a futex or a byte through the loop's self-pipe, two context switches) costs about
as much CPU as decoding a small chunk. :class:`Workers` does the same job for the many small
calls of a tile stream:

- ``Workers(n)`` runs at most ``n`` calls at once (a dataset's ``limits.decode_threads``);
  calls beyond that queue in order, and a thread that finishes one takes the next queued call
  of the same ``Workers`` itself, without a wake-up;
- the threads come from one process-wide pool of daemon threads, started only when no idle
  thread is waiting and ended after :data:`IDLE_SECONDS` without work; the pool has at most
  :data:`MAX_THREADS` threads, however many ``Workers`` (datasets) there are: calls beyond that
  wait for a thread, and a thread that finished a call takes the oldest waiting one (of any
  ``Workers``) before more of its own, so no dataset waits for another's whole queue;
- the cap is ``max(8, 4 * os.cpu_count())``, or the environment variable
  ``NGIO_ASYNC_WORKER_THREADS`` (a positive integer) read at import. A call may wait on others
  (a ``stream()`` function using the sync API reads through the pool): when calls wait for a
  thread and no running call has ended for :data:`STALL_SECONDS`, one more thread starts, past
  the cap, so a pool full of such calls never waits for itself (the extra threads end when
  idle);
- results go back to the event loop in bursts: calls that finish before the loop has collected
  the earlier ones are handed over in the same wake-up.

Cancellation: a queued call is dropped at once; one that is running is waited for (shielded),
so when the awaiting task has left, nothing it started still runs (the rule of
``to_thread.run_sync`` without ``abandon_on_cancel``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._malloc import tune_malloc

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["IDLE_SECONDS", "MAX_THREADS", "STALL_SECONDS", "Workers"]

R = TypeVar("R")

IDLE_SECONDS = 10.0  # a worker thread with nothing to do for this long ends
STALL_SECONDS = 1.0  # calls wait and none ended for this long: one more thread, past the cap


def _max_threads() -> int:
    """The process-wide cap on the shared pool's threads (see the module docstring)."""
    text = os.environ.get("NGIO_ASYNC_WORKER_THREADS", "").strip()
    if not text:
        return max(8, 4 * (os.cpu_count() or 1))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"NGIO_ASYNC_WORKER_THREADS must be a positive integer, got {text!r}")
    return value


MAX_THREADS = _max_threads()


class _Call(Generic[R]):
    """One call: run in a worker thread, finished on the event loop thread."""

    __slots__ = ("args", "error", "fn", "future", "value", "waiter")

    def __init__(
        self, fn: Callable[..., R], args: tuple[Any, ...], future: asyncio.Future[R]
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.value: Any = None
        self.error: BaseException | None = None
        self.waiter: anyio.Event | None = None  # set when a cancelled caller waits for the end

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except StopIteration as exc:  # a future cannot hold it (as in asyncio's to_thread)
            self.error = RuntimeError(f"{self.fn!r} raised StopIteration")
            self.error.__cause__ = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the caller on its loop
            self.error = exc

    def finish(self) -> None:
        """On the loop thread: hand the outcome to the caller (or wake a cancelled one)."""
        future = self.future
        if not future.done():
            if self.error is not None:
                future.set_exception(self.error)
            else:
                future.set_result(self.value)
        if self.waiter is not None:
            self.waiter.set()
        # the thread that ran it may still refer to it a moment: it holds nothing (a result
        # the caller dropped, a tile stream's array, is freed at once)
        self.fn = self.args = self.value = self.error = self.future = None  # type: ignore[assignment]


class _Returns:
    """Finished calls of one event loop, handed back one burst per loop wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # weak: this is the loop's value in ``_returns``
        self._lock = threading.Lock()
        self._done: list[_Call[Any]] = []
        self._scheduled = False

    def post(self, call: _Call[Any]) -> None:
        """From a worker thread: queue ``call``; wake the loop only if no wake-up is pending."""
        with self._lock:
            self._done.append(call)
            if self._scheduled:
                return
            self._scheduled = True
        loop = self._loop()
        # a closed or collected loop: nobody waits for these results any more
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            self._scheduled = False
        for call in done:
            call.finish()


class _Pool:
    """Daemon threads running queued functions; a thread starts when none is idle and fewer
    than ``cap`` run, or when queued jobs stalled (see the module)."""

    def __init__(self, cap: int) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for work
        self._threads = 0  # threads started and not ended
        self._ended = 0  # jobs run to their end (progress, for the stall watch)
        self._watched = False  # a watch thread runs
        self.cap = cap

    def waiting(self) -> bool:
        """Whether jobs wait for a thread (a busy thread then takes them before its own)."""
        return not self._queue.empty()

    def submit(self, job: Callable[[], object]) -> None:
        with self._lock:
            self._queue.put(job)
            if self._queue.qsize() <= self._idle:
                return
            if self._threads >= self.cap:  # a busy thread takes it when done
                if self._watched:
                    return
                self._watched = watch = True
            else:
                self._threads += 1
                watch = False
        target = self._watch if watch else self._work
        try:
            name = "ngio-worker-watch" if watch else "ngio-worker"
            threading.Thread(target=target, name=name, daemon=True).start()
        except BaseException:
            with self._lock:
                if watch:
                    self._watched = False
                else:
                    self._threads -= 1
            raise

    def _watch(self) -> None:
        """While jobs wait for a thread: one more thread when none ended for a while."""
        while True:
            ended = self._ended
            time.sleep(STALL_SECONDS)  # noqa: TID251 - its own thread: blocking is the point
            with self._lock:
                if self._queue.qsize() <= self._idle:
                    self._watched = False
                    return
                if self._ended != ended:
                    continue
                self._threads += 1  # stalled: every thread waits (maybe on a queued job)
            threading.Thread(target=self._work, name="ngio-worker", daemon=True).start()

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            with lock:
                self._idle += 1
            try:
                job = get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with lock:
                    self._idle -= 1
                    if self._queue.empty():  # else a job came in as the wait ended: take it
                        self._threads -= 1
                        return
                continue
            with lock:
                self._idle -= 1
            try:
                job()
            finally:
                self._ended += 1  # (under the GIL; a lost count only delays the watch)
            del job  # an idle thread holds nothing of the last call (its loop, its result)


_pool = _Pool(MAX_THREADS)
_returns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Returns] = (
    weakref.WeakKeyDictionary()
)


_instances: weakref.WeakSet[Workers] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child: none of the parent's threads or event loops exist there."""
    global _pool
    _pool = _Pool(_pool.cap)
    _returns.clear()
    for workers in _instances:
        workers._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Workers:
    """Run blocking calls in worker threads, at most ``threads`` at once (see the module)."""

    def __init__(self, threads: int) -> None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads
        tune_malloc()  # once per process: chunk-sized buffers stay in the heap (see _malloc)
        self._lock = threading.Lock()
        self._running = 0  # calls running, or handed to the pool to run
        self._queued: deque[tuple[_Call[Any], _Returns]] = deque()
        _instances.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._queued = deque()

    def __repr__(self) -> str:
        return f"Workers(threads={self.threads}, running={self._running})"

    @property
    def busy(self) -> int:
        """Calls running now (at most :attr:`threads`)."""
        return self._running

    def idle(self) -> bool:
        """Whether a thread is free for another call."""
        return self._running < self.threads

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """``fn(*args)`` in a worker thread; its result, or its exception raised here."""
        loop = asyncio.get_running_loop()
        returns = _returns.get(loop)
        if returns is None:
            returns = _returns[loop] = _Returns(loop)
        future: asyncio.Future[R] = loop.create_future()
        call = _Call(fn, args, future)
        with self._lock:
            start = self._running < self.threads
            if start:
                self._running += 1
            else:
                self._queued.append((call, returns))
        if start:
            self._submit(call, returns)
        try:
            return await future
        except BaseException:
            if call.fn is not None:  # not finished on this loop yet
                with self._lock:
                    try:
                        self._queued.remove((call, returns))  # not started: dropped
                        started = False
                    except ValueError:
                        started = True
                if started:  # taken by a thread: wait until it has run
                    call.waiter = anyio.Event()
                    with anyio.CancelScope(shield=True):
                        await call.waiter.wait()
            raise

    def lend(self, fn: Callable[[], object]) -> bool:
        """Run ``fn()`` in a pool thread now, if one of this object's :attr:`threads` is free
        (a blocking caller sharing its own work out; ``fn`` must not raise): whether it will.
        The thread counts as one of the ``threads`` until ``fn`` returns."""
        with self._lock:
            if self._running >= self.threads:
                return False
            self._running += 1
        try:
            _pool.submit(lambda: self._lent(fn))
        except BaseException:  # no thread could start
            with self._lock:
                self._running -= 1
            raise
        return True

    def _lent(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        finally:
            with self._lock:  # the thread goes back: to a queued call, else counted free
                following = self._queued.popleft() if self._queued else None
                if following is None:
                    self._running -= 1
            if following is not None:
                self._drive(*following)

    def _submit(self, call: _Call[Any], returns: _Returns) -> None:
        _pool.submit(lambda: self._drive(call, returns))

    def _drive(self, call: _Call[Any], returns: _Returns) -> None:
        """In a pool thread: run ``call``, then this object's queued calls, until none is left
        (or until calls of others wait for a thread: this one's next goes behind them)."""
        pool = _pool
        while True:
            call.run()
            with self._lock:  # counted free before the caller can see the result
                following = self._queued.popleft() if self._queued else None
                if following is None:
                    self._running -= 1
            returns.post(call)
            if following is None:
                return
            call, returns = following
            if pool.waiting():  # take turns with the other Workers sharing the cap
                self._submit(call, returns)
                return
