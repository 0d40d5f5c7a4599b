"""Shard indexes kept across reads (and within one read operation) are bounded by bytes, not
only by count: a shard of 100,000 inner chunks has a 1.6 MB index, and 4,096 of them were
6.5 GB. At most 64 MiB of indexes per cache, least recently used dropped first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from images import Spec, write_image

import ngio_async
from ngio_async import _sync_fast
from ngio_async.codecs import ShardIndex
from ngio_async.images import _index_cache
from ngio_async.images._index_cache import _ENTRY_BYTES, _INDEX_BYTES, _MISSING, IndexCache

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _index(chunks: int) -> ShardIndex:
    return ShardIndex(np.zeros((chunks, 2), dtype=np.uint64))


def test_indexes_bounded_by_bytes() -> None:
    cache = IndexCache()
    big = 100_000 * 16 + _ENTRY_BYTES  # a shard of 100,000 inner chunks: 1.6 MB
    fits = _INDEX_BYTES // big
    for k in range(fits + 20):
        cache.put(f"s{k}", _index(100_000), f"v{k}")
        if k == fits // 2:
            assert cache.get("s0") is not _MISSING  # used: kept past the older ones
    assert cache.nbytes == fits * big <= _INDEX_BYTES
    kept = [k for k in range(fits + 20) if cache.get(f"s{k}") is not _MISSING]
    assert len(kept) == fits  # was fits + 20: 4,096 of them before the first was dropped
    assert kept[0] == 0 and kept[1:] == list(range(21, fits + 20))
    assert cache.version("s1") is None and cache.version("s0") == "v0"
    cache.put("s0", None)  # replaced by "no shard": its bytes given back
    cache.pop("s21")
    assert cache.nbytes == (fits - 2) * big + _ENTRY_BYTES


def test_one_index_larger_than_the_bound_is_kept() -> None:
    cache = IndexCache()
    huge = _INDEX_BYTES // 16 + 1
    cache.put("a", _index(10))
    cache.put("b", _index(huge))
    assert cache.get("a") is _MISSING and cache.get("b") is not _MISSING  # the last one put
    cache.put("c", _index(10))
    assert cache.get("b") is _MISSING and cache.get("c") is not _MISSING


def test_kept_local_indexes_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local read-only sharded level's blocking reads keep at most the bound's worth of
    shard indexes (here 3 of the 16 shards), and read right."""
    (data,) = write_image(
        tmp_path, Spec(shape=(128, 128), chunks=(16, 16), shards=(32, 32), levels=1, seed=5)
    )
    entry = 4 * 16 + _ENTRY_BYTES  # 2x2 inner chunks: offset and size of each
    monkeypatch.setattr(_index_cache, "_INDEX_BYTES", 3 * entry)
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        for y in range(0, 128, 16):
            for x in range(0, 128, 16):
                sel = (slice(y, y + 16), slice(x, x + 16))
                np.testing.assert_array_equal(level[sel], data[sel])
        kept = _sync_fast._local_kept[level._level]
        held = [f"0/c/{i}/{j}" for i in range(4) for j in range(4)]
        assert [k for k in held if kept.get(k) is not _MISSING] == held[-3:]
        assert kept.nbytes == 3 * entry
