"""The sync shim: run ngio_async's coroutines from ordinary blocking code.

This is the only module that imports :mod:`anyio.from_thread`. One asyncio event loop runs in a
daemon thread behind an anyio ``BlockingPortal``; sync wrappers submit work to it. A call
(:meth:`Runner.call`) starts its task on that loop with one ``call_soon_threadsafe`` and waits on a
plain :class:`concurrent.futures.Future`: no handshake with the portal (which waits for the task
to be spawned: a second round trip), about half the CPU time per call.

Lifetime (STYLE 2.2)
--------------------
A sync object holds one :class:`Runner` (a lease on the shared portal) for its whole life: it is
taken when the object is created and given back in ``close()`` / ``__exit__``. The first lease
starts the loop thread, the last release stops it (the same counting as anyio's
``BlockingPortalProvider``); at interpreter exit the loop is stopped, cancelling what is left.
Taking a lease per call would restart the loop on every call and lose connection pools, so the
module-level helpers (:func:`call`, :func:`iterate`, :func:`wrap_async_context_manager`) are for
one-off use. Create loop-bound resources (aiohttp sessions, limiters, the async image) *inside*
the portal, with ``runner.call(...)``, and never move them between loops.

Where it may be called from
---------------------------
- Any plain thread.
- A thread whose own asyncio loop is running (Jupyter, or a coroutine calling the sync API): the
  work runs on the portal thread, so nothing deadlocks, but the caller's loop is blocked while it
  waits. Inside a coroutine, prefer the async API (``await``).
- **Not** the portal's own loop thread (a coroutine that ngio_async itself is running calls a sync
  method): that would wait for itself forever, so it raises :class:`RuntimeError` at once.

Other guarantees
----------------
- Timeouts (:meth:`Runner.call_with_timeout`) are applied inside the loop with
  ``anyio.fail_after``, so the work is really cancelled and :class:`TimeoutError` is raised.
- A ``KeyboardInterrupt`` (or any exception) while waiting cancels the submitted work.
- Iteration is lazy: :meth:`Runner.iterate` advances the async iterator by one item per ``next``
  and never collects it into a list. Leaving early (``break`` and dropping the iterator, or
  ``close()``) closes the async iterator / exits the async context manager.
- Fork safety: ``os.register_at_fork(after_in_child=...)`` gives the child a fresh, stopped
  provider; leases taken before the fork become unusable (:class:`ClosedError`) and releasing
  them is a no-op.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import inspect
import os
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, cast

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._errors import ClosedError

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "Closing",
    "Runner",
    "SyncIterator",
    "call",
    "in_portal_thread",
    "is_running",
    "iterate",
    "wrap_async_context_manager",
]

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_LOOP_THREAD_MESSAGE = (
    "ngio_async's sync API was called from its own event loop thread (a coroutine run by "
    "ngio_async called a blocking method); this would deadlock. Use the async API (await) there."
)


class _Provider:
    """Lease-counted portal: the first :meth:`acquire` starts the loop thread, the last
    :meth:`release` stops it. One instance per process (replaced in a forked child)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases = 0
        self._cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None
        self.abandoned = False  # set in a forked child: the loop thread does not exist there
        self._tasks: set[asyncio.Task[Any]] = set()  # the calls' tasks (touched on the loop only)
        # the calls' futures not answered yet (a call submitted as the loop stopped gets its
        # answer from _stop_locked)
        self.pending: set[concurrent.futures.Future[Any]] = set()

    @property
    def leases(self) -> int:
        return self._leases

    @property
    def running(self) -> bool:
        return self._portal is not None

    @property
    def portal(self) -> BlockingPortal | None:
        """The running portal (``None`` when stopped)."""
        return self._portal

    def acquire(self) -> BlockingPortal:
        if self.abandoned:
            raise ClosedError("the ngio_async event loop was lost in a fork; create a new object")
        if threading.get_ident() == self.thread_id:
            raise RuntimeError(_LOOP_THREAD_MESSAGE)
        with self._lock:
            if self._portal is None:
                cm = start_blocking_portal("asyncio", name="ngio_async-portal")
                portal = cm.__enter__()
                self.thread_id, self.loop = portal.call(_thread_and_loop)
                self._cm, self._portal = cm, portal
            self._leases += 1
            return self._portal

    def release(self) -> None:
        if self.abandoned:
            return
        if threading.get_ident() == self.thread_id:
            raise RuntimeError(_LOOP_THREAD_MESSAGE)
        with self._lock:
            if self._leases == 0:  # pragma: no cover - guarded by Runner
                return
            self._leases -= 1
            if self._leases == 0:
                self._stop_locked()

    def shutdown(self) -> None:
        """Stop the loop now, cancelling what is left (interpreter exit)."""
        if self.abandoned or threading.get_ident() == self.thread_id:
            return
        with self._lock:
            self._leases = 0
            self._stop_locked()

    def start(self, job: _Call[T], future: concurrent.futures.Future[T]) -> None:
        """On the loop thread: run ``job`` in a task of its own, its outcome into ``future``."""
        if not future.set_running_or_notify_cancel():
            return
        task = asyncio.get_running_loop().create_task(job.run())
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._settle, future))

    def _settle(self, future: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
        self._tasks.discard(task)
        if task.cancelled():  # by the loop's stop (see _stop_locked)
            future.set_exception(concurrent.futures.CancelledError())
        elif (exc := task.exception()) is not None:
            future.set_exception(exc)
        else:
            future.set_result(task.result())

    async def _cancel_calls(self) -> None:
        """Cancel the calls' tasks still running and wait for them (the loop is stopping)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    def _stop_locked(self) -> None:
        cm, portal = self._cm, self._portal
        self._cm = self._portal = None
        self.thread_id = self.loop = None
        if cm is None or portal is None:
            return
        # No lease is left, so whatever still runs is orphaned (an abandoned iterator, a sync
        # object that was never closed): cancel it instead of waiting for it forever.
        try:
            try:
                portal.call(self._cancel_calls)
            finally:
                portal.call(portal.stop, True)
        finally:
            cm.__exit__(None, None, None)  # joins the loop thread
            for future in list(self.pending):  # submitted too late to start: never will
                if not future.cancel() and not future.done():
                    future.set_exception(concurrent.futures.CancelledError())


def _thread_and_loop() -> tuple[int, asyncio.AbstractEventLoop]:
    return threading.get_ident(), asyncio.get_running_loop()


_provider = _Provider()


def _after_fork_in_child() -> None:
    global _provider
    _provider.abandoned = True
    _provider = _Provider()


def _shutdown_at_exit() -> None:
    _provider.shutdown()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_shutdown_at_exit)


def is_running() -> bool:
    """Whether the shared loop thread is running (some lease is held)."""
    return _provider.running


def in_portal_thread() -> bool:
    """Whether the caller runs on the shared loop's thread (where the sync API must not be used)."""
    return _provider.thread_id is not None and threading.get_ident() == _provider.thread_id


def _is_async_cm(obj: object) -> bool:
    return hasattr(obj, "__aenter__") and hasattr(obj, "__aexit__")


class Closing:
    """``with obj:`` calls ``obj.close()`` on exit (the sync objects' lifetime protocol)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.close()


class Runner(Closing):
    """A lease on the shared event loop, held by one sync object for its whole lifetime.

    ``Runner()`` takes the lease (starting the loop thread if needed); :meth:`close` (or
    ``__exit__``) releases it, and the last release stops the loop. Using a closed runner raises
    :class:`~ngio_async.ClosedError`.
    """

    def __init__(self) -> None:
        self._provider = _provider
        self._portal: BlockingPortal | None = self._provider.acquire()
        self._jobs_lock = threading.Lock()
        self._jobs: set[_Call[Any]] = set()  # the calls waited on now (by any thread)
        self._interrupted = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether the lease was released, lost in a fork, or its loop stopped (exit)."""
        return (
            self._portal is None
            or self._provider.abandoned
            or self._provider.portal is not self._portal
        )

    @property
    def portal(self) -> BlockingPortal:
        """The running portal; raises :class:`ClosedError` after :meth:`close` or a fork."""
        portal = self._portal
        if portal is None:
            raise ClosedError("this ngio_async object is closed")
        if self._provider.portal is not portal and not self._provider.abandoned:
            raise ClosedError("the ngio_async event loop has stopped (interpreter exit)")
        if self._provider.abandoned:
            raise ClosedError("the ngio_async event loop was lost in a fork; create a new object")
        if threading.get_ident() == self._provider.thread_id:
            raise RuntimeError(_LOOP_THREAD_MESSAGE)
        return portal

    def interrupt(self) -> None:
        """Cancel the calls that other threads wait on now (each raises
        :class:`~ngio_async.ClosedError`); the first step of closing the object that holds this
        runner, so nothing it started is left running. Later calls run as usual."""
        with self._jobs_lock:
            self._interrupted = True
            jobs = list(self._jobs)
        if self._portal is not None:
            for job in jobs:
                job.cancel(self._provider.loop)

    def close(self) -> None:
        """Release the lease (idempotent). The last release stops the loop thread."""
        if self._portal is None:
            return
        if threading.get_ident() == self._provider.thread_id:
            raise RuntimeError(_LOOP_THREAD_MESSAGE)
        self._portal = None
        self._provider.release()

    # -- calls -------------------------------------------------------------------------------

    def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)`` on the loop and return its result (blocking).

        :raises RuntimeError: when called from the loop's own thread.
        """
        return self._run(_Call(functools.partial(fn, *args, **kwargs)))

    def _run(self, job: _Call[T]) -> T:
        """Run ``job`` on the loop and wait for its result (the body of :meth:`call`)."""
        _ = self.portal  # ClosedError, or RuntimeError on the loop's thread
        provider = self._provider
        loop = provider.loop
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._jobs_lock:
            self._jobs.add(job)
        try:
            provider.pending.add(future)
            if loop is None:  # stopped since the check above (another thread released it)
                raise ClosedError("the ngio_async event loop has stopped")
            try:
                loop.call_soon_threadsafe(provider.start, job, future)
            except RuntimeError:  # the loop closed since the check above
                raise ClosedError("the ngio_async event loop has stopped") from None
            return future.result()
        except concurrent.futures.CancelledError:
            # the work was cancelled from the loop's side: the object (or the last one holding
            # the loop) was closed by another thread while this call ran
            raise ClosedError("this ngio_async object was closed while the call ran") from None
        except _Cancelled:
            if self._interrupted:  # by interrupt(): the object is being closed
                raise ClosedError("this ngio_async object was closed while the call ran") from None
            raise
        except BaseException as exc:
            job.cancel(loop)  # interrupted (e.g. KeyboardInterrupt): stop the work in the loop
            _untangle(exc)
            raise
        finally:
            provider.pending.discard(future)
            with self._jobs_lock:
                self._jobs.discard(job)

    def call_with_timeout(
        self,
        timeout: float | None,
        fn: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Like :meth:`call`, but cancel the work inside the loop after ``timeout`` seconds.

        :raises TimeoutError: if the work did not finish in time (it has been cancelled).
        """
        if timeout is None:
            return self.call(fn, *args, **kwargs)

        async def bounded() -> T:
            with anyio.fail_after(timeout):
                return await fn(*args, **kwargs)

        return self.call(bounded)

    def wrap_async_context_manager(
        self, cm: AbstractAsyncContextManager[T_co]
    ) -> AbstractContextManager[T_co]:
        """A sync context manager whose enter/exit run ``cm``'s in one task on the loop."""
        return _GuardedContextManager(self.portal.wrap_async_context_manager(cm))

    def iterate(
        self,
        source: AsyncIterable[T] | AbstractAsyncContextManager[AsyncIterable[T]],
        cls: type[SyncIterator[T]] | None = None,
    ) -> SyncIterator[T]:
        """Iterate an async iterable lazily from sync code, one ``__anext__`` per ``next()``.

        ``source`` may be an async iterable or an async context manager that yields one (such as
        :func:`ngio_async._prefetch.prefetch`'s result); a context manager is preferred when both
        apply, so its task group lives in one task. The returned iterator closes the async
        iterator (``aclose``) and exits the context manager when it is exhausted, fails,
        ``close()``-d, used as a context manager, or dropped after a ``break``. ``cls``: a
        subclass of :class:`SyncIterator` to return.
        """
        _ = self.portal  # fail fast when closed or on the loop thread
        control = _Control()
        return (cls or SyncIterator)(_drive(self, source, control, own_runner=False), control)


