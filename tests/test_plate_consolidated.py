"""Plates whose metadata was consolidated (zarr.consolidate_metadata) keep their copy current
when fields are added: zarr-python reads the copy alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from zarr_nodes import zarr_read

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_fields_added_to_a_consolidated_plate_are_in_the_copy(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["A"], columns=["1", "2"]) as plate:
        plate.add_image("A", "1", shape=(8, 8), dtype="uint8", axes="yx").close()
    zarr.consolidate_metadata(str(path))
    with ngio_async.open_plate(path, mode="r+") as plate:
        plate.add_image("A", "1", field="1", shape=(8, 8), dtype="uint8", axes="yx").close()
        with plate.add_image("A", "2", shape=(8, 8), dtype="uint8", axes="yx") as field:
            field[...] = np.full((8, 8), 5, np.uint8)
    group = zarr.open_consolidated(str(path))
    plate_attrs: dict[str, Any] = group.attrs.asdict()
    wells = [w["path"] for w in plate_attrs["ome"]["plate"]["wells"]]
    assert wells == ["A/1", "A/2"]
    well_attrs: dict[str, Any] = group["A/1"].attrs.asdict()
    images = well_attrs["ome"]["well"]["images"]
    assert [im["path"] for im in images] == ["0", "1"]
    assert int(zarr_read(zarr.open_group(str(path), mode="r"), "A/2/0/0", (3, 3))) == 5
