"""A label image overlaid on a coarse level of its image when it has fewer levels (one, at
full resolution, as segmentations often are): the tile reads only the label pixels it shows.
Real files; the app on a loopback AppRunner."""

from __future__ import annotations

import json
import tracemalloc
from typing import TYPE_CHECKING

import numpy as np
from webapp import png_rgb, running

import ngio_async
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path

SIDE = 2048


async def test_a_full_resolution_label_on_a_coarse_level_reads_what_it_shows(
    tmp_path: Path,
) -> None:
    """The overlay read the label's whole region under the tile at full resolution: a
    128 x 128 tile of level 4 read 2048 x 2048 label pixels (16 MiB of uint32, 256 times
    what it shows, and more for a larger label); it now reads the pixels it shows, chunk by
    chunk."""
    url = tmp_path / "img.zarr"
    with ngio_async.create(str(url), shape=(SIDE, SIDE), dtype="uint8", axes="yx", levels=5):
        pass
    label = url / "labels" / "cells"
    with ngio_async.create(str(label), shape=(SIDE, SIDE), dtype="uint32", axes="yx",
                           chunks=(128, 128), levels=1) as cells:  # fmt: skip
        y, x = np.indices((SIDE, SIDE))
        cells.write(((y // 16 + x // 16) % 2 == 0).astype("uint32"))  # 16-pixel checks
    (url / "labels" / "zarr.json").write_text(
        json.dumps(
            {
                "zarr_format": 3,
                "node_type": "group",
                "attributes": {"ome": {"version": "0.5", "labels": ["cells"]}},
            }
        )
    )
    app = create_app({"img": str(url)}, tile_size=128)
    async with running(app, handler_cancellation=False) as (http, _):
        target = "/api/datasets/img/tiles/4/0/0/0/0.png?window=0:1&labels=cells&label_opacity=1"
        await (await http.get(target)).read()  # the label image opened
        tracemalloc.start()
        try:
            resp = await http.get(target)
            body = await resp.read()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert resp.status == 200, body
    painted = (png_rgb(body) != 0).any(axis=2)
    i, j = np.indices((128, 128))  # each tile pixel shows label pixel (16 i + 8, 16 j + 8)
    assert painted.tolist() == ((i + j) % 2 == 0).tolist()
    # was over 16 MiB (the label's whole region under the tile); now the tile's pixels and
    # the chunks being read at once (~4 MiB here)
    assert peak < 8 << 20, peak
