"""The results of ``async with stream(...) as results`` asked for after the block ended
(audit of issue 4): anyio's bare ``ClosedResourceError()`` (no message) came out, where the
tiles of an ended ``async with ds.tiles() as tiles`` raise ``ClosedError`` saying why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import ClosedError

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(version="0.5", shape=(2, 24, 20), chunks=(1, 8, 8), levels=1)


@pytest.mark.anyio
async def test_results_used_after_the_block_raise_closed_error(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    async with ngio_async.open_async(tmp_path) as ds:
        async with ngio_async.stream(ds.tiles(), lambda a: int(a.sum())) as results:
            first = [await anext(results), await anext(results)]
        assert len(first) == 2
        with pytest.raises(ClosedError, match=r"block ended: consume them inside it"):
            await anext(results)
        # consumed inside the block, every tile's result comes (the ending is a normal one)
        async with ngio_async.stream(ds.tiles(), lambda a: int(a.sum())) as results:
            assert len([value async for _, value in results]) == 18
            with pytest.raises(StopAsyncIteration):
                await anext(results)
