"""``convert`` of an image ngff-zarr wrote keeps its level paths (``scale0/image``, ...) and now
writes the groups they lie in: the copy had none, so zarr-python listed no member of it (zarr
has no implicit groups) and ``consolidate_metadata`` left every level out."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4")])
def test_a_converted_ngff_zarr_image_has_its_level_groups(
    tmp_path: Path, source: str, target: str
) -> None:
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(0).integers(0, 1000, (40, 48), dtype=np.uint16)
    src = tmp_path / "nz.ome.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        image = nz.to_ngff_image(data, dims=["y", "x"], scale={"y": 0.5, "x": 0.5})
        multiscales = nz.to_multiscales(image, scale_factors=[2], chunks=16)
        nz.to_ngff_zarr(str(src), multiscales, version=source)
    dst = tmp_path / "converted.ome.zarr"
    anyio.run(lambda: ngio_async.convert(str(src), str(dst), ngff_version=target))  # type: ignore[arg-type]
    with ngio_async.open(dst) as ds:
        assert ds.metadata.paths == ("scale0/image", "scale1/image")
        levels = [lvl[...] for lvl in ds.levels]
    group = zarr.open_group(dst, mode="r", use_consolidated=False)
    members = dict(group.members(max_depth=None))
    assert sorted(members) == ["scale0", "scale0/image", "scale1", "scale1/image"]
    for i, want in enumerate(levels):
        array = members[f"scale{i}/image"]
        assert isinstance(array, zarr.Array)
        np.testing.assert_array_equal(array[...], want)
    np.testing.assert_array_equal(levels[0], data)
