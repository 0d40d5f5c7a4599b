"""A plate field created with channels gets display windows from its data, as an image does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_a_fields_windows_follow_its_data(tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(200, 3000, (1, 64, 64), dtype=np.uint16)
    url = str(tmp_path / "plate.ome.zarr")
    async with (
        ngio_async.create_plate_async(url, rows=["A"], columns=["1"]) as plate,
        await plate.add_image(
            "A", "1", field="0", shape=data.shape, dtype="uint16", axes="cyx",
            channels=["DAPI"], levels=2,
        ) as fov,
    ):  # fmt: skip
        await fov.write(data, pyramid=True)
        lowest = await fov.levels[-1][...]
    async with ngio_async.open_plate_async(url) as plate, await plate.image("A", "1") as fov:
        omero = fov.metadata.ome.omero
        assert omero is not None
        window = omero.channels[0].window
        assert (window.start, window.end) == (float(lowest.min()), float(lowest.max()))
        assert (window.min, window.max) == (0, 65535)
