"""The blocking API's ``labels.set_colors`` (the async one's twin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_sync_set_colors_derives_from_written_values(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(url, shape=(64, 64), dtype="uint8", axes="yx") as ds:
        with ds.labels.create("cells", dtype="uint16") as cells:  # its own lease: closed
            data = np.zeros((64, 64), "uint16")
            data[:10, :10], data[30:40, 30:40] = 3, 7
            cells.write(data)
        colors = ds.labels.set_colors("cells")
        assert sorted(c.label_value for c in colors) == [0, 3, 7]
        explicit = ds.labels.set_colors("cells", {3: [255, 0, 0, 255]})
        assert [(c.label_value, c.rgba) for c in explicit] == [(3, [255, 0, 0, 255])]
    with ngio_async.open(url) as ds, ds.labels["cells"] as cells:
        image_label = cells.metadata.ome.image_label
        assert image_label is not None
        assert [(c.label_value, c.rgba) for c in image_label.colors or []] == [
            (3, [255, 0, 0, 255])
        ]
