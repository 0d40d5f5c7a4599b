"""``stream``: tiles (or ROIs) -> a function in worker threads -> collected or written, within
bounds."""

from __future__ import annotations

import contextlib
import inspect
import numbers
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import anyio
import numpy as np

from .._prefetch import SETTLE_SECONDS, Unsettled, single_leaf, start_deferred, to_the_end
from .._workers import Workers
from ..engine.plan import region_shape
from ._rois import MaskedImage, RoiRead, RoiStream
from ._tiles import Tile, TileStream
from ._write import LevelWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from anyio.streams.memory import MemoryObjectReceiveStream
    from numpy.typing import NDArray

    from ._dataset import Dataset

__all__ = ["Stream", "TileWriter", "stream", "stream_sync"]

R = TypeVar("R")
Item = Tile | RoiRead  # what a stream yields with its result


class TileWriter(Protocol):
    """Where ``stream(..., out=...)`` writes: anything with ``async write(tile)``."""

    async def write(self, tile: Tile) -> None: ...


class Stream(Generic[R]):
    """What :func:`stream` returns.

    - ``await stream(tiles, func)``: run to the end; the results in completion order (a list),
      or ``None`` with ``out=``, after every result was written.
    - ``async with stream(tiles, func) as results: async for tile, value in results``: consume
      the results as they come; leaving the block cancels what is in flight. An error of
      ``func`` (or of reading the tiles) stops the rest and is raised by the next result asked
      for: the consumer's own work on the one it holds (its write) is not interrupted.
    """

    def __init__(
        self,
        tiles: TileStream | RoiStream,
        func: Callable[[NDArray[Any]], R],
        *,
        out: TileWriter | Dataset | MaskedImage | None,
        threads: int,
        window: int,
    ) -> None:
        threads, window = _positive("threads", threads), _positive("window", window)
        if not isinstance(tiles, (TileStream, RoiStream)):  # the blocking API's, or else
            raise TypeError(
                f"stream() takes the tiles or ROIs of a dataset opened with open_async "
                f"(ds.tiles(...), ds.read_rois(...), m.stream()), got {type(tiles).__name__}; "
                "with the blocking API, stream_sync(ds.read_rois(...), func), or map func over "
                "`for tile in ds.tiles()` (a thread pool's map runs it in threads)"
            )
        if not callable(func):
            raise TypeError(f"func must be a callable func(tile.data) -> result, got {func!r}")
        if inspect.iscoroutinefunction(func):
            raise TypeError(_ASYNC_FUNC.format(func))
        if isinstance(tiles, RoiStream):
            _check_roi_out(tiles, out)
        elif out is not None:
            _check_out(out)
            _check_fits(tiles, out)
        self._tiles = tiles
        self._func = func
        self._out = out
        self._threads = threads
        self._window = window
        self._cm: Any = None
        # set by a failing func (in its thread) and when the pipeline stops: a worker thread
        # taking a queued call itself, before the event loop has seen the failure and dropped
        # the queue, starts no func then
        self._stopped = threading.Event()

    def _call(self, data: NDArray[Any]) -> R:
        """``func(data)``, in a worker thread."""
        if self._stopped.is_set():
            raise _Stopped
        try:
            value = self._func(data)
            if inspect.iscoroutine(value):  # e.g. a lambda calling an async function
                value.close()
                raise TypeError(_ASYNC_FUNC.format(self._func))
        except BaseException:
            self._stopped.set()
            raise
        return value

    def __await__(self) -> Generator[Any, None, list[tuple[Any, R]] | None]:
        return self._run().__await__()

    async def _run(self) -> list[tuple[Any, R]] | None:
        collected: list[tuple[Any, R]] = []
        out: Any = self._out  # a tile writer for tiles, a dataset / masked image for ROIs
        async with self as results:
            async for item, value in results:
                if out is None:
                    collected.append((item, value))
                elif isinstance(item, RoiRead):
                    # a write under way is finished when the caller is cancelled (bounded):
                    # never half a ROI written (another item's error waits for the next one)
                    what = f"stream(): the write of the result of {_roi_name(item)}"
                    rois = self._tiles
                    assert isinstance(rois, RoiStream)
                    await to_the_end(_write_roi, out, item, value, rois, what=what)
                else:
                    await _write_tile(out, item, value)
        return None if self._out is not None else collected

    async def __aenter__(self) -> AsyncIterator[tuple[Any, R]]:
        self._cm = self._pipeline()
        result: AsyncIterator[tuple[Any, R]] = await self._cm.__aenter__()
        return result

    async def __aexit__(self, *exc: object) -> bool | None:
        cm, self._cm = self._cm, None
        result: bool | None = await cm.__aexit__(*exc)
        return result

    @asynccontextmanager
    async def _pipeline(self) -> AsyncIterator[_Results[tuple[Any, R]]]:
        # unbuffered: a result is handed over when the consumer takes it, and only then frees
        # its tile's place (and bytes) in the window
        send, recv = anyio.create_memory_object_stream[tuple[Any, R]](0)
        workers = Workers(self._threads)
        src = self._tiles
        limit = src._image.limits.prefetch_bytes if isinstance(src, RoiStream) else src.max_bytes
        held = _Held(self._window, limit)
        failures: list[Exception] = []  # the first error of ``func`` wins; the rest is cancelled
        # the producer's and the funcs': an error stops them, not the consumer (it gets the
        # error at its next result, its work on the one it holds not cut short)
        stop = anyio.CancelScope()

        def fail(exc: Exception) -> None:
            failures.append(exc)
            self._stopped.set()
            stop.cancel()

        async def one(tile: Item) -> None:
            try:
                # cloned here, not by the producer: a task cancelled before its first step
                # (``asyncio.run`` ending) leaves no clone unclosed
                async with send.clone() as out:
                    value = await workers.run(self._call, tile.data)
                    # a consumer gone (its error, a break) takes no more: not this tile's error
                    with contextlib.suppress(anyio.BrokenResourceError):
                        await out.send((tile, value))
            except _Stopped:
                pass  # not run: another func failed (its error is on its way) or the end came
            except Exception as exc:  # noqa: BLE001 - re-raised plainly at the boundary
                if not failures:
                    exc.add_note(f"stream(): func failed on {_item_name(tile)}")
                fail(exc)
            finally:
                held.release(tile.data.nbytes)

        async def produce() -> None:
            with stop:
                async with send, self._tiles as tiles, anyio.create_task_group() as workers:
                    while True:
                        await held.wait_for_room()  # before taking a tile from the iterator
                        try:
                            tile = await tiles.__anext__()
                        except StopAsyncIteration:
                            return
                        except Exception as exc:  # noqa: BLE001 - a read failed: as func's error
                            fail(exc)
                            return
                        held.take(tile.data.nbytes)
                        start_deferred(workers, one, tile)

        leaf: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                start_deferred(tg, produce)
                try:
                    async with recv:
                        yield _Results(recv, failures)
                finally:
                    self._stopped.set()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            leaf = single_leaf(group)
            if leaf is None:
                raise
        finally:
            send.close()  # the producer's own, if its task was cancelled before its first step
        if failures:
            if isinstance(leaf, Unsettled):  # a write under way outlived its grace
                failures[0].add_note(str(leaf))
            raise failures[0]
        if leaf is not None:
            raise leaf


