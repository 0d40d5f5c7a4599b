"""stream(..., stitch=<numpy's float32 threshold>) stitches as the same float does (a
threshold computed with numpy, np.float32(0.4), was refused: 'stitch takes True or an IoU
threshold'); numpy's bools and NaN are still refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _whole(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


async def test_numpy_thresholds(tmp_path: Path) -> None:
    img = np.zeros((48, 48), np.uint16)
    img[10:38, 20:28] = 100  # across the seam at y 24
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx"
    ) as ds:
        await ds.write(img)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            tiles = ds.tiles(shape=(24, 48), overlap=4)
            await ngio_async.stream(
                tiles, _whole, out=lab, unique_labels=100, stitch=cast("float", np.float32(0.4))
            )
            got = await lab.read()
            assert np.unique(got).tolist() == [0, 1] and (got > 0).sum() == 28 * 8
            for bad, error in ((np.True_, TypeError), (np.float32("nan"), ValueError)):
                with pytest.raises(error, match="threshold"):
                    ngio_async.stream(
                        tiles, _whole, out=lab, unique_labels=100, stitch=cast("float", bad)
                    )
