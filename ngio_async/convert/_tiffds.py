"""A TIFF / OME-TIFF opened as a read-only :class:`~ngio_async.Dataset` (one level).

The dataset's metadata is what a conversion would write (axes, scales, units, channels); its
single level reads regions through :class:`~ngio_async.convert.TiffSource` in worker threads, so
``ds.read(...)``, ``await ds[...]``, ``ds.tiles()`` and ``stream`` work as on OME-Zarr. The
level's chunks are the TIFF's tiles (or strips, or pages). There is no store behind it (an empty
in-memory one stands in), no labels, and writes are refused (``mode="r"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ..images import Dataset, ImageMetadata, Level
from ..stores import open_store
from ._tiff import TiffReader, TiffSource

if TYPE_CHECKING:
    import os

    from numpy.typing import NDArray

    from .._limits import Limits
    from ..engine import Region
    from ..stores import AsyncStore

__all__ = ["TiffDataset", "TiffLevel", "open_tiff_async"]


class TiffLevel(Level):
    """A level whose regions are read from a :class:`TiffSource` (never from the store)."""

    def __init__(self, source: TiffSource, store: AsyncStore, meta: Any, **kwargs: Any) -> None:
        super().__init__(store, "0", meta, **kwargs)
        self.source = source

    async def read_into(self, region: Region, out: NDArray[Any]) -> None:
        out[...] = await self.source.read(tuple(region))


class TiffDataset(Dataset):
    """A read-only dataset over a TIFF; closing it closes the file."""

    source: TiffSource

    async def aclose(self) -> None:
        if self.closed:
            return
        try:
            await super().aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await self.source.aclose()

    @property
    def url(self) -> str:
        return self.source.url


async def open_tiff_async(
    url: str | os.PathLike[str], *, series: int = 0, limits: Limits | None = None
) -> TiffDataset:
    """Open a TIFF / OME-TIFF (series ``series``, level 0) as a read-only dataset."""
    from ._convert import _source_plan

    source = await TiffReader().open(url, series=series)
    try:
        chunks = await anyio.to_thread.run_sync(lambda: source.chunks)
        plan = _source_plan(source, "0.5", chunks, False, False, 1)
        store = open_store("memory://", limits=limits)
        lim = limits or store.limits
        limiter = anyio.CapacityLimiter(lim.decode_threads)
        metadata = ImageMetadata(plan.ome)
        cal = metadata.spatial_calibration[0]
        level = TiffLevel(
            source,
            store,
            plan.arrays[0],
            scale=cal.scale,
            translation=cal.translation,
            decode_limiter=limiter,
            window=max(2 * lim.max_requests, 2 * lim.decode_threads),
        )
        ds = TiffDataset(
            store, "", metadata, [level], limits=lim, decode_limiter=limiter, owns_store=True
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await source.aclose()
        raise
    ds.source = source
    return ds
