"""The aiohttp tile server (``ngio_async.web``): every endpoint and error, against zarr-python.

Real servers on 127.0.0.1 only: the app under aiohttp's ``TestServer``, the static HTTP server
of ``servers.py`` for remote datasets; real files written with zarr-python.
"""

from __future__ import annotations

import io
import itertools
import logging
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
import zarr
from aiohttp.test_utils import TestClient, TestServer
from images import Spec, upload, write_image
from PIL import Image
from servers import Faults, StaticServer

import ngio_async
from ngio_async import Limits, open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app
from ngio_async.web._app import STATE
from ngio_async.web._errors import redact
from ngio_async.web._files import STATIC_DIR, parse_range

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import S3Server

SHAPE = (2, 3, 600, 700)
OMERO = [  # label, color, window, active
    ("DAPI", "0000FF", (0.0, 800.0), True),
    ("GFP", "00FF00", (100.0, 900.0), False),
    ("RFP", "FF0000", (50.0, 500.0), True),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``plain``: 2x3x600x700 uint16 without omero; ``omero``: 3 channels with omero."""
    root = tmp_path_factory.mktemp("web")
    plain = root / "plain.zarr"
    write_image(plain, Spec(shape=SHAPE, chunks=(1, 1, 256, 256), levels=3, seed=1))
    colored = root / "omero.zarr"
    write_image(
        colored,
        Spec(shape=(3, 2, 600, 700), chunks=(1, 1, 256, 256), levels=3, channels=("a", "b", "c")),
    )
    group = zarr.open_group(colored, mode="a")
    ome: dict[str, Any] = dict(group.attrs["ome"])  # type: ignore[arg-type]
    ome["omero"] = {
        "channels": [
            {
                "label": label,
                "color": color,
                "active": active,
                "window": {"min": 0, "max": 1000, "start": window[0], "end": window[1]},
            }
            for label, color, window, active in OMERO
        ]
    }
    group.attrs["ome"] = ome
    with ngio_async.open(colored, mode="r+") as ds:
        ds.labels.create("cells", dtype="uint32").close()
    return {"plain": plain, "omero": colored}


@pytest.fixture
async def client(images: dict[str, Path]) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app({name: str(path) for name, path in images.items()})
    async with TestClient(TestServer(app, handler_cancellation=True)) as c:
        yield c


def level_array(path: Path, level: int) -> zarr.Array[Any]:
    arr = zarr.open_array(path / str(level), mode="r")
    assert isinstance(arr, zarr.Array)
    return arr


def reference_composite(
    planes: list[NDArray[Any]], windows: list[tuple[float, float]], colors: list[str]
) -> NDArray[np.uint8]:
    """The documented composite: linear window, clip, times colour, rounded per channel,
    additive sum saturating at 255."""
    acc = np.zeros((*planes[0].shape, 3), dtype=np.int64)
    for plane, (start, end), color in zip(planes, windows, colors, strict=True):
        rgb = np.array([int(color[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float32)
        norm = (plane.astype(np.float32) - np.float32(start)) / np.float32(end - start)
        acc += np.rint(np.clip(norm, 0.0, 1.0)[..., None] * rgb).astype(np.int64)
    out: NDArray[np.uint8] = np.minimum(acc, 255).astype(np.uint8)
    return out


def decode(body: bytes) -> NDArray[Any]:
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


async def get_json(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET with ``target`` sent byte for byte (clients normalise ``..`` away)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        await stream.send(request.encode())
        data = b""
        with anyio.fail_after(10):
            while True:
                try:
                    data += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# ------------------------------------------------------------------------------ metadata
async def test_list_datasets(client: TestClient[Any, Any]) -> None:
    doc = await get_json(client, "/api/datasets")
    by_name = {d["name"]: d for d in doc["datasets"]}
    assert by_name["plain"] == {
        "name": "plain",
        "ngff_version": "0.5",
        "axes": ["c", "z", "y", "x"],
        "shape": list(SHAPE),
        "dtype": "uint16",
        "levels": 3,
        "channels": 2,
    }
    assert by_name["omero"]["channels"] == 3


async def test_describe_dataset(client: TestClient[Any, Any], images: dict[str, Path]) -> None:
    resp = await client.get("/api/datasets/omero")
    text = await resp.text()
    assert str(images["omero"].parent) not in text  # never the store URL
    doc = await resp.json()
    assert doc["name"] == "omero"
    assert doc["tile_size"] == 512
    assert doc["dtype"] == "uint16"
    assert doc["axes"][0] == {"name": "c", "type": "channel", "unit": None}
    assert doc["axes"][-1] == {"name": "x", "type": "space", "unit": "micrometer"}
    assert doc["sizes"] == {"c": 3, "z": 2, "y": 600, "x": 700}
    assert doc["labels"] == ["cells"]
    assert [lvl["shape"] for lvl in doc["levels"]] == [
        [3, 2, 600, 700],
        [3, 1, 300, 350],  # z is a space axis: downsampled too
        [3, 1, 150, 175],
    ]
    assert doc["levels"][1] == {
        "index": 1,
        "path": "1",
        "shape": [3, 1, 300, 350],
        "chunks": [1, 1, 256, 256],
        "shards": None,
        "scale": [1.0, 1.0, 1.0, 1.0],
        "translation": [0.0, 0.0, 0.0, 0.0],
    }
    assert doc["channels"][2] == {
        "index": 2,
        "label": "RFP",
        "color": "FF0000",
        "window": [50.0, 500.0],
        "active": True,
        "display": {"shown": True, "window": [50.0, 500.0], "color": "FF0000"},
    }
    assert doc["channels"][1]["display"]["shown"] is False
    plain = await get_json(client, "/api/datasets/plain")
    smallest = np.asarray(level_array(images["plain"], 2)[1])
    window = [float(v) for v in np.percentile(smallest.astype(np.float64), (0.1, 99.9))]
    assert plain["channels"][1] == {
        "index": 1,
        "label": None,
        "color": None,
        "window": None,
        "active": None,
        "display": {"shown": True, "window": window, "color": "00FF00"},
    }


@pytest.mark.parametrize(
    "path",
    [
        "/api/datasets/nope",
        "/api/datasets/nope/tiles/0/0/0/0/0.png",
        "/api/datasets/nope/region.npy",
        "/zarr/nope/zarr.json",
    ],
)
async def test_unknown_dataset_is_404(client: TestClient[Any, Any], path: str) -> None:
    doc = await get_json(client, path, 404)
    assert doc["error"] == "unknown_dataset"
    assert "'nope'" in doc["message"]


async def test_unknown_route_and_method(client: TestClient[Any, Any]) -> None:
    doc = await get_json(client, "/api/nothing", 404)
    assert set(doc) == {"error", "message"}
    resp = await client.post("/api/datasets")
    assert resp.status == 405
    assert (await resp.json())["error"] == "method_not_allowed"


# ------------------------------------------------------------------------------ tiles
@pytest.mark.parametrize(
    ("level", "z", "row", "col", "ys", "xs"),
    [
        (0, 1, 0, 0, slice(0, 512), slice(0, 512)),
        (0, 2, 1, 1, slice(512, 600), slice(512, 700)),  # edge tile: cropped
        (2, 0, 0, 0, slice(0, 150), slice(0, 175)),
    ],
)
async def test_tile_equals_reference_composite(
    client: TestClient[Any, Any],
    images: dict[str, Path],
    level: int,
    z: int,
    row: int,
    col: int,
    ys: slice,
    xs: slice,
) -> None:
    query = "?c=1,0&window=10:600,0:1000.5&color=FF00FF,00FF80"
    resp = await client.get(f"/api/datasets/plain/tiles/{level}/0/{z}/{row}/{col}.png{query}")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "image/png"
    arr = level_array(images["plain"], level)
    planes = [np.asarray(arr[c, z, ys, xs]) for c in (1, 0)]
    want = reference_composite(planes, [(10, 600), (0, 1000.5)], ["FF00FF", "00FF80"])
    got = decode(await resp.read())
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


async def test_tile_defaults_from_omero(
    client: TestClient[Any, Any], images: dict[str, Path]
) -> None:
    """Default: the active channels (DAPI, RFP), omero windows and colours."""
    resp = await client.get("/api/datasets/omero/tiles/1/0/0/0/0.png")
    assert resp.status == 200
    arr = level_array(images["omero"], 1)
    planes = [np.asarray(arr[c, 0, 0:300, 0:350]) for c in (0, 2)]
    want = reference_composite(planes, [OMERO[0][2], OMERO[2][2]], ["0000FF", "FF0000"])
    np.testing.assert_array_equal(decode(await resp.read()), want)
    # labels select channels too; the omero window and colour stay the defaults
    resp = await client.get("/api/datasets/omero/tiles/1/0/0/0/0.png?c=GFP")
    planes = [np.asarray(arr[1, 0, 0:300, 0:350])]
    want = reference_composite(planes, [OMERO[1][2]], ["00FF00"])
    np.testing.assert_array_equal(decode(await resp.read()), want)


async def test_tile_defaults_computed(
    client: TestClient[Any, Any], images: dict[str, Path]
) -> None:
    """No omero: both channels, palette red/green, windows = percentiles of the smallest level."""
    smallest = np.asarray(level_array(images["plain"], 2)[...])
    windows = [
        tuple(float(v) for v in np.percentile(smallest[c].astype(np.float64), (0.1, 99.9)))
        for c in range(2)
    ]
    resp = await client.get("/api/datasets/plain/tiles/0/0/0/0/1.png")
    assert resp.status == 200
    arr = level_array(images["plain"], 0)
    planes = [np.asarray(arr[c, 0, 0:512, 512:700]) for c in range(2)]
    want = reference_composite(planes, windows, ["FF0000", "00FF00"])  # type: ignore[arg-type]
    np.testing.assert_array_equal(decode(await resp.read()), want)


async def test_default_windows_sample_is_bounded(
    images: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large smallest levels: the windows come from a centred crop, not the whole level."""
    from ngio_async.web import _state

    monkeypatch.setattr(_state, "_WINDOW_CROP", 100)
    smallest = np.asarray(level_array(images["plain"], 2)[0, 0, 25:125, 37:137])
    want = [float(v) for v in np.percentile(smallest.astype(np.float64), (0.1, 99.9))]
    async with TestClient(TestServer(create_app({"img": images["plain"]}))) as client:
        doc = await get_json(client, "/api/datasets/img")
    assert doc["channels"][0]["display"]["window"] == want


@pytest.mark.parametrize(("ext", "media"), [("jpg", "jpeg"), ("jpeg", "jpeg"), ("webp", "webp")])
async def test_tile_formats(client: TestClient[Any, Any], ext: str, media: str) -> None:
    resp = await client.get(f"/api/datasets/plain/tiles/0/0/0/1/1.{ext}")
    assert resp.status == 200
    assert resp.content_type == f"image/{media}"
    assert decode(await resp.read()).shape == (88, 188, 3)


@pytest.mark.parametrize(
    ("path", "status", "param"),
    [
        ("0/0/0/0/0.png?c=2", 400, "c"),
        ("0/0/0/0/0.png?c=DAPI", 400, "c"),
        ("0/0/0/0/0.png?c=", 400, "c"),
        ("0/0/0/0/0.png?window=5:1,0:1", 400, "window"),
        ("0/0/0/0/0.png?window=a:b,0:1", 400, "window"),
        ("0/0/0/0/0.png?window=0:1", 400, "window"),  # two channels shown, one window
        ("0/0/0/0/0.png?color=GG0000,FFFFFF", 400, "color"),
        ("0/0/0/0/0.png?c=0&color=FF0000,00FF00", 400, "color"),
        ("0/0/0/0/0.png?gamma=2", 400, "gamma"),
        ("0/1/0/0/0.png", 400, "t"),  # the image has no t axis
        ("x/0/0/0/0.png", 400, "level"),
        ("0/0/0/-1/0.png", 400, "row"),
        ("0/0/0/0/0.gif", 400, "format"),
        ("0/0/0/0/zero.png", 400, "col"),
        ("3/0/0/0/0.png", 404, None),
        ("0/0/3/0/0.png", 404, None),
        ("0/0/0/2/0.png", 404, None),
        ("0/0/0/0/2.png", 404, None),
        ("2/0/0/0/1.png", 404, None),
    ],
)
async def test_tile_errors(
    client: TestClient[Any, Any], path: str, status: int, param: str | None
) -> None:
    doc = await get_json(client, f"/api/datasets/plain/tiles/{path}", status)
    if param is not None:
        assert f"'{param}'" in doc["message"], doc


async def test_tile_etag_and_304_without_reading(images: dict[str, Path]) -> None:
    store = InstrumentedStore(open_store(images["plain"]))
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds})
        async with TestClient(TestServer(app)) as client:
            url = "/api/datasets/img/tiles/0/0/0/0/0.png?window=0:500,0:600"
            resp = await client.get(url)
            assert resp.status == 200
            etag = resp.headers["ETag"]
            assert etag.startswith('"')
            assert resp.headers["Cache-Control"].startswith("public, max-age=")
            store.reset()
            again = await client.get(url, headers={"If-None-Match": etag})
            assert again.status == 304
            assert again.headers["ETag"] == etag
            # no pixel was read: a version look-up (a HEAD) of each chunk under the tile
            assert store.method_counts == {"version": 2 * 2 * 2}  # channels x 256^2 chunks
            other = await client.get(url.replace("0:600", "0:601"))
            assert other.headers["ETag"] != etag
            other = await client.get(url.replace("/0.png", "/1.png"))
            assert other.headers["ETag"] != etag
            stale = await client.get(url, headers={"If-None-Match": '"other"'})
            assert stale.status == 200


