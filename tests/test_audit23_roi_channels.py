"""``stream(ds.read_rois(..., c="A"), func, out=<another image with channels>)`` writes each
result to that channel of ``out`` alone, as the tiles of ``c="A"`` are: the result was
broadcast over every channel of ``out`` (another open of the same image: channel B
overwritten). A channel ``out`` lacks is refused at the call, nothing read or written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
DATA = np.stack([np.full((32, 32), 1, np.uint16), np.full((32, 32), 2, np.uint16)])
SEG = np.zeros((32, 32), np.uint16)
SEG[2:12, 3:14] = 1
SEG[2:20, 3:6] = 1  # an L: its box holds pixels of no object


def fifty(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.full(a.shape, 50, np.uint16)


async def _image(path: Path, channels: list[str]) -> None:
    async with ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=1,
        scale=0.5, channels=channels,
    ) as ds:  # fmt: skip
        await ds.write(DATA)
        await ds.tables.write_rois("FOV", [Roi("f", {"y": (0.0, 8.0), "x": (0.0, 8.0)})])
        seg = await ds.labels.create("seg", dtype="uint16")
        await seg.write(SEG)
        await ds.tables.write_rois("seg_ROI_table", await seg.masking_rois(), label="seg")
        await seg.aclose()


async def test_rois_of_one_channel_into_another_open(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    await _image(url, ["A", "B"])
    async with ngio_async.open_async(url) as src, ngio_async.open_async(url, mode="r+") as dst:
        await ngio_async.stream(src.read_rois("FOV", c="A"), fifty, out=dst)
        got = await dst.read()
        assert (got[0, :16, :16] == 50).all() and (got[0] == 50).sum() == 256
        np.testing.assert_array_equal(got[1], DATA[1])  # (it was 50 in the ROI too)
        # masked: channel B inside the object alone
        await ngio_async.stream(
            src.read_rois("seg_ROI_table", c="B", label="seg"), fifty, out=dst, masked=True
        )
        got = await dst.read()
        np.testing.assert_array_equal(got[1], np.where(SEG > 0, 50, 2))
        assert (got[0] == 50).sum() == 256


async def test_a_channel_out_lacks_is_refused(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr", ["A", "B"])
    await _image(tmp_path / "o.zarr", ["X", "Y"])
    calls: list[int] = []

    def func(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(1)
        return fifty(a)

    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as src,
        ngio_async.open_async(tmp_path / "o.zarr", mode="r+") as out,
    ):
        with pytest.raises(
            ValueError, match=r"read at \{'c': 'A'\}.*o\.zarr.*no channel labelled 'A'.*nothing was"
        ):
            ngio_async.stream(src.read_rois("FOV", c="A"), func, out=out)
        assert not calls
        np.testing.assert_array_equal(await out.read(), DATA)
        # by index: channel 1 of out, alone
        await ngio_async.stream(src.read_rois("FOV", c=1), func, out=out)
        got = await out.read()
        np.testing.assert_array_equal(got[0], DATA[0])
        assert (got[1] == 50).sum() == 256
