"""A ready rich progress bar for ``ds.tiles(progress=...)`` and ``stream(...)``."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._prefetch import ProgressCallback

__all__ = ["rich_progress"]


@contextmanager
def rich_progress(
    description: str = "tiles", *, nbytes_per_item: int | None = None, **progress_options: Any
) -> Iterator[ProgressCallback]:
    """A ``progress(done, total)`` callback that drives a rich progress bar::

        with rich_progress("streaming", nbytes_per_item=tile_bytes) as progress:
            async for tile in ds.tiles(progress=progress): ...

    With ``nbytes_per_item`` the bar also shows the decoded throughput (MB/s).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    if nbytes_per_item:
        columns.append(TextColumn("{task.fields[rate]}"))
    with Progress(*columns, **progress_options) as bar:
        task = bar.add_task(description, total=None, rate="")
        start = time.perf_counter()

        def update(done: int, total: int | None) -> None:
            fields: dict[str, Any] = {}
            if nbytes_per_item:
                elapsed = max(time.perf_counter() - start, 1e-9)
                fields["rate"] = f"{done * nbytes_per_item / elapsed / 1e6:,.0f} MB/s"
            bar.update(task, completed=done, total=total, **fields)

        yield update
