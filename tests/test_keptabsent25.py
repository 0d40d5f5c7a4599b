"""A remote read-only sharded level keeps the shard indexes its blocking reads decoded. A read
whose chunks such a kept index calls absent used to make no request at all, so once another
writer had stored those chunks (the shard rewritten) the reader kept seeing the fill value.
It now checks the shard's version first (one HEAD) and reads the new index when it changed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import zarr
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

SHARDED = Spec(shape=(1, 64, 64), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1, seed=5)


def test_chunks_stored_after_a_read_saw_them_absent_are_read(
    http_root: Path, http_server: StaticServer
) -> None:
    data = write_image(http_root / "img.zarr", SHARDED)[0]
    arr = zarr.open_array(http_root / "img.zarr" / "0", mode="r+")
    arr[0, 32:48, 32:48] = 0  # the fill value: that inner chunk is no longer stored
    with ngio_async.open(http_server.url + "img.zarr") as ds:
        lv = ds.levels[0]
        np.testing.assert_array_equal(lv[0, 0:8, 0:8], data[0, 0:8, 0:8])  # its index kept
        http_server.reset()
        assert not lv[0, 36:44, 36:44].any()  # absent: the fill value
        assert http_server.count("GET") == 0  # (the kept index: no GET of it)
        arr[0, 32:48, 32:48] = 9  # another writer stores the chunk: the shard is rewritten
        http_server.reset()
        np.testing.assert_array_equal(lv[0, 36:44, 36:44], np.full((8, 8), 9, arr.dtype))
        assert http_server.count("GET", "/img.zarr/0/c/0/0/0") >= 2  # its index read again
        np.testing.assert_array_equal(lv[0, 0:8, 0:8], data[0, 0:8, 0:8])