class _Results(AsyncIterator[R]):
    """A stream's results for its consumer: once ``func`` (or the tile iterator) has failed,
    the next one asked for raises that error."""

    def __init__(self, recv: MemoryObjectReceiveStream[R], failures: list[Exception]) -> None:
        self._recv, self._failures = recv, failures

    async def __anext__(self) -> R:
        if not self._failures:
            try:
                return await self._recv.receive()
            except anyio.EndOfStream:
                if not self._failures:
                    raise StopAsyncIteration from None
        raise self._failures[0]


class _Stopped(Exception):
    """A queued ``func`` call not started: the stream is stopping."""


class _Held:
    """The tiles ``stream()`` holds (taken from the iterator, not yet handed to the consumer):
    at most ``window``, and within ``max_bytes`` of tile data (one tile at least)."""

    def __init__(self, window: int, max_bytes: int | None) -> None:
        self.window, self.max_bytes = window, max_bytes
        self.tiles = self.nbytes = 0
        self._freed = anyio.Event()

    def _room(self) -> bool:
        if self.tiles >= self.window:
            return False
        # the next tile's size is not known before it is taken: room while under the bound
        return self.tiles == 0 or self.max_bytes is None or self.nbytes < self.max_bytes

    async def wait_for_room(self) -> None:
        while not self._room():
            self._freed = anyio.Event()
            await self._freed.wait()

    def take(self, nbytes: int) -> None:
        self.tiles += 1
        self.nbytes += nbytes

    def release(self, nbytes: int) -> None:
        self.tiles -= 1
        self.nbytes -= nbytes
        self._freed.set()


