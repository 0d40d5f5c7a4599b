"""Small API edges users meet: TIFFs opened with mode=, a TIFF given to the tile server, the
progress bar's context manager passed as a callback."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from aiohttp.test_utils import TestServer

import ngio_async
from ngio_async import ReadOnlyError, UnsupportedError
from ngio_async.progress import rich_progress
from ngio_async.web import create_app

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def tiff(tmp_path: Path) -> Path:
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.arange(64 * 48, dtype="uint16").reshape(64, 48))
    return path


def test_a_tiff_opens_with_mode_r_and_refuses_r_plus(tiff: Path) -> None:
    with ngio_async.open(tiff, mode="r") as ds:
        assert ds.shape[-2:] == (64, 48)
    with pytest.raises(ReadOnlyError, match=r"a\.tif is a TIFF: it opens read-only"):
        ngio_async.open(tiff, mode="r+")


async def test_a_tiff_async_open_with_mode_r(tiff: Path) -> None:
    async with ngio_async.open_async(tiff, mode="r") as ds:
        assert (await ds.read())[-1, -1] == 64 * 48 - 1


async def test_the_tile_server_refuses_a_tiff_by_name(tiff: Path) -> None:
    server = TestServer(create_app({"t": str(tiff)}))
    try:
        with pytest.raises(UnsupportedError, match="is a TIFF: the tile server serves OME-Zarr"):
            await server.start_server()
    finally:
        await server.close()


async def test_the_progress_context_manager_is_refused_with_the_right_use(tmp_path: Path) -> None:
    async with await ngio_async.create_async(
        tmp_path / "a.zarr", shape=(32, 32), dtype="uint8", axes="yx"
    ) as ds:
        with pytest.raises(TypeError, match=r"not a context manager: use `with rich_progress"):
            ds.tiles(progress=rich_progress())  # type: ignore[arg-type]
        with rich_progress() as bar:
            assert sum([1 async for _ in ds.tiles(progress=bar)]) == 1
