"""Consolidated copies edited by this library stay readable by zarr-python: its reader groups
the entries of one depth by parent and needs siblings adjacent, so a field added to well A/1
after well A/2 was listed (entries appended: A/1/0, A/2/0, A/1/1) made
``zarr.open_consolidated`` fail ('No group found'). Entries are now written in key order."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_a_field_added_to_an_earlier_well_keeps_the_copy_readable(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["A"], columns=["1", "2"]) as plate:
        plate.add_image("A/1", shape=(4, 4), dtype="uint8").close()
    zarr.consolidate_metadata(str(path))
    with ngio_async.open_plate(path, mode="r+") as plate:
        plate.add_image("A/2", shape=(4, 4), dtype="uint8").close()
        plate.add_image("A/1", field="1", shape=(4, 4), dtype="uint8").close()
    names = list(json.loads((path / "zarr.json").read_text())["consolidated_metadata"]["metadata"])
    assert names == sorted(names)
    group = zarr.open_consolidated(str(path), mode="r")
    well: Any = group["A/1"].attrs.asdict()
    assert [im["path"] for im in well["ome"]["well"]["images"]] == ["0", "1"]
    assert sorted(group["A"].group_keys()) == ["1", "2"]  # type: ignore[union-attr]
