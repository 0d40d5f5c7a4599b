"""HTTP answers that are, and are not, a missing chunk (audit of issue 3).

- A ``405`` in a batch of GETs is no missing chunk. obstore's HTTP client reads ``405`` as a
  missing object; a lone GET's first miss is asked again of aiohttp, but the batched GETs of
  whole-level reads and tile streams (``get_many``) took it as it came: a chunk answered ``405``
  read as fill values, silently. Such an answer is now fetched again alone (``get``, with that
  check); a ``404`` stays one GET and fill.
- ``410 Gone`` is a missing object on every HTTP client. The HTTP store says "404/410 is a
  missing key", and aiohttp's GETs take it so, but the default backend's GETs by obstore's
  client raised ``StoreError: 410 Gone``: the same chunk read as fill values with
  ``backend="aiohttp"`` and failed the read by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

DATA = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64) + 1  # no pixel is fill


@pytest.fixture
def image(http_root: Path) -> None:
    with ngio_async.create(
        http_root / "img.ome.zarr", shape=DATA.shape, dtype="uint16", axes="cyx",
        chunks=(1, 16, 16), ngff_version="0.4",
    ) as ds:  # fmt: skip
        ds.write(DATA)


@pytest.mark.parametrize("read", ["whole", "tiles"])
def test_a_405_in_a_batch_is_no_missing_chunk(
    http_server: StaticServer, image: None, read: str
) -> None:
    with ngio_async.open(http_server.url + "img.ome.zarr") as ds:
        assert np.array_equal(ds[0, :16, :16], DATA[0, :16, :16])  # obstore's client in use
        http_server.faults.status, http_server.faults.status_times = 405, 1
        if read == "whole":
            got = ds[...]
        else:
            got = np.zeros_like(DATA)
            for tile in ds.tiles(shape=(1, 16, 16)):
                got[tile.region] = tile.data
    assert np.array_equal(got, DATA)  # was: one chunk of zeros


def test_misses_in_batches_stay_fill_values(http_root: Path, http_server: StaticServer) -> None:
    with ngio_async.create(
        http_root / "sparse.ome.zarr", shape=(64, 64), dtype="uint8", axes="yx",
        chunks=(16, 16), ngff_version="0.4",
    ) as ds:  # fmt: skip
        ds[:16, :16] = 7
    with ngio_async.open(http_server.url + "sparse.ome.zarr") as ds:
        ds[:16, :16]
        http_server.reset()
        expected = np.zeros((64, 64), np.uint8)
        expected[:16, :16] = 7
        assert np.array_equal(ds[...], expected)
        first = http_server.count("GET")
        assert np.array_equal(ds[...], expected)
        assert http_server.count("GET") - first == 16  # a 404 is one GET, as before


@pytest.mark.parametrize("backend", [None, "aiohttp"])
def test_gone_chunks_read_as_fill_values(
    http_server: StaticServer, image: None, backend: str | None
) -> None:
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    with ngio_async.open(http_server.url + "img.ome.zarr", **options) as ds:
        assert np.array_equal(ds[0, :16, :16], DATA[0, :16, :16])  # obstore's client in use
        http_server.faults.status, http_server.faults.status_times = 410, -1
        assert not ds[1, 48:, 48:].any()  # one chunk: was StoreError('410 Gone') by default
        assert not ds[...].any()  # every chunk, in a batch
