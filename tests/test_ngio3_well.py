"""open_well(url) / open_well_async(url): a well read by its own URL, without its plate, as
ngio 1.1.3's open_ome_zarr_well reads it (a Fractal task given an image's URL lists its well's
fields and their acquisitions): the same paths and acquisitions as ngio (NGFF 0.4 and 0.5), on
moto's S3 too; a group that is no well is refused naming what it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _ngio_plate(path: Path, version: str) -> Any:
    import ngio

    images = [
        ngio.ImageInWellPath(row="B", column=3, path=p, acquisition_id=a, acquisition_name=n)
        for p, a, n in (("0", 0, "cycle0"), ("1", 1, "cycle1"), ("2", 1, "cycle1"))
    ]
    images.append(ngio.ImageInWellPath(row="A", column=1, path="0", acquisition_id=0))
    plate = ngio.create_empty_plate(
        str(path),
        "plate",
        images=images,
        ngff_version=version,  # type: ignore[arg-type]
    )
    for p in ("0", "1", "2"):
        ngio.create_ome_zarr_from_array(
            plate.get_image_store("B", 3, p),
            np.zeros((8, 8), np.uint8),
            pixelsize=1.0,
            levels=1,
            ngff_version=version,  # type: ignore[arg-type]
            overwrite=True,
        )
    return plate


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_well_read_by_its_url_as_ngio_reads_it(tmp_path: Path, version: str) -> None:
    import ngio

    _ngio_plate(tmp_path / "plate.zarr", version)
    url = tmp_path / "plate.zarr" / "B" / "03"
    theirs = ngio.open_ome_zarr_well(str(url))
    well = await ngio_async.open_well_async(url)
    assert (well.path, well.row, well.column) == ("B/03", "B", "03")
    assert well.fields == theirs.paths() == ["0", "1", "2"]
    for acquisition in theirs.acquisition_ids:
        assert well.field_paths(acquisition) == theirs.paths(acquisition)
    assert [im.acquisition for im in well.images] == [
        theirs.get_image_acquisition_id(p) for p in theirs.paths()
    ]
    sync = ngio_async.open_well(str(url))  # the blocking twin
    assert sync == well
    async with ngio_async.open_async(f"{url}/{well.fields[1]}") as field:  # a field by its URL
        assert field.shape == (8, 8)
    with pytest.raises(MetadataError, match=r"03/0 is not a well: .* \(its NGFF metadata: "):
        await ngio_async.open_well_async(url / "0")
    with pytest.raises(ngio_async.NotFoundError):
        await ngio_async.open_well_async(tmp_path / "plate.zarr" / "C" / "01")


async def test_a_well_on_s3(s3_server: S3Server) -> None:
    url = f"{s3_server.fresh_url()}/plate.zarr"
    async with ngio_async.create_plate_async(
        url, rows=["B"], columns=["03"], acquisitions=[0, 1], **s3_server.options()
    ) as plate:
        for field, acquisition in (("0", 0), ("1", 1)):
            fov = await plate.add_image(
                "B", "03", field, acquisition=acquisition, shape=(8, 8), dtype="uint8"
            )
            await fov.aclose()
    well = await ngio_async.open_well_async(f"{url}/B/03", **s3_server.options())
    assert well.fields == ["0", "1"] and well.field_paths(1) == ["1"]
