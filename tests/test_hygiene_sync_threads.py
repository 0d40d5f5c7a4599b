"""Hygiene: the sync shim driven from several threads (a GUI or service stopping a worker's loop)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers import StaticServer

SPEC = Spec(version="0.4", shape=(1, 64, 64), chunks=(1, 16, 16), levels=1)


def _wait_for(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_tile_loop_can_be_closed_from_another_thread(
    http_server: StaticServer, http_root: Path
) -> None:
    write_image(http_root / "img.zarr", SPEC)
    with ngio_async.open(f"{http_server.url}img.zarr") as ds:
        http_server.faults.delay = 0.5  # every chunk request waits: the consumer blocks in next()
        tiles = ds.tiles()
        outcome: list[str] = []

        def consume() -> None:
            try:
                n = sum(1 for _ in tiles)
                outcome.append(f"all {n} tiles")
            except ngio_async.ClosedError:
                outcome.append("closed")

        worker = threading.Thread(target=consume)
        worker.start()
        try:
            _wait_for(lambda: http_server.count("GET") > 1, "no chunk was asked for")
            tiles.close()  # was: ValueError: generator already executing
            worker.join(0.4)  # less than one request's delay: the loop stopped, not finished
            assert not worker.is_alive()
            assert outcome == ["closed"]  # never a normal end of the loop
        finally:
            http_server.faults.delay = 0
            worker.join(10)
        assert ds[0, :16, :16].shape == (16, 16)  # the dataset is still usable


def test_worker_threads_can_share_one_tile_loop(tmp_path: Path) -> None:
    # a pool of threads pulling from one iterator (a work queue): each tile reaches one of them
    datas = write_image(tmp_path, Spec(version="0.5", shape=(2, 64, 64), chunks=(1, 16, 16)))
    with ngio_async.open(tmp_path) as ds:
        tiles = ds.tiles()
        seen: list[tuple[int, ...]] = []
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for tile in tiles:  # was: ValueError('generator already executing')
                    assert (tile.data == datas[0][tile.region]).all()
                    seen.append(tile.index)
            except BaseException as exc:  # noqa: BLE001 - what the thread saw is the point
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
        assert errors == []
        assert sorted(seen) == [(c, y, x) for c in range(2) for y in range(4) for x in range(4)]
