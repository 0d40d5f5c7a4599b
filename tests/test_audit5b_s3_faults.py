"""Writes on S3 failing half way (a proxy in front of moto refusing every write from the n-th
on): what is left never has metadata pointing at missing data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
from aiohttp import web
from servers import FaultProxy, Faults, S3Server

import ngio_async
from ngio_async import Limits, NgioError
from ngio_async.engine.pyramid import downsample
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

FAST = Limits(max_retries=0, backoff_base=0.001, backoff_max=0.002, timeout=10)
_WRITES = frozenset({"PUT", "POST", "DELETE"})
Version = Literal["0.4", "0.5"]


@dataclass
class WriteCutProxy(FaultProxy):
    """Forwards to moto, but answers 500 to every write request from the ``allow + 1``-th on
    (``allow`` < 0: never; ``once``: to that one only)."""

    allow: int = -1
    writes: int = 0
    once: bool = False

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if request.method in _WRITES:
            self.writes += 1
            if 0 <= self.allow < self.writes and not (self.once and self.writes > self.allow + 1):
                return web.Response(status=500, text="injected")
        return await super()._answer(request, path, faults)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[WriteCutProxy]:
    server = WriteCutProxy(Path("."), target=s3_server.endpoint).start()
    assert isinstance(server, WriteCutProxy)
    try:
        yield server
    finally:
        server.stop()


def options(s3: S3Server, endpoint: str) -> dict[str, Any]:
    return {**s3.options(), "endpoint": endpoint, "limits": FAST}


async def documents(store: AsyncStore) -> dict[str, Any]:
    """Every zarr document under the store, by key."""
    out = {}
    for key in await store.list_prefix(""):
        if key.rsplit("/", 1)[-1] in ("zarr.json", ".zattrs", ".zarray", ".zgroup"):
            raw = await store.get(key)
            assert raw is not None
            out[key] = json.loads(bytes(raw))
    return out


async def check_no_dangling(store: AsyncStore) -> None:
    """Every level a group lists has its array metadata, every label listed its group, every
    well and field a plate / well lists its group."""
    docs = await documents(store)

    def attrs(prefix: str) -> dict[str, Any] | None:
        v3 = docs.get(f"{prefix}zarr.json")
        if v3 is not None:
            a = v3.get("attributes", {})
            return a.get("ome", a) if isinstance(a, dict) else None
        return docs.get(f"{prefix}.zattrs")

    def is_node(prefix: str) -> bool:
        return any(f"{prefix}{k}" in docs for k in ("zarr.json", ".zarray", ".zgroup"))

    for key in list(docs):
        prefix = key[: -len(key.rsplit("/", 1)[-1])]
        a = attrs(prefix)
        if not a:
            continue
        for ms in a.get("multiscales") or ():
            for d in ms["datasets"]:
                assert is_node(f"{prefix}{d['path']}/"), f"{prefix} lists missing {d['path']}"
        for name in a.get("labels") or ():
            assert is_node(f"{prefix}{name}/"), f"{prefix} lists missing label {name}"
        for w in (a.get("plate") or {}).get("wells") or ():
            assert is_node(f"{prefix}{w['path']}/"), f"{prefix} lists missing well {w['path']}"
        for im in (a.get("well") or {}).get("images") or ():
            assert attrs(f"{prefix}{im['path']}/"), f"{prefix} lists missing field {im['path']}"


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_build_pyramid_adding_levels_cut_off_lists_only_complete_levels(
    s3_server: S3Server, proxy: WriteCutProxy, version: Version
) -> None:
    """``build_pyramid(levels=4)`` on a one-level image, its writes refused from the n-th on:
    the image lists only levels whose pixels are all written (or fails to open no level)."""
    url = s3_server.fresh_url()
    data = np.random.default_rng(0).integers(0, 60000, (1, 48, 40), dtype=np.uint16)
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=1,
        ngff_version=version, **options(s3_server, s3_server.endpoint),
    ) as ds:  # fmt: skip
        await ds.write(data)
    expected = [data]
    for _ in range(3):
        expected.append(downsample(expected[-1], (1, 2, 2), "mean"))
    start = None
    for allow in range(200):
        proxy.allow, proxy.writes = allow, 0
        try:
            async with await ngio_async.open_async(
                url, mode="r+", **options(s3_server, proxy.url)
            ) as ds:
                await ds.build_pyramid(levels=4)
        except NgioError:
            pass
        else:
            start = allow
            break
        finally:
            proxy.allow = -1
        async with await ngio_async.open_async(url, **options(s3_server, s3_server.endpoint)) as ds:
            for i, lvl in enumerate(ds.levels):
                np.testing.assert_array_equal(await lvl[...], expected[i], err_msg=f"{allow=}")
            store = ds.store
            await check_no_dangling(store)
    assert start is not None and start > 3, start
    async with await ngio_async.open_async(url, **options(s3_server, s3_server.endpoint)) as ds:
        assert len(ds.levels) == 4


async def snapshot(store: AsyncStore) -> dict[str, bytes]:
    out = {}
    for key in await store.list_prefix(""):
        raw = await store.get(key)
        assert raw is not None
        out[key] = bytes(raw)
    return out


async def sweep(proxy: WriteCutProxy, action: Any, check: Any, most: int = 200) -> int:
    """Run ``action`` with writes refused from the n-th on, n = 0, 1, ..., checking what is
    left with ``check`` after each failure; the n it first succeeds with."""
    for allow in range(most):
        proxy.allow, proxy.writes = allow, 0
        try:
            await action()
        except NgioError as e:
            assert proxy.writes > allow, e  # failed at the refused write, not before
        else:
            return allow
        finally:
            proxy.allow = -1
        await check(allow)
    raise AssertionError("never succeeded")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_label_and_field_writes_cut_off_leave_nothing_dangling(
    s3_server: S3Server, proxy: WriteCutProxy, version: Version
) -> None:
    """``labels.create`` + ``write(pyramid=True)`` and ``plate.add_image``, cut off at every
    write: the listings (labels, well, plate) only name complete groups, and a retry works."""
    url = s3_server.fresh_url()
    direct = options(s3_server, s3_server.endpoint)
    cut = options(s3_server, proxy.url)
    mask = np.zeros((24, 20), "uint32")
    mask[3:9, 4:15] = 5
    async with ngio_async.create_async(
        url, shape=(1, 24, 20), dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=2,
        ngff_version=version, **direct,
    ) as ds:  # fmt: skip
        await ds.write(np.ones((1, 24, 20), "uint16"), pyramid=True)
    n = 0

    async def add_label() -> None:
        nonlocal n
        n += 1
        async with await ngio_async.open_async(url, mode="r+", **cut) as ds:
            lab = await ds.labels.create(f"l{n}", dtype="uint32", colors={5: [1, 2, 3, 255]})
            await lab.write(mask, pyramid=True)

    async def check(allow: int) -> None:
        store = open_store(url, **direct)
        async with store:
            await check_no_dangling(store)
        async with await ngio_async.open_async(url, **direct) as ds:
            for name in await ds.labels.names():
                lab = await ds.labels.open(name)
                assert len(lab.levels) == 2, (allow, name)

    assert await sweep(proxy, add_label, check) > 3
    plate_url = s3_server.fresh_url()
    async with ngio_async.create_plate_async(
        plate_url, rows=["A"], columns=["1", "2"], ngff_version=version, **direct
    ):
        pass
    fields = 0

    async def add_field() -> None:  # a new field each time: the failed ones may be left
        nonlocal fields
        fields += 1
        async with await ngio_async.open_plate_async(plate_url, mode="r+", **cut) as plate:
            fov = await plate.add_image("A", "2", field=str(fields), shape=(8, 8), dtype="uint8")
            await fov.aclose()

    async def check_plate(allow: int) -> None:
        store = open_store(plate_url, **direct)
        async with store:
            await check_no_dangling(store)

    assert await sweep(proxy, add_field, check_plate) > 2
    async with await ngio_async.open_plate_async(plate_url, **direct) as plate:
        # a field whose listing failed with its cleanup refused too may stay (it is complete)
        assert ("A/2", str(fields)) in await plate.image_paths()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_create_refusing_an_existing_image_changes_nothing(
    s3_server: S3Server, proxy: WriteCutProxy, version: Version
) -> None:
    """``overwrite=False`` over an image, a label and a plate field: refused, no write sent,
    every stored byte as it was."""
    url = s3_server.fresh_url()
    direct = options(s3_server, s3_server.endpoint)
    async with ngio_async.create_async(
        url, shape=(16, 16), dtype="uint8", ngff_version=version, **direct
    ) as ds:
        await ds.write(np.full((16, 16), 3, "uint8"), pyramid=True)
        await ds.labels.create("cells", dtype="uint8")
    store = open_store(url, **direct)
    async with store:
        before = await snapshot(store)
    proxy.writes = 0
    cut = options(s3_server, proxy.url)
    with pytest.raises(ngio_async.ExistsError):
        await ngio_async.create_async(
            url, shape=(4, 4), dtype="uint16", ngff_version=version, **cut
        )
    with pytest.raises(ngio_async.ExistsError):
        async with await ngio_async.open_async(url, mode="r+", **cut) as ds:
            await ds.labels.create("cells", dtype="uint16")
    with pytest.raises(ngio_async.ExistsError):
        await ngio_async.create_async(
            f"{url}/labels/cells", shape=(4, 4), dtype="uint16", ngff_version=version, **cut
        )
    assert proxy.writes == 0
    store = open_store(url, **direct)
    async with store:
        assert await snapshot(store) == before


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_add_image_failing_once_is_undone_and_retried_under_its_name(
    s3_server: S3Server, proxy: WriteCutProxy, version: Version
) -> None:
    """One write of ``add_image`` refused (the rest answered): the field is removed again (or
    complete and listed), and the same call, retried, makes the plate list it once."""
    direct = options(s3_server, s3_server.endpoint)
    cut = options(s3_server, proxy.url)
    proxy.once = True
    for allow in range(40):
        plate_url = s3_server.fresh_url()
        async with ngio_async.create_plate_async(
            plate_url, rows=["A"], columns=["1", "2"], ngff_version=version, **direct
        ) as plate:
            await (await plate.add_image("A", "1", shape=(8, 8), dtype="uint8")).aclose()
        proxy.allow, proxy.writes = allow, 0
        try:
            async with await ngio_async.open_plate_async(plate_url, mode="r+", **cut) as plate:
                fov = await plate.add_image("A", "2", shape=(8, 8), dtype="uint8")
                await fov.aclose()
        except NgioError:
            failed = True
        else:
            failed = False
        finally:
            proxy.allow = -1
        store = open_store(plate_url, **direct)
        async with store:
            await check_no_dangling(store)
        async with await ngio_async.open_plate_async(plate_url, mode="r+", **cut) as plate:
            if failed:
                fov = await plate.add_image("A", "2", shape=(8, 8), dtype="uint8")
                await fov.aclose()
            assert await plate.image_paths() == [("A/1", "0"), ("A/2", "0")], allow
        if not failed:
            assert allow > 3
            break


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_overwrite_cut_off_leaves_nothing_dangling_and_a_retry_replaces(
    s3_server: S3Server, proxy: WriteCutProxy, version: Version
) -> None:
    """``create(overwrite=True)`` over an image with a label, its writes refused from the n-th
    on: what is left opens as a whole image or not at all, and ``overwrite=True`` again
    (answered) makes the new image."""
    direct = options(s3_server, s3_server.endpoint)
    cut = options(s3_server, proxy.url)
    url = s3_server.fresh_url()
    spec: dict[str, Any] = {"dtype": "uint8", "axes": "yx", "ngff_version": version}
    async with ngio_async.create_async(url, shape=(24, 24), levels=2, **spec, **direct) as ds:
        await ds.write(np.full((24, 24), 1, "uint8"), pyramid=True)
        await ds.labels.create("cells", dtype="uint8")

    async def replace() -> None:
        async with ngio_async.create_async(
            url, shape=(16, 40), levels=3, overwrite=True, **spec, **cut
        ) as ds:
            await ds.write(np.full((16, 40), 2, "uint8"))

    async def check(allow: int) -> None:
        store = open_store(url, **direct)
        async with store:
            await check_no_dangling(store)
        try:
            ds = await ngio_async.open_async(url, **direct)
        except NgioError:
            return
        async with ds:
            assert ds.shape in ((24, 24), (16, 40)), allow
            for lvl in ds.levels:
                await lvl[...]

    assert await sweep(proxy, replace, check) > 2
    async with await ngio_async.open_async(url, **direct) as ds:
        assert ds.shape == (16, 40)
        assert (await ds[...] == 2).all()
        assert await ds.labels.names() == []


async def test_tile_writer_cut_off_raises_and_a_rewrite_gives_the_full_pyramid(
    s3_server: S3Server, proxy: WriteCutProxy
) -> None:
    """``writer(pyramid=True)`` whose writes are refused from the n-th on: leaving the block
    raises the store's error (no hang, no partial success reported); writing everything again
    (answered) gives the pyramid a full rebuild gives."""
    url = s3_server.fresh_url()
    data = np.random.default_rng(1).integers(0, 9, (40, 36), dtype=np.uint8)
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint8", chunks=(8, 8), shards=(16, 16), levels=3,
        **options(s3_server, s3_server.endpoint),
    ):  # fmt: skip
        pass
    tiles = [(slice(y, y + 8), slice(x, x + 12)) for y in range(0, 40, 8) for x in range(0, 36, 12)]

    async def write_all(ds: ngio_async.Dataset) -> None:
        async with ds.writer(pyramid=True, max_pending=4) as w:
            for region in tiles:
                await w.write((region, data[region]))

    for allow in (0, 3, 9):
        proxy.allow, proxy.writes = allow, 0
        try:
            async with await ngio_async.open_async(
                url, mode="r+", **options(s3_server, proxy.url)
            ) as ds:
                with pytest.raises(NgioError, match="500"):
                    await write_all(ds)
        finally:
            proxy.allow = -1
    async with await ngio_async.open_async(
        url, mode="r+", **options(s3_server, s3_server.endpoint)
    ) as ds:
        await write_all(ds)
        expected = [data]
        for _ in range(2):
            expected.append(downsample(expected[-1], (2, 2), "mean"))
        for lvl, want in zip(ds.levels, expected, strict=True):
            np.testing.assert_array_equal(await lvl[...], want)
