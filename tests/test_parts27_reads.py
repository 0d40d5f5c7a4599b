"""Big remote reads in parallel parts (``Limits.part_size``): counted on loopback servers.

The stores are wrapped in ``InstrumentedStore`` with 50 ms of latency a request, so a GET of
1 MiB comes at ~20 MB/s, a slow connection (as a cloud store's); the counts and byte ranges
are what the servers and the wrapper saw.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import pytest

from ngio_async import ChangedError, StoreError
from ngio_async._limits import Limits
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.stores._parts import PartPlan, array_of, get_in_parts, part_bounds

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

    from ngio_async.stores import Buffer

PART = 256 * 1024
SIZE = 4 * PART + 1000  # five parts
LIMITS = Limits(part_size=PART, backoff_base=0.001, max_retries=1)
LATENCY = 0.05
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


def _objects(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    made = {}
    for name, size in sizes.items():
        made[name] = os.urandom(size)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(made[name])
    return made


def _http(server: StaticServer, limits: Limits = LIMITS) -> InstrumentedStore:
    return InstrumentedStore(open_store(server.url + "data", limits=limits), latency=LATENCY)


async def _slow(store: InstrumentedStore, key: str) -> None:
    """Three GETs of ``key`` whole: the store's connections found slow, its size noted."""
    for _ in range(3):
        await store.get_with_version(key)


def _spans(server: StaticServer, name: str, size: int) -> list[tuple[int, int]]:
    """The byte ranges the server was asked for of ``data/name`` (whole: ``(0, size)``)."""
    spans = []
    for seen in server.requests:
        if seen.method == "GET" and seen.path == f"/data/{name}":
            match = _RANGE.match(seen.range or "bytes=0-")
            assert match is not None, seen.range
            end = int(match[2]) + 1 if match[2] else size
            spans.append((int(match[1]), min(end, size)))
    return sorted(spans)


async def test_whole_object_read_in_parts_all_in_flight(
    http_server: StaticServer, http_root: Path
) -> None:
    data = _objects(http_root / "data", {"lvl/c/0/0": SIZE, "lvl/c/0/1": SIZE})
    async with _http(http_server) as store:
        for _ in range(3):  # one GET each: slow, 3 times; the size noted
            first, _ = await store.get_with_version("lvl/c/0/0")
            assert first is not None and bytes(first) == data["lvl/c/0/0"]
        assert store.calls[("get", "lvl/c/0/0")] == 3
        store.reset()
        http_server.reset()
        got, version = await store.get_with_version("lvl/c/0/1")
        assert got is not None and bytes(got) == data["lvl/c/0/1"]
        assert version is not None and version == await store.version("lvl/c/0/1")
        assert store.calls[("get", "lvl/c/0/1")] == 5
        assert store.peak_in_flight == 5  # all parts at once
        spans = _spans(http_server, "lvl/c/0/1", SIZE)
        assert spans == part_bounds(SIZE, PART)
        assert all(end - start <= PART for start, end in spans)
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_s3_whole_object_read_in_parts(s3_server: S3Server) -> None:
    blobs = {f"img/0/c/0/{i}": os.urandom(SIZE) for i in range(2)}
    inner = open_store(s3_server.fresh_url(), limits=LIMITS, **s3_server.options())
    async with InstrumentedStore(inner, latency=LATENCY) as store:
        for key, blob in blobs.items():
            await store.put(key, blob)
        for key, blob in [*[next(iter(blobs.items()))] * 3, *blobs.items()]:
            store.reset()
            got, version = await store.get_with_version(key)
            assert got is not None and bytes(got) == blob
            assert version is not None and version == await store.version(key)
        assert store.calls[("get", "img/0/c/0/1")] == 5
        assert store.peak_in_flight == 5


