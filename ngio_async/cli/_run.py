"""Running a coroutine from the command line: one asyncio loop (anyio), warnings collected."""

from __future__ import annotations

import functools
import sys
import warnings
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..meta import MetadataWarning

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["run_async"]

T = TypeVar("T")


def run_async(
    func: Callable[..., Awaitable[T]],
    *args: Any,
    quiet: bool = False,
    collect: list[str] | None = None,
    **kwargs: Any,
) -> T:
    """``anyio.run(func, *args, **kwargs)`` on asyncio.

    NGFF warnings (``MetadataWarning``) are collected: into ``collect`` when given, else printed
    to stderr as ``ngio-async: warning: ...`` (unless ``quiet``). Other warnings are dropped.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return anyio.run(functools.partial(func, *args, **kwargs), backend="asyncio")
        finally:
            seen: set[str] = set()
            for w in caught:
                if not issubclass(w.category, MetadataWarning):
                    continue
                text = " ".join(str(w.message).split())
                if text in seen:
                    continue
                seen.add(text)
                if collect is not None:
                    collect.append(text)
                elif not quiet:
                    print(f"ngio-async: warning: {text}", file=sys.stderr)
