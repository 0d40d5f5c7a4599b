"""A field added to a plate ngff-zarr wrote (its fields' levels are ``scale0/image``,
``scale1/image``, each in a group) takes those level paths, as plate readers want, and now
the groups they lie in too: they were left out, so zarr-python found no ``scale0`` in the
field (zarr v3 has no implicit groups) and its consolidated copies left the levels out."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_field_added_to_an_ngff_zarr_plate_has_its_level_groups(
    tmp_path: Path, version: str
) -> None:
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(0).integers(0, 1000, (1, 32, 32), dtype=np.uint16)
    path = tmp_path / "plate.ome.zarr"
    meta = nz.Plate(
        columns=[nz.PlateColumn(name="1"), nz.PlateColumn(name="2")],
        rows=[nz.PlateRow(name="A")],
        wells=[nz.PlateWell(path="A/1", rowIndex=0, columnIndex=0)],
        version=version,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_hcs_zarr(nz.HCSPlate(str(path), meta), str(path))
        image = nz.to_ngff_image(data, dims=["c", "y", "x"])
        multiscales = nz.to_multiscales(image, scale_factors=[2], chunks=16)
        nz.write_hcs_well_image(str(path), multiscales, meta, "A", "1", 0, version=version)
    with ngio_async.open_plate(path, mode="r+") as plate:
        kw = {"shape": data.shape, "dtype": "uint16", "axes": "cyx"}
        with plate.add_image("A", "2", field="0", **kw) as fov:  # type: ignore[arg-type]
            assert fov.metadata.paths == ("scale0/image", "scale1/image")
            fov.write(data, pyramid=True)
            levels = [lvl[...] for lvl in fov.levels]
    field = zarr.open_group(path / "A" / "2" / "0", mode="r")
    assert sorted(name for name, _ in field.groups()) == ["scale0", "scale1"]
    zarr.consolidate_metadata(str(path))  # it finds the levels by walking the groups
    for i, want in enumerate(levels):
        array = zarr.open_consolidated(str(path), mode="r")[f"A/2/0/scale{i}/image"]
        assert isinstance(array, zarr.Array)
        np.testing.assert_array_equal(array[...], want)
