"""stream(ds.read_rois(..., halo=...), f, out=...) where f returns each ROI's result without
the data's leading unit axes (f(a[0]) on a (1, y, x) ROI of a zyx image, as a 2-D model is
called): the result is cut to the ROI's own box as the full-shape one is (it was refused,
'data of shape (35, 35) does not fit the selection of shape (1, 32, 32)', where the same
stream without halo wrote it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async
from ngio_async.tables._model import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _label(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


async def test_halo_results_without_leading_unit_axes_are_cut(tmp_path: Path) -> None:
    img = np.zeros((1, 64, 64), np.uint16)
    img[0, 10:22, 12:20] = 100  # across the ROIs' seam at y 16 (pixels of 0.5)
    img[0, 40:44, 2:30] = 100
    rois = [
        Roi(
            f"r{i}",
            {
                "y": (16.0 * (i // 2), 16.0 * (i // 2 + 1)),
                "x": (16.0 * (i % 2), 16.0 * (i % 2 + 1)),
            },
        )
        for i in range(4)
    ]
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="zyx", scale=(1, 0.5, 0.5)
    ) as ds:
        await ds.write(img)
        got = {}
        for name, func in (("zyx", _label), ("yx", lambda a: _label(a[0]))):
            async with await ds.labels.create(name, dtype="uint32") as lab:
                await ngio_async.stream(ds.read_rois(rois, halo={"y": 3, "x": 3}), func, out=lab)
                got[name] = await lab.read()
    assert got["zyx"].shape == (1, 64, 64) and got["zyx"].any()
    np.testing.assert_array_equal(got["yx"], got["zyx"])
