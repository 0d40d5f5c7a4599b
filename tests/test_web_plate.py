"""The tile server over HCS plates: every field of view served as ``<plate>/<row>/<col>/<field>``.

Plates are written by ``create_plate_async`` into ``tmp_path`` (NGFF 0.4 and 0.5); the app runs
under aiohttp's ``TestServer`` on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest
import zarr
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from images import Spec, write_image
from PIL import Image

import ngio_async
from ngio_async.web import create_app
from ngio_async.web._app import STATE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import S3Server

SHAPE = (2, 1, 40, 30)  # c z y x
FIELDS = [("A/1", "0", 1), ("A/1", "1", 2), ("B/2", "0", 1)]  # well, field, acquisition


def pixels(seed: int) -> NDArray[np.uint16]:
    return np.random.default_rng(seed).integers(0, 4000, SHAPE, dtype=np.uint16)


async def write_plate(url: str, version: Literal["0.4", "0.5"]) -> None:
    async with ngio_async.create_plate_async(
        url,
        rows=["A", "B"],
        columns=["1", "2"],
        ngff_version=version,
        name="screen",
        acquisitions=[1, 2],
    ) as plate:
        for seed, (well, field, acquisition) in enumerate(FIELDS):
            async with await plate.add_image(
                well,
                field=field,
                acquisition=acquisition,
                shape=SHAPE,
                dtype="uint16",
                axes="czyx",
                channels=["DAPI", "GFP"],
                chunks=(1, 1, 16, 16),
                levels=2,
            ) as ds:
                await ds.write(pixels(seed), pyramid=True)


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("plate") / "plate.ome.zarr")
    anyio.run(write_plate, url, request.param)
    return url


@pytest.fixture(scope="module")
def image_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("image") / "img.zarr"
    write_image(path, Spec(shape=(2, 64, 64), chunks=(1, 32, 32)))
    return str(path)


@pytest.fixture
async def client(plate_url: str, image_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app({"img": image_url, "screen": plate_url})
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_plate_fields_are_listed(client: TestClient[Any, Any], plate_url: str) -> None:
    resp = await client.get("/api/datasets")
    assert resp.status == 200
    assert plate_url not in await resp.text()  # never the store URL
    doc = await resp.json()
    names = [d["name"] for d in doc["datasets"]]
    assert names == ["img", "screen/A/1/0", "screen/A/1/1", "screen/B/2/0"]
    field = doc["datasets"][2]
    # listing opens no field: a field's entry is its name and place (its document has the rest)
    assert field == {
        "name": "screen/A/1/1",
        "plate": {"name": "screen", "well": "A/1", "field": "1", "acquisition": 2},
    }
    assert "plate" not in doc["datasets"][0]
    (plate,) = doc["plates"]
    assert plate["name"] == "screen" and plate["plate_name"] == "screen"
    assert (plate["rows"], plate["columns"], plate["wells"]) == (
        ["A", "B"],
        ["1", "2"],
        ["A/1", "B/2"],
    )
    assert plate["fields"] == names[1:] and plate["unavailable"] == []


async def test_plate_field_endpoints(client: TestClient[Any, Any], plate_url: str) -> None:
    version = ngio_async.open_plate(plate_url).version
    doc = await (await client.get("/api/datasets/screen/B/2/0")).json()
    assert doc["name"] == "screen/B/2/0" and doc["ngff_version"] == version
    assert doc["plate"] == {"name": "screen", "well": "B/2", "field": "0", "acquisition": 1}
    assert [c["label"] for c in doc["channels"]] == ["DAPI", "GFP"]
    # the same dataset with its name percent-encoded (what encodeURIComponent gives)
    resp = await client.get("/api/datasets/screen%2FA%2F1%2F1/region.npy?c=1&y=5:9&x=0:30")
    assert resp.status == 200, await resp.text()
    assert np.array_equal(np.load(io.BytesIO(await resp.read())), pixels(1)[1, :, 5:9, :])
    resp = await client.get("/api/datasets/screen/B/2/0/region.npy?level=1")
    whole = np.load(io.BytesIO(await resp.read()))
    assert np.array_equal(whole, zarr.open_array(f"{plate_url}/B/2/0/1", mode="r")[...])
    query = "c=GFP&window=0:4000&color=FFFFFF"
    resp = await client.get(f"/api/datasets/screen/A/1/0/tiles/0/0/0/0/0.png?{query}")
    assert resp.status == 200 and resp.content_type == "image/png"
    rgb = np.asarray(Image.open(io.BytesIO(await resp.read())).convert("RGB"))
    norm = pixels(0)[1, 0].astype(np.float32) / np.float32(4000)
    assert rgb.shape == (40, 30, 3)
    assert np.array_equal(rgb[..., 0], np.rint(norm * np.float32(255)).astype(np.uint8))


async def test_plate_zarr_passthrough(client: TestClient[Any, Any], plate_url: str) -> None:
    v04 = ngio_async.open_plate(plate_url).version == "0.4"
    group = ".zattrs" if v04 else "zarr.json"
    resp = await client.get(f"/zarr/screen/{group}")
    assert resp.status == 200 and resp.content_type == "application/json"
    attrs = await resp.json()
    assert "plate" in (attrs if v04 else attrs["attributes"]["ome"])
    array = ".zarray" if v04 else "zarr.json"
    resp = await client.head(f"/zarr/screen/A/1/1/0/{array}")
    assert resp.status == 200
    assert (await client.get("/zarr/screen/A/2/0/.zattrs")).status == 404


@pytest.mark.parametrize(
    "path",
    ["/api/datasets/screen", "/api/datasets/screen/region.npy", "/api/datasets/screen/A/2/0"],
)
async def test_plate_name_is_no_dataset(client: TestClient[Any, Any], path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    doc = await resp.json()
    assert doc["error"] == "unknown_dataset"
    if path.count("/") == 3 or path.endswith(".npy"):
        assert "'screen/<row>/<column>/<field>'" in doc["message"]


async def test_plate_object_is_left_open_and_fields_closed(plate_url: str) -> None:
    async with ngio_async.open_plate_async(plate_url) as plate:
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as c:
            state = app[STATE]
            assert list(state.fields) == ["p/A/1/0", "p/A/1/1", "p/B/2/0"]
            assert not state.entries and not state.open_fields
            assert (await c.get("/api/datasets/p/A/1/1/region.npy?c=0&y=0:1&x=0:1")).status == 200
            assert (await c.get("/api/datasets/p/B/2/0")).status == 200
            datasets = [slot.entry.dataset for slot in state.open_fields.values() if slot.entry]
            assert len(datasets) == 2
        assert all(ds.closed for ds in datasets)
        assert not plate.closed
        assert (await plate.well("A", "1")).fields == ["0", "1"]


async def test_broken_field_is_left_out_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = str(tmp_path / "secret-dir" / "plate.zarr")
    await write_plate(url, "0.5")
    (tmp_path / "secret-dir" / "plate.zarr" / "A" / "1" / "1" / "zarr.json").write_text("{oops")
    caplog.set_level(logging.WARNING, "ngio_async.web")
    app = create_app({"p": url})
    async with TestClient(TestServer(app)) as c:
        doc = await (await c.get("/api/datasets")).json()
        assert [d["name"] for d in doc["datasets"]] == ["p/A/1/0", "p/A/1/1", "p/B/2/0"]
        assert doc["plates"][0]["unavailable"] == []  # not known before it is opened
        for path in ("", "/tiles/0/0/0/0/0.png", "/region.npy?c=0"):
            resp = await c.get(f"/api/datasets/p/A/1/1{path}")
            assert resp.status == 502, path
            error = await resp.json()
            assert error["error"] == "field_unavailable"
            assert "'A/1/1' of plate 'p' cannot be opened: MetadataError" in error["message"]
            assert "secret-dir" not in error["message"]
        assert (await c.get("/api/datasets/p/A/1/0/tiles/0/0/0/0/0.png")).status == 200
        assert (await c.get("/api/datasets/p/B/2/0")).status == 200
        doc = await (await c.get("/api/datasets")).json()
        assert doc["plates"][0]["unavailable"] == ["A/1/1"]
    assert "A/1/1 is not served" in caplog.text
    assert "secret-dir" not in caplog.text


async def test_image_errors_are_kept_when_it_is_no_plate(tmp_path: Path) -> None:
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    runner = web.AppRunner(create_app({"bad": str(tmp_path / "bad.zarr")}))
    with pytest.raises(ngio_async.MetadataError, match="no 'ome' attributes"):
        await runner.setup()  # the image's error, not the plate's
    await runner.cleanup()


async def test_plate_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/plate.zarr"
    async with (
        ngio_async.create_plate_async(
            url, rows=["A"], columns=["1"], **s3_server.options()
        ) as plate,
        await plate.add_image(
            "A/1", field="0", shape=SHAPE, dtype="uint16", axes="czyx", levels=1
        ) as ds,
    ):
        await ds.write(pixels(7))
    app = create_app({"s3plate": url}, **s3_server.options())
    async with TestClient(TestServer(app)) as c:
        doc = await (await c.get("/api/datasets")).json()
        assert [d["name"] for d in doc["datasets"]] == ["s3plate/A/1/0"]
        assert s3_server.endpoint not in json.dumps(doc) and url.split("/")[3] not in json.dumps(
            doc
        )
        resp = await c.get("/api/datasets/s3plate/A/1/0/region.npy?c=1")
        assert np.array_equal(np.load(io.BytesIO(await resp.read())), pixels(7)[1])
        assert (await c.get("/api/datasets/s3plate/A/1/0/tiles/0/0/0/0/0.webp")).status == 200
        assert (await c.head("/zarr/s3plate/A/1/0/0/zarr.json")).status == 200
