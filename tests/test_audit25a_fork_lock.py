"""audit25a: a process forked while a local metadata edit holds its directory lock (a dask
worker's task starting a ``multiprocessing`` pool, whose default start method forks, while
another task adds a well or a label) does not keep that lock once the edit has ended."""

from __future__ import annotations

import multiprocessing
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from ngio_async.stores import open_store

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock and fork are POSIX")


def _wait(conn: Connection) -> None:
    conn.recv()  # the forked child lives until the test is done


def test_an_edit_after_one_that_forked_a_child_is_not_blocked_by_the_child(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = open_store(tmp_path)
        await store.put("plate.ome.zarr/zarr.json", b'{"wells": 0}')
        ours, theirs = multiprocessing.Pipe()
        children: list[Any] = []

        async def edit_and_fork(raw: Any) -> bytes:
            # forked while the edit holds the lock of plate.ome.zarr/ (its copy of the
            # lock's descriptor stays open in the child)
            child = multiprocessing.get_context("fork").Process(target=_wait, args=(theirs,))
            child.start()
            children.append(child)
            return bytes(raw).replace(b"0", b"1")

        async def edit(raw: Any) -> bytes:
            return bytes(raw).replace(b"1", b"2")

        try:
            await store.update("plate.ome.zarr/zarr.json", edit_and_fork)
            other = open_store(tmp_path)  # another opening: waits for the lock as a process
            with anyio.fail_after(8):  # (was: waited until the child exited)
                await other.update("plate.ome.zarr/zarr.json", edit)
            stored = await other.get("plate.ome.zarr/zarr.json")
            assert stored is not None and bytes(stored) == b'{"wells": 2}'
        finally:
            ours.send(None)
            for child in children:
                child.join()

    anyio.run(main)
