"""Plane tiles of chunks 16 planes deep, in grid order, side by side, as ratios.

The image: 1x32x2048x2048 uint16 (czyx, 268 MB), chunks of 1x16x512x512 (``deep``), or the
same inner chunks in shards of 1x32x1024x1024 (``deep-sharded``). Every contender reads the
default tiles of such an image, one plane of 512x512 (chunked) or 1024x1024 (sharded) in y/x,
in grid order: each chunk is needed again by the next 15 planes, a whole layer of chunks later.

- zarr-python 3.1 ``AsyncArray.getitem``, 64 in flight (``async.concurrency`` 64): no cache;
- tensorstore, 64 reads in flight, with a 256 MiB ``cache_pool`` (as much as ngio's cache);
- ngio_async ``async for tile in ds.tiles()`` (grid order, ``Limits.cache_bytes`` 256 MiB), and
  with ``cache_bytes=0`` (what it did before the cache).

``--slider``: a viewer's z slider instead: the 32 whole planes (2048x2048) read one after
another, each one ``await``-ed read (zarr-python ``getitem``, tensorstore ``read()`` with the same
256 MiB ``cache_pool``, ngio_async ``ds.read(z=k)`` with ``Limits.read_cache_bytes`` 256 MiB, and
without it). Each plane needs 16 chunks 16 planes deep: without a cache, 16 times the bytes.

Sources: local disk, and nginx on 127.0.0.1 waiting 20 ms before each answer (``_proxy.py``).
MB/s of decoded data, best of ``--repeat``; ratios against zarr and tensorstore.

    .venv/bin/python benchmarks/bench_deep.py [--sources disk,http] [--repeat 2] [--slider]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import DATA, make_image
from _proxy import http_server

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

Region = tuple[slice, ...]
SHAPE = (1, 32, 2048, 2048)
CHUNKS = (1, 16, 512, 512)
SHARDS = (1, 32, 1024, 1024)
IN_FLIGHT = 64
CACHE = 256 << 20


def plane_tiles(edge: int) -> list[Region]:
    """The default tiles in grid order: one plane, ``edge`` x ``edge`` in y/x."""
    return [
        (slice(0, 1), slice(z, z + 1), slice(y, y + edge), slice(x, x + edge))
        for z in range(SHAPE[1])
        for y in range(0, SHAPE[2], edge)
        for x in range(0, SHAPE[3], edge)
    ]


async def bounded(regions: list[Region], read: Callable[[Region], Awaitable[Any]]) -> int:
    """Read every region, at most ``IN_FLIGHT`` at once; the decoded bytes."""
    sem = asyncio.Semaphore(IN_FLIGHT)
    total = 0

    async def one(region: Region) -> None:
        nonlocal total
        try:
            data = await read(region)  # (awaited first: ``total +=`` would read it before)
            total += data.nbytes
        finally:
            sem.release()

    async with asyncio.TaskGroup() as tg:
        for region in regions:
            await sem.acquire()
            tg.create_task(one(region))
    return total


async def run_zarr(url: str, regions: list[Region]) -> int:
    import zarr
    import zarr.api.asynchronous as za

    with zarr.config.set({"async.concurrency": IN_FLIGHT}):
        arr = await za.open_array(store=_zarr_store(url), path="0", mode="r")
        return await bounded(regions, arr.getitem)


async def _ts_open(url: str) -> Any:
    """The level-0 array in tensorstore, with a ``CACHE``-byte cache pool."""
    import tensorstore as ts

    kvstore: dict[str, Any] = (
        {"driver": "http", "base_url": f"{url}/0/"}
        if url.startswith("http")
        else {"driver": "file", "path": f"{url}/0/"}
    )
    ctx = ts.Context({"cache_pool": {"total_bytes_limit": CACHE}})
    return await ts.open({"driver": "zarr3", "kvstore": kvstore}, read=True, context=ctx)


async def run_tensorstore(url: str, regions: list[Region]) -> int:
    arr = await _ts_open(url)

    async def read(region: Region) -> Any:
        return await arr[region].read()

    return await bounded(regions, read)


async def run_ngio(url: str, cache: int) -> int:
    import ngio_async

    total = 0
    limits = ngio_async.Limits(cache_bytes=cache)
    async with ngio_async.open_async(url, limits=limits) as ds:
        async for tile in ds.tiles():
            total += tile.data.nbytes
    return total


def _zarr_store(url: str) -> Any:
    import zarr.storage

    if url.startswith("http"):
        from obstore.store import HTTPStore

        return zarr.storage.ObjectStore(
            HTTPStore.from_url(url, client_options={"allow_http": True}), read_only=True
        )
    return zarr.storage.LocalStore(url, read_only=True)


async def slide_zarr(url: str) -> int:
    import zarr
    import zarr.api.asynchronous as za

    with zarr.config.set({"async.concurrency": IN_FLIGHT}):
        arr = await za.open_array(store=_zarr_store(url), path="0", mode="r")
        return sum([(await arr.getitem((0, z))).nbytes for z in range(SHAPE[1])])


async def slide_tensorstore(url: str) -> int:
    arr = await _ts_open(url)
    return sum([(await arr[0, z].read()).nbytes for z in range(SHAPE[1])])


async def slide_ngio(url: str, cache: int) -> int:
    import ngio_async

    limits = ngio_async.Limits(read_cache_bytes=cache)
    async with ngio_async.open_async(url, limits=limits) as ds:
        return sum([(await ds.read(z=z)).nbytes for z in range(SHAPE[1])])


def measure(fn: Callable[[], Awaitable[int]], repeat: int) -> float:
    """Best MB/s of ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        nbytes = asyncio.run(fn())  # type: ignore[arg-type]
        if nbytes != SHAPE[1] * SHAPE[2] * SHAPE[3] * 2:
            raise AssertionError(f"read {nbytes} bytes, not the image's")
        best = max(best, nbytes / (time.perf_counter() - t0) / 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", default="disk,http")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--slider", action="store_true", help="whole planes one at a time")
    args = parser.parse_args()
    images = {"deep": 512, "deep-sharded": 1024}
    for name in images:
        make_image(
            name, sharded=name.endswith("sharded"), shape=SHAPE, chunks=CHUNKS, shards=SHARDS
        )
    print(f"{'source':6} {'image':13} {'zarr':>6} {'tstore':>7} {'ngio':>6} {'no cache':>8}"
          f" {'ngio/zarr':>9} {'ngio/ts':>8}")  # fmt: skip
    for kind in args.sources.split(","):
        with http_server(DATA) if kind == "http" else _no_server() as served:
            for name, edge in images.items():
                url = f"{served[0]}/{name}" if kind == "http" else str(DATA / name)
                regions = plane_tiles(edge)
                runs: dict[str, Callable[[], Awaitable[int]]] = (
                    {
                        "zarr": partial(slide_zarr, url),
                        "tstore": partial(slide_tensorstore, url),
                        "ngio": partial(slide_ngio, url, CACHE),
                        "bare": partial(slide_ngio, url, 0),
                    }
                    if args.slider
                    else {
                        "zarr": partial(run_zarr, url, regions),
                        "tstore": partial(run_tensorstore, url, regions),
                        "ngio": partial(run_ngio, url, CACHE),
                        "bare": partial(run_ngio, url, 0),
                    }
                )
                got = {k: measure(run, args.repeat) for k, run in runs.items()}
                print(
                    f"{kind:6} {name:13} {got['zarr']:6.0f} {got['tstore']:7.0f} {got['ngio']:6.0f}"
                    f" {got['bare']:8.0f} {got['ngio'] / got['zarr']:8.2f}x"
                    f" {got['ngio'] / got['tstore']:7.2f}x",
                    flush=True,
                )


class _no_server:
    def __enter__(self) -> tuple[str, str]:
        return ("", "")

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
