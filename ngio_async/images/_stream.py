"""``stream``: tiles (or ROIs) -> a function in worker threads -> collected or written, within
bounds."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import numbers
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import anyio
import numpy as np

from .._prefetch import SETTLE_SECONDS, Unsettled, single_leaf, start_deferred, to_the_end
from .._workers import Workers
from ..engine.plan import region_shape
from ._rois import MaskedImage, RoiRead, RoiStream, read_roi, roi_region, roi_span
from ._stitch import Stitch, check_stitch
from ._tiles import Tile, TileStream
from ._upsample import Finer as _Finer
from ._world import axis_kind, is_world_axis, unit_factor
from ._write import LevelWriter

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream
    from numpy.typing import NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
    from ._cascade import Cascade
    from ._dataset import Dataset
    from ._metadata import LevelCalibration

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
        pyramid: bool | Method | None = None,
        masked: bool = False,
        unique_labels: int | None = None,
        stitch: bool | float | None = None,
    ) -> None:
        threads, window = _positive("threads", threads), _positive("window", window)
        if not isinstance(tiles, (TileStream, RoiStream)):  # the blocking API's, or else
            raise TypeError(
                f"stream() takes the tiles or ROIs of a dataset opened with open_async "
                f"(ds.tiles(...), ds.read_rois(...), m.stream()), got {type(tiles).__name__}; "
                "with the blocking API, stream_sync(ds.tiles(...) or ds.read_rois(...), func)"
            )
        if not callable(func):
            raise TypeError(f"func must be a callable func(tile.data) -> result, got {func!r}")
        if inspect.iscoroutinefunction(func):
            raise TypeError(_ASYNC_FUNC.format(func))
        self._axis_map: _AxisMap | None = None
        self._level = 0  # the level of ``out`` (its image's) written: of the items' pixel size
        if isinstance(tiles, RoiStream):
            self._level = _check_roi_out(tiles, out)
        elif out is not None:
            _check_out(out, pyramid)
            self._axis_map = _AxisMap.of(tiles, out)
            if _is_dataset(out):
                self._level = _tiles_level(tiles, cast("Dataset", out))
                _check_in_place(tiles, cast("Dataset", out), self._level)
            _check_fits(tiles, out, self._axis_map, self._level)
        _check_pyramid(tiles, out, pyramid)
        _check_finer(out, pyramid, self._level)
        _check_masked(tiles, masked)
        self._masked = bool(masked)
        self._unique = None if unique_labels is None else _positive("unique_labels", unique_labels)
        # tiles' labels joined across their seams (ngio's StitchConfig): the IoU threshold
        self._stitch = check_stitch(stitch, tiles, out, self._unique)
        #: ``stitch=``: what was joined (``mapping()``) and how many boxes were rewritten
        self.stitched: Stitch | None = None
        self._pyramid = pyramid
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

    def _call(self, item: Item) -> R:
        """``func(item.data)`` (``masked``: only the ROI's object), in a worker thread; its ids
        moved into the item's block (``unique_labels``)."""
        if self._stopped.is_set():
            raise _Stopped
        try:
            data = item.masked(0) if self._masked and isinstance(item, RoiRead) else item.data
            value = self._func(data)
            if inspect.iscoroutine(value):  # e.g. a lambda calling an async function
                value.close()
                raise TypeError(_ASYNC_FUNC.format(self._func))
            if self._unique is not None:
                value = self._shifted(item, value, self._unique)
        except BaseException:
            self._stopped.set()
            raise
        return value

    def _shifted(self, item: Item, value: Any, block: int) -> Any:
        """``value``'s non-zero ids moved into the item's block of ``block`` ids (ngio's
        ``UniqueLabelsTransform``): ``label * block`` for a ROI of a masking table (its
        object's label), ``k * block`` for the k-th ROI (its table order) or tile (grid order)."""
        if isinstance(item, RoiRead):
            k = item.roi.label if item.roi.label is not None else item.index
        else:
            assert isinstance(self._tiles, TileStream)
            k = int(np.ravel_multi_index(item.index, self._tiles.grid))
        arr = np.asarray(value)
        where = f"{_item_name(item)} (unique_labels={block})"
        if arr.dtype.kind not in "biu":
            raise TypeError(f"func returned {arr.dtype} values for {where}: label ids are ints")
        if not arr.size or k is None:
            return value
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= block:
            raise ValueError(
                f"func returned ids {low}..{high} for {where}: each one's ids must be in "
                f"0..{block - 1} (a larger block size, unique_labels=...)"
            )
        offset = int(k) * block
        return value if offset == 0 else np.where(arr > 0, arr.astype(np.int64) + offset, 0)

    def __await__(self) -> Generator[Any, None, list[tuple[Any, R]] | None]:
        return self._run().__await__()

    async def _run(self) -> list[tuple[Any, R]] | None:
        out: Any = self._out  # a tile writer for tiles, a dataset / masked image for ROIs
        if out is None:
            async with self as results:
                return [item async for item in results]
        if isinstance(self._tiles, RoiStream):
            async with self._tiles._held_label():  # (the writes read the label it opens)
                await self._write_rois(out, self._tiles)
        elif _is_dataset(out):  # its writer, the tiles' level (pyramid=: its cascade)
            await self._write_tiles_to(out)
        else:
            await self._write_tiles(out)
        return None

    async def _write_tiles_to(self, out: Dataset) -> None:
        """The tiles' results written to ``out``'s level of their pixel size, through its
        writer; ``pyramid``: the coarser levels built as they land, the finer ones
        upsampled from it at the end."""
        stitch = None if self._stitch is None else Stitch.of(self._stitch, self._tiles_stream)
        self.stitched = stitch
        if not self._pyramid:
            async with out.writer(self._level, pyramid=False) as writer:
                await self._write_tiles(writer, stitch=stitch)
            if stitch is not None:
                await stitch.finish(out, self._level, False)
            return
        cascade = _level_cascade(out, self._level, self._pyramid)
        finer = _Finer(out, self._level, cascade._method)  # (level 0: nothing finer)
        try:
            # (a cascade given as pyramid=: the writer feeds it, finishes it)
            async with out.writer(self._level, pyramid=cast("Any", cascade)) as writer:
                await self._write_tiles(writer, finer.regions, stitch)
            if stitch is not None:  # the ids joined rewritten, their boxes' levels following
                await stitch.finish(out, self._level, cascade._method)
        except BaseException as exc:
            await finer.settle(exc)
            raise
        finally:
            _follow_metadata(out, cascade)
        await finer.build()

    @property
    def _tiles_stream(self) -> TileStream:
        assert isinstance(self._tiles, TileStream)
        return self._tiles

    async def _write_tiles(
        self, out: Any, written: list[Region] | None = None, stitch: Stitch | None = None
    ) -> None:
        async with self as results:
            async for tile, value in results:
                if stitch is not None:
                    _stitch_add(stitch, tile, value, self._axis_map)
                await _write_tile(out, tile, value, self._axis_map, written)

    async def _write_rois(self, out: Any, rois: RoiStream) -> None:
        """Each result written at its ROI; with ``pyramid``, the lower levels built as they
        land (one cascade for the stream), and rebuilt over what landed if it fails."""
        target = out.image if isinstance(out, MaskedImage) else out
        index = self._level
        cascade = None if not self._pyramid else _level_cascade(target, index, self._pyramid)
        finer = (
            _Finer(target, index, cascade._method) if cascade is not None and index > 0 else None
        )
        level = target.levels[index]
        unsure: list[Region] = []
        try:
            async with self as results:
                async for ordered, result in results:
                    item, value = rois.natural(ordered, result)  # (axes_order undone)
                    # a write under way is finished when the caller is cancelled (bounded):
                    # never half a ROI written (another item's error waits for the next one)
                    what = f"stream(): the write of the result of {_roi_name(item)}"
                    landed = level.begun
                    try:
                        await to_the_end(
                            _write_roi,
                            out,
                            item,
                            value,
                            rois,
                            index,
                            cascade,
                            self._masked,
                            what=what,
                        )
                    except BaseException:
                        if cascade is not None and level.begun != landed:
                            unsure.append(_roi_region(out, item, rois, index))
                            if finer is not None:
                                finer.add(unsure[-1], self._written_mask(out, item, unsure[-1]))
                        raise
                    if finer is not None:
                        region = _roi_region(out, item, rois, index)
                        finer.add(region, self._written_mask(out, item, region))
        except BaseException as exc:
            if cascade is not None:  # the other levels follow what the level written got
                await cascade.settle(exc, unsure)
                _follow_metadata(target, cascade)
            if finer is not None:
                await finer.settle(exc)
            raise
        if cascade is not None:
            try:
                await cascade.finish()
            finally:
                _follow_metadata(target, cascade)
            if finer is not None:
                await finer.build()
            await target._follow_data_windows()

    def _written_mask(self, out: Any, item: RoiRead, region: Region) -> NDArray[np.bool_] | None:
        """Where a ROI's write changed its box (of ``region``): its object's pixels for a
        masked write (``None``: all of it, or not known)."""
        if not (self._masked or isinstance(out, MaskedImage)) or item.labels is None:
            return None
        mask = item.mask
        shape = region_shape(region)
        return mask.reshape(shape) if mask.size == math.prod(shape) else None

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
                    value = await workers.run(self._call, tile)
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


def _is_dataset(out: object) -> bool:
    from ._dataset import Dataset  # (imports this module)

    return isinstance(out, Dataset)


def _check_out(out: object, pyramid: object) -> None:
    """Refuse an ``out`` that is no tile writer (nor a dataset) at the call, before any tile
    is read."""
    if _is_dataset(out):
        out._check_writable()  # type: ignore[attr-defined]  # (at the call: nothing read)
        return  # written through its own writer (of the tiles' level)
    if callable(getattr(out, "writer", None)) and callable(getattr(out, "tiles", None)):
        raise TypeError(  # a blocking dataset: its write(data) would take each tile as data
            f"stream(..., out=...) writes to a dataset opened with open_async, got {out!r}"
        )
    if pyramid is not None and pyramid is not False:
        raise TypeError(
            "stream(tiles, ..., out=<writer>) writes through the writer: give pyramid= to it "
            "(`async with dst.writer(pyramid=True) as w`), or out=<the dataset>, pyramid=..."
        )
    if not callable(getattr(out, "write", None)):
        raise TypeError(
            "stream(..., out=...) takes a tile writer, an object with `async write(tile)` "
            f"(a dataset's `async with dst.writer() as w`, entered), got {out!r}"
        )


def _check_fits(tiles: TileStream, out: Any, axis_map: _AxisMap | None, index: int) -> None:
    """Refuse, at the call, a level writer (or ``out``'s level ``index``) whose level the
    tiles' regions do not fit in (the tiles of another level: its first tiles were written,
    wrongly placed, before one failed)."""
    have = tiles.level_shape
    if have is not None and axis_map is not None:
        have = axis_map.shape(have)
    if _is_dataset(out):
        level = out.levels[index]
    elif isinstance(out, LevelWriter):
        level = out.level
    else:
        return
    if have is None or len(have) != level.ndim:
        return  # (other axes: the writer refuses the first tile, naming them)
    if any(t > o for t, o in zip(have, level.shape, strict=True)):
        raise ValueError(
            f"stream(tiles, ..., out=...): the tiles are of a level of shape {have} and each "
            f"is written at its region, but out writes level {level.path!r} of shape "
            f"{level.shape}: they would land outside it (the tiles of another level? stream "
            "the tiles of the level written)"
        )


@dataclass(frozen=True)
class _AxisMap:
    """Tiles of axes ``src`` onto a level of axes ``dst``, by name: each ``dst`` axis taken
    from the tiles (in ``dst``'s order), the tiles' other axes (``drop``: length 1 in every
    tile) left out; ``func``'s result the same way."""

    src: tuple[str, ...]
    dst: tuple[str, ...]
    keep: tuple[int, ...]  # the tiles' axis of each ``dst`` axis
    drop: tuple[int, ...]

    @classmethod
    def of(cls, tiles: TileStream, out: Any) -> _AxisMap | None:
        """The map for ``out`` (``None``: same axes, or a writer of unknown axes), or a
        ``ValueError`` naming the axes the tiles lack, or dropped axes the tiles span."""
        if not isinstance(out, LevelWriter) and not _is_dataset(out):
            return None  # a writer of its own: the tiles as they are
        dst, src = out.axes, tiles.axes
        if src is None or dst is None:
            return None
        src, dst = tuple(src), tuple(dst)
        if len(src) == len(dst):
            return None  # by position, as before (one image's tiles into another's level)
        missing = [a for a in dst if a not in src]
        if missing:
            raise ValueError(
                f"stream(tiles, ..., out=...): the tiles have axes {src}, the image written "
                f"{dst}: axis {_names(missing)} of the image written is not an axis of the tiles"
            )
        drop = tuple(i for i, a in enumerate(src) if a not in dst)
        several = [src[i] for i in drop if tiles.grid[i] > 1]
        if several:
            raise ValueError(
                f"stream(tiles, ..., out=...): the tiles have axes {src}, the image written "
                f"{dst}: axis {_names(several)} is dropped, but the tiles cover several "
                f"positions along it (their results would overwrite each other); select one "
                f"(ds.tiles({several[0]}=...))"
            )
        return cls(src, dst, tuple(src.index(a) for a in dst), drop)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in self.keep)

    def tile(self, t: Tile) -> Tile:
        """``t`` (a result tile: region and core equal) on the ``dst`` axes."""
        long = [self.src[i] for i in self.drop if t.core[i].stop - t.core[i].start != 1]
        wide = [self.src[i] for i in self.drop if t.data.shape[i] != 1]
        if long or wide:
            raise ValueError(
                f"stream(tiles, ..., out=...): axis {_names(long or wide)} of the tiles is not "
                f"an axis of the image written {self.dst}: it can be left out only where it "
                f"has length 1 (the {'tile' if long else 'result'} has shape {t.data.shape} "
                f"on axes {self.src})"
            )
        data = np.squeeze(t.data, axis=self.drop)
        rest = [i for i in range(len(self.src)) if i not in self.drop]
        data = np.transpose(data, [rest.index(i) for i in self.keep])

        def pick(seq: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(seq[i] for i in self.keep)

        return Tile(data, pick(t.region), pick(t.index), pick(t.core), t.level)


def _names(axes: list[str]) -> str:
    return ", ".join(repr(a) for a in axes)


def _check_pyramid(tiles: TileStream | RoiStream, out: Any, pyramid: object) -> None:
    """Refuse, at the call, a ``pyramid=`` the stream cannot honour."""
    if pyramid is None or pyramid is False:
        return
    if pyramid is not True and pyramid not in ("mean", "nearest", "mode", "ngio"):
        raise ValueError(
            f"pyramid must be True or one of mean, nearest, mode, ngio; got {pyramid!r}"
        )
    if out is None:
        raise TypeError("stream(..., pyramid=...) builds the lower levels of out=: give out=")
    target = out.image if isinstance(out, MaskedImage) else out
    from ._pyramid import _is_label

    if pyramid == "ngio" and not _is_label(target) and _is_dataset(target):
        from ._pyramid import _NGIO_IMAGE

        raise ValueError("stream(): " + _NGIO_IMAGE.format(what="pyramid", url=target.url))
    if pyramid == "mean" and _is_label(target):
        raise ValueError(
            f"stream(..., pyramid='mean') would average label ids of {target.url} (1 and 9 "
            "give 5); label images downsample with 'mode' (pyramid=True) or 'nearest'"
        )


def _check_finer(out: Any, pyramid: object, index: int) -> None:
    """Refuse, at the call, ``pyramid=`` writing level ``index`` > 0 of an image that is no
    label image: its finer levels would be replaced by pixels upsampled from the coarser
    one (label images are, as ngio's ``consolidate`` does; an image's finer levels hold
    pixels no upsampling gives back)."""
    if pyramid is None or pyramid is False or index == 0 or out is None:
        return
    target = out.image if isinstance(out, MaskedImage) else out
    if not _is_dataset(target):  # a writer: its own level and pyramid rules
        return
    from ._upsample import refuse_upsampling

    refuse_upsampling(
        target,
        index,
        f"stream(..., pyramid={pyramid!r}) writing the items' pixel size",
        "give pyramid=False to write that level alone, or write into an image whose level 0 "
        "has the items' pixel size",
    )


def _check_masked(tiles: TileStream | RoiStream, masked: object) -> None:
    if masked and (not isinstance(tiles, RoiStream) or tiles._label is None):
        raise ValueError(
            "stream(..., masked=True) hands func each ROI's pixels inside its object alone "
            "(r.masked(), 0 elsewhere): stream ROIs read with their labels, "
            "ds.read_rois(..., label=lab) or m.stream()"
        )


def _level_cascade(target: Dataset, index: int, pyramid: bool | Method) -> Cascade:
    """The one cascade of a stream writing level ``index`` of ``target`` with ``pyramid``:
    the levels below it built from it (a view of ``target`` whose levels start there)."""
    if index == 0:
        cascade = target._cascade(0, pyramid)
        assert cascade is not None
        return cascade
    from ._cascade import Cascade

    target._check_first_multiscale("pyramid=")
    target.structure_lock()  # (made now: the view shares it)
    view = copy.copy(target)
    view.levels = target.levels[index:]
    return Cascade(view, None if pyramid is True else cast("Method", pyramid))


def _follow_metadata(target: Dataset, cascade: Cascade) -> None:
    """``target``'s metadata as its view's (a cascade's end may record its method)."""
    view = cascade._ds
    if view is not target:
        target.metadata = view.metadata


def _roi_region(out: Any, r: RoiRead, rois: RoiStream, index: int) -> Region:
    """The region of ``out``'s level ``index`` a ROI's write covers (its box, step-1
    slices)."""
    if isinstance(out, MaskedImage):
        if out.image is not rois._image:
            return roi_span(out.image, out.level, r.roi, {})
        return tuple(
            slice(s, s + 1)
            if isinstance(s, int)
            else slice(min(s), max(s) + 1)
            if isinstance(s, list)
            else s
            for s in r.region
        )
    if out is rois._image:
        return roi_span(out, rois._level, r.roi, rois._axes)
    return roi_span(out, index, r.roi, _shared_axes(out, rois, index))


def _check_roi_out(rois: RoiStream, out: object) -> int:
    """Refuse, at the call, an ``out`` a ROI stream cannot write to; else the index of the
    level of ``out`` (its image's) written: of the ROIs' pixel size."""
    if out is None:
        return 0
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
    image = rois._image
    index = image._level_index(rois._level)
    target = out.image if isinstance(out, MaskedImage) else out
    if rois._halo and (target is image or getattr(target, "url", None) == image.url):
        raise ValueError(
            f"stream(rois, ..., out=<the image read>) with halo={rois._halo}: each ROI's grown "
            "read covers pixels the neighbour ROIs write, so the result would depend on the "
            "order they run in (ngio refuses it too); write into another image or label"
        )
    if out is image:
        return index
    if isinstance(out, MaskedImage):
        at = out.image._level_index(out.level)
        if out.image is image and at != index:  # (each ROI's box as read: of level ``index``)
            raise _no_level(_calibration(image, index), image, _ROIS, [at])
        _check_pixels(_calibration(image, index), out.image, at, _ROIS)
        return at
    cal = _calibration(image, index)
    sizes = _space_sizes(cal, image.axes, image.levels[index].shape)
    at = _matching_level(cal, cast("Dataset", out), _ROIS, index, sizes)
    _check_shared_axes(cast("Dataset", out), rois, at)
    return at


def _shared_axes(out: Dataset, rois: RoiStream, index: int) -> dict[str, Any]:
    """The ROIs' selection of other axes (``c="DAPI"``) on the axes of ``out`` (another image)
    longer than 1 at level ``index``: each result is written there alone, as read (it was
    broadcast over every channel of ``out``); axes of length 1, or that ``out`` lacks, take
    the result as it is."""
    sizes = dict(zip(out.axes, out.levels[index].shape, strict=True))
    return {a: sel for a, sel in rois._axes.items() if sizes.get(a, 1) > 1}


def _check_shared_axes(out: Dataset, rois: RoiStream, index: int) -> None:
    """Refuse, at the call, a selection of the ROIs (``c="DAPI"``) that ``out`` cannot take
    (no such channel): each result is written at it."""
    shared = _shared_axes(out, rois, index)
    if not shared:
        return
    try:
        out.region_of(index, **shared)
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ValueError(
            f"stream(rois, ..., out=...): the ROIs are read at {shared} and each result is "
            f"written there in {out.url} (of axes {tuple(out.axes)}), which has none: {exc}; "
            "nothing was written: read the ROIs at a selection out has, or write to an image "
            "without that axis"
        ) from None


_ROIS = "stream(rois, ..., out=...)", "ROIs"
_TILES = "stream(tiles, ..., out=...)", "tiles"
_RTOL = 1e-5  # pixel sizes equal within this relative difference


def _calibration(image: Dataset, index: int) -> LevelCalibration:
    cal: LevelCalibration = image.metadata.spatial_calibration[index]
    return cal


def _pixels(cal: LevelCalibration) -> dict[str, tuple[float, str | None]]:
    """The pixel size of a level per space axis (by name) and its unit."""
    return {
        a.name: (abs(a.scale), a.unit)
        for a in cal.axes
        if is_world_axis(a) and axis_kind(a) == "length"
    }


def _same_pixels(
    mine: dict[str, tuple[float, str | None]], theirs: dict[str, tuple[float, str | None]]
) -> bool | None:
    """Whether two levels' pixels are the same size on every space axis both have (each in
    its own unit, converted when they differ); ``None``: they share no space axis."""
    shared = [n for n in mine if n in theirs]
    if not shared:
        return None
    for name in shared:
        (size, unit), (other, their_unit) = mine[name], theirs[name]
        if unit != their_unit:
            a, b = unit_factor(unit), unit_factor(their_unit)
            if a is not None and b is not None and a[0] == b[0]:
                other = other * b[1] / a[1]
        if not math.isclose(size, other, rel_tol=_RTOL):
            return False
    return True


def _matching_level(
    src: LevelCalibration,
    out: Dataset,
    what: tuple[str, str],
    index: int,
    sizes: dict[str, int],
) -> int:
    """The index of ``out``'s level of ``src``'s pixel size (``index`` first: of two of
    that size, the items' own level); none of that size: ``out``'s level ``index`` when it has
    the items' level's size (``sizes``, per space axis by name: an output made with another
    calibration, or none, as before pixel sizes were compared), else a ``ValueError`` naming
    both pixel sizes."""
    mine = _pixels(src)
    cals = out.metadata.spatial_calibration
    order = [index, *(i for i in range(len(cals)) if i != index)] if index < len(cals) else []
    order = order or list(range(len(cals)))
    found = [i for i in order if _same_pixels(mine, _pixels(cals[i]))]
    if found:
        return found[0]
    if index < len(cals) and (
        all(_same_pixels(mine, _pixels(c)) is None for c in cals)  # no space axis in common
        or _same_sizes(sizes, out, index)
    ):
        return index
    raise _no_level(src, out, what)


def _same_sizes(sizes: dict[str, int], out: Dataset, index: int) -> bool:
    """Whether ``out``'s level ``index`` has ``sizes`` on every space axis (by name) both
    have, and shares one at least."""
    level = dict(zip(out.axes, out.levels[index].shape, strict=True))
    shared = [name for name in sizes if name in level]
    return bool(shared) and all(level[name] == sizes[name] for name in shared)


def _space_sizes(
    cal: LevelCalibration, axes: Sequence[str] | None, shape: Sequence[int] | None
) -> dict[str, int]:
    """The sizes of a level's space axes (those :func:`_pixels` compares), by name."""
    if axes is None or shape is None:
        return {}
    space = _pixels(cal)
    return {a: n for a, n in zip(axes, shape, strict=True) if a in space}


def _check_pixels(src: LevelCalibration, out: Dataset, index: int, what: tuple[str, str]) -> None:
    """Refuse ``out``'s level ``index`` (a masked image's) unless of ``src``'s pixel size."""
    if _same_pixels(_pixels(src), _pixels(_calibration(out, index))) is False:
        raise _no_level(src, out, what, [index])


def _no_level(
    src: LevelCalibration, out: Dataset, what: tuple[str, str], only: list[int] | None = None
) -> ValueError:
    call, items = what
    mine = _pixels(src)
    names = list(mine)
    cals = out.metadata.spatial_calibration
    levels = "; ".join(
        f"{out.url}/{cals[i].path} of pixels {_sizes(_pixels(cals[i]), names)}"
        for i in (range(len(cals)) if only is None else only)
    )
    return ValueError(
        f"{call}: each result is written to the level of out of the pixel size the {items} "
        f"are read at, and out has none: its levels {levels} ({', '.join(names)}), the "
        f"{items} are of level {src.path!r} of pixels {_sizes(mine, names)}; nothing was "
        f"written: read the {items} at a level of one of those sizes, or give out a level "
        f"of theirs"
    )


def _sizes(pixels: dict[str, tuple[float, str | None]], names: list[str]) -> str:
    sizes = tuple(pixels[n][0] if n in pixels else None for n in names)
    units = {pixels[n][1] for n in names if n in pixels} - {None}
    return f"{sizes}" + (f" {units.pop()}" if len(units) == 1 else "")


def _check_in_place(tiles: TileStream, out: Dataset, index: int) -> None:
    """Refuse tiles with ``overlap=`` written into the level they are read from (ngio refuses
    in-place iteration with a halo): each tile's halo covers pixels its neighbours write, so
    the result would depend on the order they run in."""
    source = tiles.source
    if not any(tiles.overlap or ()) or source is None or index != tiles.level:
        return
    if source is out or getattr(source, "url", None) == out.url:
        raise ValueError(
            f"stream(ds.tiles(..., overlap={tiles.overlap}), ..., out=<the image read>): each "
            f"tile's halo covers pixels its neighbours write (level {index} of {out.url}), so "
            "the result would depend on the order they run in (ngio refuses it too); write "
            "into another image or label"
        )


def _tiles_level(tiles: TileStream, out: Dataset) -> int:
    """The index of the level of ``out`` the tiles are written to: of their pixel size."""
    if tiles.calibration is None:  # (not a dataset's tiles: the same level index)
        if tiles.level >= len(out.levels):
            raise ValueError(
                f"stream(tiles, ..., out=<dataset>) writes each tile to the level it was read "
                f"from ({tiles.level}); {out.url} has {len(out.levels)} levels"
            )
        return tiles.level
    sizes = _space_sizes(tiles.calibration, tiles.axes, tiles.level_shape)
    return _matching_level(tiles.calibration, out, _TILES, tiles.level, sizes)


def _item_name(item: Item) -> str:
    return _roi_name(item) if isinstance(item, RoiRead) else _tile_name(item)


def _tile_name(tile: Tile) -> str:
    core = "" if tile.core == tile.region else f" (core {_where(tile.core)})"
    return f"the tile at {_where(tile.region)} of shape {tile.shape}{core}"


async def _write_tile(
    out: Any,
    tile: Tile,
    value: Any,
    axis_map: _AxisMap | None,
    written: list[Region] | None = None,
) -> None:
    """Write ``value``, ``func``'s result for ``tile``, to the tile writer ``out`` (its errors
    name the tile; ``axis_map``: onto the writer's axes; ``written``: its region noted there):
    a level writer's writes run to their end by themselves, another writer's ``write`` (maybe
    the I/O itself) is run to its end here."""
    result = _result_tile(tile, value)
    try:
        if axis_map is not None:
            result = axis_map.tile(result)
        if written is not None:
            written.append(result.core)
        if isinstance(out, LevelWriter):
            await out.write(result)
        else:
            what = f"stream(): the write of the result of {_tile_name(tile)}"
            await to_the_end(out.write, result, what=what)
    except Exception as exc:
        if not any(exc is f for f in getattr(out, "_failures", ())):  # (not an earlier write's)
            exc.add_note(f"stream(): writing the result of {_tile_name(tile)}")
        raise


def _stitch_add(stitch: Stitch, tile: Tile, value: Any, axis_map: _AxisMap | None) -> None:
    """Hand ``func``'s result for ``tile`` to the stream's stitch (its errors name the tile)."""
    pred = np.asarray(value)
    if pred.shape != tile.shape and _unsqueezes(pred.shape, tile.shape):
        pred = pred.reshape(tile.shape)  # (its unit axes left out: f(a[0]) on plane tiles)
    keep = None if axis_map is None else axis_map.keep
    core = tile.core if keep is None else tuple(tile.core[i] for i in keep)
    stitch.add(tile, pred, core, keep)


def _roi_name(r: RoiRead) -> str:
    sel = ", ".join(f"{s.start}:{s.stop}" if isinstance(s, slice) else str(s) for s in r.region)
    return f"ROI {r.roi.name!r} (region [{sel}])"


async def _write_roi(
    out: Any,
    r: RoiRead,
    value: Any,
    rois: RoiStream,
    index: int,
    cascade: Cascade | None = None,
    masked: bool = False,
) -> None:
    """Write ``value``, ``func``'s result for ROI read ``r``, to ``out`` (errors name the ROI):
    to the image read, the same selection (``c=...``); to another one (a label image), the
    ROI's box at its level ``index`` (of the ROIs' pixel size); ``masked``: only where the
    ROI's object is (ngio's ``MaskedSegmentationIterator``). ``cascade``: the stream's, fed by
    the write."""
    pyramid: Any = False if cascade is None else cascade
    label = rois._label
    inside = None  # ``masked``: ``out`` masked by the ROIs' label image
    if masked and not isinstance(out, MaskedImage) and label is not None:
        assert not isinstance(label, str)  # (opened by the stream)
        inside = MaskedImage(out, label, [], index)
    if value is None:
        raise TypeError(f"stream(..., out=...): func returned None for {_roi_name(r)}")
    try:
        if inside is not None:  # the ROI's box of ``out`` and its labels (as read: the image's)
            if out is rois._image and r.labels is not None:
                await inside.write_read(r, value, pyramid)
            else:
                shared = _shared_axes(out, rois, index)  # (c="DAPI": that channel alone)
                got = _as_read_of(out, r, rois, index) or await read_roi(
                    out, r.roi, index, inside.label_image, None, None, **shared
                )
                await inside.write_read(got, value, pyramid)
        elif isinstance(out, MaskedImage):
            if r.roi.label is None:
                raise ValueError("it has no label value; out=<masked image> takes masked ROIs")
            if out.image is rois._image and out.label_image is rois._label and r.labels is not None:
                # its box and labels as read: not read again
                await out.write_read(r, value, pyramid)
            else:
                await out.write_read(await out.read_roi(int(r.roi.label)), value, pyramid)
        elif out is rois._image:
            await out.write_roi(r.roi, value, rois._level, pyramid=pyramid, **rois._axes)
        else:  # (the ROIs' selection of other axes, where out has them: c="DAPI")
            shared = _shared_axes(out, rois, index)
            await out.write_roi(r.roi, value, index, pyramid=pyramid, **shared)
    except Exception as exc:
        exc.add_note(f"stream(): writing the result of {_roi_name(r)}")
        raise


def _as_read_of(out: Any, r: RoiRead, rois: RoiStream, index: int) -> RoiRead | None:
    """``r`` (the image's box, read with its labels) as a read of ``out``'s box, when the
    axes ``r.data`` keeps are ``out``'s and its box there has ``r.data``'s shape (the pixels
    are the same: ``_check_roi_out``), so its labels are not read again; else ``None``."""
    if r.labels is None:
        return None
    kept = [
        a for a, sel in zip(rois._image.axes, r.region, strict=True) if not isinstance(sel, int)
    ]
    if kept != list(out.axes):
        return None
    region = roi_region(out, index, r.roi, {})
    if not all(isinstance(sel, slice) for sel in region) or region_shape(region) != r.data.shape:
        return None
    return replace(r, region=region)


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
    pyramid: bool | Method | None = None,
    masked: bool = False,
    unique_labels: int | None = None,
    stitch: bool | float | None = None,
) -> Stream[R]:
    """Run ``func(tile.data)`` in worker threads over ``tiles`` (``ds.tiles(...)``).

    At most ``window`` tiles are being processed or waiting to be consumed, holding up to
    the dataset's ``Limits.prefetch_bytes`` of tile data (the last one taken may cross it), and
    ``threads`` run ``func`` at once; the tile iterator keeps its own prefetch bounds. Results
    come in completion order. ``out``: a writer (``async write(tile)``, e.g. a dataset writer) that
    receives each result as a tile of the same region (halos cropped to the core), or a dataset
    (written through its own writer of its level of the tiles' pixel size: per space axis, by
    name, in each image's units; level 1 tiles into level 1 of a label of the same pyramid, or
    into level 0 of one made at half the resolution; none of that size: its level of the same
    index if of the same size (an output created without the image's scale), else
    ``ValueError`` at the call, naming both sizes, nothing written). The tiles are mapped onto ``out``'s
    axes by name: axes ``out`` lacks are left out where they have length 1 (image tiles of
    ``c="DAPI"`` into a label image), in the result of ``func`` too.

    ``tiles`` may be a ROI stream (``ds.read_rois(...)``, ``m.stream()``): ``func(r.data)``
    per ROI, ``(r, result)`` pairs; ``out``: a dataset (each result written at its ROI, as
    ``out.write_roi(r.roi, result, level)``, ``level`` of the ROIs' pixel size as for tiles)
    or a masked image (``out.write(label, result)``: only where the ROI's object is; its
    level must have the ROIs' pixel size).

    ``pyramid`` (``out`` a dataset or masked image): the coarser levels are built from the
    level written as the results land, by one cascade for the whole stream (``True``: the
    image's default method, ``"mode"`` for label images; or name one), and rebuilt over what
    landed if the stream fails; the finer levels of a label image (the level written is not
    level 0) are upsampled from it at the end, nearest (each pixel takes the value of the one
    over it), as ngio's ``consolidate`` does for labels; other images refuse ``pyramid=``
    there (``ValueError`` at the call: their finer pixels would be lost). Without ``pyramid`` only the level written
    changes: the others, finer ones too, keep their pixels. A writer given as ``out`` writes
    its own level and follows its own ``pyramid=``.

    As ngio's ``MaskedSegmentationIterator`` and ``UniqueLabelsTransform``: ``masked=True``
    hands ``func`` each ROI's pixels inside its object alone (``r.masked()``, 0 elsewhere; ROIs
    read with their labels) and writes its result to ``out`` only there (the rest of the box
    as stored); ``unique_labels=n``: each result's non-zero ids (below ``n``)
    are moved up by ``k * n``, ``k`` the ROI's label (a masking table's ROI), else its
    position in the table, or the tile's in the grid: objects of separate ROIs never share
    an id. ``stitch=True`` (or an IoU threshold, default 0.3; tiles with ``overlap=`` into a
    label dataset, ``unique_labels=n``): objects cut by a tile seam get one id, as ngio's
    ``StitchConfig`` / ``IouSeamMatcher``: neighbour tiles' results (whole, halo included)
    are compared over the pixels both cover as they land, ids whose IoU there reaches the
    threshold are joined (union-find, each object its smallest id), and at the end only the
    boxes of the ids joined are read back and rewritten (the pyramid following); ids are not
    renumbered 1..N (ngio's ``compact=False``). Seams along axes without overlap are not
    joined. Default ``None``: no stitching. At the call: ``TypeError`` unless ``tiles`` is
    ``ds.tiles(...)`` and ``out`` a dataset of an integer type; ``ValueError`` without
    ``overlap`` or ``unique_labels``, for a halo past half a tile, a threshold outside (0, 1],
    or id blocks (tiles x ``unique_labels``) past ``out``'s data type.

    Tiles with ``overlap=`` or ROIs with ``halo=`` written into the image they are read from
    (or another open of it) are refused at the call: a tile's halo would read pixels another
    tile's result has replaced, depending on the order they land (ngio refuses it too).

    Errors: the first is raised plainly, ``func``'s noting the tile or ROI it failed on. On an
    error or a cancellation no ``func`` and no write starts any more, and the writes under way
    are finished (within ``SETTLE_SECONDS``, 30 s: a hung store's write is then given up, and
    noted), so no tile or ROI is left half written.
    """
    return Stream(
        tiles,
        func,
        out=out,
        threads=threads,
        window=window,
        pyramid=pyramid,
        masked=masked,
        unique_labels=unique_labels,
        stitch=stitch,
    )


