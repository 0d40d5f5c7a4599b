"""ds.image_roi() of an image whose time axis is in milliseconds: its time range is in the
stored unit, as ngio's build_image_roi_table gives it and as read_roi and masking_rois take
and give a ROI's time (in seconds, 0.06 for 60 ms, read_roi(image_roi()) read 1 of 3 time
points)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_the_image_roi_reads_the_whole_image(tmp_path: Path) -> None:
    import ngio

    data = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    async with ngio_async.create_async(
        tmp_path / "img.zarr",
        shape=(3, 16, 16),
        dtype="uint16",
        axes="tyx",
        scale={"t": 20.0, "y": 0.5, "x": 0.5},
        units={"t": "millisecond", "y": "micrometer", "x": "micrometer"},
    ) as ds:
        await ds.write(data)
        label = await ds.labels.create("cells", dtype="uint16")
        cells = np.zeros((3, 16, 16), np.uint16)
        cells[1:, 2:4, 2:4] = 5
        await label.write(cells)
        masking = await label.masking_rois()
        await label.aclose()
        roi = ds.image_roi()
        assert roi.time == (0.0, 60.0)
        np.testing.assert_array_equal((await ds.read_roi(roi)).data, data)
        assert masking[0].time == (20.0, 60.0)  # the same unit as the image's ROI
        np.testing.assert_array_equal((await ds.read_roi(masking[0])).data, data[1:, 2:4, 2:4])
    (theirs,) = (
        ngio.open_ome_zarr_container(str(tmp_path / "img.zarr"))
        .build_image_roi_table("image")
        .rois()
    )
    assert (theirs.get("t").start, theirs.get("t").end) == roi.time  # type: ignore[union-attr]
