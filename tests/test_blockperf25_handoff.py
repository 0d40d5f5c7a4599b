"""The blocking calls' hand-off to the event loop (``ngio_async.sync``): one
``call_soon_threadsafe`` per call and a plain future, not the anyio portal's handshake (which
waited for the task to be spawned: two round trips a call); what it must keep: results, errors,
timeouts, cancellation from another thread, and the last lease's stop cancelling a call.
"""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import pytest
from anyio.from_thread import BlockingPortal

from ngio_async import _sync_api, sync
from ngio_async._errors import ClosedError
from ngio_async.sync import Runner

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def runner() -> Iterator[Runner]:
    r = Runner()
    yield r
    r.close()


async def double(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


def test_calls_do_not_go_through_the_portal(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 calls, none through ``BlockingPortal.start_task_soon`` / ``call`` (counted)."""
    seen: list[str] = []
    for name in ("start_task_soon", "call"):
        real = getattr(BlockingPortal, name)

        def spy(self: BlockingPortal, *args: Any, _real: Any = real, _name: str = name) -> Any:
            seen.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(BlockingPortal, name, spy)
    assert [runner.call(double, k) for k in range(200)] == [2 * k for k in range(200)]
    assert seen == []


def test_errors_and_timeouts_keep_their_type(runner: Runner) -> None:
    async def fail() -> None:
        await anyio.lowlevel.checkpoint()
        raise KeyError("the key")

    with pytest.raises(KeyError, match="the key"):
        runner.call(fail)
    with pytest.raises(TimeoutError):
        runner.call_with_timeout(0.05, anyio.sleep_forever)
    assert runner.call(double, 4) == 8  # the runner still works


def test_interrupt_from_another_thread_cancels_the_call(runner: Runner) -> None:
    started = threading.Event()
    state: dict[str, Any] = {}

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            state["cancelled"] = True

    def waiter() -> None:
        try:
            runner.call(forever)
        except BaseException as exc:  # noqa: BLE001 - what the call raised, checked below
            state["raised"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    assert started.wait(10)
    runner.interrupt()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(state["raised"], ClosedError)
    assert state["cancelled"]


def test_last_release_cancels_a_call_in_flight() -> None:
    """The last lease is released while another thread's call runs: the call is cancelled on
    the loop (its ``finally`` runs) and raises ClosedError; nothing hangs."""
    _sync_api._shared.close()  # the shared datasets of unpickled copies earlier tests left
    gc.collect()
    if sync._provider.leases:
        pytest.skip("another lease is held in this process")
    started = threading.Event()
    state: dict[str, Any] = {}

    async def forever() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            state["cancelled"] = True

    r = Runner()

    def waiter() -> None:
        try:
            r.call(forever)
        except BaseException as exc:  # noqa: BLE001 - what the call raised, checked below
            state["raised"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    assert started.wait(10)
    r.close()  # the last lease: the loop stops
    t.join(10)
    assert not t.is_alive()
    assert state["cancelled"]
    assert isinstance(state["raised"], ClosedError)
    assert not sync.is_running()
