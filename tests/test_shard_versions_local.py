"""A local shard replaced while it is read: a read returns one version's pixels, never a mix.

Local files have versions: the inode, mtime and size of the file a read takes its bytes from
(``fstat`` of the open descriptor). A read of part of a shard fetches its index with the
version, then the inner chunks' byte ranges only from a file of that version; a shard replaced
in between (written beside it and renamed over it, as writers do) is ``ChangedError``, and its
index is read again. The replacement here stores its chunks in another order, so the old
index points at the wrong chunks of the new shard (silently wrong pixels, were it applied).
The replacement happens right after the index read returns (fault injection: a real race
is not deterministic); a short real race closes the file.
"""

from __future__ import annotations

import os
import threading
import time
from functools import wraps
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_shard_versions import SHARD, A, B, Versions, write_versions

import ngio_async
from ngio_async.stores import ChangedError, RangeByteRequest, SuffixByteRequest, open_store
from ngio_async.stores._base import file_version
from ngio_async.stores._local import LocalFileStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ngio_async.stores import AsyncStore

pytestmark = pytest.mark.anyio

INDEX = SuffixByteRequest(4 * 16 + 4)  # the shard's index (at the end)
REGIONS = {  # two of the four inner chunks, and one inner chunk
    "two-chunks": (slice(0, 32), slice(0, 8)),
    "one-chunk": (slice(16, 32), slice(16, 32)),
}


class LocalVersions(Versions):
    """The test image (version A), both versions' shard bytes, and the shard file."""

    @property
    def shard(self) -> Path:
        return self.root / SHARD

    def put(self, data: bytes) -> None:
        """Replace the shard as writers do: a new file renamed over it."""
        staging = self.shard.with_name("0#staging")
        staging.write_bytes(data)
        os.replace(staging, self.shard)


@pytest.fixture
def versions(tmp_path: Path) -> LocalVersions:
    made = write_versions(tmp_path)
    return LocalVersions(made.root, made.a, made.b)


def _after_index_reads(
    monkeypatch: pytest.MonkeyPatch, store: AsyncStore, action: Callable[[int], None]
) -> list[int]:
    """``action(n)`` right after the ``n``-th read of the shard's index returns (through any
    of the store's read methods). Returns the count of index reads (a list of one)."""
    reads = [0]

    def after(key: str, byte_range: Any) -> None:
        if key == SHARD and byte_range == INDEX:
            reads[0] += 1
            action(reads[0])

    for name in ("get_blocking", "get_blocking_versioned"):
        blocking = getattr(store, name, None)
        if blocking is not None:

            def sync_wrapper(
                key: str, byte_range: Any = None, _f: Any = blocking, **kw: Any
            ) -> Any:
                out = _f(key, byte_range, **kw)
                after(key, byte_range)
                return out

            monkeypatch.setattr(store, name, sync_wrapper)
    versioned = store.get_with_version

    @wraps(versioned)
    async def async_wrapper(key: str, byte_range: Any = None) -> Any:
        out = await versioned(key, byte_range)
        after(key, byte_range)
        return out

    monkeypatch.setattr(store, "get_with_version", async_wrapper)
    return reads


def _swap_after_index_reads(
    monkeypatch: pytest.MonkeyPatch, store: AsyncStore, versions: LocalVersions, every: bool = False
) -> list[int]:
    """Right after the first (``every``: each) read of the shard's index returns, replace the
    shard by the other version (B first). Returns the count of index reads (a list of one)."""

    def swap(n: int) -> None:
        if n == 1 or every:
            versions.put(versions.b if n % 2 else versions.a)

    return _after_index_reads(monkeypatch, store, swap)


def _which(got: np.ndarray[Any, Any], region: tuple[slice, ...]) -> str:
    for name, data in (("A", A), ("B", B)):
        if np.array_equal(got, data[region]):
            return name
    return "mixed"


