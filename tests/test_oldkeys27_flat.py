"""An NGFF 0.2 / 0.3 image whose ``.zarray`` names no ``dimension_separator`` is read with the
nested keys the spec describes, unless its first chunk is stored under zarr's default flat key
(a writer that kept "."): it was read as all fill values then, silently."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _write(path: Path, version: str, separator: str) -> np.ndarray:
    data = (np.arange(2 * 40 * 36) % 251).astype("uint16").reshape(2, 40, 36)
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    arr = group.create_array(
        "0",
        shape=data.shape,
        dtype=data.dtype,
        chunks=(1, 16, 16),
        chunk_key_encoding={"name": "v2", "separator": separator},
    )
    arr[...] = data
    doc = json.loads((path / "0" / ".zarray").read_text())
    doc.pop("dimension_separator", None)  # (as before zarr had one)
    (path / "0" / ".zarray").write_text(json.dumps(doc))
    ms = {"version": version, "datasets": [{"path": "0"}], "axes": ["c", "y", "x"]}
    (path / ".zattrs").write_text(json.dumps({"multiscales": [ms]}))
    return data


@pytest.mark.parametrize("separator", [".", "/"])
def test_old_image_keys_follow_the_stored_chunks(tmp_path: Path, separator: str) -> None:
    data = _write(tmp_path / "old.zarr", "0.3", separator)
    flat = (tmp_path / "old.zarr" / "0" / "0.0.0").is_file()
    assert flat == (separator == ".")
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        np.testing.assert_array_equal(ds.read(), data)  # (flat: was all zeros)


def test_an_unwritten_first_chunk_keeps_nested_keys(tmp_path: Path) -> None:
    data = _write(tmp_path / "old.zarr", "0.3", "/")
    (tmp_path / "old.zarr" / "0" / "0" / "0" / "0").unlink()  # (the fill value there)
    data[0, :16, :16] = 0
    with ngio_async.open(tmp_path / "old.zarr") as ds:
        np.testing.assert_array_equal(ds.read(), data)
