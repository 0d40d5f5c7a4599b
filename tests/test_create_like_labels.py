"""``create_like(label_image, ...)`` keeps ``image-label`` (it was lost, so pyramids of the copy
averaged label ids: ``mean`` instead of ``mode``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _label_source(tmp_path: Path, version: str) -> str:
    url = str(tmp_path / "src.ome.zarr")
    with ngio_async.create(
        url, shape=(64, 64), dtype="uint8", axes="yx", levels=2, ngff_version=version
    ) as ds:
        ds.labels.create(
            "cells",
            dtype="uint16",
            colors={1: [255, 0, 0, 255], 9: [0, 0, 255, 255]},
            properties=[{"label-value": 1, "class": "nucleus"}, {"label-value": 9}],
        )
    return url


@pytest.mark.parametrize(("version", "target"), [("0.5", "0.5"), ("0.4", "0.4"), ("0.4", "0.5")])
def test_a_copy_of_a_label_image_is_a_label_image(
    tmp_path: Path, version: str, target: str
) -> None:
    dst = tmp_path / "copy.ome.zarr"
    with ngio_async.open(_label_source(tmp_path, version)) as ds:
        src = ds.labels["cells"]
        with ngio_async.create_like(src, str(dst), ngff_version=target) as copy:
            data = np.ones((64, 64), "uint16")
            data[::2, ::2] = 9  # each 2x2 window: one 9, three 1s (mean: 3, mode: 1)
            copy.write(data, pyramid=True)
            assert copy.levels[1][...].tolist() == np.ones((32, 32), "uint16").tolist()
            assert copy.metadata.multiscale.type == "mode"
    doc = json.loads((dst / (".zattrs" if target == "0.4" else "zarr.json")).read_text())
    label = doc["image-label"] if target == "0.4" else doc["attributes"]["ome"]["image-label"]
    assert label["colors"] == [
        {"label-value": 1, "rgba": [255, 0, 0, 255]},
        {"label-value": 9, "rgba": [0, 0, 255, 255]},
    ]
    assert label["properties"] == [{"label-value": 1, "class": "nucleus"}, {"label-value": 9}]
    # copy.ome.zarr stands alone: '../../' from there is tmp_path, no image; the link, which
    # would point at nothing (ome-zarr-py warns "no parent found"), is dropped (as convert does)
    assert "source" not in label
    assert label.get("version") == ("0.4" if target == "0.4" else None)
    with ngio_async.open(str(dst), mode="r+") as copy:
        copy.write(np.full((64, 64), 9, "uint16"))
        copy.build_pyramid()  # the default method of a label image
        assert set(np.unique(copy.levels[1][...]).tolist()) == {9}


def test_a_float_copy_is_an_image(tmp_path: Path) -> None:
    with ngio_async.open(_label_source(tmp_path, "0.5")) as ds:
        src = ds.labels["cells"]
        with ngio_async.create_like(src, str(tmp_path / "p.ome.zarr"), dtype="float32") as copy:
            assert copy.metadata.ome.image_label is None
            assert copy.metadata.multiscale.type == "mean"
