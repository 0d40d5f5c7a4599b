"""A well opened on an NGFF 0.1 - 0.3 group that has no well metadata names the document it
read, the group's .zattrs (it named a zarr.json that such a group does not have)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_open_well_of_an_old_image_names_its_zattrs(tmp_path: Path) -> None:
    path = tmp_path / "old.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", shape=(8, 8), dtype="uint8", chunks=(8, 8))
    ms = {"version": "0.3", "datasets": [{"path": "0"}], "axes": ["y", "x"]}
    (path / ".zattrs").write_text(json.dumps({"multiscales": [ms]}))
    with pytest.raises(ngio_async.MetadataError, match=r"its \.zattrs has no 'well'"):
        ngio_async.open_well(path)
