"""Label images as overlays of tiles: ``?labels=cells`` paints the label image over the tile
(its ``image-label`` colours, else hashed ones; 0 transparent), at ``label_opacity``. The
label images of an image were listed by ``/api/datasets/{name}`` but not served at all.

Real images in ``tmp_path``; the app under aiohttp's ``TestServer`` on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

import ngio_async
from ngio_async.web import create_app
from ngio_async.web._app import STATE
from ngio_async.web._render import label_colors

if TYPE_CHECKING:
    from pathlib import Path

QUERY = "window=0:255&color=FFFFFF"  # a grey image: value v is (v, v, v)


def pixels(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


@pytest.fixture(params=["0.4", "0.5"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A 3-plane (z) 1-channel uint8 image of value 100, two levels, with the label image
    ``cells`` (values 1 and 7 in z=1; 1 red in image-label)."""
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(
        url, shape=(3, 64, 64), dtype="uint8", axes="zyx", levels=2, ngff_version=request.param
    ) as ds:
        ds.write(np.full((3, 64, 64), 100, "uint8"), pyramid=True)
        cells = ds.labels.create("cells", dtype="uint32", colors={1: (255, 0, 0, 255)})
        data = np.zeros((3, 64, 64), "uint32")
        data[1, :32, :32] = 1
        data[1, 32:, 32:] = 7
        cells.write(data)
        cells.build_pyramid()
    return url


async def test_a_label_image_is_overlaid(image: str) -> None:
    async with TestClient(TestServer(create_app({"img": image}))) as client:
        doc = await (await client.get("/api/datasets/img")).json()
        assert doc["labels"] == ["cells"]
        base = f"/api/datasets/img/tiles/0/0/1/0/0.png?{QUERY}"
        plain = pixels(await (await client.get(base)).read())
        assert (plain == 100).all()
        resp = await client.get(f"{base}&labels=cells&label_opacity=0.5")
        assert resp.status == 200
        over = pixels(await resp.read())
        assert over[0, 0].tolist() == [178, 50, 50]  # half red over grey 100
        assert (over[:32, 32:] == 100).all()  # 0: transparent
        seven = label_colors(np.array([7]), {})[0]
        assert seven[3] == 255 and over[40, 40].tolist() == [
            round(100 * 0.5 + c * 0.5) for c in seven[:3].tolist()
        ]
        opaque = pixels(await (await client.get(f"{base}&labels=cells&label_opacity=1")).read())
        assert opaque[0, 0].tolist() == [255, 0, 0]
        # another plane has no labels; level 1 reads the label's level 1
        other = await client.get(f"/api/datasets/img/tiles/0/0/0/0/0.png?{QUERY}&labels=cells")
        assert (pixels(await other.read()) == 100).all()
        coarse = await client.get(f"/api/datasets/img/tiles/1/0/1/0/0.png?{QUERY}&labels=cells")
        assert pixels(await coarse.read())[0, 0].tolist() == [178, 50, 50]


async def test_label_tiles_refuse_what_is_not_there(image: str) -> None:
    async with TestClient(TestServer(create_app({"img": image}))) as client:
        base = "/api/datasets/img/tiles/0/0/1/0/0.png?labels="
        resp = await client.get(base + "nuclei")
        assert resp.status == 404 and (await resp.json())["error"] == "unknown_label"
        resp = await client.get(base + "cells&label_opacity=2")
        assert resp.status == 400 and (await resp.json())["error"] == "bad_parameter"
        resp = await client.get(base + "..")
        assert resp.status == 404


async def test_label_etag_follows_the_label_chunks(image: str) -> None:
    async with TestClient(TestServer(create_app({"img": image}))) as client:
        url = f"/api/datasets/img/tiles/0/0/1/0/0.png?{QUERY}&labels=cells"
        first = await client.get(url)
        etag = first.headers["ETag"]
        plain = await client.get(f"/api/datasets/img/tiles/0/0/1/0/0.png?{QUERY}")
        assert plain.headers["ETag"] != etag
        assert (await client.get(url, headers={"If-None-Match": etag})).status == 304
        with ngio_async.open(f"{image}/labels/cells", mode="r+") as cells:
            cells.write(np.full((64, 64), 3, "uint32"), z=1)
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status == 200 and again.headers["ETag"] != etag


async def test_labels_close_with_their_image(image: str) -> None:
    app = create_app({"img": image})
    async with TestClient(TestServer(app)) as client:
        url = f"/api/datasets/img/tiles/0/0/1/0/0.png?{QUERY}&labels=cells"
        assert (await client.get(url)).status == 200
        assert (await client.get(url)).status == 200
        entry = app[STATE].entries["img"]
        (label,) = entry._label_entries.values()  # opened once
        assert not label.dataset.closed
    assert label.dataset.closed


async def test_a_label_image_of_another_resolution(tmp_path: Path) -> None:
    """A label image at half the image's resolution, one level (as segmentations often are),
    with no z: mapped onto the image's tiles by the levels' extents."""
    url = tmp_path / "img.zarr"
    with ngio_async.create(str(url), shape=(2, 64, 64), dtype="uint8", axes="zyx", levels=2):
        pass
    with ngio_async.create(str(url / "labels" / "half"), shape=(32, 32), dtype="uint8", axes="yx",
                           levels=1) as half:  # fmt: skip
        data = np.zeros((32, 32), "uint8")
        data[8:16, :] = 1
        half.write(data)
    (url / "labels" / "zarr.json").write_text(
        json.dumps(
            {
                "zarr_format": 3,
                "node_type": "group",
                "attributes": {"ome": {"version": "0.5", "labels": ["half"]}},
            }
        )
    )
    async with TestClient(TestServer(create_app({"img": str(url)}))) as client:
        for level, rows in ((0, slice(16, 32)), (1, slice(8, 16))):
            resp = await client.get(
                f"/api/datasets/img/tiles/{level}/0/1/0/0.png?{QUERY}&labels=half&label_opacity=1"
            )
            assert resp.status == 200
            painted = (pixels(await resp.read()) != 0).any(axis=(1, 2))
            expected = np.zeros(64 >> level, bool)
            expected[rows] = True
            assert painted.tolist() == expected.tolist()


async def test_label_etag_follows_the_label_colours(image: str) -> None:
    """New image-label colours (the chunks unchanged) are a new tile: a new ETag after the
    server opens the label image again."""
    url = f"/api/datasets/img/tiles/0/0/1/0/0.png?{QUERY}&labels=cells"
    async with TestClient(TestServer(create_app({"img": image}))) as client:
        etag = (await client.get(url)).headers["ETag"]
    with ngio_async.open(image, mode="r+") as ds:
        ds.labels.set_colors("cells", {1: (0, 0, 255, 255)})
    async with TestClient(TestServer(create_app({"img": image}))) as client:
        resp = await client.get(url, headers={"If-None-Match": etag})
        assert resp.status == 200 and resp.headers["ETag"] != etag
        assert pixels(await resp.read())[0, 0].tolist() == [50, 50, 178]
