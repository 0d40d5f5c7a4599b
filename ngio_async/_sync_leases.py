"""A blocking object's lease on the shared event loop: taking one (:func:`_leased`), and
giving it back when the object is closed, dropped unclosed, or still open at interpreter exit."""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .sync import Runner, in_portal_thread

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


T = TypeVar("T")


def _leased(make: Callable[[], Awaitable[T]]) -> tuple[Runner, T]:
    """``await make()`` on the shared loop under a new lease, returned with the lease (given
    back at once if ``make`` fails): the start of every sync object's life."""
    runner = Runner()
    try:

        async def go() -> T:
            return await make()

        return runner, runner.call(go)
    except BaseException:
        runner.close()
        raise


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


class _Nothing:
    """What a handle on a shared dataset closes: nothing (the anchor closes the dataset)."""

    async def aclose(self) -> None:
        return None


_NOTHING = _Nothing()


_log = logging.getLogger("ngio_async")


def _close_quietly(runner: Runner, target: _Closeable) -> None:
    with contextlib.suppress(Exception):
        try:
            runner.call(target.aclose)
        finally:
            runner.close()


def _close_dropped(runner: Runner, target: _Closeable, name: str) -> None:
    """The finalizer of a sync object (dataset, plate) collected without ``close()``.

    The garbage collector may run it in any thread, holding any lock, so it never waits here:
    a short-lived thread closes the object and gives the lease back.
    """
    if runner.closed:
        return
    with contextlib.suppress(RuntimeError):  # no new threads at interpreter shutdown
        threading.Thread(
            target=_close_quietly, args=(runner, target), name="ngio_async-close", daemon=True
        ).start()
    # not a warning: scripts and tests drop datasets all the time (and warnings raised in a
    # finalizer become errors under -W error); the resources going back is what matters
    _log.debug("%s was dropped without close(): closed by its finalizer", name)


# the sync objects still open, with their lease and what closes them
_open_objects: weakref.WeakKeyDictionary[object, tuple[Runner, _Closeable]] = (
    weakref.WeakKeyDictionary()
)


def _track(obj: object, runner: Runner, target: _Closeable) -> weakref.finalize[Any, Any]:
    """Close ``target`` and give ``runner``'s lease back if ``obj`` is dropped unclosed, or is
    still open at interpreter exit; returns the finalizer."""
    finalizer = weakref.finalize(obj, _close_dropped, runner, target, repr(obj))
    finalizer.atexit = False
    _open_objects[obj] = (runner, target)
    return finalizer


def _close_at_exit() -> None:
    """Close what is still open at interpreter exit, before the loop stops (runs first: atexit
    hooks run last-registered first, and :mod:`ngio_async.sync` registered its own earlier)."""
    for runner, target in list(_open_objects.values()):
        if not runner.closed and not in_portal_thread():
            _close_quietly(runner, target)


atexit.register(_close_at_exit)
