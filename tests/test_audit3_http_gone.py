"""``410 Gone`` is a missing object on every HTTP client (audit of issue 3).

The HTTP store says "404/410 is a missing key", and aiohttp's GETs take it so, but the
default backend's GETs by obstore's client raised ``StoreError: 410 Gone``: the same chunk
read as fill values with ``backend="aiohttp"`` and failed the read by default.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

DATA = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32) + 1


@pytest.fixture
def image(http_root: Path) -> None:
    with ngio_async.create(
        http_root / "img.ome.zarr", shape=DATA.shape, dtype="uint16", axes="cyx",
        chunks=(1, 16, 16), ngff_version="0.4",
    ) as ds:  # fmt: skip
        ds.write(DATA)


@pytest.mark.parametrize("backend", [None, "aiohttp"])
def test_gone_chunks_read_as_fill_values(
    http_server: StaticServer, image: None, backend: str | None
) -> None:
    options: dict[str, Any] = {} if backend is None else {"backend": backend}
    with ngio_async.open(http_server.url + "img.ome.zarr", **options) as ds:
        assert np.array_equal(ds[0, :16, :16], DATA[0, :16, :16])  # obstore's client in use
        http_server.faults.status, http_server.faults.status_times = 410, -1
        assert not ds[1, 16:, 16:].any()  # one chunk: was StoreError('410 Gone') by default
        assert not ds[...].any()  # every chunk, in a batch
