"""Names of the levels build_pyramid(levels=N) and Plate.add_image give: a level path
lying in a group named like a number (``1/image``, ``2/image``: a 1-based pyramid, each
level in its group) had no ``0`` to go on from, so the new level took the free name ``2``:
the group holding level ``2/image``. Its array document replaced that group's, breaking
the image for zarr (an array holding an array). A new name is none of the groups the
existing level paths lie in."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async.images._create_plan import level_names

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("existing", "added"),
    [
        (["0", "1", "2"], ["3", "4"]),  # the common case, as always
        (["s0", "s1"], ["s2", "s3"]),
        (["scale0/image", "scale1/image"], ["scale2/image", "scale3/image"]),
        (["level_0"], ["level_1", "level_2"]),
        (["full", "half"], ["2", "3"]),
        (["1", "2", "4"], ["3", "5"]),
        (["1/image", "2/image"], ["3", "4"]),  # "2" is the group holding level 2/image
        (["a/b", "1/x/y"], ["2", "3"]),
    ],
)
def test_new_level_names_are_free(existing: list[str], added: list[str]) -> None:
    names = level_names(existing, len(existing) + 2)
    assert names == existing + added
    groups = {"/".join(p.split("/")[:i]) for p in existing for i in range(1, p.count("/") + 1)}
    assert not set(added) & (set(existing) | groups)


def test_a_level_added_to_a_pyramid_in_numbered_groups_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    with ngio_async.create(path, shape=data.shape, dtype="uint16", axes="yx", levels=2) as ds:
        ds.write(data, pyramid=True)
        level1 = ds.levels[1][...]
    doc = json.loads((path / "zarr.json").read_text())
    datasets = doc["attributes"]["ome"]["multiscales"][0]["datasets"]
    for i, entry in reversed(list(enumerate(datasets))):
        (path / f"{i + 1}").mkdir()
        os.rename(path / str(i), path / f"{i + 1}" / "image")  # 0 -> 1/image, 1 -> 2/image
        node = {"zarr_format": 3, "node_type": "group", "attributes": {"level": i + 1}}
        (path / f"{i + 1}" / "zarr.json").write_text(json.dumps(node))
        entry["path"] = f"{i + 1}/image"
    doc.pop("consolidated_metadata", None)
    (path / "zarr.json").write_text(json.dumps(doc))
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=3)
        added = ds.metadata.paths[2]
        want = ds.levels[2][...]
    group = zarr.open_group(path, mode="r")
    kept, level, new = group["2"], group["2/image"], group[added]
    assert isinstance(kept, zarr.Group) and dict(kept.attrs) == {"level": 2}  # untouched
    assert isinstance(level, zarr.Array) and isinstance(new, zarr.Array)
    np.testing.assert_array_equal(level[...], level1)
    np.testing.assert_array_equal(new[...], want)