@pytest.mark.parametrize("where", ["local", "s3", "http"])
async def test_tile_etag_follows_the_pixels(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: StaticServer, http_root: Path
) -> None:
    """Rewriting the pixels under a tile changes its ETag: the old one no longer answers 304
    (the tile server holds its datasets open while other programs write). A tile over missing
    chunks has an ETag too, and it changes once they are written."""
    local = (http_root if where == "http" else tmp_path) / "img.zarr"
    write_image(local, Spec(shape=(2, 600, 700), chunks=(1, 256, 256), levels=1, seed=3))
    url, options = str(local), {}
    if where == "s3":
        url, options = s3_server.fresh_url(), s3_server.options()
        async with open_store(url, **options) as store:
            await upload(local, store)
    elif where == "http":
        url = f"{http_server.url}/img.zarr"
    writer = zarr.open_array(local / "0", mode="r+")
    app = create_app({"img": url}, **options)
    async with TestClient(TestServer(app)) as client:
        tile = "/api/datasets/img/tiles/0/0/1/0/0.png?window=0:1000"  # z=1, x 0:512
        unchanged = "/api/datasets/img/tiles/0/0/1/0/1.png?window=0:1000"  # z=1, x 512:700
        first = await client.get(tile)
        assert first.status == 200
        etag = first.headers["ETag"]
        assert (await client.get(tile, headers={"If-None-Match": etag})).status == 304
        other_etag = (await client.get(unchanged)).headers["ETag"]
        writer[1, 0:10, 300:310] = 999  # chunk (1, 0, 1): under the first tile only
        if where == "s3":
            async with open_store(url, **options) as store:
                await upload(local, store)
        after = await client.get(tile, headers={"If-None-Match": etag})
        assert after.status == 200
        assert after.headers["ETag"] != etag
        old, new = decode(await first.read()), decode(await after.read())
        assert not np.array_equal(old[0:10, 300:310], new[0:10, 300:310])
        np.testing.assert_array_equal(old[10:], new[10:])
        # a tile whose chunks did not change keeps its ETag
        assert (await client.get(unchanged)).headers["ETag"] == other_etag


