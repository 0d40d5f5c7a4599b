"""The tile server serves every image of a bioformats2raw container as ``<name>/<path>``
(``name`` alone stays its first image); ``convert`` makes such containers of multi-position
TIFFs, so serving one showed only the first position before."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_validate_bf2raw import container

import ngio_async
from ngio_async.web import create_app
from ngio_async.web._app import STATE

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_every_image_of_a_container_is_served(tmp_path: Path, version: str) -> None:
    path = container(tmp_path, version, ("0", "1", "2"), ome={"series": ["0", "1", "2"]})
    for i in range(3):
        with ngio_async.open(str(path / str(i)), mode="r+") as ds:
            ds.write(np.full((8, 8), 10 + i, dtype="uint8"))
    app = create_app({"c": str(path)})
    async with TestClient(TestServer(app)) as client:
        listing = await (await client.get("/api/datasets")).json()
        # the images are listed ('c' alone, their first, is not listed twice)
        assert [d["name"] for d in listing["datasets"]] == ["c/0", "c/1", "c/2"]
        for name, value in [("c", 10), ("c/0", 10), ("c/1", 11), ("c/2", 12)]:
            assert (await client.get(f"/api/datasets/{name}")).status == 200
            resp = await client.get(f"/api/datasets/{name}/region.npy?y=0:2&x=0:2")
            assert resp.status == 200
            assert (np.load(io.BytesIO(await resp.read())) == value).all()
            tile = await client.get(f"/api/datasets/{name}/tiles/0/0/0/0/0.png")
            assert tile.status == 200 and tile.content_type == "image/png"
        assert (await client.get("/api/datasets/c/3")).status == 404
        # /zarr/c/ is the whole container (as /zarr/<plate>/ is the plate)
        group = "zarr.json" if version == "0.5" else ".zattrs"
        top = await client.get(f"/zarr/c/{group}")
        assert top.status == 200 and "bioformats2raw.layout" in await top.text()
        assert (await client.get(f"/zarr/c/2/{group}")).status == 200


async def test_a_plain_image_is_not_taken_for_a_container(tmp_path: Path) -> None:
    with ngio_async.create(str(tmp_path / "img.zarr"), shape=(8, 8), dtype="uint8", axes="yx"):
        pass
    app = create_app({"img": str(tmp_path / "img.zarr")})
    async with TestClient(TestServer(app)) as client:
        listing = await (await client.get("/api/datasets")).json()
        assert [d["name"] for d in listing["datasets"]] == ["img"]


# ------------------------------------------------------------------ lazy opening (task: a
# 96-position container on S3 took seconds to start: every image was opened at start-up)
DOCS = frozenset({"zarr.json", ".zattrs", ".zgroup", ".zarray"})


def _docs(server: StaticServer, prefix: str) -> int:
    """Metadata documents GET under ``/c.zarr/<prefix>`` (``""``: anywhere in the container)."""
    return sum(
        1
        for r in list(server.requests)
        if r.method == "GET"
        and r.path.startswith(f"/c.zarr/{prefix}")
        and r.path.rpartition("/")[2] in DOCS
    )


def _served(http_root: Path, version: str, n: int = 4, series: bool = True) -> None:
    names = tuple(str(i) for i in range(n))
    path = container(http_root, version, names, ome={"series": list(names)} if series else {})
    for i in range(n):
        with ngio_async.open(str(path / str(i)), mode="r+") as ds:
            ds.write(np.full((8, 8), 10 + i, dtype="uint8"))
    path.rename(http_root / "c.zarr")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_start_up_reads_the_series_list_only(
    http_root: Path, http_server: StaticServer, version: str
) -> None:
    _served(http_root, version, n=6)
    app = create_app({"c": f"{http_server.url}c.zarr"})
    async with TestClient(TestServer(app)) as client:
        images = [_docs(http_server, f"{i}/") for i in range(6)]
        assert images == [0] * 6  # no image is opened at start-up
        assert _docs(http_server, "") <= 4  # the layout group and OME (0.4: zarr.json misses)
        http_server.reset()
        listing = await (await client.get("/api/datasets")).json()
        assert [d["name"] for d in listing["datasets"]] == [f"c/{i}" for i in range(6)]
        assert listing["datasets"][2] == {"name": "c/2", "container": {"name": "c", "path": "2"}}
        assert listing["containers"] == [
            {
                "name": "c",
                "ngff_version": version,
                "images": [f"c/{i}" for i in range(6)],
                "unavailable": [],
            }
        ]
        assert not http_server.requests  # listing opens nothing
        resp = await client.get("/api/datasets/c/4/tiles/0/0/0/0/0.png?window=0:255")
        assert resp.status == 200
        touched = {r.path.split("/")[2] for r in http_server.requests}
        assert touched == {"4"}, touched  # exactly that image is opened
        assert list(app[STATE].open_fields) == ["c/4"]


@pytest.mark.parametrize("series", [True, False])
async def test_concurrent_first_requests_open_an_image_once(
    http_root: Path, http_server: StaticServer, series: bool
) -> None:
    _served(http_root, "0.5", n=3, series=series)
    app = create_app({"c": f"{http_server.url}c.zarr"})
    async with TestClient(TestServer(app)) as client:
        http_server.reset()
        http_server.faults.delay = 0.02  # the openings overlap

        async def region(name: str) -> None:
            resp = await client.get(f"/api/datasets/{name}/region.npy?y=0:1&x=0:1")
            assert resp.status == 200
            assert np.load(io.BytesIO(await resp.read()))[0, 0] == 11

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(region, "c/1")
        group_doc = "/c.zarr/1/zarr.json"
        assert http_server.count("GET", group_doc) == 1
        assert _docs(http_server, "0/") == _docs(http_server, "2/") == 0


async def test_eviction_closes_container_images(http_root: Path, http_server: StaticServer) -> None:
    _served(http_root, "0.5", n=3)
    app = create_app({"c": f"{http_server.url}c.zarr"}, max_open_fields=1)
    async with TestClient(TestServer(app)) as client:
        state = app[STATE]
        assert (await client.get("/api/datasets/c/0")).status == 200
        first = state.open_fields["c/0"].entry
        assert first is not None
        # 'c' alone is the first image: the same opening, not a second one
        assert (await client.get("/api/datasets/c/region.npy?y=0:1&x=0:1")).status == 200
        assert state.open_fields["c/0"].entry is first
        assert (await client.get("/api/datasets/c/2/region.npy?y=0:1&x=0:1")).status == 200
        assert list(state.open_fields) == ["c/2"] and first.dataset.closed
        http_server.reset()
        resp = await client.get("/api/datasets/c/region.npy?y=0:1&x=0:1")  # opened again
        assert resp.status == 200 and np.load(io.BytesIO(await resp.read()))[0, 0] == 10
        assert http_server.count("GET", "/c.zarr/0/zarr.json") == 1


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_series_naming_a_missing_image(tmp_path: Path, version: str) -> None:
    """OME/series lists an image that is not there: the others are served, it answers 502
    (the server refused to start before)."""
    path = container(tmp_path, version, ("0", "2"), ome={"series": ["0", "1", "2"]})
    app = create_app({"c": str(path)})
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/datasets/c/2/tiles/0/0/0/0/0.png")).status == 200
        resp = await client.get("/api/datasets/c/1")
        assert resp.status == 502
        body = await resp.json()
        assert body["error"] == "image_unavailable" and "'1'" in body["message"]
        assert str(tmp_path) not in body["message"]
        listing = await (await client.get("/api/datasets")).json()
        assert listing["containers"][0]["unavailable"] == ["1"]
        zarr_doc = "zarr.json" if version == "0.5" else ".zattrs"
        # the passthrough of an image, its name's slash encoded, opens nothing
        assert (await client.get(f"/zarr/c%2F2/{zarr_doc}")).status == 200
        assert (await client.get(f"/zarr/c%2F1/{zarr_doc}")).status == 404
        assert (await client.get("/api/datasets/c/9")).status == 404


async def test_an_unavailable_image_names_no_local_path(tmp_path: Path) -> None:
    """The reason a container image cannot be opened names no part of the store's URL, even
    where its directory names have spaces (the redaction ended the URL at the first one)."""
    where = tmp_path / "My Scans" / "run 2"
    where.mkdir(parents=True)
    path = container(where, "0.5", ("0",), ome={"series": ["0", "1"]})
    async with TestClient(TestServer(create_app({"c": str(path)}))) as client:
        listing = await (await client.get("/api/datasets")).json()
        assert listing["containers"][0]["images"] == ["c/0", "c/1"]
        resp = await client.get("/api/datasets/c/1")
        message = (await resp.json())["message"]
        assert resp.status == 502 and "<url>" in message
        assert "Scans" not in message and "run 2" not in message and "bf2raw" not in message