@pytest.fixture(params=["obstore", "plain"])
def local_store(request: pytest.FixtureRequest, versions: LocalVersions) -> AsyncStore:
    """The two local stores: obstore's (the default), and plain file I/O (forked children)."""
    if request.param == "plain":
        return LocalFileStore(str(versions.root))
    return open_store(str(versions.root))


# -- the read paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r", "r+"])
@pytest.mark.parametrize("where", REGIONS)
async def test_async_read_of_a_shard_replaced_after_its_index_reads_the_new_version(
    monkeypatch: pytest.MonkeyPatch,
    versions: LocalVersions,
    local_store: AsyncStore,
    where: str,
    mode: Any,
) -> None:
    # "r": one worker-thread call reads index and chunks; "r+": the index awaited, then
    # the chunks in a worker thread
    region = REGIONS[where]
    async with ngio_async.open_async(local_store, path="img.zarr", mode=mode) as ds:
        reads = _swap_after_index_reads(monkeypatch, local_store, versions)
        got = await ds.read(y=region[0], x=region[1])
    assert _which(got, region) == "B"  # the index read again, from the new shard
    assert reads[0] == 2


@pytest.mark.parametrize("where", REGIONS)
async def test_blocking_reads_of_a_shard_replaced_after_its_index_read_the_new_version(
    monkeypatch: pytest.MonkeyPatch, versions: LocalVersions, local_store: AsyncStore, where: str
) -> None:
    region = REGIONS[where]
    async with ngio_async.open_async(local_store, path="img.zarr") as ds:
        level = ds.level(0)
        _swap_after_index_reads(monkeypatch, local_store, versions)
        assert _which(level.read_blocking(region), region) == "B"
        versions.put(versions.a)
        _swap_after_index_reads(monkeypatch, local_store, versions)
        other = (slice(0, 16), slice(0, 16))  # read_many: two regions, both with the new index
        got = level.read_many_blocking([region, other])
        assert [_which(g, r) for g, r in zip(got, [region, other], strict=True)] == ["B", "B"]


async def test_a_local_shard_replaced_after_every_index_read_is_read_whole(
    monkeypatch: pytest.MonkeyPatch, versions: LocalVersions, local_store: AsyncStore
) -> None:
    region = REGIONS["two-chunks"]
    async with ngio_async.open_async(local_store, path="img.zarr") as ds:
        level = ds.level(0)
        reads = _swap_after_index_reads(monkeypatch, local_store, versions, every=True)
        got = level.read_blocking(region)
        assert reads[0] == 4  # the index read 4 times (3 retries), then the shard whole
        assert _which(got, region) == "A"  # (the 4th swap put A back)
        versions.put(versions.b)
        reads[0] = 0
        got = await ds.read(y=region[0], x=region[1])
        assert reads[0] == 4 and _which(got, region) == "A"


async def test_tiles_of_a_local_shard_replaced_mid_stream_are_each_one_version(
    monkeypatch: pytest.MonkeyPatch, versions: LocalVersions, local_store: AsyncStore
) -> None:
    async with ngio_async.open_async(local_store, path="img.zarr") as ds:
        _swap_after_index_reads(monkeypatch, local_store, versions)
        seen = [
            _which(tile.data, tuple(tile.region))
            async for tile in ds.tiles(shape=(16, 16), prefetch=1)
        ]
    assert seen == ["B"] * 4  # the stream's cached index is A's: read again at the first tile


def test_sync_getitem_of_a_shard_replaced_after_its_index_reads_the_new_version(
    monkeypatch: pytest.MonkeyPatch, versions: LocalVersions
) -> None:
    store = open_store(str(versions.root))
    with ngio_async.open(store, path="img.zarr") as ds:
        _swap_after_index_reads(monkeypatch, store, versions)
        got = ds[16:32, 0:32]
    assert _which(got, (slice(16, 32), slice(0, 32))) == "B"


