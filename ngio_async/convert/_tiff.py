"""TIFF and OME-TIFF as an :class:`~ngio_async.formats.ImageSource`, read region by region.

Pixels are read through tifffile's zarr view of the series (``series.aszarr(level=n)`` opened
with zarr-python): a region decodes only the TIFF tiles or strips it overlaps, in worker threads,
so an image is never read whole. Uncompressed data is read straight from the file, region by
region; deflate-compressed strips are decoded 64 KiB at a time into the region (a plane stored
as one strip is never held decoded twice); LZW, ZSTD, PackBits and LZMA strips a strip at a
time, straight into the region when it takes the strip's rows whole. LZW, ZSTD, JPEG, JPEG
2000, WebP, ... need ``imagecodecs`` (the ``ngio_async[tiff]`` extra; deflate, LZMA and
PackBits decode without it): without it such a TIFF is refused at open, naming it. A
pyramidal TIFF's own resolution levels (SubIFDs, as in OME-TIFF, or reduced-resolution pages;
tifffile's ``series.levels``) are ``level_shapes`` and read the same way (``read(region,
level=n)``). Every read is counted (``reads``, ``max_read_bytes``), which lets tests check
that a conversion reads plane by plane / tile by tile.

Metadata: OME-XML (``Pixels`` ``PhysicalSizeX/Y/Z`` with their units, ``TimeIncrement`` or
the planes' ``DeltaT``, ``Channel`` ``Name`` / ``Color``; of a companion file or the set's
TIFF holding it for a ``BinaryOnly`` one; ill-formed XML mended where a bare ``&`` or control
characters break it), else ImageJ metadata (``spacing``, ``unit``, which the resolution counts
pixels per, ``finterval``; each channel's LUT color and display range, ``LUTs`` / ``Ranges``, a
one-channel image's ``min`` / ``max``, grey or not), Aperio SVS ``MPP``, Zeiss LSM voxel
sizes, QPTIFF channel names and colors, and the TIFF resolution tags (``XResolution`` /
``YResolution`` with ``ResolutionUnit``, inch and centimeter converted to micrometer).

Axes: tifffile's series axes map to NGFF axes: ``T``, ``C``, ``Z``, ``Y``, ``X`` as named; the
RGB(A) samples axis ``S`` becomes the channel axis (when there is no other channel axis of more
than one channel); any other axis (``Q`` unknown, ``I`` image sequence, ...) becomes ``z``, else
``t``, else ``c``, whichever is free; such axes of size 1 are dropped. A single channel keeps
a ``c`` axis of size 1 when the OME-XML names it (so does its name). The output axes are in
NGFF order (``t``, ``c``, ``z``, ``y``, ``x``).

Display: the stored values are converted as they are (as scientific readers read them); how
the TIFF asks them to be shown goes into the channels (a channel axis of one is added for it):
MinIsWhite is ``inverted`` white, a palette its color over the palette's range
(:func:`palette_display`).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import anyio
import numpy as np

from .._errors import CodecError, UnsupportedError
from ._tiffbytes import (
    _DIRECT_TILE,
    ByteSource,
    _direct,
    _FileBytes,
    _read_contiguous,
    _read_strips,
    _strips,
)
from ._tiffmeta import (
    _number,
    _unit,
    decoded_rgb,
    imagej_channels,
    imagej_single,
    lsm_calibration,
    map_axes,
    ome_calibration,
    ome_image,
    photometric_display,
    qpi_channels,
    resolution_pixel_size,
    svs_pixel_size,
)
from ._tiffopen import (
    _check_codecs,
    _check_extent,
    _refuse_broken,
    _refuse_missing_files,
    _tiff_errors,
    _warn_absent_planes,
)
from ._tiffsets import (
    _COMPANION,
    MultiFileError,
    _open_local,
    _warn,
    _xml_error,
    binary_only,
    is_tiff_name,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

__all__ = ["TiffReader", "TiffSource", "is_remote"]

_ORDER = "tczyx"


class TiffSource:
    """A TIFF / OME-TIFF series as a read-only image (series ``series``, all its levels).

    ``tif``: an open ``tifffile.TiffFile`` to read instead of opening ``path`` (closed with
    this source).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        series: int = 0,
        threads: int = 4,
        *,
        tif: Any = None,
    ) -> None:
        self.url = os.fspath(path)
        with _tiff_errors(self.url, "read the TIFF structure of"):
            if tif is None:
                tif = _open_local(self.url)
                self.url = str(tif.filehandle.path)  # the TIFF read: its pixels by offset
            self._tif = tif
        if (where := binary_only(tif.ome_metadata if tif.is_ome else None)) is not None:
            tif.close()  # on a store, or naming no file (a local one opened with its metadata)
            why = (
                f"in {where}, of a multi-file OME-TIFF (read as a whole by the set's reader)"
                if where
                else "in a file it does not name (no MetadataFile)"
            )
            raise (MultiFileError if where else UnsupportedError)(
                f"{self.url} holds pixels only (OME-XML BinaryOnly): its metadata and the other "
                f"planes are {why}"
            )
        try:
            with (
                _tiff_errors(self.url, "read the series of"),
                _refuse_broken(self.url),
                _refuse_missing_files(self.url, not self._tif.filehandle.is_file)
                if not self._planes_elsewhere
                else contextlib.nullcontext(),
            ):
                count = len(self._tif.series)  # tifffile parses the OME-XML's series here
        except BaseException:
            self._tif.close()
            raise
        if count == 0:
            self._tif.close()
            raise CodecError(f"{self.url} holds no image (a corrupt or empty TIFF)", key=self.url)
        #: how many series the file holds (the positions of a multi-position OME-TIFF, or a
        #: whole-slide image's label and macro images); ``ome_xml``: its OME-XML, if any
        self.series_count = count = self._counted(count)
        self.ome_xml: str | None = self._tif.ome_metadata if self._tif.is_ome else None
        if (error := _xml_error(self.ome_xml)) is not None:
            _warn(
                f"{self.url}: its OME-XML does not parse ({error}): its pages are read as they "
                "are, without the dimensions, calibration and channels it describes"
            )
        #: whether every series is an image of its own (OME-XML images, tifffile's "shaped"
        #: series, pages of other shapes), rather than a slide's label or thumbnail
        self.series_are_images = bool(self.ome_xml) or all(
            getattr(x, "kind", "") in ("shaped", "generic") for x in self._tif.series
        )
        if not 0 <= series < count:
            self._tif.close()
            raise ValueError(f"series={series}: {self.url} has {count} series (0 to {count - 1})")
        try:
            with _tiff_errors(self.url, "read the TIFF structure of"), _refuse_broken(self.url):
                self._init(series)
        except BaseException:
            self._tif.close()
            raise
        self._limiter = anyio.CapacityLimiter(threads)
        self._lock = threading.Lock()
        self.reads = 0
        self.max_read_bytes = 0
        self.bytes_read = 0

    def _init(self, series: int) -> None:
        tif = self._tif
        s = tif.series[self._picked(series)]
        #: the index of a channel axis of one channel that the TIFF has not (tifffile
        #: squeezes it away) but its OME-XML names: kept so that the name is
        self._virtual: int | None = None
        self.series_axes: str = s.axes
        src_shape = tuple(int(n) for n in s.shape)
        try:
            self._map = map_axes(s.axes, src_shape)
        except UnsupportedError as exc:
            raise UnsupportedError(f"{self.url}: {exc} (NGFF axes: t, c, z, y, x)") from None
        dst = sorted(
            ((name, i) for i, name in enumerate(self._map) if name is not None),
            key=lambda p: _ORDER.index(p[0]),
        )
        self.axes: tuple[str, ...] = tuple(name for name, _ in dst)
        self._src_of = [i for _, i in dst]  # dst axis -> src axis
        self.shape: tuple[int, ...] = tuple(src_shape[i] for i in self._src_of)
        #: the shape of each resolution level (SubIFDs or reduced pages), level 0 first
        self.level_shapes: list[tuple[int, ...]] = []
        for lvl in s.levels:
            lshape = tuple(int(n) for n in lvl.shape)
            if lvl.axes != s.axes or len(lshape) != len(src_shape):
                break
            if any(lshape[i] != 1 for i, name in enumerate(self._map) if name is None):
                break
            self.level_shapes.append(tuple(lshape[i] for i in self._src_of))
        levels = s.levels[: len(self.level_shapes)]
        _warn_absent_planes(self.url, series, self._absent_planes(list(s.pages)))
        _check_codecs(self.url, [lvl.keyframe for lvl in levels])
        size = int(getattr(tif.filehandle, "size", 0) or 0)
        if 0 < size < 1 << 60:  # known (a remote file's may not be yet)
            _check_extent(
                self.url, [p for lvl in levels for p in (lvl.keyframe, lvl.pages[-1])], size, tif
            )
        self._series = s
        self._stores: list[Any] = [None] * len(self.level_shapes)
        self._arrays: list[Any] = [None] * len(self.level_shapes)
        # pixels read by offset from the file (a remote TIFF's reader sets its own)
        local = bool(tif.filehandle.is_file)
        self._direct = [_direct(tif, lvl) if local else None for lvl in levels]
        self._strips = [
            None if d or not local else _strips(tif, lvl)
            for d, lvl in zip(self._direct, levels, strict=True)
        ]
        dtype = np.dtype(s.dtype)
        self.dtype: np.dtype[Any] = dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype
        self.plane_bytes = self.shape[-1] * self.shape[-2] * self.dtype.itemsize
        self.name: str | None = None
        sizes: dict[str, tuple[float, str | None]] = {}
        channels: list[dict[str, Any]] | None = None
        if tif.is_ome and tif.ome_metadata:
            image = ome_image(tif.ome_metadata, s, tif, series)
            ome = ome_calibration(tif.ome_metadata, image)
            sizes = dict(ome.get("sizes", {}))
            self.name = ome.get("name")
            chans = ome.get("channels", [])
            shown = [c for c in chans if c["label"] or c["color"] not in (None, "FFFFFF")]
            if "c" not in self.axes and len(chans) == 1 and shown:
                self._add_channel_axis()  # a named or colored channel: kept
            if "c" in self.axes and len(chans) == self.shape[self.axes.index("c")]:
                channels = [{"label": c["label"], "color": c["color"]} for c in chans]
        else:
            ij = tif.imagej_metadata or {}

            def ij_text(key: str) -> str | None:
                value = ij.get(key)
                return None if value is None or value == "" else str(value)

            # ImageJ: ``unit`` is x's; ``yunit`` / ``zunit`` when they differ; ``tunit`` is
            # the frame interval's when it is not seconds ("min", "ms", ...); a known unit
            # is what the resolution counts pixels per (a ResolutionUnit of inch, which
            # other writers of ImageJ TIFFs leave, made 0.5 um pixels 12.7 mm)
            ij_unit = _unit(ij_text("unit"))
            res = resolution_pixel_size(s.pages[0], raw=ij_unit is not None)
            if res is not None:
                unit = res[2] if res[2] is not None else ij_unit
                y_unit = _unit(ij_text("yunit")) if res[2] is None and ij_text("yunit") else unit
                sizes["y"], sizes["x"] = (res[0], y_unit), (res[1], unit)
            if (mpp := svs_pixel_size(tif)) is not None:
                sizes["y"] = sizes["x"] = (mpp, "micrometer")
            sizes.update(lsm_calibration(tif))
            spacing = _number(ij_text("spacing"))
            if spacing:
                z_unit = _unit(ij_text("zunit")) if ij_text("zunit") else ij_unit
                sizes["z"] = (spacing, z_unit)
            finterval = _number(ij_text("finterval"))
            if finterval:
                t_unit = _unit(ij_text("tunit")) if ij_text("tunit") else "second"
                sizes["t"] = (finterval, t_unit)
            if ij and "c" in self.axes and "C" in self.series_axes.upper():
                channels = imagej_channels(ij, self.shape[self.axes.index("c")])
            elif ij and "c" not in self.axes and (single := imagej_single(ij)) is not None:
                self._add_channel_axis()  # a channel axis of one carries its display
                if "color" not in single and "color" not in photometric_display(s.pages[0]):
                    single["color"] = "FFFFFF"  # grey, unless a palette colors it
                channels = [single]
            if channels is None and "c" in self.axes and getattr(s, "kind", "") == "qpi":
                channels = qpi_channels(list(s.pages), self.shape[self.axes.index("c")])
        rgb = decoded_rgb(s.pages[0])
        if channels is None and "c" in self.axes and "S" in self.series_axes.upper() and rgb:
            n = self.shape[self.axes.index("c")]
            if n in (3, 4):
                whole = np.iinfo(self.dtype) if self.dtype.kind in "ui" else None
                low, top = (float(whole.min), float(whole.max)) if whole else (0.0, 1.0)
                channels = [  # the whole range: a photo's colors as they are, not stretched
                    {"label": label, "color": color, "window": (low, top)}
                    for label, color in zip(
                        ("red", "green", "blue", "alpha"),
                        ("FF0000", "00FF00", "0000FF", "FFFFFF"),
                        strict=False,
                    )
                ][:n]
        self.channels: list[dict[str, Any]] | None = self._displayed(levels[0].keyframe, channels)
        # a pixel size of 0, below 0 or not finite (writers leave such tags) is no calibration
        sizes = {a: v for a, v in sizes.items() if math.isfinite(v[0]) and v[0] > 0}
        self.scale: tuple[float, ...] = tuple(sizes[a][0] if a in sizes else 1.0 for a in self.axes)
        self.units: tuple[str | None, ...] = tuple(
            sizes[a][1] if a in sizes else None for a in self.axes
        )
        self.translation: tuple[float, ...] = (0.0,) * len(self.axes)

    def _displayed(
        self, page: Any, channels: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """``channels`` with how the TIFF asks its values to be shown (:func:`photometric_display`:
        MinIsWhite, a palette), a channel axis of one added for it if the image has none. The
        metadata's own colors and windows (OME-XML, ImageJ) win over a palette's."""
        display = photometric_display(page)
        if not display:
            return channels
        if "c" not in self.axes:
            self._add_channel_axis()
        count = self.shape[self.axes.index("c")]
        if count > 1 and "window" not in display:
            display.pop("color")  # a MinIsWhite stack's channels keep their own colors
        given = channels if channels is not None else [{} for _ in range(count)]
        return [{**display, **{k: v for k, v in c.items() if v is not None}} for c in given]

    #: whether planes of the series are in files tifffile does not open (a multi-file
    #: OME-TIFF on a store, whose reader reads them itself)
    _planes_elsewhere = False

    def _picked(self, series: int) -> int:
        """tifffile's index of ``series`` (a reader of a set on a store maps it)."""
        return series

    def _counted(self, count: int) -> int:
        """How many series the image has, of ``count`` tifffile found."""
        return count

    def _absent_planes(self, pages: list[Any]) -> list[Any]:
        """``pages`` of the series, ``None`` where a plane is in no file."""
        return pages

    def _add_channel_axis(self) -> None:
        v = sum(_ORDER.index(a) < _ORDER.index("c") for a in self.axes)
        self._virtual = v
        self.axes = (*self.axes[:v], "c", *self.axes[v:])
        self.shape = (*self.shape[:v], 1, *self.shape[v:])
        self.level_shapes = [(*ls[:v], 1, *ls[v:]) for ls in self.level_shapes]

    def physical(self, region: tuple[slice, ...]) -> tuple[slice, ...]:
        """``region`` without the slice of the named channel axis the file has not."""
        v = self._virtual
        return region if v is None else (*region[:v], *region[v + 1 :])

    @property
    def levels(self) -> int:
        """How many resolution levels the TIFF stores (1 for a flat TIFF)."""
        return len(self.level_shapes)

    def _zarr(self, level: int = 0) -> Any:
        if self._arrays[level] is None:
            import zarr

            with self._lock:
                if self._stores[level] is None:
                    # a multi-file OME-TIFF's keyframe may be in a file tifffile closed after
                    # reading its IFDs: JPEG decoding reads it again (closed with the TIFF)
                    handle = self._series.levels[level].keyframe.parent.filehandle
                    if handle.closed:
                        handle.open()
                    self._stores[level] = self._series.aszarr(level=level)
            self._arrays[level] = zarr.open_array(self._stores[level], mode="r")
        return self._arrays[level]

    @property
    def chunks(self) -> tuple[int, ...]:
        """The TIFF's natural read unit (a tile, a strip, one page) in NGFF axis order.

        Opens tifffile's zarr view: call it from a worker thread in async code.
        """
        return self.level_chunks(0)

    def level_chunks(self, level: int) -> tuple[int, ...]:
        """:attr:`chunks` of resolution level ``level`` (from a worker thread in async code).

        Uncompressed data read from the file region by region has no read unit: its strips
        (a whole plane, as ImageJ writes them) are cut to at most 1024 x 1024 in y/x, so that
        a tile of a dataset over the TIFF is no whole plane."""
        src_chunks = self._zarr(level).chunks
        chunks = tuple(int(src_chunks[i]) for i in self._src_of)
        v = self._virtual
        chunks = chunks if v is None else (*chunks[:v], 1, *chunks[v:])
        if self._direct[level] is None:
            return chunks
        return tuple(
            min(c, _DIRECT_TILE) if a in ("y", "x") else c
            for c, a in zip(chunks, self.axes, strict=True)
        )

    def read_sync(self, region: tuple[slice, ...], level: int = 0) -> NDArray[Any]:
        """Read ``region`` (NGFF axis order) of resolution ``level`` in the calling thread."""
        if len(region) != len(self.axes):
            raise ValueError(f"region needs {len(self.axes)} slices")
        if not 0 <= level < len(self.level_shapes):
            raise IndexError(f"level {level} of a TIFF with {len(self.level_shapes)} levels")
        selection = self._source_selection(region)
        with _tiff_errors(self.url, "decode"):
            data = self._select(level, tuple(selection))
        return self._shaped(region, data)

    def _shaped(self, region: tuple[slice, ...], data: NDArray[Any]) -> NDArray[Any]:
        """``data`` (the region's source selection) in NGFF axis order, counted as a read."""
        # the remaining axes are the kept source axes in source order
        kept = sorted(self._src_of)
        data = data.transpose([kept.index(src) for src in self._src_of])
        if self._virtual is not None:
            v = self._virtual
            data = np.expand_dims(data, v)[(slice(None),) * v + (region[v],)]
        if data.dtype.byteorder == ">":
            data = data.astype(self.dtype)
        with self._lock:
            self.reads += 1
            self.bytes_read += data.nbytes
            self.max_read_bytes = max(self.max_read_bytes, data.nbytes)
        return data

    def _source_selection(self, region: tuple[slice, ...]) -> tuple[Any, ...]:
        """``region`` (NGFF axes) as a selection of the series' axes (0 on the dropped ones)."""
        selection: list[Any] = [0] * len(self._map)
        for sl, src in zip(self.physical(region), self._src_of, strict=True):
            selection[src] = sl
        return tuple(selection)

    def _select(self, level: int, selection: tuple[Any, ...]) -> NDArray[Any]:
        """``selection`` (source axes) of ``level``: for uncompressed contiguous data, only
        the bytes of the region, read from the file (an uncompressed plane is often one strip,
        as ImageJ writes it, which tifffile's zarr view reads whole for any region of it: a
        1 GiB plane converted in 32 MiB shards held 2.4 GB); else through that view."""
        direct, strips = self._direct[level], self._strips[level]
        if direct is None and strips is None:
            return np.asarray(self._zarr(level)[selection])
        with self._bytes() as source:
            if direct is not None:
                return _read_contiguous(source, direct, selection)
            assert strips is not None
            return _read_strips(source, strips, selection)

    @contextlib.contextmanager
    def _bytes(self) -> Iterator[ByteSource]:
        """The TIFF's bytes by offset, through a file handle of this read's own."""
        with open(self.url, "rb", buffering=0) as f:
            yield _FileBytes(f, self.url)

    async def read(self, region: tuple[slice, ...], level: int = 0) -> NDArray[Any]:
        """Read ``region`` (one slice per axis, NGFF order) of ``level`` in a worker thread."""
        return await anyio.to_thread.run_sync(self.read_sync, region, level, limiter=self._limiter)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    async def aclose(self) -> None:
        for store in self._stores:
            if store is not None:
                store.close()
        self._tif.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<TiffSource {self.url} axes={''.join(self.axes)} shape={self.shape} {self.dtype}>"


class TiffReader:
    """TIFF / OME-TIFF files (``.tif``, ``.tiff``, ``.ome.tif``, ``.btf``, ...; Aperio ``.svs``,
    Akoya ``.qptiff``, Zeiss ``.lsm``; a multi-file OME-TIFF's ``.companion.ome``) on local
    disk, or on any store by URL (``http(s)://``, ``s3://``, ``gs://``, ``az://``: ranged
    reads)."""

    name = "tiff"

    def can_read(self, url: Any) -> bool:
        return is_tiff_name(url)

    async def open(self, url: Any, **options: Any) -> TiffSource:
        """Open (reads the TIFF header and metadata in a worker thread). Options: ``series``,
        ``threads``; for a URL also ``limits`` and the store's options (S3 ``endpoint``, ...).
        """
        text = os.fspath(url)
        series = int(options.pop("series", 0))
        threads = int(options.pop("threads", 4))
        if is_remote(text):
            from ._tiffremote import open_remote_set, open_remote_tiff

            if urlsplit(text).path.lower().endswith(_COMPANION):
                return await open_remote_set(text, series=series, threads=threads, **options)

            return await open_remote_tiff(text, series=series, threads=threads, **options)
        options.pop("limits", None)
        if options:
            raise TypeError(f"unknown TIFF option(s): {', '.join(options)}")
        path = _local_path(text)
        return await anyio.to_thread.run_sync(lambda: TiffSource(path, series, threads))


def _local_path(text: str) -> str:
    """A local path, or the path of a ``file://`` URL (percent-escapes decoded, as the zarr
    stores decode them: ``file:///data/my%20scan.tif`` is ``/data/my scan.tif``)."""
    if not text.startswith("file://"):
        return text
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(text).path)


def is_remote(url: str) -> bool:
    """Whether ``url`` names an object on a store (a URL other than ``file://``)."""
    return "://" in url and not url.startswith("file://")
