"""audit25a: ngio_async as a dask.distributed user runs it (two worker processes on 127.0.0.1):
what the blocking API's pickled images do in the workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """Two worker processes with two threads each, one cluster for the module; its HTTP
    server on a free port of 127.0.0.1 (``dashboard_address=None`` still binds 8787, and
    warns when another cluster holds it)."""
    with (
        distributed.LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=2,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_an_image_opened_again_with_a_read_cache_shows_later_writes_in_the_workers(
    client: Any, tmp_path: Path
) -> None:
    url = tmp_path / "img.ome.zarr"
    limits = ngio_async.Limits(read_cache_bytes=2**24)
    with ngio_async.create(
        url, shape=(64, 64), dtype="uint16", axes="yx", chunks=(16, 16), levels=1
    ) as writer:
        writer[...] = 1
        with ngio_async.open(url, limits=limits) as ds:
            assert int(da.from_array(ds, chunks=(16, 16)).sum().compute()) == 64 * 64
        writer[...] = 2
        # opened again, as the README says to see another program's writes: the workers
        # open it again too (was: they kept their copies' opening, chunks as first read)
        with ngio_async.open(url, limits=limits) as ds:
            blocks = da.from_array(ds, chunks=(16, 16))
            assert int(blocks.sum().compute()) == 2 * 64 * 64
            assert int(blocks.max().compute()) == 2
