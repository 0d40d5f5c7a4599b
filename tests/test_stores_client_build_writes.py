"""The last two obstore clients built on the event loop, now built in a thread of their own
(as ``open_store``'s own clients, see ``test_stores_client_build``): the retry-less twin of a
cloud store for conditional puts (``put_if_absent``) and the store at the bucket root that
``create`` reads to refuse an array above the new image. Each is built once (shared by the
callers that come meanwhile), off the event loop thread; its failure names the URL, to every
caller; a caller cancelled leaves the build to the others; a close meanwhile drops it.

The spy on ``S3Store``'s constructor counts the builds and can hold them (or make them fail):
the requests all go to moto's S3 server on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import pytest
from obstore.store import S3Store
from test_obstore_close import _closes_to_zero
from test_stores_client_build import Held

import ngio_async
from ngio_async import ClosedError, StoreError
from ngio_async.stores import ObstoreStore, open_store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers import S3Server

pytestmark = pytest.mark.anyio


class Constructed(Held):
    """Records the ``S3Store(...)`` calls (the twins: ``retry_config`` with no retries; the
    bucket roots: no ``prefix``) with their thread. ``hold``: those of ``which`` wait for
    :meth:`release`; ``fail``: they raise it."""

    def __init__(
        self, which: str, *, hold: bool = False, fail: BaseException | None = None
    ) -> None:
        super().__init__(hold=hold, fail=fail)
        self.original: Callable[..., Any] = S3Store.__new__
        self.which = which
        self.calls: list[tuple[str, int]] = []

    @staticmethod
    def kind(kwargs: dict[str, Any]) -> str:
        if (kwargs.get("retry_config") or {}).get("max_retries") == 0:
            return "twin"
        return "root" if not kwargs.get("prefix") and "config" in kwargs else "other"

    def __call__(self, cls: Any, *args: Any, **kwargs: Any) -> Any:
        kind = self.kind(kwargs)
        self.calls.append((kind, threading.get_ident()))
        if kind == self.which:
            self.held()
        return self.original(cls, *args, **kwargs)

    def of(self, kind: str) -> list[int]:
        """The threads that built ``kind``."""
        return [t for k, t in self.calls if k == kind]


@contextlib.contextmanager
def constructing(
    monkeypatch: pytest.MonkeyPatch,
    which: str,
    *,
    hold: bool = False,
    fail: BaseException | None = None,
) -> Iterator[Constructed]:
    spy = Constructed(which, hold=hold, fail=fail)
    with spy.installed(monkeypatch, S3Store, "__new__"):
        yield spy


async def _opened(s3_server: S3Server) -> tuple[ObstoreStore, str]:
    """A store under a fresh prefix whose own client is built (one plain put)."""
    url = s3_server.fresh_url()
    store = open_store(url, **s3_server.options())
    assert isinstance(store, ObstoreStore)
    await store.put("warm", b"1")
    return store, url


# ------------------------------------------------------------------- conditional puts
async def test_concurrent_conditional_puts_share_one_twin_built_off_the_loop(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = await _opened(s3_server)
    loop_thread = threading.get_ident()
    with constructing(monkeypatch, "twin", hold=True) as spy:
        got: dict[int, bool] = {}

        async def one(i: int) -> None:
            got[i] = await store.put_if_absent(f"k/{i}", bytes([i]))

        async with store:
            async with anyio.create_task_group() as tg:
                for i in range(8):
                    tg.start_soon(one, i)
                await spy.wait_started()
                await anyio.sleep(0.05)  # the others came meanwhile: they wait for it
                assert len(spy.of("twin")) == 1
                spy.release()
            assert got == dict.fromkeys(range(8), True)
            # the twin is conditional: a second put of a key finds it
            assert not await store.put_if_absent("k/3", b"again")
            assert bytes(await store.get("k/3") or b"") == bytes([3])
            assert [bytes(await store.get(f"k/{i}") or b"") for i in range(8)] == [
                bytes([i]) for i in range(8)
            ]
    assert len(spy.of("twin")) == 1
    assert loop_thread not in spy.of("twin")


async def test_a_cancelled_first_writer_leaves_the_build_to_the_others(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = await _opened(s3_server)
    with constructing(monkeypatch, "twin", hold=True) as spy:
        async with store:
            got: list[str] = []
            scope = anyio.CancelScope()

            async def first() -> None:  # starts the build, then is cancelled
                with scope:
                    await store.put_if_absent("a", b"first")
                got.append("cancelled" if scope.cancelled_caught else "written")

            async def second() -> None:
                got.append("second" if await store.put_if_absent("b", b"second") else "lost")

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                await spy.wait_started()
                tg.start_soon(second)
                await anyio.lowlevel.checkpoint()
                scope.cancel()
                await anyio.lowlevel.checkpoint()
                spy.release()
            assert sorted(got) == ["cancelled", "second"]
            assert await store.get("a") is None  # cancelled before its PUT was sent
            assert bytes(await store.get("b") or b"") == b"second"
            assert await store.put_if_absent("a", b"later")
    assert len(spy.of("twin")) == 1


async def test_a_failed_twin_build_is_every_writers_and_names_the_url(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, url = await _opened(s3_server)
    with constructing(monkeypatch, "twin", hold=True, fail=OSError("no TLS roots")) as spy:
        errors: list[StoreError] = []

        async def one(key: str) -> None:
            try:
                await store.put_if_absent(key, b"x")
            except StoreError as exc:
                errors.append(exc)

        async with store:
            async with anyio.create_task_group() as tg:
                for key in ("a", "b", "c"):
                    tg.start_soon(one, key)
                await spy.wait_started()
                spy.release()
            assert len(errors) == 3
            for error in errors:
                assert f"cannot open store {url}" in str(error)
                assert "no TLS roots" in str(error)
            with pytest.raises(StoreError, match=f"cannot open store {url}"):
                await store.put_if_absent("d", b"x")  # the failure stays: not built again
            assert [await store.get(k) for k in "abcd"] == [None] * 4  # nothing written
            await store.put("e", b"plain")  # the store's own client still writes
    assert len(spy.of("twin")) == 1


async def test_close_during_the_twin_build_drops_it(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = await _opened(s3_server)
    port = int(s3_server.endpoint.rsplit(":", 1)[1])
    with constructing(monkeypatch, "twin", hold=True) as spy:
        errors: list[BaseException] = []

        async def first() -> None:
            try:
                await store.put_if_absent("k", b"v")
            except ClosedError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await spy.wait_started()
            await store.aclose()
            spy.release()
        assert len(errors) == 1
        assert store._no_retries is None  # built into a closed store: dropped
        with pytest.raises(ClosedError, match="closed"):
            await store.put_if_absent("k", b"v")
        assert await _closes_to_zero(port) == 0
    assert len(spy.of("twin")) == 1
    async with open_store(store.url, **s3_server.options()) as check:
        assert await check.get("k") is None


# -------------------------------------------------------------------- the bucket root
async def test_create_over_s3_builds_the_bucket_root_off_the_loop(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    data = np.arange(32 * 48, dtype="uint16").reshape(32, 48)
    loop_thread = threading.get_ident()
    with constructing(monkeypatch, "root") as spy:
        async with ngio_async.create_async(
            url, shape=(32, 48), dtype="uint16", chunks=(16, 16), **options
        ) as ds:
            await ds.write(data)
    assert len(spy.of("root")) == 1
    assert loop_thread not in spy.of("root")
    assert loop_thread not in spy.of("twin")
    async with ngio_async.open_async(url, **options) as back:
        np.testing.assert_array_equal(await back.read(), data)
        assert back.metadata.ngff_version == "0.5"
    async with open_store(url, **options) as store:
        assert await store.exists("zarr.json")
        assert await store.exists("0/zarr.json")


async def test_create_below_an_array_is_still_refused_through_the_bucket_root(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the bucket root is read for: an array above the new image's prefix."""
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    async with ngio_async.create_async(
        url, shape=(16, 16), dtype="uint8", chunks=(8, 8), **options
    ) as ds:
        await ds.write(np.full((16, 16), 7, "uint8"))
    with (
        constructing(monkeypatch, "root") as spy,
        pytest.raises(ngio_async.ExistsError, match=rf"parent {url}/0 is a zarr array"),
    ):
        await ngio_async.create_async(f"{url}/0/c", shape=(4, 4), dtype="uint8", **options)
    assert len(spy.of("root")) == 1
    assert threading.get_ident() not in spy.of("root")
    async with ngio_async.open_async(url, **options) as back:
        assert (await back.read() == 7).all()


async def test_a_failed_bucket_root_build_fails_the_create_naming_the_bucket(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, options = s3_server.fresh_url() + "/img.zarr", s3_server.options()
    with (
        constructing(monkeypatch, "root", fail=OSError("no TLS roots")) as spy,
        pytest.raises(StoreError, match=rf"cannot open store s3://{s3_server.bucket}\b"),
    ):
        await ngio_async.create_async(url, shape=(8, 8), dtype="uint8", **options)
    assert len(spy.of("root")) == 1  # the checks above the prefix share it
    async with open_store(url, **options) as store:
        assert not await store.exists("zarr.json")  # refused before anything was written
