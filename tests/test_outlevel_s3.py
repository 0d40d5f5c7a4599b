"""On S3 (moto): the level 1 tiles of an image streamed into a label with ``pyramid=True``
land at the label's level 1 (of their pixel size); level 2 is built from it, level 0
upsampled from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_outlevel_tiles import DATA, segment, up

import ngio_async

if TYPE_CHECKING:
    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_level1_tiles_into_a_label_on_s3(s3_server: S3Server) -> None:
    url, options = s3_server.fresh_url() + "/a.zarr", s3_server.options()
    async with ngio_async.create_async(
        url, shape=DATA.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        channels=["DAPI"], scale={"y": 0.5, "x": 0.5}, **options,
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)
        lab = await ds.labels.create("seg", dtype="uint16")
        await ngio_async.stream(ds.tiles(1, c="DAPI"), segment, out=lab, pyramid=True)
        await lab.aclose()
    want = segment(DATA[0, ::2, ::2])
    async with ngio_async.open_async(url, **options) as ds, ds.labels.open("seg") as lab:
        np.testing.assert_array_equal(await lab.read(level=1), want)
        np.testing.assert_array_equal(await lab.read(level=2), want[::2, ::2])
        np.testing.assert_array_equal(await lab.read(level=0), up(want, 2))