async def test_tile_etag_of_missing_chunks_changes_when_written(tmp_path: Path) -> None:
    path = tmp_path / "empty.zarr"
    async with await ngio_async.create_async(
        path, shape=(256, 256), dtype="uint8", chunks=(128, 128), axes="yx"
    ) as ds:
        app = create_app({"img": ds})
        async with TestClient(TestServer(app)) as client:
            tile = "/api/datasets/img/tiles/0/0/0/0/0.png?window=0:255"
            before = await client.get(tile)
            etag = before.headers["ETag"]
            assert (await client.get(tile, headers={"If-None-Match": etag})).status == 304
            await ds.write(np.full((10, 10), 200, dtype="uint8"), y=slice(0, 10), x=slice(0, 10))
            after = await client.get(tile, headers={"If-None-Match": etag})
            assert after.status == 200 and after.headers["ETag"] != etag


async def test_tile_without_object_versions_has_no_etag(
    http_server: StaticServer, http_root: Path
) -> None:
    """A server that sends neither ETag nor Last-Modified: tiles carry no ETag, never a 304,
    and caches must revalidate them."""
    write_image(http_root / "nov.zarr", Spec(shape=(256, 256), chunks=(128, 128), levels=1))
    http_server.faults.no_validators = True
    app = create_app({"img": f"{http_server.url}/nov.zarr"})
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/datasets/img/tiles/0/0/0/0/0.png?window=0:255")
        assert resp.status == 200
        assert "ETag" not in resp.headers
        assert resp.headers["Cache-Control"] == "no-cache"
        again = await client.get(
            "/api/datasets/img/tiles/0/0/0/0/0.png?window=0:255", headers={"If-None-Match": "*"}
        )
        assert again.status == 200


