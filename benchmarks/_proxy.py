"""A latency-injected static HTTP server on 127.0.0.1 (the shape of S3 round trips, on loopback).

Two servers, the same answers (``Range`` support: ``206`` + ``Content-Range`` for ranges, ``200``
for whole files, suffix ranges ``bytes=-n``; ``404`` for missing files), each waiting ``delay``
seconds before every answer and, with ``rate`` (bytes/s), sending each answer's body no faster
than ``rate`` (a cloud store's connection: ~50-100 MB/s each, where loopback gives GB/s; one
HTTP/1.1 connection carries one answer at a time, so that is a per-connection limit):

- ``nginx``: nginx (one worker) with its Lua module sleeping in the access phase
  (``apt-get install nginx libnginx-mod-http-lua``), ``limit_rate`` for ``rate``. A C server
  costs the client's 2 cores almost nothing, so the readers are measured rather than the server;
- ``aiohttp``: aiohttp's static handler behind a sleeping middleware, in its own Python process
  (no extra packages; it takes about a core's worth of CPU at a few thousand requests/s); with
  ``rate``, a handler of its own that writes the body in paced pieces.

``server="auto"`` takes nginx when it is installed::

    with http_server(DATA, delay=0.02, rate=70e6) as (base_url, server):  # "http://127.0.0.1:PORT"
        ...

or standalone: ``python benchmarks/_proxy.py DIR --delay 0.02 [--rate 70e6]`` (aiohttp; prints
``PORT <n>``).
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


PIECE = 64 << 10  # bytes per paced write of the aiohttp server


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` of the request's ``Range`` in a ``size``-byte file, None without one."""
    from aiohttp import web

    unsatisfiable = web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    try:
        rng = request.http_range  # bytes=a-b: slice(a, b + 1); bytes=-n: slice(-n, None)
    except ValueError:
        raise unsatisfiable from None
    if rng.start is None and rng.stop is None:
        return None
    start, stop, _ = rng.indices(size)
    if start >= stop:
        raise unsatisfiable
    return start, stop


def _paced_handler(
    root: Path, rate: float
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A static handler (``Range``, ``HEAD``, ``404``) that sends every body at ``rate`` bytes/s:
    each ``PIECE`` is written once the bytes before it, at that rate, would have arrived."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        path = (root / request.match_info["path"]).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPNotFound()
        stat = path.stat()
        rng = _byte_range(request, stat.st_size)
        start, stop = rng or (0, stat.st_size)
        resp = web.StreamResponse(status=200 if rng is None else 206)
        resp.content_type = "application/octet-stream"
        resp.content_length = stop - start
        resp.last_modified = stat.st_mtime
        resp.headers["ETag"] = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        resp.headers["Accept-Ranges"] = "bytes"
        if rng is not None:
            resp.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stat.st_size}"
        await resp.prepare(request)
        if request.method != "HEAD":
            with path.open("rb") as f:
                f.seek(start)
                body = memoryview(f.read(stop - start))
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for off in range(0, len(body), PIECE):
                piece = body[off : off + PIECE]
                due = t0 + (off + len(piece)) / rate
                await asyncio.sleep(max(0.0, due - loop.time()))
                await resp.write(piece)
        await resp.write_eof()
        return resp

    return handle


async def _serve(root: Path, delay: float, port: int, rate: float | None = None) -> None:
    from aiohttp import web

    @web.middleware
    async def latency(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        await asyncio.sleep(delay)
        return await handler(request)

    app = web.Application(middlewares=[latency] if delay > 0 else [])
    if rate:
        app.router.add_get("/{path:.+}", _paced_handler(root, rate))
    else:
        app.router.add_static("/", root, follow_symlinks=False, show_index=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


NGINX_MODULES = Path("/usr/lib/nginx/modules")
NGINX_PACE_MS = 2  # ms nginx waits after each piece of a body with limit_rate
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
    location / {{ {sleep} {limit} }}
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
def _nginx(root: Path, delay: float, rate: float | None) -> Iterator[str]:
    nginx = shutil.which("nginx")
    assert nginx is not None
    with tempfile.TemporaryDirectory(prefix="ngio-bench-nginx-") as tmp:
        port = free_port()
        sleep = f"access_by_lua_block {{ ngx.sleep({delay}) }}" if delay > 0 else ""
        limit = ""
        if rate:
            # limit_rate: nginx sends a piece (at most sendfile_max_chunk), then waits as long as
            # the piece takes at the rate, in whole ms (rounded down): pieces of exactly
            # NGINX_PACE_MS at the rate. The last piece of a body goes out without a wait
            piece = -(-int(rate) * NGINX_PACE_MS // 1000)
            limit = f"limit_rate {int(rate)}; sendfile_max_chunk {piece};"
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                modules=NGINX_MODULES,
                tmp=tmp,
                port=port,
                root=root.resolve(),
                sleep=sleep,
                limit=limit,
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
    root: Path, *, delay: float = 0.02, rate: float | None = None, server: str = "auto"
) -> Iterator[tuple[str, str]]:
    """Start the server (``nginx``, ``aiohttp`` or ``auto``) in a child process, waiting
    ``delay`` s before each answer and sending bodies at ``rate`` bytes/s (None: as fast as
    it can); yield its base URL and the server's name; stop it on exit."""
    if server == "auto":
        server = "nginx" if nginx_available() else "aiohttp"
    if server == "nginx":
        with _nginx(root, delay, rate) as url:
            yield url, server
    elif server == "aiohttp":
        from _common import child_line

        args = [__file__, str(root), "--delay", str(delay)]
        if rate:
            args += ["--rate", str(rate)]
        with child_line(args, "PORT ") as port:
            yield f"http://127.0.0.1:{int(port)}", server
    else:
        raise ValueError(f"unknown HTTP server {server!r} (nginx, aiohttp, auto)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds before each answer")
    parser.add_argument("--rate", type=float, help="bytes/s of each answer's body (no limit)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.root.resolve(), args.delay, args.port, args.rate))


if __name__ == "__main__":
    main()
