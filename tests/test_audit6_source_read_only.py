"""A write to a TIFF opened as a dataset says what it is: the file opens read-only (and
``mode="r+"`` is refused), so "open it with mode='r+' to write" was wrong advice; a level's
write named the empty in-memory stand-in (``memory:/0``) instead of the file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

import ngio_async
from ngio_async import ReadOnlyError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def test_writes_to_a_tiff_name_the_file_and_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((32, 32), np.uint16))
    zeros = np.zeros((2, 2), np.uint16)
    with ngio_async.open(path) as ds:
        writes: list[Callable[[], object]] = [
            lambda: ds.levels[0].__setitem__((slice(0, 2), slice(0, 2)), zeros),
            lambda: ds.write(zeros, y=slice(0, 2), x=slice(0, 2)),
            lambda: ds.build_pyramid(levels=2),
        ]
        for write in writes:
            with pytest.raises(ReadOnlyError) as info:
                write()
            message = str(info.value)
            assert str(path) in message
            assert "mode='r+'" not in message and "memory:" not in message
            assert "convert" in message
        assert np.array_equal(ds[...], np.zeros((32, 32), np.uint16))
