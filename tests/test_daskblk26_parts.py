"""Blocking reads smaller than an (inner) chunk of a local read-only level (dask's 256x256
blocks over 512x512 chunks) share the decoded chunk, with no read cache configured: the four
blocks of one chunk fetch and decode it once, not four times. A chunk is kept only until its
rest has been read, for a short while, within a small byte budget, and only while its file is
the one it was decoded from: another writer's new pixels are read, never the kept ones.
Real files; chunk reads and decodes are counted by spies on the store and the codec."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import _sync_fast
from ngio_async._sync_fast import part_keep
from ngio_async.codecs import ChunkCodec
from ngio_async.images._reuse import Fetch, PartKeep, Pending
from ngio_async.stores import SuffixByteRequest

if TYPE_CHECKING:
    from pathlib import Path

SPECS = {
    "chunked": Spec(shape=(64, 64), chunks=(32, 32), levels=1, seed=3),
    "sharded": Spec(shape=(64, 64), chunks=(32, 32), shards=(64, 64), levels=1, seed=4),
}
BLOCKS = [(slice(y, y + 16), slice(x, x + 16)) for y in range(0, 64, 16) for x in range(0, 64, 16)]  # fmt: skip
CHUNK = "0/c/0/0"  # the chunk file (chunked) or the one shard (sharded)


class Spies:
    """Chunk reads of one level's store (not shard-index reads) and chunk decodes, by key."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, level: Any) -> None:
        self.reads: Counter[str] = Counter()
        self.decodes: Counter[str] = Counter()
        store = level._level.store
        get, versioned = store.get_blocking, store.get_blocking_versioned
        decode = ChunkCodec.decode

        def spy_get(key: str, byte_range: Any = None) -> Any:
            self.reads[key] += 1
            return get(key, byte_range)

        def spy_versioned(key: str, byte_range: Any = None, **kw: Any) -> Any:
            if not isinstance(byte_range, SuffixByteRequest):
                self.reads[key] += 1
            return versioned(key, byte_range, **kw)

        def spy_decode(codec: ChunkCodec, buf: Any, key: str, *a: Any, **kw: Any) -> Any:
            self.decodes[key] += 1
            return decode(codec, buf, key, *a, **kw)

        monkeypatch.setattr(store, "get_blocking", spy_get)
        monkeypatch.setattr(store, "get_blocking_versioned", spy_versioned)
        monkeypatch.setattr(ChunkCodec, "decode", spy_decode)


