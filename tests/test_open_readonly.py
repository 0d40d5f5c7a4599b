"""``open(url)`` (mode ``"r"``) never writes: reads, tiles, labels and every refused write leave
the store untouched (no put, no delete), for NGFF 0.4 and 0.5 images and a container."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_validate_bf2raw import container

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("layout", ["0.4", "0.5", "bf2raw"])
async def test_a_read_only_image_never_writes(tmp_path: Path, layout: str) -> None:
    if layout == "bf2raw":
        path = container(tmp_path, "0.5")
    else:
        path = tmp_path / "img.zarr"
        with ngio_async.create(
            str(path), shape=(2, 16, 16), dtype="uint8", axes="cyx", ngff_version=layout
        ) as ds:
            ds.labels.create("cells", dtype="uint8").close()
    store = InstrumentedStore(open_store(str(path)))
    async with store, ngio_async.open_async(store) as ds:
        await ds.read()
        async for _ in ds.tiles():
            pass
        for name in await ds.labels.names():
            async with await ds.labels.open(name) as label:
                await label.read()
        refused = [
            ds.write(np.zeros(ds.shape, ds.dtype)),
            ds.set_channels(labels=[f"c{i}" for i in range(ds.shape[0])]),
            ds.labels.create("new", dtype="uint8"),
            ds.build_pyramid(levels=2),
        ]
        for attempt in refused:
            with pytest.raises(ngio_async.ReadOnlyError):
                await attempt
    assert set(store.method_counts) <= {"get", "exists", "size", "list"}, store.method_counts
