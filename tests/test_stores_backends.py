"""Every backend through the same ``AsyncStore`` API: file (obstore's and the plain-Python
fallback), memory, S3 (moto), HTTP (aiohttp and obstore's HTTPStore)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from ngio_async import NotFoundError, StoreError, UnsupportedError
from ngio_async._errors import ClosedError
from ngio_async._limits import Limits
from ngio_async.stores import (
    AsyncStore,
    InstrumentedStore,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)
from ngio_async.stores._local import LocalFileStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from servers import S3Server, StaticServer

BLOB = bytes(range(256)) * 4  # 1024 bytes, as served by the http_root fixture
SMALL = b"hello world"
BACKENDS = ["file", "file-plain", "memory", "s3", "http", "http-obstore"]
WRITABLE = ["file", "file-plain", "memory", "s3"]


async def _make_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, limits: Limits
) -> AsyncStore:
    """A store of ``kind`` holding ``data/blob.bin`` and ``data/small.txt``."""
    if kind in ("file", "file-plain"):
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "blob.bin").write_bytes(BLOB)
        (tmp_path / "data" / "small.txt").write_bytes(SMALL)
        (tmp_path / "data" / "empty.bin").write_bytes(b"")
        if kind == "file-plain":  # what open_store gives in a child forked after obstore ran
            return LocalFileStore(str(tmp_path), limits=limits)
        return open_store(tmp_path, limits=limits)
    if kind in ("http", "http-obstore"):
        server: StaticServer = request.getfixturevalue("http_server")
        if kind == "http-obstore":
            return open_store(server.url, limits=limits, backend="obstore")
        return open_store(server.url, limits=limits)
    if kind == "memory":
        store = open_store("memory://", limits=limits)
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        store = open_store(s3.fresh_url(), limits=limits, **s3.options())
    await store.put("data/blob.bin", BLOB)
    await store.put("data/small.txt", SMALL)
    await store.put("data/empty.bin", b"")
    return store


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await _make_store(request.param, request, tmp_path, Limits()) as s:
        yield s


@pytest.fixture(params=WRITABLE)
async def wstore(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with await _make_store(request.param, request, tmp_path, Limits()) as s:
        yield s


async def test_get_whole_object(store: AsyncStore) -> None:
    buf = await store.get("data/blob.bin")
    assert buf is not None
    assert bytes(buf) == BLOB
    assert bytes(await store.get("data/small.txt") or b"?") == SMALL


async def test_whole_get_of_an_empty_object(store: AsyncStore) -> None:
    # obstore stores ask for a whole object as one bounded range; an empty object has no
    # byte 0 (S3: 416, nginx-like servers: 200, local and memory: "invalid range"), so it is
    # asked for again plainly, and later whole GETs still take the one-request path
    for key, expected in [("data/empty.bin", b""), ("data/blob.bin", BLOB)] * 2:
        buf = await store.get(key)
        assert buf is not None
        assert bytes(buf) == expected
    assert getattr(store, "whole_as_range", True)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (RangeByteRequest(10, 20), BLOB[10:20]),
        (RangeByteRequest(1000, 5000), BLOB[1000:]),  # clamped at the end of the object
        (OffsetByteRequest(1000), BLOB[1000:]),
        (SuffixByteRequest(7), BLOB[-7:]),
        (SuffixByteRequest(5000), BLOB),
        (RangeByteRequest(3, 3), b""),
    ],
)
async def test_get_byte_ranges(
    store: AsyncStore,
    request_: RangeByteRequest | OffsetByteRequest | SuffixByteRequest,
    expected: bytes,
) -> None:
    buf = await store.get("data/blob.bin", request_)
    assert buf is not None
    assert bytes(buf) == expected


async def test_suffix_of_an_empty_object_is_empty(store: AsyncStore) -> None:
    """A suffix is "the last n bytes, all of it if it is shorter": none of an empty object,
    on every backend (S3 and HTTP servers answer 416, which was a StoreError there)."""
    for _ in range(2):  # the default HTTP store: aiohttp's answer, then obstore's client's
        buf = await store.get("data/empty.bin", SuffixByteRequest(4))
        assert buf is not None
        assert bytes(buf) == b""
    assert await store.get("data/missing.bin", SuffixByteRequest(4)) is None


async def test_range_starting_past_the_end_is_a_store_error(store: AsyncStore) -> None:
    with pytest.raises(StoreError, match=r"data/blob\.bin"):
        await store.get("data/blob.bin", RangeByteRequest(2000, 2010))


@pytest.mark.parametrize("ranges", [[(2000, 2010)], [(0, 4), (1030, 1040)], [(1024, 1030)]])
async def test_get_ranges_past_the_end_is_a_store_error_coalesced_or_not(
    store: AsyncStore, ranges: list[tuple[int, int]]
) -> None:
    """As ``get``: a range starting at or past the end of the object (a truncated file) is an
    error, also when it is merged with one before it (it was an empty buffer then)."""
    with pytest.raises(StoreError, match=r"data/blob\.bin"):
        await store.get_ranges("data/blob.bin", ranges)
    clamped = await store.get_ranges("data/blob.bin", [(0, 4), (1020, 1030)])
    assert [bytes(b) for b in clamped or []] == [BLOB[:4], BLOB[1020:]]  # clamped, as get


async def test_missing_key_is_none(store: AsyncStore) -> None:
    assert await store.get("data/missing.bin") is None
    assert await store.get("data/missing.bin", RangeByteRequest(0, 4)) is None
    assert await store.get("data/missing.bin", SuffixByteRequest(4)) is None
    assert await store.get_ranges("data/missing.bin", [(0, 1), (5000, 5001)]) is None


async def test_exists(store: AsyncStore) -> None:
    assert await store.exists("data/blob.bin")
    assert not await store.exists("data/missing.bin")
    assert not await store.exists("data")  # a "directory" is not an object


async def test_get_ranges_returns_views_in_order(store: AsyncStore) -> None:
    ranges = [(500, 510), (0, 4), (4, 8), (1020, 1024), (7, 7)]
    bufs = await store.get_ranges("data/blob.bin", ranges)
    assert bufs is not None
    assert [bytes(b) for b in bufs] == [BLOB[s:e] for s, e in ranges]
    assert all(isinstance(b, memoryview) for b in bufs)


async def test_list_prefix_or_unsupported(store: AsyncStore) -> None:
    if not store.supports_listing:
        with pytest.raises(UnsupportedError, match="does not support listing"):
            await store.list_prefix("data")
        return
    assert await store.list_prefix("data") == ["data/blob.bin", "data/empty.bin", "data/small.txt"]
    assert await store.list_prefix("") == ["data/blob.bin", "data/empty.bin", "data/small.txt"]
    assert await store.list_prefix("data/") == ["data/blob.bin", "data/empty.bin", "data/small.txt"]
    assert await store.list_prefix("nothing/here") == []


async def test_stored_bytes_or_unsupported(store: AsyncStore) -> None:
    if not store.supports_listing:
        with pytest.raises(UnsupportedError, match="does not support listing"):
            await store.stored_bytes("data")
        return
    assert await store.stored_bytes("data") == len(BLOB) + len(SMALL)
    assert await store.stored_bytes("") == len(BLOB) + len(SMALL)
    assert await store.stored_bytes("nothing/here") == 0


async def test_stored_bytes_is_one_listing(tmp_path: Path) -> None:
    store = InstrumentedStore(LocalFileStore(str(tmp_path)))
    async with store:
        for i in range(5):
            await store.put(f"a/{i}", b"x" * i)
        store.reset()
        assert await store.stored_bytes("a") == 10
    assert store.method_counts == {"list": 1}


async def test_read_only_stores_refuse_writes_naming_the_url(store: AsyncStore) -> None:
    if store.supports_writes:
        return
    with pytest.raises(UnsupportedError, match="read-only") as info:
        await store.put("x.bin", b"1")
    assert store.url in str(info.value)
    with pytest.raises(UnsupportedError):
        await store.put_if_absent("x.bin", b"1")
    with pytest.raises(UnsupportedError):
        await store.delete("data/blob.bin")


async def test_put_overwrite_put_if_absent_delete(wstore: AsyncStore) -> None:
    await wstore.put("w/a.bin", b"first")
    await wstore.put("w/a.bin", memoryview(b"second"))
    assert bytes(await wstore.get("w/a.bin") or b"") == b"second"
    assert await wstore.put_if_absent("w/a.bin", b"third") is False
    assert bytes(await wstore.get("w/a.bin") or b"") == b"second"
    assert await wstore.put_if_absent("w/b.bin", b"new") is True
    assert bytes(await wstore.get("w/b.bin") or b"") == b"new"
    assert await wstore.list_prefix("w") == ["w/a.bin", "w/b.bin"]
    await wstore.delete("w/a.bin")
    await wstore.delete("w/a.bin")  # deleting a missing key is fine
    assert await wstore.get("w/a.bin") is None
    assert not await wstore.exists("w/a.bin")


async def test_put_writes_the_bytes_of_any_memoryview(wstore: AsyncStore) -> None:
    """A typed, multi-dimensional or strided memoryview (of a numpy array) writes its bytes
    (was: TypeError 'a bytes-like object is required, not int' or BufferError on obstore)."""
    array = np.arange(12, dtype="<u2").reshape(3, 4)
    for view in (array.data, array.data[::2], array.T.data):  # memoryviews of the array
        await wstore.put("m/a.bin", view)
        assert bytes(await wstore.get("m/a.bin") or b"") == view.tobytes()
    assert await wstore.put_if_absent("m/b.bin", array.data) is True
    assert bytes(await wstore.get("m/b.bin") or b"") == array.tobytes()


async def test_version_of_an_object(store: AsyncStore) -> None:
    """Every backend tells an object's version (ETag, else mtime and size); None when absent."""
    version = await store.version("data/blob.bin")
    assert isinstance(version, str) and version
    assert await store.version("data/blob.bin") == version
    assert await store.version("data/small.txt") != version
    assert await store.version("data/missing.bin") is None


