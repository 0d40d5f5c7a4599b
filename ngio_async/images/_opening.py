"""Opening a store node: the awaitable and async-context ``_Opening`` every opener returns,
``open_node`` (a URL's store, closed again when opening fails), and the checks of what an
image's opening is asked for (``mode``, ``multiscale``, a group that is no image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, Literal, NoReturn, Protocol, TypeVar

import anyio

from .._errors import UnsupportedError
from .._limits import check_limits
from ..stores import AsyncStore, load_backend, open_store
from ..stores._base import read_only_reason
from ..stores._url_utils import redact_url
from ._node import store_path
from ._open import listed_series

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Coroutine, Generator
    from types import TracebackType

    from .._limits import Limits
    from ..meta import OmeMetadata

Mode = Literal["r", "r+"]


class _Closeable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closeable)


class _Opening(Generic[C]):
    """What :func:`open_async` (and the other openers) return: awaitable, and an async context
    manager closing the opened object on exit."""

    def __init__(self, coro_factory: Callable[[], Coroutine[Any, Any, C]]) -> None:
        self._factory = coro_factory
        self._opened: C | None = None

    def __await__(self) -> Generator[Any, None, C]:
        return self._factory().__await__()

    def __getattr__(self, name: str) -> NoReturn:
        # a forgotten ``await``: say so, rather than "'_Opening' object has no attribute"
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"{name!r}: this is the opening, not the opened object; await it "
            "(`ds = await ngio_async.open_async(...)`) or enter it "
            "(`async with ngio_async.open_async(...) as ds:`)"
        )

    async def __aenter__(self) -> C:
        self._opened = await self._factory()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if self._opened is not None:
            await self._opened.aclose()


def open_node(
    open_in: Callable[..., Coroutine[Any, Any, C]],
    url: Any,
    limits: Limits | None,
    path: str | os.PathLike[str] | None,
    mode: Mode,
    store_options: dict[str, Any],
) -> _Opening[C]:
    """``open_in(store, path, ...)`` on the store of ``url`` (a store object is used as is, any
    other URL opens one that the node owns and closes; closed again if opening fails)."""
    _check_mode(mode)
    check_limits(limits)
    path = store_path(path)
    if mode == "r+":  # a URL whose kind takes no writes: refused before a store is made
        refuse_read_only(url, "open", "with mode='r+'", path)
    if isinstance(url, AsyncStore) and store_options:  # they would go unused, unsaid
        raise ValueError(
            f"store options {sorted(store_options)} need a URL: this is an open store "
            f"({url.url}); give them to open_store() instead"
        )

    async def go() -> C:
        owns = not isinstance(url, AsyncStore)
        if owns:
            await load_backend(url, store_options.get("backend"))
        store = open_store(url, limits=limits, **store_options) if owns else url
        assert isinstance(store, AsyncStore)
        return await closing_store_on_error(
            store, owns, open_in(store, path, limits=limits, owns_store=owns, mode=mode)
        )

    return _Opening(go)


async def closing_store_on_error(
    store: AsyncStore, owns: bool, opening: Coroutine[Any, Any, C]
) -> C:
    """Await ``opening``; if it fails, close ``store`` when the caller opened it for us."""
    try:
        return await opening
    except BaseException:
        if owns:
            with anyio.CancelScope(shield=True):
                await store.aclose()
        raise


async def _first_series(store: AsyncStore, root: str, version: str | None) -> str:
    """The first image of a bioformats2raw container: the first the ``OME`` group lists, else
    ``0``."""
    listed = await listed_series(store, root, version)
    return "0" if listed is None else listed[0]


def _url_of(store: AsyncStore, root: str) -> str:
    """The URL of the group at ``root``, without a trailing slash."""
    url = store.url.rstrip("/")
    if url.endswith(":"):  # file:/// and the like: the root itself
        url = store.url
    return f"{url}/{root.strip('/')}" if root.strip("/") else url


def _not_an_image(ome: OmeMetadata, url: str) -> str:
    """Why the group at ``url`` (``ome``: its NGFF metadata) is not an image, and what is."""
    from ._metadata import unreadable_06

    if (why := unreadable_06(ome)) is not None:
        return f"{url}: {why}"
    kinds = ", ".join(ome.kinds) or "none"
    message = f"{url} is not an image (its NGFF metadata: {kinds})"
    if ome.plate is not None:
        well = ome.plate.wells[0].path
        return (
            f"{message}: it is an HCS plate; an image is one of its fields of view, "
            f"<plate>/<row>/<column>/<field> (e.g. {url}/{well}/0), and the plate itself opens "
            "as a plate (ngio_async.open_plate; ngio-async info lists its wells)"
        )
    if ome.well is not None:
        field = ome.well.images[0].path
        return (
            f"{message}: it is an HCS well; an image is one of its fields of view "
            f"(e.g. {url}/{field})"
        )
    if ome.labels is not None:
        return f"{message}: it lists label images, each an image (e.g. {url}/{ome.labels[0]})"
    return message


def _check_multiscale(multiscale: object) -> None:
    if isinstance(multiscale, bool) or not isinstance(multiscale, int | str):
        raise TypeError(f"multiscale must be an index or a name, got {multiscale!r}")


def _multiscale_index(ome: OmeMetadata, multiscale: int | str, url: str) -> int:
    """The index of multiscale ``multiscale`` (an index or a ``name``) of ``ome``."""
    assert ome.multiscales is not None
    names = [m.name for m in ome.multiscales]
    there = ", ".join(f"{i}" if n is None else f"{i} ({n!r})" for i, n in enumerate(names))
    if isinstance(multiscale, str):
        found = [i for i, n in enumerate(names) if n == multiscale]
        if len(found) == 1:
            return found[0]
        if found:
            raise ValueError(
                f"{url}: multiscales {found} are all named {multiscale!r}: pick one by index "
                f"(multiscales: {there})"
            )
        raise ValueError(f"{url} has no multiscale named {multiscale!r} (multiscales: {there})")
    if not -len(names) <= multiscale < len(names):
        raise IndexError(
            f"{url} has no multiscale {multiscale}: it has {len(names)} (multiscales: {there})"
        )
    return multiscale % len(names)


def _check_mode(mode: str, store: AsyncStore | None = None, root: str = "") -> None:
    """Refuse a mode other than ``"r"`` and ``"r+"``, and ``"r+"`` on a ``store`` (the image or
    plate at ``root`` of it) that takes no writes."""
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    if mode == "r+" and store is not None:
        refuse_read_only(store, "open", "with mode='r+'", root)


def refuse_read_only(target: object, what: str, how: str = "", root: str = "") -> None:
    """Refuse, before any I/O, to ``what`` (``open``, ``create``, ``write to``) the node at
    ``root`` of ``target`` (a store, a URL or a path) when its store takes no writes (a URL's
    kind says so: http(s)://), naming the URL and why (``how``: the words after the URL)."""
    if isinstance(target, AsyncStore):
        why, where = target.read_only_reason, _url_of(target, root)
    else:
        why = read_only_reason(target)
        where = redact_url(target) if isinstance(target, str) else str(target)
        where = f"{where.rstrip('/')}/{root.strip('/')}" if root.strip("/") else where
    if why is not None:
        raise UnsupportedError(f"cannot {what} {where}{' ' + how if how else ''}: {why}")


def read_only_advice(store: AsyncStore) -> str:
    """The end of the error refusing a write to a node opened read-only on ``store``: advice
    to reopen it with ``mode='r+'``, or (a store taking no writes) why that cannot work."""
    why = store.read_only_reason
    return "; open it with mode='r+' to write" if why is None else f", and {why}"
