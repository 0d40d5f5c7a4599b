"""``read_rois(..., label=<name>)`` and ``read_roi(..., label=<name>)`` take a label image of
the image by name, as ``masked()`` does (they raised AttributeError: an open label image was
expected), async and blocking."""

from __future__ import annotations

import gc
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _image(root: Path) -> str:
    url = str(root / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(1, 16, 16), dtype="uint16", axes="cyx", scale=0.5, levels=1
    ) as ds:
        ds.write(np.arange(256, dtype="uint16").reshape(1, 16, 16))
        with ds.labels.create("nuclei", dtype="uint16") as lab:
            cells = np.zeros((16, 16), "uint16")
            cells[2:6, 2:6] = 1
            cells[8:12, 10:14] = 2
            lab.write(cells)
            ds.tables.write_rois("nuclei_ROI_table", lab.masking_rois(), label="nuclei")
    return url


async def test_read_rois_takes_a_label_name(tmp_path: Path) -> None:
    url = _image(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        async with ngio_async.open_async(url) as ds:
            got = [(r.roi.label, int(r.mask.sum()), r.data.shape) async for r in
                   ds.read_rois("nuclei_ROI_table", label="nuclei")]  # fmt: skip
            assert got == [(1, 16, (1, 4, 4)), (2, 16, (1, 4, 4))]
            async with ds.labels.open("nuclei") as lab:  # the same as an open label image
                same = [int(r.mask.sum()) async for r in
                        ds.read_rois("nuclei_ROI_table", label=lab)]  # fmt: skip
            assert same == [16, 16]
            (roi, _) = await ds.tables.rois("nuclei_ROI_table")
            one = await ds.read_roi(roi, label="nuclei")
            assert one.region == (slice(0, 1), slice(2, 6), slice(2, 6)) and one.mask.all()
            with pytest.raises(ngio_async.NotFoundError, match="cells"):
                async for _ in ds.read_rois("nuclei_ROI_table", label="cells"):
                    pass
        gc.collect()


def test_read_rois_takes_a_label_name_blocking(tmp_path: Path) -> None:
    url = _image(tmp_path)
    with ngio_async.open(url) as ds:
        got = [(r.roi.label, int(r.masked().max())) for r in
               ds.read_rois("nuclei_ROI_table", label="nuclei")]  # fmt: skip
        roi = ds.tables.rois("nuclei_ROI_table")[1]
        assert int(ds.read_roi(roi, label="nuclei").mask.sum()) == 16
    assert got == [(1, 5 * 16 + 5), (2, 11 * 16 + 13)]
