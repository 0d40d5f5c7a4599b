"""``MaskedImage.write(..., merge=...)`` (and its blocking twin): the object's pixels combined
with the stored ones, as ngio's ``set_roi_masked(..., merge=)``; the rest of the box and of
the image left as stored. It took no ``merge=`` (``Dataset.write`` and ``write_roi`` did)."""

from __future__ import annotations

import inspect
import shutil
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async._sync_tiles import SyncMaskedImage
from ngio_async.images._rois import MaskedImage

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

rng = np.random.default_rng(7)
STORED = rng.integers(0, 200, (24, 24), dtype=np.uint16)
CELLS = np.zeros((24, 24), np.uint8)
CELLS[4:12, 4:8] = 3  # an L: its box (4:12, 4:12) holds pixels of no object
CELLS[8:12, 8:12] = 3
CELLS[14:20, 14:20] = 5


def _make(path: Path) -> None:
    with ngio_async.create(path, shape=(24, 24), axes="yx", dtype="uint16", chunks=(8, 8)) as ds:
        ds.write(STORED)
        label = ds.labels.create("cells", dtype="uint8")
        label.write(CELLS)


def _expected(patch: np.ndarray, rule: str) -> np.ndarray:
    out = STORED.copy()
    box = (slice(4, 12), slice(4, 12))
    inside = CELLS[box] == 3
    mine = out[box]
    if rule == "max":
        mine[inside] = np.maximum(mine, patch)[inside]
    else:
        mine[inside] = (mine.astype(np.int64) + patch)[inside]
    return out


@pytest.mark.parametrize("rule", ["max", "sum"])
async def test_masked_merge_touches_the_object_alone(tmp_path: Path, rule: str) -> None:
    _make(tmp_path / "img.zarr")
    patch = rng.integers(0, 200, (8, 8), dtype=np.uint16)
    async with (
        ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds,
        ds.masked("cells") as m,
    ):
        await m.write(3, patch, merge=rule)  # type: ignore[arg-type]
        got = await ds.read()
    assert np.array_equal(got, _expected(patch, rule))


async def test_masked_merge_is_ngios(tmp_path: Path) -> None:
    import ngio

    _make(tmp_path / "img.zarr")
    shutil.copytree(tmp_path / "img.zarr", tmp_path / "theirs.zarr")
    patch = rng.integers(0, 200, (8, 8), dtype=np.uint16)
    container = ngio.open_ome_zarr_container(str(tmp_path / "theirs.zarr"))
    theirs = container.get_masked_image("cells")
    theirs.set_roi_masked(label=3, patch=patch, merge="max")
    with ngio_async.open(tmp_path / "img.zarr", mode="r+") as ds, ds.masked("cells") as m:
        m.write(3, patch, merge="max")  # the blocking twin
        ours = ds.read()
    with ngio_async.open(tmp_path / "theirs.zarr") as ds:
        assert np.array_equal(ours, ds.read())
    assert np.array_equal(ours, _expected(patch, "max"))


async def test_a_masked_merge_refusal_comes_before_any_write(tmp_path: Path) -> None:
    _make(tmp_path / "img.zarr")
    async with (
        ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds,
        ds.masked("cells") as m,
    ):
        with pytest.raises(ValueError, match="merge='avg'"):
            await m.write(3, 1, merge="avg")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="do not fit a uint16 level"):
            await m.write(3, 65535, merge="sum")  # stored + 65535 overflows uint16
        assert np.array_equal(await ds.read(), STORED)


def test_the_twins_take_merge() -> None:
    ours = inspect.signature(MaskedImage.write).parameters["merge"]
    twin = inspect.signature(SyncMaskedImage.write).parameters["merge"]
    assert ours.kind == twin.kind == inspect.Parameter.KEYWORD_ONLY
    assert ours.default is twin.default is None
