"""ngio's image-wide helpers: the ROI of the whole image (``build_image_roi_table``) and
display windows from percentiles (``set_channel_windows_with_percentiles``).

Percentile windows are read from the lowest level (ngio's choice), tile by tile: per channel,
the distinct values above ``1e-16`` (ngio drops zeros) and their counts, merged across tiles
(the distinct values of a small level, never its pixels whole); the percentiles are the
``"nearest"`` ones numpy's and dask's ``percentile`` give on those values, with ngio's fixes for
degenerate windows (a sparse channel opens to its maximum, a constant one from 0, an empty one
is ``(0, 1)``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import UnsupportedError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..tables import Roi
    from ._dataset import Dataset

__all__ = ["image_roi", "percentile_windows"]

Percentiles = tuple[float, float] | Sequence[tuple[float, float]]


def image_roi(ds: Dataset, name: str = "image") -> Roi:
    """See :meth:`~ngio_async.images.Dataset.image_roi`."""
    from ..tables import Roi

    if not isinstance(name, str) or not name:
        raise ValueError(f"a ROI name must be a non-empty string, got {name!r}")
    # every axis in its stored unit: ngio's numbers, and those read_roi takes and masking_rois
    # give (micrometres for an image in micrometres)
    found = ds.world_extent(0, origin="image")
    ranges = {a: (float(lo), float(hi)) for a, (lo, hi) in found.items() if a in ("x", "y", "z")}
    if "x" not in ranges or "y" not in ranges:
        raise ValueError(f"{ds.url} has no x and y space axes: no ROI of it")
    ranges.setdefault("z", (0.0, 1.0))  # ngio's tables hold a z of one micrometre then
    t = found.get("t")
    return Roi(name, ranges, time=None if t is None else (float(t[0]), float(t[1])))


def _per_channel(percentiles: Percentiles, count: int) -> list[tuple[float, float]]:
    """One ``(start, end)`` pair of percentiles per channel (checked: 0..100, start < end):
    one pair of numbers (a tuple, list or array: for every channel), or one per channel."""
    if isinstance(percentiles, str | bytes) or not isinstance(percentiles, Sequence | np.ndarray):
        raise TypeError(f"percentiles must be (start, end) or one per channel, got {percentiles!r}")
    items = list(percentiles)
    pair = len(items) == 2 and all(_is_number(p) for p in items)
    given: list[Any] = [items] * count if pair else items
    if len(given) != count:
        raise ValueError(
            f"percentiles: {len(given)} pairs for {count} channels (or one (start, end) pair)"
        )
    out = []
    for i, p in enumerate(given):
        if isinstance(p, str | bytes) or not isinstance(p, Sequence | np.ndarray) or len(p) != 2:
            raise TypeError(f"percentiles[{i}] must be (start, end), got {p!r}")
        lo, hi = (float(v) for v in p)
        if not (0 <= lo < hi <= 100) or not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"percentiles[{i}] {tuple(p)}: expected 0 <= start < end <= 100")
        out.append((lo, hi))
    return out


def _is_number(value: object) -> bool:
    """A real number (numpy's too), not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _counts(data: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """The distinct values above 1e-16 (ngio drops the rest) and how often each occurs."""
    values = data[data > 1e-16]
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    found, counts = np.unique(values, return_counts=True)
    return found, counts


def _merge(
    a: tuple[NDArray[Any], NDArray[Any]] | None, b: tuple[NDArray[Any], NDArray[Any]]
) -> tuple[NDArray[Any], NDArray[Any]]:
    if a is None:
        return b
    values = np.concatenate([a[0], b[0]])
    counts = np.concatenate([a[1], b[1]])
    found, at = np.unique(values, return_inverse=True)
    return found, np.bincount(at, weights=counts, minlength=len(found)).astype(np.int64)


def _nearest(values: NDArray[Any], counts: NDArray[Any], q: float) -> float:
    """numpy's ``percentile(..., method="nearest")`` of the sorted values repeated ``counts``
    times: the value at rank ``around(q / 100 * (n - 1))`` (half to even, as numpy rounds)."""
    n = int(counts.sum())
    rank = int(np.around(q / 100 * (n - 1)))
    return float(values[int(np.searchsorted(np.cumsum(counts), rank, side="right"))])


def _window(found: tuple[NDArray[Any], NDArray[Any]] | None, lo: float, hi: float) -> Any:
    if found is None or len(found[0]) == 0:
        return (0.0, 1.0)
    values, counts = found
    start, end = _nearest(values, counts, lo), _nearest(values, counts, hi)
    if end <= start:  # sparse: the percentiles coincide; open to the maximum
        end = float(values[-1])
    if end <= start:  # constant: from the (dropped) zero background
        start = 0.0
    return (start, end)


async def percentile_windows(
    ds: Dataset, percentiles: Percentiles = (0.1, 99.9)
) -> list[tuple[float, float]]:
    """``(start, end)`` per channel: the ``percentiles`` of the lowest level's values above
    zero, as ngio's ``set_channel_windows_with_percentiles`` computes them."""
    from ._stream import stream

    c = ds.metadata.channel_axis
    count = ds.shape[c] if c is not None else 1
    pairs = _per_channel(percentiles, count)
    if not ds.store.supports_writes:  # refused before the level is read for nothing
        raise UnsupportedError(
            f"{ds.url} is on a read-only store ({type(ds.store).__name__} takes no writes): "
            "its channel windows cannot be set; nothing was read"
        )
    version = ds.metadata.ngff_version
    if version not in ("0.4", "0.5"):  # its metadata cannot be edited: refused before reading
        raise UnsupportedError(
            f"{ds.url}: cannot set the channel windows of an NGFF {version} image (ngio_async "
            "writes NGFF 0.4 and 0.5; convert it to 0.5 to edit it); nothing was read"
        )
    omero = ds.metadata.ome.omero
    if c is None and (omero is None or not omero.channels):
        raise ValueError(f"{ds.url} has no channel axis and no channels")
    if ds.dtype.kind == "c":
        raise TypeError(f"{ds.url} holds complex values: no percentiles of them")
    index = len(ds.levels) - 1
    merged: list[tuple[NDArray[Any], NDArray[Any]] | None] = [None] * count
    async with stream(ds.tiles(level=index), _counts) as results:
        async for tile, found in results:
            ch = 0 if c is None else tile.region[c].start  # tiles: one plane each
            merged[ch] = _merge(merged[ch], found)
    return [_window(merged[i], lo, hi) for i, (lo, hi) in enumerate(pairs)]
