"""The tile server opens a plate's fields lazily: start-up reads the plate and well documents,
a field is opened by its first request (once, however many arrive together), and open fields
are kept in a bounded LRU whose evicted datasets are closed (never one a request is using).

Requests are counted by an :class:`InstrumentedStore` under the plate; the app runs under
aiohttp's ``TestServer`` on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import io
import logging
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from servers import Faults

import ngio_async
from ngio_async import Limits
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.web import create_app
from ngio_async.web._app import STATE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from servers import StaticServer

WELLS = ["A/1", "A/2", "B/1", "B/3"]
FIELDS = ["0", "1"]
DOCS = frozenset({"zarr.json", ".zattrs", ".zgroup", ".zarray"})


async def write_plate(url: str, version: Literal["0.4", "0.5"]) -> None:
    async with ngio_async.create_plate_async(
        url, rows=["A", "B"], columns=["1", "2", "3"], ngff_version=version
    ) as plate:
        for i, well in enumerate(WELLS):
            for field in FIELDS:
                async with await plate.add_image(
                    well, field=field, shape=(1, 16, 16), dtype="uint8", axes="cyx", levels=1
                ) as ds:
                    await ds.write(np.full((1, 16, 16), 10 * i + int(field), "uint8"))


@pytest.fixture(scope="module", params=["0.4", "0.5"])
def plate_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("lazy") / "plate.zarr")
    anyio.run(write_plate, url, request.param)
    return url


@pytest.fixture
async def store(plate_url: str) -> AsyncIterator[InstrumentedStore]:
    async with InstrumentedStore(open_store(plate_url), latency=0.002) as s:
        yield s


def docs_read(store: InstrumentedStore, prefix: str = "") -> int:
    """Metadata documents read under ``prefix`` (``"A/1/0/"``)."""
    return sum(
        n
        for (method, key), n in store.calls.items()
        if method == "get"
        and key.startswith(prefix)
        and "/labels" not in key
        and key.rpartition("/")[2] in DOCS
    )


async def test_start_up_reads_wells_only_and_listing_opens_nothing(
    store: InstrumentedStore,
) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        store.reset()
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            read = {key for (_, key) in store.calls}
            assert store.total_requests <= 2 * len(WELLS)  # the wells' documents, no field's
            assert {key.rpartition("/")[0] for key in read} == set(WELLS)
            store.reset()
            doc = await (await client.get("/api/datasets")).json()
            assert store.total_requests == 0
            assert [d["name"] for d in doc["datasets"]] == [
                f"p/{w}/{f}" for w in WELLS for f in FIELDS
            ]
            assert doc["plates"][0]["fields"] == [d["name"] for d in doc["datasets"]]
            assert not app[STATE].open_fields


async def test_a_tile_opens_exactly_its_field(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store, mode="r+") as plate:
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            store.reset()
            resp = await client.get("/api/datasets/p/B/1/1/tiles/0/0/0/0/0.png?window=0:255")
            assert resp.status == 200
            read = {key for (_, key) in store.calls}
            assert read and all(key.startswith("B/1/1/") for key in read), read
            assert list(app[STATE].open_fields) == ["p/B/1/1"]
            entry = app[STATE].open_fields["p/B/1/1"].entry
            assert entry is not None and entry.dataset.mode == "r"  # the server never writes
            store.reset()
            resp = await client.get("/api/datasets/p/B/1/1/region.npy?c=0&y=0:1&x=0:1")
            assert resp.status == 200 and docs_read(store) == 0  # kept open


async def test_zarr_passthrough_of_a_field_opens_nothing(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            store.reset()
            doc = ".zattrs" if plate.version == "0.4" else "zarr.json"
            resp = await client.get(f"/zarr/p%2FA%2F2%2F1/{doc}")  # the field's name, encoded
            assert resp.status == 200 and "multiscales" in await resp.text()
            assert (await client.get(f"/zarr/p/A/2/1/{doc}")).status == 200  # the plate's key
            assert {key for (_, key) in store.calls} == {f"A/2/1/{doc}"}
            assert not app[STATE].open_fields
            assert (await client.get("/zarr/p%2FA%2F2%2F7/zarr.json")).status == 404


async def test_concurrent_first_requests_open_the_field_once(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        async with await plate.image("A/2", field="1"):
            one_opening = docs_read(store, "A/2/1/")
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            store.reset()
            statuses: list[int] = []

            async def get(path: str) -> None:
                statuses.append((await client.get(f"/api/datasets/p/A/2/1{path}")).status)

            async with anyio.create_task_group() as tg:
                for i in range(12):
                    tg.start_soon(get, ["", "/tiles/0/0/0/0/0.png", "/region.npy?c=0"][i % 3])
            assert statuses == [200] * 12
            assert docs_read(store, "A/2/1/") == one_opening > 0


async def test_an_interrupted_opening_is_taken_over(store: InstrumentedStore) -> None:
    # anyio's wait_all_tasks_blocked polls every 0.1 s while a task has just been started (an
    # opening starts one for its first level's metadata): the reads must outlast two polls
    store.latency = 0.5
    async with ngio_async.open_plate_async(store) as plate:
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)):
            state = app[STATE]
            got: list[Any] = []

            async def first(scope: anyio.CancelScope) -> None:
                with scope:
                    async with state.lease("p/A/1/0"):
                        pytest.fail("the first opening was to be cancelled")

            async def second() -> None:
                async with state.lease("p/A/1/0") as entry:
                    got.append(entry)

            async with anyio.create_task_group() as tg:
                scope = anyio.CancelScope()
                tg.start_soon(first, scope)
                await anyio.wait_all_tasks_blocked()  # the first is reading (store latency)
                assert state.fields["p/A/1/0"].opening is not None
                tg.start_soon(second)
                await anyio.wait_all_tasks_blocked()  # the second waits for that opening
                scope.cancel()
            assert len(got) == 1 and not got[0].dataset.closed
            assert state.fields["p/A/1/0"].opening is None


async def test_eviction_closes_unused_fields_only(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        app = create_app({"p": plate}, max_open_fields=1)
        async with TestClient(TestServer(app)) as client:
            state = app[STATE]
            async with state.lease("p/A/1/0") as held:
                for name in ("p/A/1/1", "p/A/2/0"):
                    assert (await client.get(f"/api/datasets/{name}")).status == 200
                    assert not held.dataset.closed  # in use: never closed
                assert list(state.open_fields) == ["p/A/1/0"]
                describe = await client.get("/api/datasets/p/B/3/1")
                assert describe.status == 200
            assert list(state.open_fields) == ["p/A/1/0"]
            resp = await client.get("/api/datasets/p/B/3/1/region.npy?c=0&y=0:1&x=0:1")
            assert resp.status == 200
            assert np.load(io.BytesIO(await resp.read())).tolist() == [[31]]
            assert held.dataset.closed and list(state.open_fields) == ["p/B/3/1"]
            last = state.fields["p/B/3/1"].entry
            assert last is not None
        assert last.dataset.closed  # closed at shutdown
        assert not plate.closed


async def test_a_store_failure_is_retried_by_the_next_request(
    http_root: Path, http_server: StaticServer
) -> None:
    await write_plate(str(http_root / "plate.zarr"), "0.5")
    options: dict[str, Any] = {"limits": Limits(max_retries=0)}
    app = create_app({"p": f"{http_server.url}plate.zarr"}, **options)
    async with TestClient(TestServer(app)) as client:
        http_server.faults = Faults(status=503, status_times=-1)
        resp = await client.get("/api/datasets/p/A/2/0/tiles/0/0/0/0/0.png")
        assert resp.status == 502 and (await resp.json())["error"] == "store_error"
        doc = await (await client.get("/api/datasets")).json()
        assert doc["plates"][0]["unavailable"] == []  # a store failure says nothing of the field
        http_server.faults = Faults()
        resp = await client.get("/api/datasets/p/A/2/0/region.npy")
        assert resp.status == 200
        assert np.load(io.BytesIO(await resp.read())).tolist() == np.full((1, 16, 16), 10).tolist()


async def test_fields_of_unreadable_or_missing_wells_are_named_in_404s(tmp_path: Path) -> None:
    url = tmp_path / "plate.zarr"
    await write_plate(str(url), "0.5")
    (url / "B" / "1" / "zarr.json").write_text("[]")
    app = create_app({"p": str(url)})
    async with TestClient(TestServer(app)) as client:
        doc = await (await client.get("/api/datasets")).json()
        assert doc["plates"][0]["unavailable"] == ["B/1"]
        assert "p/B/1/0" not in [d["name"] for d in doc["datasets"]]
        resp = await client.get("/api/datasets/p/B/1/0/tiles/0/0/0/0/0.png")
        assert resp.status == 404
        assert "well 'B/1' of plate 'p' could not be read" in (await resp.json())["message"]
        resp = await client.get("/api/datasets/p/A/1/7")
        assert resp.status == 404
        assert "plate 'p' has no field 'A/1/7'" in (await resp.json())["message"]


async def test_a_broken_field_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = tmp_path / "plate.zarr"
    await write_plate(str(url), "0.5")
    (url / "A" / "2" / "1" / "zarr.json").write_text("{")
    caplog.set_level(logging.WARNING, "ngio_async.web")
    app = create_app({"p": str(url)})
    async with TestClient(TestServer(app)) as client:
        for _ in range(3):
            resp = await client.get("/api/datasets/p/A/2/1/tiles/0/0/0/0/0.png")
            assert resp.status == 502
    assert caplog.text.count("A/2/1 is not served") == 1


async def test_concurrent_describes_read_the_labels_once(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            store.reset()
            statuses: list[int] = []

            async def describe() -> None:
                statuses.append((await client.get("/api/datasets/p/B/1/0")).status)

            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(describe)
            assert statuses == [200] * 8
            labels = {key: n for (_, key), n in store.calls.items() if "/labels" in key}
            assert labels and set(labels.values()) == {1}, labels


async def test_a_well_the_store_failed_to_give_is_read_again(
    http_root: Path, http_server: StaticServer
) -> None:
    await write_plate(str(http_root / "plate.zarr"), "0.5")
    url = f"{http_server.url}plate.zarr"
    async with ngio_async.open_plate_async(url, limits=Limits(max_retries=0)) as plate:
        http_server.faults = Faults(status=503, status_times=1)  # one well's document
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            state = app[STATE]
            (failed,) = state.plates["p"].unavailable
            assert len(state.fields) == len(FIELDS) * (len(WELLS) - 1)
            # a field of that well: its document is read again
            resp = await client.get(f"/api/datasets/p/{failed}/1/region.npy")
            assert resp.status == 200
            assert state.plates["p"].unavailable == []
            doc = await (await client.get("/api/datasets")).json()
            names = [f"p/{w}/{f}" for w in WELLS for f in FIELDS]
            assert [d["name"] for d in doc["datasets"]] == names == doc["plates"][0]["fields"]


async def test_listing_reads_again_the_wells_the_store_failed_to_give(
    http_root: Path, http_server: StaticServer
) -> None:
    await write_plate(str(http_root / "plate.zarr"), "0.4")
    url = f"{http_server.url}plate.zarr"
    async with ngio_async.open_plate_async(url, limits=Limits(max_retries=0)) as plate:
        http_server.faults = Faults(status=503, status_times=2)
        app = create_app({"p": plate})
        async with TestClient(TestServer(app)) as client:
            failed = list(app[STATE].plates["p"].unavailable)
            assert len(failed) == 2
            http_server.reset()
            doc = await (await client.get("/api/datasets")).json()
            assert doc["plates"][0]["unavailable"] == []
            assert len(doc["datasets"]) == len(WELLS) * len(FIELDS)
            seen = {r.path.split("/")[2] + "/" + r.path.split("/")[3] for r in http_server.requests}
            assert seen == set(failed)  # those wells' documents, nothing else
            count = http_server.count()
            await client.get("/api/datasets")
            assert http_server.count() == count


async def test_a_large_listing_is_compressed_and_made_once(store: InstrumentedStore) -> None:
    async with ngio_async.open_plate_async(store) as plate:
        app = create_app({f"plate{i}": plate for i in range(5)})
        async with TestClient(TestServer(app)) as client:
            raw = await client.get("/api/datasets", headers={"Accept-Encoding": "identity"})
            body = await raw.read()
            assert len(body) > 4096 and "Content-Encoding" not in raw.headers
            resp = await client.get(
                "/api/datasets", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
            )
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Vary"] == "Accept-Encoding"
            assert gzip.decompress(await resp.read()) == body
            assert len(await resp.read()) < len(body) / 4
            listing = app[STATE].listing
            await client.get("/api/datasets")
            assert app[STATE].listing is listing  # not made again: nothing changed


def test_blocking_api_objects_are_refused_at_once(plate_url: str) -> None:
    with ngio_async.open_plate(plate_url) as plate, ngio_async.open(f"{plate_url}/A/1/0") as ds:
        for name, source in (("p", plate), ("img", ds)):
            with pytest.raises(TypeError, match=rf"'{name}': a \w+ of the blocking API"):
                create_app({name: source})  # type: ignore[dict-item]
