"""A latency-injected static HTTP server on 127.0.0.1 (the shape of S3 round trips, on loopback).

aiohttp's static handler serves a directory with ``Range`` support (``206`` + ``Content-Range``
for ranges, ``200`` for whole files, suffix ranges ``bytes=-n``); a middleware waits ``delay``
seconds before each answer. Run it in its own process so it does not share the client's GIL::

    with http_server(DATA, delay=0.02) as base_url:   # "http://127.0.0.1:PORT"
        ...

or standalone: ``python benchmarks/_proxy.py DIR --delay 0.02`` (prints ``PORT <n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from aiohttp import web


async def _serve(root: Path, delay: float, port: int) -> None:
    from aiohttp import web

    @web.middleware
    async def latency(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return await handler(request)

    app = web.Application(middlewares=[latency] if delay > 0 else [])
    app.router.add_static("/", root, follow_symlinks=False, show_index=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORT {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def http_server(root: Path, *, delay: float = 0.02) -> Iterator[str]:
    """Start the server in a child process; yield its base URL; stop it on exit."""
    from _common import child_line

    with child_line([__file__, str(root), "--delay", str(delay)], "PORT ") as port:
        yield f"http://127.0.0.1:{int(port)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.root.resolve(), args.delay, args.port))


if __name__ == "__main__":
    main()