async def test_version_changes_when_rewritten(wstore: AsyncStore) -> None:
    await wstore.put("v/a.bin", b"first")
    first = await wstore.version("v/a.bin")
    await wstore.put("v/a.bin", b"other")  # same length
    second = await wstore.version("v/a.bin")
    assert first and second and first != second
    await wstore.delete("v/a.bin")
    assert await wstore.version("v/a.bin") is None


async def test_invalid_keys_are_rejected(store: AsyncStore) -> None:
    with pytest.raises(ValueError, match="key"):
        await store.get("/abs/key")
    with pytest.raises(ValueError, match="key"):
        await store.exists("a/../b")


async def test_closed_store_raises_closed_error(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    async with store:
        assert not store.closed
    assert store.closed
    await store.aclose()  # idempotent
    with pytest.raises(ClosedError, match="closed"):
        await store.get("x")
    with pytest.raises(ClosedError):
        async with store:
            pass


async def test_missing_local_directory_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such directory"):
        open_store(tmp_path / "nope")
    store = open_store(tmp_path / "made", mkdir=True)
    async with store:
        await store.put("k", b"v")
    assert (tmp_path / "made" / "k").read_bytes() == b"v"


def test_missing_cloud_credentials_are_named_as_such() -> None:
    """With no credentials, obstore asks the cloud's instance metadata (169.254.169.254) and
    fails with that address's answer; the error says credentials are missing and how to give
    them (the message obstore raises is injected: no real server here can produce it)."""
    from obstore import exceptions as obs_exc

    from ngio_async import PermissionDeniedError
    from ngio_async.stores._obstore import ObstoreStore

    store = open_store("memory://")
    assert isinstance(store, ObstoreStore)
    fetch = "Generic S3 error: PUT http://169.254.169.254/latest/api/token: status 403"
    with pytest.raises(PermissionDeniedError, match=r"no credentials .*anonymous=True"):  # noqa: SIM117
        with store._map_exceptions("a/zarr.json"):
            raise obs_exc.GenericError(fetch)


def test_obstore_settles_at_exit_only_when_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exit hook waits for obstore's runtime threads only in a process that used obstore
    (and still has its runtime): an abort at exit otherwise hit 5 of 40 runs of a short script."""
    import time

    from ngio_async.stores import _obstore_runtime as _obstore

    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    for used, lost, expected in ((False, False, []), (True, True, []), (True, False, [0.05])):
        monkeypatch.setattr(_obstore, "_used", used)
        monkeypatch.setattr(_obstore, "_lost", lost)
        slept.clear()
        _obstore._let_obstore_settle()
        assert slept == expected
