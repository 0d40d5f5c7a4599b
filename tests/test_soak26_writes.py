"""Soak: a batch job creating and writing small images one after the other (local and S3),
async and blocking: after a warm-up, fds, threads and tasks do not grow, and Python memory
per image is bounded (see :class:`test_soak26_cycles.Counts`)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_soak26_cycles import Counts

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio
DATA = np.arange(2 * 64 * 64, dtype="uint16").reshape(2, 64, 64)
SHAPE: dict[str, Any] = {
    "shape": DATA.shape,
    "dtype": "uint16",
    "axes": "cyx",
    "chunks": (1, 32, 32),
    "levels": 2,
}


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any], int]:
    """A prefix new images go under, the options that reach it, and the cycles per half."""
    if request.param == "local":
        return str(tmp_path), {}, 20
    s3: S3Server = request.getfixturevalue("s3_server")
    return s3.fresh_url(), s3.options(), 8


def _measured(cycle: Callable[[], None], cycles: int) -> None:
    for _ in range(3):
        cycle()
    counts = Counts()
    for i in range(2 * cycles):
        cycle()
        if i == cycles - 1:
            counts.half_way()
    counts.check(cycles)


async def test_async_writes_leave_nothing_behind(where: tuple[str, dict[str, Any], int]) -> None:
    prefix, options, cycles = where
    names = itertools.count()

    async def cycle() -> None:
        url = f"{prefix}/w{next(names)}.zarr"
        async with ngio_async.create_async(url, **SHAPE, **options) as ds:
            await ds.write(DATA)

    for _ in range(3):
        await cycle()
    counts = Counts()
    for i in range(2 * cycles):
        await cycle()
        if i == cycles - 1:
            counts.half_way()
    counts.check(cycles)
    async with ngio_async.open_async(f"{prefix}/w{next(names) - 1}.zarr", **options) as ds:
        assert np.array_equal(await ds.read(), DATA)


def test_blocking_writes_leave_nothing_behind(where: tuple[str, dict[str, Any], int]) -> None:
    prefix, options, cycles = where
    names = itertools.count()

    def cycle() -> None:
        with ngio_async.create(f"{prefix}/w{next(names)}.zarr", **SHAPE, **options) as ds:
            ds[...] = DATA

    _measured(cycle, cycles)
