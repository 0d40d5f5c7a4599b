"""``ngio-async bench URL``: stream one level tile by tile and report the decoded throughput."""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

from .._open_any import open_async
from ..engine import default_tile_shape
from ._common import (
    CLIError,
    check_url,
    request_options,
    stderr_console,
    store_options,
    wants_progress,
)

if TYPE_CHECKING:
    import argparse

    from .._prefetch import ProgressCallback

__all__ = ["bench", "run_bench"]


async def bench(
    url: str,
    *,
    level: int = 0,
    prefetch: int | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Stream every tile of ``level`` (``ordered=False``); decoded bytes, tiles and seconds."""
    async with open_async(url, **options) as ds:  # OME-Zarr on any store, or a TIFF
        if not -len(ds.levels) <= level < len(ds.levels):
            n = len(ds.levels)
            raise CLIError(f"--level {level}: the image has {n} level{'' if n == 1 else 's'}")
        level %= len(ds.levels)  # -1: the last level, reported as its index
        lvl = ds.levels[level]
        tile = default_tile_shape(lvl.shape, lvl.chunks, lvl.shards)
        tile_bytes = math.prod(min(t or n, n) for t, n in zip(tile, lvl.shape, strict=True))
        tile_bytes *= lvl.dtype.itemsize
        with contextlib.ExitStack() as stack:
            callback: ProgressCallback | None = None
            if progress:
                from ..progress import rich_progress

                callback = stack.enter_context(
                    rich_progress(
                        f"level {level}",
                        nbytes_per_item=tile_bytes,
                        console=stderr_console(),
                        transient=False,
                    )
                )
            nbytes = tiles = 0
            start = time.perf_counter()
            async for t in ds.tiles(
                level=level, ordered=False, prefetch=prefetch, progress=callback
            ):
                nbytes += t.data.nbytes
                tiles += 1
            seconds = time.perf_counter() - start
        return {
            "url": ds.url,
            "level": level,
            "shape": list(lvl.shape),
            "dtype": str(lvl.dtype),
            "tiles": tiles,
            "decoded_bytes": nbytes,
            "seconds": seconds,
            "mb_per_s": nbytes / 1e6 / max(seconds, 1e-9),
        }


def run_bench(args: argparse.Namespace) -> int:
    import json

    from ._run import run_async

    check_url(args.url)

    if args.prefetch is not None and args.prefetch < 1:
        raise CLIError("--prefetch must be at least 1")
    result = run_async(
        bench,
        args.url,
        level=args.level,
        prefetch=args.prefetch,
        progress=wants_progress(args.quiet),
        quiet=args.quiet,
        **store_options(args, args.url),
        **request_options(args),
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['mb_per_s']:.1f} MB/s decoded: {result['tiles']} "
            f"tile{'' if result['tiles'] == 1 else 's'}, "
            f"{result['decoded_bytes'] / 1e6:.1f} MB in {result['seconds']:.2f} s "
            f"(level {result['level']}, shape {'x'.join(map(str, result['shape']))}, "
            f"{result['dtype']})"
        )
    return 0
