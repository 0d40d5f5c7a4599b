"""``stream(..., out=...)`` with a ``func`` that drops the tile's unit axes (audit of issue 4):
``lambda a: filter(a[0])`` on plane tiles is the natural way to call a 2-D filter. With a
halo, its (y, x) result of the halo'd tile's shape was handed to the writer as is and came
out as "IndexError: too many indices for array"; it is now read as the halo'd tile (unit
axes put back) and cropped to the core. A result of no usable shape is named."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.5", shape=(2, 40, 33), chunks=(1, 16, 16), levels=1)


def blur_plane(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A 2-D filter on the plane of a (1, y, x) tile: the mean of each pixel's 4 neighbours
    and itself, edges replicated (its result at the core needs the halo)."""
    p: np.ndarray[Any, Any] = np.pad(a[0].astype(np.float64), 1, mode="edge")
    out: np.ndarray[Any, Any] = (
        p[1:-1, 1:-1] + p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
    ) / 5
    return out


async def test_squeezed_results_of_halo_tiles_are_cropped_to_the_core(tmp_path: Path) -> None:
    data = write_image(tmp_path / "src", SPEC)[0]
    want = np.stack([blur_plane(plane[None]) for plane in data]).astype(np.float32)
    async with (
        ngio_async.open_async(tmp_path / "src") as src,
        ngio_async.create_async(
            str(tmp_path / "dst.zarr"),
            shape=src.shape,
            dtype="float32",
            axes="zyx",
            chunks=(1, 16, 16),
        ) as dst,
    ):
        async with dst.writer() as w:
            await ngio_async.stream(src.tiles(shape=(16, 16), overlap=1), blur_plane, out=w)
        np.testing.assert_allclose(await dst.read(), want, rtol=1e-6)
        # a result that neither is the tile, nor its core, nor broadcasts to the core: named
        with pytest.raises(ValueError, match=r"func returned shape \(5, 5\) for the tile at "):
            async with dst.writer() as w:
                await ngio_async.stream(
                    src.tiles(shape=(16, 16), overlap=1), lambda a: np.ones((5, 5)), out=w
                )
