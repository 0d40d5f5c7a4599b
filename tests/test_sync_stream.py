"""``stream(tiles, func, out=writer)``: what ``func`` returns is written as the tile's data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_func_results_that_broadcast_are_written_and_none_is_named(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.ome.zarr", shape=(32, 32), dtype="uint16", axes="yx", chunks=(16, 16)
    ) as ds:
        async with ds.writer() as w:  # a scalar fills the tile, as ds.write(5) does
            await ngio_async.stream(ds.tiles(shape=(16, 16)), lambda a: 5, out=w)
        np.testing.assert_array_equal(await ds.read(), 5)  # was: 'int' object is not subscriptable
        async with ds.writer() as w:  # a row broadcasts down the core (halo tiles too)
            await ngio_async.stream(
                ds.tiles(shape=(16, 16), overlap=2), lambda a: np.arange(16), out=w
            )
        np.testing.assert_array_equal(await ds.read(), np.tile(np.arange(16), (32, 2)))
        with pytest.raises(TypeError, match=r"func returned None for the tile at \[0:16, 0:16\]"):
            async with ds.writer() as w:  # a function that forgot its return
                await ngio_async.stream(ds.tiles(shape=(16, 16)), lambda a: None, out=w)
        with pytest.raises(ValueError, match=r"shape \(8, 16\) does not fit"):
            async with ds.writer() as w:
                await ngio_async.stream(ds.tiles(shape=(16, 16)), lambda a: a[:8], out=w)
