"""``add_row`` / ``add_column`` keep the keys another tool wrote on the plate's existing row and
column entries (they were rewritten as bare ``{"name": ...}``, while the wells' and the
acquisitions' other keys stayed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_new_rows_and_columns_keep_the_other_keys_of_the_old(tmp_path: Path, version: str) -> None:
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["B"], columns=["2"], ngff_version=version) as plate:
        plate.add_image("B", "2", shape=(8, 8), dtype="uint8").close()
    group = zarr.open_group(path, mode="r+")
    attrs: Any = group.attrs.asdict()
    body = attrs["plate"] if version == "0.4" else attrs["ome"]["plate"]
    body["rows"][0]["x-barcode"] = "row-b"
    body["columns"][0]["x-barcode"] = "col-2"
    group.attrs.put(attrs)
    with ngio_async.open_plate(path, mode="r+") as plate:
        plate.add_row("A")
        plate.add_column("1")
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    body = attrs["plate"] if version == "0.4" else attrs["ome"]["plate"]
    assert body["rows"] == [{"name": "A"}, {"name": "B", "x-barcode": "row-b"}]
    assert body["columns"] == [{"name": "1"}, {"name": "2", "x-barcode": "col-2"}]
    assert body["wells"][0]["rowIndex"] == 1 and body["wells"][0]["columnIndex"] == 1
    with ngio_async.open_plate(path) as plate:
        assert (plate.rows, plate.columns, plate.image_paths()) == (
            ["A", "B"],
            ["1", "2"],
            [("B/2", "0")],
        )
