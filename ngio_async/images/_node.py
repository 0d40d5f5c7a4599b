"""``StoreNode``: what a dataset and a plate share: a store they may own, and their lifetime."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self

import anyio

from .._errors import ClosedError

if TYPE_CHECKING:
    from types import TracebackType

    from ..stores import AsyncStore

__all__ = ["StoreNode", "store_path"]


def store_path(path: object) -> str:
    """``path=`` of the open and create functions: the node's path inside the store, a str;
    a ``pathlib`` path is taken in its POSIX form and ``None`` as the store's root (they
    failed with "'PosixPath' object has no attribute 'strip'"); anything else is refused."""
    if path is None:
        return ""
    if isinstance(path, PurePath):
        text = path.as_posix()
        return "" if text == "." else text
    if not isinstance(path, str):
        raise TypeError(
            f"path= takes a str (the path inside the store), got {type(path).__name__}: {path!r}"
        )
    return path


class StoreNode:
    """A node of a store (an image, a plate) that closes the store if it opened it.

    ``async with node:`` closes it on exit; ``aclose()`` is idempotent; ``closed`` and
    ``_check_open()`` (a :class:`~ngio_async.ClosedError` naming the node) serve the methods.
    Subclasses set ``store``, ``_owns_store`` and ``_what``, and may add :meth:`_close_own`.
    """

    _what: ClassVar[str] = "node"
    store: AsyncStore
    _owns_store: bool
    _is_closed: bool = False

    @property
    def url(self) -> str:
        raise NotImplementedError

    async def _close_own(self) -> None:
        """What the node itself holds, closed before its store (default: nothing)."""

    async def aclose(self) -> None:
        """Close the node (and its store, if the node opened it). Idempotent."""
        if self._is_closed:
            return
        self._is_closed = True
        await self._close_own()
        if self._owns_store:
            with anyio.CancelScope(shield=True):
                await self.store.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._is_closed

    def _check_open(self) -> None:
        if self._is_closed:
            raise ClosedError(f"{self._what} {self.url} is closed")

    # A dataset has ``__len__`` and a ``__getitem__`` that returns coroutines: without these,
    # ``list(ds)``, ``for plane in ds`` and ``np.asarray(ds)`` would take the old sequence
    # protocol, calling ``ds[0]``, ``ds[1]``, ... for ever (no coroutine raises IndexError).
    def __iter__(self) -> NoReturn:
        raise TypeError(self._not_blocking("is not iterable"))

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NoReturn:
        raise TypeError(self._not_blocking("is not a numpy array"))

    def _not_blocking(self, what: str) -> str:
        return (
            f"the async {self._what} {self.url} {what}: its reads are awaited "
            "(`await ds[...]`, `await ds.read(...)`); for numpy, dask and loops open it with "
            "the blocking API (ngio_async.open, ngio_async.open_plate)"
        )