def stream_sync(
    items: Any,
    func: Callable[[NDArray[Any]], R],
    *,
    out: Any = None,
    threads: int = 2,
    window: int = 16,
    pyramid: bool | Method | None = None,
    masked: bool = False,
    unique_labels: int | None = None,
    stitch: bool | float | None = None,
) -> list[tuple[Any, R]] | None:
    """The blocking twin of :func:`stream`, run to the end: ``items`` a blocking dataset's
    ``ds.tiles(...)`` or ``ds.read_rois(...)``, or a masked image's ``m.stream()`` (not yet
    iterated); ``out``: a blocking dataset or masked image (or a blocking ``ds.writer()``,
    entered, for tiles); ``pyramid``, ``masked``, ``unique_labels``, ``stitch``: as
    :func:`stream`. Same bounds, results (``(tile, result)`` or ``(roi, result)`` pairs without
    ``out``) and errors, refused at the call as there. The tiles' ``progress`` is called in
    this thread as the stream runs. Interrupted (Ctrl-C), the write under way is finished
    (within ``SETTLE_SECONDS``) before ``KeyboardInterrupt`` is raised."""
    from ..sync import Runner

    source, relay = _sync_source(items)
    run = Stream(
        source,
        func,
        out=_sync_out(out),
        threads=threads,
        window=window,
        pyramid=pyramid,
        masked=masked,
        unique_labels=unique_labels,
        stitch=stitch,
    )
    ended = threading.Event()

    async def whole() -> list[tuple[Any, R]] | None:
        try:
            return await run._run()
        finally:
            ended.set()

    with Runner() as runner:  # (the loop kept while the write under way ends)
        try:
            if relay is None:
                return runner.call(whole)
            return cast("list[tuple[Any, R]] | None", _relaying(runner, whole, relay))
        except KeyboardInterrupt:
            ended.wait(SETTLE_SECONDS)  # the stream is cancelled: its write under way ends
            raise
        finally:
            if relay is not None:
                relay.deliver()  # the tiles' last progress reports, in the calling thread