@pytest.mark.parametrize("size", [SIZE // 3, SIZE + 3 * PART, 2 * part_bounds(SIZE, PART)[1][0]])
async def test_an_object_of_another_size_than_its_neighbour_reads_whole(
    http_server: StaticServer, http_root: Path, size: int
) -> None:
    """Smaller (parts past its end: their 416s ignored), bigger (the last part reads on) or
    ending exactly where a part starts (read again in one GET): its bytes all the same."""
    data = _objects(http_root / "data", {"lvl/c/0/0": SIZE, "lvl/c/1/0": size})
    async with _http(http_server) as store:
        await _slow(store, "lvl/c/0/0")
        got, version = await store.get_with_version("lvl/c/1/0")
        assert got is not None and bytes(got) == data["lvl/c/1/0"]
        assert version == await store.version("lvl/c/1/0")
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_ranges_merged_into_parts_all_in_flight_and_if_match(
    http_server: StaticServer, http_root: Path
) -> None:
    data = _objects(http_root / "data", {"lvl/c/0/0": SIZE, "lvl/c/0/1": SIZE})
    blob = data["lvl/c/0/1"]
    ranges = [(i, i + 4000) for i in range(0, SIZE - 4000, 4096)]  # 4 KiB apart: one merge
    async with _http(http_server) as store:
        await _slow(store, "lvl/c/0/0")  # merged ranges are cut at PART
        _, version = await store.get_with_version("lvl/c/0/1", None)
        store.reset()
        http_server.reset()
        got = await store.get_ranges("lvl/c/0/1", ranges, if_match=version)
        assert got is not None
        assert [bytes(b) for b in got] == [blob[a:b] for a, b in ranges]
        spans = _spans(http_server, "lvl/c/0/1", SIZE)
        assert len(spans) == store.calls[("get", "lvl/c/0/1")] == 4  # 64 ranges a part
        assert all(end - start <= PART for start, end in spans)
        assert store.peak_in_flight == 4
        (http_root / "data" / "lvl/c/0/1").write_bytes(os.urandom(SIZE + 1))
        with pytest.raises(ChangedError):
            await store.get_ranges("lvl/c/0/1", ranges, if_match=version)
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0


async def test_a_failing_part_fails_the_read_with_nothing_left_in_flight(
    http_server: StaticServer, http_root: Path
) -> None:
    _objects(http_root / "data", {"lvl/c/0/0": SIZE, "lvl/c/0/1": SIZE})
    gets = 0

    def third_and_later(method: str, key: str) -> BaseException | None:
        nonlocal gets
        gets += method == "get"
        return PermissionError("denied here") if gets >= 3 else None

    async with _http(http_server) as store:
        await _slow(store, "lvl/c/0/0")
        store.reset()
        store.fail = third_and_later
        with pytest.raises(StoreError, match="denied here"):
            await store.get_with_version("lvl/c/0/1")
        assert store.in_flight == 0 and store.limiter.borrowed_tokens == 0
        assert store.calls[("get", "lvl/c/0/1")] <= 5 + LIMITS.max_retries + 1


async def test_part_size_zero_and_local_files_read_in_one_get(
    http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    data = _objects(http_root / "data", {"lvl/c/0/0": SIZE, "lvl/c/0/1": SIZE})
    ranges = [(i, i + 4000) for i in range(0, SIZE - 4000, 4096)]
    async with _http(http_server, Limits(part_size=0)) as store:
        for key, blob in data.items():
            got, _ = await store.get_with_version(key)
            assert got is not None and bytes(got) == blob
            assert store.calls[("get", key)] == 1
        assert await store.get_ranges("lvl/c/0/1", ranges) is not None
        assert store.calls[("get", "lvl/c/0/1")] == 2  # one merged range, not cut
    local = _objects(tmp_path / "local", {"lvl/c/0/0": SIZE, "lvl/c/0/1": SIZE})
    inner = open_store(str(tmp_path / "local"), limits=LIMITS)
    async with InstrumentedStore(inner, latency=LATENCY) as store:
        for key, blob in local.items():
            got, _ = await store.get_with_version(key)
            assert got is not None and bytes(got) == blob
            assert store.calls[("get", key)] == 1
        got_ranges = await store.get_ranges("lvl/c/0/1", ranges)
        assert got_ranges is not None and bytes(got_ranges[1]) == local["lvl/c/0/1"][4096:8096]
        assert store.calls[("get", "lvl/c/0/1")] == 2


async def test_parts_of_two_versions_are_read_again_in_one_get() -> None:
    """A rewrite between the parts (injected: the third part answers from the new version)
    is no mix of both: the caller reads the object again in one GET."""
    old, new = os.urandom(SIZE), os.urandom(SIZE)
    asked: list[tuple[int, int | None]] = []

    async def get(start: int, end: int | None) -> tuple[Buffer | None, str | None]:
        asked.append((start, end))
        body, tag = (new, '"new"') if start >= part_bounds(SIZE, PART)[2][0] else (old, '"old"')
        return memoryview(body)[start:end], tag

    assert await get_in_parts(get, part_bounds(SIZE, PART)) is None
    assert len(asked) == 5 and asked[-1][1] is None  # the last part: to the end
    one = await get_in_parts(get, part_bounds(SIZE, PART)[:2])  # (parts of one version)
    assert one is not None and one[0] is not None and bytes(one[0]) == old and one[1] == '"old"'


def test_part_bounds_and_arrays() -> None:
    assert part_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert part_bounds(14 << 20, 4 << 20) == [
        (i * (7 << 19), (i + 1) * (7 << 19)) for i in range(4)
    ]
    assert part_bounds(3, 4) == [(0, 3)]
    assert array_of("img.zarr/0/c/1/2/3") == "img.zarr/0"
    assert array_of("img.zarr/0/1.2") == "img.zarr/0"


@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_limits_part_size_is_validated(value: object) -> None:
    with pytest.raises(ValueError, match=r"Limits\.part_size must be a non-negative integer"):
        Limits(part_size=value)  # type: ignore[arg-type]


def test_a_store_is_judged_slow_by_its_last_three_big_gets() -> None:
    """Given durations (no clock): 14 MB in 200 ms is a cloud connection's 70 MB/s; one of
    the last three at loopback speed (a busy machine's slow ones around it) keeps one GET."""
    plan = PartPlan()
    for _ in range(2):
        plan.timed(14_000_000, 0.2, PART)
        assert not plan.slow
    plan.timed(1000, 10.0, PART)  # (no more than a part: not judged)
    assert not plan.slow
    plan.timed(14_000_000, 0.2, PART)
    assert plan.slow
    plan.timed(14_000_000, 0.03, PART)  # 470 MB/s
    assert not plan.slow
    for _ in range(3):
        plan.timed(14_000_000, 0.2, PART)
    assert plan.slow
    plan.timed_parts(14_000_000, 0.07)  # in parts at 200 MB/s: still slow
    assert plan.slow
    plan.timed_parts(14_000_000, 0.03)  # in parts at loopback speed: judged anew
    assert not plan.slow