async def test_concurrent_tiles(client: TestClient[Any, Any]) -> None:
    statuses: list[int] = []

    async def one(i: int) -> None:
        level, row, col = i % 3, (i // 3) % 2, (i // 6) % 2
        if level > 0:
            row = col = 0
        z = i % 3 if level == 0 else 0
        resp = await client.get(f"/api/datasets/plain/tiles/{level}/0/{z}/{row}/{col}.png")
        await resp.read()
        statuses.append(resp.status)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert statuses == [200] * 50


# ------------------------------------------------------------------------------ regions
async def test_region_equals_zarr(client: TestClient[Any, Any], images: dict[str, Path]) -> None:
    resp = await client.get("/api/datasets/plain/region.npy?level=1&c=1&y=10:250&x=100:")
    assert resp.status == 200, await resp.text()
    got = np.load(io.BytesIO(await resp.read()), allow_pickle=False)
    want = np.asarray(level_array(images["plain"], 1)[1, :, 10:250, 100:])
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    resp = await client.get("/api/datasets/plain/region.npy?z=2&y=599&x=0:5")
    got = np.load(io.BytesIO(await resp.read()), allow_pickle=False)
    np.testing.assert_array_equal(got, np.asarray(level_array(images["plain"], 0)[:, 2, 599, 0:5]))


@pytest.mark.parametrize(
    ("query", "status", "param"),
    [
        ("q=1", 400, "q"),
        ("y=1:2:3", 400, "y"),
        ("y=-1", 400, "y"),
        ("c=2", 400, "c"),
        ("level=x", 400, "level"),
        ("level=3", 404, None),
    ],
)
async def test_region_errors(
    client: TestClient[Any, Any], query: str, status: int, param: str | None
) -> None:
    doc = await get_json(client, f"/api/datasets/plain/region.npy?{query}", status)
    if param is not None:
        assert f"'{param}'" in doc["message"]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("y=10:0", "empty range"),  # reversed: was a 200 with an empty array
        ("y=5:5", "empty range"),
        ("x=:0", "empty range"),
        ("y=600:700", "past the end"),  # the axis has 600: was a 200 with an empty array
        ("y=600:", "past the end"),
        ("y=9999", "out of range"),
        ("y=-3:5", "negative"),
        ("y=0:-1", "negative"),
        ("y=a:b", "expected an integer or a:b"),
        ("y=0:10:2", "steps are not supported"),
        ("y=::2", "steps are not supported"),
    ],
)
async def test_region_refuses_empty_and_malformed_ranges(
    client: TestClient[Any, Any], query: str, says: str
) -> None:
    """Every range that selects nothing, or is not ``a:b`` with 0 <= a < b, is a 400 naming
    the parameter and its value; none reads anything."""
    doc = await get_json(client, f"/api/datasets/plain/region.npy?{query}", 400)
    name, _, value = query.partition("=")
    assert doc["error"] == "bad_parameter"
    assert f"parameter '{name}'" in doc["message"] and value in doc["message"], doc
    assert says in doc["message"], doc


