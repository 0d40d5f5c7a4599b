"""Acquisitions of plates made here pass ``validate --strict`` (NGFF's strict plate schema
wants each acquisition's ``name`` and ``maximumfieldcount``): a missing name defaults to the
id, a missing ``maximumfieldcount`` is kept as the most fields of the acquisition in a well."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async.cli._validate import validate_hierarchy

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

FIELD: dict[str, Any] = {"shape": (1, 8, 8), "dtype": "uint8", "axes": "cyx"}


def plate_body(path: Path, version: str) -> dict[str, Any]:
    if version == "0.4":
        return json.loads((path / ".zattrs").read_text())["plate"]  # type: ignore[no-any-return]
    doc = json.loads((path / "zarr.json").read_text())
    return doc["attributes"]["ome"]["plate"]  # type: ignore[no-any-return]


@pytest.mark.filterwarnings("ignore:'version' field not specified in plate")  # ngio, 0.5
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_acquisitions_pass_strict_validation(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "plate.ome.zarr"
    acquisitions: list[int | dict[str, Any]] = [
        0,
        {"id": 1, "name": "late"},
        {"id": 2, "maximumfieldcount": 1},
    ]
    async with ngio_async.create_plate_async(
        path, rows=["A"], columns=["1", "2"], acquisitions=acquisitions, ngff_version=version
    ) as plate:
        for well, field, acq in (("A/1", "0", 0), ("A/1", "1", 1), ("A/1", "2", 0)):
            ds = await plate.add_image(well, field=field, acquisition=acq, **FIELD)
            await ds.write(np.ones((1, 8, 8), np.uint8))
            await ds.aclose()
        await (await plate.add_image("A/2", field="0", acquisition=0, **FIELD)).aclose()
        await (await plate.add_image("A/2", field="9", acquisition=2, **FIELD)).aclose()
        # a given maximumfieldcount is raised too (NGFF: the most per well, no bound)
        await (await plate.add_image("A/2", field="5", acquisition=2, **FIELD)).aclose()
        assert [a.maximumfieldcount for a in plate.acquisitions] == [2, 1, 2]
    assert [
        (a["name"], a["maximumfieldcount"]) for a in plate_body(path, version)["acquisitions"]
    ] == [("0", 2), ("late", 1), ("2", 2)]
    report = await validate_hierarchy(str(path), strict=True)
    assert report.errors == [], [p.line() for p in report.problems]
    # reopened: a kept maximumfieldcount grows, it is no bound
    async with ngio_async.open_plate_async(path, mode="r+") as plate:
        for field in ("3", "4"):
            await (await plate.add_image("A/1", field=field, acquisition=0, **FIELD)).aclose()
        assert [a.maximumfieldcount for a in plate.acquisitions] == [4, 1, 2]
    ngio = pytest.importorskip("ngio")
    assert ngio.open_ome_zarr_plate(str(path)).acquisition_ids == [0, 1, 2]


async def test_fields_naming_no_acquisition_belong_to_the_only_one() -> None:
    """NGFF requires a field's ``acquisition`` only in plates of several: in a plate of one,
    ``image_paths(acquisition=<its id>)`` left out the fields that name none."""
    async with ngio_async.create_plate_async(
        "memory://", rows=["A"], columns=["1"], acquisitions=[3]
    ) as plate:
        await (await plate.add_image("A/1", field="0", **FIELD)).aclose()
        await (await plate.add_image("A/1", field="1", acquisition=3, **FIELD)).aclose()
        assert [im.acquisition for im in (await plate.well("A/1")).images] == [None, 3]
        assert await plate.image_paths(acquisition=3) == [("A/1", "0"), ("A/1", "1")]
        assert await plate.image_paths(acquisition=4) == []
