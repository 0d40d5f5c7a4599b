"""``stream(rois, ..., stitch=StitchConfig(compact=True))`` into a label that already holds
objects numbered 1..N (an earlier compacted run) where no ROI writes: an id of those that a
ROI's result reuses is numbered as one object with it (as ngio's compact numbers by value),
and that is said; it was silent (the label's old object and the new one one id)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_ngio4_stitch import _image, _whole

import ngio_async
from ngio_async import StitchConfig
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_an_old_id_reused_by_a_roi_is_warned_of(tmp_path: Path) -> None:
    img = _image()
    rois = [Roi(f"FOV_{i}", {"y": (0.0, 16.0), "x": (x, x + 16.0)}) for i, x in enumerate((0, 16))]
    async with ngio_async.create_async(
        tmp_path / "i.zarr", shape=img.shape, dtype="uint16", axes="yx", scale=0.5,
        chunks=(16, 16), shards=False,
    ) as ds:  # fmt: skip
        await ds.write(img)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            old = np.zeros(img.shape, np.uint32)
            old[44:50, 2:10], old[60:63, 60:63] = 1, 9  # an earlier run's objects 1 and 9
            await lab.write(old)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                await ngio_async.stream(
                    ds.read_rois(rois, halo={"y": 8, "x": 8}), _whole, out=lab,
                    unique_labels=100, stitch=StitchConfig(compact=True),
                )  # fmt: skip
            got = await lab.read()
    assert got[44, 2] == got[0:32][got[0:32] > 0].min() == 1  # one number, two objects
    said = [str(w.message) for w in caught if "no ROI of the stream wrote" in str(w.message)]
    assert len(said) == 1 and "renumbered 2 " in said[0], said
    assert "1 of them ([1]) also an id the ROIs wrote" in said[0], said
