"""``method="ngio"`` / ``pyramid="ngio"`` over a level whose chunks ngio's zoom cannot build
(chunks of 1 pixel: ngio's blocks give no pixel) is refused naming the level by its path, the
axis by its name and the store (it said 'level 1, axis 1'), before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_ngio_zoom_refusal_names_level_axis_and_store(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 12, 12), dtype="uint16", axes="cyx", chunks=(1, 1, 1), shards=False,
        levels=2, scale=0.5,
    ) as img:  # fmt: skip
        # ("ngio" is ngio's label pyramid: a label image)
        ds = await img.labels.create("n", dtype="uint16")  # (the image's chunks: 1 pixel)
        want = r"level 'labels/n/1' of file://.*a\.zarr, axis 'y': ngio's nearest zoom of 12 pixels"
        with pytest.raises(ValueError, match=want):
            await ds.build_pyramid(method="ngio")
        with pytest.raises(ValueError, match=want):
            await ds.write(np.ones((12, 12), np.uint16), pyramid="ngio")
        assert not (await ds.read()).any()  # refused before the write
        assert ds.metadata.ome.multiscales is not None
        assert ds.metadata.ome.multiscales[0].type != "ngio"
        await ds.aclose()
