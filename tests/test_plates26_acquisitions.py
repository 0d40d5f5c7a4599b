"""plates26: an acquisition's ``maximumfieldcount`` (NGFF: the most fields of view of the
acquisition in a well). A plate another tool wrote without one (ngio writes none) got one
from the first well ``add_image`` gave a field of it: 1, while another well had 3 fields of
it. An absent one is now set only for acquisitions made here without one (their fields are all
added here); a stated one is raised past, as ``field_count``, not a limit. Other keys of an
acquisition (``starttime``, ``description``) are kept through every rewrite."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

FIELD: dict[str, Any] = {"shape": (1, 64, 64), "dtype": "uint8", "axes": "cyx"}


def ngio_plate(path: Path) -> None:
    """A 0.5 plate as ngio 1.1 writes it: acquisition 0 without maximumfieldcount, well
    AA/01 with 3 fields of it."""
    ngio = pytest.importorskip("ngio")
    images = [
        ngio.ImageInWellPath(row="AA", column=1, path=str(i), acquisition_id=0) for i in range(3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ngio.create_empty_plate(str(path), name="p", images=images, ngff_version="0.5")
        for i in range(3):
            ngio.create_ome_zarr_from_array(
                str(path / "AA" / "01" / str(i)),
                np.full((1, 64, 64), i, np.uint8),
                pixelsize=1.0,
                axes_names="cyx",
                ngff_version="0.5",
            )
    doc = json.loads((path / "zarr.json").read_text())
    doc["attributes"]["ome"]["plate"]["columns"].append({"name": "02"})
    doc["attributes"]["ome"]["plate"]["acquisitions"][0]["starttime"] = 1700000000
    (path / "zarr.json").write_text(json.dumps(doc))


def acquisitions(path: Path) -> list[dict[str, Any]]:
    doc = json.loads((path / "zarr.json").read_text())
    return doc["attributes"]["ome"]["plate"]["acquisitions"]  # type: ignore[no-any-return]


async def test_an_absent_maximumfieldcount_of_another_tools_plate_stays_absent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ngio.zarr"
    ngio_plate(path)
    assert "maximumfieldcount" not in acquisitions(path)[0]
    async with ngio_async.open_plate_async(path, mode="r+") as plate:
        await (await plate.add_image("AA", 2, acquisition=0, **FIELD)).aclose()
        # was 1 (A/02's count), while AA/01 has 3 fields of acquisition 0
        assert plate.acquisitions[0].maximumfieldcount is None
        await plate.add_acquisition(1, "second")  # made here: kept from now on
        for field in ("1", "2"):
            await (await plate.add_image("AA", 2, field=field, acquisition=1, **FIELD)).aclose()
        await plate.add_acquisition(2, "third", maximumfieldcount=1)  # stated: raised past
        for field in ("3", "4"):
            await (await plate.add_image("AA", 2, field=field, acquisition=2, **FIELD)).aclose()
    stored = acquisitions(path)
    assert [a.get("maximumfieldcount") for a in stored] == [None, 2, 2]
    assert stored[0]["starttime"] == 1700000000  # the other keys are kept
    async with ngio_async.open_plate_async(path) as plate:
        assert await plate.image_paths(acquisition=0) == [
            ("AA/01", "0"),
            ("AA/01", "1"),
            ("AA/01", "2"),
            ("AA/02", "0"),
        ]
        assert plate.acquisitions[0].starttime == 1700000000
    ngio = pytest.importorskip("ngio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ngio.open_ome_zarr_plate(str(path)).get_well("AA", 2).paths() == list("01234")


async def test_a_created_plates_absent_maximumfieldcount_is_kept(tmp_path: Path) -> None:
    """Made here without one: kept as the most fields of the acquisition in any well (NGFF's
    strict schema wants one), also when the plate object is opened again."""
    path = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(
        path, rows=["A"], columns=["1", "2"], acquisitions=[0]
    ) as plate:
        await (await plate.add_image("A/1", acquisition=0, **FIELD)).aclose()
        assert plate.acquisitions[0].maximumfieldcount == 1
    async with ngio_async.open_plate_async(path, mode="r+") as plate:
        for field in ("0", "1"):
            await (await plate.add_image("A/2", field=field, acquisition=0, **FIELD)).aclose()
        assert plate.acquisitions[0].maximumfieldcount == 2
    assert acquisitions(path)[0]["maximumfieldcount"] == 2
