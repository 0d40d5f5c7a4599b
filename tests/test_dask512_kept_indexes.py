"""Small blocking reads of a local read-only sharded level (dask's blocks, one inner chunk
each) share the shard indexes earlier reads decoded: each shard's index is read once, not once
per block; an index is used only with the version of its shard file (inode, mtime, size), so a
shard replaced or deleted since is read again, even by a read of chunks its old index said
were absent. Real files; the index reads are counted by a spy on the store's blocking read."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import CodecError
from ngio_async._sync_fast import plain_selection
from ngio_async.engine import normalize_selection
from ngio_async.images import Level
from ngio_async.stores import SuffixByteRequest

if TYPE_CHECKING:
    from pathlib import Path


# 4 shards of 2x2 inner chunks; version A stores the first row of inner chunks only (shards
# (0, 0) and (0, 1), each with two absent inner chunks); version B stores every chunk
OLD = Spec(
    shape=(128, 128), chunks=(32, 32), shards=(64, 64), levels=1, seed=1,
    written=(slice(0, 32), slice(0, 128)),
)  # fmt: skip
NEW = Spec(shape=(128, 128), chunks=(32, 32), shards=(64, 64), levels=1, seed=2)
BLOCKS = [(slice(y, y + 32), slice(x, x + 32)) for y in range(0, 128, 32) for x in range(0, 128, 32)]  # fmt: skip
SHARD = "0/c/0/0"


def _spy_index_reads(monkeypatch: pytest.MonkeyPatch, level: Any) -> Counter[str]:
    """Counts the shard-index reads (suffix reads) of ``level``'s store, by key."""
    store = level._level.store
    read = store.get_blocking_versioned
    counts: Counter[str] = Counter()

    def spy(key: str, byte_range: Any = None, **kw: Any) -> Any:
        if isinstance(byte_range, SuffixByteRequest):
            counts[key] += 1
        return read(key, byte_range, **kw)

    monkeypatch.setattr(store, "get_blocking_versioned", spy)
    return counts


def test_blocks_read_each_index_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (old,) = write_image(tmp_path, OLD)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        counts = _spy_index_reads(monkeypatch, level)
        for _ in range(3):
            for sel in BLOCKS:
                np.testing.assert_array_equal(level[sel], old[sel])
        stored = {k: n for k, n in counts.items() if k.endswith(("c/0/0", "c/0/1"))}
        assert stored == {"0/c/0/0": 1, "0/c/0/1": 1}  # was 12 each: one per block read
        assert sum(counts.values()) == 2 + 3 * 8  # missing shards: looked for every time


def test_dask_sum_reads_indexes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (new,) = write_image(tmp_path, NEW)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        counts = _spy_index_reads(monkeypatch, level)
        arr = da.from_array(level, chunks=32, asarray=True)  # type: ignore[no-untyped-call]
        want = int(new.sum(dtype=np.uint64))
        assert int(arr.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=4)) == want
        first = sum(counts.values())
        assert 4 <= first <= 16  # (threads starting together may each read one)
        assert int(arr.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=4)) == want
        assert sum(counts.values()) == first  # the second sum reads no index


def test_replaced_shard_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (old,) = write_image(tmp_path / "a", OLD)
    (new,) = write_image(tmp_path / "b", NEW)
    with ngio_async.open(str(tmp_path / "a")) as ds:
        level = ds.levels[0]
        counts = _spy_index_reads(monkeypatch, level)
        for sel in BLOCKS:
            np.testing.assert_array_equal(level[sel], old[sel])
        os.replace(tmp_path / "b" / SHARD, tmp_path / "a" / SHARD)  # as writers replace one
        absent = (slice(32, 64), slice(0, 32))  # absent from the old index: no chunk read
        assert not old[absent].any()
        np.testing.assert_array_equal(level[absent], new[absent])
        stored = (slice(0, 32), slice(32, 64))
        np.testing.assert_array_equal(level[stored], new[stored])
        assert counts[SHARD] == 2  # once per version


