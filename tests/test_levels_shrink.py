"""Levels past the one where an image stops shrinking are refused before anything is written:
each would repeat that shape with a doubled pixel size, a scale no pixel has."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.engine import check_levels_shrink

if TYPE_CHECKING:
    from pathlib import Path


def test_create_refuses_levels_that_would_not_shrink(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    with pytest.raises(ValueError, match=r"levels 12: a 10x10 image stops shrinking at level 4 "):
        ngio_async.create(path, shape=(10, 10), dtype="uint8", levels=12)
    assert not path.exists()
    with pytest.raises(ValueError, match=r"at most 2 levels"):  # 3 -> 1 -> 1 with downscale 3
        ngio_async.create(path, shape=(2, 3, 3), dtype="uint8", axes="cyx", levels=3, downscale=3)
    with ngio_async.create(path, shape=(10, 10), dtype="uint8", levels=5) as ds:
        assert [lvl.shape for lvl in ds.levels][-2:] == [(2, 2), (1, 1)]


def test_build_pyramid_refuses_levels_that_would_not_shrink(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    with ngio_async.create(path, shape=(12, 10), dtype="uint8", levels=2) as ds:
        ds.write(np.arange(120, dtype="uint8").reshape(12, 10))
        before = sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))
        with pytest.raises(ValueError, match=r"levels 9: a 12x10 image .* at most 5 levels"):
            ds.build_pyramid(levels=9)
        assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) == before
        ds.build_pyramid(levels=5)
        assert [lvl.shape for lvl in ds.levels] == [(12, 10), (6, 5), (3, 3), (2, 2), (1, 1)]


def test_stored_levels_of_one_shape_are_left_alone() -> None:
    check_levels_shrink([(4, 4), (4, 4), (2, 2)], start=2)  # the stored ones are another tool's
    check_levels_shrink([(0, 5), (0, 3), (0, 2), (0, 1), (0, 1)])  # an empty image
    with pytest.raises(ValueError, match=r"stops shrinking at level 0 \(4x4\): at most 1 level"):
        check_levels_shrink([(4, 4), (4, 4), (2, 2)])
