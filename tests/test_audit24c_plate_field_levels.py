"""``Plate.add_image`` takes the levels of a field copied from another image whole: its shapes
(``level_shapes``, e.g. ngio's 2.5x 45 -> 18 -> 7), translations and now scales
(``level_scales``): ``level_scales=`` was refused as an unexpected keyword, so the shapes
came with scales of ``scale * 2**i`` (level 1's 18 pixels covered 18 of level 0's 22.5 um)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_a_field_takes_the_exact_levels_of_the_image_it_copies(tmp_path: Path) -> None:
    shapes = [(45, 37), (18, 14), (7, 5)]
    scales = [[0.5, 0.5], [1.25, 0.5 * 37 / 14], [0.5 * 45 / 7, 0.5 * 37 / 5]]
    async with ngio_async.create_plate_async(tmp_path / "p.zarr", rows=["A"], columns=["1"]) as p:
        fov = await p.add_image(
            "A/1", shape=shapes[0], dtype="uint16", axes="yx", scale=0.5, levels=3,
            level_shapes=shapes, level_scales=scales,
        )  # fmt: skip
        async with fov:
            assert [lvl.shape for lvl in fov.levels] == shapes
            got = [list(c.scale) for c in fov.metadata.spatial_calibration]
            np.testing.assert_allclose(got, scales)
    async with await ngio_async.open_plate_async(tmp_path / "p.zarr") as p:
        fov = await p.image("A/1")
        async with fov:  # as read again
            got = [list(c.scale) for c in fov.metadata.spatial_calibration]
            np.testing.assert_allclose(got, scales)
