"""The tile server serves every image of a bioformats2raw container as ``<name>/<path>``
(``name`` alone stays its first image); ``convert`` makes such containers of multi-position
TIFFs, so serving one showed only the first position before."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from test_validate_bf2raw import container

import ngio_async
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_every_image_of_a_container_is_served(tmp_path: Path, version: str) -> None:
    path = container(tmp_path, version, ("0", "1", "2"), ome={"series": ["0", "1", "2"]})
    for i in range(3):
        with ngio_async.open(str(path / str(i)), mode="r+") as ds:
            ds.write(np.full((8, 8), 10 + i, dtype="uint8"))
    app = create_app({"c": str(path)})
    async with TestClient(TestServer(app)) as client:
        listing = await (await client.get("/api/datasets")).json()
        assert [d["name"] for d in listing["datasets"]] == ["c", "c/0", "c/1", "c/2"]
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
