"""set_scale keeps a pyramid's levels aligned: their offsets from level 0 scale too."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_half_pixel_offsets_follow_the_new_pixel_size(tmp_path: Path, version: str) -> None:
    """ngff-zarr and ome-zarr-py centre each level's pixels: level 1 (scale 2) sits half a
    level-0 pixel in (translation 0.5). Halving the pixel size must halve that offset too; it
    stayed 0.5 (a quarter of the new level-1 pixel off)."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(
        path, shape=(32, 32), dtype="uint8", levels=2, ngff_version=version,
    ) as ds:  # fmt: skip
        ds.write(np.ones((32, 32), "uint8"), pyramid=True)
    doc_name = ".zattrs" if version == "0.4" else "zarr.json"
    doc = json.loads((path / doc_name).read_text())
    body = doc if version == "0.4" else doc["attributes"]["ome"]
    for d, t in zip(body["multiscales"][0]["datasets"], ([10.0, 20.0], [10.5, 20.5]), strict=True):
        d["coordinateTransformations"] = [
            d["coordinateTransformations"][0],
            {"type": "translation", "translation": t},
        ]
    (path / doc_name).write_text(json.dumps(doc))
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_scale(0.5)
        cal = ds.metadata.spatial_calibration
        assert cal[0].scale == (0.5, 0.5) and cal[1].scale == (1.0, 1.0)
        assert cal[0].translation == (10.0, 20.0)  # the image's origin stays
        assert cal[1].translation == (10.25, 20.25)
        ds.set_scale(2.0, translation=[0.0, 0.0])  # a translation given is every level's
        assert ds.metadata.spatial_calibration[1].translation == (0.0, 0.0)
