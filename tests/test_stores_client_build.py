"""obstore's clients (7-20 ms to build: they load the TLS roots) are built in a worker thread,
never on the event loop: at the first request of an S3/GCS/Azure/HTTP ``ObstoreStore`` (one
build shared by the requests that come meanwhile), and for the default HTTP store while
aiohttp's first GET runs. Opening still checks the settings at once."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import pytest
from images import Spec, upload, write_image
from obstore.store import HTTPStore, S3Store
from test_obstore_close import _closes_to_zero, _connected

import ngio_async
from ngio_async import ClosedError, StoreError
from ngio_async.stores import HTTPStore as NgioHTTPStore, ObstoreStore, open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from servers import S3Server, StaticServer

SMALL = Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1)
_PROBE = "ngio_async_probe"  # the key the settings check adds (it is refused: no client built)


class Held:
    """A spy on a client constructor whose calls can be held: ``hold``, they wait for
    :meth:`release` (after setting :attr:`started`); ``fail``, they raise it."""

    def __init__(self, *, hold: bool = False, fail: BaseException | None = None) -> None:
        self.started = threading.Event()
        self._go = threading.Event()
        if not hold:
            self._go.set()
        self.fail = fail

    def held(self) -> None:
        """In a held call: signal it started, wait for the release, raise ``fail`` if set."""
        self.started.set()
        self._go.wait(10)
        if self.fail is not None:
            raise self.fail

    def release(self) -> None:
        self._go.set()

    async def wait_started(self) -> None:
        assert await anyio.to_thread.run_sync(self.started.wait, 10)

    @contextlib.contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Iterator[Any]:
        """This spy as ``owner.name`` for the block; released at its end (never leave a worker
        thread waiting)."""
        monkeypatch.setattr(owner, name, self)
        try:
            yield self
        finally:
            self.release()


class Builds(Held):
    """Records the clients ``cls.from_url`` built (the thread of each); the settings checks
    (refused at once, before any client is built) are not counted. ``hold``: builds wait
    for :meth:`release` (after setting :attr:`started`); ``fail``: builds raise it."""

    def __init__(self, cls: Any, *, hold: bool = False, fail: BaseException | None = None) -> None:
        super().__init__(hold=hold, fail=fail)
        self.original: Callable[..., Any] = cls.from_url
        self.threads: list[int] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _PROBE in (kwargs.get("client_options") or {}):
            return self.original(*args, **kwargs)  # the check: refused, nothing built
        self.threads.append(threading.get_ident())
        self.held()
        return self.original(*args, **kwargs)


@contextlib.contextmanager
def recording(
    monkeypatch: pytest.MonkeyPatch,
    cls: Any,
    *,
    hold: bool = False,
    fail: BaseException | None = None,
) -> Iterator[Builds]:
    builds = Builds(cls, hold=hold, fail=fail)
    with builds.installed(monkeypatch, cls, "from_url"):
        yield builds


# ------------------------------------------------------------------------------ HTTP (default)
async def test_http_client_is_built_off_the_loop_while_aiohttp_reads(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    with recording(monkeypatch, HTTPStore) as builds:
        store = open_store(http_server.url)
        assert builds.threads == []  # opening builds no client
        async with store:
            assert isinstance(store, NgioHTTPStore)
            assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
            assert builds.threads  # started with aiohttp's first GET
            got = await store.get_many(["data/small.txt", "data/blob.bin", "data/none"])
            assert [None if g is None else bytes(g) for g in got] == [
                b"hello world",
                bytes(range(256)) * 4,
                None,
            ]
            assert bytes(await store.get("data/blob.bin") or b"") == bytes(range(256)) * 4
            rust = store._rust
            assert rust is not None and rust.client_ready  # obstore's client serves the GETs
    assert len(builds.threads) == 1
    assert loop_thread not in builds.threads


async def test_http_dataset_reads_with_a_client_built_off_the_loop(
    http_server: StaticServer, http_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_image(http_root / "img.zarr", SMALL)[0]
    loop_thread = threading.get_ident()
    with recording(monkeypatch, HTTPStore) as builds:
        async with ngio_async.open_async(http_server.url + "img.zarr") as ds:
            np.testing.assert_array_equal(await ds.read(), data)
    assert len(builds.threads) == 1
    assert loop_thread not in builds.threads


async def test_http_build_that_fails_leaves_the_reads_to_aiohttp(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(monkeypatch, HTTPStore, fail=OSError("no TLS roots")) as builds:
        async with open_store(http_server.url) as store:
            for _ in range(2):
                assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
                got = await store.get_many(["data/small.txt", "data/blob.bin"])
                assert [bytes(g or b"") for g in got] == [b"hello world", bytes(range(256)) * 4]
            assert isinstance(store, NgioHTTPStore)
            assert store._rust is None  # aiohttp serves every GET from now on
    assert len(builds.threads) == 1


async def test_http_close_during_the_build_leaks_no_client(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(monkeypatch, HTTPStore, hold=True) as builds:
        store = open_store(http_server.url)
        assert isinstance(store, NgioHTTPStore)
        rust = store._rust
        assert rust is not None
        assert bytes(await store.get("data/small.txt") or b"") == b"hello world"
        await builds.wait_started()
        assert _connected(http_server.port) >= 1  # aiohttp's pooled connection
        await store.aclose()
        builds.release()
        with pytest.raises(ClosedError, match="closed"):
            await rust.ready()  # the build ended into a closed store: its client dropped
        assert not rust.client_ready
        assert await _closes_to_zero(http_server.port) == 0
        with pytest.raises(ClosedError, match="closed"):
            await store.get("data/small.txt")
        with pytest.raises(ClosedError, match="closed"):
            await store.get_many(["data/small.txt", "data/blob.bin"])


async def test_http_obstore_backend_closed_after_its_build_keeps_no_socket(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recording(monkeypatch, HTTPStore) as builds:
        store = open_store(http_server.url, backend="obstore")
        assert builds.threads == []
        async with store:
            got = await store.get_many(["data/small.txt", "data/blob.bin"])
            assert [bytes(g or b"") for g in got] == [b"hello world", bytes(range(256)) * 4]
            assert _connected(http_server.port) >= 1
        assert await _closes_to_zero(http_server.port) == 0
        with pytest.raises(ClosedError, match="closed"):
            await store.get("data/small.txt")
    assert len(builds.threads) == 1
    assert threading.get_ident() not in builds.threads


# ------------------------------------------------------------------------------------- S3
async def test_s3_client_is_built_once_off_the_loop(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent first requests share one build, made in a worker thread."""
    loop_thread = threading.get_ident()
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as writer:
        for i in range(8):
            await writer.put(f"k/{i}", bytes([i]) * (i + 1))
    with recording(monkeypatch, S3Store, hold=True) as builds:
        store = open_store(url, **s3_server.options())
        assert builds.threads == []  # opening checks the settings, builds no client
        got: dict[int, bytes | None] = {}

        async def one(i: int) -> None:
            data = await store.get(f"k/{i}")
            got[i] = None if data is None else bytes(data)

        async with store, anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
            await builds.wait_started()
            builds.release()
        assert got == {i: bytes([i]) * (i + 1) for i in range(8)}
    assert len(builds.threads) == 1
    assert loop_thread not in builds.threads


