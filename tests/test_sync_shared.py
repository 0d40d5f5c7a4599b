"""Unpickled copies of a dataset in a worker process share one opened dataset (dask's processes
and distributed schedulers send a copy with every task): opened once, each copy a handle."""

from __future__ import annotations

import multiprocessing
import pickle
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import ClosedError, _sync_api

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

WAIT = 60  # seconds a pool call may take before the test fails (a hung worker)

fork_only = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
# Python 3.12+ warns that fork() in a threaded process may deadlock (not here: nothing is held)
threaded_fork = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


def _metadata_gets(server: StaticServer) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and r.path.endswith("zarr.json"))


@fork_only
@threaded_fork
def test_dask_processes_scheduler_opens_the_image_once_per_worker(
    http_server: StaticServer,
) -> None:
    spec = Spec(version="0.5", shape=(128, 128), chunks=(16, 16), levels=1)
    data = write_image(http_server.root / "img", spec)[0]
    with ngio_async.open(f"{http_server.url}img") as ds:
        http_server.reset()
        arr = da.from_array(ds, chunks=(16, 16))  # type: ignore[no-untyped-call]
        with dask.config.set({"multiprocessing.context": "fork"}):
            out = arr.compute(scheduler="processes", num_workers=2)
    np.testing.assert_array_equal(out, data)
    chunks = sum(1 for r in http_server.requests if "/c/" in r.path)
    assert chunks == 64
    # the group's and the level's zarr.json once per worker (was: 128, twice per task)
    assert _metadata_gets(http_server) <= 2 * 2


def _use_copies(payload: bytes, level_payload: bytes) -> dict[str, Any]:
    """In a worker: several copies of one pickled dataset (and one of its levels)."""
    a, b = pickle.loads(payload), pickle.loads(payload)
    level = pickle.loads(level_payload)
    out: dict[str, Any] = {
        "shared": a.async_dataset is b.async_dataset is level._parent.async_dataset,
        "levels": len(b.levels),
    }
    a.close()  # closes this handle alone
    try:
        a[0, 0]
        out["closed"] = "read"
    except ClosedError:
        out["closed"] = "ClosedError"
    b[...] = np.full((64, 64), 7, "uint16")  # r+ copies write (whole shards: no warning)
    out["b"] = int(b[0:16, 0:16].sum())
    out["level"] = int(level[0, 0])
    b.close()
    level._parent.close()
    return out


@fork_only
@threaded_fork
@pytest.mark.timeout(WAIT)
def test_copies_in_a_worker_share_one_dataset_close_alone_and_write(tmp_path: Path) -> None:
    url = tmp_path / "img.ome.zarr"
    pool = multiprocessing.get_context("fork").Pool(1)
    try:
        with ngio_async.create(
            url, shape=(64, 64), dtype="uint16", axes="yx", chunks=(16, 16), levels=1
        ) as ds:
            ds[...] = np.ones((64, 64), "uint16")
            payloads = (pickle.dumps(ds), pickle.dumps(ds.levels[0]))
            first = pool.apply_async(_use_copies, payloads).get(WAIT)
            assert first == {
                "shared": True,  # was: False, each copy opened the image again
                "levels": 1,
                "closed": "ClosedError",  # the closed handle refuses, the others read on
                "b": 7 * 16 * 16,
                "level": 7,
            }
            np.testing.assert_array_equal(ds[0:16, 0:16], 7)  # the copy's write landed
            # the original changed (a level added): the worker's copies see it, not a stale one
            ds.build_pyramid(levels=2)
            payloads = (pickle.dumps(ds), pickle.dumps(ds.levels[0]))
            second = pool.apply_async(_use_copies, payloads).get(WAIT)
            assert second["shared"] and second["levels"] == 2
    finally:
        pool.terminate()
        pool.join()


def test_unused_shared_datasets_beyond_the_bound_are_closed(tmp_path: Path) -> None:
    spec = Spec(version="0.5", shape=(32, 32), chunks=(16, 16))
    data = {name: write_image(tmp_path / name, spec)[0] for name in "ab"}
    shared = _sync_api._SharedDatasets(1)
    specs = {name: ("zarr", str(tmp_path / name), {"mode": "r"}) for name in "ab"}
    try:
        a1 = shared.handle(b"a", specs["a"])
        a2 = shared.handle(b"a", specs["a"])
        assert a1.async_dataset is a2.async_dataset
        anchor_a = a1._keep
        assert isinstance(anchor_a, ngio_async.SyncDataset)
        a1.close()
        for closed in (a1.labels.names, a1.tiles, a1.writer, lambda: a1.labels.open("x")):
            with pytest.raises(ClosedError):  # was: a closed handle opened its labels anew
                closed()
        b = shared.handle(b"b", specs["b"])  # over the bound, but "a" is still used by a2
        assert not anchor_a._runner.closed
        np.testing.assert_array_equal(a2[...], data["a"])
        np.testing.assert_array_equal(b[...], data["b"])
        a2.close()
        b.close()
        shared.handle(b"a", specs["a"]).close()  # "b" is unused now: closed
        assert b._keep._runner.closed
        assert not anchor_a._runner.closed
    finally:
        shared.close()
    assert anchor_a._runner.closed
