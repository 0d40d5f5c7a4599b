"""A zarr v3 level's own ``attributes`` (user metadata in its ``zarr.json``) survive a 0.5 ->
0.5 conversion (rechunk, recompress): they were dropped, the output's arrays had ``{}``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_level_attributes_are_kept(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    data = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    with ngio_async.create(src, shape=data.shape, dtype="uint16", axes="yx", levels=2) as ds:
        ds.write(data, pyramid=True)
    meta = src / "1" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"] = {"acquired": "2026-01-01", "gain": 2}
    meta.write_text(json.dumps(doc))
    dst = tmp_path / "out.zarr"
    ngio_async.convert_sync(src, dst, chunks=(16, 16), compressor="gzip")
    assert json.loads((dst / "1" / "zarr.json").read_text())["attributes"] == {
        "acquired": "2026-01-01",
        "gain": 2,
    }
    assert json.loads((dst / "0" / "zarr.json").read_text())["attributes"] == {}
    with ngio_async.open(dst) as out:
        assert np.array_equal(out[...], data)
    copy = tmp_path / "copy.zarr"  # the source's layout and codecs kept
    ngio_async.convert_sync(src, copy)
    assert json.loads((copy / "1" / "zarr.json").read_text())["attributes"]["gain"] == 2