_ASYNC_FUNC = (
    "stream() runs func in worker threads: it must be a plain function, got {!r} (an async "
    "function; iterate ds.tiles() and await it in the loop instead)"
)


def _check_out(out: object) -> None:
    """Refuse an ``out`` that is no tile writer at the call, before any tile is read."""
    if callable(getattr(out, "writer", None)) and callable(getattr(out, "tiles", None)):
        # a dataset: its own write(data, ...) would take each tile as its data
        raise TypeError(
            "stream(..., out=...) takes a tile writer, not the dataset itself: "
            "`async with dst.writer() as w: await stream(tiles, func, out=w)`"
        )
    if not callable(getattr(out, "write", None)):
        raise TypeError(
            "stream(..., out=...) takes a tile writer, an object with `async write(tile)` "
            f"(a dataset's `async with dst.writer() as w`, entered), got {out!r}"
        )


def _check_fits(tiles: TileStream, out: object) -> None:
    """Refuse, at the call, a level writer whose level the tiles' regions do not fit in (the
    tiles of another level: its first tiles were written, wrongly placed, before one failed)."""
    have = tiles.level_shape
    if not isinstance(out, LevelWriter) or have is None or len(have) != out.level.ndim:
        return  # (other axes: the writer refuses the first tile, naming them)
    level = out.level
    if any(t > o for t, o in zip(have, level.shape, strict=True)):
        raise ValueError(
            f"stream(tiles, ..., out=...): the tiles are of a level of shape {have} and each "
            f"is written at its region, but out writes level {level.path!r} of shape "
            f"{level.shape}: they would land outside it (the tiles of another level? stream "
            "the tiles of the level written)"
        )


def _check_roi_out(rois: RoiStream, out: object) -> None:
    """Refuse, at the call, an ``out`` a ROI stream cannot write to."""
    if out is None:
        return
    if rois._planes:
        raise TypeError(
            "stream(rois, ..., out=...) writes each ROI's box: a stream of planes "
            "(planes=...) takes no out=; consume the results and write them yourself"
        )
    if not isinstance(out, MaskedImage) and not callable(getattr(out, "write_roi", None)):
        raise TypeError(
            "stream(rois, ..., out=...) takes a dataset (each result written at its ROI, "
            "ds.write_roi) or a masked image (written only where each ROI's object is, "
            f"m.write), got {out!r}"
        )


def _item_name(item: Item) -> str:
    return _roi_name(item) if isinstance(item, RoiRead) else _tile_name(item)


def _tile_name(tile: Tile) -> str:
    core = "" if tile.core == tile.region else f" (core {_where(tile.core)})"
    return f"the tile at {_where(tile.region)} of shape {tile.shape}{core}"


