"""Plates shared with peer tools: fields added here to plates written by ome-zarr-py and ngio
are read by those tools as they read their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.images._create_plan import plan_image
from ngio_async.images._plate import _level_paths

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_fields_added_to_an_ome_zarr_py_plate_use_its_level_paths(
    tmp_path: Path, version: str
) -> None:
    """ome-zarr-py names levels s0, s1 and reads every field with the first field's paths: a
    field added with levels 0, 1 was read as missing (zeros, and an error logged)."""
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Reader  # type: ignore[import-untyped]
    from test_plate import write_with_ome_zarr_py

    path = tmp_path / "omz.zarr"
    write_with_ome_zarr_py(path, version)  # A/1 (fields 0, 1), B/2; 1 x 32 x 32, 2 levels
    with ngio_async.open_plate(path, mode="r+") as plate:
        for well, field, value, levels in (("A/2", "0", 99, 2), ("A/1", "2", 77, 3)):
            with plate.add_image(
                well, field=field, shape=(1, 32, 32), dtype="uint8", axes="cyx", levels=levels
            ) as ds:
                ds.write(np.full((1, 32, 32), value, np.uint8), pyramid=True)
                assert ds.metadata.paths[:2] == ("s0", "s1")
        with plate.image("A/1", field="2") as ds:
            assert ds.metadata.paths == ("s0", "s1", "s2")  # the pattern continues
            assert int(ds.levels[2][0, 0, 0]) == 77
    nodes = list(Reader(parse_url(str(path)))())
    grid = np.asarray(nodes[0].data[0])  # field 0 of each well, tiled row by column
    assert grid.shape == (1, 64, 64)
    np.testing.assert_array_equal(grid[0, :32, 32:], 99)  # A/2
    np.testing.assert_array_equal(np.asarray(nodes[0].data[1])[0, :16, 16:], 99)  # level s1


def test_level_paths_follow_the_first_field() -> None:
    plan = plan_image(shape=(64, 64), dtype="uint8", levels=3)
    assert _level_paths(plan, ()) is plan
    assert _level_paths(plan, ("0", "1")) is plan
    renamed = _level_paths(plan, ("s0", "s1"))
    assert renamed.paths == ("s0", "s1", "s2")
    assert renamed.ome.multiscales is not None
    assert [d.path for d in renamed.ome.multiscales[0].datasets] == ["s0", "s1", "s2"]
    assert renamed.arrays == plan.arrays
    assert _level_paths(plan, ("full", "half")).paths == ("full", "half", "2")
    assert _level_paths(plan, ("2", "x")).paths == ("2", "x", "3")
