"""Levels added to an image ngff-zarr wrote (levels ``scale0/image``, ``scale1/image``, a
group around each, consolidated metadata) continue its naming, ``scale2/image``, inside a
group of their own, and zarr-python's consolidated view and ngff-zarr's reader find them;
they were named ``2``, one pattern per pyramid broken."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_levels_added_to_an_ngff_zarr_image_follow_its_paths(tmp_path: Path, version: str) -> None:
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(0).integers(0, 1000, (2, 64, 64), dtype=np.uint16)
    image = nz.to_ngff_image(data, dims=["c", "y", "x"], scale={"y": 0.5, "x": 0.5})
    path = tmp_path / "nz.ome.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(
            str(path), nz.to_multiscales(image, scale_factors=[2], chunks=16), version=version
        )
    with ngio_async.open(path, mode="r+") as ds:
        before = ds.metadata.paths
        cells = ds.labels.create("cells")
        cells.write((data[0] > 500).astype(np.uint32), pyramid=True)
        ds.build_pyramid(levels=3)  # the label image follows
        assert (before, ds.metadata.paths[2]) == (("scale0/image", "scale1/image"), "scale2/image")
        levels = [lvl[...] for lvl in ds.levels]
        with ds.labels.open("cells") as lab:
            assert lab.metadata.paths == ds.metadata.paths
            label_levels = [lvl[...] for lvl in lab.levels]
    group = zarr.open_group(path, mode="r")  # the consolidated metadata lists them
    for key, want in [("scale2/image", levels[2]), ("labels/cells/scale2/image", label_levels[2])]:
        array = group[key]
        assert isinstance(array, zarr.Array), key
        np.testing.assert_array_equal(array[...], want)
    read = nz.from_ngff_zarr(str(path))
    assert len(read.images) == 3
    for theirs, mine in zip(read.images, levels, strict=True):
        np.testing.assert_array_equal(np.asarray(theirs.data), mine)


@pytest.mark.parametrize(
    ("existing", "added"),
    [
        (["scale0/image"], ["scale1/image", "scale2/image"]),  # ngff-zarr's, one level
        (["s0", "s1"], ["s2", "s3"]),  # ome-zarr-py's
        (["s00", "s01"], ["s02", "s03"]),  # zero-padded, confirmed by the second level
        (["10"], ["1", "2"]),  # a single level named otherwise: no number to go on from
        (["2020"], ["1", "2"]),
        (["10x"], ["1", "2"]),
    ],
)
def test_added_level_names(existing: list[str], added: list[str]) -> None:
    from ngio_async.images._create_plan import level_names

    assert level_names(existing, len(existing) + 2) == existing + added
