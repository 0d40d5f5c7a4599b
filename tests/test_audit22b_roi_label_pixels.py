"""stream(ds.read_rois(...), func, out=<label image>) where the label image's pixels differ
from those of the level read (a label at half the image's resolution, as ngio's
derive_label(ref_image=<level 1>) makes) is refused at the call, naming both pixel sizes,
before any ROI is read or func runs (it failed at the first write, after func ran; ngio's
SegmentationIterator refuses such a pair too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_label_of_other_pixels_refused_at_the_call(tmp_path: Path) -> None:
    ngio = pytest.importorskip("ngio")
    url = str(tmp_path / "img.zarr")
    ds = await ngio_async.create_async(
        url, shape=(1, 32, 32), dtype="uint16", axes="cyx", channels=["DAPI"], levels=2,
        chunks=(1, 16, 16), ngff_version="0.4",
    )  # fmt: skip
    await ds.write(np.full((1, 32, 32), 3, "uint16"), pyramid=True)
    await ds.tables.write_rois("FOV", [Roi("a", {"y": (0.0, 16.0), "x": (0.0, 32.0)})])
    oz = ngio.open_ome_zarr_container(url)
    oz.derive_label("half", ref_image=oz.get_image(path="1"), dtype="uint16")
    ds = await ngio_async.open_async(url, mode="r+")
    calls: list[int] = []

    def seg(a: np.ndarray) -> np.ndarray:
        calls.append(1)
        return (a > 0).astype("uint16")

    async with ds.labels.open("half") as lab:
        with pytest.raises(ValueError, match=r"labels/half/0.* \(2\.0, 2\.0\).* \(1\.0, 1\.0\)"):
            ngio_async.stream(ds.read_rois("FOV", c="DAPI"), seg, out=lab)
        assert not calls and not (await lab.read()).any()
        # what the message says works: each result written at the label's level of those pixels
        pairs = await ngio_async.stream(ds.read_rois("FOV", 1, c="DAPI"), seg)
        assert pairs is not None
        for r, result in pairs:
            await lab.write_roi(r.roi, result, 0)
        assert (await lab.read())[:8].all() and not (await lab.read())[8:].any()
