"""plate.add_row / add_column / add_acquisition grow an existing plate's layout as ngio 1.1.3's
do (a plate's rows, columns and acquisitions were fixed at create_plate): the same rows,
columns (sorted, ints zero-padded as the plate's), well indices and acquisitions as ngio
writes on the same plate (NGFF 0.4 and 0.5); a field can then be added there, and ngio opens
it; on moto's S3 too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _plate_doc(path: Path) -> dict[str, Any]:
    if (path / "zarr.json").exists():
        doc: dict[str, Any] = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]
    else:
        doc = json.loads((path / ".zattrs").read_text())
    plate = doc["plate"]
    return {k: plate.get(k) for k in ("rows", "columns", "wells", "acquisitions")}


def _grow_theirs(path: Path, version: str) -> None:
    import ngio

    images = [ngio.ImageInWellPath(row=r, column=c, path="0") for r, c in (("A", 1), ("C", 5))]
    ngio.create_empty_plate(
        str(path),
        "plate",
        images=images,
        ngff_version=version,  # type: ignore[arg-type]
    )
    plate = ngio.open_ome_zarr_plate(str(path))
    plate.add_row("B")
    plate.add_row("AA")
    plate.add_column(4)
    plate.add_column("10")
    plate.add_acquisition(3, "cycle3")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_rows_columns_and_acquisitions_added_as_ngio_adds_them(
    tmp_path: Path, version: str
) -> None:
    import ngio

    _grow_theirs(tmp_path / "theirs.zarr", version)
    async with ngio_async.create_plate_async(
        tmp_path / "mine.zarr",
        rows=["A", "C"],
        columns=["01", "05"],
        name="plate",
        ngff_version=version,  # type: ignore[arg-type]
    ) as plate:
        for well in ("A/01", "C/05"):
            fov = await plate.add_image(well, field="0", shape=(8, 8), dtype="uint8")
            await fov.aclose()
        await plate.add_row("B")
        await plate.add_row("AA")
        await plate.add_row("B")  # there already: nothing
        await plate.add_column(4)
        await plate.add_column("10")
        await plate.add_acquisition(3, "cycle3")
        await plate.add_acquisition(3, "other")  # there already: nothing
        assert plate.rows == ["A", "AA", "B", "C"]
        assert plate.columns == ["01", "04", "05", "10"]
        assert _plate_doc(tmp_path / "mine.zarr") == _plate_doc(tmp_path / "theirs.zarr")
        fov = await plate.add_image("B", 4, field="0", acquisition=3, shape=(8, 8), dtype="uint8")
        await fov.aclose()
        with pytest.raises(TypeError, match="unknown field 'colour'"):
            await plate.add_acquisition(4, colour="red")
        with pytest.raises(ValueError, match="letters and digits"):
            await plate.add_row("B-2")
    theirs = ngio.open_ome_zarr_plate(str(tmp_path / "mine.zarr"))
    assert theirs.get_image_acquisition_id("B", 4, "0") == 3
    assert theirs.well_images_paths("C", 5) == ["C/05/0"]
    with ngio_async.open_plate(tmp_path / "mine.zarr", mode="r+") as sync:  # the blocking twin
        sync.add_row("D")
        assert sync.rows[-1] == "D" and ("B/04", "0") in sync.image_paths()
    with (
        ngio_async.open_plate(tmp_path / "mine.zarr") as read_only,
        pytest.raises(ngio_async.ReadOnlyError),
    ):
        read_only.add_column(11)


async def test_an_empty_plate_grows_on_s3(s3_server: S3Server) -> None:
    url = f"{s3_server.fresh_url()}/plate.zarr"
    async with ngio_async.create_plate_async(
        url, rows=["B"], columns=["3"], **s3_server.options()
    ) as plate:  # no field yet: the pending layout grows
        await plate.add_row("A")
        await plate.add_column(12)
        await plate.add_acquisition(0, maximumfieldcount=2)
        fov = await plate.add_image("A", 12, field="0", acquisition=0, shape=(4, 4), dtype="uint8")
        await fov.aclose()
    async with ngio_async.open_plate_async(url, **s3_server.options()) as plate:
        assert (plate.rows, plate.columns, plate.wells) == (["A", "B"], ["3", "12"], ["A/12"])
        assert [(a.id, a.name, a.maximumfieldcount) for a in plate.acquisitions] == [(0, "0", 2)]
