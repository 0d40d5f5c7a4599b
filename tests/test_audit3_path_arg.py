"""``path=`` as a ``pathlib`` path, ``None`` or of the wrong type (audit of issue 3): open,
open_plate, create, create_like and create_plate failed with "'PosixPath' object has no
attribute 'strip'" (or the same of int / NoneType). A path is taken in its POSIX form,
``None`` as the store's root, anything else refused naming ``path=``."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_a_pathlib_path(tmp_path: Path) -> None:
    sub = PurePosixPath("images") / "a.ome.zarr"
    with ngio_async.create(tmp_path, path=sub, shape=(4, 4), dtype="uint8", axes="yx") as ds:
        ds[...] = 3
    with ngio_async.open(tmp_path, path=sub) as ds:
        assert ds.url.endswith("images/a.ome.zarr")
        assert np.array_equal(ds[...], np.full((4, 4), 3, np.uint8))
        with ngio_async.create_like(ds, tmp_path, path=PurePosixPath("b.ome.zarr")) as like:
            assert like.shape == (4, 4)
    with ngio_async.create_plate(tmp_path, path=PurePosixPath("p.zarr"), rows=["A"], columns=["1"]):
        pass
    with ngio_async.open_plate(tmp_path, path=PurePosixPath("p.zarr")) as plate:
        assert plate.rows == ["A"]
    with ngio_async.open(tmp_path / "images" / "a.ome.zarr", path=None) as ds:
        assert ds.shape == (4, 4)


@pytest.mark.parametrize("path", [5, b"a.ome.zarr", ["a.ome.zarr"]])
def test_other_types_are_refused(tmp_path: Path, path: Any) -> None:
    with pytest.raises(TypeError, match="path= takes a str"):
        ngio_async.open(tmp_path, path=path)
    with pytest.raises(TypeError, match="path= takes a str"):
        ngio_async.create(tmp_path, path=path, shape=(4, 4), dtype="uint8", axes="yx")
    with pytest.raises(TypeError, match="path= takes a str"):
        ngio_async.create_plate(tmp_path, path=path, rows=["A"], columns=["1"])
    assert not any(tmp_path.iterdir())  # nothing written
