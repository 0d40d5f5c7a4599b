"""Writing into plates peer tools wrote that ngio_async reads though they break NGFF 0.4 / 0.5
(see test_plates27_read.py): what is added is valid NGFF and the documents rewritten
validate, or the write is refused before any I/O, naming the well and the field.

- a well listing ``fov_a``: no field is added to it (its document would stay invalid), and
  removing a field that leaves such a path is refused; removing ``fov_a`` itself works; new
  wells, labels and tables of its fields, and plate tables work;
- a plate whose wells have no ``rowIndex`` / ``columnIndex`` (or, 0.4, out of range): every
  rewrite of the plate document gives them those of their paths (as they were read), so the
  plate written validates and ngio (which refused it) reads it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from test_plates27_read import doc_name, drop_indices, ome_zarr_py_grid, peer_plate, snapshot

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.meta import validate

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
    # reading such a plate warns (test_plates27_read.py pins it); here the writes are tested
    pytest.mark.filterwarnings("ignore::ngio_async.meta.MetadataWarning"),
]

FIELD = {"shape": (2, 16, 16), "dtype": "uint8", "axes": "cyx"}


def doc(path: Path, version: str) -> Any:
    return json.loads((path / doc_name(version)).read_text())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_writes_into_a_plate_whose_well_lists_fov_a(tmp_path: Path, version: str) -> None:
    ngio = pytest.importorskip("ngio")
    pytest.importorskip("ome_zarr")
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, version, ["fov_a", "0"])
    async with await ngio_async.open_plate_async(path, mode="r+") as plate:
        before = snapshot(path)
        with pytest.raises(MetadataError, match=r"well 'A/1' of plate .* lists field 'fov_a'"):
            await plate.add_image("A", "1", "1", **FIELD)  # type: ignore[arg-type]
        with pytest.raises(MetadataError, match=r"well 'A/1' of plate .* lists field 'fov_a'"):
            await plate.remove_image("A", "1", "0")  # fov_a would be left
        with pytest.raises(ValueError, match="letters and digits only"):
            await plate.add_image("A", "2", "fov_c", **FIELD)  # type: ignore[arg-type]
        assert snapshot(path) == before  # nothing written
        # a new well: valid, and its plate document rewritten validates
        async with await plate.add_image("A", "2", "0", **FIELD) as fov:  # type: ignore[arg-type]
            await fov.write(np.full((2, 16, 16), 7, np.uint8))
        validate(doc(path, version), kind="plate")
        validate(doc(path / "A" / "2", version), kind="well")
        # labels and tables of a field named so
        async with await plate.image("B", "2", "fov_a", mode="r+") as fov:
            cells = await fov.labels.create("cells", dtype="uint16")
            async with cells:
                await cells.write(np.full((16, 16), 3, np.uint16))
            await fov.tables.write_features("feats", {"area": [1.0, 2.0]}, labels=[1, 3])
        await plate.tables.write("conditions", {"dose": [0.5, 1.0]})
        table = await plate.tables.concatenate("feats", strict=False)
        assert table["path_in_well"].tolist() == ["fov_a", "fov_a"]
        assert await plate.tables.names() == ["conditions"]
        # fov_a itself may go: the well left is valid again, and takes fields
        await plate.remove_image("A", "1", "fov_a")
        validate(doc(path / "A" / "1", version), kind="well")
        await (await plate.add_image("A", "1", "1", **FIELD)).aclose()  # type: ignore[arg-type]
        assert await plate.image_paths() == [
            ("A/1", "0"), ("A/1", "1"), ("A/2", "0"), ("B/2", "fov_a"), ("B/2", "0")
        ]  # fmt: skip
    report = await validate_hierarchy(str(path))
    assert {p.key for p in report.errors} == {f"B/2/{doc_name(version)}"}, report.errors
    theirs = ngio.open_ome_zarr_plate(str(path), mode="r")
    assert sorted(theirs.images_paths()) == ["A/1/0", "A/1/1", "A/2/0", "B/2/0", "B/2/fov_a"]
    label = theirs.get_image("B", "2", "fov_a").get_label("cells").get_as_numpy()
    assert int(label.max()) == 3
    assert int(ome_zarr_py_grid(path)[0, 0, 16]) == 7  # A/2's first field, by ome-zarr-py


@pytest.mark.parametrize(
    ("version", "indices"), [("0.4", "missing"), ("0.5", "missing"), ("0.4", "out of range")]
)
async def test_a_plate_rewritten_gets_the_indices_of_its_well_paths(
    tmp_path: Path, version: str, indices: str
) -> None:
    ngio = pytest.importorskip("ngio")
    pytest.importorskip("ome_zarr")
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, version, ["0"])
    if indices == "missing":
        drop_indices(path, version)
    else:
        group = zarr.open_group(path, mode="r+")
        attrs: Any = group.attrs.asdict()
        attrs["plate"]["wells"][1].update(rowIndex=2, columnIndex=2)  # B/2: 1-based
        group.attrs.put(attrs)
    with pytest.raises(MetadataError):
        validate(doc(path, version))
    async with await ngio_async.open_plate_async(path, mode="r+") as plate:
        async with await plate.add_image("A", "2", "0", **FIELD) as fov:  # type: ignore[arg-type]
            await fov.write(np.full((2, 16, 16), 9, np.uint8))
        placed = [(w["path"], w["rowIndex"], w["columnIndex"]) for w in _wells(path, version)]
        assert placed == [("A/1", 0, 0), ("A/2", 0, 1), ("B/2", 1, 1)]
        validate(doc(path, version), kind="plate")
        await plate.add_row("C")
        await plate.remove_image("B", "2", "0")  # its last field: the well unlisted
    placed = [(w["path"], w["rowIndex"], w["columnIndex"]) for w in _wells(path, version)]
    assert placed == [("A/1", 0, 0), ("A/2", 0, 1)]
    validate(doc(path, version), kind="plate")
    assert (await validate_hierarchy(str(path))).errors == []
    theirs = ngio.open_ome_zarr_plate(str(path), mode="r")  # it refused the plate before
    assert theirs.images_paths() == ["A/1/0", "A/2/0"]
    assert int(ome_zarr_py_grid(path)[0, 0, 16]) == 9


def _wells(path: Path, version: str) -> list[dict[str, Any]]:
    body = doc(path, version)
    plate: list[dict[str, Any]] = (body if version == "0.4" else body["attributes"]["ome"])[
        "plate"
    ]["wells"]
    return plate


@pytest.mark.parametrize("fields", [["fov_a"], ["0"]])
async def test_convert_of_such_a_plate(tmp_path: Path, fields: list[str]) -> None:
    """A plate without well indices converts (the copy has them); one with ``fov_a`` is
    refused before any write, naming the well (the copy's well would not validate)."""
    pytest.importorskip("ome_zarr")
    from ngio_async.convert import convert

    src, dst = tmp_path / "src.ome.zarr", tmp_path / "dst.ome.zarr"
    peer_plate(src, "0.4", fields)
    drop_indices(src, "0.4")
    if fields == ["fov_a"]:
        # (every well lists fov_a: whichever is checked first is named)
        with pytest.raises(MetadataError, match=r"well '[AB]/[12]' of plate .* 0\.5 \(nothing"):
            await convert(src, dst, ngff_version="0.5")
        assert not dst.exists()
        return
    await convert(src, dst, ngff_version="0.5")
    assert (await validate_hierarchy(str(dst))).errors == []
    async with await ngio_async.open_plate_async(dst) as plate:
        assert [(w.path, w.row_index, w.column_index) for w in plate.metadata.wells] == [
            ("A/1", 0, 0),
            ("B/2", 1, 1),
        ]
        async with await plate.image("B", "2") as fov:
            assert int((await fov.read())[0, 0, 0]) == 11
