"""plates26: ngio's ``add_well`` lists a well whose ``images`` list is empty (NGFF wants one
field at least). Such a plate opened here could not be listed at all (``image_paths`` and
``well`` raised MetadataError 'Expected `array` of length >= 1'); the well is now read as a
well without fields, and a field can be added to it (also when it is the plate's first)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

FIELD: dict[str, Any] = {"shape": (1, 64, 64), "dtype": "uint8", "axes": "cyx"}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_well_ngio_added_without_fields(tmp_path: Path, version: str) -> None:
    ngio = pytest.importorskip("ngio")
    path = tmp_path / "plate.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plate = ngio.create_empty_plate(str(path), "p", ngff_version=version)
        plate.add_well("A", 2)  # listed first, its images empty
        plate.add_image("B", 1, "0")
        ngio.create_ome_zarr_from_array(
            str(path / "B" / "01" / "0"),
            np.ones((1, 64, 64), np.uint8),
            pixelsize=1.0,
            axes_names="cyx",
            ngff_version=version,
        )
    async with ngio_async.open_plate_async(path) as mine:
        assert mine.wells == ["A/02", "B/01"]
        assert await mine.image_paths() == [("B/01", "0")]  # was: MetadataError
        assert (await mine.well("A", 2)).fields == []
    well = await ngio_async.open_well_async(path / "A" / "02")  # by its URL too
    assert (well.path, well.fields) == ("A/02", [])
    async with ngio_async.open_plate_async(path, mode="r+") as mine:
        await (await mine.add_image("A", 2, field="0", **FIELD)).aclose()
        assert await mine.image_paths() == [("A/02", "0"), ("B/01", "0")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ngio.open_ome_zarr_plate(str(path)).get_well("A", 2).paths() == ["0"]


async def test_a_broken_well_still_raises(tmp_path: Path) -> None:
    path = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(path, rows=["A"], columns=["1"]) as plate:
        await (await plate.add_image("A/1", **FIELD)).aclose()
    doc = path / "A" / "1" / "zarr.json"
    doc.write_text(doc.read_text().replace('"images":[{"path":"0"}]', '"images":[{}]'))
    async with ngio_async.open_plate_async(path) as plate:
        with pytest.raises(MetadataError, match="images"):
            await plate.image_paths()


async def test_a_plate_with_a_well_ngio_added_without_fields_converts(tmp_path: Path) -> None:
    """convert read its wells itself and refused the plate (MetadataError); the empty well is
    left out of the target, as a well with no field left."""
    ngio = pytest.importorskip("ngio")
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plate = ngio.create_empty_plate(str(src), "p", ngff_version="0.5")
        plate.add_well("A", 2)
        plate.add_image("B", 1, "0")
        ngio.create_ome_zarr_from_array(
            str(src / "B" / "01" / "0"),
            np.full((1, 64, 64), 4, np.uint8),
            pixelsize=1.0,
            axes_names="cyx",
            ngff_version="0.5",
        )
    result = await ngio_async.convert(str(src), str(dst), ngff_version="0.4")
    assert result.wells == ("B/01",)
    async with ngio_async.open_plate_async(dst) as plate:
        assert await plate.image_paths() == [("B/01", "0")]
        async with await plate.image("B", 1) as ds:
            assert int((await ds.read()).max()) == 4
