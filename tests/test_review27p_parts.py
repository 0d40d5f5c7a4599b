"""Review of big reads in parallel parts (``Limits.part_size``): wrong bytes, bounds, the
slow judgement. Loopback servers (the static server, moto, small aiohttp apps for faults);
each store wrapped with 50 ms of latency a request, so its connections come slow.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import re
from dataclasses import replace
from types import SimpleNamespace
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
from aiohttp import web
from images import Spec, write_image

import ngio_async
from ngio_async._limits import Limits
from ngio_async.stores import InstrumentedStore, _base, open_store
from ngio_async.stores._parts import PartPlan, get_in_parts, part_bounds

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from servers import S3Server, StaticServer

    from ngio_async.stores import Buffer

PART = 256 * 1024
SIZE = 4 * PART + 1000  # five parts
LIMITS = Limits(part_size=PART, backoff_base=0.001, max_retries=1)
LATENCY = 0.05
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def _write(root: Path, name: str, data: bytes) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(data)


def _http(url: str, limits: Limits = LIMITS, *, missing: bool = False) -> InstrumentedStore:
    inner = open_store(url, limits=limits, forbidden_is_missing=missing)
    return InstrumentedStore(inner, latency=LATENCY)


async def _slow(store: InstrumentedStore, key: str) -> None:
    """Three GETs of ``key`` whole: the store's connections found slow, its size noted."""
    for _ in range(3):
        await store.get_with_version(key)
    assert store._parts.slow


def _gets(server: StaticServer, name: str) -> int:
    return server.count("GET", f"/data/{name}")


# ------------------------------------------------------------------ sizes against the guess


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 3 * PART, 5 * PART + 1])
async def test_http_any_size_after_the_guess_reads_its_bytes(
    http_server: StaticServer, http_root: Path, size: int
) -> None:
    """Empty, smaller, at a part start +-1, bigger: the bytes of the object, as part_size=0."""
    blob = os.urandom(size)
    _write(http_root / "data", "lvl/c/0/0", os.urandom(SIZE))
    _write(http_root / "data", "lvl/c/0/1", blob)
    for limits in (LIMITS, replace(LIMITS, part_size=0)):
        async with _http(http_server.url + "data", limits) as store:
            if limits.part_size:
                await _slow(store, "lvl/c/0/0")
            got, version = await store.get_with_version("lvl/c/0/1")
            assert got is not None and bytes(got) == blob
            assert version == await store.version("lvl/c/0/1")
            assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


@pytest.mark.parametrize("size", [0, PART, 2 * part_bounds(SIZE, PART)[1][0], 6 * PART])
async def test_s3_any_size_after_the_guess_reads_its_bytes(s3_server: S3Server, size: int) -> None:
    blob = os.urandom(size)
    inner = open_store(s3_server.fresh_url(), limits=LIMITS, **s3_server.options())
    async with InstrumentedStore(inner, latency=LATENCY) as store:
        await store.put("img/0/c/0/0", os.urandom(SIZE))
        await store.put("img/0/c/0/1", blob)
        await _slow(store, "img/0/c/0/0")
        got, version = await store.get_with_version("img/0/c/0/1")
        assert got is not None and bytes(got) == blob
        assert version == await store.version("img/0/c/0/1")
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_missing_and_forbidden_after_the_guess(
    http_server: StaticServer, http_root: Path
) -> None:
    _write(http_root / "data", "lvl/c/0/0", os.urandom(SIZE))
    async with _http(http_server.url + "data", missing=True) as store:
        await _slow(store, "lvl/c/0/0")
        assert await store.get_with_version("lvl/c/0/9") == (None, None)
        http_server.faults.status, http_server.faults.status_times = 403, -1
        assert await store.get_with_version("lvl/c/0/0") == (None, None)
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


# ------------------------------------------------------------------ servers that misbehave