def test_deleted_shard_reads_fill(tmp_path: Path) -> None:
    (old,) = write_image(tmp_path, OLD)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        sel = (slice(0, 32), slice(0, 32))
        np.testing.assert_array_equal(level[sel], old[sel])
        os.remove(tmp_path / SHARD)
        assert not level[sel].any()
        assert not level[(slice(32, 64), slice(0, 32))].any()


def test_kept_chunk_reads_skip_planning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block in one stored inner chunk of a shard whose index is kept: one ranged read
    decoded into the output, without the general read (``read_many_blocking``); sub-chunk
    blocks too; an absent chunk goes the general way (fill value, version checked)."""
    (old,) = write_image(tmp_path, OLD)
    general = Counter[str]()
    read = Level.read_many_blocking

    def spy(level: Level, regions: Any, *args: Any, **kw: Any) -> Any:
        general["reads"] += 1
        return read(level, regions, *args, **kw)

    monkeypatch.setattr(Level, "read_many_blocking", spy)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        for sel in BLOCKS:
            np.testing.assert_array_equal(level[sel], old[sel])
        assert general["reads"] == 14  # a stored shard's first read reads its index
        for sel in BLOCKS:
            np.testing.assert_array_equal(level[sel], old[sel])
        assert general["reads"] == 14 + 12  # 4 stored chunks: no general read; 12 absent
        part = (slice(5, 20), slice(40, 63))  # inside inner chunk (0, 1) of shard (0, 0)
        np.testing.assert_array_equal(level[part], old[part])
        np.testing.assert_array_equal(level[7, 33:60], old[7, 33:60])
        assert general["reads"] == 14 + 12


def test_kept_chunk_corrupt_names_chunk(tmp_path: Path) -> None:
    """A stored inner chunk that does not decode raises the general read's ``CodecError``
    (its key and the image's URL), also when the shard's index is kept."""
    write_image(tmp_path, NEW)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        level[0:32, 0:32]  # keeps shard (0, 0)'s index
        st = os.stat(tmp_path / SHARD)
        with open(tmp_path / SHARD, "r+b") as f:  # the first chunk's frame header, in place
            f.write(b"\xff" * 8)
        os.utime(tmp_path / SHARD, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same version
        with pytest.raises(CodecError) as err:
            level[0:32, 0:32]
        assert SHARD in str(err.value)
        assert err.value.url is not None


def test_kept_chunk_of_replaced_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored chunk read with a kept index of a shard replaced since: the new pixels (its
    index read again), not the old index's byte range of the new file."""
    (old,) = write_image(tmp_path / "a", OLD)
    (new,) = write_image(tmp_path / "b", NEW)
    with ngio_async.open(str(tmp_path / "a")) as ds:
        level = ds.levels[0]
        counts = _spy_index_reads(monkeypatch, level)
        sel = (slice(0, 32), slice(32, 64))
        np.testing.assert_array_equal(level[sel], old[sel])
        os.replace(tmp_path / "b" / SHARD, tmp_path / "a" / SHARD)
        np.testing.assert_array_equal(level[sel], new[sel])
        np.testing.assert_array_equal(level[0:32, 0:32], new[0:32, 0:32])
        assert counts[SHARD] == 2


def test_slice_per_axis_selection_as_numpy(tmp_path: Path) -> None:
    """dask's selections (a step-1 slice per axis) are normalised the short way as numpy
    takes them: clamped, negative bounds from the end; an empty one is left to ``getitem``."""
    (new,) = write_image(tmp_path, NEW)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        for sel in [
            (slice(0, 32, None), slice(96, 128, None)),
            (slice(-40, None), slice(None, 200)),
            (slice(5, 6), slice(-3, -1)),
            (slice(None), slice(None, None, None)),
        ]:
            got = plain_selection(level._level, sel)
            assert got == normalize_selection(sel, level.shape)
            np.testing.assert_array_equal(level[sel], new[sel])
        assert plain_selection(level._level, (slice(10, 10), slice(None))) is None
        assert level[10:10, :].shape == (0, 128)
        assert plain_selection(level._level, (slice(0, 8, 2), slice(None))) is None
        np.testing.assert_array_equal(level[0:8:2, :], new[0:8:2, :])
