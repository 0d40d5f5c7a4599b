"""A well listed by add_image while another writer added a
row or column to the plate gets the row and column indices of the plate document it is
listed in: they were computed from the plate as opened, so a row inserted before the well's
meanwhile left it pointing at the row above (ngio then opened the well under the wrong row)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _wells(path: Path) -> dict[str, tuple[str, str]]:
    """Each listed well's path -> the (row, column) names its indices point at."""
    if (path / "zarr.json").exists():
        plate = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["plate"]
    else:
        plate = json.loads((path / ".zattrs").read_text())["plate"]
    rows = [r["name"] for r in plate["rows"]]
    columns = [c["name"] for c in plate["columns"]]
    out: dict[str, tuple[str, str]] = {}
    for w in plate["wells"]:
        out[w["path"]] = (rows[w["rowIndex"]], columns[w["columnIndex"]])
    return out


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_add_image_after_another_writer_added_a_row(tmp_path: Path, version: str) -> None:
    url = tmp_path / "p.zarr"
    kw: dict[str, Any] = {"shape": (4, 4), "dtype": "uint8"}
    async with ngio_async.create_plate_async(
        url,
        rows=["B", "C"],
        columns=["1", "3"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as created:
        await (await created.add_image("C/3", **kw)).aclose()
    async with (
        await ngio_async.open_plate_async(url, mode="r+") as mine,
        await ngio_async.open_plate_async(url, mode="r+") as theirs,
    ):
        await theirs.add_row("A")  # before B and C: their indices move
        await theirs.add_column("2")
        await (await mine.add_image("B/3", **kw)).aclose()
    assert _wells(url) == {"B/3": ("B", "3"), "C/3": ("C", "3")}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_add_column_takes_digits_as_ngio_takes_them(tmp_path: Path, version: str) -> None:
    """add_column("1") of a plate with column "01" added a second column numbered 1 ("1"
    beside "01"), add_column("3") an unpadded "3": ngio finds "01" and writes "03"."""
    import ngio

    theirs = tmp_path / "theirs.zarr"
    images = [ngio.ImageInWellPath(row="A", column=c, path="0") for c in (1, 5)]
    ngio.create_empty_plate(str(theirs), "p", images=images, ngff_version=version)  # type: ignore[arg-type]
    plate = ngio.open_ome_zarr_plate(str(theirs))
    for column in ("1", "3", 3):
        plate.add_column(column)
    async with await ngio_async.open_plate_async(theirs, mode="r+") as mine:
        assert mine.columns == ["01", "03", "05"]  # ngio's
    url = tmp_path / "mine.zarr"
    async with ngio_async.create_plate_async(
        url,
        rows=["A"],
        columns=["01", "05"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as created:
        for column in ("1", "3", 3):
            await created.add_column(column)
        assert created.columns == ["01", "03", "05"]
    async with await ngio_async.open_plate_async(url) as reopened:
        assert reopened.columns == ["01", "03", "05"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_remove_image_relists_with_the_rows_of_then(tmp_path: Path, version: str) -> None:
    """remove_image of a well's last field lists the well again when another writer gave it a
    field meanwhile: with the indices of the rows as they are then (another writer added row
    "A" before "B" meanwhile too), not those of the plate as opened."""
    import threading

    from ngio_async.stores import open_store
    from ngio_async.stores._instrumented import InstrumentedStore

    url = tmp_path / "p.zarr"
    with ngio_async.create_plate(url, rows=["B"], columns=["1"], ngff_version=version) as plate:
        plate.add_image("B/1", shape=(4, 4), dtype="uint8").close()
    gets = []

    def others(method: str, key: str) -> None:
        """At the well's edit (its 2nd read): another field listed, row "A" added."""
        if (method, key) != ("get", _well_key(version)):
            return
        gets.append(key)
        if len(gets) != 2:
            return
        doc_path = url / _well_key(version)
        doc = json.loads(doc_path.read_text())
        attrs = doc["attributes"]["ome"] if version == "0.5" else doc
        attrs["well"]["images"].append({"path": "1"})
        doc_path.write_text(json.dumps(doc))

        def add_row() -> None:
            with ngio_async.open_plate(url, mode="r+") as theirs:
                theirs.add_row("A")

        thread = threading.Thread(target=add_row)
        thread.start()
        thread.join()
        return

    store = InstrumentedStore(open_store(url), fail=others)
    async with await ngio_async.open_plate_async(store, mode="r+") as mine:
        await mine.remove_image("B/1")
    assert len(gets) >= 2
    assert _wells(url) == {"B/1": ("B", "1")}


def _well_key(version: str) -> str:
    return "B/1/zarr.json" if version == "0.5" else "B/1/.zattrs"
