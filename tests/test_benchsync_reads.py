"""The blocking reads' short ways (``ngio_async/_sync_fast.py``), by requests and loop round trips.

- A remote read-only sharded level keeps the shard indexes its reads decoded, with the shard's
  version (ETag): a small read after the first costs one GET (its chunk), not two (index and
  chunk); dask's threads over it read each shard's index once. A shard rewritten by another
  writer is read right (the chunk read is conditional on the version: the index is read again);
  a server that tells no version gets no index reused.
- A small local read runs in the calling thread: no round trip through the event loop.

Real files and the loopback HTTP server of ``servers.py`` (it counts the requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

SHARDED = Spec(shape=(2, 128, 128), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1, seed=3)
CHUNKED = Spec(shape=(2, 128, 128), chunks=(1, 32, 32), levels=1, seed=4)


def _served(http_root: Path, spec: Spec) -> np.ndarray[Any, Any]:
    return write_image(http_root / "img.zarr", spec)[0]


def test_remote_sharded_reads_reuse_the_indexes(http_root: Path, http_server: StaticServer) -> None:
    """Ten small reads in one shard: 1 + 10 GETs (its index once), the right pixels."""
    data = _served(http_root, SHARDED)
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        lv = ds.levels[0]
        http_server.reset()
        for k in range(10):
            y, x = 3 * k, 40 - 2 * k  # inside the shard (0, 0, 0), one inner chunk or a few
            np.testing.assert_array_equal(
                lv[0, y : y + 5, x : x + 5], data[0, y : y + 5, x : x + 5]
            )
        # its index once, then one GET a read (the inner chunks of a read coalesce: 512 bytes
        # each); before: the index again on every read, 20
        assert http_server.count("GET") == 11
        assert http_server.count("GET", "/img.zarr/0/c/0/0/0") == 11
        # ds[...] (level 0) shares them too
        http_server.reset()
        np.testing.assert_array_equal(ds[1, 70:75, 70:75], data[1, 70:75, 70:75])
        np.testing.assert_array_equal(ds[1, 80:85, 80:85], data[1, 80:85, 80:85])
        assert http_server.count("GET") == 3  # shard (1, 1, 1): its index, then a chunk each


def test_rewritten_shard_is_read_anew(http_root: Path, http_server: StaticServer) -> None:
    """Another writer rewrites a shard between two reads: the second read sees its pixels."""
    data = _served(http_root, SHARDED)
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        lv = ds.levels[0]
        np.testing.assert_array_equal(lv[0, 0:8, 0:8], data[0, 0:8, 0:8])
        arr = zarr.open_array(http_root / "img.zarr" / "0", mode="r+")
        new = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 65000
        arr[0, 0:64, 0:64] = new  # the whole shard (0, 0, 0) written again, its layout too
        http_server.reset()
        np.testing.assert_array_equal(lv[0, 0:8, 0:8], new[0:8, 0:8])
        np.testing.assert_array_equal(lv[0, 20:30, 33:47], new[20:30, 33:47])
        assert http_server.count("GET", "/img.zarr/0/c/0/0/0") >= 2  # the index read again


def test_no_versions_no_reuse(http_root: Path, http_server: StaticServer) -> None:
    """A server that tells no ETag: each read fetches its index (2 GETs), a rewrite is seen."""
    data = _served(http_root, SHARDED)
    http_server.faults.no_validators = True
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        lv = ds.levels[0]
        http_server.reset()
        http_server.faults.no_validators = True
        for k in range(3):
            np.testing.assert_array_equal(lv[0, k : k + 4, 0:4], data[0, k : k + 4, 0:4])
        assert http_server.count("GET") == 6
        arr = zarr.open_array(http_root / "img.zarr" / "0", mode="r+")
        arr[0, 0:64, 0:64] = 9
        np.testing.assert_array_equal(lv[0, 0:4, 0:4], np.full((4, 4), 9, np.uint16))


def test_dask_threads_read_each_index_once(http_root: Path, http_server: StaticServer) -> None:
    """dask (8 threads) over a remote sharded level by inner chunks: the sum, with each of
    the 8 shards' indexes read about once."""
    da = pytest.importorskip("dask.array")
    data = _served(http_root, SHARDED)
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        http_server.reset()
        arr = da.from_array(ds.levels[0], chunks=(1, 16, 16), asarray=True)
        got = int(arr.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=8))
        assert got == int(data.sum(dtype=np.uint64))
        gets = http_server.count("GET")
        # 128 inner chunks and the 8 indexes (two threads may start one index read together);
        # before: 173 (an index read by every call that found none in flight)
        assert 128 + 8 <= gets <= 128 + 16, gets


