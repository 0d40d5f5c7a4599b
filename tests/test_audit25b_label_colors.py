"""A label image written by ome-zarr-py whose ``image-label`` colors carry keys NGFF does not
name: ``labels.set_colors`` keeps them on the colors it keeps (it dropped every unknown key of
a stored color entry, while those of the properties and the document stayed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_set_colors_keeps_the_unknown_keys_of_stored_colors(tmp_path: Path, version: str) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]
    from ome_zarr.writer import write_image, write_labels  # type: ignore[import-untyped]

    fmt = FormatV04() if version == "0.4" else FormatV05()
    path = tmp_path / "img.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    write_image(np.zeros((16, 16), np.uint8), group, axes="yx", fmt=fmt, scale_factors=[])
    labels = np.zeros((16, 16), np.uint16)
    labels[2:6, 2:6] = 3
    labels[8:12, 8:12] = 5
    write_labels(
        labels,
        group,
        name="cells",
        axes="yx",
        fmt=fmt,
        scaler=None,
        scale_factors=[],
        label_metadata={
            "colors": [{"label-value": 3, "rgba": [255, 0, 0, 255], "x-name": "nucleus"}],
            "properties": [{"label-value": 3, "class": "nucleus"}],
        },
    )
    with ngio_async.open(path, mode="r+") as ds:
        ds.labels.set_colors("cells")
    doc: Any = zarr.open_group(path / "labels" / "cells", mode="r").attrs.asdict()
    image_label = (doc if version == "0.4" else doc["ome"])["image-label"]
    colors = {c["label-value"]: c for c in image_label["colors"]}
    assert colors[3] == {"label-value": 3, "rgba": [255, 0, 0, 255], "x-name": "nucleus"}
    assert set(colors) == {0, 3, 5}
    assert image_label["properties"][0] == {"label-value": 3, "class": "nucleus"}
    # ome-zarr-py still reads it: value 3 keeps its color
    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Reader  # type: ignore[import-untyped]

    nodes = {n.metadata.get("name"): n for n in Reader(parse_url(str(path)))()}
    assert nodes["cells"].metadata["color"][3] == [1.0, 0.0, 0.0, 1.0]
