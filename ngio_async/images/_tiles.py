"""``Tile``, ``TileStream`` and ``TileIterator``: what ``Dataset.tiles()`` returns and yields."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self, TypeAlias

import anyio

from .._errors import ClosedError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import TracebackType

    from anyio.abc import TaskGroup
    from numpy.typing import NDArray

    from .._prefetch import Prefetch, PrefetchIterator, ProgressCallback
    from ..engine import TileSpec
    from ._metadata import LevelCalibration
    from ._reuse import ChunkReuse
    from ._tile_pool import TilePool

__all__ = ["Tile", "TileBatch", "TileIterator", "TileOwner", "TileStream", "TileWork"]

TileWork: TypeAlias = "list[TileSpec] | tuple[str, ...]"
"""What the tile stream's prefetch engine works on: a batch of tiles, or the keys of shards
whose indexes are fetched (together) ahead of their tiles."""


@dataclass(frozen=True, slots=True, eq=False)  # (compared and hashed by identity: by value,
# its array made `tile in tiles` and `{tile: ...}` raise)
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


class TileBatch(NamedTuple):
    """Tiles read together (one worker-thread call on local stores), in grid order; ``error``
    is what stopped the batch after them (raised once they are consumed)."""

    tiles: list[Tile]
    error: Exception | None = None


class TileStream:
    """The tiles of a region, fetched ahead of the consumer within the ``Limits`` bounds.

    - ``async for tile in ds.tiles(...)``: the background work runs in the dataset's own task
      group; it stops when the loop ends, on ``break`` (the iterator is dropped), on error, or
      when the dataset closes. Call ``aclose()`` on the iterator to stop it deterministically.
    - ``async with ds.tiles(...) as tiles: async for tile in tiles``: the block owns the work;
      leaving it for any reason (``break``, an exception, cancellation, a timeout) cancels every
      fetch in flight before the block exits.

    Underneath, the prefetch engine's items are batches of tiles (several small tiles per
    worker-thread call on local disks, one tile otherwise); both iterators hand out single
    tiles, call ``progress(done, total)`` per tile (once
    ``(0, 0)`` at the end of a stream without tiles), and keep grid order when ``ordered``.
    """

    def __init__(
        self,
        make: Callable[[TaskGroup | None], Prefetch[TileWork, TileBatch]],
        owner: Callable[[], Awaitable[TaskGroup]],
        *,
        grid: tuple[int, ...],
        total: int,
        progress: ProgressCallback | None = None,
        tiles_per_call: int = 1,
        max_bytes: int | None = None,
        reuse: ChunkReuse | None = None,
        pool: TilePool | None = None,
        level_shape: tuple[int, ...] | None = None,
        axes: tuple[str, ...] | None = None,
        level: int = 0,
        calibration: LevelCalibration | None = None,
        overlap: tuple[int, ...] | None = None,
        tile_shape: tuple[int | None, ...] | None = None,
        source: object = None,
    ) -> None:
        self._make = make
        self._owner = owner
        self._progress = progress
        self._used = False
        self._cm: Prefetch[TileWork, TileBatch] | None = None
        #: tiles per axis, and how many tiles the stream yields
        self.grid = grid
        self.total = total
        #: tiles read per worker-thread call (> 1 on local stores with small tiles)
        self.tiles_per_call = tiles_per_call
        #: the decoded chunks kept for later tiles (``Limits.cache_bytes``; ``held_bytes``,
        #: ``peak_bytes``, ``hits``), or ``None``: each tile's chunks are read for it alone
        self.chunk_cache = reuse
        #: the big tile arrays the stream recycles once its consumer dropped them
        #: (``Limits.reuse_tile_arrays``; ``made``, ``reused``), or ``None``: fresh ones
        self.array_pool = pool
        #: the decoded bytes the stream holds ahead of its consumer (``Limits.prefetch_bytes``);
        #: ``stream()`` bounds the tiles it holds by it too
        self.max_bytes = max_bytes
        #: the shape of the level the tiles are of (their regions are in its pixels)
        self.level_shape = level_shape
        #: the axis names of that level (``stream`` maps the tiles onto an ``out`` by them),
        #: and its index
        self.axes = axes
        self.level = level
        #: that level's calibration (its pixel size: ``stream`` writes to the level of ``out``
        #: of the same pixel size)
        self.calibration = calibration
        #: the halo per axis (``tiles(overlap=)``) and the tiles' shape (``None``: the whole
        #: extent), as asked: ``stream(..., stitch=)`` matches labels over the halos
        self.overlap = overlap
        self.tile_shape = tile_shape
        #: the dataset read (``stream`` refuses writing a halo'd stream into it)
        self.source = source

    def __len__(self) -> int:
        return self.total

    def _claim(self) -> None:
        if self._used:
            raise RuntimeError("a tile stream can be iterated once; call ds.tiles() again")
        self._used = True

    def __aiter__(self) -> TileIterator:
        self._claim()
        batches = _OwnedBatches(self._make, self._owner, self.chunk_cache, self.array_pool)
        return TileIterator(batches, self._progress, self.total)

    async def __aenter__(self) -> TileIterator:
        self._claim()
        self._cm = self._make(None)
        batches = await self._cm.__aenter__()
        return TileIterator(batches, self._progress, self.total)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        assert self._cm is not None
        cm, self._cm = self._cm, None
        try:
            return await cm.__aexit__(exc_type, exc_val, exc_tb)
        finally:
            if self.chunk_cache is not None:  # the chunks kept for tiles that will not come
                self.chunk_cache.clear()
            if self.array_pool is not None:  # the arrays kept for tiles that will not come
                self.array_pool.close()


class _Batches(Protocol):
    def __anext__(self) -> Awaitable[TileBatch]: ...

    async def aclose(self) -> None: ...


class TileIterator:
    """Hands out the tiles of prefetched batches one at a time (what ``ds.tiles()`` iterates)."""

    def __init__(self, batches: _Batches, progress: ProgressCallback | None, total: int) -> None:
        self._batches = batches
        self._progress = progress
        self._total = total
        self._pending: deque[Tile] = deque()
        self._error: Exception | None = None
        self._finished = False
        #: tiles handed out so far
        self.done = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Tile:
        while not self._pending:
            if self._finished:
                raise StopAsyncIteration
            if self._error is not None:
                error, self._error = self._error, None
                self._finished = True
                await self._batches.aclose()
                raise error
            try:
                batch = await self._batches.__anext__()
            except anyio.get_cancelled_exc_class():
                raise  # nothing was taken: the next call goes on (a per-tile timeout)
            except StopAsyncIteration:
                self._finished = True
                if self.done == 0 and self._progress is not None:  # no tile (an empty
                    # selection): told once, so that a bar ends at 0/0, not at 0/?
                    report(self._progress, 0, self._total)
                raise
            except BaseException:
                self._finished = True
                raise
            self._pending.extend(batch.tiles)
            self._error = batch.error
        tile = self._pending.popleft()
        self._handed(1)
        return tile

    def _handed(self, n: int) -> None:
        for _ in range(n):
            self.done += 1
            if self._progress is not None:
                report(self._progress, self.done, self._total)

    def ready(self, count: bool = True) -> list[Tile]:
        """Hand out, without waiting, the tiles already read with the last one (the rest of its
        batch; the sync shim takes them in the same call, one thread hop for several).

        ``count=False``: progress is not told yet; call :meth:`handed` as each reaches the
        consumer (the sync shim holds them until its consumer asks for them).
        """
        tiles = list(self._pending)
        self._pending.clear()
        if count:
            self._handed(len(tiles))
        return tiles

    def handed(self) -> None:
        """One tile taken with ``ready(count=False)`` reached the consumer (progress)."""
        self._handed(1)

    async def aclose(self) -> None:
        """Stop the background fetches now (``break`` alone stops them when dropped)."""
        self._finished = True
        self._pending.clear()
        await self._batches.aclose()


def report(progress: ProgressCallback, done: int, total: int | None) -> None:
    """``progress(done, total)``; a coroutine it returns (a lambda calling an async function)
    is closed and refused: it is called, never awaited."""
    got: object = progress(done, total)
    if inspect.iscoroutine(got):
        got.close()
        raise TypeError(
            f"progress returned a coroutine ({progress!r}); it is called, never awaited: "
            "give a plain function progress(done, total)"
        )


class _OwnedBatches:
    """Bare ``async for``: starts the prefetch in the dataset's task group on first use."""

    def __init__(
        self,
        make: Callable[[TaskGroup | None], Prefetch[TileWork, TileBatch]],
        owner: Callable[[], Awaitable[TaskGroup]],
        reuse: ChunkReuse | None = None,
        pool: TilePool | None = None,
    ) -> None:
        self._make = make
        self._owner = owner
        self._reuse = reuse
        self._pool = pool
        self._it: PrefetchIterator[TileBatch] | None = None
        self._closed = False
        self._starting: anyio.Event | None = None  # set once the prefetch has started

    async def __anext__(self) -> TileBatch:
        while self._it is None:
            if self._closed:
                raise StopAsyncIteration
            if self._starting is not None:  # another task is starting it: wait, then share
                await self._starting.wait()
                continue  # started, or that start failed or was cancelled: try again
            starting = self._starting = anyio.Event()
            try:
                self._it = self._make(await self._owner()).__aiter__()
            finally:
                self._starting = None
                starting.set()
        try:
            return await self._it.__anext__()
        except StopAsyncIteration:
            if self._pool is not None:  # the stream ended: its arrays go
                self._pool.close()
            raise
        except ClosedError as exc:  # the owner stopped: the dataset was closed
            raise ClosedError("the dataset was closed while its tiles were iterated") from exc

    async def aclose(self) -> None:
        self._closed = True
        try:
            if self._it is not None:
                await self._it.aclose()
        finally:
            if self._reuse is not None:  # the chunks kept for tiles that will not come
                self._reuse.clear()
            if self._pool is not None:
                self._pool.close()


