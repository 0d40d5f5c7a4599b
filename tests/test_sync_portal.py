"""Tests of the sync shim (ngio_async.sync): portal calls, lazy iteration, leases, fork."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest
from processes import run_in_fork

from ngio_async import _sync_api, sync
from ngio_async._errors import ClosedError
from ngio_async._prefetch import prefetch
from ngio_async.sync import Runner

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from servers import StaticServer


@pytest.fixture
def runner() -> Iterator[Runner]:
    r = Runner()
    yield r
    r.close()


async def whoami(tag: str = "", *, suffix: str = "") -> tuple[str, int]:
    await anyio.lowlevel.checkpoint()
    return tag + suffix, threading.get_ident()


async def fail() -> None:
    await anyio.lowlevel.checkpoint()
    raise KeyError("missing")


class Counter:
    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    async def gen(self, n: int, fail_at: int | None = None) -> AsyncIterator[int]:
        try:
            for i in range(n):
                if i == fail_at:
                    raise KeyError(i)
                self.produced += 1
                yield i
        finally:
            self.closed = True


# -- calls -----------------------------------------------------------------------------------


def test_call_from_plain_thread(runner: Runner) -> None:
    out: list[tuple[str, int]] = []
    t = threading.Thread(target=lambda: out.append(runner.call(whoami, "a", suffix="b")))
    t.start()
    t.join()
    assert out[0][0] == "ab"
    assert out[0][1] not in (threading.get_ident(), t.ident)
    assert sync.is_running()
    assert not sync.in_portal_thread()


def test_call_returns_and_raises_plain(runner: Runner) -> None:
    assert runner.call(whoami, "x")[0] == "x"
    with pytest.raises(KeyError):
        runner.call(fail)


def test_module_level_call() -> None:
    assert sync.call(whoami, "y")[0] == "y"


def test_call_inside_running_asyncio_loop(runner: Runner) -> None:
    async def main() -> tuple[str, int]:
        # A coroutine on the caller's own loop (as in Jupyter) uses the blocking API directly.
        result = runner.call(whoami, "jupyter")
        items = list(runner.iterate(Counter().gen(3)))
        assert items == [0, 1, 2]
        return result

    tag, ident = asyncio.run(main())
    assert tag == "jupyter"
    assert ident != threading.get_ident()


@pytest.mark.timeout(10)
def test_call_from_portal_thread_raises_instead_of_deadlocking(runner: Runner) -> None:
    async def reenter() -> str:
        await anyio.lowlevel.checkpoint()
        for attempt in (
            lambda: runner.call(whoami),
            lambda: runner.iterate(Counter().gen(2)),
            lambda: next(sync.iterate(Counter().gen(2))),
            Runner,
            runner.close,
        ):
            with pytest.raises(RuntimeError, match="own event loop thread"):
                attempt()
        assert sync.in_portal_thread()
        return "ok"

    assert runner.call(reenter) == "ok"
    # The outer call itself sees the RuntimeError when it is not caught inside.
    with pytest.raises(RuntimeError, match="own event loop thread"):
        runner.call(lambda: _call_back(runner))


async def _call_back(runner: Runner) -> tuple[str, int]:
    await anyio.lowlevel.checkpoint()
    return runner.call(whoami)


@pytest.mark.timeout(10)
def test_timeout_cancels_inside_the_loop(runner: Runner) -> None:
    state = {"cancelled": False}

    async def forever() -> None:
        try:
            await anyio.Event().wait()
        finally:
            state["cancelled"] = True

    with pytest.raises(TimeoutError):
        runner.call_with_timeout(0.01, forever)
    assert state["cancelled"]  # the work was cancelled, not just abandoned
    assert runner.call_with_timeout(None, whoami, "t")[0] == "t"
    assert runner.call_with_timeout(5.0, whoami, "t")[0] == "t"


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread()
    or not hasattr(signal, "pthread_kill"),
    reason="needs signals in the main thread",
)
@pytest.mark.timeout(20)
def test_interrupt_while_waiting_cancels_the_work(runner: Runner) -> None:
    state = {"cancelled": False}
    started = threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            state["cancelled"] = True

    main = threading.get_ident()

    def waiting_for_result() -> bool:
        frame = sys._current_frames().get(main)
        names: list[str] = []
        while frame is not None and len(names) < 3:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        # Runner._run -> Future.result -> Condition.wait (the portal's handshake also waits
        # on a future, deeper down)
        return names == ["wait", "result", "_run"]

    def interrupt() -> None:
        if not started.wait(10):
            return
        # Only once the caller waits for the result: a signal that lands inside the portal's
        # submit handshake can leave a lock held, as Ctrl-C can in any blocking library (a
        # fixed sleep is not enough on a loaded machine).
        for _ in range(1000):
            if waiting_for_result():
                break
            time.sleep(0.01)
        # again while it still waits: Python drops a KeyboardInterrupt raised inside a
        # finalizer that the garbage collector happened to run (a real Ctrl-C can be lost so)
        for _ in range(20):
            signal.pthread_kill(main, signal.SIGINT)
            time.sleep(0.25)
            if not waiting_for_result():
                return

    # Ctrl-C as a script run from a terminal has it, whatever the test process set up
    # (a pytest-xdist worker, or an earlier test, may leave another handler or a mask)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.call(forever)
    finally:
        t.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
    for _ in range(500):  # the cancellation reaches the loop asynchronously
        if state["cancelled"]:
            break
        runner.call(anyio.sleep, 0.01)
    assert state["cancelled"]


# -- iteration -------------------------------------------------------------------------------


def test_iteration_is_lazy(runner: Runner) -> None:
    c = Counter()
    it = runner.iterate(c.gen(100))
    assert c.produced == 0
    assert next(it) == 0
    assert c.produced == 1
    assert next(it) == 1
    assert c.produced == 2
    it.close()
    assert c.closed
    it.close()  # idempotent


@pytest.mark.parametrize("rep", range(10))
def test_break_closes_the_async_generator(runner: Runner, rep: int) -> None:
    c = Counter()
    for i in runner.iterate(c.gen(1000)):
        if i == rep:
            break
    assert c.closed  # the dropped iterator ran aclose() on the portal
    assert c.produced == rep + 1


def test_with_statement_closes(runner: Runner) -> None:
    c = Counter()
    with runner.iterate(c.gen(10)) as it:
        assert next(it) == 0
    assert c.closed


def test_exhaustion_and_errors(runner: Runner) -> None:
    c = Counter()
    assert list(runner.iterate(c.gen(5))) == [0, 1, 2, 3, 4]
    assert c.closed
    c = Counter()
    got: list[int] = []
    with pytest.raises(KeyError):
        got.extend(runner.iterate(c.gen(10, fail_at=3)))
    assert c.produced == 3
    assert c.closed


def test_module_level_iterate_holds_a_lease_while_iterating() -> None:
    c = Counter()
    it = sync.iterate(c.gen(3))
    assert c.produced == 0
    assert next(it) == 0
    assert sync.is_running()
    assert list(it) == [1, 2]
    assert c.closed


class Fetches:
    def __init__(self) -> None:
        self.started = 0
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, item: int) -> int:
        self.started += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            for _ in range(20):
                await anyio.lowlevel.checkpoint()
            if item == 13:
                raise KeyError(item)
            return item * 2
        finally:
            self.in_flight -= 1


def test_iterate_prefetch_context_manager(runner: Runner) -> None:
    f = Fetches()
    assert list(runner.iterate(prefetch(range(10), f, window=3))) == [2 * i for i in range(10)]
    assert f.in_flight == 0
    assert f.peak <= 3


@pytest.mark.parametrize("rep", range(20))
def test_iterate_prefetch_break_and_error(runner: Runner, rep: int) -> None:
    f = Fetches()
    for n, _ in enumerate(runner.iterate(prefetch(range(10_000), f, window=4)), 1):
        if n == 1 + rep % 6:
            break
    assert f.in_flight == 0
    assert f.started <= 1 + rep % 6 + 4 + 1

    f = Fetches()
    got: list[int] = []
    with pytest.raises(KeyError):
        got.extend(runner.iterate(prefetch(range(100), f, window=4)))
    assert f.in_flight == 0


def test_iterate_prefetch_inside_running_loop(runner: Runner) -> None:
    f = Fetches()

    async def main() -> list[int]:
        return list(runner.iterate(prefetch(range(6), f, window=2)))

    assert asyncio.run(main()) == [0, 2, 4, 6, 8, 10]


# -- context managers ------------------------------------------------------------------------


def test_wrap_async_context_manager_with_task_group(runner: Runner) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def resource() -> AsyncIterator[str]:
        async with anyio.create_task_group() as tg:  # entered and exited in one task
            tg.start_soon(anyio.sleep_forever)
            events.append("enter")
            try:
                yield "res"
            finally:
                tg.cancel_scope.cancel()
                events.append("exit")

    with runner.wrap_async_context_manager(resource()) as value:
        assert value == "res"
    assert events == ["enter", "exit"]

    events.clear()
    with sync.wrap_async_context_manager(resource()) as value:
        assert value == "res"
        assert sync.is_running()
    assert events == ["enter", "exit"]


# -- leases ----------------------------------------------------------------------------------


def _portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ngio_async-portal"]


def _no_leases_elsewhere() -> None:
    """Give back the leases earlier tests left to the garbage collector: the shared datasets
    of unpickled copies no handle uses, and sync objects dropped without ``close()`` (their
    finalizers close them in short-lived threads); then no lease may be left."""
    _sync_api._shared.close()
    gc.collect()
    for t in threading.enumerate():
        if t.name == "ngio_async-close":
            t.join(10)
    assert sync._provider.leases == 0, "a test left a blocking dataset or a Runner open"


def test_lease_lifetime() -> None:
    _no_leases_elsewhere()
    assert not sync.is_running()
    r1 = Runner()
    r2 = Runner()
    assert sync.is_running()
    assert len(_portal_threads()) == 1
    r1.close()
    r1.close()  # idempotent
    assert r1.closed
    assert sync.is_running()
    with pytest.raises(ClosedError):
        r1.call(whoami)
    r2.close()
    assert not sync.is_running()
    assert _portal_threads() == []
    with Runner() as r3:  # a new lease starts a new loop
        assert r3.call(whoami, "again")[0] == "again"
    assert not sync.is_running()


def test_last_release_cancels_orphaned_work() -> None:
    _no_leases_elsewhere()
    state = {"cancelled": False}

    async def orphan() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            state["cancelled"] = True

    r = Runner()
    r.portal.start_task_soon(orphan)
    r.close()  # must not wait for the orphan forever
    assert state["cancelled"]
    assert not sync.is_running()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(30)
def test_fork_gives_the_child_a_fresh_loop(runner: Runner) -> None:
    assert runner.call(whoami, "parent")[0] == "parent"

    def child() -> None:
        assert not sync.is_running()
        assert runner.closed
        with pytest.raises(ClosedError):
            runner.call(whoami)
        runner.close()  # a no-op for a lease from before the fork
        assert sync.call(whoami, "child")[0] == "child"
        assert not sync.is_running()

    run_in_fork(child)
    assert runner.call(whoami, "parent")[0] == "parent"


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(60)
def test_a_child_forked_after_obstore_was_used_reads_with_plain_io_or_aiohttp(
    tmp_path: Path, http_server: StaticServer
) -> None:
    # obstore's runtime threads do not survive fork(): in the child, local paths are read with
    # plain file I/O, http(s) images with aiohttp, and other obstore stores fail at once
    import numpy as np
    from images import Spec, write_image

    import ngio_async
    from ngio_async import UnsupportedError
    from ngio_async.stores import open_store

    spec = Spec(version="0.5", shape=(2, 32, 32), chunks=(1, 16, 16), levels=1)
    data = write_image(tmp_path / "img", spec)[0]
    write_image(http_server.root / "img", spec)
    with ngio_async.open(tmp_path / "img") as ds:  # the parent uses obstore
        np.testing.assert_array_equal(ds[...], data)

        def child() -> None:
            with ngio_async.open(tmp_path / "img") as local:
                np.testing.assert_array_equal(local[...], data)
            with pytest.raises(UnsupportedError, match="forked") as refused:
                open_store("memory://")
            assert "spawn" in str(refused.value)
            with ngio_async.open(f"{http_server.url}img") as remote:
                np.testing.assert_array_equal(remote[...], data)

        run_in_fork(child, timeout=20)
        np.testing.assert_array_equal(ds[...], data)  # the parent is unaffected