async def test_s3_dataset_reads_with_a_client_built_off_the_loop(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_image(tmp_path / "img.zarr", SMALL)[0]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as target:
        await upload(tmp_path / "img.zarr", target)
    loop_thread = threading.get_ident()
    with recording(monkeypatch, S3Store) as builds:
        async with ngio_async.open_async(url, **s3_server.options()) as ds:
            np.testing.assert_array_equal(await ds.read(), data)
    assert builds.threads
    assert loop_thread not in builds.threads


async def test_s3_settings_are_checked_at_open(s3_server: S3Server) -> None:
    with pytest.raises(ValueError, match=r"unknown store option.*not_a_real_option"):
        open_store(s3_server.fresh_url(), not_a_real_option=1, **s3_server.options())


async def test_s3_build_failure_is_every_callers_and_names_the_url(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_server.fresh_url()
    with recording(monkeypatch, S3Store, hold=True, fail=OSError("no TLS roots")) as builds:
        store = open_store(url, **s3_server.options())
        errors: list[BaseException] = []

        async def one(key: str) -> None:
            try:
                await store.get(key)
            except StoreError as exc:
                errors.append(exc)

        async with store:
            async with anyio.create_task_group() as tg:
                for key in ("a", "b", "c"):
                    tg.start_soon(one, key)
                await builds.wait_started()
                builds.release()
            assert len(errors) == 3
            for error in errors:
                assert f"cannot open store {url}" in str(error)
                assert "no TLS roots" in str(error)
            with pytest.raises(StoreError, match=f"cannot open store {url}"):
                await store.get_many(["a", "b"])  # the failure stays: the build is not redone
    assert len(builds.threads) == 1


async def test_s3_a_cancelled_first_caller_leaves_the_build_to_the_others(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as writer:
        await writer.put("k", b"value")
    with recording(monkeypatch, S3Store, hold=True) as builds:
        async with open_store(url, **s3_server.options()) as store:
            got: list[bytes] = []
            scope = anyio.CancelScope()

            async def first() -> None:  # starts the build, then is cancelled
                with scope:
                    await store.get("k")
                got.append(b"cancelled" if scope.cancelled_caught else b"read")

            async def second() -> None:
                got.append(bytes(await store.get("k") or b""))

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await builds.wait_started()
                tg.start_soon(second)
                await anyio.lowlevel.checkpoint()
                scope.cancel()
                await anyio.lowlevel.checkpoint()
                builds.release()
            assert sorted(got) == [b"cancelled", b"value"]
            assert isinstance(store, ObstoreStore)
            assert store.client_ready
            assert bytes(await store.get("k") or b"") == b"value"
    assert len(builds.threads) == 1


async def test_s3_close_during_the_build_drops_its_client(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = s3_server.fresh_url()
    port = int(s3_server.endpoint.rsplit(":", 1)[1])
    with recording(monkeypatch, S3Store, hold=True) as builds:
        store = open_store(url, **s3_server.options())
        assert isinstance(store, ObstoreStore)
        errors: list[BaseException] = []

        async def first() -> None:
            try:
                await store.get("k")
            except ClosedError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await builds.wait_started()
            await store.aclose()
            builds.release()
        assert len(errors) == 1
        assert not store.client_ready
        with pytest.raises(ClosedError, match="closed"):
            await store.get("k")
        assert await _closes_to_zero(port) == 0