async def test_region_end_past_the_axis_is_clipped(
    client: TestClient[Any, Any], images: dict[str, Path]
) -> None:
    """An end past the axis is clipped, as numpy clips it (``y=590:10000`` is rows 590..599)."""
    resp = await client.get("/api/datasets/plain/region.npy?c=0&z=0&y=590:10000&x=0:3")
    assert resp.status == 200, await resp.text()
    got = np.load(io.BytesIO(await resp.read()), allow_pickle=False)
    np.testing.assert_array_equal(got, np.asarray(level_array(images["plain"], 0)[0, 0, 590:, :3]))


async def test_region_too_large_checked_before_reading(images: dict[str, Path]) -> None:
    store = InstrumentedStore(open_store(images["plain"]))
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds}, max_region_pixels=10_000)
        async with TestClient(TestServer(app)) as client:
            store.reset()
            doc = await get_json(client, "/api/datasets/img/region.npy?c=0&z=0", 413)
            assert doc["error"] == "region_too_large"
            assert "420000" in doc["message"]
            assert store.total_requests == 0
            ok = await client.get("/api/datasets/img/region.npy?c=0&z=0&y=0:100&x=0:100")
            assert ok.status == 200


# ------------------------------------------------------------------------------ zarr passthrough
async def test_passthrough_bytes_and_ranges(
    client: TestClient[Any, Any], images: dict[str, Path]
) -> None:
    root = images["plain"]
    for key, media in [("zarr.json", "application/json"), ("0/zarr.json", "application/json")]:
        resp = await client.get(f"/zarr/plain/{key}")
        assert resp.status == 200
        assert resp.content_type == media
        assert await resp.read() == (root / key).read_bytes()
    chunk_key = "0/c/1/2/1/1"
    data = (root / chunk_key).read_bytes()
    resp = await client.get(f"/zarr/plain/{chunk_key}")
    assert resp.content_type == "application/octet-stream"
    assert await resp.read() == data
    head = await client.head(f"/zarr/plain/{chunk_key}")
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == len(data)
    assert await head.read() == b""
    size = len(data)
    for spec, (start, end) in [
        ("bytes=3-10", (3, 11)),
        ("bytes=5-", (5, size)),
        ("bytes=-7", (size - 7, size)),
        (f"bytes=0-{size + 100}", (0, size)),
    ]:
        resp = await client.get(f"/zarr/plain/{chunk_key}", headers={"Range": spec})
        assert resp.status == 206, spec
        assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{size}"
        assert await resp.read() == data[start:end]
    for spec in (f"bytes={size}-", "bytes=-0"):
        resp = await client.get(f"/zarr/plain/{chunk_key}", headers={"Range": spec})
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{size}"
        assert (await resp.json())["error"] == "range_not_satisfiable"


