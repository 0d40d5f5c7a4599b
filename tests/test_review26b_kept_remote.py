"""Review of the blocking dataset keeping its levels weakly (bb00976): ``ds[...]`` of a remote
read-only sharded image reuses the shard indexes earlier reads decoded (one GET per read),
though no level object outlives a read now. Each ``ds[...]`` made a new blocking level, whose
kept indexes went with it: every read fetched its shard's index again (two GETs per read).
A loopback HTTP server counts the GETs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_reads_through_the_dataset_reuse_shard_indexes(
    http_server: StaticServer, http_root: Path
) -> None:
    spec = Spec(shape=(128, 128), chunks=(32, 32), shards=(64, 64), levels=1, seed=1)
    (data,) = write_image(http_root / "img.zarr", spec)
    with ngio_async.open(f"{http_server.url}img.zarr") as ds:
        np.testing.assert_array_equal(ds[0:8, 0:8], data[0:8, 0:8])  # (reads the index)
        before = http_server.count("GET")
        for i in range(5):  # one inner chunk of the same shard each
            np.testing.assert_array_equal(ds[i : i + 8, 0:8], data[i : i + 8, 0:8])
        assert http_server.count("GET") - before == 5  # was 10: the index again each read
