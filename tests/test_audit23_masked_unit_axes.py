"""A masked write takes data with leading axes of length 1 more than the box (a one-channel
image's ROI, ``(1, y, x)``, segmented into its ``(y, x)`` label image), dropped as
``ds.write`` / ``write_roi`` drop them: ``stream(ds.read_rois(..., label=...), func,
out=<label>, masked=True)`` and ``m.write`` refused it ('data of shape (1, 18, 12) for a box of
shape (18, 12)') where the same stream without ``masked`` wrote it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
IMAGE = np.arange(32 * 32, dtype=np.uint16).reshape(1, 32, 32)
SEG = np.zeros((32, 32), np.uint16)
SEG[2:12, 3:20] = 1
SEG[2:24, 3:7] = 1  # an L: its box holds pixels of no object
SEG[18:30, 20:30] = 2


def plus_one(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return (a + 1).astype(np.uint16)  # (1, y, x): the channel axis kept


async def test_a_masked_stream_into_a_label_drops_the_unit_channel(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=IMAGE.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16),
        levels=1, scale=0.5,
    ) as ds:  # fmt: skip
        await ds.write(IMAGE)
        seg = await ds.labels.create("seg", dtype="uint16")
        await seg.write(SEG)
        await ds.tables.write_rois("seg_ROI_table", await seg.masking_rois(), label="seg")
        out = await ds.labels.create("out", dtype="uint16")
        rois = ds.read_rois("seg_ROI_table", label=seg)
        await ngio_async.stream(rois, plus_one, out=out, masked=True)
        np.testing.assert_array_equal(await out.read(), np.where(SEG > 0, IMAGE[0] + 1, 0))
        async with ds.masked("seg", of="out") as m:  # the label image masked: m.write alike
            await m.write(2, np.full((1, 12, 10), 5, np.uint16))
        want = np.where(SEG == 2, 5, np.where(SEG > 0, IMAGE[0] + 1, 0))
        np.testing.assert_array_equal(await out.read(), want)
        await seg.aclose()
        await out.aclose()