async def _write_tile(out: Any, tile: Tile, value: Any) -> None:
    """Write ``value``, ``func``'s result for ``tile``, to the tile writer ``out`` (its errors
    name the tile): a level writer's writes run to their end by themselves, another writer's
    ``write`` (maybe the I/O itself) is run to its end here."""
    result = _result_tile(tile, value)
    try:
        if isinstance(out, LevelWriter):
            await out.write(result)
        else:
            what = f"stream(): the write of the result of {_tile_name(tile)}"
            await to_the_end(out.write, result, what=what)
    except Exception as exc:
        if not any(exc is f for f in getattr(out, "_failures", ())):  # (not an earlier write's)
            exc.add_note(f"stream(): writing the result of {_tile_name(tile)}")
        raise


def _roi_name(r: RoiRead) -> str:
    sel = ", ".join(f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s) for s in r.region)
    return f"ROI {r.roi.name!r} (region [{sel}])"


async def _write_roi(out: Any, r: RoiRead, value: Any, rois: RoiStream) -> None:
    """Write ``value``, ``func``'s result for ROI read ``r``, to ``out`` (errors name the ROI):
    to the image read, the same selection (``c=...``); to another one (a label image), the
    ROI's box at the same level."""
    if value is None:
        raise TypeError(f"stream(..., out=...): func returned None for {_roi_name(r)}")
    try:
        if isinstance(out, MaskedImage):
            if r.roi.label is None:
                raise ValueError("it has no label value; out=<masked image> takes masked ROIs")
            if out.image is rois._image and out.label_image is rois._label and r.labels is not None:
                await out.write_read(r, value)  # its box and labels as read: not read again
            else:
                await out.write(int(r.roi.label), value)
        elif out is rois._image:
            await out.write_roi(r.roi, value, rois._level, **rois._axes)
        else:
            await out.write_roi(r.roi, value, rois._level)
    except Exception as exc:
        exc.add_note(f"stream(): writing the result of {_roi_name(r)}")
        raise


