"""``memory://`` stores tell versions (obstore's ``MemoryStore`` tags each put with an ETag of
its own): versioned and conditional reads, async and blocking, see an object rewritten since,
and a sharded read of a shard rewritten between its index read and its ranged reads reads the
new version, never a mix (as local files and remote stores do: test_shard_versions_local.py,
test_shard_versions.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import obstore
import pytest
from images import upload
from test_shard_versions import SHARD, A, B, write_versions
from test_shard_versions_local import REGIONS, _after_index_reads

import ngio_async
from ngio_async.stores import (
    ChangedError,
    ObstoreStore,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from pathlib import Path

KEY = "a/b"


async def test_async_reads_tell_and_check_versions() -> None:
    async with open_store("memory://") as store:
        assert store.versioned
        await store.put(KEY, b"0123456789")
        data, version = await store.get_with_version(KEY)
        assert bytes(data or b"") == b"0123456789"
        assert version is not None
        assert version == await store.version(KEY)  # the ETag a HEAD tells
        part, same = await store.get_with_version(KEY, RangeByteRequest(2, 5))
        assert (bytes(part or b""), same) == (b"234", version)
        tail = await store.get(KEY, SuffixByteRequest(3), if_match=version)
        assert bytes(tail or b"") == b"789"
        await store.put(KEY, b"0123456789")  # the same bytes, written again: another version
        with pytest.raises(ChangedError, match="no longer version"):
            await store.get(KEY, RangeByteRequest(2, 5), if_match=version)
        _, newer = await store.get_with_version(KEY)
        assert newer not in (None, version)
        assert await store.get_with_version("a/none") == (None, None)


async def test_blocking_reads_tell_and_check_versions() -> None:
    async with open_store("memory://") as store:
        assert store.blocking_reads
        await store.put(KEY, b"0123456789")
        read = store.get_blocking_versioned
        data, version = await anyio.to_thread.run_sync(read, KEY)
        assert bytes(data or b"") == b"0123456789"
        assert version is not None and version == (await store.get_with_version(KEY))[1]
        part, same = await anyio.to_thread.run_sync(
            lambda: read(KEY, RangeByteRequest(2, 5), if_match=version)
        )
        assert (bytes(part or b""), same) == (b"234", version)
        await store.put(KEY, b"abcdefghij")
        with pytest.raises(ChangedError, match="no longer version"):
            await anyio.to_thread.run_sync(
                lambda: read(KEY, RangeByteRequest(2, 5), if_match=version)
            )
        assert await anyio.to_thread.run_sync(read, "a/none") == (None, None)


# -- a shard rewritten while it is read ---------------------------------------------------------


class MemoryShard:
    """The test image (version A) in a ``memory://`` store, and both versions' shard bytes."""

    def __init__(self, store: ObstoreStore, a: bytes, b: bytes) -> None:
        self.store, self.a, self.b = store, a, b
        self.reads = [0]

    def put(self, data: bytes) -> None:
        obstore.put(self.store.obstore, SHARD, data)  # (sync: from any thread)

    def swap_after_index_reads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Right after the first read of the shard's index returns (through any of the
        store's read methods), replace the shard by version B."""

        def swap(n: int) -> None:
            if n == 1:
                self.put(self.b)

        self.reads = _after_index_reads(monkeypatch, self.store, swap)

    @property
    def index_reads(self) -> int:
        return self.reads[0]


@pytest.fixture
async def shard(tmp_path: Path) -> MemoryShard:
    made = write_versions(tmp_path)
    store = open_store("memory://")
    assert isinstance(store, ObstoreStore)
    await upload(made.root, store)
    return MemoryShard(store, made.a, made.b)


def _which(got: np.ndarray[Any, Any], region: tuple[slice, ...]) -> str:
    for name, data in (("A", A), ("B", B)):
        if np.array_equal(got, data[region]):
            return name
    return "mixed"


@pytest.mark.parametrize("mode", ["r", "r+"])
@pytest.mark.parametrize("where", REGIONS)
async def test_async_read_of_a_shard_rewritten_after_its_index_reads_the_new_version(
    monkeypatch: pytest.MonkeyPatch, shard: MemoryShard, where: str, mode: Any
) -> None:
    region = REGIONS[where]
    async with ngio_async.open_async(shard.store, path="img.zarr", mode=mode) as ds:
        shard.swap_after_index_reads(monkeypatch)
        got = await ds.read(y=region[0], x=region[1])
    assert _which(got, region) == "B"  # the index read again, from the new shard
    assert shard.index_reads == 2


@pytest.mark.parametrize("where", REGIONS)
async def test_blocking_read_of_a_shard_rewritten_after_its_index_reads_the_new_version(
    monkeypatch: pytest.MonkeyPatch, shard: MemoryShard, where: str
) -> None:
    region = REGIONS[where]
    async with ngio_async.open_async(shard.store, path="img.zarr") as ds:
        level = ds.level(0)
        shard.swap_after_index_reads(monkeypatch)
        got = await anyio.to_thread.run_sync(level.read_blocking, region)
    assert _which(got, region) == "B"
    assert shard.index_reads == 2
