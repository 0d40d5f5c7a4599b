"""Soak: a notebook or batch job that opens image after image and never closes them.

A dropped dataset must give its connections back when the last reference goes, not when the
cyclic garbage collector next runs: one that has lived a while (in the oldest generation) waits
for a full collection, and a job dropping remote images meanwhile held ~8 sockets each (419
file descriptors after 50 dropped HTTP images in one measurement; the default limit is 1024).
The collector is kept off here so that only reference counting can release them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import weakref
from typing import TYPE_CHECKING

import pytest
from images import Spec, write_image
from test_obstore_close import _closes_to_zero, _connected

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from servers import StaticServer

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd"),
]
SPEC = Spec(version="0.5", shape=(2, 64, 64), chunks=(1, 16, 16), levels=2)


@contextlib.contextmanager
def _no_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.fixture
def image_url(http_server: StaticServer, http_root: Path) -> str:
    write_image(http_root / "img.zarr", SPEC)
    http_server.faults.delay = 0.005  # the chunk GETs overlap: several connections each
    return f"{http_server.url}img.zarr"


async def test_a_dropped_dataset_is_freed_at_once(
    image_url: str, http_server: StaticServer
) -> None:
    """Opened, looked at and dropped (a notebook going through images): its store's
    connections are closed without the collector."""
    with _no_collector():
        for _ in range(3):
            ds = await ngio_async.open_async(image_url)
            assert ds.shape == (2, 64, 64)
            assert _connected(http_server.port) > 0
            freed = weakref.ref(ds)
            del ds
            assert freed() is None  # was: alive until the collector found the cycle
        # (obstore drops its pools on its own threads)
        assert await _closes_to_zero(http_server.port) == 0  # was: 1 socket per dataset


async def test_a_dataset_dropped_after_reads_is_freed_at_once(
    image_url: str, http_server: StaticServer
) -> None:
    """Its reads' prefetch engines, kept in the cyclic garbage of their cancelled workers,
    no longer hold the levels (and so the store) they read."""
    with _no_collector():
        for _ in range(3):
            ds = await ngio_async.open_async(image_url)
            await ds.read(level=0)
            await ds.read(level=1, z=0)
            assert _connected(http_server.port) > 1
            del ds
        assert await _closes_to_zero(http_server.port) == 0  # was: ~33 sockets per dataset


async def test_labels_and_tables_keep_their_dataset_and_nothing_keeps_them(
    tmp_path: Path,
) -> None:
    """Labels and tables hold their dataset while used (``(await open_async(url)).labels
    .open(name)`` in one expression); the dataset holds them weakly, so no cycle keeps it."""
    write_image(tmp_path, SPEC)
    with _no_collector():
        ds = await ngio_async.open_async(str(tmp_path))
        freed = weakref.ref(ds)
        labels, tables = ds.labels, ds.tables
        assert ds.labels is labels and ds.tables is tables  # one each while they are held
        del ds
        assert freed() is not None  # kept by them
        assert await labels.names() == [] and await tables.names() == []
        del labels, tables
        assert freed() is None  # and by nothing else: freed at once
        assert await (await ngio_async.open_async(str(tmp_path))).tables.names() == []
