"""A blocking tile iterator whose dataset was closed (audit of issue 3): ``next()`` raises
``ClosedError``, as the async stream does, never a normal end. It ended as if the image had
no (more) tiles: ``with open(url) as ds: tiles = ds.tiles()`` then ``for t in tiles`` outside
the block ran no iteration, and a loop whose dataset was closed midway stopped short."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import ClosedError

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def url(tmp_path: Path) -> str:
    root = str(tmp_path / "img.ome.zarr")
    with ngio_async.create(
        root, shape=(2, 32, 32), dtype="uint8", axes="cyx", chunks=(1, 16, 16)
    ) as ds:
        ds.write(np.ones((2, 32, 32), np.uint8))
    return root


def test_tiles_made_before_the_close_raise(url: str) -> None:
    with ngio_async.open(url) as ds:
        tiles = ds.tiles()
    with pytest.raises(ClosedError, match="closed"):
        next(tiles)
    with pytest.raises(ClosedError):  # every time, as the async stream
        list(tiles)


def test_tiles_started_before_the_close_raise(url: str) -> None:
    ds = ngio_async.open(url)
    tiles = ds.tiles()
    assert next(tiles).data.any()
    ds.close()
    with pytest.raises(ClosedError, match="closed"):
        next(tiles)


def test_an_iterator_closed_or_ended_by_its_consumer_ends_as_before(url: str) -> None:
    with ngio_async.open(url) as ds:
        tiles = ds.tiles()
        next(tiles)
        tiles.close()  # its own consumer's close: a normal end, as a generator's
        with pytest.raises(StopIteration):
            next(tiles)
        done = ds.tiles()
        assert len(list(done)) == len(done) == 2
    with pytest.raises(StopIteration):  # it had ended before the dataset closed
        next(done)
