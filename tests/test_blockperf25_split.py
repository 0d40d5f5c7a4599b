"""A lone caller's larger local read (``SyncLevel[...]``) is split between the calling thread and
the dataset's free decode threads, with no event-loop round trip (``_sync_fast.read_local_split``):
counted loop calls and worker hand-offs, the decode-thread bound, errors, and a close from
another thread. Real files; the only fault injected is a chunk read that waits."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async._workers import Workers
from ngio_async.images import Level
from ngio_async.sync import Runner

if TYPE_CHECKING:
    from pathlib import Path

# 2 MiB planes of 64 chunks (4 shards): a plane's read lends threads (_SHARE_BYTES: 512 KiB)
CHUNKED = Spec(shape=(2, 1024, 1024), chunks=(1, 128, 128), levels=1, seed=5)
SHARDED = Spec(shape=(2, 1024, 1024), chunks=(1, 128, 128), shards=(1, 512, 512), levels=1, seed=6)


def _given_back(workers: Workers) -> bool:
    """Whether every lent thread is back (a lent thread may return just after the read)."""
    deadline = time.monotonic() + 20
    while workers.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    return workers.busy == 0


class _Counts:
    """Counts loop calls (``Runner._run``), decode-thread calls made through the loop
    (``Workers.run``), threads lent (``Workers.lend``) and the most reads at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop = self.run = self.lent = self.most = 0
        self._now = 0
        self._lock = threading.Lock()
        run, run_async, lend = Runner._run, Workers.run, Workers.lend
        read = Level.read_many_blocking

        def loop_spy(runner: Runner, job: Any) -> Any:
            self.loop += 1
            return run(runner, job)

        async def run_spy(workers: Workers, fn: Any, *args: Any) -> Any:
            self.run += 1
            return await run_async(workers, fn, *args)

        def lend_spy(workers: Workers, fn: Any) -> bool:
            lent = lend(workers, fn)
            self.lent += lent
            return lent

        def read_spy(level: Level, *args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self._now += 1
                self.most = max(self.most, self._now)
            try:
                return read(level, *args, **kwargs)
            finally:
                with self._lock:
                    self._now -= 1

        monkeypatch.setattr(Runner, "_run", loop_spy)
        monkeypatch.setattr(Workers, "run", run_spy)
        monkeypatch.setattr(Workers, "lend", lend_spy)
        monkeypatch.setattr(Level, "read_many_blocking", read_spy)


@pytest.mark.parametrize("spec", [CHUNKED, SHARDED], ids=["chunked", "sharded"])
def test_a_lone_larger_local_read_makes_no_loop_round_trip(
    tmp_path: Path, spec: Spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plane of 64 chunks (4 shards), a region across shards, a column, with and without the read
    cache: the right pixels, no loop call, no decode-thread call through the loop; the
    decode threads lent (they were free)."""
    data = write_image(tmp_path / "img.zarr", spec)[0]
    for limits in (None, ngio_async.Limits(read_cache_bytes=4 << 20)):
        with ngio_async.open(tmp_path / "img.zarr", limits=limits) as ds:
            lv = ds.levels[0]
            counts = _Counts(monkeypatch)
            np.testing.assert_array_equal(lv[1], data[1])
            np.testing.assert_array_equal(lv[:, 70:1010, 300:990], data[:, 70:1010, 300:990])
            np.testing.assert_array_equal(lv[0, 3:1000, 5], data[0, 3:1000, 5])
            assert (counts.loop, counts.run) == (0, 0)
            assert counts.lent >= 1
            monkeypatch.undo()
            assert _given_back(lv._level._workers)  # every lent thread given back


def test_the_decode_thread_bound_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Limits(decode_threads=1)``: one thread lent, so at most two reads at once (the
    caller's and the lent thread's)."""
    data = write_image(tmp_path / "img.zarr", CHUNKED)[0]
    with ngio_async.open(tmp_path / "img.zarr", limits=ngio_async.Limits(decode_threads=1)) as ds:
        lv = ds.levels[0]
        counts = _Counts(monkeypatch)
        for _ in range(5):
            np.testing.assert_array_equal(lv[:], data)
        assert counts.lent <= 5 and counts.most <= 2
        assert counts.loop == 0


def test_a_corrupt_chunk_fails_the_read_and_names_it(tmp_path: Path) -> None:
    data = write_image(tmp_path / "img.zarr", CHUNKED)[0]
    (tmp_path / "img.zarr" / "0" / "c" / "1" / "3" / "5").write_bytes(b"not zstd at all")
    with ngio_async.open(tmp_path / "img.zarr") as ds:
        lv = ds.levels[0]
        with pytest.raises(Exception, match=r"c/1/3/5") as info:
            lv[1]
        assert not isinstance(info.value, AssertionError)
        np.testing.assert_array_equal(lv[0], data[0])  # the other plane still reads
        assert _given_back(lv._level._workers)


def test_close_from_another_thread_stops_the_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset is closed while a split read waits on one chunk: the read raises
    ClosedError once that chunk is in, and its lent threads are given back."""
    write_image(tmp_path / "img.zarr", CHUNKED)
    reached, release = threading.Event(), threading.Event()
    with ngio_async.open(tmp_path / "img.zarr") as ds:
        lv = ds.levels[0]
        store = type(lv._level.store)
        get = store.get_blocking

        def slow_get(self: Any, key: str, *args: Any) -> Any:
            if key.endswith("c/0/2/2"):
                reached.set()
                assert release.wait(20)
            return get(self, key, *args)

        monkeypatch.setattr(store, "get_blocking", slow_get)
        raised: list[BaseException] = []

        def read() -> None:
            try:
                lv[0]
            except BaseException as exc:  # noqa: BLE001 - checked below
                raised.append(exc)

        t = threading.Thread(target=read)
        t.start()
        assert reached.wait(20)
        ds.close()
        release.set()
        t.join(20)
        assert not t.is_alive()
        assert len(raised) == 1 and isinstance(raised[0], ngio_async.ClosedError)
        assert _given_back(lv._level._workers)
