"""Plates written as a user would, checked as stored: documents keep their own choices."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _drop_version(path: Path) -> None:
    doc = json.loads(path.read_text())
    for key in ("plate", "well"):
        if key in doc:
            doc[key].pop("version")
    path.write_text(json.dumps(doc))


def test_adding_to_an_unversioned_04_plate_adds_no_version(tmp_path: Path) -> None:
    """A 0.4 plate and well stored without ``version`` (NGFF 0.4 writers that leave it out)
    got ``"version": "0.4"`` on the next ``add_image``; they keep their own choice now, and
    a new well follows its plate."""
    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(
        root, rows=["A", "B"], columns=["1", "2"], ngff_version="0.4"
    ) as plate:
        plate.add_image("A", "1", field="0", shape=(8, 8), dtype="uint8").close()
    assert json.loads((root / ".zattrs").read_text())["plate"]["version"] == "0.4"
    _drop_version(root / ".zattrs")
    _drop_version(root / "A/1/.zattrs")
    with ngio_async.open_plate(root, mode="r+") as plate:
        plate.add_image("A", "1", field="1", shape=(8, 8), dtype="uint8").close()
        plate.add_image("B", "2", field="0", shape=(8, 8), dtype="uint8").close()
    assert "version" not in json.loads((root / ".zattrs").read_text())["plate"]
    a1 = json.loads((root / "A/1/.zattrs").read_text())["well"]
    assert a1 == {"images": [{"path": "0"}, {"path": "1"}]}
    assert "version" not in json.loads((root / "B/2/.zattrs").read_text())["well"]
    with ngio_async.open_plate(root) as plate:
        assert plate.wells == ["A/1", "B/2"]
        assert plate.image_paths() == [("A/1", "0"), ("A/1", "1"), ("B/2", "0")]


def test_a_versioned_04_plate_keeps_its_versions(tmp_path: Path) -> None:
    """The counterpart: a 0.4 plate written with versions keeps them on every document."""
    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(root, rows=["A"], columns=["1", "2"], ngff_version="0.4") as p:
        p.add_image("A", "1", shape=(8, 8), dtype="uint8").close()
    with ngio_async.open_plate(root, mode="r+") as plate:
        plate.add_image("A", "1", field="1", shape=(8, 8), dtype="uint8").close()
        plate.add_image("A", "2", shape=(8, 8), dtype="uint8").close()
    assert json.loads((root / ".zattrs").read_text())["plate"]["version"] == "0.4"
    for well in ("A/1", "A/2"):
        assert json.loads((root / well / ".zattrs").read_text())["well"]["version"] == "0.4"


def test_replacing_the_only_field_of_an_unversioned_04_plate_adds_no_version(
    tmp_path: Path,
) -> None:
    """``add_image(overwrite=True)`` of a plate's only field unlists its well for a while (the
    plate has no well then); the plate and well came back with ``"version": "0.4"``."""
    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(root, rows=["A"], columns=["1"], ngff_version="0.4") as plate:
        plate.add_image("A", "1", shape=(8, 8), dtype="uint8").close()
    _drop_version(root / ".zattrs")
    _drop_version(root / "A/1/.zattrs")
    with ngio_async.open_plate(root, mode="r+") as plate:
        plate.add_image("A", "1", shape=(4, 4), dtype="uint8", overwrite=True).close()
    plate_doc = json.loads((root / ".zattrs").read_text())
    assert "version" not in plate_doc["plate"]
    assert "ngio_async" not in plate_doc  # no note of the pending layout is left
    assert json.loads((root / "A/1/.zattrs").read_text()) == {"well": {"images": [{"path": "0"}]}}
    with ngio_async.open_plate(root) as plate, plate.image("A", "1") as fov:
        assert fov.shape == (4, 4)


def test_add_image_argument_mistakes_name_add_image(tmp_path: Path) -> None:
    """A misspelt or missing ``add_image`` option was reported as ``plan_image() got an
    unexpected keyword argument`` (an internal function); store options, which the plate's
    store already has, are refused too. Nothing is written."""
    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(root, rows=["A"], columns=["1"]) as plate:
        before = sorted(p.name for p in root.rglob("*"))
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"shape": (8, 8), "dtype": "uint8", "colour": "red"},
                "got an unexpected keyword argument 'colour'",
            ),
            (
                {"shape": (8, 8), "dtype": "uint8", "endpoint": "x"},
                "got an unexpected keyword argument 'endpoint'",
            ),
            ({"dtype": "uint8"}, "missing the keyword argument 'shape'"),
            ({"shape": (8, 8)}, "missing the keyword argument 'dtype'"),
        ]
        for options, message in cases:
            with pytest.raises(TypeError, match=rf"^add_image\(\) {message}"):
                plate.add_image("A", "1", **options)
        assert sorted(p.name for p in root.rglob("*")) == before
        assert plate.wells == []


def test_a_field_too_small_for_the_first_fields_levels_says_where_they_come_from(
    tmp_path: Path,
) -> None:
    """Without ``levels=``, a field gets as many levels as the plate's first field; one too
    small for them was refused with "levels 3: a 2x2 image stops shrinking ...", naming a
    ``levels`` the caller never gave. The message now says where the 3 comes from and what
    to pass; ``levels=`` given is taken."""
    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(root, rows=["A"], columns=["1", "2"]) as plate:
        plate.add_image("A", "1", shape=(1024, 1024), dtype="uint8").close()
    with ngio_async.open_plate(root, mode="r+") as plate:
        with pytest.raises(ValueError, match=r"levels 3: .*first field 'A/1/0' has \(3: "):
            plate.add_image("A", "2", shape=(2, 2), dtype="uint8")
        assert plate.wells == ["A/1"]
        with plate.add_image("A", "2", shape=(2, 2), dtype="uint8", levels=1) as fov:
            assert len(fov.levels) == 1


def test_an_unversioned_04_plate_left_without_wells_by_a_failed_replace_stays_so(
    tmp_path: Path,
) -> None:
    """The replace of a plate's only field failing after its well was unlisted leaves the
    plate without wells (its layout pending); opened again and given a field, the plate and
    well are still written without ``version``."""
    from ngio_async.stores import InstrumentedStore, open_store

    root = tmp_path / "p.zarr"
    with ngio_async.create_plate(root, rows=["A"], columns=["1"], ngff_version="0.4") as plate:
        plate.add_image("A", "1", shape=(8, 8), dtype="uint8").close()
    _drop_version(root / ".zattrs")
    _drop_version(root / "A/1/.zattrs")

    def fail(method: str, key: str) -> BaseException | None:
        full = method == "put" and key == "A/1/0/0/.zarray"  # the new field's first array
        return OSError(28, "No space left on device") if full else None

    store = InstrumentedStore(open_store(root), fail=fail)
    with ngio_async.open_plate(store, mode="r+") as plate, pytest.raises(ngio_async.StoreError):
        plate.add_image("A", "1", shape=(4, 4), dtype="uint8", overwrite=True)
    with ngio_async.open_plate(root, mode="r+") as plate:
        assert plate.wells == []
        plate.add_image("A", "1", shape=(4, 4), dtype="uint8").close()
    assert "version" not in json.loads((root / ".zattrs").read_text())["plate"]
    assert json.loads((root / "A/1/.zattrs").read_text()) == {"well": {"images": [{"path": "0"}]}}
