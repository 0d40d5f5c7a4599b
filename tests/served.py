"""What the tile-stream sweeps share: the small images served by real servers (fixtures
``http_images``, a loopback HTTP server, and ``s3_images``, moto, in conftest.py; one copy of
each per test process), where each sweep reads them, and a counter of the tiles a level reads."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from images import Spec, write_image

if TYPE_CHECKING:
    import random
    from collections.abc import Awaitable, Callable, Iterator, Sequence
    from pathlib import Path

    import numpy as np
    import pytest
    from numpy.typing import NDArray
    from servers import StaticServer

R = TypeVar("R")

# 0.5 sharded: 4 x 4 shards of 4 x 4 chunks of 16 x 16; the others: 256 chunks of 16 x 16
SPECS = {
    "0.5-sharded": Spec(
        version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), shards=(1, 64, 64), levels=1
    ),
    "0.5-plain": Spec(version="0.5", shape=(1, 256, 256), chunks=(1, 16, 16), levels=1),
    "0.4": Spec(version="0.4", shape=(1, 256, 256), chunks=(1, 16, 16), levels=1),
}


def places(*names: str) -> list[tuple[str, str]]:
    """(where, image) pairs for the sweeps: every image over HTTP (the default client), one
    through the aiohttp client and on moto S3 (the sharded one when named), keeping the suite
    short (moto serves ~10x slower)."""
    names = names or tuple(SPECS)
    one = "0.5-sharded" if "0.5-sharded" in names else names[0]
    return [*(("http", name) for name in names), ("aiohttp", one), ("s3", one)]


class CountingReads:
    """Counts the tiles a level starts reading (``Level.read_many`` and ``read``), by wrapping
    those methods on the level object."""

    def __init__(self, level: Any) -> None:
        self.started = 0
        read_many, read = level.read_many, level.read

        async def counted_many(regions: Any, indexes: Any = None) -> Any:
            self.started += len(regions)
            return await read_many(regions, indexes)

        async def counted_one(region: Any, indexes: Any = None) -> Any:
            self.started += 1
            return await read(region, indexes)

        level.read_many, level.read = counted_many, counted_one


@contextlib.contextmanager
def served_image(root: Path, spec: Spec) -> Iterator[tuple[StaticServer, np.ndarray[Any, Any]]]:
    """``spec`` written as ``root/img.zarr`` and a loopback HTTP server of ``root``; the server
    and level 0's data."""
    from servers import StaticServer

    data = write_image(root / "img.zarr", spec)[0]
    server = StaticServer(root).start()
    try:
        yield server, data
    finally:
        server.stop()


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chunk keys ``ChunkCodec.decode`` is called with from now on (in any thread), one
    entry per call; ``monkeypatch`` undoes it at the test's end."""
    from ngio_async.codecs import ChunkCodec

    decoded: list[str] = []
    real = ChunkCodec.decode

    def counted(self: ChunkCodec, buf: Any, key: str, out: Any = None) -> Any:
        decoded.append(key)
        return real(self, buf, key, out)

    monkeypatch.setattr(ChunkCodec, "decode", counted)
    return decoded


async def burst(ds: Any, regions: list[tuple[slice, slice]]) -> list[NDArray[Any]]:
    """All of ``regions`` (y, x) read at once; their arrays in order."""
    got: list[Any] = [None] * len(regions)

    async def one(i: int) -> None:
        y, x = regions[i]
        got[i] = await ds.read(y=y, x=x)

    async with anyio.create_task_group() as tg:
        for i in range(len(regions)):
            tg.start_soon(one, i)
    return got


async def all_fail(
    read: Callable[[], Awaitable[object]], n: int, error: type[BaseException]
) -> list[BaseException]:
    """``n`` concurrent calls of ``read`` (within 20 s): the ``error`` each raised."""
    errors: list[BaseException] = []

    async def one() -> None:
        try:
            await read()
        except error as exc:
            errors.append(exc)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
    return errors


async def cancelled_at_random(
    read: Callable[[R], Awaitable[NDArray[Any]]],
    regions: Sequence[R],
    rng: random.Random,
    most: float = 0.08,
) -> tuple[list[tuple[R, NDArray[Any]]], int]:
    """``read(region)`` for all of ``regions`` at once, all cancelled after a random delay of
    up to ``most`` seconds: the reads that ended (region, array) and how many did not."""
    done: list[tuple[R, NDArray[Any]]] = []

    async def one(region: R) -> None:
        done.append((region, await read(region)))

    with anyio.move_on_after(rng.uniform(0, most)):
        async with anyio.create_task_group() as tg:
            for region in regions:
                tg.start_soon(one, region)
    return done, len(regions) - len(done)
