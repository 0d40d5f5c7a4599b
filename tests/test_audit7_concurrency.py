"""Many clients at once, clients that leave mid-tile, and shutdown with requests in flight:
the tile server's memory and upstream requests stay bounded, reads stop with their client,
and nothing is left pending. Real stores (local files, a loopback HTTP server, moto S3)
counted by ``InstrumentedStore``; the app on a loopback AppRunner or ``serve``."""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import numpy as np
import pytest
from aiohttp import web
from images import Spec, write_image

from ngio_async import open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


@contextlib.asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """``app`` on 127.0.0.1 (a free port) and a client session for it (no connection limit)."""
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as http:
            yield http
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A 2-channel 256 x 256 uint16 image of 32 x 32 chunks, and its pixels."""
    path = tmp_path_factory.mktemp("a7many") / "img.zarr"
    spec = Spec(shape=(2, 256, 256), chunks=(1, 32, 32), levels=1, channels=("a", "b"))
    return path, write_image(path, spec)[0]


async def test_concurrent_regions_share_the_pixel_budget(image: tuple[Path, Any]) -> None:
    """Every request held its pixels at once (8 clients asking for a 64 Mi-element region
    each: 8 x 128 MiB of uint16 plus their .npy copies); the requests in flight now hold at
    most ``max_region_pixels`` together (the others wait their turn), so here one region's
    chunks at a time are read."""
    path, data = image
    store = InstrumentedStore(open_store(path), latency=0.02)
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds}, max_region_pixels=2 * 32 * 256)  # one band of 32 rows
        async with running(app) as http:
            store.reset()
            got: dict[int, Any] = {}

            async def one(band: int) -> None:
                rows = f"{band * 32}:{band * 32 + 32}"
                resp = await http.get(f"/api/datasets/img/region.npy?y={rows}")
                assert resp.status == 200, await resp.text()
                got[band] = np.load(io.BytesIO(await resp.read()))

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for band in range(8):
                        tg.start_soon(one, band)
    for band in range(8):
        assert np.array_equal(got[band], data[:, band * 32 : band * 32 + 32])
    assert store.method_counts["get"] == 128  # each chunk once
    assert store.peak_in_flight <= 16  # one band's 16 chunks (was 64: the store's limit)


async def test_concurrent_tiles_share_the_pixel_budget(image: tuple[Path, Any]) -> None:
    """Tiles hold their planes in the same budget: 16 clients asking for 16 different tiles
    at once read two tiles' chunks at a time when the budget holds two tiles."""
    path, _ = image
    store = InstrumentedStore(open_store(path), latency=0.02)
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds}, tile_size=32, max_region_pixels=2 * (2 * 32 * 32))
        async with running(app) as http:
            await (await http.get("/api/datasets/img")).read()  # default windows computed
            store.reset()
            statuses: list[int] = []

            async def one(i: int) -> None:
                resp = await http.get(f"/api/datasets/img/tiles/0/0/0/{i // 4}/{i % 4}.png")
                await resp.read()
                statuses.append(resp.status)

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    for i in range(16):
                        tg.start_soon(one, i)
    assert statuses == [200] * 16
    assert store.method_counts["get"] == 32  # 2 channels x 16 tiles of one chunk
    assert store.peak_in_flight <= 8  # two tiles' 2 gets and 2 version lookups
