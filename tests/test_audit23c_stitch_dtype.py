"""stream(tiles, f, out=<uint8 / uint16 label>, unique_labels=n, stitch=...) whose tiles' id
blocks pass what the label's dtype holds is refused at the call, nothing written, as ngio's
stitch plan refuses it (it failed part way, 'data values 0..261 do not fit a uint8 level',
after the first tiles were written, unjoined); blocks that fit run, uint8 to uint64."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _whole(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint8)


async def test_id_blocks_past_the_label_dtype_are_refused(tmp_path: Path) -> None:
    img = np.zeros((48, 48), np.uint16)
    img[5:40, 20:28] = 100  # across the seams at y 16 and 32
    img[2:6, 2:6] = 100
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx"
    ) as ds:
        await ds.write(img)
        for dtype, block, fits in (  # 9 tiles
            ("uint8", 30, False),  # ids up to 269
            ("uint8", 28, True),  # up to 251
            ("uint16", 8000, False),
            ("uint64", 10**12, True),
        ):
            async with await ds.labels.create(dtype + str(block), dtype=dtype) as lab:
                tiles = ds.tiles(shape=(16, 16), overlap=3)
                if not fits:
                    with pytest.raises(ValueError, match=f"past what {dtype} holds"):
                        ngio_async.stream(tiles, _whole, out=lab, unique_labels=block, stitch=True)
                    assert not (await lab.read()).any()
                    continue
                await ngio_async.stream(tiles, _whole, out=lab, unique_labels=block, stitch=True)
                got = await lab.read()
                assert len(np.unique(got)) == 3 and got.dtype == np.dtype(dtype)
                assert np.array_equal(got > 0, img > 0)
