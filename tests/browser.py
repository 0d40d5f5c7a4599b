"""Headless Chromium driven through the Chrome DevTools Protocol over aiohttp's websocket client.

No new dependency: Chromium comes from Debian (``make browser``), the protocol is JSON over one
websocket. ``launch()`` starts the browser with a throw-away profile on a free debugging port and
always kills it; ``Page`` sends commands one at a time and keeps the events that arrive meanwhile.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from anyio.abc import Process

__all__ = ["CdpError", "Page", "find_chromium", "launch"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
)


class CdpError(RuntimeError):
    """A DevTools command failed, or a page expression threw."""


def find_chromium() -> str | None:
    """The Chromium binary: ``$NGIO_CHROMIUM``, else the first of CANDIDATES on PATH."""
    env = os.environ.get("NGIO_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class Page:
    """One page target: ``call`` a DevTools method, ``evaluate`` JS, ``wait_for`` a condition."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, within: float = 30, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events received meanwhile go to ``events``."""
        self._next_id += 1
        msg_id = self._next_id
        await self._ws.send_json({"id": msg_id, "method": method, "params": params})
        with anyio.fail_after(within):
            while True:
                msg = await self._ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise CdpError(f"{method}: the DevTools socket closed ({msg.type.name})")
                data: dict[str, Any] = json.loads(msg.data)
                if data.get("id") == msg_id:
                    break
                if "method" in data:
                    self.events.append(data)
        if "error" in data:
            raise CdpError(f"{method}: {data['error'].get('message')}")
        result: dict[str, Any] = data.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited)."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20, poll: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy; return its value. AssertionError on timeout."""
        value: Any = None
        with anyio.move_on_after(within):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await anyio.sleep(poll)
        raise AssertionError(f"timed out after {within} s waiting for {expression!r} ({value!r})")

    async def goto(self, url: str) -> None:
        """Navigate and wait for the document to finish loading."""
        result = await self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        await self.wait_for("document.readyState === 'complete'")

    async def screenshot(self, path: Path) -> bytes:
        """Capture the viewport as PNG into ``path``; return the bytes."""
        result = await self.call("Page.captureScreenshot", format="png")
        png = base64.b64decode(result["data"])
        await anyio.Path(path).parent.mkdir(parents=True, exist_ok=True)
        await anyio.Path(path).write_bytes(png)
        return png


async def _debugging_port(profile: Path, process: Process, within: float) -> int:
    port_file = anyio.Path(profile / "DevToolsActivePort")
    with anyio.fail_after(within):
        while True:
            if process.returncode is not None:
                raise CdpError(f"chromium exited with {process.returncode} before listening")
            if await port_file.exists():
                lines = (await port_file.read_text()).splitlines()
                if lines and lines[0].strip().isdigit():
                    return int(lines[0])
            await anyio.sleep(0.05)


@asynccontextmanager
async def launch(
    binary: str, profile: Path, *, width: int = 1000, height: int = 700, within: float = 30
) -> AsyncIterator[Page]:
    """Start headless Chromium with the profile directory ``profile``; yield its first page."""
    args = [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
    process = await anyio.open_process(
        [*args, "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = await _debugging_port(profile, process, within)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/json/list") as response:
                targets = await response.json()
            page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            async with http.ws_connect(page_ws, max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                await page.call("Runtime.enable")
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await process.aclose()