@pytest.fixture(autouse=True)
def _no_ageing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept chunks age out after a minute here, not a second (no timing in the counts)."""
    monkeypatch.setattr(_sync_fast, "_PART_SECONDS", 60.0)


@pytest.mark.parametrize("layout", ["chunked", "sharded"])
def test_blocks_of_one_chunk_decode_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str
) -> None:
    (data,) = write_image(tmp_path, SPECS[layout])
    with ngio_async.open(str(tmp_path)) as ds:
        assert ds.read_cache is None  # (no read cache configured)
        level = ds.levels[0]
        spies = Spies(monkeypatch, level)
        for sel in BLOCKS:  # 16 blocks, 4 of each of the 4 chunks
            np.testing.assert_array_equal(level[sel], data[sel])
        assert len(spies.decodes) == 4
        assert set(spies.decodes.values()) == {1}  # was 4 each: once per block
        assert sum(spies.reads.values()) == 4  # one fetch per chunk
        keep = part_keep(level._level)
        assert keep is not None
        assert (keep.kept, keep.hits) == (4, 12)
        assert keep.held_bytes == 0  # each dropped once its last block was read
        np.testing.assert_array_equal(level[0:32, 0:32], data[0:32, 0:32])  # whole: not kept
        assert keep.kept == 4


def test_dask_blocks_decode_each_chunk_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data,) = write_image(tmp_path, SPECS["sharded"])
    with ngio_async.open(str(tmp_path)) as ds:
        spies = Spies(monkeypatch, ds.levels[0])
        arr = da.from_array(ds, chunks=16, asarray=True)  # type: ignore[no-untyped-call]
        got = arr.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=4)
        assert int(got) == int(data.sum(dtype=np.uint64))
        assert sorted(spies.decodes.values()) == [1, 1, 1, 1]  # concurrent blocks wait for it
        assert sum(spies.reads.values()) == 4
        np.testing.assert_array_equal(arr.compute(scheduler="threads"), data)


@pytest.mark.parametrize("layout", ["chunked", "sharded"])
def test_rewritten_file_read_anew(tmp_path: Path, layout: str) -> None:
    """A chunk kept from one block, its file replaced by another writer before the next
    block: the next block has the new pixels (the file's version is checked per read)."""
    (old,) = write_image(tmp_path / "a", SPECS[layout])
    (new,) = write_image(tmp_path / "b", replace(SPECS[layout], seed=9))
    with ngio_async.open(str(tmp_path / "a")) as ds:
        level = ds.levels[0]
        np.testing.assert_array_equal(level[0:16, 0:16], old[0:16, 0:16])
        keep = part_keep(level._level)
        assert keep is not None and keep.held_bytes > 0
        os.replace(tmp_path / "b" / CHUNK, tmp_path / "a" / CHUNK)
        for sel in [BLOCKS[1], BLOCKS[4], BLOCKS[5]]:  # the rest of chunk (0, 0)
            np.testing.assert_array_equal(level[sel], new[sel])
        np.testing.assert_array_equal(level[0:16, 0:16], new[0:16, 0:16])


def test_write_then_read_through_same_dataset(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, SPECS["chunked"])
    with ngio_async.open(str(tmp_path), mode="r+") as ds:
        level = ds.levels[0]
        np.testing.assert_array_equal(level[0:16, 0:16], data[0:16, 0:16])
        level[0:32, 0:32] = 7
        np.testing.assert_array_equal(level[0:16, 16:32], 7)
        np.testing.assert_array_equal(level[16:32, 0:16], 7)
    with ngio_async.open(str(tmp_path)) as ds:  # and a read-only open after a write
        level = ds.levels[0]
        np.testing.assert_array_equal(level[0:16, 0:16], 7)
        with ngio_async.open(str(tmp_path), mode="r+") as writer:
            writer.levels[0][0:32, 0:32] = 9  # another writer
        np.testing.assert_array_equal(level[0:16, 16:32], 9)


def _chunk(value: int) -> np.ndarray[Any, Any]:
    return np.full((4, 4), value, dtype=np.uint16)


def test_part_keep_budget_and_age() -> None:
    """At most ``budget`` bytes held (oldest dropped for room); a chunk older than
    ``seconds`` is dropped; one read whole is never kept; a changed version is read anew."""
    size = _chunk(0).nbytes
    keep = PartKeep(2 * size, size, 60.0)
    for k in range(3):
        assert keep.claim(f"c{k}", 4, 16, "v1") is Fetch.KEEP
        keep.keep(f"c{k}", _chunk(k))
    assert keep.held_bytes == keep.peak_bytes == 2 * size
    assert keep.claim("c0", 4, 16, "v1") is Fetch.KEEP  # dropped for c2's room: read again
    keep.keep("c0", _chunk(0))
    got = keep.claim("c2", 4, 16, "v1")
    assert isinstance(got, np.ndarray) and got[0, 0] == 2
    assert keep.claim("c2", 4, 16, "v2") is Fetch.ONCE  # its file changed: dropped
    assert keep.claim("c2", 4, 16, "v2") is Fetch.KEEP
    assert keep.claim("c3", 16, 16, "v1") is Fetch.ONCE  # read whole: nothing to share
    assert keep.claim("c4", 4, 16, None) is Fetch.ONCE  # no version: never kept
    assert keep.peak_bytes == 2 * size
    young = PartKeep(2 * size, size, 0.0)
    assert young.claim("c0", 4, 16, "v1") is Fetch.KEEP
    young.keep("c0", _chunk(0))
    assert young.claim("c0", 4, 16, "v1") is Fetch.KEEP  # aged out (0 s): read again
    young.keep("c0", Fetch.FAILED)
    assert young.held_bytes == 0


def test_part_keep_drops_when_all_read_and_hands_failures_back() -> None:
    size = _chunk(0).nbytes
    keep = PartKeep(4 * size, size, 60.0)
    assert keep.claim("c", 8, 16, "v") is Fetch.KEEP
    waiting = keep.claim("c", 4, 16, "v")  # while it is decoded: wait for it
    assert isinstance(waiting, Pending)
    keep.keep("c", _chunk(5))
    assert waiting.wait_blocking() is not None and keep.held_bytes == size
    got = keep.claim("c", 4, 16, "v")  # the last quarter: dropped
    assert isinstance(got, np.ndarray) and keep.held_bytes == 0 and not keep.holds("c")
    assert keep.claim("d", 8, 16, "v") is Fetch.KEEP
    waiting = keep.claim("d", 4, 16, "v")
    assert isinstance(waiting, Pending)
    keep.keep("d", Fetch.FAILED)  # its read failed: the waiter reads it itself
    assert waiting.wait_blocking() is Fetch.FAILED
    assert (keep.held_bytes, keep.hits) == (0, 2)  # (c's two; d's waiter not)


def test_part_keep_drops_aged_chunks_without_reads() -> None:
    """A chunk held when no read comes any more is dropped by the keep's timer thread."""
    size = _chunk(0).nbytes
    keep = PartKeep(4 * size, size, 0.05)
    assert keep.claim("c", 4, 16, "v") is Fetch.KEEP
    keep.keep("c", _chunk(1))
    assert keep.held_bytes == size
    deadline = time.monotonic() + 30  # (a liveness bound, not a timing assertion)
    while keep.held_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keep.held_bytes == 0 and not keep.holds("c")
    assert keep.claim("d", 4, 16, "v") is Fetch.KEEP  # and it keeps again afterwards
    keep.keep("d", _chunk(2))
    while keep.held_bytes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keep.held_bytes == 0
