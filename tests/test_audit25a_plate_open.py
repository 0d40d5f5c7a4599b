"""audit25a: dask workers each adding a well to a plate created empty open the plate (their
copies open on first use) while others list their wells: an open reading the plate as the
first well was listed opened it, rather than failing as 'not an OME-Zarr group'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

import ngio_async
from ngio_async import MetadataError
from ngio_async.images import _plate_docs
from ngio_async.images._open import read_group_metadata as real

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_a_plate_opened_as_another_writer_lists_its_first_well_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = tmp_path / "plate.ome.zarr"
    ngio_async.create_plate(url, rows=["A"], columns=["1", "2"]).close()  # no well yet
    injected: list[bool] = []

    async def first_well_listed_meanwhile(store: Any, root: str, *args: Any, **kw: Any) -> Any:
        try:
            return await real(store, root, *args, **kw)
        except MetadataError:  # the plate as created: its layout pending, no NGFF yet
            if not injected:  # another writer lists the first well before the next read
                injected.append(True)
                async with ngio_async.open_plate_async(url, mode="r+") as other:
                    field = await other.add_image(
                        "A", "1", shape=(1, 8, 8), dtype="uint8", axes="cyx"
                    )
                    await field.write(np.full((1, 8, 8), 7, "uint8"))
                    await field.aclose()
            raise

    monkeypatch.setattr(_plate_docs, "read_group_metadata", first_well_listed_meanwhile)
    # was: MetadataError "zarr.json has no 'ome' attributes: not an OME-Zarr 0.5 group"
    with ngio_async.open_plate(url) as plate:
        assert injected and plate.wells == ["A/1"]
        with plate.image("A", "1") as field:
            assert int(field[0, 0, 0]) == 7