def _relaying(runner: Any, whole: Callable[[], Any], relay: Any) -> Any:
    """``runner.call(whole)`` in a helper thread, this one handing the tiles' progress reports
    to their callback as they come (every 50 ms); interrupted (Ctrl-C, or the callback's
    error), the call is cancelled and waited for (within ``SETTLE_SECONDS``)."""
    done: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            done.append((True, runner.call(whole)))
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread
            done.append((False, exc))

    helper = threading.Thread(target=call, name="ngio_async-stream_sync", daemon=True)
    helper.start()
    try:
        while helper.is_alive():
            helper.join(0.05)
            relay.deliver()
    except BaseException:
        for _ in range(int(SETTLE_SECONDS / 0.05)):  # (again: the call may not have begun)
            runner.interrupt()
            helper.join(0.05)
            if not helper.is_alive():
                break
        raise
    ok, value = done[0]
    if not ok:
        raise value
    return value


def _sync_source(items: Any) -> tuple[TileStream | RoiStream, Any]:
    """The tile or ROI stream kept beside a blocking iterator (not yet iterated), and the
    tiles' progress relay."""
    from ..sync import SyncIterator

    source = items
    if isinstance(items, SyncIterator):  # its stream, kept beside it, not yet started
        keep = items.keep if isinstance(items.keep, tuple) else ()
        source = next((k for k in keep if isinstance(k, (TileStream, RoiStream))), items)
        if source is not items and inspect.getgeneratorstate(items._gen) != "GEN_CREATED":
            raise ValueError(
                "stream_sync() runs the tiles or ROIs from their start: this iterator was "
                "already iterated; call ds.tiles(...) / ds.read_rois(...) again"
            )
    if not isinstance(source, (TileStream, RoiStream)):
        raise TypeError(
            "stream_sync() takes the tiles or ROIs of a blocking dataset (ds.tiles(...), "
            f"ds.read_rois(...)) or masked image (m.stream()), got {type(items).__name__}"
        )
    return source, getattr(items, "relay", None)


def _sync_out(out: Any) -> Any:
    """The async object behind a blocking ``out`` (a dataset, masked image or writer)."""
    from .._sync_api import SyncDataset, SyncMaskedImage, SyncWriter

    if isinstance(out, SyncDataset):
        return out.async_dataset
    if isinstance(out, SyncMaskedImage):
        return out._masked
    if isinstance(out, SyncWriter):
        return out._writer
    return out
