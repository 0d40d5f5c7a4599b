"""Opening odd but real layouts: levels in nested paths, several multiscales, 0.4 metadata over
zarr v3 arrays (zarr-python 3's default format)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_a_04_image_over_zarr_v3_arrays_says_so(tmp_path: Path) -> None:
    """0.4 metadata with a level written as a zarr v3 array: the error names the array that
    is there and the format needed (it said only "0/.zarray does not exist")."""
    group = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=2)
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [{"type": "scale", "scale": [1.0, 1.0]}]
    multiscales: list[dict[str, Any]] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": scale}],
        }
    ]
    group.attrs["multiscales"] = multiscales
    zarr.create_array(str(tmp_path / "img.zarr" / "0"), shape=(8, 8), dtype="u1", zarr_format=3)
    with pytest.raises(ngio_async.NotFoundError) as info:
        ngio_async.open(str(tmp_path / "img.zarr"))
    assert str(info.value).endswith(
        "0/.zarray does not exist (0/zarr.json does: a zarr v3 array, and NGFF 0.4 needs "
        "zarr v2 arrays)"
    )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_nested_level_paths_and_the_first_of_several_multiscales(
    tmp_path: Path, version: str
) -> None:
    """Levels at ``scale/0``, ``scale/1`` (ngff-zarr writes ``scale0/image``) open and read;
    of several multiscales the first one is the image's."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(
        str(path), shape=(16, 16), dtype="uint8", axes="yx", ngff_version=version, levels=2
    ) as ds:
        ds.write(np.arange(256, dtype="uint8").reshape(16, 16), pyramid=True)
    (path / "scale").mkdir()
    for level in ("0", "1"):
        (path / level).rename(path / "scale" / level)
    if version == "0.5":
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {}}
        (path / "scale" / "zarr.json").write_text(json.dumps(doc))
    else:
        (path / "scale" / ".zgroup").write_text('{"zarr_format": 2}')
    name = "zarr.json" if version == "0.5" else ".zattrs"
    doc = json.loads((path / name).read_text())
    body = doc["attributes"]["ome"] if version == "0.5" else doc
    first = body["multiscales"][0]
    for d in first["datasets"]:
        d["path"] = "scale/" + d["path"]
    other = {**json.loads(json.dumps(first)), "name": "other"}
    other["datasets"] = other["datasets"][1:]
    body["multiscales"].append(other)
    (path / name).write_text(json.dumps(doc))
    with ngio_async.open(str(path)) as ds:
        assert [lvl.path for lvl in ds.levels] == ["scale/0", "scale/1"]
        assert int(ds[15, 15]) == 255 and ds.levels[1].shape == (8, 8)
