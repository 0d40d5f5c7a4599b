"""set_axes_names to a name a label image already uses for another axis (a z y x label of a
c y x image, renaming y to z) is refused naming the label, before any document is written (the
0.5 label's level kept dimension_names ['y', 'y', 'x'] after the refusal: its rename undone by
the inverse mapping, which folded z and y together)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _documents(root: Path) -> dict[str, bytes]:
    names = ("zarr.json", ".zattrs", ".zarray", ".zgroup")
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.name in names}


def _label_with_z(root: Path, version: str) -> None:
    """Label image 'l' of the c y x image at ``root``, given a leading z axis (as another
    tool may write it)."""
    v3 = version == "0.5"
    group = zarr.open_group(str(root / "labels" / "l"), mode="a", zarr_format=3 if v3 else 2)
    attrs: dict[str, Any] = dict(group.attrs)
    ms = (attrs["ome"] if v3 else attrs)["multiscales"][0]
    ms["axes"] = [{"name": "z", "type": "space"}, *ms["axes"]]
    for ds in ms["datasets"]:
        ds["coordinateTransformations"][0]["scale"].insert(0, 1.0)
    group.attrs.update(attrs)
    del group["0"]
    dims = ["z", "y", "x"] if v3 else None
    group.create_array("0", shape=(1, 8, 8), dtype="uint8", chunks=(1, 8, 8), dimension_names=dims)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_name_a_label_uses_is_refused_before_any_write(
    tmp_path: Path, version: str
) -> None:
    root = tmp_path / "img.zarr"
    async with ngio_async.create_async(
        root,
        shape=(1, 8, 8),
        dtype="uint8",
        axes="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await (await ds.labels.create("l", dtype="uint8")).aclose()
    _label_with_z(root, version)
    before = _documents(root)
    async with ngio_async.open_async(root, mode="r+") as ds:
        with pytest.raises(ValueError, match=r"label 'l'.*not unique"):
            await ds.set_axes_names({"y": "z"})
        assert ds.axes == ("c", "y", "x")
    assert _documents(root) == before
    async with ngio_async.open_async(root, mode="r+") as ds:  # what may be renamed still is
        await ds.set_axes_names({"y": "q"})
        async with ds.labels.open("l") as label:
            assert label.axes == ("z", "q", "x")
