"""A ROI's numbers are in the image's own units, as ngio reads them: masking_rois gives a
label's boxes in the stored unit (nanometres here), and read_roi and masked() take them so
(they took micrometres, so the masking ROIs of a nanometre image read nothing: 'outside the
image')."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_masking_rois_of_a_nanometre_image_read_their_objects(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr",
        shape=(8, 16, 16),
        dtype="uint8",
        axes="zyx",
        scale={"z": 500.0, "y": 200.0, "x": 200.0},
        units={"z": "nanometer", "y": "nanometer", "x": "nanometer"},
    ) as ds:
        await ds.write(np.full((8, 16, 16), 9, np.uint8))
        label = await ds.labels.create("cells", dtype="uint8")
        cells = np.zeros((8, 16, 16), np.uint8)
        cells[2:4, 4:8, 4:8] = 3
        await label.write(cells)
        (roi,) = await label.masking_rois()
        await label.aclose()
        assert {a: pytest.approx(r) for a, r in roi.ranges.items()} == {
            "z": (1000.0, 2000.0),
            "y": (800.0, 1600.0),
            "x": (800.0, 1600.0),
        }
        read = await ds.read_roi(roi)
        assert read.region == (slice(2, 4), slice(4, 8), slice(4, 8))
        async with ds.masked("cells") as m:
            got = await m.read(3, masked=True)
        assert got.shape == (2, 4, 4) and (got == 9).all()
    # ngio reads the same numbers from its own masking ROI table of this label
    import ngio

    container = ngio.open_ome_zarr_container(str(tmp_path / "img.zarr"))
    table = container.build_masking_roi_table("cells")
    (theirs,) = table.rois()
    starts = {s.axis_name: (s.start, (s.start or 0) + (s.length or 0)) for s in theirs.slices}
    for a in "zyx":
        assert starts[a] == pytest.approx(roi.ranges[a])
