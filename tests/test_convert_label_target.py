"""convert onto a label image its parent lists: a label image may replace it, an image not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _image_with_label(path: Path, value: int) -> None:
    with ngio_async.create(path, shape=(32, 32), dtype="uint8", levels=1) as ds:
        ds.write(np.ones((32, 32), "uint8"))
        with ds.labels.create("cells", dtype="uint16") as label:
            label.write(np.full((32, 32), value, "uint16"))


def test_a_label_image_converts_onto_a_listed_label(tmp_path: Path) -> None:
    """It was refused as "a label image the labels group lists" (create's rule for images)."""
    _image_with_label(tmp_path / "src.zarr", 7)
    _image_with_label(tmp_path / "dst.zarr", 1)
    ngio_async.convert_sync(
        tmp_path / "src.zarr" / "labels" / "cells",
        tmp_path / "dst.zarr" / "labels" / "cells",
        overwrite=True,
    )
    with ngio_async.open(tmp_path / "dst.zarr") as ds, ds.labels.open("cells") as label:
        np.testing.assert_array_equal(label[...], 7)
    with pytest.raises(ngio_async.ExistsError):  # an image there: still refused
        ngio_async.convert_sync(
            tmp_path / "src.zarr", tmp_path / "dst.zarr" / "labels" / "cells", overwrite=True
        )
    with ngio_async.open(tmp_path / "dst.zarr") as ds, ds.labels.open("cells") as label:
        np.testing.assert_array_equal(label[...], 7)  # nothing deleted by the refusal
