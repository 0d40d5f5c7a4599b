"""Hygiene: one dataset object used from event loops that follow each other (``asyncio.run`` twice).

A service that opens its images at start-up in one ``asyncio.run`` and serves them in a later one,
or a test suite with one loop per test and a module-level dataset, does this. Region reads work
there; tile streams and the aiohttp client must either work too or say why they cannot.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

    from ngio_async.images import Dataset

SPEC = Spec(version="0.5", shape=(2, 32, 32), chunks=(1, 16, 16), levels=1)


def _open(url: str, **options: Any) -> Dataset:
    async def go() -> Dataset:
        return await ngio_async.open_async(url, **options)

    return asyncio.run(go())


async def _count_tiles(ds: Dataset) -> int:
    return sum([1 async for _ in ds.tiles()])


def test_region_reads_work_on_a_later_event_loop(tmp_path: Path) -> None:
    """The baseline the next tests compare with: reads are not tied to the first loop."""
    (data,) = write_image(tmp_path, SPEC)
    ds = _open(str(tmp_path))
    for _ in range(2):
        assert np.array_equal(asyncio.run(ds.read()), data)


def test_tile_streams_work_or_say_why_on_a_later_event_loop(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    ds = _open(str(tmp_path))
    assert asyncio.run(_count_tiles(ds)) == 8  # 2 planes of 2 x 2 chunks: the first loop is fine
    try:
        n = asyncio.run(_count_tiles(ds))
    except RuntimeError as exc:
        assert "loop" in str(exc)  # was: 'This task group is not active; no new tasks ...'
    else:
        assert n == 8


# run in a child process: the sockets of the first loop's session leak, and their
# ResourceWarnings would surface in whichever test the garbage collector runs in
_LATER_LOOP_READ = """
import asyncio, sys
import ngio_async

async def opening():
    return await ngio_async.open_async(sys.argv[1], backend="aiohttp")

ds = asyncio.run(opening())
try:
    print("read", asyncio.run(ds.read()).shape)
except RuntimeError as exc:
    print("error", exc)
"""


def test_aiohttp_store_works_or_says_why_on_a_later_event_loop(
    http_server: StaticServer, http_root: Path
) -> None:
    write_image(http_root / "img.zarr", SPEC)
    child = subprocess.run(
        [sys.executable, "-W", "ignore::ResourceWarning", "-c", _LATER_LOOP_READ,
         f"{http_server.url}img.zarr"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    outcome = child.stdout.strip()
    assert outcome == "read (2, 32, 32)" or (
        outcome.startswith("error") and ("opened" in outcome or "another" in outcome)
    ), outcome  # was: 'error Event loop is closed'


def test_closing_on_a_later_event_loop_is_clean(tmp_path: Path) -> None:
    write_image(tmp_path, SPEC)
    ds = _open(str(tmp_path))
    assert asyncio.run(_count_tiles(ds)) == 8  # starts the dataset's tile task on this loop
    asyncio.run(ds.aclose())  # was: asyncio.CancelledError
