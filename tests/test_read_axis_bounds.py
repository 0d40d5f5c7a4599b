"""Named-axis reads and writes (``ds.read(z=...)``, ``ds.write(v, z=...)``) with an index past
the axis: an ``IndexError`` naming the axis and its size, whatever the form of the index, and
nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("index", [3, -4, np.int64(7), [0, 3], np.array([-4])])
def test_an_index_past_a_named_axis_names_it(tmp_path: Path, index: Any) -> None:
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(2, 3, 8, 8), dtype="uint8", axes="czyx", levels=1) as ds:
        ds.write(np.full((2, 3, 8, 8), 7, dtype="uint8"))
        with pytest.raises(
            IndexError, match=r"axis 'z': index -?[0-9]+ is out of bounds for level 0 \(size 3\)"
        ):
            ds.read(z=index)
        with pytest.raises(
            IndexError, match=r"axis 'z': index -?[0-9]+ is out of bounds for level 0 \(size 3\)"
        ):
            ds.write(np.zeros((8, 8), dtype="uint8"), c=0, z=index)
        assert ds.read(z=-3).shape == (2, 8, 8)  # the bounds themselves read
        assert ds.read(z=2, c=1).shape == (8, 8)
    with ngio_async.open(path) as again:
        assert (again[...] == 7).all()  # nothing was written
