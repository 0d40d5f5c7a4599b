"""Many clients at once, clients that leave mid-tile, and shutdown with requests in flight:
the tile server's memory and upstream requests stay bounded, reads stop with their client,
and nothing is left pending. Real stores (local files, a loopback HTTP server, moto S3)
counted by ``InstrumentedStore``; the app on a loopback AppRunner or ``serve``."""

from __future__ import annotations

import gc
import io
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
import numpy as np
import pytest
from images import Spec, upload, write_image
from servers import StaticServer
from webapp import running

from ngio_async import open_async
from ngio_async.images import Dataset
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app, serve
from ngio_async.web._app import STATE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers import S3Server


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
        async with running(app) as (http, _):
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
        async with running(app) as (http, _):
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


async def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls a counter, no event to wait on
            await anyio.sleep(0.01)


@pytest.mark.parametrize(("where", "route"), [("http", "tile"), ("s3", "region")])
async def test_a_client_leaving_mid_answer_cancels_its_reads(
    image: tuple[Path, Any], s3_server: S3Server, where: str, route: str
) -> None:
    """A client that hangs up while its tile (HTTP source, the server holding its answers)
    or region (moto S3, slow requests) is read: the reads in flight end at once and no
    other starts; the server goes on serving."""
    path, data = image
    server = StaticServer(path.parent).start()
    try:
        if where == "http":
            store = InstrumentedStore(open_store(server.url + path.name))
        else:
            store = InstrumentedStore(open_store(s3_server.fresh_url(), **s3_server.options()))
            await upload(path, store)
        async with store, await open_async(store) as ds:
            app = create_app({"img": ds}, tile_size=256)
            async with running(app) as (http, port):
                await (await http.get("/api/datasets/img")).read()  # default windows
                target = {
                    "tile": "/api/datasets/img/tiles/0/0/0/0/0.png",
                    "region": "/api/datasets/img/region.npy?c=1",
                }[route]
                if where == "http":
                    server.faults.delay = 30.0
                else:
                    store.latency = 30.0
                store.reset()
                async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                    await stream.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    await _wait_until(lambda: store.in_flight > 0)
                await _wait_until(lambda: store.in_flight == 0)
                started = store.total_requests
                await anyio.sleep(0.2)
                assert store.total_requests == started  # nothing started after the hang-up
                server.faults.delay, store.latency = 0.0, 0.0
                resp = await http.get("/api/datasets/img/region.npy?c=0&y=0:8")
                assert resp.status == 200
                got = np.load(io.BytesIO(await resp.read()))
                assert np.array_equal(got, data[0, :8])
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_shutdown_with_requests_in_flight_ends_them_all(
    image: tuple[Path, Any], caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    """``serve`` cancelled while tiles and regions wait on slow reads: it returns within its
    shutdown timeout, every read in flight has ended by then (the caller may close its
    datasets at once), the app's own stores are closed, and nothing is logged as left
    pending (asyncio's "Task was destroyed", unclosed sessions)."""
    path, _ = image
    server = StaticServer(path.parent).start()
    caplog.set_level(logging.WARNING)
    store = InstrumentedStore(open_store(path))
    try:
        async with store, await open_async(store) as ds:
            options: dict[str, Any] = {"backend": backend} if backend != "default" else {}
            app = create_app({"img": ds, "remote": server.url + path.name}, tile_size=64, **options)
            urls: list[str] = []
            answers: list[object] = []

            async def client(http: aiohttp.ClientSession, target: str) -> None:
                try:
                    resp = await http.get(target)
                    answers.append(resp.status)
                except aiohttp.ClientError as exc:
                    answers.append(type(exc).__name__)

            stopped = anyio.Event()
            in_flight_when_stopped: list[int] = []
            serving = anyio.CancelScope()

            async def run_server() -> None:
                with serving:
                    await serve(app, port=0, on_ready=urls.append, shutdown_timeout=1)
                in_flight_when_stopped.append(store.in_flight)
                stopped.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(run_server)
                await _wait_until(lambda: bool(urls))
                async with aiohttp.ClientSession(urls[0]) as http:
                    await (await http.get("api/datasets/img")).read()
                    await (await http.get("api/datasets/remote")).read()
                    store.latency, server.faults.delay = 30.0, 30.0
                    for i in range(4):  # clients that stay connected while the server stops
                        tg.start_soon(client, http, f"api/datasets/img/tiles/0/0/0/0/{i}.png")
                        tg.start_soon(client, http, f"api/datasets/remote/region.npy?y={i}")
                    await _wait_until(lambda: store.in_flight > 0 and server.in_flight > 0)
                    serving.cancel()
                    with anyio.fail_after(10):
                        await stopped.wait()
            assert in_flight_when_stopped == [0]  # ended before serve returned
            assert len(answers) == 8
            remote = app[STATE].entries  # emptied by the app's cleanup
            assert remote == {}
    finally:
        server.stop()
    gc.collect()
    left = [r.getMessage() for r in caplog.records if r.name.startswith(("asyncio", "aiohttp"))]
    assert not left, left


async def test_default_windows_of_many_images_share_the_pixel_budget(tmp_path: Path) -> None:
    """The first request for each image samples its smallest level for default windows (up
    to 16 Mi elements each, a float64 one ~0.5 GiB with its copies): many images' first
    requests at once held them all; they now take their turn in the pixel budget."""
    spec = Spec(shape=(2, 256, 256), chunks=(1, 64, 64), levels=1)  # no omero windows
    names = ["a", "b", "c", "d"]
    for i, name in enumerate(names):
        spec.seed = i
        write_image(tmp_path / f"{name}.zarr", spec)
    store = InstrumentedStore(open_store(tmp_path), latency=0.02)
    async with store:
        opened = {name: await Dataset.open_in(store, f"{name}.zarr") for name in names}
        try:
            app = create_app(opened, max_region_pixels=2 * 256 * 256)  # one image's sample
            async with running(app) as (http, _):
                for entry in app[STATE].entries.values():
                    await entry.label_names()  # read now: the describes below read pixels only
                store.reset()

                async def describe(name: str) -> None:
                    resp = await http.get(f"/api/datasets/{name}")
                    assert resp.status == 200, await resp.text()

                with anyio.fail_after(60):
                    async with anyio.create_task_group() as tg:
                        for name in names:
                            tg.start_soon(describe, name)
        finally:
            for ds in opened.values():
                await ds.aclose()
    chunks = [key for (method, key), n in store.calls.items() if method == "get" and "/c/" in key]
    assert len(chunks) == 4 * 32  # each image's 32 chunks, once
    assert store.peak_in_flight <= 32  # one image's sample at a time (was 64: the limit)
