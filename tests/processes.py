"""Child processes for the cross-process tests: pools of spawned workers (fresh interpreters, as
separate programs would be), and a body run in a forked child (a copy of this process)."""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import signal
import tempfile
import time
import traceback
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.pool import Pool


@contextlib.contextmanager
def spawned_pool(
    initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[Pool]:
    """Two spawned workers, both started and done importing before it yields."""
    workers = multiprocessing.get_context("spawn").Pool(
        2, initializer=initializer, initargs=initargs
    )
    try:
        workers.map(_ready, range(2), chunksize=1)
        yield workers
    finally:
        workers.terminate()
        workers.join()


def _ready(_: int) -> int:
    return 0


# how long after ``timeout`` the parent kills a child whose own watchdog did not end it
_KILL_AFTER = 10.0


def run_in_fork(body: Callable[[], object], timeout: float = 10.0) -> None:
    """Run ``body`` in a child forked from this process; fail the test with the child's
    traceback when it raised, or with the stacks of its threads when it hung ``timeout`` seconds.

    The child ends with ``os._exit``: neither the parent's atexit hooks nor its finalizers run
    there (they would act on the parent's loops, threads and connections, or wait for them).
    """
    __tracebackhide__ = True  # the test's own line, then the child's traceback
    with tempfile.TemporaryFile() as report:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                # a hang writes every thread's stack to the report, then ends the child
                faulthandler.dump_traceback_later(timeout, exit=True, file=report)
                body()
                code = 0
            except BaseException:  # noqa: BLE001 - reported to the parent
                report.write(traceback.format_exc().encode())
                report.flush()
            finally:
                os._exit(code)
        exit_code = _exit_code(pid, timeout + _KILL_AFTER)
        report.seek(0)
        text = report.read().decode(errors="replace")
    if exit_code is None:
        pytest.fail(f"the forked child did not end within {timeout + _KILL_AFTER} s: killed")
    if text.startswith("Timeout ("):
        pytest.fail(f"the forked child hung (not done after {timeout} s), its threads:\n{text}")
    if exit_code != 0:
        how = signal.Signals(-exit_code).name if exit_code < 0 else f"exit code {exit_code}"
        pytest.fail(f"the forked child failed ({how}):\n{text}")


def _exit_code(pid: int, seconds: float) -> int | None:
    """The child's exit code (minus the signal that killed it), or None, the child killed, when it
    is still running after ``seconds`` (or this wait is interrupted: it must not live on)."""
    deadline = time.monotonic() + seconds
    reaped = False
    try:
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        return None
    finally:
        if not reaped:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
