"""Plates peer tools write that break NGFF 0.4 / 0.5 where their meaning is clear: read as
ngio and ome-zarr-py read them (paths and pixels equal), with a ``MetadataWarning``, while
``validate`` (and ``ngio_async validate``) still reports the rule; opening changes nothing.

- well field paths such as ``fov_a`` / ``fov-b`` (ome-zarr-py writes them, ngio reads them;
  NGFF 0.4 / 0.5 say letters and digits, 0.6 allows ``_ . -``);
- plate wells without ``rowIndex`` / ``columnIndex`` (ome-zarr-py reads them by their paths);
- in a plate of one acquisition, the fields that name none are that acquisition's both in
  ``plate.image_paths(acquisition)`` and in ``plate.well(...).field_paths(acquisition)``.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import MetadataError
from ngio_async.cli._validate import validate_hierarchy
from ngio_async.meta import MetadataWarning, validate

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

WELLS = ["A/1", "B/2"]
FIELDS = ["fov_a", "fov-b", "0"]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def doc_name(version: str) -> str:
    return ".zattrs" if version == "0.4" else "zarr.json"


def peer_plate(
    path: Path,
    version: str,
    fields: list[str],
    *,
    acquisitions: list[dict[str, Any]] | None = None,
) -> None:
    """An ome-zarr-py plate: rows A, B, columns 1, 2, wells A/1 and B/2 with ``fields`` (field
    k of well i filled with 10 * i + k + 1; 2 channels of 16 x 16, two levels)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]
        from ome_zarr.writer import (  # type: ignore[import-untyped]
            write_image,
            write_plate_metadata,
            write_well_metadata,
        )

        fmt = FormatV04() if version == "0.4" else FormatV05()
        root = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
        write_plate_metadata(
            root, ["A", "B"], ["1", "2"], WELLS, fmt=fmt, acquisitions=acquisitions
        )
        for i, well in enumerate(WELLS):
            group = root.require_group(well)
            write_well_metadata(group, [{"path": f} for f in fields], fmt=fmt)
            for k, field in enumerate(fields):
                data = np.full((2, 16, 16), 10 * i + k + 1, np.uint8)
                write_image(
                    data, group.require_group(field), axes="cyx", fmt=fmt, scale_factors=[2]
                )


def drop_indices(path: Path, version: str, wells: list[str] | None = None) -> None:
    """The plate's wells (those of ``wells``, default all) without rowIndex / columnIndex,
    as zarr-python writes attributes by hand."""
    group = zarr.open_group(path, mode="r+")
    attrs: Any = group.attrs.asdict()
    plate = attrs["plate"] if version == "0.4" else attrs["ome"]["plate"]
    for w in plate["wells"]:
        if wells is None or w["path"] in wells:
            del w["rowIndex"], w["columnIndex"]
    group.attrs.put(attrs)


def ome_zarr_py_grid(path: Path) -> np.ndarray[Any, Any]:
    """ome-zarr-py's plate image (level 0): each well's first field at its row and column."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ome_zarr.io import parse_url  # type: ignore[import-untyped]
        from ome_zarr.reader import Reader  # type: ignore[import-untyped]

        node = next(iter(Reader(parse_url(str(path)))()))
        return np.asarray(node.data[0])


def read_warned(path: Path, match: str) -> tuple[list[tuple[str, str]], list[str]]:
    """``plate.image_paths()`` of the plate at ``path`` and the MetadataWarnings of reading it
    (one matching ``match``)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with ngio_async.open_plate(path) as plate:
            paths = plate.image_paths()
    messages = [str(w.message) for w in seen if issubclass(w.category, MetadataWarning)]
    assert any(match in m for m in messages), messages
    return paths, messages


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_field_paths_of_peer_tools_read_as_ngio_and_ome_zarr_py_read_them(
    tmp_path: Path, version: str
) -> None:
    ngio = pytest.importorskip("ngio")
    pytest.importorskip("ome_zarr")
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, version, FIELDS)
    before = snapshot(path)
    well_doc = json.loads((path / "A" / "1" / doc_name(version)).read_text())
    with pytest.raises(MetadataError, match=r"images\[0\]\.path"):
        validate(well_doc)  # still reported
    paths, messages = read_warned(path, "field paths 'fov_a', 'fov-b' read as stored")
    assert any(f"A/1/{doc_name(version)}" in m for m in messages), messages
    theirs = ngio.open_ome_zarr_plate(str(path), mode="r")
    assert [f"{w}/{f}" for w, f in paths] == theirs.images_paths()
    grid = ome_zarr_py_grid(path)
    with ngio_async.open_plate(path) as plate, warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        for i, well in enumerate(WELLS):
            assert plate.well(well).fields == FIELDS
            row, column = well.split("/")
            for k, field in enumerate(FIELDS):
                with plate.image(row, column, field=field) as fov:
                    ours = fov.read()
                want = theirs.get_image(row, column, field).get_image().get_as_numpy()
                np.testing.assert_array_equal(ours, want)
                assert int(ours[0, 0, 0]) == 10 * i + k + 1
            with plate.image(row, column, field=0) as first:  # by index: fov_a
                y, x = 16 * i, 16 * i  # A/1 at (0, 0), B/2 at (16, 16) of the grid
                np.testing.assert_array_equal(grid[:, y : y + 16, x : x + 16], first.read())
        by_url = ngio_async.open_well(path / "B" / "2")  # a well by its URL reads them too
        assert by_url.fields == FIELDS
    report = await validate_hierarchy(str(path))
    bad = [p for p in report.errors if "images[0].path" in p.path]
    assert {p.key.rsplit("/", 1)[0] for p in bad} >= {"A/1", "B/2"}, report.errors
    assert snapshot(path) == before