def _positive(name: str, value: object) -> int:
    """``value`` as an int (numpy integers too), or a ``ValueError`` naming ``name``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _result_tile(tile: Tile, value: Any) -> Tile:
    """The tile to write for ``value``: the core of a halo'd result, or the value as is; a
    scalar (or another shape that broadcasts to the core) is broadcast, as writes do."""
    if value is None:
        raise TypeError(_NO_RESULT.format(_where(tile.core)))
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > len(tile.shape):
        extra = len(shape) - len(tile.shape)
        if all(n == 1 for n in shape[:extra]):  # dropped, as numpy assignment (and write) does
            value = np.reshape(value, tuple(shape)[extra:])
            shape = value.shape
    if shape is not None and tile.core != tile.region and _unsqueezes(tuple(shape), tile.shape):
        # the halo'd tile's result, maybe without its unit axes (``f(a[0])`` on plane tiles)
        value = np.reshape(value, tile.shape)
        cropped = Tile(value, tile.region, tile.index, tile.core, tile.level).core_data
        return Tile(cropped, tile.core, tile.index, tile.core, tile.level)
    core = region_shape(tile.core)
    if shape is None or tuple(shape) != core:
        value = np.asarray(value)
        try:
            value = np.broadcast_to(value, core)
        except ValueError:
            if value.ndim == len(core):  # the writer says which shapes differ
                return Tile(value, tile.core, tile.index, tile.core, tile.level)
            raise ValueError(
                f"stream(..., out=...): func returned shape {value.shape} for the tile at "
                f"{_where(tile.region)} of shape {tile.shape} (core {_where(tile.core)}, shape "
                f"{core}); it must return the tile's shape, its core's (unit axes may be left "
                "out), or a value that broadcasts to the core"
            ) from None
    return Tile(value, tile.core, tile.index, tile.core, tile.level)


def _unsqueezes(shape: tuple[int, ...], full: tuple[int, ...]) -> bool:
    """Whether ``shape`` is ``full`` with (some of) its leading unit axes left out."""
    lead = len(full) - len(shape)
    return lead >= 0 and shape == full[lead:] and all(n == 1 for n in full[:lead])


def _where(region: tuple[slice, ...]) -> str:
    return "[" + ", ".join(f"{r.start}:{r.stop}" for r in region) + "]"


_NO_RESULT = (
    "stream(..., out=...): func returned None for the tile at {}; it must return the tile's "
    "new data (an array of the tile's shape, or a value that broadcasts to it)"
)


def stream(
    tiles: TileStream | RoiStream,
    func: Callable[[NDArray[Any]], R],
    *,
    out: TileWriter | Dataset | MaskedImage | None = None,
    threads: int = 2,
    window: int = 16,
) -> Stream[R]:
    """Run ``func(tile.data)`` in worker threads over ``tiles`` (``ds.tiles(...)``).

    At most ``window`` tiles are being processed or waiting to be consumed, holding up to
    the dataset's ``Limits.prefetch_bytes`` of tile data (the last one taken may cross it), and
    ``threads`` run ``func`` at once; the tile iterator keeps its own prefetch bounds. Results
    come in completion order. ``out``: a writer (``async write(tile)``, e.g. a dataset writer) that
    receives each result as a tile of the same region (halos cropped to the core).

    ``tiles`` may be a ROI stream (``ds.read_rois(...)``, ``m.stream()``): ``func(r.data)``
    per ROI, ``(r, result)`` pairs; ``out``: a dataset (each result written at its ROI, as
    ``out.write_roi(r.roi, result, level)``) or a masked image (``out.write(label, result)``:
    only where the ROI's object is).

    Errors: the first is raised plainly, ``func``'s noting the tile or ROI it failed on. On an
    error or a cancellation no ``func`` and no write starts any more, and the writes under way
    are finished (within ``SETTLE_SECONDS``, 30 s: a hung store's write is then given up, and
    noted), so no tile or ROI is left half written.
    """
    return Stream(tiles, func, out=out, threads=threads, window=window)


def stream_sync(
    rois: Any,
    func: Callable[[NDArray[Any]], R],
    *,
    out: Any = None,
    threads: int = 2,
    window: int = 16,
) -> list[tuple[RoiRead, R]] | None:
    """The blocking twin of :func:`stream` over ROIs, run to the end: ``rois`` a blocking
    dataset's ``ds.read_rois(...)`` or masked image's ``m.stream()`` (not yet iterated);
    ``out``: a blocking dataset or masked image. Same bounds, results and errors. Interrupted
    (Ctrl-C), the write under way is finished (within ``SETTLE_SECONDS``) before
    ``KeyboardInterrupt`` is raised."""
    from .._sync_api import SyncDataset, SyncMaskedImage
    from ..sync import Runner, SyncIterator

    source = rois
    if isinstance(rois, SyncIterator):  # its ROI stream, kept beside it, not yet started
        keep = rois.keep if isinstance(rois.keep, tuple) else ()
        source = next((k for k in keep if isinstance(k, RoiStream)), rois)
    if not isinstance(source, RoiStream):
        raise TypeError(
            "stream_sync() takes the ROIs of a blocking dataset (ds.read_rois(...)) or masked "
            f"image (m.stream()), got {type(rois).__name__}; for tiles, map func over "
            "`for tile in ds.tiles()`"
        )
    if isinstance(out, SyncDataset):
        out = out.async_dataset
    elif isinstance(out, SyncMaskedImage):
        out = out._masked
    run = Stream(source, func, out=out, threads=threads, window=window)
    ended = threading.Event()

    async def whole() -> list[tuple[RoiRead, R]] | None:
        try:
            return await run._run()
        finally:
            ended.set()

    with Runner() as runner:  # (the loop kept while the write under way ends)
        try:
            return runner.call(whole)
        except KeyboardInterrupt:
            ended.wait(SETTLE_SECONDS)  # the stream is cancelled: its write under way ends
            raise
