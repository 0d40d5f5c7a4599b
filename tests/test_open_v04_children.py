"""Children of NGFF 0.4 groups (wells and fields of a 0.4 plate, its labels) are read from
``.zattrs`` first: no ``zarr.json`` miss per group on the way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_04_plate_reads_its_wells_and_fields_without_zarr_json(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], ngff_version="0.4"
    ) as plate:
        field = await plate.add_image("A/1", shape=(1, 8, 8), dtype="uint8", axes="cyx")
        await field.write(np.arange(64, dtype="uint8").reshape(1, 8, 8))
    store = InstrumentedStore(open_store(url))
    async with store, ngio_async.open_plate_async(store) as plate:
        await plate.well("A/1")
        async with await plate.image("A/1", field="0") as field:
            np.testing.assert_array_equal(await field.read(), np.arange(64).reshape(1, 8, 8))
    keys = [key for (method, key) in store.calls if method == "get"]
    assert "A/1/.zattrs" in keys and "A/1/0/.zattrs" in keys
    assert not [k for k in keys if k.startswith("A/") and k.endswith("zarr.json")], keys
