"""workers25: a process that unpickles the images a client opens again and again (a dask
worker) keeps one opening of each image, not every earlier one with its read cache: an
opening a newer one of the same image superseded is closed once no task uses it."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)

#: the "worker": unpickles each pickled opening in turn, reads with it (as a task), drops it;
#: ``hold`` keeps the copies of the given indexes in use until the end (a task still running)
_WORKER = """
import gc, json, pickle, sys, threading
from ngio_async import _sync_api

blobs = pickle.load(open(sys.argv[1], "rb"))
hold = set(json.loads(sys.argv[2]))
held = []
sums = []
for i, blob in enumerate(blobs):
    ds = pickle.loads(blob)
    sums.append(int(ds.levels[0][0:16, 0:16].sum()))
    if i in hold:
        held.append(ds)
    del ds
    gc.collect()
    for t in threading.enumerate():  # the closing threads of the dropped copies
        if t.name in ("ngio_async-close", "ngio_async-release"):
            t.join()


def report():
    opened = [
        e.anchor
        for e in _sync_api._shared._entries.values()
        if e.anchor is not None and not e.anchor._runner.closed
    ]
    cached = sum(getattr(a.async_dataset.read_cache, "held_bytes", 0) for a in opened)
    return {"opened": len(opened), "cached": cached}


out = {"sums": sums, **report()}
for ds in held:
    ds.levels[0][0:16, 0:16]  # still usable
    del ds
held.clear()
gc.collect()
for t in threading.enumerate():
    if t.name in ("ngio_async-close", "ngio_async-release"):
        t.join()
out["after"] = report()
print(json.dumps(out))
"""


def _worker(tmp_path: Path, blobs: list[bytes], hold: list[int]) -> dict[str, object]:
    path = tmp_path / "blobs.pickle"
    path.write_bytes(pickle.dumps(blobs))
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(path), json.dumps(hold)],
        capture_output=True,
        text=True,
        check=True,
        timeout=100,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _reopenings(url: Path, n: int, limits: ngio_async.Limits) -> list[bytes]:
    """The image pickled after each of ``n`` openings, its pixels rewritten in between."""
    blobs = []
    with ngio_async.create(
        url, shape=(64, 64), dtype="uint16", axes="yx", chunks=(16, 16), levels=1
    ) as writer:
        for i in range(n):
            writer[...] = i
            with ngio_async.open(url, limits=limits) as ds:
                blobs.append(pickle.dumps(ds))
    return blobs


def test_a_worker_keeps_one_opening_of_an_image_opened_again_and_again(tmp_path: Path) -> None:
    n = 6
    blobs = _reopenings(tmp_path / "img.ome.zarr", n, ngio_async.Limits(read_cache_bytes=2**22))
    result = _worker(tmp_path, blobs, hold=[])
    assert result["sums"] == [(n - 1) * 16 * 16] * n  # (read after the last write)
    # was: all 6 open, each with its cache (up to 32 of them)
    assert result["opened"] == 1
    assert result["cached"] == 16 * 16 * 2  # the last opening's one chunk


def test_a_superseded_opening_in_use_stays_open_until_its_task_ends(tmp_path: Path) -> None:
    n = 4
    blobs = _reopenings(tmp_path / "img.ome.zarr", n, ngio_async.Limits(read_cache_bytes=2**22))
    result = _worker(tmp_path, blobs, hold=[0])
    assert result["sums"] == [(n - 1) * 16 * 16] * n
    assert result["opened"] == 2  # the first (still in use) and the last
    assert result["after"] == {"opened": 1, "cached": 16 * 16 * 2}


def test_two_images_keep_an_opening_each(tmp_path: Path) -> None:
    limits = ngio_async.Limits(read_cache_bytes=2**22)
    a = _reopenings(tmp_path / "a.ome.zarr", 3, limits)
    b = _reopenings(tmp_path / "b.ome.zarr", 3, limits)
    result = _worker(tmp_path, [a[0], b[0], a[1], b[1], a[2], b[2]], hold=[])
    assert result["opened"] == 2


def test_an_older_opening_asked_for_again_does_not_close_the_newer(tmp_path: Path) -> None:
    limits = ngio_async.Limits(read_cache_bytes=2**22)
    blobs = _reopenings(tmp_path / "img.ome.zarr", 2, limits)
    result = _worker(tmp_path, [blobs[0], blobs[1], blobs[0], blobs[1]], hold=[])
    assert result["sums"] == [256] * 4
    assert result["opened"] == 1  # the newer one, kept for the next tasks


def test_without_a_read_cache_unchanged_metadata_shares_one_opening(tmp_path: Path) -> None:
    blobs = _reopenings(tmp_path / "img.ome.zarr", 3, ngio_async.Limits())
    result = _worker(tmp_path, blobs, hold=[])
    assert result["sums"] == [512] * 3
    assert result["opened"] == 1
    assert result["cached"] == 0


def _openings_here() -> tuple[int, int]:
    """(open shared openings, their cached bytes) in this process (run in each worker)."""
    import gc

    from ngio_async import _sync_api

    gc.collect()
    for t in threading.enumerate():
        if t.name in ("ngio_async-close", "ngio_async-release"):
            t.join()
    opened = [
        e.anchor
        for e in list(_sync_api._shared._entries.values())
        if e.anchor is not None and not e.anchor._runner.closed
    ]
    cached = 0
    for a in opened:
        cache = a.async_dataset.read_cache if isinstance(a, _sync_api.SyncDataset) else None
        cached += 0 if cache is None else int(cache.held_bytes)
    return len(opened), cached


def test_dask_workers_keep_one_opening_per_image(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    url = tmp_path / "img.ome.zarr"
    limits = ngio_async.Limits(read_cache_bytes=2**22)
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=1,
            threads_per_worker=2,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as client,
        ngio_async.create(
            url, shape=(64, 64), dtype="uint16", axes="yx", chunks=(16, 16), levels=1
        ) as writer,
    ):
        for i in range(5):
            writer[...] = i
            with ngio_async.open(url, limits=limits) as ds:
                assert int(da.from_array(ds, chunks=(16, 16)).sum().compute()) == i * 64 * 64
        counts = client.run(_openings_here)
    # was: 5 openings, each holding its 16 chunks
    assert list(counts.values()) == [(1, 64 * 64 * 2)]
