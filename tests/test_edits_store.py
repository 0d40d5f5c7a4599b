"""``store.update(key, edit)``: a compare-and-swap edit of one small object, on every writable
backend: memory, local directories (both local stores), S3 (moto on 127.0.0.1) and Azure
(Azurite). Another writer coming in between is never overwritten: its version is edited
again; the usual cost is one GET and one PUT; local stores lock the object's directory with
``flock`` (other processes wait) and leave no lock file."""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING, Any

import pytest

from ngio_async import ChangedError, UnsupportedError
from ngio_async.stores import (
    AsyncStore,
    Buffer,
    InstrumentedStore,
    LocalFileStore,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

    from servers import AzuriteServer, S3Server, StaticServer


BACKENDS = ["memory", "local", "local-plain", "s3", "azure"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncStore:
    kind = request.param
    if kind == "memory":
        return open_store("memory://")
    if kind == "local":
        return open_store(tmp_path / "root", mkdir=True)
    if kind == "local-plain":
        return LocalFileStore(str(tmp_path / "root"), mkdir=True)
    if kind == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        return open_store(s3.fresh_url(), **s3.options())
    az: AzuriteServer = request.getfixturevalue("azurite")
    return open_store(az.fresh_url(), **az.options())


def _append(item: bytes) -> Any:
    async def edit(old: Buffer | None) -> bytes:
        return (b"" if old is None else bytes(old)) + item

    return edit


async def test_update_creates_then_edits_with_one_get_and_one_put(store: AsyncStore) -> None:
    counted = InstrumentedStore(store)
    async with counted:
        assert bytes(await counted.update("g/zarr.json", _append(b"a")) or b"") == b"a"
        counted.reset()
        assert bytes(await counted.update("g/zarr.json", _append(b"b")) or b"") == b"ab"
        assert counted.method_counts == {"get": 1, "put": 1}  # as a plain read-modify-write
        assert bytes(await counted.get("g/zarr.json") or b"") == b"ab"


async def test_update_writes_nothing_when_the_edit_changes_nothing(store: AsyncStore) -> None:
    counted = InstrumentedStore(store)
    async with counted:
        await counted.put("k", b"same")

        async def same(old: Buffer | None) -> Buffer | None:
            return old

        async def none(old: Buffer | None) -> Buffer | None:
            return None

        counted.reset()
        assert bytes(await counted.update("k", same) or b"") == b"same"
        assert await counted.update("absent", none) is None
        assert counted.method_counts == {"get": 2}
        assert not await counted.exists("absent")


def _conditional(store: AsyncStore) -> bool:
    """Whether the store writes updates conditionally (else: under a directory lock)."""
    return store.versioned or store.url == "memory://"


async def test_a_writer_in_between_is_edited_again_not_overwritten(store: AsyncStore) -> None:
    """Another writer rewrites the object between the read and the write: its bytes are
    kept and the edit applied again (local stores lock the directory instead: tested with
    processes in test_edits_processes.py)."""
    if not _conditional(store):
        pytest.skip("local stores exclude other updates with flock")
    async with store:
        await store.put("doc", b"v")
        seen: list[bytes | None] = []

        async def edit(old: Buffer | None) -> bytes:
            seen.append(None if old is None else bytes(old))
            if len(seen) == 1:
                await store.put("doc", b"v+other")
            return (b"" if old is None else bytes(old)) + b"+mine"

        result = await store.update("doc", edit)
        assert seen == [b"v", b"v+other"]
        assert bytes(await store.get("doc") or b"") == bytes(result or b"") == b"v+other+mine"


class _LostAnswer(InstrumentedStore):
    """Fault injection: the first conditional put is stored, but its caller hears a conflict
    (the answer lost, and obstore's resend refused by the server as a conflict with itself:
    a server cannot be made to do that on purpose)."""

    refused = 0

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        stored = await super()._write_for_update_once(key, data, version)
        if stored and not self.refused:
            self.refused += 1
            return False
        return stored


async def test_a_put_stored_but_heard_as_refused_is_not_edited_twice(store: AsyncStore) -> None:
    if not _conditional(store):
        pytest.skip("local stores lock out other writers: no conditional put")
    lossy = _LostAnswer(store)
    async with lossy:
        await lossy.put("doc", b"v")
        calls = 0

        async def edit(old: Buffer | None) -> bytes:
            nonlocal calls
            calls += 1
            return (b"" if old is None else bytes(old)) + b"+mine"

        result = await lossy.update("doc", edit)
        assert lossy.refused == 1
        assert calls == 1
        assert bytes(result or b"") == bytes(await lossy.get("doc") or b"") == b"v+mine"
        # an object created by the update: the same
        calls = lossy.refused = 0
        result = await lossy.update("new", edit)
        assert (lossy.refused, calls) == (1, 1)
        assert bytes(await lossy.get("new") or b"") == b"+mine"


async def test_created_meanwhile_is_kept(store: AsyncStore) -> None:
    async with store:
        calls = 0

        async def edit(old: Buffer | None) -> bytes:
            nonlocal calls
            calls += 1
            if calls == 1 and old is None and _conditional(store):
                await store.put("new", b"theirs")
            return (b"" if old is None else bytes(old)) + b"+mine"

        await store.update("new", edit)
        expected = b"theirs+mine" if _conditional(store) else b"+mine"
        assert bytes(await store.get("new") or b"") == expected


async def test_endless_conflicts_end_in_changed_error(store: AsyncStore) -> None:
    if not _conditional(store):
        pytest.skip("local stores lock out other writers: no conflict to meet")
    async with store:
        await store.put("doc", b"0")
        n = 0

        async def edit(old: Buffer | None) -> bytes:
            nonlocal n
            n += 1
            await store.put("doc", str(n).encode())  # rewritten after every read
            return b"mine"

        with pytest.raises(ChangedError, match="3 reads and writes"):
            await store.update("doc", edit, attempts=3)
        assert n == 3
        assert bytes(await store.get("doc") or b"") == b"3"


async def test_an_edit_that_raises_writes_nothing(store: AsyncStore) -> None:
    async with store:
        await store.put("doc", b"v")

        async def edit(old: Buffer | None) -> bytes:
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await store.update("doc", edit)
        assert bytes(await store.get("doc") or b"") == b"v"


@pytest.mark.parametrize("kind", ["obstore", "plain"])
async def test_local_update_holds_the_directory_lock_and_leaves_no_file(
    tmp_path: Path, kind: str
) -> None:
    root = tmp_path / "root"
    store: AsyncStore = (
        open_store(root, mkdir=True) if kind == "obstore" else LocalFileStore(str(root), mkdir=True)
    )
    held: list[bool] = []

    async def edit(old: Buffer | None) -> bytes:
        fd = os.open(root / "img" / "labels", os.O_RDONLY)  # another open file: as a process
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(True)
        else:
            held.append(False)
        finally:
            os.close(fd)
        return b"{}"

    async with store:
        await store.update("img/labels/zarr.json", edit)  # the directory is made
    assert held == [True]
    assert sorted(os.listdir(root / "img" / "labels")) == ["zarr.json"]
    fd = os.open(root / "img" / "labels", os.O_RDONLY)  # released
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


async def test_http_stores_refuse_updates(http_server: StaticServer) -> None:
    async with open_store(http_server.url) as store:
        with pytest.raises(UnsupportedError, match="read-only"):
            await store.update("data/small.txt", _append(b"x"))


@pytest.mark.parametrize("kind", ["obstore", "plain"])
async def test_local_update_waits_for_another_holder_and_can_be_cancelled(
    tmp_path: Path, kind: str
) -> None:
    """While another process (here: another open file) holds the directory's lock, an update
    waits, holding no thread; cancelled, it leaves no lock behind; released, it goes on."""
    import anyio

    root = tmp_path / "root"
    store: AsyncStore = (
        open_store(root, mkdir=True) if kind == "obstore" else LocalFileStore(str(root), mkdir=True)
    )
    (root / "g").mkdir()
    fd = os.open(root / "g", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    async with store:
        with anyio.move_on_after(0.2) as scope:
            await store.update("g/zarr.json", _append(b"x"))
        assert scope.cancelled_caught
        assert not await store.exists("g/zarr.json")
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.update, "g/zarr.json", _append(b"y"))
            await anyio.sleep(0.05)
            assert not await store.exists("g/zarr.json")  # still waiting
            os.close(fd)  # released
        assert bytes(await store.get("g/zarr.json") or b"") == b"y"
    probe = os.open(root / "g", os.O_RDONLY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nothing left holding it
    finally:
        os.close(probe)
