"""A TIFF / OME-TIFF opened as a read-only :class:`~ngio_async.Dataset`.

The dataset's metadata is what a conversion would write (axes, scales, units, channels). Its
levels are the TIFF's own resolution levels (one for a flat TIFF; a pyramidal TIFF's SubIFDs or
reduced pages otherwise), each with its scale (level 0's times the size ratio in y/x, an integer
factor when the sizes are a rounded integer division). Levels read regions through
:class:`~ngio_async.convert.TiffSource` in worker threads, so ``ds.read(...)``, ``await
ds[...]``, ``ds.tiles()`` and ``stream`` work as on OME-Zarr. A level's chunks are the TIFF's
tiles (or strips, or pages). A TIFF on a store (``http(s)://``, ``s3://``, ...) is read by
ranged requests (:mod:`ngio_async.convert._tiffremote`). There is no zarr store behind the
dataset (an empty in-memory one stands in), no labels, and writes are refused (``mode="r"``).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import ReadOnlyError
from .._workers import Workers
from ..images import Dataset, ImageMetadata, Level
from ..images._create_plan import ImagePlan
from ..images._run_all import _run_all
from ..stores import open_store
from ._tiff import TiffReader, TiffSource, is_remote

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from numpy.typing import NDArray

    from .._limits import Limits
    from ..engine import Region
    from ..images._index_cache import IndexCache
    from ..images._reuse import Keeper
    from ..images._tile_pool import TilePool
    from ..stores import AsyncStore
    from ._formats import ImageSource

__all__ = [
    "SourceDataset",
    "SourceLevel",
    "TiffDataset",
    "TiffLevel",
    "level_factor",
    "open_tiff_async",
    "source_dataset",
]


def _read_only(url: str) -> str:
    return (
        f"{url} is no OME-Zarr: it opens read-only and cannot be written; convert it to "
        "OME-Zarr (ngio_async.convert, ngio-async convert) to edit it"
    )


class _SourceReads(Level):
    """A level whose every region is read by its own :meth:`read` (from an image source,
    never from the store, an empty stand-in): the store-reading paths of :class:`Level` that
    do not go through ``read`` are routed to it (they would return the fill value)."""

    def _check_writable(self) -> None:
        source = getattr(self, "source", None)  # set by each subclass
        raise ReadOnlyError(_read_only(str(getattr(source, "url", self.path))))

    async def read_many(
        self,
        regions: Sequence[Region],
        indexes: IndexCache | None = None,
        reuse: Keeper | None = None,
        *,
        pool: TilePool | None = None,
    ) -> list[NDArray[Any]]:
        """Read each region with :meth:`read` (several at a time), each into its own array
        (the source's: ``pool`` is not used)."""
        outs: list[Any] = [None] * len(regions)

        async def one(i: int) -> None:
            outs[i] = await self.read(regions[i])

        await _run_all(range(len(regions)), one, self._window)
        return outs

    async def read_in_chunks(
        self, regions: Sequence[Region], *, pool: TilePool | None = None
    ) -> list[NDArray[Any]]:
        return await self.read_many(regions)


class TiffLevel(_SourceReads):
    """A level whose regions are read from a :class:`TiffSource` (never from the store)."""

    def __init__(
        self, source: TiffSource, store: AsyncStore, meta: Any, index: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(store, str(index), meta, **kwargs)
        self.source = source
        self.index = index

    @property
    def reads_locally(self) -> bool:
        return False  # regions come from the TIFF source, not from chunks in the store

    async def read(
        self, region: Region, indexes: IndexCache | None = None, *, pool: TilePool | None = None
    ) -> NDArray[Any]:
        return await self.source.read(tuple(region), self.index)

    async def read_into(
        self, region: Region, out: NDArray[Any], indexes: IndexCache | None = None
    ) -> None:
        out[...] = await self.source.read(tuple(region), self.index)


def level_factor(n0: int, n: int) -> float:
    """The downscale factor of a level of size ``n`` under one of size ``n0``: an integer when
    ``n`` is ``n0`` divided by it (rounded up or down), else the exact ratio."""
    if n <= 0 or n0 <= 0:
        return 1.0
    f = max(1, round(n0 / n))
    if n in (n0 // f, -(-n0 // f)):
        return float(f)
    return n0 / n


def _pyramid(source: TiffSource, chunks: list[tuple[int, ...]]) -> ImagePlan:
    """The plan of the TIFF's levels: level 0's metadata, the levels' real shapes and scales."""
    from msgspec.structs import replace

    from ..images._array_meta import array_meta_v3
    from ..images._dataset_edits import _with_extra
    from ..meta import Dataset as NgffDataset, Scale
    from ._plan import _source_plan

    base = _source_plan(source, "0.5", chunks[0], False, False, 1)
    ms = base.ome.multiscales[0]  # type: ignore[index]
    first = ms.datasets[0]
    scale0 = next(t.scale for t in first.coordinate_transformations if isinstance(t, Scale))
    assert scale0 is not None
    rest = [t for t in first.coordinate_transformations if not isinstance(t, Scale)]
    arrays, datasets = [base.arrays[0]], [first]
    fill = base.arrays[0].fill_value
    levels = zip(source.level_shapes[1:], chunks[1:], strict=True)
    for i, (shape, lchunks) in enumerate(levels, start=1):
        factors = [level_factor(n0, n) for n0, n in zip(source.shape, shape, strict=True)]
        lscale = [s * f for s, f in zip(scale0, factors, strict=True)]
        datasets.append(
            NgffDataset(path=str(i), coordinate_transformations=[Scale(scale=lscale), *rest])
        )
        lchunks = tuple(max(1, min(c, n)) for c, n in zip(lchunks, shape, strict=True))
        arrays.append(array_meta_v3(shape, source.dtype, source.axes, lchunks, None, None, fill))
    ms = _with_extra(replace(ms, datasets=datasets), ms)
    ome = _with_extra(replace(base.ome, multiscales=[ms]), base.ome)
    paths = tuple(d.path for d in datasets)
    return ImagePlan(version="0.5", paths=paths, arrays=tuple(arrays), ome=ome)


class SourceDataset(Dataset):
    """A read-only dataset over an image source (a TIFF, a format plugin's
    :class:`~ngio_async.formats.ImageSource`); closing it closes the source."""

    source: ImageSource

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

    def _check_writable(self) -> None:
        self._check_open()
        raise ReadOnlyError(_read_only(self.url))


class SourceLevel(_SourceReads):
    """The one level of an :class:`~ngio_async.formats.ImageSource`: regions come from
    ``source.read`` (there are no chunks in the store)."""

    def __init__(self, source: ImageSource, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = source

    @property
    def reads_locally(self) -> bool:
        return False

    async def read(
        self, region: Region, indexes: IndexCache | None = None, *, pool: TilePool | None = None
    ) -> NDArray[Any]:
        return await self.source.read(tuple(region))

    async def read_into(
        self, region: Region, out: NDArray[Any], indexes: IndexCache | None = None
    ) -> None:
        out[...] = await self.source.read(tuple(region))


@asynccontextmanager
async def _closed_on_failure(source: ImageSource) -> AsyncIterator[None]:
    """Close ``source`` if the block fails (the dataset that would close it was not made)."""
    try:
        yield
    except BaseException:
        with anyio.CancelScope(shield=True):
            await source.aclose()
        raise


def _stand_in(limits: Limits | None) -> tuple[AsyncStore, Limits, Workers]:
    """The empty store (nothing is stored behind a source), limits and decode threads of a
    dataset over a source."""
    store = open_store("memory://", limits=limits)
    lim = limits or store.limits
    return store, lim, Workers(lim.decode_threads)


async def source_dataset(source: ImageSource, limits: Limits | None = None) -> SourceDataset:
    """A read-only one-level dataset over a format plugin's ``source`` (the metadata
    ``convert`` would write for it); closing it closes the source (closed here on failure)."""
    from ._plan import _source_plan

    async with _closed_on_failure(source):
        plan = _source_plan(source, "0.5", None, False, None, 1)
        store, lim, workers = _stand_in(limits)
        metadata = ImageMetadata(plan.ome)
        cal = metadata.spatial_calibration[0]
        level = SourceLevel(
            source,
            store,
            plan.paths[0],
            plan.arrays[0],
            scale=cal.scale,
            translation=cal.translation,
            workers=workers,
            window=max(2 * lim.max_requests, 2 * lim.decode_threads),
        )
        ds = SourceDataset(
            store, "", metadata, [level], limits=lim, workers=workers, owns_store=True
        )
    ds.source = source
    return ds


class TiffDataset(SourceDataset):
    """A read-only dataset over a TIFF; closing it closes the file."""

    source: TiffSource


async def open_tiff_async(
    url: str | os.PathLike[str],
    *,
    series: int = 0,
    limits: Limits | None = None,
    **store_options: Any,
) -> TiffDataset:
    """Open a TIFF / OME-TIFF (series ``series``, all its resolution levels) read-only.

    ``url``: a local path, or a URL on any store (``http(s)://``, ``s3://``, ...; its
    ``store_options`` such as S3 ``endpoint``), read by ranged requests.
    """
    options: dict[str, Any] = dict(store_options)
    if is_remote(os.fspath(url)):
        options["limits"] = limits
    source = await TiffReader().open(url, series=series, **options)
    async with _closed_on_failure(source):
        chunks = await anyio.to_thread.run_sync(
            lambda: [source.level_chunks(i) for i in range(source.levels)]
        )
        plan = _pyramid(source, chunks)
        store, lim, workers = _stand_in(limits)
        metadata = ImageMetadata(plan.ome)
        levels: list[Level] = [
            TiffLevel(
                source,
                store,
                meta,
                i,
                scale=cal.scale,
                translation=cal.translation,
                workers=workers,
                window=max(2 * lim.max_requests, 2 * lim.decode_threads),
            )
            for i, (meta, cal) in enumerate(
                zip(plan.arrays, metadata.spatial_calibration, strict=True)
            )
        ]
        ds = TiffDataset(store, "", metadata, levels, limits=lim, workers=workers, owns_store=True)
    ds.source = source
    return ds