async def _serve(handler: Callable[[web.Request], object]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("GET", "/{path:.*}", handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def _ranged(data: bytes, request: web.Request, headers: dict[str, str]) -> web.Response:
    match = _RANGE.match(request.headers.get("Range", ""))
    if match is None:
        return web.Response(body=data, headers=headers)
    first = int(match[1])
    last = min(int(match[2]), len(data) - 1) if match[2] else len(data) - 1
    if first >= len(data):
        return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
    span = {"Content-Range": f"bytes {first}-{last}/{len(data)}", **headers}
    return web.Response(status=206, body=data[first : last + 1], headers=span)


@pytest.mark.parametrize("etag", [None, 'W/"weak"', "strong"])
async def test_rewritten_between_parts_is_no_mix(etag: str | None) -> None:
    """The object is rewritten while its parts are read (the first part answers the old
    version, the others the new one): never a mix. Strong ETags (one a version) tell it;
    a server without ETags (or with weak ones only) reads whole objects in one GET."""
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    parts = 0

    def tag(body: bytes) -> dict[str, str]:
        if etag == "strong":
            return {"ETag": '"old"' if body is old else '"new"'}
        return {} if etag is None else {"ETag": etag}

    async def handler(request: web.Request) -> web.Response:
        nonlocal parts
        if "Range" not in request.headers:
            body = new if parts else old
            return web.Response(body=body, headers=tag(body))
        parts += 1
        body = old if request.headers["Range"].startswith("bytes=0-") else new
        return _ranged(body, request, tag(body))

    async for url in _serve(handler):
        async with _http(url + "data") as store:
            for _ in range(3):
                await store.get_with_version("lvl/c/0/0")
            got, version = await store.get_with_version("lvl/c/0/1")
            assert got is not None and bytes(got) in (old, new)
            assert version == (None if etag != "strong" else '"new"')
            assert bool(parts) == (etag == "strong")
            assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


# ------------------------------------------------------------------ Limits


@pytest.mark.parametrize("value", [1, 4096, 65535])
def test_a_part_size_too_small_to_be_meant_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match=r"Limits\.part_size"):
        Limits(part_size=value)


def test_part_size_pickles_and_replaces() -> None:
    limits = Limits(part_size=8 << 20)
    assert pickle.loads(pickle.dumps(limits)) == limits
    assert replace(limits, part_size=0).part_size == 0
    assert Limits().part_size == 4 << 20
    with pytest.raises(ValueError, match=r"Limits\.part_size"):
        replace(limits, part_size=-1)


async def test_cancelled_mid_parts_leaves_nothing_in_flight(
    http_server: StaticServer, http_root: Path
) -> None:
    _write(http_root / "data", "lvl/c/0/0", os.urandom(SIZE))
    async with _http(http_server.url + "data") as store:
        await _slow(store, "lvl/c/0/0")
        for i in range(50):
            with anyio.move_on_after(0.001 + 0.0015 * (i % 40)):
                await store.get_with_version("lvl/c/0/0")
            assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0
        got, _ = await store.get_with_version("lvl/c/0/0")
        assert got is not None and len(got) == SIZE


async def test_parts_without_strong_etags_are_not_joined() -> None:
    """Parts whose answers carry no ETag cannot be told one version: read in one GET."""
    blob = os.urandom(SIZE)

    async def get(start: int, end: int | None) -> tuple[Buffer | None, str | None]:
        return memoryview(blob)[start:end], None

    assert await get_in_parts(get, part_bounds(SIZE, PART)) is None
    one = await get_in_parts(get, [(0, SIZE + 10)])  # (one part: one answer, one version)
    assert one is not None and one[0] is not None and bytes(one[0]) == blob


@pytest.mark.parametrize("fault", ["gzip_stored", "ignore_range", "no_validators"])
async def test_encoded_range_ignoring_or_etagless_servers_read_whole(
    http_server: StaticServer, http_root: Path, fault: str
) -> None:
    """Objects stored Content-Encoded (ranges of the encoded bytes), a server that answers
    a range with the whole object, one without ETags: the bytes; one GET each (a range
    ignored: once the parts found it so)."""
    data = {f"lvl/c/0/{i}": os.urandom(SIZE) for i in range(3)}
    for name, blob in data.items():
        _write(http_root / "data", name, blob)
    setattr(http_server.faults, fault, True)
    async with _http(http_server.url + "data") as store:
        for _ in range(3):
            got, _ = await store.get_with_version("lvl/c/0/0")
            assert got is not None and bytes(got) == data["lvl/c/0/0"]
        http_server.requests.clear()
        for name in ("lvl/c/0/1", "lvl/c/0/2"):
            got, version = await store.get_with_version(name)
            assert got is not None and bytes(got) == data[name]
            assert (version is None) == (fault != "ignore_range")
            if fault != "ignore_range" or name == "lvl/c/0/2":
                # (a range ignored: the first parts each got the whole object, then no parts)
                assert _gets(http_server, name) == 1


async def test_a_206_of_another_range_than_asked_never_gives_wrong_bytes() -> None:
    """A server answering each ranged GET with a 206 of the range one byte later (and an
    honest Content-Range): the read fails or gives the object, never shifted bytes."""
    blob = os.urandom(SIZE)

    async def handler(request: web.Request) -> web.Response:
        headers = {"ETag": '"one"'}
        match = _RANGE.match(request.headers.get("Range", ""))
        if match is None:
            return web.Response(body=blob, headers=headers)
        first = min(int(match[1]) + 1, SIZE - 1)
        last = min(int(match[2]) + 1, SIZE - 1) if match[2] else SIZE - 1
        span = {"Content-Range": f"bytes {first}-{last}/{SIZE}", **headers}
        return web.Response(status=206, body=blob[first : last + 1], headers=span)

    async for url in _serve(handler):
        async with _http(url + "data") as store:
            await _slow(store, "lvl/c/0/0")
            try:
                got, _ = await store.get_with_version("lvl/c/0/1")
            except Exception:  # noqa: BLE001 - failing is right too
                got = blob
            assert got is not None and bytes(got) == blob
            assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_parts_hold_limiter_tokens(http_server: StaticServer, http_root: Path) -> None:
    """max_requests=2: five parts, never more than two at the server at once."""
    blob = os.urandom(SIZE)
    _write(http_root / "data", "lvl/c/0/0", blob)
    async with _http(http_server.url + "data", replace(LIMITS, max_requests=2)) as store:
        await _slow(store, "lvl/c/0/0")
        http_server.reset()
        got, _ = await store.get_with_version("lvl/c/0/0")
        assert got is not None and bytes(got) == blob
        assert _gets(http_server, "lvl/c/0/0") == 5
        assert http_server.peak_in_flight <= 2 and store.peak_in_flight <= 2


async def test_waiting_for_a_token_is_no_slow_connection(
    http_server: StaticServer, http_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three whole GETs queued 100 s (a clock of the test's) behind another request's token
    (max_requests=1, a burst of reads) each took no time on the connection: the store is
    not judged slow, and its next reads are one GET each."""
    clock = [0.0]
    monkeypatch.setattr(_base, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    blob = os.urandom(SIZE)
    _write(http_root / "data", "lvl/c/0/0", blob)
    limits = replace(LIMITS, max_requests=1)
    async with open_store(http_server.url + "data", limits=limits) as store:

        async def hold() -> None:
            async with store.limiter:
                await anyio.sleep(0.3)  # the three GETs wait for the token meanwhile
                clock[0] += 100.0

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await anyio.sleep(0.05)
            for _ in range(3):
                tg.start_soon(store.get_with_version, "lvl/c/0/0")
        assert not store._parts.slow
        http_server.reset()
        got, _ = await store.get_with_version("lvl/c/0/0")
        assert got is not None and bytes(got) == blob
        assert _gets(http_server, "lvl/c/0/0") == 1


async def test_a_server_whose_ranged_answers_carry_no_etag_stops_parts() -> None:
    """ETags on whole answers only (206s without): the parts cannot be joined, so the
    object is read again in one GET, and the store reads whole objects from then on."""
    blob = os.urandom(SIZE)
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Range"))
        if "Range" not in request.headers:
            return web.Response(body=blob, headers={"ETag": '"one"'})
        return _ranged(blob, request, {})

    async for url in _serve(handler):
        async with _http(url + "data") as store:
            await _slow(store, "lvl/c/0/0")
            for _ in range(3):
                seen.clear()
                got, version = await store.get_with_version("lvl/c/0/1")
                assert got is not None and bytes(got) == blob and version == '"one"'
            assert seen == [None]  # (the first read: five parts, then one GET)


async def test_ranged_reads_waiting_for_a_token_are_no_slow_connection(
    http_server: StaticServer, http_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As whole GETs: three merged ranges of more than a part, queued 100 s (the test's
    clock) behind another request's token, do not make the store slow."""
    clock = [0.0]
    monkeypatch.setattr(_base, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    blob = os.urandom(SIZE)
    _write(http_root / "data", "lvl/c/0/0", blob)
    ranges = [(0, PART + 10), (PART + 100_000, 2 * PART + 100_010), (3 * PART, SIZE)]
    async with open_store(http_server.url + "data", limits=replace(LIMITS, max_requests=1)) as s:

        async def hold() -> None:
            async with s.limiter:
                await anyio.sleep(0.3)
                clock[0] += 100.0

        async def read() -> None:
            got = await s.get_ranges("lvl/c/0/0", ranges)
            assert got is not None and [bytes(g) for g in got] == [blob[a:b] for a, b in ranges]

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold)
            await anyio.sleep(0.05)
            tg.start_soon(read)
        assert not s._parts.slow
        assert s._parts._rates == []  # (each queued: none timed)


@pytest.mark.parametrize("compressor", [None, "zstd"])
async def test_an_image_streamed_in_parts_has_its_pixels(
    http_server: StaticServer, http_root: Path, compressor: str | None
) -> None:
    """Tiles of whole shards (~100-130 KiB, 64 KiB parts) of a slow HTTP store, streamed
    twice: the pixels; the second time the shards are read in parts."""
    spec = Spec(shape=(3, 512, 512), chunks=(1, 64, 64), shards=(1, 256, 256), levels=1,
                compressor=compressor)  # fmt: skip
    data = write_image(http_root / "img.zarr", spec)[0]
    inner = open_store(http_server.url + "img.zarr", limits=replace(LIMITS, part_size=64 << 10))
    async with InstrumentedStore(inner, latency=0.01) as store:
        async with ngio_async.open_async(store) as ds:
            for _ in range(2):
                http_server.reset()
                n = 0
                async for tile in ds.tiles(shape=(1, 256, 256)):
                    np.testing.assert_array_equal(tile.data, data[tile.region])
                    n += 1
                assert n == 12
        assert sum(1 for r in http_server.requests if "/0/c/" in r.path) > 12  # (in parts)
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_a_cloud_store_whose_parts_add_up_fast_stays_in_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connections of 70 MB/s and 1 ms (the test's clock: each answer takes that long, the
    parts side by side): one GET is slow; eight parts at once come at ~450 MB/s in all, but
    each connection is as slow as before, so the next objects go in parts too (it read the
    next three whole at 70 MB/s, then parts again)."""
    clock, epoch, busy = [0.0], [0.0], [0]
    monkeypatch.setattr(_base, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    blob = os.urandom(8 * PART)
    ranged = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal ranged
        if not busy[0]:
            epoch[0] = clock[0]
        busy[0] += 1
        try:
            await asyncio.sleep(0.02)  # (the parts all arrive meanwhile)
            answer = _ranged(blob, request, {"ETag": '"one"'})
            ranged += "Range" in request.headers
            assert isinstance(answer.body, bytes)
            clock[0] = max(clock[0], epoch[0] + 0.001 + len(answer.body) / 70e6)
            return answer
        finally:
            busy[0] -= 1

    async for url in _serve(handler):
        async with open_store(url + "data", limits=LIMITS) as store:
            for i in range(3):
                await store.get_with_version(f"lvl/c/0/{i}")
            assert store._parts.slow
            for i in range(3, 7):
                ranged = 0
                got, _ = await store.get_with_version(f"lvl/c/0/{i}")
                assert got is not None and bytes(got) == blob
                assert ranged == 8, i


def test_parts_judged_by_each_connection() -> None:
    """Given durations: loopback's 4 parts of a 14 MB object in 25 ms (140 MB/s a
    connection) turn parts off; a cloud store's 8 parts of a 33 MB one in 80 ms (~410 MB/s
    in all, ~50 a connection) keep them."""
    plan = PartPlan()
    for _ in range(3):
        plan.timed(33_000_000, 0.5, PART)
    assert plan.slow
    plan.timed_parts(33_000_000, 0.08, 8)
    assert plan.slow
    plan.timed_parts(14_000_000, 0.025, 4)
    assert not plan.slow
