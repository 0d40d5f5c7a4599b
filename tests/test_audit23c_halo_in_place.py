"""stream(ds.read_rois(..., halo=...), f, out=<another open of the same image>) is refused at
the call as out=<the image read> is (0a1f931), nothing written: the grown reads cover pixels
the neighbour ROIs write whichever handle writes them (it was accepted, and wrote in place)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables._model import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _plus(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return (a + 1).astype(a.dtype)


async def test_halo_rois_into_another_open_of_the_image_are_refused(tmp_path: Path) -> None:
    img = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) % 200
    url = tmp_path / "img.zarr"
    rois = [
        Roi("a", {"y": (0.0, 8.0), "x": (0.0, 16.0)}),
        Roi("b", {"y": (8.0, 16.0), "x": (0.0, 16.0)}),
    ]
    async with ngio_async.create_async(
        url, shape=img.shape, dtype="uint16", axes="yx", scale=0.5
    ) as ds:
        await ds.write(img)
        async with await ngio_async.open_async(url, mode="r+") as again:
            with pytest.raises(ValueError, match="the image read"):
                ngio_async.stream(ds.read_rois(rois, halo={"y": 2}), _plus, out=again)
            await ngio_async.stream(ds.read_rois(rois), _plus, out=again)  # no halo: runs
        np.testing.assert_array_equal(await ds.read(), img + 1)