class _CountingRunner:
    """Counts the calls a sync object sends through the event loop (then runs them)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def call(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.inner.call(*args, **kwargs)


@pytest.mark.parametrize("spec", [SHARDED, CHUNKED], ids=["sharded", "chunked"])
def test_small_local_reads_skip_the_loop(tmp_path: Path, spec: Spec) -> None:
    """Regions in one stored object or a few chunks: read in the calling thread (no loop call),
    the same pixels and errors as the level's ``getitem``; larger ones too (split with the
    decode threads, see test_blockperf25_split.py); strided and fancy ones go through the loop."""
    data = write_image(tmp_path / "img.zarr", spec)[0]
    with ngio_async.open(tmp_path / "img.zarr") as ds:
        lv = ds.levels[0]
        spy = _CountingRunner(lv._runner)
        lv._runner = spy  # type: ignore[assignment]
        for sel in [
            (0, slice(5, 9), slice(60, 70)),
            (1, 127, 127),
            (np.int64(1), slice(-8, None), slice(-20, -1)),
            (Ellipsis, slice(40, 44), slice(40, 44)),
            (slice(0, 1), slice(0, 32), slice(0, 32)),
            (0, slice(100, 500), slice(None, 4)),
        ]:
            np.testing.assert_array_equal(lv[sel], data[sel])  # type: ignore[index]
        assert spy.calls == 0
        np.testing.assert_array_equal(lv[0], data[0])  # many chunks: no loop call either
        assert spy.calls == 0
        np.testing.assert_array_equal(lv[0, ::2, 3:9], data[0, ::2, 3:9])  # strided: the loop
        np.testing.assert_array_equal(lv[[0, 1], 4, 5], data[[0, 1], 4, 5])  # fancy: too
        assert spy.calls == 2
        with pytest.raises(IndexError):
            lv[2, 0, 0]
    with pytest.raises(ngio_async.ClosedError):
        lv[0, 0, 0]


def test_small_local_reads_use_the_read_cache(tmp_path: Path) -> None:
    """With ``Limits.read_cache_bytes``: small local reads in the calling thread still take
    their chunks from the read cache (hits counted) and never call the loop."""
    data = write_image(tmp_path / "img.zarr", CHUNKED)[0]
    limits = ngio_async.Limits(read_cache_bytes=1 << 20)
    with ngio_async.open(tmp_path / "img.zarr", limits=limits) as ds:
        lv = ds.levels[0]
        spy = _CountingRunner(lv._runner)
        lv._runner = spy  # type: ignore[assignment]
        np.testing.assert_array_equal(lv[0, 5:40, 5:40], data[0, 5:40, 5:40])  # 4 chunks
        cache = ds.read_cache
        assert cache is not None and cache.hits == 0
        np.testing.assert_array_equal(lv[0, 10:20, 10:20], data[0, 10:20, 10:20])
        np.testing.assert_array_equal(lv[0, 33:36, 2:60], data[0, 33:36, 2:60])
        assert cache.hits == 3 and spy.calls == 0


def test_larger_local_reads_skip_the_loop_while_others_read(tmp_path: Path) -> None:
    """A 16-chunk local region: split between the calling thread and the decode threads when
    it is the only blocking read; in the calling thread while another is in flight (dask's
    threads); never through the loop."""
    from ngio_async._sync_fast import reading

    data = write_image(tmp_path / "img.zarr", CHUNKED)[0]
    with ngio_async.open(tmp_path / "img.zarr") as ds:
        lv = ds.levels[0]
        spy = _CountingRunner(lv._runner)
        lv._runner = spy  # type: ignore[assignment]
        np.testing.assert_array_equal(lv[1], data[1])
        with reading():  # another thread's read in flight
            np.testing.assert_array_equal(lv[1], data[1])
            np.testing.assert_array_equal(lv[0, 3:], data[0, 3:])
        assert spy.calls == 0
