"""A plate opened before another writer grew it (a row, a column, an acquisition, a well, a
field) reads its document again once before refusing: ``add_image`` into the new row works
and the document written keeps both writers' edits; ``well`` / ``image`` find the wells and
fields listed since; what is truly missing is still refused, naming it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import ngio_async
from ngio_async._errors import NotFoundError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

KW: dict[str, Any] = {"shape": (4, 4), "dtype": "uint8"}


def _place(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each listed well's path -> the (row, column) names its indices point at."""
    rows = [r["name"] for r in body["rows"]]
    columns = [c["name"] for c in body["columns"]]
    return {w["path"]: (rows[w["rowIndex"]], columns[w["columnIndex"]]) for w in body["wells"]}


async def _body(url: str, options: dict[str, Any]) -> dict[str, Any]:
    async with open_store(url, **options) as store:
        raw = await store.get("zarr.json")
    assert raw is not None
    body: dict[str, Any] = json.loads(bytes(raw))["attributes"]["ome"]["plate"]
    return body


@pytest.fixture(params=["disk", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    if request.param == "disk":
        return str(tmp_path / "p.zarr"), {}
    s3: S3Server = request.getfixturevalue("s3_server")
    return f"{s3.fresh_url()}/p.zarr", s3.options()


async def test_add_image_into_a_row_another_writer_added(
    where: tuple[str, dict[str, Any]],
) -> None:
    url, options = where
    async with ngio_async.create_plate_async(url, rows=["A"], columns=["1"], **options) as p:
        await (await p.add_image("A/1", **KW)).aclose()
    async with (
        await ngio_async.open_plate_async(url, mode="r+", **options) as a,
        await ngio_async.open_plate_async(url, mode="r+", **options) as b,
    ):
        await b.add_row("C")
        await b.add_row("B")  # before C: C's index moves once more
        await b.add_column("2")
        await (await a.add_image("C", "2", **KW)).aclose()
        assert a.rows == ["A", "B", "C"]
        assert a.wells == ["A/1", "C/2"]
        with pytest.raises(ValueError, match="row 'D' is not a row of plate"):
            await a.add_image("D", "1", **KW)
        with pytest.raises(ValueError, match="column '7' is not a column of plate"):
            await a.add_image("A", "7", **KW)
    body = await _body(url, options)
    assert [r["name"] for r in body["rows"]] == ["A", "B", "C"]
    assert [c["name"] for c in body["columns"]] == ["1", "2"]
    assert _place(body) == {"A/1": ("A", "1"), "C/2": ("C", "2")}
    async with await ngio_async.open_plate_async(url, **options) as reread:
        ds = await reread.image("C/2")
        assert ds.shape == (4, 4)
        await ds.aclose()


async def test_wells_and_fields_listed_since_the_open(where: tuple[str, dict[str, Any]]) -> None:
    url, options = where
    async with ngio_async.create_plate_async(
        url, rows=["A", "B"], columns=["1"], acquisitions=[0], **options
    ) as p:
        await (await p.add_image("A/1", **KW)).aclose()
    async with (
        await ngio_async.open_plate_async(url, mode="r+", **options) as a,
        await ngio_async.open_plate_async(url, mode="r+", **options) as b,
    ):
        assert (await a.well("A/1")).fields == ["0"]  # cached by a
        await (await b.add_image("B/1", **KW)).aclose()
        await (await b.add_image("A/1", field="1", **KW)).aclose()
        await b.add_acquisition(1)
        assert (await a.well("B/1")).fields == ["0"]
        async with await a.image("A/1", field="1") as ds:
            assert ds.shape == (4, 4)
        async with await a.image("A/1", field=1) as ds:
            assert ds.shape == (4, 4)
        await (await a.add_image("B/1", field="2", acquisition=1, **KW)).aclose()
        await a.remove_image("A/1", field="1")
        with pytest.raises(NotFoundError, match="no well 'A/2'"):
            await a.well("A/2")
        with pytest.raises(NotFoundError, match="has no field '5'"):
            await a.image("A/1", field="5")
        with pytest.raises(ValueError, match="acquisition 7 is not one of"):
            await a.add_image("B/1", field="3", acquisition=7, **KW)
    body = await _body(url, options)
    assert _place(body) == {"A/1": ("A", "1"), "B/1": ("B", "1")}
    assert [q["id"] for q in body["acquisitions"]] == [0, 1]
    async with await ngio_async.open_plate_async(url, **options) as reread:
        assert await reread.image_paths() == [("A/1", "0"), ("B/1", "0"), ("B/1", "2")]


async def test_first_field_of_a_well_another_writer_emptied(tmp_path: Path) -> None:
    """A plate that listed a well when opened gives it its first field after another writer
    removed the well's last one (unlisting it): the well is listed again, not left with a
    field the plate does not list."""
    url = tmp_path / "p.zarr"
    async with ngio_async.create_plate_async(url, rows=["A"], columns=["1", "2"]) as p:
        await (await p.add_image("A/1", **KW)).aclose()
        await (await p.add_image("A/2", **KW)).aclose()
    async with (
        await ngio_async.open_plate_async(url, mode="r+") as a,
        await ngio_async.open_plate_async(url, mode="r+") as b,
    ):
        await b.remove_image("A/2")
        assert "A/2" in a.wells  # as a read it
        await (await a.add_image("A/2", field="1", **KW)).aclose()
    body = await _body(str(url), {})
    assert _place(body) == {"A/1": ("A", "1"), "A/2": ("A", "2")}


async def test_add_column_named_as_the_current_columns(tmp_path: Path) -> None:
    """add_column(1) of a plate opened before another writer added column "01" finds that
    column (as ngio does), not a second column numbered 1 named "1"."""
    url = tmp_path / "p.zarr"
    async with ngio_async.create_plate_async(url, rows=["A"], columns=["x"]) as p:
        await (await p.add_image("A/x", **KW)).aclose()
    async with (
        await ngio_async.open_plate_async(url, mode="r+") as a,
        await ngio_async.open_plate_async(url, mode="r+") as b,
    ):
        await b.add_column("01")
        await a.add_column(1)
        await a.add_column(3)  # padded as the columns are now
        assert a.columns == ["01", "03", "x"]
    body = await _body(str(url), {})
    assert [c["name"] for c in body["columns"]] == ["01", "03", "x"]
    assert _place(body) == {"A/x": ("A", "x")}
