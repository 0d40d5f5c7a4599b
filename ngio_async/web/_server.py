"""``serve``: run an app on a TCP port until cancelled, then shut down gracefully."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from aiohttp import web

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ListenError", "serve"]


class ListenError(OSError):
    """The server could not listen on its address (taken, not this host's, no such host)."""


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    on_ready: Callable[[str], None] | None = None,
    on_stopping: Callable[[], None] | None = None,
    shutdown_timeout: float = 5.0,
) -> None:
    """Serve ``app`` on ``host:port`` until cancelled (Ctrl-C), then close it.

    A client that disconnects cancels its request handler (``handler_cancellation``), so its
    store reads stop. ``on_ready(url)`` is called once listening (``port=0``: a free port),
    ``on_stopping()`` when shutdown begins after that. Shutdown takes at most
    ``shutdown_timeout`` seconds for the requests in flight (half of it to finish, then the
    rest to end once cancelled: aiohttp allows its timeout for each step); it returns once
    every request has ended, before the app's datasets are closed.

    :raises ListenError: (an ``OSError``) the address is taken, not this host's, or ``host``
        does not resolve; the message names ``host:port``.
    """
    runner = web.AppRunner(
        app,
        handle_signals=False,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout / 2,
    )
    await runner.setup()
    listening = False
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            why = exc.strerror or str(exc)
            raise ListenError(exc.errno, f"cannot listen on {host}:{port}: {why}") from exc
        listening = True
        if on_ready is not None:
            bound = runner.addresses[0]
            shown = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
            on_ready(f"http://{shown}:{bound[1]}/")
        await anyio.sleep_forever()
    finally:
        if listening and on_stopping is not None:
            on_stopping()
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
