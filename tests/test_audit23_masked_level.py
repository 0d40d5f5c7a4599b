"""``stream(ds.read_rois(..., level), func, out=<masked image of the same image>)``: the
masked image's level must be the level the ROIs are read at (each result is written at its
ROI's box as read); another level is refused at the call, nothing written (level 1 ROIs
landed at their level-1 coordinates in level 0, mostly outside the objects)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
LABELS = np.zeros((32, 32), np.uint16)
LABELS[4:12, 4:12] = 1
LABELS[16:30, 18:28] = 2


def paint(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.full_like(a, 100)


async def _prepared(path: Path) -> None:
    async with ngio_async.create_async(
        path, shape=(32, 32), dtype="uint16", axes="yx", chunks=(16, 16), levels=2, scale=0.5
    ) as ds:
        await ds.write(np.full((32, 32), 5, np.uint16), pyramid=True)
        lab = await ds.labels.create("seg", dtype="uint16")
        await lab.write(LABELS, pyramid=True)
        await ds.tables.write_rois("seg_ROI_table", await lab.masking_rois(), label="seg")
        await lab.aclose()


@pytest.mark.parametrize("by_name", [False, True])
async def test_level1_rois_into_a_level0_masked_image_refused(
    tmp_path: Path, by_name: bool
) -> None:
    await _prepared(tmp_path / "a.zarr")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds,
        ds.masked("seg", level=0) as m,
    ):
        label: Any = "seg" if by_name else m.label_image
        with pytest.raises(ValueError, match=r"level '1' of pixels \(1.0, 1.0\).*nothing was"):
            ngio_async.stream(ds.read_rois("seg_ROI_table", 1, label=label), paint, out=m)
        assert not (await ds.read(level=0) == 100).any()
        # the masked image's own level: written inside the objects alone
        await ngio_async.stream(ds.read_rois("seg_ROI_table", 0, label=label), paint, out=m)
        np.testing.assert_array_equal(await ds.read(level=0) == 100, LABELS > 0)
