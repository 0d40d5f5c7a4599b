"""Blocking tile iteration and writing: :class:`SyncTiles` (progress relayed to the caller's
thread), :class:`SyncWriter`, and an image masked by a label image (:class:`SyncMaskedImage`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Self

from .images._tiles import report
from .sync import Runner, SyncIterator, in_portal_thread

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from numpy.typing import ArrayLike, NDArray

    from ._prefetch import ProgressCallback
    from ._sync_api import SyncDataset
    from .images import LevelWriter, Tile
    from .images._merge import Merge
    from .images._rois import MaskedImage, RoiRead
    from .tables import Roi

__all__ = ["SyncMaskedImage", "SyncTiles", "SyncWriter"]


class _ProgressRelay:
    """A ``progress(done, total)`` callback for the blocking API, always called in the thread
    that pulls the tiles (the consumer's ``next()``), never on the loop thread.

    The stream reports a tile when it hands it out: on the loop thread when the consumer's
    ``next()`` waited for it through the portal, in the consumer's thread when it was ready.
    Reports made on the loop thread are kept and given to ``progress`` by the ``next()`` that
    receives the tile, before it returns it (in order). Before, a callback ran on either thread
    by chance: the blocking API raised ``RuntimeError`` in some of its calls and not in others,
    and GUI callbacks (a napari / Qt progress bar) were updated from a foreign thread.
    """

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        if in_portal_thread():
            with self._lock:
                self._pending.append((done, total))
            return
        self.deliver()
        report(self._progress, done, total)

    def deliver(self) -> None:
        """Give the reports kept from the loop thread to ``progress`` (in this thread)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for done, total in pending:
            report(self._progress, done, total)


class SyncTiles(SyncIterator["Tile"]):
    """The blocking tile iterator of :meth:`SyncDataset.tiles`; ``len()`` is the tile count."""

    #: how many tiles the stream yields, and tiles per axis
    total: int = 0
    grid: tuple[int, ...] = ()
    #: the progress callback, called in the consuming thread (see :class:`_ProgressRelay`)
    relay: _ProgressRelay | None = None

    def __len__(self) -> int:
        return self.total

    def __next__(self) -> Tile:
        try:
            return super().__next__()
        finally:
            if self.relay is not None:
                self.relay.deliver()


class SyncMaskedImage:
    """An image masked by a label image, blocking (see
    :class:`ngio_async.images._rois.MaskedImage`); ``close()`` (or ``with``) closes the label
    image."""

    def __init__(self, runner: Runner, masked: MaskedImage, image: SyncDataset) -> None:
        self._runner, self._masked, self._image = runner, masked, image

    @property
    def values(self) -> list[int]:
        return self._masked.values

    def roi(self, value: int, zoom: float = 1.0) -> Roi:
        return self._masked.roi(value, zoom)

    def read(
        self,
        value: int,
        *,
        masked: bool = False,
        fill: Any = 0,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> NDArray[Any]:
        """Object ``value``'s box (``MaskedImage.read``).

        :param axes_order: the array's axes in this order (as ``Dataset.read``).
        """
        return self._runner.call(
            lambda: self._masked.read(
                value, masked=masked, fill=fill, zoom=zoom, axes_order=axes_order, **axes
            )
        )

    def read_roi(
        self,
        value: int,
        *,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        **axes: Any,
    ) -> RoiRead:
        """Object ``value``'s box with its labels (``MaskedImage.read_roi``).

        :param axes_order: the data and labels in this axis order (as ``Dataset.read``).
        """
        return self._runner.call(
            lambda: self._masked.read_roi(value, zoom=zoom, axes_order=axes_order, **axes)
        )

    def read_label(self, value: int, *, zoom: float = 1.0, **axes: Any) -> NDArray[Any]:
        return self._runner.call(lambda: self._masked.read_label(value, zoom=zoom, **axes))

    def write(
        self,
        value: int,
        data: ArrayLike,
        *,
        zoom: float = 1.0,
        axes_order: Sequence[str] | None = None,
        merge: Merge | None = None,
        **axes: Any,
    ) -> None:
        """Write ``data`` where object ``value`` is (``MaskedImage.write``).

        :param axes_order: ``data``'s axes in this order (as ``Dataset.write``).
        :param merge: the object's pixels combined with the stored ones (as ``Dataset.write``).
        """
        self._runner.call(
            lambda: self._masked.write(
                value, data, zoom=zoom, axes_order=axes_order, merge=merge, **axes
            )
        )

    def stream(
        self,
        values: Sequence[int] | None = None,
        *,
        prefetch: int | None = None,
        ordered: bool = True,
        planes: Sequence[str] | None = None,
        axes_order: Sequence[str] | None = None,
        halo: Mapping[str, int] | None = None,
        **axes: Any,
    ) -> SyncIterator[RoiRead]:
        """``for r in m.stream(): r.masked()``: the objects read ahead of the loop.

        :param axes_order: each object's data and labels in this axis order.
        :param halo: each object's box read grown by this many pixels per axis, clipped.
        """
        stream = self._masked.stream(
            values,
            prefetch=prefetch,
            ordered=ordered,
            planes=planes,
            axes_order=axes_order,
            halo=halo,
            **axes,
        )
        it = self._runner.iterate(stream)
        it.keep = (self, stream)  # the masked image stays open; stream_sync finds the stream
        return it

    def close(self) -> None:
        """Close the label image (the image stays open). Idempotent."""
        if not self._runner.closed:
            self._runner.call(self._masked.aclose)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncWriter:
    """The blocking face of a :class:`~ngio_async.images.LevelWriter`: ``w.write(tile)``."""

    def __init__(self, runner: Runner, writer: LevelWriter) -> None:
        self._runner = runner
        self._writer = writer
        self.keep: object = None  # the dataset, kept open while the writer is used

    def write(self, tile: Tile | tuple[Sequence[slice], Any]) -> None:
        """Start writing a tile (``Tile`` or ``(region, data)``); waits while too many pend."""
        self._runner.call(self._writer.write, tile)


class _SyncWriterContext:
    def __init__(self, runner: Runner, writer: AbstractAsyncContextManager[LevelWriter]) -> None:
        self._cm = runner.wrap_async_context_manager(writer)
        self._runner = runner
        self.keep: object = None  # the dataset, kept open while the writer is used

    def __enter__(self) -> SyncWriter:
        writer = SyncWriter(self._runner, self._cm.__enter__())
        writer.keep = self.keep
        return writer

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc_val, exc_tb)
