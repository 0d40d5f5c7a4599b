"""plates26: a plate's ``field_count`` is NGFF's "maximum number of fields per view across all
wells", a description, not a limit: ``add_image`` refused a field past it (ngio adds it and
leaves the count stale); it now adds the field and raises ``field_count`` to the well's count
with the plate's rewrite (a compare-and-swap of the plate document: concurrent adds all land,
and the count ends as the most fields of any well). A plate without one stays without one;
``remove_image`` leaves it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import anyio
import pytest

import ngio_async
from ngio_async.cli._validate import validate_hierarchy

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

FIELD: dict[str, Any] = {"shape": (4, 4), "dtype": "uint8"}


def plate_body(path: Path, version: str) -> dict[str, Any]:
    if version == "0.4":
        return json.loads((path / ".zattrs").read_text())["plate"]  # type: ignore[no-any-return]
    doc = json.loads((path / "zarr.json").read_text())
    return doc["attributes"]["ome"]["plate"]  # type: ignore[no-any-return]


@pytest.mark.filterwarnings("ignore:.version. field not specified in plate")  # ngio, 0.5
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_field_past_field_count_raises_it(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "plate.ome.zarr"
    async with ngio_async.create_plate_async(
        path, rows=["A"], columns=["1", "2"], field_count=1, ngff_version=version
    ) as plate:
        await (await plate.add_image("A/1", field="0", **FIELD)).aclose()
        assert plate_body(path, version)["field_count"] == 1
        # was: ValueError "well 'A/1' already has 1 fields: the plate's field_count is 1"
        await (await plate.add_image("A/1", field="1", **FIELD)).aclose()
        await (await plate.add_image("A/1", field="2", **FIELD)).aclose()
        assert plate.field_count == 3
        await (await plate.add_image("A/2", field="0", **FIELD)).aclose()  # fewer: kept
        await (await plate.add_image("A/1", field="1", overwrite=True, **FIELD)).aclose()
        assert plate.field_count == 3
    assert plate_body(path, version)["field_count"] == 3
    report = await validate_hierarchy(str(path), strict=True)
    assert report.errors == [], [p.line() for p in report.problems]
    async with ngio_async.open_plate_async(path, mode="r+") as plate:
        assert plate.field_count == 3
        assert await plate.image_paths() == [("A/1", "0"), ("A/1", "1"), ("A/1", "2"), ("A/2", "0")]
        # removing leaves it (an upper bound then): lowering it would read every well
        await plate.remove_image("A/1", field="2")
        assert plate.field_count == 3
    assert plate_body(path, version)["field_count"] == 3
    ngio = pytest.importorskip("ngio")
    assert ngio.open_ome_zarr_plate(str(path)).meta.plate.field_count == 3


async def test_a_plate_without_field_count_stays_without() -> None:
    async with ngio_async.create_plate_async("memory://", rows=["A"], columns=["1"]) as plate:
        for name in "012":
            await (await plate.add_image("A/1", field=name, **FIELD)).aclose()
        raw = await plate.store.get("zarr.json")
        assert raw is not None
        assert "field_count" not in json.loads(bytes(raw))["attributes"]["ome"]["plate"]
        assert plate.field_count is None


async def _add_all(url: str, names: list[str], options: dict[str, Any]) -> None:
    """Open the plate (its own object and store, as another process would) and add fields
    ``names`` to well A/1 all at once."""
    async with ngio_async.open_plate_async(url, mode="r+", **options) as plate:

        async def add(name: str) -> None:
            await (await plate.add_image("A/1", field=name, **FIELD)).aclose()

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(add, name)


@pytest.mark.parametrize("where", ["file", "s3"])
async def test_concurrent_adds_past_field_count_all_land(
    tmp_path: Path, s3_server: S3Server, where: str
) -> None:
    if where == "s3":
        url, options = s3_server.fresh_url() + "/p.zarr", s3_server.options()
    else:
        url, options = str(tmp_path / "p.zarr"), {}
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], field_count=2, **options
    ):
        pass
    async with anyio.create_task_group() as tg:  # two writers, each with its own plate
        tg.start_soon(_add_all, url, ["a", "b", "c"], options)
        tg.start_soon(_add_all, url, ["d", "e", "f"], options)
    async with ngio_async.open_plate_async(url, **options) as plate:
        assert sorted((await plate.well("A/1")).fields) == list("abcdef")
        assert plate.field_count == 6


async def test_a_failed_raise_unlists_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plate's rewrite fails after the well listed the field: the field is unlisted and
    removed again (listed, the plate's field_count would be less than the well's fields)."""
    path = tmp_path / "plate.ome.zarr"
    async with ngio_async.create_plate_async(
        path, rows=["A"], columns=["1"], field_count=1
    ) as plate:
        await (await plate.add_image("A/1", field="0", **FIELD)).aclose()
        listed: list[list[str]] = []

        async def failing(*args: Any, **kw: Any) -> None:
            well = json.loads((path / "A" / "1" / "zarr.json").read_text())  # lists it now
            listed.append([im["path"] for im in well["attributes"]["ome"]["well"]["images"]])
            raise OSError("injected: the plate's rewrite fails")

        monkeypatch.setattr(plate, "_edit_plate", failing)
        with pytest.raises(OSError, match="injected"):
            await plate.add_image("A/1", field="1", **FIELD)
        assert listed == [["0", "1"]]
        monkeypatch.undo()
    well = json.loads((path / "A" / "1" / "zarr.json").read_text())
    assert [im["path"] for im in well["attributes"]["ome"]["well"]["images"]] == ["0"]
    assert plate_body(path, "0.5")["field_count"] == 1
    assert not (path / "A" / "1" / "1" / "zarr.json").exists()
    report = await validate_hierarchy(str(path))
    assert report.errors == [], [p.line() for p in report.problems]


async def test_a_failed_raise_of_maximumfieldcount_unlists_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for an acquisition's stated maximumfieldcount (the plate has no field_count)."""
    path = tmp_path / "plate.ome.zarr"
    async with ngio_async.create_plate_async(
        path, rows=["A"], columns=["1"], acquisitions=[{"id": 0, "maximumfieldcount": 1}]
    ) as plate:
        await (await plate.add_image("A/1", field="0", acquisition=0, **FIELD)).aclose()

        async def failing(*args: Any, **kw: Any) -> None:
            raise OSError("injected: the plate's rewrite fails")

        monkeypatch.setattr(plate, "_edit_plate", failing)
        with pytest.raises(OSError, match="injected"):
            await plate.add_image("A/1", field="1", acquisition=0, **FIELD)
        monkeypatch.undo()
    well = json.loads((path / "A" / "1" / "zarr.json").read_text())
    assert [im["path"] for im in well["attributes"]["ome"]["well"]["images"]] == ["0"]
    assert plate_body(path, "0.5")["acquisitions"][0]["maximumfieldcount"] == 1
    assert not (path / "A" / "1" / "1" / "zarr.json").exists()
