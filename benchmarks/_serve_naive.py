"""Naive tile servers for ``bench_serve.py``: zarr-python's sync API, composited, Pillow-encoded.

Same tile contract as ``ngio-async serve``
(``GET /api/datasets/{name}/tiles/{level}/{t}/{z}/{row}/{col}.{png|jpg}[?c=..&window=..&color=..]``,
a 512x512 RGB PNG (zlib level ``--compress-level``) or JPEG (quality 90)), two ways:

- ``threading``: ``http.server.ThreadingHTTPServer`` (HTTP/1.1 keep-alive, one thread per
  connection); the zarr group is opened once at start-up, each request reads its region with
  ``zarr.Array.__getitem__`` (sync, on zarr's own I/O loop thread);
- ``aiohttp-sync``: an aiohttp app whose handler calls the same sync zarr code inside the event
  loop (the classic mistake: one request at a time).

Run in its own process: ``python benchmarks/_serve_naive.py URL --name NAME --port N
[--mode threading|aiohttp-sync] [--compress-level 1] [--endpoint ...]``; prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["TileSource", "composite", "main"]

TILE = 512
_PATH = re.compile(r"^/api/datasets/([^/]+)/tiles/(\d+)/(\d+)/(\d+)/(\d+)/(\d+)\.(png|jpg)$")


def composite(
    planes: NDArray[Any],
    windows: list[tuple[float, float]],
    colors: list[tuple[int, int, int]],
) -> NDArray[np.uint8]:
    """(C, Y, X) channels -> (Y, X, 3) uint8: sum of clip((v-start)/(end-start), 0, 1) * color."""
    rgb = np.zeros((*planes.shape[1:], 3), dtype=np.float32)
    for plane, (start, end), color in zip(planes, windows, colors, strict=True):
        scaled = (plane.astype(np.float32) - np.float32(start)) / np.float32(end - start)
        np.clip(scaled, 0, 1, out=scaled)
        rgb += scaled[..., None] * np.asarray(color, dtype=np.float32)
    np.clip(rgb, 0, 255, out=rgb)
    return np.rint(rgb).astype(np.uint8)


def _color(hex_color: str | None) -> tuple[int, int, int]:
    h = (hex_color or "FFFFFF").lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class TileSource:
    """The zarr group, opened once; ``render(path, query)`` encodes one tile (sync)."""

    def __init__(self, url: str, name: str, store_options: dict[str, str], level_tile: int) -> None:
        import zarr

        self.name = name
        self.tile = level_tile
        self.group = zarr.open_group(_zarr_store(url, store_options), mode="r")
        attrs: dict[str, Any] = dict(self.group.attrs)
        ome: dict[str, Any] = attrs.get("ome", attrs)  # NGFF 0.5, else 0.4
        ms = ome["multiscales"][0]
        self.axes: list[str] = [a["name"] for a in ms["axes"]]
        self.arrays: list[Any] = [self.group[d["path"]] for d in ms["datasets"]]
        channels: list[dict[str, Any]] = (ome.get("omero") or {}).get("channels") or []
        nc = self.arrays[0].shape[self.axes.index("c")] if "c" in self.axes else 1
        channels = channels or [{}] * nc
        self.windows = [
            (float(ch["window"]["start"]), float(ch["window"]["end"]))
            if "window" in ch
            else (0.0, 65535.0)
            for ch in channels
        ]
        self.colors = [_color(ch.get("color")) for ch in channels]

    def render(self, path: str, query: str, compress_level: int) -> tuple[bytes, str] | None:
        m = _PATH.match(path)
        if m is None or m.group(1) != self.name:
            return None
        level, t, z, row, col = (int(v) for v in m.groups()[1:6])
        arr = self.arrays[level]
        q = parse_qs(query)
        chans = (
            [int(v) for v in q["c"][0].split(",")] if "c" in q else list(range(len(self.windows)))
        )
        windows = [self.windows[c] for c in chans]
        if "window" in q:
            windows = [
                (float(a), float(b)) for a, b in (w.split(":") for w in q["window"][0].split(","))
            ]
        colors = [self.colors[c] for c in chans]
        if "color" in q:
            colors = [_color(h) for h in q["color"][0].split(",")]
        sel: list[Any] = []
        for ax in self.axes:
            if ax == "t":
                sel.append(t)
            elif ax == "c":
                every = chans == list(range(arr.shape[self.axes.index("c")]))
                sel.append(slice(None) if every else chans)
            elif ax == "z":
                sel.append(z)
            elif ax == "y":
                sel.append(slice(row * self.tile, (row + 1) * self.tile))
            elif ax == "x":
                sel.append(slice(col * self.tile, (col + 1) * self.tile))
            else:
                sel.append(0)
        data = arr.oindex[tuple(sel)] if any(isinstance(s, list) for s in sel) else arr[tuple(sel)]
        planes: NDArray[Any] = data if "c" in self.axes else data[None]
        rgb = composite(planes, windows, colors)
        if rgb.shape[:2] != (self.tile, self.tile):  # edge tiles: pad to the full tile
            full = np.zeros((self.tile, self.tile, 3), dtype=np.uint8)
            full[: rgb.shape[0], : rgb.shape[1]] = rgb
            rgb = full
        from PIL import Image

        buf = io.BytesIO()
        if m.group(7) == "png":
            Image.fromarray(rgb, "RGB").save(buf, "PNG", compress_level=compress_level)
            return buf.getvalue(), "image/png"
        Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=90)
        return buf.getvalue(), "image/jpeg"


def _zarr_store(url: str, options: dict[str, str]) -> Any:
    import zarr.storage
    from obstore.store import HTTPStore, S3Store

    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        store: Any = S3Store(
            bucket,
            prefix=prefix,
            endpoint=options.get("endpoint"),
            region=options.get("region", "us-east-1"),
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            client_options={"allow_http": True},
        )
        return zarr.storage.ObjectStore(store, read_only=True)
    if url.startswith(("http://", "https://")):
        store = HTTPStore.from_url(url, client_options={"allow_http": True})
        return zarr.storage.ObjectStore(store, read_only=True)
    return zarr.storage.LocalStore(url, read_only=True)


def serve_threading(src: TileSource, port: int, compress_level: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as aiohttp does
        disable_nagle_algorithm = True  # TCP_NODELAY, as aiohttp does (else 40 ms stalls)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            try:
                answer = src.render(parts.path, parts.query, compress_level)
            except Exception as exc:  # noqa: BLE001 (answer 500, keep the connection)
                self._send(500, str(exc).encode(), "text/plain")
                return
            if answer is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, *answer)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

    httpd = Server(("127.0.0.1", port), Handler)
    print(f"PORT {httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


def serve_aiohttp_sync(src: TileSource, port: int, compress_level: int) -> None:
    from aiohttp import web

    async def tile(request: web.Request) -> web.Response:
        answer = src.render(request.path, request.query_string, compress_level)  # blocks the loop
        if answer is None:
            raise web.HTTPNotFound
        return web.Response(body=answer[0], content_type=answer[1])

    app = web.Application()
    app.router.add_get("/api/datasets/{name}/tiles/{rest:.*}", tile)
    print(f"PORT {port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("threading", "aiohttp-sync"), default="threading")
    parser.add_argument("--compress-level", type=int, default=1)
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    options = {"endpoint": args.endpoint} if args.endpoint else {}
    src = TileSource(args.url, args.name, options, TILE)
    if args.mode == "threading":
        serve_threading(src, args.port, args.compress_level)
    else:
        serve_aiohttp_sync(src, args.port, args.compress_level)
    sys.exit(0)


if __name__ == "__main__":
    main()
