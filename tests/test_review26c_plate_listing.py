"""A plate's consolidated metadata gone stale (review of 5081f3b): a field added to a well by a
tool that does not consolidate again (ngio 1.1.3's add_image leaves a 0.4 plate's
``.zmetadata`` as it was; zarr-python's attribute writes leave a 0.5 plate's copy) was left
out of ``image_paths()`` of a plate open read-only, which took the wells from the copy; ngio
lists it. The wells' own documents are read unless ``consolidated=True`` asks for the copy."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::UserWarning"),  # (zarr's on consolidated metadata)
]

ALL = [("A/01", "0"), ("A/01", "1"), ("A/02", "0")]


def _plate(path: Path, version: str) -> None:
    """An ngio plate of wells A/01 and A/02 (field 0), consolidated, then a field 1 added to
    A/01 without consolidating again."""
    ngio = pytest.importorskip("ngio")
    images = [ngio.ImageInWellPath(row="A", column=c, path="0") for c in (1, 2)]
    ngio.create_empty_plate(str(path), "p", images=images, ngff_version=version)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))
    if version == "0.4":
        ngio.open_ome_zarr_plate(str(path), mode="r+").add_image(row="A", column=1, image_path="1")
        return
    well = zarr.open_group(str(path / "A/01"), mode="r+", use_consolidated=False)
    ome = dict(well.attrs["ome"])  # type: ignore[arg-type]
    ome["well"] = {"images": [{"path": "0"}, {"path": "1"}]}
    well.attrs["ome"] = ome
    zarr.open_group(str(path / "A/01/1"), mode="w")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_field_added_without_consolidating_is_listed(tmp_path: Path, version: str) -> None:
    path = tmp_path / "plate.zarr"
    _plate(path, version)
    async with await ngio_async.open_plate_async(path) as plate:
        assert await plate.image_paths() == ALL
    async with await ngio_async.open_plate_async(path) as plate:  # asked for: the copy
        assert await plate.image_paths(consolidated=True) == [("A/01", "0"), ("A/02", "0")]
    with ngio_async.open_plate(path) as blocking:
        assert blocking.image_paths() == ALL
        assert blocking.image_paths(consolidated=True) == ALL  # (the wells read are kept)