def _holds(group: BaseExceptionGroup[BaseException], exc: BaseException) -> bool:
    return any(
        e is exc or (isinstance(e, BaseExceptionGroup) and _holds(e, exc)) for e in group.exceptions
    )


def _untangle(exc: BaseException) -> None:
    """Drop the hidden context of an error raised plainly out of the task group that holds it
    (``raise leaf from None`` in ``except ExceptionGroup``): the error and its group refer to
    each other, and picklers that keep contexts (tblib, installed by dask.distributed) recurse
    forever on that cycle, so the error reached a distributed client as a bare ``Exception``."""
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        context = err.__context__
        if (
            err.__suppress_context__
            and isinstance(context, BaseExceptionGroup)
            and _holds(context, err)
        ):
            err.__context__ = None
        err = err.__cause__ or err.__context__


class _Cancelled(RuntimeError):
    """The result of a :class:`_Call` cancelled before it finished."""


class _Call(Generic[T]):
    """One submitted coroutine that the calling thread can cancel at any moment.

    The task may not have started when an interrupt arrives; this object is shared up front,
    so a cancel before the start stops the work as soon as it starts.
    """

    def __init__(self, fn: Callable[[], Awaitable[T]]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._scope: anyio.CancelScope | None = None
        self._cancel = False
        self._done = False

    async def run(self) -> T:
        with anyio.CancelScope() as scope:
            with self._lock:
                self._scope = scope
                if self._cancel:
                    scope.cancel()
            try:
                return await self._fn()
            finally:
                with self._lock:
                    self._done = True
        raise _Cancelled("cancelled by the calling thread")  # seen only by a closed iterator

    def cancel(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Cancel the work from any thread (``loop``: the loop it runs on; ``None`` once it
        has stopped, which cancelled the work already)."""
        with self._lock:
            self._cancel = True
            scope = None if self._done else self._scope
        if scope is None or loop is None:
            return
        if in_portal_thread():
            scope.cancel()  # a callback on the loop itself (a progress function)
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(scope.cancel)


class _Control:
    """What :meth:`SyncIterator.close` needs to stop a ``next()`` waiting in another thread:
    the portal call in flight (cancelled on close) and the closing flag."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.closing = False
        self._job: tuple[_Call[Any], asyncio.AbstractEventLoop | None] | None = None

    def run(self, runner: Runner, job: _Call[T]) -> T:
        """``runner``'s call of ``job``, cancelled by :meth:`close` (then :class:`ClosedError`)."""
        _ = runner.portal  # ClosedError, or RuntimeError on the loop's thread
        with self._lock:
            if self.closing:
                raise ClosedError("the iterator was closed")
            self._job = (job, runner._provider.loop)
        try:
            return runner._run(job)
        except _Cancelled:
            if self.closing:
                raise ClosedError("the iterator was closed while next() waited") from None
            raise
        finally:
            with self._lock:
                self._job = None

    def close(self) -> None:
        """Set the closing flag and cancel the call in flight (from any thread; never waits)."""
        with self._lock:
            self.closing = True
            job, self._job = self._job, None
        if job is not None:
            job[0].cancel(job[1])


class _GuardedContextManager(AbstractContextManager[T_co]):
    """anyio's blocking context manager, with the loop-thread check on both ends."""

    def __init__(self, inner: AbstractContextManager[T_co], runner: Runner | None = None) -> None:
        self._inner = inner
        self._runner = runner
        self._provider = _provider  # replaced in a forked child: the loop of ``inner`` is lost

    def _check(self) -> None:
        if in_portal_thread():
            raise RuntimeError(_LOOP_THREAD_MESSAGE)
        if self._provider.abandoned:  # waiting on the lost loop would never end
            raise ClosedError("the ngio_async event loop was lost in a fork; create a new object")

    def __enter__(self) -> T_co:
        self._check()
        try:
            return self._inner.__enter__()
        except BaseException:
            if self._runner is not None:
                self._runner.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        self._check()
        try:
            return self._inner.__exit__(exc_type, exc_val, exc_tb)
        finally:
            if self._runner is not None:
                self._runner.close()


async def _next_and_ready(it: AsyncIterator[T]) -> list[T]:
    """The next item, plus those the iterator already holds when it offers them (``ready()``:
    a tile stream hands over the rest of a batch read together): one portal call for several.
    The extra items are counted (``handed()``) only as the consumer takes them."""
    items = [await anext(it)]
    ready: Callable[..., list[T]] | None = getattr(it, "ready", None)
    if ready is not None:
        items.extend(ready(count=False))
    return items


def _drive(
    runner: Runner,
    source: AsyncIterable[T] | AbstractAsyncContextManager[AsyncIterable[T]],
    control: _Control,
    *,
    own_runner: bool,
) -> Generator[T, None, None]:
    """The generator behind :class:`SyncIterator` (lazy: nothing runs before the first next)."""
    cm: AbstractContextManager[AsyncIterable[T]] | None = None
    it: AsyncIterator[T] | None = None
    exc_info: tuple[Any, Any, Any] = (None, None, None)
    try:
        if _is_async_cm(source):
            cm = runner.portal.wrap_async_context_manager(
                cast("AbstractAsyncContextManager[AsyncIterable[T]]", source)
            )
            iterable = cm.__enter__()
        else:
            iterable = cast("AsyncIterable[T]", source)
        it = aiter(iterable)
        while True:
            try:
                items = control.run(runner, _Call(functools.partial(_next_and_ready, it)))
            except StopAsyncIteration:
                return
            handed: Callable[[], object] | None = getattr(it, "handed", None)
            yield items[0]
            for item in items[1:]:
                if handed is not None:
                    handed()  # progress as each reaches the consumer, not ahead of it
                yield item
    except GeneratorExit:
        raise  # the consumer left early: a clean exit for the async side
    except BaseException as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        raise
    finally:
        if threading.get_ident() != runner._provider.thread_id:
            try:
                try:
                    aclose = getattr(it, "aclose", None)
                    if aclose is not None and not runner.closed:
                        runner.call(aclose)
                finally:
                    if cm is not None and not runner.closed:
                        cm.__exit__(*exc_info)
            finally:
                if own_runner:
                    runner.close()
        # On the loop thread (the generator was garbage-collected there) nothing can be
        # awaited: async generators are finalized by the loop's own hooks, and a wrapped
        # context manager is cancelled when the last lease stops the loop.


class SyncIterator(Closing, Iterator[T]):
    """A lazy sync view of an async iterator; see :meth:`Runner.iterate`.

    Also a context manager: ``with runner.iterate(src) as it: ...`` closes it on exit.
    Thread-safe: several threads may pull from one iterator (each item reaches one of them).
    """

    def __init__(self, gen: Generator[T, None, None], control: _Control | None = None) -> None:
        self._gen = gen
        self._control = control or _Control()
        self._provider = _provider  # replaced in a forked child: this iterator is lost there
        # held while the generator runs: close() from another thread waits for its cleanup
        self._running = threading.RLock()
        self._consumer: int | None = None  # the thread that called next() last
        self._stopped_by: int | None = None  # the thread that called close()
        self._failed: BaseException | None = None  # what ended the iterator, raised in a next()
        # why a close() that was not the consumer's own stopped it (its dataset was closed):
        # every later next() raises ClosedError saying so, from any thread
        self._closed_because: str | None = None
        #: an object kept alive while iterating (the sync dataset whose tiles these are)
        self.keep: object = None

    def __iter__(self) -> Self:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError(
            "an ngio_async iterator cannot be pickled (it runs on this process's event loop); "
            "pickle the dataset and call tiles() in the other process"
        )

    def __next__(self) -> T:
        if self._provider.abandoned:  # inherited through a fork: its loop is not in this process
            raise ClosedError("the ngio_async event loop was lost in a fork; create a new iterator")
        with self._running:
            self._consumer = threading.get_ident()
            if self._failed is not None:  # the stream failed (in another thread, say)
                raise ClosedError(
                    f"the iterator ended with an error: {self._failed!r}"
                ) from self._failed
            if self._control.closing:
                self._gen.close()  # closed from the loop thread: the cleanup is done here
                if self._closed_because is not None:
                    raise ClosedError(self._closed_because)
                if self._stopped_by not in (None, self._consumer):  # not an ordinary end
                    raise ClosedError("the iterator was closed by another thread")
                raise StopIteration
            try:
                return next(self._gen)
            except (StopIteration, ClosedError):  # an end, or a close(): as they are
                raise
            except Exception as exc:
                # the generator is over: the threads that pull from it next must not take
                # that for a normal end (a work queue of tiles would stop short silently)
                self._failed = exc
                raise

    def close(self, *, because: str | None = None) -> None:
        """Close the async iterator and exit its context manager now (idempotent).

        From any thread: a ``next()`` waiting in another thread is cancelled (it raises
        :class:`~ngio_async.ClosedError`), and ``close()`` returns once the prefetching has
        stopped. From a progress callback (on the loop, or in the consumer's ``next()``) it
        only asks for the stop, which the consuming thread carries out. A consumer stopped by another thread's ``close()``
        gets :class:`~ngio_async.ClosedError` from ``next()``, never a normal end.

        :param because: what stopped it (its source was closed): every later ``next()``
            raises :class:`~ngio_async.ClosedError` with this message, the closing thread's
            too; an iterator that had already ended keeps its normal end.
        """
        if self._provider.abandoned:
            return  # inherited through a fork: nothing of it runs here (its lock may be held)
        if self._stopped_by is None and inspect.getgeneratorstate(self._gen) != "GEN_CLOSED":
            self._stopped_by = threading.get_ident()  # not over yet: this stops it
            self._closed_because = because
        self._control.close()
        if in_portal_thread():
            return  # waiting here would block the loop the consumer waits on
        with self._running:
            if inspect.getgeneratorstate(self._gen) == "GEN_RUNNING":
                return  # called by the consumer's own next() (a progress callback): it stops
            self._gen.close()


# -- one-off helpers (each takes its own lease; hold a Runner for repeated use) -----------------


def call(fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``await fn(*args, **kwargs)`` on the shared loop with a lease held for the call."""
    with Runner() as runner:
        return runner.call(fn, *args, **kwargs)


def iterate(
    source: AsyncIterable[T] | AbstractAsyncContextManager[AsyncIterable[T]],
) -> SyncIterator[T]:
    """:meth:`Runner.iterate` with a lease held until the iterator is exhausted or closed.

    The lease is taken on the first ``next()``, so an iterator that is never started holds none.
    """

    control = _Control()

    def gen() -> Generator[T, None, None]:
        runner = Runner()
        yield from _drive(runner, source, control, own_runner=True)

    return SyncIterator(gen(), control)


def wrap_async_context_manager(
    cm: AbstractAsyncContextManager[T_co],
) -> AbstractContextManager[T_co]:
    """A sync context manager for ``cm``; a lease is held from ``__enter__`` to ``__exit__``."""
    return _LazyLeaseContextManager(cm)


class _LazyLeaseContextManager(AbstractContextManager[T_co]):
    def __init__(self, cm: AbstractAsyncContextManager[T_co]) -> None:
        self._cm = cm
        self._inner: _GuardedContextManager[T_co] | None = None

    def __enter__(self) -> T_co:
        runner = Runner()
        try:
            self._inner = _GuardedContextManager(
                runner.portal.wrap_async_context_manager(self._cm), runner
            )
        except BaseException:
            runner.close()
            raise
        return self._inner.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        inner, self._inner = self._inner, None
        if inner is None:
            return None
        return inner.__exit__(exc_type, exc_val, exc_tb)
