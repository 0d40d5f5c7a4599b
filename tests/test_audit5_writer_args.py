"""Audit of issue 5: the tile writer names what it is given wrong. ``max_pending="4"`` failed with
"'<' not supported between instances of 'str' and 'int'", ``2.5`` with anyio's
"initial_value must be an integer" and ``True`` was taken as 1; ``w.write(5)`` failed with
"cannot unpack non-iterable int object" and ``w.write((region,))`` with "not enough values to
unpack"."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

REGION = (slice(0, 1), slice(0, 16), slice(0, 16))


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("4", TypeError, "max_pending must be an integer, got '4'"),
        (2.5, TypeError, "max_pending must be an integer, got 2.5"),
        (True, TypeError, "max_pending must be an integer, got True"),
        (0, ValueError, "max_pending must be >= 1, got 0"),
    ],
)
async def test_a_bad_max_pending_is_named(
    tmp_path: Path, value: Any, error: type[Exception], message: str
) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.ome.zarr", shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=1
    ) as ds:
        with pytest.raises(error, match=re.escape(message)):
            async with ds.writer(max_pending=value) as w:
                await w.write((REGION, 1))
        async with ds.writer(max_pending=np.int64(2)) as w:  # type: ignore[arg-type]
            await w.write((REGION, 3))
        assert int((await ds.levels[0][...]).max()) == 3


@pytest.mark.parametrize("tile", [5, "x", (REGION,), (REGION, 1, 2), (5, 1)])
async def test_a_write_of_no_tile_is_named(tmp_path: Path, tile: Any) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.ome.zarr", shape=(2, 32, 32), dtype="uint8", axes="cyx", levels=1
    ) as ds:
        with pytest.raises(TypeError, match=r"write takes a Tile or \(region, data\), got "):
            async with ds.writer() as w:
                await w.write(tile)
        assert not (await ds.levels[0][...]).any()
