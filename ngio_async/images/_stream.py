"""``stream``: tiles (or ROIs) -> a function in worker threads -> collected or written, within
bounds."""

from __future__ import annotations

import contextlib
import inspect
import math
import numbers
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import anyio
import numpy as np

from .._errors import ClosedError
from .._prefetch import SETTLE_SECONDS, Unsettled, single_leaf, start_deferred, to_the_end
from .._workers import Workers
from ..engine.plan import region_shape
from ._rois import MaskedImage, RoiRead, RoiStream
from ._stitch import RoiStitch, Stitch, StitchConfig, check_stitch
from ._stream_out import (
    _AxisMap,
    _check_finer,
    _check_fits,
    _check_in_place,
    _check_masked,
    _check_out,
    _check_pyramid,
    _check_roi_out,
    _follow_metadata,
    _is_dataset,
    _level_cascade,
    _roi_region,
    _tiles_level,
)
from ._stream_results import (
    _plan_roi_stitch,
    _roi_name,
    _stitch_add,
    _stitch_add_roi,
    _tile_name,
    _write_roi,
    _write_tile,
)
from ._tiles import Tile, TileStream
from ._upsample import Finer as _Finer

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    from anyio.streams.memory import MemoryObjectReceiveStream
    from numpy.typing import NDArray

    from ..engine import Region
    from ..engine.pyramid import Method
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
        pyramid: bool | Method | None = None,
        masked: bool = False,
        unique_labels: int | None = None,
        stitch: bool | float | StitchConfig | None = None,
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
        # tiles' labels joined across their seams (ngio's StitchConfig)
        self._stitch = check_stitch(stitch, tiles, out, self._unique)
        if self._stitch is not None and self._masked:
            raise ValueError(
                "stream(..., masked=True, stitch=...): one or the other. Masked results are "
                "written inside their objects alone, so two ROIs of different objects never "
                "share a labelled pixel (ngio compares only ROIs of one object), and ROIs of "
                "one object share its id block (label * unique_labels): stitching would join "
                "nothing"
            )
        #: ``stitch=``: what was joined (``mapping()``), how many stored objects were rewritten
        #: (``rewrites``), ``compact``: each object's number (``numbers``)
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
        stitch = None
        if self._stitch is not None:
            chunks = out.levels[self._level].meta.stored_chunks
            stitch = Stitch.of(self._stitch, self._tiles_stream, chunks)
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
        seams = Workers(1)  # the stitch's joins, off the event loop, one result at a time
        async with self as results:
            async for tile, value in results:
                if stitch is not None:
                    await seams.run(_stitch_add, stitch, tile, value, self._axis_map)
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
        stitch = None
        if self._stitch is not None:
            stitch = RoiStitch.of_rois(self._stitch, level.meta.stored_chunks)
        self.stitched = stitch
        seams = Workers(1)  # the stitch's joins, off the event loop, one result at a time
        if stitch is not None:
            await _plan_roi_stitch(stitch, out, rois, index)
        try:
            async with self as results:
                async for ordered, result in results:
                    if stitch is not None:  # (the whole result, its halo included)
                        await seams.run(_stitch_add_roi, stitch, out, ordered, result, rois, index)
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
                if stitch is not None:  # the ids joined rewritten, the levels following
                    await stitch.finish(target, index, cascade._method)
            except BaseException as exc:
                if finer is not None:
                    await finer.settle(exc)
                raise
            finally:
                _follow_metadata(target, cascade)
            if finer is not None:
                await finer.build()
            await target._follow_data_windows()
        elif stitch is not None:
            await stitch.finish(target, index, False)

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
            except anyio.ClosedResourceError:  # (was raised bare, without a message)
                raise ClosedError(
                    "the stream's results were closed when its `async with stream(...)` block "
                    "ended: consume them inside it"
                ) from None
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


def _item_name(item: Item) -> str:
    return _roi_name(item) if isinstance(item, RoiRead) else _tile_name(item)


def _positive(name: str, value: object) -> int:
    """``value`` as an int (numpy integers too), or a ``ValueError`` naming ``name``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return int(value)
    raise ValueError(f"{name} must be a positive integer, got {value!r}")


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
    stitch: bool | float | StitchConfig | None = None,
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
    renumbered 1..N (ngio's ``compact=False``). ``stitch=StitchConfig(iou_threshold=...,
    seam_matcher=..., compact=...)`` (ngio's names): ``seam_matcher(patch_a, patch_b)`` gives
    the pairs of ids of two neighbour tiles' labels over the pixels both cover that are one
    object, instead of the IoU; ``compact=True`` renumbers the objects 1..N as ngio's (its
    order) in the same final pass, each stored object holding ids rewritten once (the tiles
    must cover ``out``'s level, ``out`` without ``image-label`` colors or properties). Seams
    along axes without overlap are not joined. A ROI stream stitches too (ngio's stitch of a
    ROI list): ``ds.read_rois(rois, halo=...)``, or ROIs that overlap (a microscope's FOVs),
    each result compared with every landed one whose grown box meets it (each held until
    the last ROI meeting it has landed); ``compact`` renumbers the whole level there, as
    ngio's (the stored objects the results did not cover whole read for their ids; the
    label's other objects renumbered too, with a ``UserWarning``); ``masked=True`` is
    refused with ``stitch``. The comparisons (IoU or ``seam_matcher``) run in a worker
    thread, one result at a time in the order they land, never on the event loop. Default
    ``None``: no stitching. At the call: ``TypeError`` unless ``out`` is a dataset of an
    integer type, for tiles not of ``ds.tiles(...)``, or for a seam matcher not callable with
    two patches; ``ValueError`` without ``unique_labels`` (tiles: without ``overlap``), for a
    halo past half a tile, a threshold outside (0, 1], id blocks (tiles x ``unique_labels``)
    past ``out``'s data type, or ``compact`` where it cannot renumber (see
    :class:`StitchConfig`).

    Tiles with ``overlap=`` or ROIs with ``halo=`` written into the image they are read from
    (or another open of it) are refused at the call: a tile's halo would read pixels another
    tile's result has replaced, depending on the order they land (ngio refuses it too).

    Errors: the first is raised plainly, ``func``'s noting the tile or ROI it failed on. On an
    error or a cancellation no ``func`` and no write starts any more, and the writes under way
    are finished (within ``SETTLE_SECONDS``, 30 s: a hung store's write is then given up, and
    noted), so no tile or ROI is left half written. ``stitch``'s final pass (the ids joined
    rewritten) runs to its end too when cancelled (``compact`` cut half way would leave numbers
    1..N in some stored objects and the tiles' ids, which may equal them, in others); an error
    within it is noted with how many stored objects were rewritten and what the rest hold. A
    stream stopped before that pass joins nothing: the results landed keep their tiles' ids.
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
    stitch: bool | float | StitchConfig | None = None,
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
    from .._sync_api import SyncDataset, SyncWriter
    from .._sync_tiles import SyncMaskedImage

    if isinstance(out, SyncDataset):
        return out.async_dataset
    if isinstance(out, SyncMaskedImage):
        return out._masked
    if isinstance(out, SyncWriter):
        return out._writer
    return out