async def test_passthrough_missing_and_methods(client: TestClient[Any, Any]) -> None:
    doc = await get_json(client, "/zarr/plain/0/c/9/9/9/9", 404)
    assert "'0/c/9/9/9/9'" in doc["message"]
    for method in ("POST", "PUT", "DELETE"):
        resp = await client.request(method, "/zarr/plain/zarr.json")
        assert resp.status == 405
        assert (await resp.json())["error"] == "method_not_allowed"
    resp = await client.options("/zarr/plain/zarr.json")
    assert resp.status == 405


async def test_cors(client: TestClient[Any, Any]) -> None:
    """Viewers served elsewhere may read /api and /zarr (read-only, no credentials)."""
    for path in ("/zarr/plain/zarr.json", "/api/datasets", "/zarr/plain/missing"):
        resp = await client.get(path, headers={"Origin": "https://viewer.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Range" in resp.headers["Access-Control-Expose-Headers"]
    preflight = await client.options(
        "/zarr/plain/0/c/0/0/0/0",
        headers={
            "Origin": "https://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert preflight.status == 204
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    resp = await client.get("/")
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_passthrough_remote_uses_head_and_ranges(images: dict[str, Path]) -> None:
    """Over HTTP: HEAD is one HEAD upstream, a range one HEAD plus one ranged GET."""
    root = images["plain"]
    chunk_key = "0/c/0/0/0/0"
    data = (root / chunk_key).read_bytes()
    server = StaticServer(root.parent).start()
    try:
        app = create_app({"remote": server.url + "plain.zarr"})
        async with TestClient(TestServer(app)) as client:
            server.reset()
            head = await client.head(f"/zarr/remote/{chunk_key}")
            assert int(head.headers["Content-Length"]) == len(data)
            assert [r.method for r in server.requests] == ["HEAD"]
            server.reset()
            resp = await client.get(f"/zarr/remote/{chunk_key}", headers={"Range": "bytes=-7"})
            assert resp.status == 206
            assert await resp.read() == data[-7:]
            size = len(data)
            assert [(r.method, r.range) for r in server.requests] == [
                ("HEAD", None),
                ("GET", f"bytes={size - 7}-{size - 1}"),
            ]
            missing = await client.head("/zarr/remote/0/c/9/9/9/9")
            assert missing.status == 404
    finally:
        server.stop()


async def test_store_size(http_server: StaticServer, http_root: Path) -> None:
    """``AsyncStore.size`` (added for the passthrough): local, HTTP with and without HEAD."""
    async with open_store(http_root) as local:
        assert await local.size("data/blob.bin") == 1024
        assert await local.size("data/nope.bin") is None
    async with open_store(http_server.url) as remote:
        assert await remote.size("data/small.txt") == 11
        assert await remote.size("data/empty.bin") == 0
        assert await remote.size("data/nope.bin") is None
        http_server.faults = Faults(no_head=True)
        assert await remote.size("data/blob.bin") == 1024  # falls back to a GET


async def test_s3_dataset(images: dict[str, Path], s3_server: S3Server) -> None:
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(images["plain"], store)
    app = create_app({"s3": url}, **s3_server.options())
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/datasets/s3/tiles/1/0/1/0/0.png?window=0:1000,0:1000")
        assert resp.status == 200
        arr = level_array(images["plain"], 1)
        planes = [np.asarray(arr[c, 1, 0:300, 0:350]) for c in (0, 1)]
        want = reference_composite(planes, [(0, 1000), (0, 1000)], ["FF0000", "00FF00"])
        np.testing.assert_array_equal(decode(await resp.read()), want)
        key = "1/c/0/1/0/0"
        data = (images["plain"] / key).read_bytes()
        head = await client.head(f"/zarr/s3/{key}")
        assert int(head.headers["Content-Length"]) == len(data)
        part = await client.get(f"/zarr/s3/{key}", headers={"Range": "bytes=2-5"})
        assert part.status == 206
        assert await part.read() == data[2:6]
        body = await (await client.get("/api/datasets/s3")).text()
        assert "ngio-test" not in body and s3_server.endpoint not in body


TRAVERSALS = [
    "/zarr/img/../../etc/passwd",
    "/zarr/img/%2e%2e/%2e%2e/etc/passwd",
    "/zarr/img/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/zarr/img/0/..%2F..%2Fzarr.json",
    "/zarr/img/..%5C..%5Cwin.ini",
    "/zarr/img/0\\..\\zarr.json",
    "/zarr/img/./zarr.json",
    "/zarr/img//zarr.json",
    "/zarr/img/%2Fetc%2Fpasswd",
    "/zarr/img/zarr.json%00",
    "/zarr/img/0/%2e/zarr.json",
    "/static/../_app.py",
    "/static/%2e%2e/_app.py",
    "/static/..%2F_app.py",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static//etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_refused_without_touching_the_store(
    images: dict[str, Path], target: str
) -> None:
    store = InstrumentedStore(open_store(images["plain"].parent))
    async with (
        store,
        await open_async(store, path="plain.zarr") as ds,
        TestClient(TestServer(create_app({"img": ds}))) as client,
    ):
        store.reset()
        assert client.port is not None
        status, body = await raw_get(client.port, target)
        assert status == 400, body
        assert set(msgjson(body)) == {"error", "message"}
        assert store.total_requests == 0
        assert b"root:" not in body and b"import" not in body


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds (``TimeoutError`` after ``seconds``)."""
    with anyio.fail_after(seconds):
        for _ in itertools.count():
            if condition():
                return
            await anyio.sleep(0.01)


def msgjson(body: bytes) -> dict[str, Any]:
    import json

    doc = json.loads(body)
    assert isinstance(doc, dict)
    return doc


# ------------------------------------------------------------------------------ static files
async def test_static_files(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert await resp.read() == (STATIC_DIR / "index.html").read_bytes()
    files = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
    some = files[0].relative_to(STATIC_DIR).as_posix()
    resp = await client.get(f"/static/{some}")
    assert resp.status == 200
    assert await resp.read() == files[0].read_bytes()
    doc = await get_json(client, "/static/no-such-file.js", 404)
    assert doc["error"] == "not_found"


# ------------------------------------------------------------------------------ failures
async def test_store_failure_is_502_and_credentials_never_leak(
    images: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = StaticServer(images["plain"].parent).start()
    try:
        url = server.url.replace("http://", "http://user:s3cr3t@") + "plain.zarr"
        app = create_app({"remote": url}, limits=Limits(max_retries=0))
        async with TestClient(TestServer(app)) as client:
            bodies = [await (await client.get("/api/datasets")).text()]
            bodies.append(await (await client.get("/api/datasets/remote")).text())
            ok = await client.get("/api/datasets/remote/tiles/2/0/0/0/0.png?window=0:1,0:1")
            assert ok.status == 200
            server.faults = Faults(status=500, status_times=-1)
            for path in (
                "/api/datasets/remote/tiles/0/0/0/0/0.png?window=0:1,0:1",
                "/api/datasets/remote/region.npy?y=0:10&x=0:10",
                "/zarr/remote/0/c/0/0/0/0",
            ):
                resp = await client.get(path)
                assert resp.status == 502, path
                doc = await resp.json()
                assert doc["error"] == "store_error"
                assert "'remote'" in doc["message"]
                bodies.append(await resp.text())
            server.faults = Faults(status=403, status_times=-1)
            resp = await client.get("/zarr/remote/zarr.json")
            assert resp.status == 502
            bodies.append(await resp.text())
    finally:
        server.stop()
    for text in [*bodies, caplog.text]:
        assert "s3cr3t" not in text
        assert "user:" not in text
    assert all("127.0.0.1" not in body for body in bodies)  # no store URL in responses
    assert "store error" in caplog.text


async def test_unexpected_error_is_500_json_and_redacted_in_logs(
    images: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    def fail(method: str, key: str) -> BaseException | None:
        if "/c/" in key:
            return RuntimeError("boom https://u:hunter2@example.invalid/x?X-Amz-Signature=abc123")
        return None

    caplog.set_level(logging.DEBUG)
    store = InstrumentedStore(open_store(images["plain"]), fail=fail)
    async with (
        store,
        await open_async(store) as ds,
        TestClient(TestServer(create_app({"img": ds}))) as client,
    ):
        resp = await client.get("/api/datasets/img/region.npy?y=0:10&x=0:10")
        assert resp.status == 500
        text = await resp.text()
        assert (await resp.json())["error"] == "internal_error"
    assert "Traceback" not in text and "boom" not in text
    assert "boom" in caplog.text
    assert "hunter2" not in caplog.text and "abc123" not in caplog.text


async def test_disconnect_cancels_reads(images: dict[str, Path]) -> None:
    """A client that goes away cancels its handler and so its store reads."""
    store = InstrumentedStore(open_store(images["plain"]))
    async with store, await open_async(store) as ds:
        app = create_app({"img": ds})
        async with TestClient(TestServer(app, handler_cancellation=True)) as client:
            store.latency = 60.0  # far longer than the test: only cancellation ends the reads
            store.reset()
            assert client.port is not None
            async with await anyio.connect_tcp("127.0.0.1", client.port) as stream:
                target = "/api/datasets/img/tiles/0/0/0/0/0.png?window=0:1,0:1"
                await stream.send(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                await wait_until(lambda: store.in_flight > 0)
                started = store.in_flight
            await wait_until(lambda: store.in_flight == 0)
            assert started >= 1
            assert store.in_flight == 0
            store.latency = 0.0
            resp = await client.get("/api/datasets/img/tiles/2/0/0/0/0.png")
            assert resp.status == 200  # the server still serves


async def test_open_failure_at_startup(tmp_path: Path, images: dict[str, Path]) -> None:
    app = create_app({"ok": str(images["plain"]), "missing": str(tmp_path / "nope.zarr")})
    server = TestServer(app)
    with pytest.raises(FileNotFoundError):
        await server.start_server()
    await server.close()


async def test_shutdown_closes_opened_datasets_only(images: dict[str, Path]) -> None:
    async with await open_async(images["omero"]) as given:
        app = create_app({"opened": images["plain"], "given": given})
        async with TestClient(TestServer(app)) as client:
            doc = await get_json(client, "/api/datasets")
            assert [d["name"] for d in doc["datasets"]] == ["opened", "given"]
            opened = app[STATE].entries["opened"].dataset
        assert opened.closed and opened.store.closed
        assert not given.closed  # its owner closes it
        assert app[STATE].entries == {}


def test_create_app_validates_arguments() -> None:
    with pytest.raises(ValueError, match="invalid dataset name"):
        create_app({"a/b": "x"})
    with pytest.raises(ValueError):
        create_app({"a": "x"}, tile_size=0)
    with pytest.raises(ValueError, match=r"tile_size must be at most 4096.*got 4097"):
        create_app({"a": "x"}, tile_size=4097)
    assert create_app({"a": "x"}, tile_size=4096)[STATE].tile_size == 4096


# ------------------------------------------------------------------------------ pure helpers
def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == (2, 5)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=0-1,4-5", 10) is None  # multiple ranges: whole object
    assert parse_range("items=0-1", 10) is None
    assert parse_range("bytes=5-2", 10) is None


def test_redact() -> None:
    text = redact("GET https://alice:pw9@host/a?X-Amz-Signature=Z1&x=1&token=T2&sig=S3 failed")
    assert "pw9" not in text and "alice" not in text
    assert "Z1" not in text and "T2" not in text and "S3" not in text
    assert text == "GET <url> failed"  # no store URL in the log at all (README)
    assert redact("a key=K9&v=1 left") == "a key=***&v=1 left"  # secrets outside URLs too


async def test_single_plane_images_odd_colors_scalars_and_bad_escapes(
    tmp_path: Path, client: TestClient[Any, Any]
) -> None:
    # a yx image (no channel axis) shown twice with c=0,0; scalar regions keep their 0-d shape
    yx = tmp_path / "yx.zarr"
    data = write_image(yx, Spec(shape=(300, 200), chunks=(128, 128), levels=1))[0]
    app = create_app({"yx": str(yx)})
    async with TestClient(TestServer(app)) as c:
        resp = await c.get("/api/datasets/yx/tiles/0/0/0/0/0.png?c=0,0")
        assert resp.status == 200, await resp.text()
        resp = await c.get("/api/datasets/yx/region.npy?y=3&x=4")
        assert resp.status == 200
        got = np.load(io.BytesIO(await resp.read()))
        assert got.shape == () == tuple(int(v) for v in resp.headers["X-Shape"].split(",") if v)
        assert got == data[3, 4]
    for color in ("-FFFFF", "0x1234", "F_FFFF"):  # int(x, 16) takes these; colours do not
        doc = await get_json(
            client, f"/api/datasets/plain/tiles/0/0/0/0/0.png?c=0&color={color}", 400
        )
        assert "'color'" in doc["message"]
    port = client.server.port
    assert port is not None
    for target in ("/zarr/plain/%C0%AE%C0%AE/zarr.json", "/static/%FF"):
        status, body = await raw_get(port, target)
        assert status == 400, body


def test_store_urls_stay_out_of_the_log() -> None:
    text = (
        "store error for '0/c/0' at s3://private-bucket/secret/img.ome.zarr: Error performing "
        "GET http://user:pw@127.0.0.1:9000/private-bucket/secret/img.ome.zarr/0/c/0?X-Amz-Signature=abc"
    )
    out = redact(text)
    assert "private-bucket" not in out and "secret" not in out and "pw" not in out
    assert "'0/c/0'" in out and out.count("<url>") == 2
