"""``stream(ds.tiles(), func)``: what ``func`` may be."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

pytestmark = pytest.mark.anyio


async def test_an_async_func_is_refused_clearly(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1))

    async def total(a: NDArray[Any]) -> int:
        return int(a.sum())

    async with ngio_async.open_async(tmp_path) as ds:
        # was: the results were coroutine objects, never awaited (a RuntimeWarning at most)
        with pytest.raises(TypeError, match="must be a plain function"):
            ngio_async.stream(ds.tiles(), total)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "coroutine ... was never awaited"
            with pytest.raises(TypeError, match="must be a plain function"):
                await ngio_async.stream(ds.tiles(), lambda a: total(a))


def test_the_tiles_of_a_blocking_dataset_are_refused_clearly(tmp_path: Path) -> None:
    write_image(tmp_path, Spec(version="0.5", shape=(1, 32, 32), chunks=(1, 16, 16), levels=1))
    with ngio_async.open(tmp_path) as ds:
        tiles = ds.tiles()
        # was: a Stream that blocking code could not use ("'Stream' object is not iterable")
        with pytest.raises(TypeError, match=r"open_async.*got SyncTiles"):
            ngio_async.stream(tiles, lambda a: int(a.sum()))  # type: ignore[arg-type]
        assert sum(1 for _ in tiles) == 4  # the tiles are still there to iterate
