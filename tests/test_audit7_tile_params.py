"""Tile and region parameters a demanding client sends: extreme windows, a channel listed
thousands of times, a parameter given twice. Real files, the app on a loopback AppRunner."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from images import Spec, write_image
from webapp import png_rgb, running

from ngio_async import open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``two``: a 2-channel uint16 image."""
    root = tmp_path_factory.mktemp("a7params")
    paths = {"two": root / "two.zarr"}
    spec = Spec(shape=(2, 64, 64), chunks=(1, 32, 32), levels=1, channels=("a", "b"))
    write_image(paths["two"], spec)
    return paths


async def tile(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    resp = await http.get(path)
    body = await resp.read()
    assert resp.status == status, body
    return png_rgb(body) if status == 200 else await resp.json()


async def test_a_channel_listed_thousands_of_times_is_refused(images: dict[str, Path]) -> None:
    """``c=0,0,0,...`` (as many as a URL holds) read and composited the channel once per
    mention: ~2 GB and a minute of CPU for one request of a 512 x 512 tile."""
    store = InstrumentedStore(open_store(images["two"]))
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds}, max_region_pixels=64 * 64 * 4, tile_size=64)
        async with running(app) as (http, _):
            base = "/api/datasets/img/tiles/0/0/0/0/0.png"
            doc = await tile(http, f"{base}?c={','.join(['0'] * 2000)}", 413)
            assert doc["error"] == "too_many_channels" and "'c'" in doc["message"], doc
            # repeats within the budget still work, each channel read once
            store.reset()
            rgb = await tile(http, f"{base}?c=0,0,1,1&color=FF0000,00FF00,0000FF,FFFFFF")
            assert rgb.shape == (64, 64, 3)
            gets = [key for (method, key), _ in store.calls.items() if method == "get"]
            assert len(gets) == len(set(gets)) == 8  # 2 channels x 4 chunks, each once
            # every channel of the image once is always allowed, whatever the budget
            small = create_app({"img": ds}, max_region_pixels=64 * 64, tile_size=64)
            async with running(small) as (http2, _):
                rgb = await tile(http2, f"{base}?c=0,1")
                assert rgb.shape == (64, 64, 3)
                doc = await tile(http2, f"{base}?c=0,1,1", 413)
                assert "'c'" in doc["message"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("tiles/0/0/0/0/0.png?c=0&c=1", "c"),
        ("tiles/0/0/0/0/0.png?c=0,1&window=0:1,0:1&window=0:2,0:2", "window"),
        ("region.npy?c=0&c=1", "c"),
        ("region.npy?level=0&level=0", "level"),
    ],
)
async def test_a_parameter_given_twice_is_a_400_naming_it(
    images: dict[str, Path], path: str, param: str
) -> None:
    """``?c=0&c=1`` answered channel 0 alone (the second silently dropped)."""
    app = create_app({"img": str(images["two"])})
    async with running(app) as (http, _):
        resp = await http.get(f"/api/datasets/img/{path}")
        doc = await resp.json()
        assert resp.status == 400, doc
        assert doc["error"] == "bad_parameter" and f"'{param}'" in doc["message"], doc
        assert "more than once" in doc["message"]


async def test_head_of_a_region_reads_nothing(images: dict[str, Path]) -> None:
    """HEAD of a region read and encoded it all (a 64 Mi-element region for its length);
    its headers now come from the selection, the same as the GET's."""
    store = InstrumentedStore(open_store(images["two"]))
    async with store, await open_async(store) as ds, running(create_app({"img": ds})) as (http, _):
        for query in ("", "?c=1&y=3:40", "?c=0&y=5&x=7"):
            store.reset()
            head = await http.head(f"/api/datasets/img/region.npy{query}")
            assert head.status == 200
            assert store.method_counts["get"] == 0, query
            get = await http.get(f"/api/datasets/img/region.npy{query}")
            body = await get.read()
            for name in ("Content-Length", "X-Shape", "X-Dtype", "Content-Type"):
                assert head.headers[name] == get.headers[name], (query, name)
            assert int(head.headers["Content-Length"]) == len(body)


async def test_a_plane_out_of_range_names_the_axis_and_its_size(tmp_path: Path) -> None:
    """``z=5`` of 3 planes said only "z=5 is out of range"; a tile past the edge did not say
    how many tiles there are."""
    path = tmp_path / "czyx.zarr"
    write_image(path, Spec(shape=(2, 3, 32, 32), chunks=(1, 1, 32, 32), levels=1))
    async with running(create_app({"img": str(path)})) as (http, _):
        doc = await tile(http, "/api/datasets/img/tiles/0/0/5/0/0.png", 404)
        assert doc["error"] == "out_of_range"
        assert "z=5" in doc["message"] and "'z'" in doc["message"] and "0..2" in doc["message"]
        doc = await tile(http, "/api/datasets/img/tiles/0/0/0/0/3.png", 404)
        assert "col=3" in doc["message"] and "col 0..0" in doc["message"], doc
