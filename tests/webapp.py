"""The tile server's app (``ngio_async.web.create_app``) on a loopback ``AppRunner`` for the web
tests, and what they decode its answers with."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np
from aiohttp import web
from PIL import Image

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from numpy.typing import NDArray

__all__ = ["png_rgb", "running"]


@contextlib.asynccontextmanager
async def running(
    app: web.Application, *, handler_cancellation: bool = True
) -> AsyncIterator[tuple[aiohttp.ClientSession, int]]:
    """``app`` on 127.0.0.1 (a free port): a client session for it (no connection limit) and
    the port; the runner cleaned up at the end."""
    runner = web.AppRunner(app, handler_cancellation=handler_cancellation)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            yield http, port
    finally:
        await runner.cleanup()


def png_rgb(body: bytes) -> NDArray[Any]:
    """A PNG (or JPEG) answer's pixels as an RGB array."""
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))
