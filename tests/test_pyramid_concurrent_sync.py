"""Two threads writing with ``pyramid=True`` through the sync API, each on its own open of one
image: a lower-level tile both writes share ends equal to the pyramid rebuilt from level 0
(both opens run on the sync API's one event loop, so they share the tiles' write locks)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from test_pyramid_concurrent import HeldStore, pyramid_of

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


def test_two_threads_rebuilding_one_tile_end_like_level_0(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(
        url, shape=(32, 32), dtype="uint16", chunks=(16, 16), shards=False, levels=2
    ):
        pass
    b_put = threading.Event()

    class Counted(InstrumentedStore):
        async def _put_once(self, key: str, data: Any, *, if_absent: bool) -> bool:
            done = await super()._put_once(key, data, if_absent=if_absent)
            if key == "1/c/0/0":
                b_put.set()
            return done

    def waiting() -> bool:  # B's rebuild waits for the tile A's rebuild holds
        locks = b._dataset.levels[1]._write_locks._locks
        return locks.get("1/c/0/0", (None, 0))[1] > 1

    a_store = HeldStore(open_store(url), "0/c/1/1", lambda: b_put.is_set() or waiting())
    with (
        ngio_async.open(a_store, mode="r+") as a,
        ngio_async.open(Counted(open_store(url)), mode="r+") as b,
    ):
        errors: list[BaseException] = []

        def write_b() -> None:
            try:
                assert a_store.held.wait(30)  # A's rebuild read level 0 without B's chunk
                b.write(np.full((16, 16), 2), y=slice(16, 32), x=slice(16, 32), pyramid=True)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(exc)

        a_store.armed = True
        thread = threading.Thread(target=write_b)
        thread.start()
        a.write(np.full((16, 16), 1), y=slice(0, 16), x=slice(0, 16), pyramid=True)
        thread.join(60)
        assert not thread.is_alive() and not errors, errors
        level0 = b.levels[0][...]
        for i, want in enumerate(pyramid_of(level0, 2)):
            np.testing.assert_array_equal(b.levels[i][...], want, err_msg=f"level {i}")