@pytest.mark.parametrize("bad", ["fov a", "__fov", "..", "fov%2f1"])
def test_a_field_path_that_is_no_node_name_stays_an_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "plate.ome.zarr"
    with ngio_async.create_plate(path, rows=["A"], columns=["1"], ngff_version="0.4") as plate:
        plate.add_image("A", "1", "0", shape=(8, 8), dtype="uint8").close()
    well = path / "A" / "1" / ".zattrs"
    doc = json.loads(well.read_text())
    doc["well"]["images"].append({"path": bad})
    well.write_text(json.dumps(doc))
    where = r"A/1/\.zattrs: .* at `\$\.well\.images\[1\]\.path`"
    with ngio_async.open_plate(path) as plate, pytest.raises(MetadataError, match=where):
        plate.image_paths()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_plate_wells_without_indices_are_read_at_their_paths(
    tmp_path: Path, version: str
) -> None:
    pytest.importorskip("ome_zarr")
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, version, ["0", "1"])
    drop_indices(path, version, ["B/2"])
    before = snapshot(path)
    doc = json.loads((path / doc_name(version)).read_text())
    with pytest.raises(MetadataError, match="missing required field `rowIndex`"):
        validate(doc)  # still reported
    report = await validate_hierarchy(str(path))
    assert any("rowIndex" in p.message and p.path.endswith("wells[1]") for p in report.errors)
    paths, _ = read_warned(path, "the rowIndex / columnIndex of well 'B/2' taken from the path")
    assert paths == [("A/1", "0"), ("A/1", "1"), ("B/2", "0"), ("B/2", "1")]
    grid = ome_zarr_py_grid(path)  # ome-zarr-py: by the paths
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with ngio_async.open_plate(path) as plate:
            assert [(w.path, w.row_index, w.column_index) for w in plate.metadata.wells] == [
                ("A/1", 0, 0),
                ("B/2", 1, 1),
            ]
            for row, column, y, x in (("A", "1", 0, 0), ("B", "2", 16, 16)):
                with plate.image(row, column, field=0) as fov:
                    np.testing.assert_array_equal(grid[:, y : y + 16, x : x + 16], fov.read())
            assert not grid[:, 0:16, 16:32].any()  # A/2: no well
    assert snapshot(path) == before


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_well_without_indices_whose_path_names_no_listed_row_is_refused(
    tmp_path: Path, version: str
) -> None:
    path = tmp_path / "plate.ome.zarr"
    with ngio_async.create_plate(path, rows=["A", "B"], columns=["1"], ngff_version=version) as p:
        p.add_image("A", "1", "0", shape=(8, 8), dtype="uint8").close()
    group = zarr.open_group(path, mode="r+")
    attrs: Any = group.attrs.asdict()
    plate = attrs["plate"] if version == "0.4" else attrs["ome"]["plate"]
    plate["wells"].append({"path": "C/1"})
    group.attrs.put(attrs)
    with pytest.raises(
        MetadataError, match=r"well 'C/1' has no rowIndex / columnIndex, .* no listed row 'C'"
    ):
        ngio_async.open_plate(path)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_fields_naming_no_acquisition_are_the_one_acquisitions_everywhere(
    tmp_path: Path, version: str
) -> None:
    """NGFF requires a field's acquisition only in a plate of several: in a plate of one,
    fields without one are its fields, as ``image_paths(acquisition)`` took them; ``well()``
    ``.field_paths(acquisition)`` left them out. (ngio leaves them out of both.)"""
    path = tmp_path / "plate.ome.zarr"
    peer_plate(path, version, ["0", "1"], acquisitions=[{"id": 5, "name": "only"}])
    async with await ngio_async.open_plate_async(path, mode="r+") as plate:
        everything = await plate.image_paths()
        assert await plate.image_paths(acquisition=5) == everything
        for w in WELLS:
            well = await plate.well(w)
            assert well.only_acquisition == 5
            assert well.field_paths(5) == well.fields == ["0", "1"]
            assert well.field_paths(6) == []
        await plate.add_acquisition(6)  # now two: a field naming none is in neither
        assert await plate.image_paths(acquisition=5) == []
        well = await plate.well("A/1")  # (as cached before: the plate's acquisitions now)
        assert well.only_acquisition is None and well.field_paths(5) == []
        assert well.field_paths() == ["0", "1"]
    alone = await ngio_async.open_well_async(path / "A" / "1")  # without its plate
    assert alone.only_acquisition is None and alone.field_paths(5) == []
