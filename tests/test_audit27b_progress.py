"""A tile stream of an empty selection tells its progress callback the total once (audit of
issue 4): it never called it, so a ready rich bar stayed at "0/?" (an unknown total, pulsing)
after the stream had ended, and a callback never learnt that the stream had run."""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING, Any

import pytest
from images import Spec, write_image
from rich.console import Console

import ngio_async
from ngio_async.progress import rich_progress

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(version="0.5", shape=(2, 3, 20, 24), chunks=(1, 1, 8, 8), shards=(1, 1, 16, 16))
EMPTY: list[dict[str, Any]] = [
    {"z": slice(2, 2)},
    {"c": []},
    {"y": slice(15, 5)},
    {"region": (slice(0, 2), slice(1, 1), slice(None), slice(None))},
]


@pytest.mark.anyio
@pytest.mark.parametrize("ordered", [True, False])
async def test_an_empty_selection_reports_zero_of_zero(tmp_path: Path, ordered: bool) -> None:
    write_image(tmp_path, SPEC)
    calls: list[tuple[int, int | None]] = []

    def progress(done: int, total: int | None) -> None:
        calls.append((done, total))

    async with ngio_async.open_async(tmp_path) as ds:
        for selection in EMPTY:
            calls.clear()
            tiles = ds.tiles(ordered=ordered, progress=progress, **selection)
            assert len(tiles) == 0
            assert [tile async for tile in tiles] == []
            assert calls == [(0, 0)], selection  # was: []
            # the block form and stream() too
            calls.clear()
            async with ds.tiles(progress=progress, **selection) as it:
                assert [tile async for tile in it] == []
            assert calls == [(0, 0)]
            calls.clear()
            tiles = ds.tiles(progress=progress, **selection)
            assert await ngio_async.stream(tiles, lambda a: a) == []
            assert calls == [(0, 0)]
        # a stream with tiles is told each one, never (0, total)
        calls.clear()
        assert len([t async for t in ds.tiles(progress=progress, c=1)]) == 12
        assert calls == [(i, 12) for i in range(1, 13)]


def test_the_rich_bar_of_an_empty_stream_ends_at_zero_of_zero(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=False)
    with ngio_async.open(tmp_path) as ds:
        seen: list[tuple[int, int | None, int]] = []

        def progress(done: int, total: int | None) -> None:
            seen.append((done, total, threading.get_ident()))

        assert list(ds.tiles(progress=progress, z=slice(1, 1))) == []
        # told in the consuming thread, as every report of the blocking API
        assert seen == [(0, 0, threading.get_ident())]
        with rich_progress("empty", console=console) as bar:
            assert list(ds.tiles(progress=bar, c=[])) == []
    assert "0/0" in out.getvalue(), out.getvalue()  # was: 0/?
