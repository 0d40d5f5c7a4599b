"""A plate made by ``create_plate`` passes ``validate --strict`` (NGFF's strict plate schema
requires a name: it defaults to the plate's directory name)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async.cli._validate import validate_hierarchy

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_created_plate_passes_strict_validation(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    url = str(tmp_path / "screen-17.ome.zarr")
    async with ngio_async.create_plate_async(
        url, rows=["A"], columns=["1"], ngff_version=version
    ) as plate:
        field = await plate.add_image("A/1", shape=(1, 8, 8), dtype="uint8", axes="cyx")
        await field.write(np.ones((1, 8, 8), dtype="uint8"))
        assert plate.name == "screen-17"
    report = await validate_hierarchy(url, strict=True)
    assert report.errors == [], [p.line() for p in report.problems]


async def test_a_given_name_is_kept_and_a_bucket_root_gets_none() -> None:
    async with ngio_async.create_plate_async("memory://", rows=["A"], columns=["1"]) as plate:
        assert plate.name is None
    async with ngio_async.create_plate_async(
        "memory://", rows=["A"], columns=["1"], name="mine", path="x/p.zarr"
    ) as plate:
        assert plate.name == "mine"
