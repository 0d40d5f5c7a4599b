"""Tile ETags from the reads themselves: a plain tile GET reads each stored object once (its
GET tells the object's version) and sends no HEAD; a revalidation (``If-None-Match``) sends a
HEAD per object and reads no pixel; both give the same ETag for the same objects. Tiles
served from S3 cost a HEAD and a GET per object before.

Real servers on 127.0.0.1 only: moto's S3 (requests counted by ``InstrumentedStore``) and the
static HTTP server of ``servers.py`` (requests counted by the server).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import zarr
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from images import Spec, upload, write_image

import ngio_async
from ngio_async import Limits, open_async
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.stores._seen import seeing_versions
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

TILE = "/api/datasets/img/tiles/0/0/0/0/0.png?c=0,1&window=0:1000,0:1000"
SPEC = Spec(shape=(2, 256, 256), chunks=(1, 128, 128), levels=1, channels=("a", "b"), seed=5)
K = 2 * 2 * 2  # channels x chunks of 128^2 under a 256^2 tile


def by_key(store: InstrumentedStore) -> dict[str, Counter[str]]:
    """The requests ``store`` saw, per method: how many for each key."""
    out: dict[str, Counter[str]] = {}
    for (method, key), n in store.calls.items():
        out.setdefault(method, Counter())[key] += n
    return out


async def test_s3_tile_gets_tell_the_versions(tmp_path: Path, s3_server: S3Server) -> None:
    """k objects: k GETs and no HEAD; the revalidation k HEADs and no GET, the same ETag (304);
    a chunk rewritten: 200 with another ETag, which the next revalidation matches."""
    local = tmp_path / "img.zarr"
    write_image(local, SPEC)
    url, options = s3_server.fresh_url(), s3_server.options()
    async with open_store(url, **options) as writer:
        await upload(local, writer)
        store = InstrumentedStore(open_store(url, **options))
        async with (
            store,
            await open_async(store) as ds,
            TestClient(TestServer(create_app({"img": ds}, tile_size=256))) as client,
        ):
            store.reset()
            first = await client.get(TILE)
            assert first.status == 200
            etag = first.headers["ETag"]
            calls = by_key(store)
            assert set(calls) == {"get"}  # no HEAD
            assert len(calls["get"]) == K and set(calls["get"].values()) == {1}
            read = set(calls["get"])

            store.reset()
            again = await client.get(TILE, headers={"If-None-Match": etag})
            assert again.status == 304 and again.headers["ETag"] == etag
            calls = by_key(store)
            assert set(calls) == {"version"}  # no pixel read
            assert set(calls["version"]) == read and set(calls["version"].values()) == {1}

            arr = zarr.open_array(local / "0", mode="r+")
            arr[1, 0:4, 130:134] = 999  # chunk (1, 0, 1)
            key = "0/c/1/0/1"
            await writer.put(key, (local / key).read_bytes())
            store.reset()
            after = await client.get(TILE, headers={"If-None-Match": etag})
            assert after.status == 200
            new = after.headers["ETag"]
            assert new != etag
            assert (await client.get(TILE, headers={"If-None-Match": new})).status == 304
            plain = await client.get(TILE)  # from the GETs alone: the same ETag
            assert plain.status == 200 and plain.headers["ETag"] == new


async def test_http_tile_with_labels_sends_no_head(
    tmp_path: Path, http_server: StaticServer, http_root: Path
) -> None:
    """Over plain HTTP (the server counts), with a label image overlaid: a plain GET of the
    tile reads each object under it (the image's and the label's) once and sends no HEAD; the
    revalidation a HEAD of each of them and no GET."""
    local = http_root / "lab.zarr"
    with ngio_async.create(
        str(local),
        shape=(2, 64, 64),
        dtype="uint8",
        axes="zyx",
        chunks=(1, 32, 32),
        shards=False,
        levels=1,
    ) as ds:
        ds.write(np.full((2, 64, 64), 100, "uint8"))
        cells = ds.labels.create("cells", dtype="uint32", colors={1: (255, 0, 0, 255)})
        data = np.zeros((2, 64, 64), "uint32")
        data[1, :16, :16] = 1
        cells.write(data)
    app = create_app({"img": f"{http_server.url}lab.zarr"}, tile_size=64)
    tile = "/api/datasets/img/tiles/0/0/1/0/0.png?window=0:255&labels=cells"
    async with TestClient(TestServer(app)) as client:
        await client.get(tile.replace("/0/0/1/0/0", "/0/0/0/0/0"))  # (the label opened)
        http_server.reset()
        first = await client.get(tile)
        assert first.status == 200, await first.text()
        etag = first.headers["ETag"]
        got = Counter(r.path for r in http_server.requests if r.method == "GET")
        assert http_server.count("HEAD") == 0
        image = [path for path in got if "/labels/" not in path]
        assert len(image) == 4 and all(got[path] == 1 for path in image)  # each chunk once
        assert any("/labels/cells/" in path for path in got)

        http_server.reset()
        again = await client.get(tile, headers={"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
        heads = Counter(r.path for r in http_server.requests if r.method == "HEAD")
        assert http_server.count("GET") == 0
        assert heads == Counter(dict.fromkeys(got, 1))


async def test_sharded_s3_tile(tmp_path: Path, s3_server: S3Server) -> None:
    """Sharded: the shard's index and chunk ranges are GETs of the shard, no HEAD; the
    revalidation one HEAD per shard; the same ETag both ways."""
    local = tmp_path / "img.zarr"
    spec = Spec(shape=(2, 256, 256), chunks=(1, 64, 64), shards=(1, 256, 256), channels=("a", "b"))
    write_image(local, spec)
    url, options = s3_server.fresh_url(), s3_server.options()
    async with open_store(url, **options) as writer:
        await upload(local, writer)
    store = InstrumentedStore(open_store(url, **options))
    async with (
        store,
        await open_async(store) as ds,
        TestClient(TestServer(create_app({"img": ds}, tile_size=128))) as client,
    ):
        store.reset()
        first = await client.get(TILE)
        assert first.status == 200
        calls = by_key(store)
        assert set(calls) == {"get"}
        assert len(calls["get"]) == 2  # the tile's shard in each channel
        store.reset()
        again = await client.get(TILE, headers={"If-None-Match": first.headers["ETag"]})
        assert again.status == 304
        assert by_key(store) == {"version": Counter(dict.fromkeys(calls["get"], 1))}


async def test_cached_chunks_are_looked_up(tmp_path: Path, s3_server: S3Server) -> None:
    """Chunks a dataset's read cache gives were not fetched, so no GET told their versions:
    they are looked up (a HEAD each), and the ETag is the same."""
    local = tmp_path / "img.zarr"
    write_image(local, SPEC)
    url, options = s3_server.fresh_url(), s3_server.options()
    async with open_store(url, **options) as writer:
        await upload(local, writer)
    store = InstrumentedStore(open_store(url, **options))
    limits = Limits(read_cache_bytes=64 << 20)
    async with store, await open_async(store, limits=limits) as ds:
        app = create_app({"img": ds}, tile_size=256)
        async with TestClient(TestServer(app)) as client:
            first = await client.get(TILE)
            store.reset()
            second = await client.get(TILE)
            assert second.headers["ETag"] == first.headers["ETag"]
            calls: dict[str, Any] = by_key(store)
            assert "get" not in calls and len(calls["version"]) == K


async def test_reads_note_the_versions_their_gets_tell() -> None:
    """Inside ``seeing_versions`` a GET notes the object's version (absent: ``None``); an
    object whose GETs told two versions, or that is read outside, is not known."""
    async with open_store("memory://") as store:
        await store.put("a", b"1")
        await store.put("b", b"2")
        await store.get("b")  # outside: nothing noted
        with seeing_versions() as seen:
            assert await store.get("a") == b"1"
            assert await store.get_many(["a", "missing"]) == [b"1", None]
        assert seen.knows("a") and seen.version("a") == await store.version("a")
        assert seen.knows("missing") and seen.version("missing") is None
        assert not seen.knows("b")
        with seeing_versions() as seen:
            await store.get("a")
            await store.put("a", b"3")
            await store.get_ranges("a", [(0, 1)])
        assert not seen.knows("a")  # two versions: looked up again by the tile server
        ended = anyio.Event()

        async def later() -> None:  # started in the block, reads after it ended
            await ended.wait()
            await store.get("b")

        async with anyio.create_task_group() as tg:
            with seeing_versions() as seen:
                tg.start_soon(later)
            ended.set()
        assert not seen.knows("b")


async def test_missing_chunks_over_http(http_server: StaticServer, http_root: Path) -> None:
    """Chunks never written (fill value): their GETs' 404s tell the tile's ETag as the HEADs'
    do, no HEAD on a plain GET; writing one changes the ETag."""
    local = http_root / "sparse.zarr"
    spec = Spec(
        shape=(256, 512), chunks=(128, 128), levels=1, written=(slice(0, 100), slice(0, 100))
    )
    write_image(local, spec)
    app = create_app({"img": f"{http_server.url}sparse.zarr"}, tile_size=256)
    tile = "/api/datasets/img/tiles/0/0/0/0/0.png?window=0:1000"
    async with TestClient(TestServer(app)) as client:
        # (the store's first miss is confirmed by a second GET: on another tile)
        assert (await client.get(tile.replace("/0.png", "/1.png"))).status == 200
        http_server.reset()
        first = await client.get(tile)
        assert first.status == 200
        assert http_server.count("HEAD") == 0 and http_server.count("GET") == 4
        etag = first.headers["ETag"]
        assert (await client.get(tile, headers={"If-None-Match": etag})).status == 304
        zarr.open_array(local / "0", mode="r+")[200:210, 200:210] = 7  # a missing chunk now
        after = await client.get(tile, headers={"If-None-Match": etag})
        assert after.status == 200 and after.headers["ETag"] != etag


async def test_weak_etags_are_looked_up(tmp_path: Path) -> None:
    """A server whose ETags are weak: a GET cannot tell a version (``If-Match`` never matches
    a weak one), so each object is looked up by a HEAD, as the revalidation does: the same
    ETag, and a 304."""
    root = tmp_path / "files"
    write_image(root / "img.zarr", SPEC)
    seen: list[str] = []

    async def weaken(request: web.Request, response: web.StreamResponse) -> None:
        seen.append(request.method)
        if "ETag" in response.headers:
            response.headers["ETag"] = "W/" + response.headers["ETag"]

    files = web.Application()
    files.router.add_static("/", root)
    files.on_response_prepare.append(weaken)
    async with TestServer(files, host="127.0.0.1") as server:
        app = create_app({"img": f"http://127.0.0.1:{server.port}/img.zarr"}, tile_size=256)
        async with TestClient(TestServer(app)) as client:
            seen.clear()
            first = await client.get(TILE)
            assert first.status == 200
            assert Counter(seen) == {"GET": K, "HEAD": K}  # as before: no version from a GET
            etag = first.headers["ETag"]
            seen.clear()
            again = await client.get(TILE, headers={"If-None-Match": etag})
            assert again.status == 304 and Counter(seen) == {"HEAD": K}


async def test_local_versions_in_one_thread_call(tmp_path: Path) -> None:
    """Stores over local files tell the versions of many keys in one worker-thread call, the
    same as ``version`` (missing, and a directory: ``None``); other stores: ``None``."""
    for url in (str(tmp_path), f"file://{tmp_path}"):
        async with open_store(url) as store:
            await store.put("a/b", b"1")
            await store.put("c", b"22")
            keys = ["a/b", "c", "missing", "a"]
            told = await anyio.to_thread.run_sync(store.versions_blocking, keys)
            assert told == [await store.version(key) for key in keys]
            assert told[0] is not None and told[2:] == [None, None]
    async with open_store("memory://") as store:
        assert store.versions_blocking(["a"]) is None
