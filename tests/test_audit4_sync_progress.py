"""The blocking API's ``ds.tiles(progress=...)`` checks ``progress`` at the call as the async
one does (audit of issue 4): the shim wrapped it first, so a bad one passed the call and
failed at the first tile with a message that named neither ``progress`` nor the way out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.progress import rich_progress

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(version="0.5", shape=(2, 40, 33), chunks=(1, 16, 16), levels=1)


def test_sync_tiles_refuse_a_bad_progress_at_the_call(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    with ngio_async.open(tmp_path) as ds:
        # was: accepted, then "ContextDecorator.__call__() takes 2 positional arguments but 3
        # were given" at the first next()
        bar: Any = rich_progress()
        with pytest.raises(TypeError, match=r"not a context manager.*with rich_progress\(\)"):
            ds.tiles(progress=bar)
        # was: accepted, then "rich_progress() takes from 0 to 1 positional arguments but 2
        # were given" at the first tile
        with pytest.raises(TypeError, match=r"not a context manager.*with rich_progress\(\)"):
            ds.tiles(progress=rich_progress)  # type: ignore[arg-type]
        # was: accepted, then "'int' object is not callable"
        with pytest.raises(TypeError, match=r"progress must be a callable .*got 5"):
            ds.tiles(progress=5)  # type: ignore[arg-type]
        calls: list[tuple[int, int | None]] = []
        tiles = list(ds.tiles(progress=lambda done, total: calls.append((done, total))))
        assert calls == [(i, len(tiles)) for i in range(1, len(tiles) + 1)]
        with rich_progress("sync", disable=True) as progress:
            assert len(list(ds.tiles(progress=progress))) == len(tiles)


@pytest.mark.anyio
async def test_an_async_progress_is_refused(tmp_path: Path) -> None:
    """``progress`` is called, never awaited: an async function's coroutine was dropped on
    every tile ("coroutine ... was never awaited"), the callback never ran."""
    write_image(tmp_path, SPEC)

    async def progress(done: int, total: int | None) -> None:
        raise AssertionError("never awaited")

    async with ngio_async.open_async(tmp_path) as ds:
        with pytest.raises(TypeError, match=r"progress must be a plain function .*async"):
            ds.tiles(progress=progress)
        # a plain function that returns a coroutine (a lambda calling an async one): named
        # at the first tile, the coroutine closed (no "never awaited" warning)
        with pytest.raises(TypeError, match=r"progress returned a coroutine"):
            async for _ in ds.tiles(progress=lambda d, t: progress(d, t)):
                pass
    with ngio_async.open(tmp_path) as sync_ds:
        with pytest.raises(TypeError, match="async"):
            sync_ds.tiles(progress=progress)
        with pytest.raises(TypeError, match=r"progress returned a coroutine"):
            for _ in sync_ds.tiles(progress=lambda d, t: progress(d, t)):
                pass
