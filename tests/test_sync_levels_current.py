"""``SyncDataset.levels`` follows the dataset: a pyramid built through another handle (or the
async dataset itself) shows there, and unchanged levels keep their objects (napari's layers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_levels_follow_a_build_through_the_async_dataset(tmp_path: Path) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(64, 64), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.arange(64 * 64, dtype="uint8").reshape(64, 64))
    with ngio_async.open(url, mode="r+") as ds:
        first = ds.levels[0]
        assert ds.levels is ds.levels  # unchanged: the same list
        ds._runner.call(lambda: ds.async_dataset.build_pyramid(levels=3))  # another handle's way
        assert len(ds.levels) == 3 and ds.levels[0] is first
        assert ds.level(2).shape == (16, 16)  # was IndexError: the list did not grow
        assert np.asarray(ds.levels[2]).shape == (16, 16)
        ds.build_pyramid(levels=3)  # through this handle too
        assert [lvl.shape for lvl in ds.levels] == [(64, 64), (32, 32), (16, 16)]
