"""write / write_roi / write_world(..., merge=...) combine the patch with the stored pixels as
ngio 1.1.3's set_array / set_roi(..., merge=...) do ("max", "min", "sum", "keep_nonzero", a
function): the same image after the same writes (NGFF 0.4 and 0.5); concurrent merges of one
open image all land; a sum the data type cannot hold is refused, nothing written."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

RNG = np.random.default_rng(3)
DATA = (RNG.integers(0, 100, (2, 24, 32)) * (RNG.random((2, 24, 32)) > 0.3)).astype(np.uint16)


def _patch(shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    return (RNG.integers(0, 100, shape) * (RNG.random(shape) > 0.4)).astype(np.uint16)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_merges_give_the_image_ngio_gives(tmp_path: Path, version: str) -> None:
    import ngio

    container = ngio.create_ome_zarr_from_array(
        str(tmp_path / "theirs.zarr"),
        DATA,
        pixelsize=0.5,
        axes_names="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )
    shutil.copytree(tmp_path / "theirs.zarr", tmp_path / "mine.zarr")
    image = container.get_image()
    writes: list[tuple[Any, dict[str, Any], np.ndarray[Any, Any]]] = [
        ("max", {"c": 0, "y": slice(2, 14)}, _patch((12, 32))),
        ("min", {"c": 1, "x": slice(5, 30)}, _patch((24, 25))),
        ("sum", {"y": slice(10, 20), "x": slice(0, 8)}, _patch((2, 10, 8))),
        ("keep_nonzero", {"c": 0}, _patch((24, 32))),
    ]
    for rule, where, patch in writes:
        image.set_array(patch, merge=rule, **where)
    roi = container.build_image_roi_table().rois()[0].zoom(0.5)
    roi_patch = _patch((12, 16, 1))  # y, x, c of channel 1
    image.set_roi(roi, roi_patch, c=[1], axes_order=["y", "x", "c"], merge="keep_nonzero")
    theirs_mid = image.get_as_numpy()
    fpatch = _patch((2, 24, 32))
    image.set_array(fpatch, merge=lambda old, new, ctx: old // 2 + new)
    async with ngio_async.open_async(tmp_path / "mine.zarr", mode="r+") as ds:
        for rule, where, patch in writes:
            await ds.write(patch, merge=rule, **where)
        mine_roi = ds.image_roi().zoom(0.5)
        await ds.write_roi(
            mine_roi, roi_patch, c=[1], axes_order=["y", "x", "c"], merge="keep_nonzero"
        )
        before = await ds.read()
        np.testing.assert_array_equal(before, theirs_mid)
        await ds.write_world(
            np.zeros((2, 24, 32), np.uint16), origin="image", merge="max", y=(0.0, 12.0)
        )  # max with 0: nothing changes
        np.testing.assert_array_equal(await ds.read(), before)
        await ds.write(fpatch, merge=lambda old, new: old // 2 + new)
        np.testing.assert_array_equal(await ds.read(), image.get_as_numpy())


async def test_concurrent_merges_of_one_image_all_land(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(16, 16), dtype="uint16", axes="yx", chunks=(8, 8)
    ) as ds:

        async def add_one(i: int) -> None:
            await ds.write(np.full((6, 16), 1, np.uint16), merge="sum", y=slice(i % 3, i % 3 + 6))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(add_one, i)
        expected = np.zeros((16, 16), np.uint16)
        for i in range(12):
            expected[i % 3 : i % 3 + 6] += 1
        np.testing.assert_array_equal(await ds.read(), expected)
        with pytest.raises(ValueError, match="65535"):
            await ds.write(np.full((16, 16), 65535, np.uint16), merge="sum")
        np.testing.assert_array_equal(await ds.read(), expected)  # nothing written
        with pytest.raises(ValueError, match=r"merge='mean': a rule is one of \['keep_nonzero'"):
            await ds.write(np.ones((16, 16)), merge="mean")  # type: ignore[arg-type]
    with ngio_async.open(tmp_path / "img.zarr", mode="r+") as sync:  # the blocking twin
        sync.write(np.full((2, 2), 9, np.uint16), merge="max", y=slice(0, 2), x=slice(0, 2))
        assert sync.read(y=0, x=slice(0, 3)).tolist() == [9, 9, int(expected[0, 2])]