async def test_a_local_shard_deleted_after_its_index_reads_the_fill_value(
    monkeypatch: pytest.MonkeyPatch, versions: LocalVersions, local_store: AsyncStore
) -> None:
    region = REGIONS["one-chunk"]
    async with ngio_async.open_async(local_store, path="img.zarr") as ds:
        _after_index_reads(
            monkeypatch, local_store, lambda n: versions.shard.unlink(missing_ok=True)
        )
        got = await ds.read(y=region[0], x=region[1])
    assert not got.any()  # its index read again: no shard, the fill value


async def test_local_reads_while_another_task_rewrites_the_shard_are_each_one_version(
    tmp_path: Path,
) -> None:
    """A real race: one task rewrites the shard (alternately with chunk [0, 0] all fill, not
    stored, so the other chunks move, and with every chunk stored); two read one chunk."""
    url = str(tmp_path / "race.ome.zarr")
    va = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) + 1
    va[:32, :32] = 0
    vb = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7 + 3
    region = (slice(0, 32), slice(32, 64))
    counts = {"A": 0, "B": 0, "mixed": 0}
    async with ngio_async.create_async(
        url, shape=(64, 64), dtype="uint16", axes="yx", chunks=(32, 32), shards=(64, 64),
        levels=1, compressor=None, fill_value=0,
    ) as writer:  # fmt: skip
        await writer.write(vb)
        async with ngio_async.open_async(url) as reader:
            stop = time.monotonic() + 1.5

            async def write() -> None:
                i = 0
                while time.monotonic() < stop:
                    await writer.write(va if i % 2 else vb)
                    i += 1

            async def read() -> None:
                while time.monotonic() < stop:
                    got = await reader.read(y=region[0], x=region[1])
                    name = "A" if np.array_equal(got, va[region]) else "B"
                    if name == "B" and not np.array_equal(got, vb[region]):
                        name = "mixed"
                    counts[name] += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                tg.start_soon(read)
                tg.start_soon(read)
    assert counts["mixed"] == 0, counts
    assert counts["A"] + counts["B"] > 0


# -- the store API ----------------------------------------------------------------------------


async def test_local_stores_tell_the_version_of_the_file_read(
    versions: LocalVersions, local_store: AsyncStore
) -> None:
    async with local_store as store:
        data, tag = await store.get_with_version(SHARD, INDEX)
        assert bytes(data or b"") == versions.a[-68:]
        assert tag is not None and tag == file_version(os.stat(versions.shard))
        assert tag == await store.version(SHARD)  # the same token as version()
        rng = RangeByteRequest(0, 8)
        assert bytes(await store.get(SHARD, rng, if_match=tag) or b"") == versions.a[:8]
        assert store.get_blocking_versioned(SHARD, rng, if_match=tag) == (versions.a[:8], tag)
        versions.put(versions.b)
        with pytest.raises(ChangedError, match=SHARD):
            await store.get(SHARD, rng, if_match=tag)
        with pytest.raises(ChangedError, match="no longer version"):
            store.get_blocking_versioned(SHARD, rng, if_match=tag)
        with pytest.raises(ChangedError):
            await store.get_ranges(SHARD, [(0, 8), (16, 24)], if_match=tag)
        data, new = store.get_blocking_versioned(SHARD)
        assert bytes(data or b"") == versions.b and new not in (None, tag)
        assert await store.get_with_version("img.zarr/0/c/9/9") == (None, None)
        assert store.get_blocking_versioned("img.zarr/0/c/9/9", if_match=tag) == (None, None)


def test_a_versioned_local_read_is_one_open(versions: LocalVersions) -> None:
    """The hot path's cost: one open per read (the fstat is of that descriptor)."""
    opened: list[str] = []
    real = os.open

    def counting(path: Any, *args: Any, **kw: Any) -> int:
        if threading.current_thread() is threading.main_thread():
            opened.append(str(path))
        return real(path, *args, **kw)

    store = open_store(str(versions.root))
    _, tag = store.get_blocking_versioned(SHARD, INDEX)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "open", counting)
        store.get_blocking_versioned(SHARD, RangeByteRequest(0, 8), if_match=tag)
    assert opened == [str(versions.shard)]
