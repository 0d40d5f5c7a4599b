"""``Tile`` and ``TileStream``: what ``Dataset.tiles()`` returns and yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from anyio.abc import TaskGroup
    from numpy.typing import NDArray

    from .._prefetch import Prefetch, PrefetchIterator
    from ..engine import TileSpec

__all__ = ["Tile", "TileStream"]


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: ``data`` has exactly the shape of ``level[region]`` (no axis squeezed).

    ``region`` includes the halo (``overlap``); ``core`` is the tile without it. ``index`` is the
    tile's position in the grid, ``level`` the pyramid level it was read from.
    """

    data: NDArray[Any]
    region: tuple[slice, ...]
    index: tuple[int, ...]
    core: tuple[slice, ...]
    level: int

    @property
    def core_data(self) -> NDArray[Any]:
        """``data`` without the halo: exactly ``level[core]``."""
        return self.data[
            tuple(
                slice(c.start - r.start, c.stop - r.start)
                for c, r in zip(self.core, self.region, strict=True)
            )
        ]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


class TileStream:
    """The tiles of a region, fetched ahead of the consumer within the ``Limits`` bounds.

    - ``async for tile in ds.tiles(...)``: the background work runs in the dataset's own task
      group; it stops when the loop ends, on ``break`` (the iterator is dropped), on error, or
      when the dataset closes. Call ``aclose()`` on the iterator to stop it deterministically.
    - ``async with ds.tiles(...) as tiles: async for tile in tiles``: the block owns the work;
      leaving it for any reason (``break``, an exception, cancellation, a timeout) cancels every
      fetch in flight before the block exits.
    """

    def __init__(
        self,
        make: Callable[[TaskGroup | None], Prefetch[TileSpec, Tile]],
        owner: Callable[[], Awaitable[TaskGroup]],
        *,
        grid: tuple[int, ...],
        total: int,
    ) -> None:
        self._make = make
        self._owner = owner
        self._used = False
        self._cm: Prefetch[TileSpec, Tile] | None = None
        #: tiles per axis, and how many tiles the stream yields
        self.grid = grid
        self.total = total

    def __len__(self) -> int:
        return self.total

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a tile stream can be iterated once; call ds.tiles() again")
        self._used = True

    def __aiter__(self) -> _OwnedTiles:
        self._claim()
        return _OwnedTiles(self._make, self._owner)

    async def __aenter__(self) -> PrefetchIterator[Tile]:
        self._claim()
        self._cm = self._make(None)
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        assert self._cm is not None
        cm, self._cm = self._cm, None
        return await cm.__aexit__(exc_type, exc_val, exc_tb)


class _OwnedTiles:
    """Bare ``async for``: starts the prefetch in the dataset's task group on first use."""

    def __init__(
        self,
        make: Callable[[TaskGroup | None], Prefetch[TileSpec, Tile]],
        owner: Callable[[], Awaitable[TaskGroup]],
    ) -> None:
        self._make = make
        self._owner = owner
        self._it: PrefetchIterator[Tile] | None = None
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Tile:
        if self._it is None:
            if self._closed:
                raise StopAsyncIteration
            self._it = self._make(await self._owner()).__aiter__()
        return await self._it.__anext__()

    async def aclose(self) -> None:
        """Stop the background fetches now (``break`` alone stops them when dropped)."""
        self._closed = True
        if self._it is not None:
            await self._it.aclose()
