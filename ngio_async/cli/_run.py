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

    NGFF warnings (``MetadataWarning``) are handled as they are raised, each text once: added
    to ``collect`` when given, else printed to stderr as ``ngio-async: warning: ...`` (unless
    ``quiet``); never held until the end (``serve`` runs for days). Other warnings are dropped.
    """
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        if not issubclass(category, MetadataWarning):
            return
        text = " ".join(str(message).split())
        if text in seen:
            return
        seen.add(text)
        if collect is not None:
            collect.append(text)
        elif not quiet:
            print(f"ngio-async: warning: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():  # restores ``showwarning`` too
        warnings.simplefilter("always")
        warnings.showwarning = show
        return anyio.run(functools.partial(func, *args, **kwargs), backend="asyncio")
