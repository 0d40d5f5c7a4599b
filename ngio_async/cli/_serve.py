"""``ngio-async serve URL...``: the tile server (:mod:`ngio_async.web`) on a TCP port."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio

from .._prefetch import start_deferred
from ._common import CLIError, one_line_logs, store_options
from ._run import run_async

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["default_names", "run_serve", "serve_urls"]


def _last_component(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path if len(parts.scheme) > 1 else url
    if len(parts.scheme) <= 1 or parts.scheme == "file":  # a local path: ".", "..", "~/x"
        path = os.path.abspath(os.path.expanduser(unquote(path) if parts.scheme else path))
    name = path.replace("\\", "/").rstrip("/").rpartition("/")[2]
    if not name and len(parts.scheme) > 1:
        name = parts.hostname or ""
    return name or "dataset"


def default_names(urls: Sequence[str]) -> list[str]:
    """The last path component of each URL, de-duplicated with ``-2``, ``-3``..."""
    names: list[str] = []
    for url in urls:
        base = _last_component(url)
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


async def serve_urls(
    datasets: dict[str, str],
    host: str,
    port: int,
    *,
    tile_size: int = 512,
    max_region_pixels: int | None = None,
    max_open_fields: int | None = None,
    options: dict[str, Any] | None = None,
    notes: bool = True,
) -> None:
    """Open ``datasets`` and serve them until cancelled (Ctrl-C or SIGTERM).

    ``max_open_fields``: how many plate fields and container images are kept open (default
    256)."""
    from ..web import DEFAULT_MAX_REGION_PIXELS, create_app, serve
    from ..web._app import STATE
    from ..web._server import ListenError
    from ..web._state import DEFAULT_MAX_OPEN_FIELDS

    def stopping() -> None:
        if notes:
            print("stopping (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)

    def ready(url: str) -> None:
        state = app[STATE]
        shown = []
        for name in datasets:
            plate = state.plates.get(name)
            container = state.containers.get(name)
            if plate is not None:  # its fields are datasets of their own
                missing = f", {len(plate.unavailable)} not served" if plate.unavailable else ""
                shown.append(f"{name}: a plate of {len(plate.fields)} fields{missing}")
            elif container is not None:  # so are its images
                shown.append(f"{name}: a container of {len(container.series)} images")
            else:
                shown.append(name)
        count = len(state.entries) + len(state.fields)
        print(f"serving {count} dataset(s) ({', '.join(shown)}) at {url}", flush=True)
        print("press Ctrl-C to stop", flush=True)

    app = create_app(
        datasets,
        tile_size=tile_size,
        max_region_pixels=max_region_pixels or DEFAULT_MAX_REGION_PIXELS,
        max_open_fields=max_open_fields or DEFAULT_MAX_OPEN_FIELDS,
        **(options or {}),
    )
    async with anyio.create_task_group() as tg:
        start_deferred(tg, _stop_on_sigterm, tg.cancel_scope)
        try:
            await serve(app, host, port, on_ready=ready, on_stopping=stopping)
        except ListenError as exc:  # the address is taken, not ours, or no host of that name
            raise CLIError(exc.strerror or str(exc)) from exc


async def _stop_on_sigterm(scope: anyio.CancelScope) -> None:
    """SIGTERM (``kill``, container stops) shuts down as gracefully as Ctrl-C."""
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def run_serve(args: argparse.Namespace) -> int:
    urls: list[str] = args.urls
    names: list[str] = args.name or []
    if names and len(names) != len(urls):
        raise CLIError(f"--name gave {len(names)} names for {len(urls)} URLs: give one per URL")
    names = names or default_names(urls)
    if len(set(names)) != len(names):
        raise CLIError(f"dataset names must be unique: {names}")
    for name in names:
        if not name or "/" in name:
            raise CLIError(f"invalid dataset name {name!r}")
    datasets = dict(zip(names, urls, strict=True))
    with one_line_logs("aiohttp", args.quiet):
        run_async(
            serve_urls,
            datasets,
            args.host,
            args.port,
            tile_size=args.tile_size,
            max_region_pixels=args.max_region_pixels,
            max_open_fields=args.max_open_fields,
            options=_with_read_cache(store_options(args), args.read_cache),
            notes=not args.quiet,
            quiet=args.quiet,
        )
    print("stopped", file=sys.stderr)
    return 0


def _with_read_cache(options: dict[str, Any], mib: int) -> dict[str, Any]:
    """The open options, with ``Limits(read_cache_bytes=...)`` for ``--read-cache MIB``."""
    if not mib:
        return options
    from .._limits import Limits

    return {**options, "limits": Limits(read_cache_bytes=mib << 20)}
