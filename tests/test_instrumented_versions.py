"""``InstrumentedStore`` over a local store keeps its versions: the blocking versioned reads
(``get_blocking_versioned``, the sharded reader's index and ranges) are the inner store's (the
file's inode, mtime and size), counted and faulted as ``get``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio.to_thread
import pytest

from ngio_async import ChangedError, StoreError, UnsupportedError
from ngio_async.stores import (
    AsyncStore,
    InstrumentedStore,
    LocalFileStore,
    RangeByteRequest,
    open_store,
)
from ngio_async.stores._base import file_version

if TYPE_CHECKING:
    from pathlib import Path

KEY = "a/shard"


def _rewrite(path: Path, data: bytes) -> None:
    """Replace the file as writers do: a new file renamed over it (another inode)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture(params=["obstore", "file"])
def inner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncStore:
    (tmp_path / "a").mkdir()
    (tmp_path / KEY).write_bytes(b"0123456789")
    if request.param == "file":
        return LocalFileStore(str(tmp_path))
    return open_store(tmp_path)


async def test_blocking_versioned_reads_are_the_inner_stores(
    inner: AsyncStore, tmp_path: Path
) -> None:
    store = InstrumentedStore(inner, blocking=True)
    path = tmp_path / KEY
    read = store.get_blocking_versioned
    data, version = await anyio.to_thread.run_sync(read, KEY)
    assert bytes(data or b"") == b"0123456789"
    assert version == file_version(os.stat(path))
    part, again = await anyio.to_thread.run_sync(
        lambda: read(KEY, RangeByteRequest(2, 5), if_match=version)
    )
    assert (bytes(part or b""), again) == (b"234", version)
    assert store.calls[("get", KEY)] == 2

    _rewrite(path, b"abcdefghij")
    with pytest.raises(ChangedError, match="no longer version"):
        await anyio.to_thread.run_sync(lambda: read(KEY, RangeByteRequest(2, 5), if_match=version))
    assert store.calls[("get", KEY)] == 3
    assert await anyio.to_thread.run_sync(read, "a/none") == (None, None)

    store.fail = lambda method, key: OSError("injected") if method == "get" else None
    with pytest.raises(StoreError, match="injected"):
        await anyio.to_thread.run_sync(read, KEY)
    assert store.calls[("get", KEY)] == 4
    await store.aclose()


async def test_no_blocking_reads_without_blocking(inner: AsyncStore) -> None:
    async with InstrumentedStore(inner) as store:
        with pytest.raises(UnsupportedError, match="no blocking reads"):
            store.get_blocking_versioned(KEY)
        assert store.total_requests == 0
