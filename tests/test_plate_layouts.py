"""Plates laid out in unusual but readable ways: adding fields keeps their layout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import PermissionDeniedError
from ngio_async.meta import MetadataWarning
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


def swapped_04_plate(path: Path) -> None:
    """A 0.4 plate whose ``rows`` hold the column names and ``columns`` the row names: its
    well paths are ``<column>/<row>`` (NGFF 0.4 only warns about it)."""
    top = zarr.open_group(str(path), mode="w", zarr_format=2)
    top.attrs["plate"] = {
        "version": "0.4",
        "rows": [{"name": "1"}, {"name": "2"}],
        "columns": [{"name": "A"}, {"name": "B"}],
        "wells": [{"path": "A/1", "rowIndex": 0, "columnIndex": 0}],
    }
    well = top.require_group("A").require_group("1")
    well.attrs["well"] = {"version": "0.4", "images": [{"path": "0"}]}
    with ngio_async.create(str(path / "A" / "1" / "0"), shape=(8, 8), dtype="uint8") as ds:
        ds.write(np.ones((8, 8), np.uint8))


def plate_wells(path: Path) -> list[dict[str, Any]]:
    wells: list[dict[str, Any]] = json.loads((path / ".zattrs").read_text())["plate"]["wells"]
    return wells


@pytest.mark.filterwarnings("ignore::ngio_async.meta.MetadataWarning")
def test_swapped_04_plate_takes_fields_in_its_own_layout(tmp_path: Path) -> None:
    path = tmp_path / "swapped.zarr"
    swapped_04_plate(path)
    with pytest.warns(MetadataWarning, match="does not match rowIndex/columnIndex"):
        plate = ngio_async.open_plate(path, mode="r+")
    with plate:
        assert plate.wells == ["A/1"]
        # a field of the listed well A/1 (it was refused: 'A' is not a row)
        plate.add_image("A", "1", field="1", shape=(8, 8), dtype="uint8").close()
        assert plate.image_paths() == [("A/1", "0"), ("A/1", "1")]
        # the same position the other way round would be a second well at (0, 0)
        with pytest.raises(ValueError, match="'<column>/<row>'"):
            plate.add_image("1", "A", field="0", shape=(8, 8), dtype="uint8")
        # a new well follows the plate's layout: path B/2 at row '2', column 'B'
        plate.add_image("B", "2", field="0", shape=(8, 8), dtype="uint8").close()
        assert plate.wells == ["A/1", "B/2"]
    assert plate_wells(path) == [
        {"path": "A/1", "rowIndex": 0, "columnIndex": 0},
        {"path": "B/2", "rowIndex": 1, "columnIndex": 1},
    ]
    assert sorted(p.name for p in path.iterdir() if p.is_dir()) == ["A", "B"]
    with ngio_async.open_plate(path) as plate:
        assert plate.image_paths() == [("A/1", "0"), ("A/1", "1"), ("B/2", "0")]


@pytest.mark.filterwarnings("ignore::ngio_async.meta.MetadataWarning")
def test_a_new_well_never_shares_a_listed_wells_position(tmp_path: Path) -> None:
    """A 0.4 well listed under a path that does not match its indices keeps its position."""
    path = tmp_path / "odd.zarr"
    swapped_04_plate(path)
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["plate"]["rows"] = [{"name": "A"}, {"name": "B"}]
    attrs["plate"]["columns"] = [{"name": "1"}, {"name": "2"}]
    attrs["plate"]["wells"][0].update(rowIndex=1, columnIndex=1)  # the indices of B/2
    (path / ".zattrs").write_text(json.dumps(attrs))
    with ngio_async.open_plate(path, mode="r+") as plate:
        with pytest.raises(ValueError, match="where the plate lists well 'A/1'"):
            plate.add_image("B", "2", field="0", shape=(8, 8), dtype="uint8")
        plate.add_image("A", "1", field="1", shape=(8, 8), dtype="uint8").close()
    assert [w["path"] for w in plate_wells(path)] == ["A/1"]
    assert not (path / "B").exists()


class _DeniesMissingKeys:
    """``fail`` of an InstrumentedStore: 403 for a key that does not exist (S3 without
    s3:ListBucket answers so)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, method: str, key: str) -> Exception | None:
        if method == "get" and not (self.root / key).exists():
            return PermissionDeniedError(f"access denied (HTTP 403) to {key!r}", key=key)
        return None


async def test_04_plates_open_where_missing_keys_are_denied(tmp_path: Path) -> None:
    """The zarr.json probes of a 0.4 plate (and of a 0.4 plate without fields yet) raised
    PermissionDeniedError."""
    for name, with_field in (("full.zarr", True), ("pending.zarr", False)):
        path = tmp_path / name
        async with ngio_async.create_plate_async(
            str(path), rows=["A"], columns=["1"], ngff_version="0.4"
        ) as plate:
            if with_field:
                await (await plate.add_image("A", "1", shape=(8, 8), dtype="uint8")).aclose()
        store = InstrumentedStore(open_store(str(path)), fail=_DeniesMissingKeys(path))
        async with await ngio_async.open_plate_async(store) as plate:
            assert plate.rows == ["A"]
            if with_field:
                assert await plate.image_paths() == [("A/1", "0")]
                async with await plate.image("A", "1") as ds:
                    assert ds.shape == (8, 8)
            else:
                assert plate.wells == []
        await store.aclose()
