"""Levels added by build_pyramid continue the image's level path pattern."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.images._create_plan import level_names

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("existing", "count", "want"),
    [
        (["s0", "s1"], 4, ["s0", "s1", "s2", "s3"]),
        (["0", "1", "2"], 4, ["0", "1", "2", "3"]),
        (["level_0"], 3, ["level_0", "level_1", "level_2"]),
        (["scale0/image", "2"], 4, ["scale0/image", "2", "3", "4"]),  # no pattern: free names
        (["s0", "s1", "s2"], 2, ["s0", "s1"]),
    ],
)
def test_level_names_continue_the_pattern(existing: list[str], count: int, want: list[str]) -> None:
    assert level_names(existing, count) == want


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_build_pyramid_continues_s_paths(tmp_path: Path, version: str) -> None:
    """ome-zarr-py and ngio write s0, s1, ...: a level added after s1 was named "2"."""
    import json

    import zarr

    path = tmp_path / "img.zarr"
    with ngio_async.create(
        path, shape=(64, 64), dtype="uint8", levels=2, ngff_version=version,
    ) as ds:  # fmt: skip
        ds.write(np.arange(64 * 64, dtype="uint8").reshape(64, 64), pyramid=True)
    # rename the levels s0, s1 as ome-zarr-py names them (documents and arrays)
    v2 = version == "0.4"
    doc_name = ".zattrs" if v2 else "zarr.json"
    doc = json.loads((path / doc_name).read_text())
    body = doc if v2 else doc["attributes"]["ome"]
    for d in body["multiscales"][0]["datasets"]:
        (path / d["path"]).rename(path / f"s{d['path']}")
        d["path"] = f"s{d['path']}"
    (path / doc_name).write_text(json.dumps(doc))
    with ngio_async.open(path, mode="r+") as ds:
        ds.build_pyramid(levels=4)
        assert ds.metadata.paths == ("s0", "s1", "s2", "s3")
    group = zarr.open_group(str(path), mode="r")
    assert sorted(group.array_keys()) == ["s0", "s1", "s2", "s3"]
