"""Pools of spawned worker processes for the cross-process tests (fresh interpreters, as
separate programs would be)."""

from __future__ import annotations

import contextlib
import multiprocessing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from multiprocessing.pool import Pool


@contextlib.contextmanager
def spawned_pool(
    initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[Pool]:
    """Two spawned workers, both started and done importing before it yields."""
    workers = multiprocessing.get_context("spawn").Pool(
        2, initializer=initializer, initargs=initargs
    )
    try:
        workers.map(_ready, range(2), chunksize=1)
        yield workers
    finally:
        workers.terminate()
        workers.join()


def _ready(_: int) -> int:
    return 0
