"""The tile server used the way users and peer tools use it: odd dtypes, HTTP details, errors.

Real files written with zarr-python in ``tmp_path``; the app under aiohttp's ``TestServer``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from images import Spec, write_image
from PIL import Image
from test_web import raw_get

from ngio_async import open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from numpy.typing import NDArray


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``nan``: float32 with NaN and +-inf pixels; ``cplx``: complex64."""
    root = tmp_path_factory.mktemp("odd")
    paths = {"nan": root / "nan.zarr", "cplx": root / "cplx.zarr"}
    write_image(paths["nan"], Spec(shape=(16, 16), chunks=(16, 16), dtype="float32", levels=1))
    arr = zarr.open_array(paths["nan"] / "0", mode="r+")
    data = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    data[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    arr[...] = data
    write_image(paths["cplx"], Spec(shape=(16, 16), chunks=(16, 16), dtype="complex64", levels=1))
    arr = zarr.open_array(paths["cplx"] / "0", mode="r+")
    arr[...] = np.full((16, 16), 3 + 4j, dtype=np.complex64)
    return paths


@pytest.fixture
async def client(odd: dict[str, Path]) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app({name: str(path) for name, path in odd.items()})
    async with TestClient(TestServer(app)) as c:
        yield c


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds (``TimeoutError`` after ``seconds``)."""
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls a counter, no event to wait on
            await anyio.sleep(0.01)


def decode(body: bytes) -> NDArray[Any]:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


async def test_nan_and_infinite_pixels_render(client: TestClient[Any, Any]) -> None:
    """NaN is black, +inf full, -inf black (NaN was cast to uint8: undefined, a RuntimeWarning)."""
    resp = await client.get("/api/datasets/nan/tiles/0/0/0/0/0.png?window=0:1&color=FFFFFF")
    assert resp.status == 200, await resp.text()
    rgb = decode(await resp.read())
    assert rgb[0, :4, 0].tolist() == [0, 255, 0, 0]
    assert rgb[15, 15, 0] == 255 and rgb[1, 0, 0] == round(16 / 255 * 255)
    # the default window ignores them: describe and a tile without overrides work
    doc = await (await client.get("/api/datasets/nan")).json()
    lo, hi = doc["channels"][0]["display"]["window"]
    assert 0 <= lo < hi <= 1
    assert (await client.get("/api/datasets/nan/tiles/0/0/0/0/0.png")).status == 200


async def test_complex_pixels_render_by_modulus(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/datasets/cplx")).json()
    assert doc["dtype"] == "complex64"
    resp = await client.get("/api/datasets/cplx/tiles/0/0/0/0/0.png?window=0:10&color=FFFFFF")
    assert resp.status == 200, await resp.text()
    assert decode(await resp.read())[0, 0].tolist() == [128, 128, 128]  # |3+4j| / 10
    assert (await client.get("/api/datasets/cplx/tiles/0/0/0/0/0.png")).status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_405_names_the_allowed_methods(client: TestClient[Any, Any], method: str) -> None:
    """RFC 9110: a 405 MUST carry ``Allow`` (the zarr passthrough sent none)."""
    for path in ("/zarr/nan/zarr.json", "/api/datasets/nan"):
        resp = await client.request(method, path)
        assert resp.status == 405, path
        assert {m.strip() for m in resp.headers["Allow"].split(",")} == {"GET", "HEAD"}, path
        assert (await resp.json())["error"] == "method_not_allowed"


async def test_disconnect_cancels_reads_under_a_plain_runner(tmp_path: Path) -> None:
    """``web.AppRunner(create_app(...))`` (the README's way) cancels too: aiohttp's
    ``handler_cancellation`` is off by default, and the reads of a gone client ran on."""
    write_image(tmp_path / "img.zarr", Spec(shape=(64, 64), chunks=(32, 32), levels=1))
    store = InstrumentedStore(open_store(tmp_path / "img.zarr"))
    async with store, await open_async(store) as ds:
        runner = web.AppRunner(create_app({"img": ds}))
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            store.latency = 60.0  # far longer than the test: only cancellation ends the read
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                target = "/api/datasets/img/region.npy"
                await stream.send(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                await wait_until(lambda: store.in_flight > 0)
            await wait_until(lambda: store.in_flight == 0)
        finally:
            store.latency = 0.0
            await runner.cleanup()


async def test_region_takes_channel_labels_and_broken_labels_do_not_hide_the_image(
    tmp_path: Path,
) -> None:
    """``region.npy?c=GFP`` like tiles' ``c=GFP`` (it was a 400); an image whose ``labels``
    group is corrupt is still described (a 500 made it unviewable)."""
    path = tmp_path / "img.zarr"
    levels = write_image(
        path, Spec(shape=(2, 8, 8), chunks=(1, 8, 8), levels=1, channels=("DAPI", "GFP"))
    )
    (path / "labels").mkdir()
    (path / "labels" / "zarr.json").write_text("{broken")
    async with TestClient(TestServer(create_app({"img": str(path)}))) as c:
        resp = await c.get("/api/datasets/img/region.npy?c=GFP&y=1:3")
        assert resp.status == 200, await resp.text()
        assert np.array_equal(np.load(io.BytesIO(await resp.read())), levels[0][1, 1:3])
        resp = await c.get("/api/datasets/img/region.npy?c=RFP")
        assert resp.status == 400
        assert "no channel 'RFP'" in (await resp.json())["message"]
        resp = await c.get("/api/datasets/img/region.npy?y=GFP")
        assert "expected an integer or a:b" in (await resp.json())["message"]
        resp = await c.get("/api/datasets/img")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["labels"] == []


async def test_mounted_under_a_prefix(tmp_path: Path) -> None:
    """``main.add_subapp("/ngio/", create_app(...))``: the zarr passthrough and the static files
    took the prefix for part of the key (404), and /api and /zarr answers had no CORS."""
    levels = write_image(tmp_path / "img.zarr", Spec(shape=(8, 8), chunks=(8, 8), levels=1))
    main = web.Application()
    main.add_subapp("/ngio/", create_app({"img": str(tmp_path / "img.zarr")}))
    async with TestClient(TestServer(main)) as c:
        resp = await c.get("/ngio/zarr/img/zarr.json")
        assert resp.status == 200, await resp.text()
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "multiscales" in (await resp.json())["attributes"]["ome"]
        resp = await c.get("/ngio/static/viewer.js")
        assert resp.status == 200 and "ngioViewer" in await resp.text()
        assert "static/viewer.js" in await (await c.get("/ngio/")).text()
        preflight = {"Origin": "http://viewer", "Access-Control-Request-Method": "GET"}
        resp = await c.options("/ngio/zarr/img/0/c/0/0", headers=preflight)
        assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "*"
        resp = await c.get("/ngio/api/datasets/img/region.npy")
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert np.array_equal(np.load(io.BytesIO(await resp.read())), levels[0])
        assert c.port is not None
        status, _ = await raw_get(c.port, "/ngio/zarr/img/%2E%2E/img/zarr.json")
        assert status == 400
        assert "Access-Control-Allow-Origin" not in (await c.get("/ngio/")).headers


async def test_default_windows_sample_stays_bounded_with_many_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default-window sample is at most ``_WINDOW_SAMPLE`` elements however many channels
    there are (every channel's whole crop was read: 100 channels x 2048^2 = 800 MB)."""
    from ngio_async.web import _state

    monkeypatch.setattr(_state, "_WINDOW_SAMPLE", 4 * 16 * 16)
    path = tmp_path / "many.zarr"
    levels = write_image(path, Spec(shape=(4, 2, 48, 48), chunks=(1, 1, 16, 16), levels=1))
    store = InstrumentedStore(open_store(path))
    async with (
        store,
        await open_async(store) as ds,
        TestClient(TestServer(create_app({"img": ds}))) as c,
    ):
        store.reset()
        doc = await (await c.get("/api/datasets/img")).json()
    chunks = sum(n for (method, key), n in store.calls.items() if method == "get" and "/c/" in key)
    assert chunks == 4  # one chunk per channel: the 16 x 16 centre of the middle z plane
    crop = levels[0][0, 1, 16:32, 16:32].astype(np.float64)
    assert doc["channels"][0]["display"]["window"] == list(np.percentile(crop, (0.1, 99.9)))


async def test_corrupt_smallest_level_still_describes_and_serves_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A corrupt chunk where the default windows are sampled: the dtype's range is used (it
    was a 502 for describe and every default tile, so nothing of the image could be seen)."""
    path = tmp_path / "img.zarr"
    write_image(path, Spec(shape=(64, 64), chunks=(32, 32), levels=2))
    (path / "1" / "c" / "0" / "0").write_bytes(b"not zstd at all")
    async with TestClient(TestServer(create_app({"img": str(path)}))) as c:
        resp = await c.get("/api/datasets/img")
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["channels"][0]["display"]["window"] == [0, 65535]
        assert (await c.get("/api/datasets/img/tiles/0/0/0/0/0.png")).status == 200
        resp = await c.get("/api/datasets/img/tiles/1/0/0/0/0.png")
        assert resp.status == 502  # the corrupt chunk itself
        assert (await resp.json())["error"] == "store_error"
    assert "default windows from the dtype's range" in caplog.text
    assert str(tmp_path) not in caplog.text


def test_redact_takes_store_urls_whole() -> None:
    """A store URL with spaces (a local directory 'My Scans') is replaced whole: the URL
    pattern alone stops at the first space and left the path's tail in the log."""
    from ngio_async.web._errors import redact

    text = "no group at file:///data/My Scans/run 2/img.zarr/0 (missing)"
    assert redact(text, "file:///data/My Scans/run 2/img.zarr") == "no group at <url>/0 (missing)"
    assert "run 2" in redact(text)  # what the pattern alone leaves
