"""Local paths in a child forked after the parent used obstore (whose runtime does not survive
``fork()``): they open as ``LocalFileStore``, which behaves as obstore's ``LocalStore``."""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import StoreError, UnsupportedError
from ngio_async.stores import AsyncStore, open_store
from ngio_async.stores._local import LocalFileStore

if TYPE_CHECKING:
    from pathlib import Path

WAIT = 60  # seconds a pool call may take before the test fails (a hung worker)

fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
# Python 3.12+ warns that fork() in a threaded process may deadlock: the point of these tests
threaded_fork = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def _read_pixel(args: tuple[Any, int]) -> int:
    image, c = args  # a dataset or level pickled to the child, reopened there
    return int(image[c, 0, 5, 7])


def _write_plane(args: tuple[str, int]) -> str:
    path, c = args
    with ngio_async.open(path, mode="r+") as ds:
        ds[c, 1] = np.full(ds.shape[-2:], 100 + c, dtype=ds.dtype)
    return type(open_store(path)).__name__


def _memory_store_error(_: int) -> str:
    try:
        open_store("memory://")
    except UnsupportedError as exc:
        return str(exc)
    return "opened"


@fork_only
@threaded_fork
def test_a_forked_pool_reads_and_writes_local_images(tmp_path: Path) -> None:
    datas = write_image(
        tmp_path, Spec(version="0.5", shape=(2, 3, 40, 30), chunks=(1, 1, 16, 16), levels=2)
    )
    ds = ngio_async.open(tmp_path)
    assert ds[1, 0, 5, 7] == datas[0][1, 0, 5, 7]  # obstore used before the fork
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        got = pool.map_async(_read_pixel, [(ds, 0), (ds, 1), (ds.levels[1], 1)]).get(WAIT)
        assert got == [datas[0][0, 0, 5, 7], datas[0][1, 0, 5, 7], datas[1][1, 0, 5, 7]]
        names = pool.map_async(_write_plane, [(str(tmp_path), 0), (str(tmp_path), 1)]).get(WAIT)
        assert names == ["LocalFileStore", "LocalFileStore"]
        message = pool.map_async(_memory_store_error, [0]).get(WAIT)[0]
        assert "spawn" in message
    finally:
        pool.terminate()
        pool.join()
    ds.close()
    with ngio_async.open(tmp_path) as again:  # the parent reads what the children wrote
        assert (again[:, 1] == np.array([100, 101]).reshape(2, 1, 1)).all()
        assert (again[:, 0] == datas[0][:, 0]).all()


def _same_ops(root: str, kind: str) -> list[object]:
    """What a sequence of edge-case operations answers (and leaves on disk) on ``kind``."""
    import anyio

    async def run() -> list[object]:
        store: AsyncStore = LocalFileStore(root) if kind == "plain" else open_store(root)
        seen: list[object] = []

        async def outcome(call: Any) -> object:
            try:
                result = await call
            except StoreError as exc:
                return type(exc).__name__
            return bytes(result) if isinstance(result, memoryview | bytes) else result

        async with store:
            await store.put("a/b/c/deep.bin", b"x")
            await store.put("a/keep.bin", b"k")
            await anyio.Path(root, "a", "left#12").write_bytes(b"staging")  # a crashed write
            seen.append(await store.list_prefix(""))
            seen.append(await outcome(store.put("a/b", b"onto a directory")))
            seen.append(await outcome(store.delete("a/b")))  # a directory is no object
            seen.append(await outcome(store.get("a")))
            seen.append(await outcome(store.exists("a")))
            seen.append(await outcome(store.put_if_absent("a/keep.bin", b"other")))
            seen.append(await outcome(store.put_if_absent("a/new.bin", b"new")))
            seen.append(await outcome(store.get("a/new.bin")))
            await store.delete("a/b/c/deep.bin")  # empties a/b/c and a/b: both go
            seen.append(sorted(os.listdir(os.path.join(root, "a"))))
            seen.append(await store.list_prefix("a"))
            await store.delete("a/keep.bin")
            await store.delete("a/new.bin")
            seen.append(sorted(os.listdir(root)))  # a still holds the staging file
        return seen

    return anyio.run(run)


def test_the_plain_store_answers_as_obstores_local_store(tmp_path: Path) -> None:
    (tmp_path / "obstore").mkdir()
    (tmp_path / "plain").mkdir()
    want = _same_ops(str(tmp_path / "obstore"), "obstore")
    assert _same_ops(str(tmp_path / "plain"), "plain") == want
    assert want[0] == ["a/b/c/deep.bin", "a/keep.bin"]  # no staging file
    assert want[8] == ["keep.bin", "left#12", "new.bin"]


def test_versions_match_obstores(tmp_path: Path) -> None:
    import anyio

    async def run() -> None:
        async with open_store(tmp_path) as ob, LocalFileStore(str(tmp_path)) as plain:
            await plain.put("v.bin", b"123")
            assert await plain.version("v.bin") == await ob.version("v.bin")
            assert await plain.version("missing") is None

    anyio.run(run)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_failed_write_leaves_no_staging_file(tmp_path: Path) -> None:
    import anyio

    async def run() -> None:
        async with LocalFileStore(str(tmp_path)) as store:
            await store.put("d/x.bin", b"1")
            (tmp_path / "d" / "sub").mkdir()
            with pytest.raises(StoreError, match="d/sub"):
                await store.put("d/sub", b"onto a directory")
            assert sorted(os.listdir(tmp_path / "d")) == ["sub", "x.bin"]

    anyio.run(run)


def test_a_put_survives_a_delete_removing_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete that empties a directory removes it; a put into that directory at the same
    moment makes it again (as obstore's LocalStore does), instead of failing."""
    import anyio

    real_open = os.open
    raced: list[str] = []

    def racing_open(path: str, flags: int, mode: int = 0o777) -> int:
        if "#" in os.path.basename(path) and not raced:  # the staging file: rmdir first
            raced.append(path)
            os.rmdir(os.path.dirname(path))
        return real_open(path, flags, mode)

    async def run() -> None:
        async with LocalFileStore(str(tmp_path)) as store:
            await store.put("c/0/0", b"first")
            await store.delete("c/0/0")  # removes c/0 and c
            monkeypatch.setattr(os, "open", racing_open)
            await store.put("c/0/1", b"second")
            assert raced
            assert bytes(await store.get("c/0/1") or b"") == b"second"

    anyio.run(run)