class TileOwner:
    """The task group running the bare ``async for`` tile streams of one dataset.

    Started on first use in a detached task; stopped by :meth:`aclose` (the dataset closing)
    or when the dataset is garbage-collected: the task holds no reference to the dataset, so
    dropping an unclosed dataset ends it instead of leaving it until the event loop ends.
    """

    def __init__(self) -> None:
        self._tg: TaskGroup | None = None
        self._ready: anyio.Event | None = None
        self._stop: anyio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None

    async def task_group(self, holder: object) -> TaskGroup:
        """The task group (started now if needed); it stops when ``holder`` is collected."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is not None and (task.done() or task.get_loop() is not loop):
            self._reset()  # the loop that ran it ended (asyncio.run twice): start afresh here
        if self._tg is not None:
            return self._tg
        if self._ready is None:
            ready = self._ready = anyio.Event()
            stop = self._stop = anyio.Event()
            self._task = loop.create_task(self._serve(ready, stop))
            self._finalizer = weakref.finalize(holder, _set_soon, loop, stop)
            self._finalizer.atexit = False
        await self._ready.wait()
        assert self._tg is not None
        return self._tg

    async def _serve(self, ready: anyio.Event, stop: anyio.Event) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                ready.set()
                await stop.wait()
                tg.cancel_scope.cancel()
        finally:  # also when its loop ends and cancels it
            self._tg = None

    def _reset(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
        self._tg = self._ready = self._stop = self._task = self._finalizer = None

    async def aclose(self) -> None:
        """Cancel what runs in the task group and wait until it has stopped (idempotent)."""
        task = self._task
        if task is not None and (task.done() or task.get_loop() is not asyncio.get_running_loop()):
            self._reset()  # ended with the loop that ran it: nothing to wait for
            return
        if self._finalizer is not None:
            self._finalizer.detach()
        if self._stop is not None:
            self._stop.set()
        if task is not None:
            with anyio.CancelScope(shield=True):
                await task


def _set_soon(loop: asyncio.AbstractEventLoop, event: anyio.Event) -> None:
    """Set ``event`` on ``loop`` from any thread (a finalizer may run anywhere, mid-code)."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: its tasks are gone already
        loop.call_soon_threadsafe(event.set)
