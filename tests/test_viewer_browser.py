"""The browser viewer in real headless Chromium against the real tile server (issue 7).

The server (``create_app`` on an aiohttp TCPSite, 127.0.0.1, free port) serves a generated
3-level, 2-channel, 3-plane image; Chromium is driven over the DevTools Protocol (tests/browser.py).
Skips when no Chromium binary is found (``make browser`` installs it) or OpenSeadragon is missing
(``make viewer``). The screenshot lands in build/screenshots/viewer.png.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import re
import tarfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import anyio
import numpy as np
import pytest
import zarr
from aiohttp import web
from browser import find_chromium, launch
from images import Spec, level_shapes, write_image
from PIL import Image

from ngio_async import create_plate_async
from ngio_async.web import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from types import ModuleType

    from browser import Page

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "ngio_async" / "web" / "static" / "vendor" / "openseadragon"
SCREENSHOTS = ROOT / "build" / "screenshots"
SPEC = Spec(
    shape=(2, 3, 768, 1024), chunks=(1, 1, 256, 256), levels=3, channels=("DAPI", "GFP"), seed=7
)
COLORS = ("00A0FF", "40FF40")
MISSING = "viewer assets not installed: run make viewer"


def _blobs(shape: tuple[int, int], factor: int, rng: np.random.Generator, n: int, r: float) -> Any:
    """``n`` soft round blobs of radius about ``r`` (level-0 pixels), rendered ``factor``x smaller."""
    h, w = shape
    out = np.zeros(shape, dtype=np.float32)
    for cy, cx, rad, amp in zip(
        rng.uniform(0, h * factor, n),
        rng.uniform(0, w * factor, n),
        rng.uniform(0.6 * r, 1.4 * r, n),
        rng.uniform(0.5, 1.0, n),
        strict=True,
    ):
        y0, y1 = max(0, int((cy - 3 * rad) / factor)), min(h, int((cy + 3 * rad) / factor) + 1)
        x0, x1 = max(0, int((cx - 3 * rad) / factor)), min(w, int((cx + 3 * rad) / factor) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d2 = ((yy + 0.5) * factor - cy) ** 2 + ((xx + 0.5) * factor - cx) ** 2
        out[y0:y1, x0:x1] += amp * np.exp(-d2 / (2 * (rad / 2) ** 2))
    return out


def write_cells(root: Path) -> None:
    """The test image with cell-like content: nuclei (DAPI) and larger cytoplasm blobs (GFP)."""
    write_image(root, SPEC)
    for level, shape in enumerate(level_shapes(SPEC)):
        arr = zarr.open_array(root / str(level), mode="r+")
        data = np.zeros(shape, dtype=np.uint16)
        h, w = shape[2:]
        for z in range(shape[1]):
            z0 = min(z * 2**level, SPEC.shape[1] - 1)  # its level-0 plane: the pyramid halves z
            for c, (n, r) in enumerate(((70, 22.0), (40, 60.0))):
                rng = np.random.default_rng(100 * c + z0)  # the same blobs on every level
                plane = _blobs((h, w), 2**level, rng, n, r)
                data[c, z] = np.clip(plane * 900 + 40, 0, 1000).astype(np.uint16)
        arr[...] = data
    group = zarr.open_group(root, mode="r+")
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    ome = attrs.get("ome", attrs)
    for channel, color in zip(ome["omero"]["channels"], COLORS, strict=True):
        channel["color"] = color
        channel["window"].update(start=0, end=1000, min=0, max=1000)
    group.attrs.put(attrs)


@asynccontextmanager
async def running_server(datasets: dict[str, str], served: list[str]) -> AsyncIterator[str]:
    """The real app on 127.0.0.1 at a free port; ``served`` collects each tile request's path."""

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if "/tiles/" in request.path and response.status == 200:
            served.append(request.path_qs)
        return response

    app = create_app(datasets)
    app.middlewares.append(record)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def _require_browser() -> str:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium binary found (make browser installs Debian's chromium)")
    if not (VENDOR / "openseadragon.min.js").is_file():
        pytest.skip("OpenSeadragon is not installed (make viewer)")
    return chromium


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _plane(level: int, z0: int) -> int:
    """Level-0 plane ``z0`` on ``level``: the test pyramid halves z as well."""
    n0, n = SPEC.shape[1], level_shapes(SPEC)[level][1]
    return min(n - 1, z0 * n // n0)


def _on_plane(url: str, z0: int) -> bool:
    """Whether tile ``url`` is of level-0 plane ``z0`` and of no other starting plane (z0=1)."""
    level, _, z = _tile_coords(url)[:3]
    return z == _plane(level, z0) != _plane(level, 1)


def _tile_coords(url: str) -> tuple[int, ...]:
    """(level, t, z, row, col) of a tile path."""
    tail = urlsplit(url).path.split("/tiles/")[1].rsplit(".", 1)[0]
    return tuple(int(p) for p in tail.split("/"))


async def test_viewer_shows_tiles_toggles_channels_and_planes(tmp_path: Path) -> None:
    chromium = _require_browser()
    write_cells(tmp_path / "cells.ome.zarr")
    served: list[str] = []
    async with (
        running_server({"cells": str(tmp_path / "cells.ome.zarr")}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/")
        names = await page.wait_for(
            "[...document.querySelectorAll('#datasets a')].map(a => a.textContent)"
        )
        assert names == ["cells"]
        row = await page.evaluate("document.querySelector('#datasets tr').innerText")
        assert "0.5" in row and "uint16" in row and "768" in row

        await page.evaluate("document.querySelector('#datasets a').click()")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        assert served, "the server served no tile"
        state = await page.evaluate(
            "({c: ngioViewer.channels.map(c => c.label), z: ngioViewer.planes.z,"
            " error: ngioViewer.error, failed: ngioViewer.tilesFailed,"
            " slider: !!document.getElementById('plane-z'),"
            " tSlider: !!document.getElementById('plane-t')})"
        )
        assert state == {
            "c": ["DAPI", "GFP"],
            "z": 1,
            "error": None,
            "failed": 0,
            "slider": True,
            "tSlider": False,
        }
        first = _query(served[0])
        assert first["c"] == "0,1"
        assert first["color"] == ",".join(COLORS)
        assert first["window"] == "0:1000,0:1000"
        assert all(_tile_coords(u)[1:3] == (0, _plane(_tile_coords(u)[0], 1)) for u in served)
        # OpenSeadragon's levels map onto the real pyramid: only levels 0..2 and their tile grid.
        grid = {0: (2, 2), 1: (1, 1), 2: (1, 1)}  # rows, cols of 512-px tiles per level
        for url in served:
            level, _, _, row, col = _tile_coords(url)
            assert row < grid[level][0] and col < grid[level][1], url

        # Toggle GFP off: new tile URLs ask for channel 0 alone.
        await page.evaluate("document.querySelector('#channel-list [data-channel=\"1\"]').click()")
        await page.wait_for("ngioViewer.lastTileUrl.includes('c=0&')")
        await _wait_served(page, served, lambda u: _query(u)["c"] == "0")

        # Move the z slider: tiles of plane 2.
        await page.evaluate(
            "(() => { const s = document.getElementById('plane-z');"
            " s.value = 2; s.dispatchEvent(new Event('input')); })()"
        )
        await _wait_served(page, served, lambda u: _on_plane(u, 2))
        await page.wait_for(
            "ngioViewer.viewer.world.getItemCount() === 1"
            " && ngioViewer.viewer.world.getItemAt(0).getFullyLoaded()"
        )
        # Back to both channels for the picture.
        await page.evaluate("document.querySelector('#channel-list [data-channel=\"1\"]').click()")
        await _wait_served(page, served, lambda u: _query(u)["c"] == "0,1" and _on_plane(u, 2))
        await page.wait_for(
            "ngioViewer.viewer.world.getItemCount() === 1"
            " && ngioViewer.viewer.world.getItemAt(0).getFullyLoaded()"
        )
        readout = await page.evaluate("document.getElementById('readout').textContent")
        assert re.fullmatch(r"level [0-2] of 2 \(\d+ \u00d7 \d+\) · \d+%", readout), readout
        assert await page.evaluate("ngioViewer.failures") == []
        # The cursor readout names level-0 pixels: the pane's centre is the image's centre.
        box = await page.evaluate(
            "(() => { const r = document.getElementById('osd').getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        await page.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        cursor = await page.wait_for("document.getElementById('cursor').textContent")
        x, y = (int(v) for v in re.fullmatch(r"x (\d+) · y (\d+)", cursor).groups())  # type: ignore[union-attr]
        assert abs(x - 512) <= 4 and abs(y - 384) <= 4, cursor
        png = await page.screenshot(SCREENSHOTS / "viewer.png")

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1000, 700)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, "the screenshot is (nearly) one colour"
    viewer = np.asarray(image)[80:, 300:]  # the OpenSeadragon pane, right of the panel
    assert viewer[..., 2].max() > 150 and viewer[..., 1].max() > 150, "no blue/green cells drawn"


async def _wait_served(page: Page, served: list[str], match: Callable[[str], bool]) -> None:
    """Wait (up to 20 s) until the server has served a tile URL for which ``match`` holds."""
    for _ in range(400):
        if any(match(u) for u in served):
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"no matching tile among {len(served)} served: {served[-5:]}")


async def test_viewer_without_openseadragon_says_how_to_install(tmp_path: Path) -> None:
    chromium = _require_browser()
    write_image(tmp_path / "img.ome.zarr", Spec(shape=(64, 64), chunks=(32, 32), levels=1))
    served: list[str] = []
    async with (
        running_server({"img": str(tmp_path / "img.ome.zarr")}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.call("Network.enable")
        await page.call("Network.setBlockedURLs", urls=["*openseadragon.min.js"])
        await page.goto(f"{base}/#/img")
        text = await page.wait_for("document.querySelector('#osd .message')?.textContent")
        assert text == MISSING
        assert await page.evaluate("document.getElementById('notice').textContent") == MISSING
        assert served == []
        # The list still works without the viewer assets.
        await page.evaluate("location.hash = ''")
        assert await page.wait_for("document.querySelector('#datasets a')?.textContent") == "img"


# ------------------------------------------------------------------ scripts/install_viewer.py
def _installer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "install_viewer", ROOT / "scripts" / "install_viewer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            "package/build/openseadragon/openseadragon.min.js": b"window.OpenSeadragon=1",
            "package/build/openseadragon/openseadragon.min.js.map": b"{}",
            "package/build/openseadragon/images/home_rest.png": b"\x89PNG",
            "package/src/viewer.js": b"source",
            "package/LICENSE.txt": b"BSD",
        }
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_install_viewer_checks_integrity_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = _installer()
    tgz = _fake_tarball()
    calls: list[int] = []

    def fetch(tmp: Path) -> bytes:
        calls.append(1)
        return tgz

    monkeypatch.setattr(mod, "_fetch_npm", fetch)
    digest = base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    dest = tmp_path / "vendor" / "openseadragon"

    monkeypatch.setattr(mod, "INTEGRITY", "sha512-" + base64.b64encode(b"x" * 64).decode())
    with pytest.raises(SystemExit, match="integrity mismatch"):
        mod.install(dest)
    assert not dest.exists()

    monkeypatch.setattr(mod, "INTEGRITY", f"sha512-{digest}")
    assert mod.install(dest) is True
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["LICENSE.txt", "VERSION", "images/home_rest.png", "openseadragon.min.js"]
    assert (dest / "VERSION").read_text().strip() == mod.VERSION
    assert mod.install(dest) is False  # already there: nothing fetched
    assert len(calls) == 2
    (dest / "VERSION").write_text("0.0.1\n")  # another version: reinstalled
    assert mod.install(dest) is True
    assert len(calls) == 3


async def test_viewer_lists_plate_fields_and_moves_between_them(tmp_path: Path) -> None:
    chromium = _require_browser()
    write_image(tmp_path / "img.ome.zarr", Spec(shape=(64, 64), chunks=(32, 32), levels=1))
    url = str(tmp_path / "plate.ome.zarr")
    async with create_plate_async(url, rows=["A", "B"], columns=["1", "2", "3"]) as plate:
        for well, field in (("A/1", "0"), ("A/1", "1"), ("B/3", "0")):
            async with await plate.add_image(
                well, field=field, shape=(2, 96, 80), dtype="uint16", axes="cyx", levels=1
            ) as ds:
                await ds.write(np.full((2, 96, 80), 1000, "uint16"))
    served: list[str] = []
    async with (
        running_server({"img": str(tmp_path / "img.ome.zarr"), "hcs": url}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/")
        grid = await page.wait_for(
            "[...document.querySelectorAll('.plate-grid td')].map(td =>"
            " [...td.querySelectorAll('a')].map(a => a.textContent).join(',')).join('|')"
        )
        assert grid == "0,1|||||0"  # A/1 has fields 0 and 1, B/3 field 0
        images = "[...document.querySelectorAll('#datasets a')].map(a => a.textContent)"
        assert await page.evaluate(images) == ["img"]  # fields are in the grid only
        assert await page.evaluate("document.getElementById('status').textContent") == (
            "1 dataset, 1 plate"
        )
        await page.evaluate("document.querySelectorAll('.plate-grid td a')[1].click()")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        assert await page.evaluate("ngioViewer.dataset.name") == "hcs/A/1/1"
        assert "/api/datasets/hcs/A/1/1/tiles/" in served[-1]
        options = await page.wait_for(
            "!document.getElementById('field-pick').hidden &&"
            " [...document.querySelectorAll('#field-select option')].map(o => o.textContent)"
        )
        assert options == ["A/1 · field 0", "A/1 · field 1", "B/3 · field 0"]
        await page.evaluate(
            "(() => { const s = document.getElementById('field-select');"
            " s.value = 'hcs/B/3/0'; s.dispatchEvent(new Event('change')); })()"
        )
        await page.wait_for(
            "ngioViewer.dataset?.name === 'hcs/B/3/0' && ngioViewer.tilesLoaded > 0"
        )
        assert await page.evaluate("ngioViewer.failures") == []
        assert await page.evaluate("ngioViewer.error") is None


async def test_viewer_starts_from_the_servers_display_defaults(tmp_path: Path) -> None:
    """The first tiles show what a plain tile URL shows: the first three channels in the server's
    palette (the viewer showed all four in its own); an empty omero window is not sent (every
    tile was a 400)."""
    chromium = _require_browser()
    write_image(tmp_path / "four.zarr", Spec(shape=(4, 1, 64, 64), chunks=(1, 1, 32, 32), levels=1))
    write_image(
        tmp_path / "flat.zarr",
        Spec(shape=(2, 1, 64, 64), chunks=(1, 1, 32, 32), levels=1, channels=("a", "b")),
    )
    group = zarr.open_group(tmp_path / "flat.zarr", mode="r+")
    attrs: dict[str, Any] = dict(group.attrs.asdict())
    attrs["ome"]["omero"]["channels"][0]["window"].update(start=100, end=100)
    group.attrs.put(attrs)
    served: list[str] = []
    datasets = {"four": str(tmp_path / "four.zarr"), "flat": str(tmp_path / "flat.zarr")}
    async with (
        running_server(datasets, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/#/four")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        first = _query(served[0])
        assert (first["c"], first["color"]) == ("0,1,2", "FF0000,00FF00,0000FF")
        await page.evaluate("location.hash = '#/flat'")
        await page.wait_for("ngioViewer.dataset?.name === 'flat' && ngioViewer.tilesLoaded > 0")
        assert await page.evaluate("[ngioViewer.tilesFailed, ngioViewer.error]") == [0, None]
        assert not _query(served[-1]).get("window", "").startswith("100:100")


async def test_viewer_keeps_a_window_set_on_one_channel(tmp_path: Path) -> None:
    """A window typed for one channel of an image without omero windows reaches the tiles, the
    other channels keep the server's default (the viewer dropped every window: no change)."""
    chromium = _require_browser()
    write_image(tmp_path / "img.zarr", Spec(shape=(2, 1, 64, 64), chunks=(1, 1, 32, 32), levels=1))
    served: list[str] = []
    async with (
        running_server({"img": str(tmp_path / "img.zarr")}, served) as base,
        launch(chromium, tmp_path / "profile") as page,
    ):
        await page.goto(f"{base}/#/img")
        await page.wait_for("window.ngioViewer.tilesLoaded > 0")
        assert "window" not in _query(served[0])
        async with aiohttp.ClientSession() as http, http.get(f"{base}/api/datasets/img") as r:
            auto = [c["display"]["window"] for c in (await r.json())["channels"]]
        await page.evaluate(
            "(() => { const box = document.querySelector("
            "'#channel-list [data-channel=\"0\"]').parentElement"
            ".querySelectorAll('input[type=number]')[1];"
            " box.value = '7'; box.dispatchEvent(new Event('change')); })()"
        )
        expected = [[auto[0][0], 7.0], auto[1]]

        def windows(url: str) -> list[list[float]] | None:
            text = _query(url).get("window")
            return [[float(v) for v in w.split(":")] for w in text.split(",")] if text else None

        await _wait_served(page, served, lambda u: windows(u) == expected)
