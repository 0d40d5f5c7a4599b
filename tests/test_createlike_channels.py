"""``create_like(..., axes=...)`` keeps the channels (omero) when the channel axis keeps its size
(every other axes override dropped them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from test_createlike_fixes import _image_with_label

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_other_axes_keep_the_channels_when_the_channel_axis_is_unchanged(
    tmp_path: Path, version: str
) -> None:
    src = _image_with_label(tmp_path / "src.ome.zarr", version)
    with ngio_async.open(src) as ds:
        with ngio_async.create_like(
            ds, tmp_path / "z.zarr", axes="czyx", shape=(2, 4, 32, 32)
        ) as copy:
            assert copy.axes == ("c", "z", "y", "x")
            assert copy.metadata.channels == ds.metadata.channels
        # another channel count, or no channel axis: the channels are dropped (defaults)
        with ngio_async.create_like(
            ds, tmp_path / "c3.zarr", axes="czyx", shape=(3, 4, 32, 32)
        ) as copy:
            assert copy.metadata.ome.omero is None
        with ngio_async.create_like(ds, tmp_path / "yx.zarr", axes="zyx") as copy:
            assert copy.metadata.ome.omero is None
