"""A latency-injected static HTTP server on 127.0.0.1 (the shape of S3 round trips, on loopback).

Two servers, the same answers (``Range`` support: ``206`` + ``Content-Range`` for ranges, ``200``
for whole files, suffix ranges ``bytes=-n``; ``404`` for missing files), each waiting ``delay``
seconds before every answer:

- ``nginx``: nginx (one worker) with its Lua module sleeping in the access phase
  (``apt-get install nginx libnginx-mod-http-lua``). A C server costs the client's 2 cores
  almost nothing, so the readers are measured rather than the server;
- ``aiohttp``: aiohttp's static handler behind a sleeping middleware, in its own Python process
  (no extra packages; it takes about a core's worth of CPU at a few thousand requests/s).

``server="auto"`` takes nginx when it is installed::

    with http_server(DATA, delay=0.02) as (base_url, server):   # "http://127.0.0.1:PORT"
        ...

or standalone: ``python benchmarks/_proxy.py DIR --delay 0.02`` (aiohttp; prints ``PORT <n>``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
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


NGINX_MODULES = Path("/usr/lib/nginx/modules")
NGINX_CONF = """
load_module {modules}/ndk_http_module.so;
load_module {modules}/ngx_http_lua_module.so;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    root {root};
    location / {{ {sleep} }}
  }}
}}
"""


def nginx_available() -> bool:
    """nginx and its Lua module are installed."""
    return shutil.which("nginx") is not None and (NGINX_MODULES / "ngx_http_lua_module.so").exists()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bench_serve's servers take one too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _nginx(root: Path, delay: float) -> Iterator[str]:
    nginx = shutil.which("nginx")
    assert nginx is not None
    with tempfile.TemporaryDirectory(prefix="ngio-bench-nginx-") as tmp:
        port = free_port()
        sleep = f"access_by_lua_block {{ ngx.sleep({delay}) }}" if delay > 0 else ""
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                modules=NGINX_MODULES, tmp=tmp, port=port, root=root.resolve(), sleep=sleep
            )
        )
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", tmp], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"nginx did not start: {err.strip()}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not listen on port {port}")
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            from _common import stop_process

            stop_process(proc)


@contextlib.contextmanager
def http_server(
    root: Path, *, delay: float = 0.02, server: str = "auto"
) -> Iterator[tuple[str, str]]:
    """Start the server (``nginx``, ``aiohttp`` or ``auto``) in a child process; yield its base
    URL and the server's name; stop it on exit."""
    if server == "auto":
        server = "nginx" if nginx_available() else "aiohttp"
    if server == "nginx":
        with _nginx(root, delay) as url:
            yield url, server
    elif server == "aiohttp":
        from _common import child_line

        with child_line([__file__, str(root), "--delay", str(delay)], "PORT ") as port:
            yield f"http://127.0.0.1:{int(port)}", server
    else:
        raise ValueError(f"unknown HTTP server {server!r} (nginx, aiohttp, auto)")


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
