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
import itertools
import logging
import math
import os
import re
import threading
import xml.etree.ElementTree as ET
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self
from urllib.parse import urlsplit

import anyio
import numpy as np

from .._errors import (
    CodecError,
    NgioError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
    UnsupportedError,
)
from ..meta._validate import _SPACE_UNITS, _TIME_UNITS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from numpy.typing import NDArray

__all__ = [
    "TiffReader",
    "TiffSource",
    "is_remote",
    "map_axes",
    "metadata_only",
    "ome_calibration",
    "resolution_pixel_size",
]

_TIFF_SUFFIXES = (
    ".tif",
    ".tiff",
    ".btf",
    ".tf8",
    ".tf2",
    ".svs",
    ".qptiff",
    ".lsm",
    ".companion.ome",
)
_COMPANION = ".companion.ome"  # a multi-file OME-TIFF's OME-XML, its TIFFs BinaryOnly


class MultiFileError(UnsupportedError):
    """A TIFF read over ranges (on a store) is one file of a multi-file OME-TIFF: its planes
    or its metadata are in other files (the remote reader then reads the whole set)."""


_ORDER = "tczyx"
#: SI prefixes by symbol, as OME-XML writes them (``UnitsLength`` / ``UnitsTime``), and the NGFF
#: (UDUNITS-2) units they make with ``m`` and ``s``; NGFF has no deca-units
_PREFIXES = {
    "Y": "yotta",
    "Z": "zetta",
    "E": "exa",
    "P": "peta",
    "T": "tera",
    "G": "giga",
    "M": "mega",
    "k": "kilo",
    "h": "hecto",
    "d": "deci",
    "c": "centi",
    "m": "milli",
    "µ": "micro",
    "n": "nano",
    "p": "pico",
    "f": "femto",
    "a": "atto",
    "z": "zepto",
    "y": "yocto",
}
_UNITS = {
    **{f"{p}m": f"{name}meter" for p, name in _PREFIXES.items()},
    **{f"{p}s": f"{name}second" for p, name in _PREFIXES.items()},
    "m": "meter",
    "s": "second",
    "Å": "angstrom",
    "in": "inch",
    "ft": "foot",
    "yd": "yard",
    "mi": "mile",
    "pc": "parsec",
    "min": "minute",
    "h": "hour",
    "d": "day",
}
#: other spellings, matched in lower case (as are the symbols, after their exact case), a
#: plural's "s" and "metre" reduced
_NAMES = {
    "um": "micrometer",
    "micron": "micrometer",
    "angström": "angstrom",
    "ångström": "angstrom",
    "us": "microsecond",
    "sec": "second",
    "msec": "millisecond",
    "hr": "hour",
    "inches": "inch",
}


def _unit(symbol: str | None) -> str | None:
    """The NGFF unit of an OME-XML or ImageJ unit: a symbol (``µm``, ``nm``, ``Å``, ``ms``;
    the micro sign also as Greek mu or ImageJ's ``\\u00B5``), a name (``micron``,
    ``micrometre``, ``seconds``); ``None`` for ``pixel`` or anything unknown."""
    if symbol is None:
        return None
    s = symbol.strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    s = s.replace("\u03bc", "µ").replace("\u212b", "Å")  # Greek mu, the angstrom sign
    if s in _UNITS:
        return _UNITS[s]
    name = s.lower().replace("metre", "meter")
    for word in (name, name.removesuffix("s")):
        if word in _SPACE_UNITS or word in _TIME_UNITS:
            return word
        if word in _NAMES or word in _UNITS:
            return _NAMES.get(word) or _UNITS[word]
    return None


def map_axes(axes: str, shape: tuple[int, ...]) -> list[str | None]:
    """For each tifffile axis letter: its NGFF axis name, or ``None`` (a dropped axis of size 1).

    :raises UnsupportedError: two axes of more than one element map to the same NGFF axis.
    """
    letters = axes.upper()
    size = dict(zip(letters, shape, strict=True))
    out: list[str | None] = []
    named = {"T": "t", "C": "c", "Z": "z", "Y": "y", "X": "x"}
    taken = {named[a] for a in letters if a in named}
    for a, n in zip(letters, shape, strict=True):
        if a in named:
            if a == "C" and n == 1 and size.get("S", 1) > 1:
                out.append(None)  # the samples axis is the channel axis
                continue
            out.append(named[a])
        elif a == "S":
            if n == 1:
                out.append(None)
            elif size.get("C", 1) > 1:
                raise UnsupportedError(
                    f"TIFF axes {axes} {shape}: both C and S have several channels"
                )
            else:
                out.append("c")
                taken.add("c")
        elif n == 1:
            out.append(None)
        else:
            free = next((t for t in "ztc" if t not in taken), None)
            if free is None:
                raise UnsupportedError(f"TIFF axes {axes} {shape}: no NGFF axis left for {a!r}")
            taken.add(free)
            out.append(free)
    names = [o for o in out if o is not None]
    if len(set(names)) != len(names) or "y" not in names or "x" not in names:
        raise UnsupportedError(f"cannot map TIFF axes {axes} {shape} to NGFF axes")
    return out


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _color(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        rgba = int(value) & 0xFFFFFFFF
    except ValueError:
        return None
    return f"{rgba >> 8:06X}"


def _number(text: str | None) -> float | None:
    """An OME-XML number attribute; ``None`` when absent or not a number (``"abc"``, ``""``)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _plane_interval(pixels: ET.Element) -> tuple[float, str | None] | None:
    """The frame interval of a ``Pixels`` without ``TimeIncrement`` from the ``DeltaT`` of its
    ``Plane`` elements (as Zeiss, Nikon, Leica exports have it): the mean step between the time
    points of the first z and channel, when every step is within 10 % of it; else ``None``."""
    times: dict[int, float] = {}
    unit = "s"
    for plane in pixels:
        if _local(plane.tag) != "Plane" or plane.get("TheZ", "0") != "0":
            continue
        t, delta = _number(plane.get("TheT", "0")), _number(plane.get("DeltaT"))
        if plane.get("TheC", "0") != "0" or t is None or delta is None:
            continue
        times.setdefault(int(t), delta)
        unit = plane.get("DeltaTUnit", unit)
    if len(times) < 2:
        return None
    ts = sorted(times)
    steps = [(times[b] - times[a]) / (b - a) for a, b in itertools.pairwise(ts)]
    mean = (times[ts[-1]] - times[ts[0]]) / (ts[-1] - ts[0])
    if not math.isfinite(mean) or mean <= 0 or any(abs(x - mean) > 0.1 * mean for x in steps):
        return None
    return mean, _unit(unit)


def ome_calibration(xml: str, image: int = 0) -> dict[str, Any]:
    """Pixel sizes (``{"x": (size, unit), ...}``) and channels from OME-XML, for ``Image`` n.

    A malformed value (``PhysicalSizeX="abc"``) is no calibration of its axis, and XML that
    does not parse is none at all: the pixels are still readable.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    images = [e for e in root if _local(e.tag) == "Image"]
    if not images:
        return {}
    img = images[min(image, len(images) - 1)]
    pixels = next((e for e in img if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return {}
    sizes: dict[str, tuple[float, str | None]] = {}
    for axis in ("X", "Y", "Z"):
        value = _number(pixels.get(f"PhysicalSize{axis}"))
        if value is not None:
            sizes[axis.lower()] = (value, _unit(pixels.get(f"PhysicalSize{axis}Unit", "µm")))
    dt = _number(pixels.get("TimeIncrement"))
    if dt is not None and dt > 0:
        sizes["t"] = (dt, _unit(pixels.get("TimeIncrementUnit", "s")))
    elif (steps := _plane_interval(pixels)) is not None:
        sizes["t"] = steps
    channels = [
        {
            "label": c.get("Name"),
            "color": _color(c.get("Color")),
            "samples": int(_number(c.get("SamplesPerPixel")) or 1),
        }
        for c in pixels
        if _local(c.tag) == "Channel"
    ]
    return {"sizes": sizes, "channels": channels, "name": img.get("Name")}


def ome_image(xml: str, series: Any, tif: Any, default: int) -> int:
    """The index of the OME-XML ``Image`` whose ``TiffData`` holds the first page of tifffile's
    ``series`` (tifffile skips an Image with no page in the file, or one stored in a way it
    cannot read, so its series are not always the Images in order); ``default`` when none
    does. ``tif``: the file holding the XML (its ``TiffData`` without ``UUID``)."""
    page = next((p for p in series.pages if p is not None), None)
    try:
        root = ET.fromstring(xml)
        parent = page.parent if page is not None else None
        file = os.path.basename(str(parent.filehandle.name)) if parent is not None else None
        index = int(page.index) if page is not None else -1
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        return default
    images = [e for e in root if _local(e.tag) == "Image"]
    for i, img in enumerate(images):
        for data in img.iter():
            if _local(data.tag) != "TiffData":
                continue
            uuid = next((u for u in data if _local(u.tag) == "UUID"), None)
            where = uuid.get("FileName") if uuid is not None else None
            if (os.path.basename(where) != file) if where else (parent is not tif):
                continue
            first = int(_number(data.get("IFD")) or 0)
            count = _number(data.get("PlaneCount"))  # default: 1 from an IFD, else all
            count = 1 if count is None and data.get("IFD") is not None else count
            if first <= index and (count is None or index < first + count):
                return i
    return default


def metadata_only(xml: str, images: int) -> str | None:
    """``xml`` (a TIFF's OME-XML) as bioformats2raw keeps it beside the zarr images: each
    ``Pixels``' ``TiffData`` / ``BinData`` (where the pixels were) replaced by one
    ``<MetadataOnly/>``. ``None`` when it does not parse or has not one ``Image`` per image
    converted (``images``): the container then goes without it."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    if sum(_local(e.tag) == "Image" for e in root) != images:
        return None
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    for pixels in root.iter(f"{{{ns}}}Pixels" if ns else "Pixels"):
        data = [e for e in pixels if _local(e.tag) in ("TiffData", "BinData", "BinaryOnly")]
        if not data:
            continue
        at = list(pixels).index(data[0])
        for e in data:
            pixels.remove(e)
        pixels.insert(at, ET.Element(f"{{{ns}}}MetadataOnly" if ns else "MetadataOnly"))
    return ET.tostring(root, encoding="unicode")


def imagej_channels(ij: dict[str, Any], count: int) -> list[dict[str, Any]] | None:
    """The ``count`` channels of an ImageJ hyperstack with the display settings ImageJ saved:
    ``color`` (and ``inverted``) from each channel's LUT (``LUTs``, as a palette:
    :func:`palette_display`), ``window`` its display range (``Ranges``: start, end per
    channel). Settings of another number of channels are ignored (a channel without them gets
    a window from its pixels)."""
    if count < 1:
        return None
    channels: list[dict[str, Any]] = [{} for _ in range(count)]
    luts = ij.get("LUTs")
    if isinstance(luts, list | tuple) and len(luts) == count:
        for channel, lut in zip(channels, luts, strict=True):
            shown = palette_display(lut)
            shown.pop("window", None)  # a LUT spans the display range, not the values
            channel.update(shown)
    ranges = ij.get("Ranges")
    if isinstance(ranges, list | tuple) and len(ranges) == 2 * count:
        values = [_number(str(v)) for v in ranges]
        for i, channel in enumerate(channels):
            lo, hi = values[2 * i], values[2 * i + 1]
            if lo is not None and hi is not None and math.isfinite(lo) and lo < hi < math.inf:
                channel["window"] = (lo, hi)
    return channels


def imagej_single(ij: dict[str, Any]) -> dict[str, Any] | None:
    """The channel of a one-channel ImageJ image as Fiji shows it: its LUT's ``color`` (and
    ``inverted``; ``LUTs``: one, as a hyperstack's, :func:`imagej_channels`), no color for a
    grey or no LUT; ``window`` its display range (``min``, ``max``, else ``Ranges``). ``None``
    for a grey image without a display range (nothing to keep)."""
    luts = ij.get("LUTs")  # tifffile gives one LUT as the array itself
    if isinstance(luts, np.ndarray) and luts.ndim == 2:
        luts = [luts]
    if not isinstance(luts, list | tuple) or len(luts) != 1:
        luts = None
    ranges = (ij.get("min"), ij.get("max"))
    if None in ranges:  # a one-channel composite keeps its range as a hyperstack's
        ranges = ij.get("Ranges") or ranges
    settings = {"LUTs": luts, "Ranges": ranges}
    (channel,) = imagej_channels(settings, 1) or [{}]
    if channel.get("color", "FFFFFF") == "FFFFFF" and not channel.get("inverted"):
        channel.pop("color", None)  # grey: the file's palette, else white (see TiffSource)
        return channel if "window" in channel else None
    return channel


def _hex(rgb: NDArray[Any]) -> str:
    return "{:02X}{:02X}{:02X}".format(*(int(v) for v in rgb))


def palette_display(colormap: Any) -> dict[str, Any]:
    """The display of a TIFF palette (``ColorMap``, 3 x n entries of 16 or 8 bits) over the
    values, which are kept: ``color``, and ``window`` the palette's whole range (0 to n - 1).
    A ramp of one color from black (ImageJ's "Green" LUT) is that color, exactly; a ramp from
    one color down to black is that color ``inverted``; any other palette ("Fire", a map of
    classes) has no one color: its brightest entry stands for it (as for ImageJ LUTs)."""
    pal = np.asarray(colormap, dtype=np.float64)
    if pal.ndim != 2 or pal.shape[0] != 3 or pal.shape[1] < 2 or not np.isfinite(pal).all():
        return {}
    full = 65535.0 if pal.max() > 255 else 255.0
    rgb = np.clip(np.round(pal / full * 255), 0, 255)
    n = pal.shape[1]
    window = (0.0, float(n - 1))
    steps = np.linspace(0.0, 1.0, n)
    for end, weights in ((-1, steps), (0, steps[::-1])):
        color = pal[:, end]
        if color.any() and np.allclose(pal, np.outer(color, weights), atol=0.02 * full):
            shown = {"color": _hex(rgb[:, end]), "window": window}
            return shown if end else {**shown, "inverted": True}
    return {"color": _hex(rgb[:, int(rgb.sum(axis=0).argmax())]), "window": window}


def photometric_display(page: Any) -> dict[str, Any]:
    """How a page's photometric interpretation asks its stored values to be shown, as channel
    settings (the values are converted as stored, as scientific readers read them):
    MinIsWhite (0 is white) is ``inverted`` white; a palette per :func:`palette_display`;
    nothing for any other."""
    photometric = int(getattr(page, "photometric", -1))
    if photometric == 0:  # MINISWHITE
        return {"inverted": True, "color": "FFFFFF"}
    colormap = getattr(page, "colormap", None)
    if photometric == 3 and colormap is not None:  # PALETTE
        return palette_display(colormap)
    return {}


#: compressions whose YCbCr tiles tifffile (the JPEG decoders) decodes to RGB: old-style and
#: new JPEG, JPEG XL (DNG), JPEG 2000 (Leica SCN, Aperio)
_JPEG_RGB = (6, 7, 34892, 33007)


def decoded_rgb(page: Any) -> bool:
    """Whether a page's samples read as red, green, blue (and alpha): photometric RGB, or
    YCbCr compressed as JPEG (whole-slide images), which the decoder turns into RGB."""
    photometric = int(getattr(page, "photometric", -1))
    return photometric == 2 or (
        photometric == 6 and int(getattr(page, "compression", 1)) in _JPEG_RGB
    )


def resolution_pixel_size(
    page: Any, *, raw: bool = False
) -> tuple[float, float, str | None] | None:
    """``(y, x, unit)`` pixel sizes from a page's resolution tags; ``None`` without them.

    Inch and centimeter (and tifffile's millimeter / micrometer) give micrometer; a resolution
    without unit gives ``unit=None``. ``raw``: pixels per unit of another's saying (ImageJ's
    ``unit``, as ImageJ reads it whatever the ``ResolutionUnit``): ``unit=None``, as stored.
    """
    tags = page.tags
    xres, yres = tags.get("XResolution"), tags.get("YResolution")
    if xres is None or yres is None:
        return None
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2
    per_unit = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(unit)

    def size(value: Any) -> float | None:
        num, den = value if isinstance(value, tuple) else (value, 1)
        return float(den) / float(num) if num else None

    sx, sy = size(xres.value), size(yres.value)
    if sx is None or sy is None:
        return None
    if per_unit is None or raw:
        return sy, sx, None
    if sx == 1.0 and sy == 1.0 and unit == 2:
        return None  # 1 pixel per inch: the writer's default, not a calibration
    return sy * per_unit, sx * per_unit, "micrometer"


def svs_pixel_size(tif: Any) -> float | None:
    """The pixel size in micrometer of an Aperio SVS whole-slide image (``MPP`` in its image
    description: ``Aperio Image Library ...|AppMag = 20|MPP = 0.4990``); ``None`` otherwise."""
    if not getattr(tif, "is_svs", False):
        return None
    for item in str(tif.pages.first.description or "").split("|")[1:]:
        key, _, value = item.partition("=")
        if key.strip() == "MPP":
            mpp = _number(value.strip())
            return mpp if mpp is not None and math.isfinite(mpp) and mpp > 0 else None
    return None


def lsm_calibration(tif: Any) -> dict[str, tuple[float, str | None]]:
    """The voxel size (``VoxelSizeX/Y/Z``, meters, as micrometer) and frame interval
    (``TimeIntervall``, seconds) of a Zeiss LSM file's ``CZ_LSMINFO``; ``{}`` for another TIFF."""
    info = tif.lsm_metadata if getattr(tif, "is_lsm", False) else None
    if not isinstance(info, dict):
        return {}
    sizes: dict[str, tuple[float, str | None]] = {}
    for axis in "xyz":
        value = _number(str(info.get(f"VoxelSize{axis.upper()}")))
        if value is not None and math.isfinite(value) and value > 0:
            sizes[axis] = (float(f"{value * 1e6:.12g}"), "micrometer")  # 0.2, not 0.19999...98
    interval = _number(str(info.get("TimeIntervall")))
    if interval is not None and math.isfinite(interval) and interval > 0:
        sizes["t"] = (interval, "second")
    return sizes


def qpi_channels(pages: list[Any], count: int) -> list[dict[str, Any]] | None:
    """The ``count`` channels of a PerkinElmer / Akoya QPTIFF (one page per channel, each page's
    ``PerkinElmer-QPI-ImageDescription`` XML giving its ``Name`` and ``Color`` "R,G,B");
    ``None`` when the pages do not describe them all."""
    if len(pages) != count:
        return None
    channels: list[dict[str, Any]] = []
    for page in pages:
        try:
            root = ET.fromstring(str(page.description or ""))  # (its "utf-16" declared)
        except (ET.ParseError, AttributeError):
            return None
        name = root.findtext("Name")
        rgb = [_number(v) for v in (root.findtext("Color") or "").split(",")]
        color = None
        if len(rgb) == 3 and all(v is not None and 0 <= v <= 255 for v in rgb):
            color = "".join(f"{int(v or 0):02X}" for v in rgb)
        channels.append({"label": name.strip() if name else None, "color": color})
    return channels


@contextlib.contextmanager
def _tiff_errors(url: str, what: str) -> Iterator[None]:
    """tifffile's and the codecs' exceptions as ``CodecError`` naming the file (invalid data:
    the CLI exits 1, as for broken zarr chunks); a missing or unreadable file is a
    ``NotFoundError`` / ``PermissionDeniedError`` / ``StoreError`` (not invalid data)."""
    try:
        yield
    except (NgioError, MemoryError):
        raise
    except FileNotFoundError as exc:
        raise NotFoundError(f"no such TIFF file: {url}", url=url) from exc
    except PermissionError as exc:
        raise PermissionDeniedError(f"cannot read {url}: permission denied", url=url) from exc
    except OSError as exc:
        if exc.errno is not None:  # the OS refused (a directory, an I/O error): no bad data
            raise StoreError(f"cannot read {url}: {exc.strerror or exc}", url=url) from exc
        raise _codec_error(url, what, exc) from exc
    except Exception as exc:
        if getattr(exc, "control_flow", False):  # the remote reader's "fetch these bytes"
            raise
        raise _codec_error(url, what, exc) from exc


def _codec_error(url: str, what: str, exc: Exception) -> CodecError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CodecError(f"cannot {what} {url}: {type(exc).__name__}: {text}", key=url)


def _check_codecs(url: str, pages: Any) -> None:
    """Refuse, at open, a TIFF whose compression or predictor tifffile cannot decode here
    (JPEG, LZW, ... need the ``imagecodecs`` package): a conversion would otherwise fail at
    its first tile, after the destination was created."""
    from tifffile import TIFF

    for page in pages:
        if page is None:
            continue
        compression, predictor = int(page.compression), int(page.predictor)
        try:
            if compression != 1:
                _probe(TIFF.DECOMPRESSORS[compression], page.compression)
            if predictor != 1 and compression not in TIFF.IMAGE_COMPRESSIONS:
                TIFF.UNPREDICTORS[predictor]
        except KeyError as exc:
            why = str(exc).strip("'\"") or f"compression {compression}"
            hint = " (pip install imagecodecs, or ngio_async[tiff])" if "imagecodecs" in why else ""
            raise UnsupportedError(f"cannot decode {url}: {why}{hint}") from None


#: what tifffile logs (as errors, and then reads on with what it found) for a TIFF whose page
#: chain or series layout is broken: a truncated file, most often
_BROKEN = (
    "invalid page offset",
    "invalid offset to page",
    "corrupted tag list",
    "failed to reshape",
)


class _BrokenLog(logging.Handler):
    """tifffile's reports of a broken structure (:data:`_BROKEN`) logged by this thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            text = record.getMessage()
            if any(b in text for b in _BROKEN):
                self.messages.append(text.split("> ", 1)[-1])


class _MissingFilesLog(logging.Handler):
    """tifffile's warnings, logged by this thread, that an OME series' other files (a multi-file
    OME-TIFF) could not be read: it reads on with those planes zeroed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.files: list[str] = []
        self.count = 0  # how many files, when tifffile tells (it names the first only)

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            text = record.getMessage()
            if "failed to read '" in text:
                self.files.append(text.split("failed to read '", 1)[1].split("'", 1)[0])
            elif "OME series failed to read " in text and text.endswith(" files"):
                with contextlib.suppress(ValueError):
                    self.count = int(text.rsplit(" ", 2)[-2])


@contextlib.contextmanager
def _refuse_missing_files(url: str, remote: bool) -> Iterator[None]:
    """Raise ``NotFoundError`` (``UnsupportedError`` for a TIFF on a store) when tifffile could
    not read the other files of a multi-file OME-TIFF while this block parses: their planes
    would be converted as zeros, the conversion looking complete."""
    log = logging.getLogger("tifffile")
    handler = _MissingFilesLog()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.files:
        names = ", ".join(dict.fromkeys(handler.files))
        more = handler.count - len(set(handler.files))
        if more > 0:
            names += f" and {more} more file{'s' if more > 1 else ''}"
        if remote:
            raise MultiFileError(
                f"{url} is a multi-file OME-TIFF: its planes in other files ({names}) are read from local "
                "files only (copy the files to one directory and convert from there)"
            )
        raise NotFoundError(
            f"{url} is a multi-file OME-TIFF whose OME-XML puts planes in {names}, which "
            "could not be read (missing or unreadable beside it)",
            url=url,
        )


@contextlib.contextmanager
def _refuse_broken(url: str) -> Iterator[None]:
    """Raise ``CodecError`` when tifffile reports a broken page chain or series while this
    block parses: it would read on with the pages it found (a 4-page stack truncated after its
    first page is a 2-D image), and the conversion would look complete."""
    log = logging.getLogger("tifffile")
    handler = _BrokenLog()
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
    if handler.messages:
        raise CodecError(f"{url} is truncated or corrupt: {handler.messages[0]}", key=url)


def _check_extent(url: str, pages: Any, size: int, tif: Any = None) -> None:
    """Refuse pages whose pixel data ends past the end of the file (``size`` bytes): a TIFF
    cut short after its IFDs, whose conversion would fail at its last tiles. A page of another
    file than ``tif`` (a multi-file OME-TIFF) is checked against that file's size."""
    for page in pages:
        if page is None:
            continue
        name, limit = url, size
        parent = getattr(page, "parent", tif)
        if tif is not None and parent is not tif:
            fh = parent.filehandle
            name, limit = str(getattr(fh, "path", "") or url), int(getattr(fh, "size", 0) or 0)
            if not 0 < limit < 1 << 60:
                continue
        ends = [
            int(o) + int(n)
            for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)
            if int(n)
        ]
        if ends and max(ends) > limit:
            raise CodecError(
                f"{name} is truncated: its pixel data runs to byte {max(ends)}, "
                f"the file has {limit} bytes",
                key=url,
            )


def _warn_absent_planes(url: str, series: int, pages: list[Any]) -> None:
    """Warn (``MetadataWarning``) when planes an OME-XML lists are in no page of the file
    (an aborted acquisition, or planes never acquired: tifffile reads them as zeros)."""
    absent = [i for i, p in enumerate(pages) if p is None]
    if not absent:
        return
    import warnings

    from ..meta import MetadataWarning

    first, last = absent[0], absent[-1]
    which = f"plane {first}" if len(absent) == 1 else f"planes {first} to {last}"
    if len(absent) not in (1, last - first + 1):
        which = f"{len(absent)} planes ({first} to {last})"
    warnings.warn(
        f"{url}: {which} of the {len(pages)} planes its OME-XML (TiffData) lists for series "
        f"{series} are in no page of the file (an aborted acquisition, or planes never "
        "acquired): they read as zeros",
        MetadataWarning,
        stacklevel=2,
    )


def _probe(decompress: Any, compression: Any) -> None:
    """Raise ``KeyError`` when ``decompress`` is a stand-in that needs a missing module:
    tifffile's ZSTD decoder without ``imagecodecs`` imports ``compression.zstd`` (Python 3.14)
    only when it is called. Any other error (no valid stream in no bytes) is no verdict."""
    try:
        decompress(b"")
    except ImportError:
        raise KeyError(f"{compression!r} requires the 'imagecodecs' package") from None
    except Exception:  # noqa: BLE001, S110 - a real decoder refusing empty input
        pass


def binary_only(xml: str | None) -> str | None:
    """The ``MetadataFile`` an OME-XML of ``BinaryOnly`` names (a TIFF of a multi-file
    OME-TIFF whose metadata are in a companion file or another TIFF of the set; ``""`` when it
    names none); ``None`` for any other OME-XML."""
    if not xml or "BinaryOnly" not in xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    found = next((e for e in root if _local(e.tag) == "BinaryOnly"), None)
    return None if found is None else found.get("MetadataFile", "")


def _first_tiff(xml: str, where: str) -> str:
    """The file of a companion OME-XML's first ``TiffData`` (its ``UUID FileName``).

    :raises UnsupportedError: it names none (or does not parse)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise UnsupportedError(f"{where}: not OME-XML ({exc})") from None
    for e in root.iter():
        if _local(e.tag) == "UUID" and e.get("FileName"):
            return str(e.get("FileName"))
    raise UnsupportedError(f"{where}: no TiffData names a file (UUID FileName)")


def _named_files(xml: str, folder: str) -> list[str]:
    """The files an OME-XML's ``TiffData`` name (``UUID FileName``), once each, in order."""
    names = (e.get("FileName") for e in ET.fromstring(xml).iter() if _local(e.tag) == "UUID")
    return [os.path.join(folder, n) for n in dict.fromkeys(n for n in names if n)]


def set_files(path: str) -> list[str] | None:
    """The files of the multi-file OME-TIFF that the local file ``path`` belongs to (any of
    them converts the whole set): its companion file first (``.companion.ome``), then the TIFFs
    its OME-XML names, in order; ``None`` for a file that is a whole image by itself, or that
    does not read (its conversion says why). Reads the first IFD of ``path`` (and of the TIFF
    a ``BinaryOnly`` one names)."""
    import tifffile

    logger = tifffile.logger()
    thread = threading.get_ident()

    def others(record: logging.LogRecord) -> bool:  # a broken file's report is its conversion's
        return record.thread != thread

    logger.addFilter(others)
    try:
        return _set_files(path, follow=True)
    except (OSError, ValueError, ET.ParseError, NgioError):
        return None
    finally:
        logger.removeFilter(others)


def _set_files(path: str, *, follow: bool) -> list[str] | None:
    import tifffile

    folder = os.path.dirname(path)
    if path.lower().endswith(_COMPANION):
        return [path, *_named_files(_read_xml(path, path), folder)]
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata if tif.is_ome else None
    meta = binary_only(xml)
    if meta is not None:  # its OME-XML is in the file it names: that file's set
        target = os.path.join(folder, meta)
        if not meta or not follow or not os.path.isfile(target):
            return None  # its conversion says what is missing
        return _set_files(target, follow=False)
    files = _named_files(xml, folder) if xml else []
    if not any(not os.path.exists(f) or not os.path.samefile(f, path) for f in files):
        return None  # it names no other file
    return files


def _open_local(path: str) -> Any:
    """A local TIFF as a ``tifffile.TiffFile``, with the whole multi-file OME-TIFF it belongs
    to: a companion OME-XML (``.companion.ome``) opens its first TIFF with it; a TIFF whose
    OME-XML is ``BinaryOnly`` opens with the XML of the ``MetadataFile`` it names (a companion
    file), or as that file (the set's TIFF holding the XML, as Micro-Manager writes them).

    :raises NotFoundError: the companion or metadata file is missing.
    """
    import tifffile

    if path.lower().endswith(_COMPANION):
        xml = _read_xml(path, path)
        name = _first_tiff(xml, path)
        first = os.path.join(os.path.dirname(path), name)
        if not os.path.isfile(first):
            raise NotFoundError(f"{path} puts its first planes in {name}, not found beside it")
        return tifffile.TiffFile(first, omexml=xml)
    tif = tifffile.TiffFile(path)
    try:
        if tif.is_ome and (mended := _mended_xml(path, tif.ome_metadata)) is not None:
            tif.close()
            return tifffile.TiffFile(path, omexml=mended)
        meta_name = binary_only(tif.ome_metadata if tif.is_ome else None)
        if not meta_name:
            return tif
        meta = os.path.join(os.path.dirname(path), meta_name)
        if not meta.lower().endswith(_COMPANION) and is_tiff_name(meta):
            opened = tifffile.TiffFile(_existing(meta, path))
            if binary_only(opened.ome_metadata if opened.is_ome else None) is None:
                tif.close()
                return opened
            opened.close()
            raise UnsupportedError(f"{path}: its metadata file {meta_name} holds no OME-XML")
        xml = _read_xml(_existing(meta, path), path)
    except BaseException:
        tif.close()
        raise
    tif.close()
    return tifffile.TiffFile(path, omexml=xml)


#: what makes writers' OME-XML ill-formed: an ``&`` that starts no entity (a channel named
#: "GFP & RFP"), control characters (in a name or description)
_BARE_AMPERSAND = re.compile(r"&(?!(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_error(xml: str | None) -> str | None:
    """Why ``xml`` does not parse; ``None`` when it does (or there is none)."""
    if not xml:
        return None
    try:
        ET.fromstring(xml)
    except ET.ParseError as exc:
        return str(exc)
    return None


def _mended_xml(url: str, xml: str | None) -> str | None:
    """``xml`` (a TIFF's OME-XML) that does not parse, with a bare ``&`` escaped and control
    characters removed, when that makes it parse (with a ``MetadataWarning`` saying so: tifffile
    reads such a file as plain pages, without its dimensions and metadata); else ``None``."""
    if _xml_error(xml) is None:
        return None
    assert xml is not None
    mended = _CONTROL.sub("", _BARE_AMPERSAND.sub("&amp;", xml))
    if _xml_error(mended) is not None:
        return None
    _warn(
        f"{url}: its OME-XML does not parse ({_xml_error(xml)}): read with its bare '&' escaped and control characters removed"
    )
    return mended


def _warn(text: str) -> None:
    import warnings

    from ..meta import MetadataWarning

    warnings.warn(text, MetadataWarning, stacklevel=3)


def _existing(meta: str, path: str) -> str:
    """``meta``, the metadata file a multi-file OME-TIFF's ``path`` names, if it exists.

    :raises NotFoundError: it does not."""
    if not os.path.isfile(meta):
        raise NotFoundError(
            f"{path} holds pixels only (OME-XML BinaryOnly): its metadata are in "
            f"{os.path.basename(meta)}, not found beside it",
            url=path,
        )
    return meta


def _read_xml(meta: str, path: str) -> str:
    """The OME-XML text of ``meta`` (a companion file of ``path``)."""
    with open(meta, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    if not text.rstrip().endswith("OME>"):
        raise UnsupportedError(f"{path}: {os.path.basename(meta)} is no OME-XML document")
    return text


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
                f"in {where}, of a multi-file OME-TIFF read from local files only (copy them to "
                "one directory and convert from there)"
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
                _refuse_missing_files(self.url, not self._tif.filehandle.is_file),
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
        self.series_count = count
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
        s = tif.series[series]
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
        _warn_absent_planes(self.url, series, list(s.pages))
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


_Direct = tuple[tuple[int, ...], np.dtype[Any], tuple[int, ...], int]


class ByteSource(Protocol):
    """A TIFF's bytes by offset (a local file, or the ranges fetched of a remote one)."""

    def read_at(self, offset: int, n: int) -> bytes | bytearray:
        """Up to ``n`` bytes from ``offset`` (fewer at the end of the file)."""
        ...

    def fill_at(self, offset: int, out: memoryview) -> None:
        """``out`` filled with the bytes from ``offset``."""
        ...

    def view_at(self, offset: int, n: int) -> bytes | bytearray | memoryview:
        """As :meth:`read_at`, without a copy where the bytes are in memory already."""
        ...


class _FileBytes:
    """:class:`ByteSource` over an open local file (``name`` for errors)."""

    def __init__(self, f: Any, name: str) -> None:
        self.f = f
        self.name = name

    def read_at(self, offset: int, n: int) -> bytes:
        self.f.seek(offset)
        return bytes(self.f.read(n))

    def view_at(self, offset: int, n: int) -> bytes:
        return self.read_at(offset, n)

    def fill_at(self, offset: int, out: memoryview) -> None:
        self.f.seek(offset)
        while out.nbytes:
            n = self.f.readinto(out)
            if not n:
                raise CodecError(f"{self.name} is truncated: pixel data missing", key=self.name)
            out = out[n:]


_DIRECT_TILE = 1024  # y/x chunks of uncompressed levels read from the file


def _direct(tif: Any, level: Any) -> _Direct | None:
    """``(offsets, dtype, shape, lead)`` of a level whose pixels lie uncompressed in the
    file, each page's contiguous (``offsets``: one per page; the first ``lead`` axes of
    ``shape`` number the pages), or the whole level's (one offset, ``lead`` 0: as
    :func:`tifffile.memmap` maps it); else ``None``."""
    try:
        key = level.keyframe
        if key.dtype is None or not key.is_final:
            return None
        if int(key.bitspersample) != key.dtype.itemsize * 8:
            return None
        dtype = np.dtype(tif.byteorder + key.dtype.char)
        shape = tuple(int(n) for n in level.shape)
        if level.dataoffset is not None:
            return (int(level.dataoffset),), dtype, shape, 0
        pages = list(level.pages)
        lead = len(shape) - len(key.shape)
        if lead < 0 or shape[lead:] != tuple(int(n) for n in key.shape):
            return None
        if math.prod(shape[:lead]) != len(pages):
            return None
        if any(p is None or not len(p.dataoffsets) or not p.is_final for p in pages):
            return None
        if any(getattr(p, "parent", tif) is not tif for p in pages):
            return None  # a multi-file OME-TIFF: its other files' pages go through tifffile
        return tuple(int(p.dataoffsets[0]) for p in pages), dtype, shape, lead
    except (AttributeError, TypeError, ValueError):
        return None


def _bounds(selection: tuple[Any, ...], shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(start, stop)`` per axis of ``selection`` (integers and step-1 slices)."""
    bounds: list[tuple[int, int]] = []
    for sel, n in zip(selection, shape, strict=True):
        if isinstance(sel, slice):
            start, stop, step = sel.indices(n)
            if step != 1:
                raise ValueError(f"step {step} in a TIFF region")
            bounds.append((start, max(start, stop)))
        else:
            i = int(sel) + (n if int(sel) < 0 else 0)
            bounds.append((i, i + 1))
    return bounds


def _squeezed(out: NDArray[Any], selection: tuple[Any, ...]) -> NDArray[Any]:
    """``out`` (one axis per selection item) without the axes selected by an integer."""
    return out.reshape(
        [n for n, sel in zip(out.shape, selection, strict=True) if isinstance(sel, slice)]
    )


def _runs(direct: _Direct, selection: tuple[Any, ...]) -> list[tuple[int, int]]:
    """``(offset, bytes)`` in the file of each contiguous run of ``selection`` (integers and
    step-1 slices) of a level :func:`_direct` located (a row segment, or several whole rows of
    a page), in the region's C order; all runs are of one length."""
    offsets, dtype, shape, lead = direct
    bounds = _bounds(selection, shape)
    if any(b <= a for a, b in bounds):
        return []
    # axes after k are whole: a run spans axis k's range and everything after it in a page
    k = len(shape) - 1
    while k > lead and bounds[k] == (0, shape[k]):
        k -= 1
    strides = [math.prod(shape[i + 1 :]) for i in range(lead, len(shape))]
    size = math.prod(b - a for a, b in bounds[k:]) * dtype.itemsize
    out: list[tuple[int, int]] = []
    for index in itertools.product(*(range(a, b) for a, b in bounds[:k])):
        page = int(np.ravel_multi_index(index[:lead], shape[:lead])) if lead else 0
        inner = sum(i * st for i, st in zip(index[lead:], strides, strict=False))
        inner += bounds[k][0] * strides[k - lead]
        out.append((offsets[page] + inner * dtype.itemsize, size))
    return out


def _read_contiguous(
    source: ByteSource, direct: _Direct, selection: tuple[Any, ...]
) -> NDArray[Any]:
    """``array[selection]`` (integers and step-1 slices) of a level :func:`_direct` located,
    one read per contiguous run of the region (:func:`_runs`): no more bytes than the region's
    are read or kept."""
    bounds = _bounds(selection, direct[2])
    out = np.empty([b - a for a, b in bounds], direct[1])
    if out.size:
        spans = _runs(direct, selection)
        for row, (offset, _) in zip(out.reshape(len(spans), -1), spans, strict=True):
            source.fill_at(offset, memoryview(row.view(np.uint8).data))
    return _squeezed(out, selection)


class _Strips(NamedTuple):
    """Where a level's compressed strips lie in the file (see :func:`_strips`)."""

    offsets: tuple[tuple[int, ...], ...]  # per page, per strip
    counts: tuple[tuple[int, ...], ...]
    dtype: np.dtype[Any]  # in the file's byte order
    shape: tuple[int, ...]  # the level's: ``lead`` axes numbering the pages, then y, x(, s)
    lead: int
    rows: int  # per strip
    predictor: bool  # horizontal differencing
    compression: int = 8  # the TIFF Compression tag's value

    @property
    def streamed(self) -> bool:
        """Whether a strip decodes a piece at a time (deflate) rather than whole."""
        return self.compression in _STREAMED


_PIECE = 1 << 16  # bytes decoded (and read compressed) at a time
_STREAMED = (8, 32946)  # deflate: zlib decodes a piece of a strip at a time
#: compressions whose strips ``imagecodecs`` decodes into a given buffer, and (``_STOPS``)
#: those that stop where the buffer ends (a strip's rows down to the region's last)
_WHOLE = {5: "lzw", 32773: "packbits", 34925: "lzma", 34926: "zstd", 50000: "zstd"}
_STOPS = (5, 34925)


def _decoder(compression: int) -> Any:
    """``imagecodecs``' decoder of the strips of ``compression`` (one of :data:`_WHOLE`);
    ``None`` without the package (tifffile then reads the level, or the open refuses it)."""
    try:
        import imagecodecs
    except ImportError:
        return None
    return getattr(imagecodecs, f"{_WHOLE[compression]}_decode", None)


def _strips(tif: Any, level: Any) -> _Strips | None:
    """The strips of a level whose pages are compressed strips (no tiles): deflate, or with
    ``imagecodecs`` LZW, PackBits, LZMA, ZSTD; with no predictor or horizontal differencing of
    integers. :func:`_read_strips` decodes them (deflate piece by piece, the others a strip at
    a time); ``None`` for any other layout (read through tifffile)."""
    try:
        key = level.keyframe
        if key.dtype is None or key.is_tiled or int(key.fillorder) != 1:
            return None
        compression = int(key.compression)
        if compression not in _STREAMED and (
            compression not in _WHOLE or _decoder(compression) is None
        ):
            return None
        predictor = int(key.predictor)
        if predictor not in (1, 2) or (predictor == 2 and key.dtype.kind not in "ui"):
            return None
        if int(key.bitspersample) != key.dtype.itemsize * 8 or key.shaped[:2] != (1, 1):
            return None
        shape = tuple(int(n) for n in level.shape)
        page_shape = tuple(int(n) for n in key.shape)
        lead = len(shape) - len(page_shape)
        if lead < 0 or shape[lead:] != page_shape or len(page_shape) not in (2, 3):
            return None
        pages = list(level.pages)
        if math.prod(shape[:lead]) != len(pages) or any(p is None for p in pages):
            return None
        if any(getattr(p, "parent", tif) is not tif for p in pages):
            return None
        rows = min(int(key.rowsperstrip) or page_shape[0], page_shape[0])
        strips = -(-page_shape[0] // rows)
        offsets = tuple(tuple(int(o) for o in p.dataoffsets) for p in pages)
        counts = tuple(tuple(int(n) for n in p.databytecounts) for p in pages)
        if any(len(o) != strips or len(n) != strips for o, n in zip(offsets, counts, strict=True)):
            return None
        dtype = np.dtype(tif.byteorder + key.dtype.char)
        return _Strips(offsets, counts, dtype, shape, lead, rows, predictor == 2, compression)
    except (AttributeError, TypeError, ValueError):
        return None


def _inflate(
    source: ByteSource, offset: int, count: int, nbytes: int, piece: int
) -> Iterator[bytes]:
    """The first ``nbytes`` of the zlib stream of ``count`` bytes at ``offset``, in pieces of
    ``piece`` bytes (the last shorter): read and decoded a piece at a time.

    :raises ValueError: the stream ends (or the strip's bytes do) before ``nbytes``.
    """
    inflater = zlib.decompressobj()
    at, left, done = offset, count, 0
    pending: bytes | bytearray = b""
    while done < nbytes:
        want = min(piece, nbytes - done)
        parts: list[bytes] = []
        got = 0
        while got < want:
            if not pending:
                if not left or inflater.eof:
                    raise ValueError(f"strip at byte {offset} ends after {done + got} bytes")
                pending = source.read_at(at, min(_PIECE, left))
                if not pending:
                    raise ValueError(f"strip at byte {offset} is cut short by the end of file")
                left -= len(pending)
                at += len(pending)
            part = inflater.decompress(pending, want - got)
            pending = inflater.unconsumed_tail
            parts.append(part)
            got += len(part)
        done += want
        yield parts[0] if len(parts) == 1 else b"".join(parts)


def _read_strips(source: ByteSource, strips: _Strips, selection: tuple[Any, ...]) -> NDArray[Any]:
    """``array[selection]`` of a level :func:`_strips` located: each strip the region
    overlaps decoded a piece of rows at a time (up to its last row in the region) and the
    region's part of each piece copied out, so that no strip is held whole (a plane stored as
    one compressed strip is converted with about its own size in memory)."""
    shape, lead, rows = strips.shape, strips.lead, strips.rows
    bounds = _bounds(selection, shape)
    out = np.empty([b - a for a, b in bounds], strips.dtype.newbyteorder("="))
    if not out.size:
        return _squeezed(out, selection)
    y0, y1 = bounds[lead]
    for index in itertools.product(*(range(a, b) for a, b in bounds[:lead])):
        page = int(np.ravel_multi_index(index, shape[:lead])) if lead else 0
        dst = out[tuple(i - a for i, (a, _) in zip(index, bounds, strict=False))]
        for s in range(y0 // rows, (y1 - 1) // rows + 1):
            _strip_rows(source, strips, page, s, bounds[lead:], dst)
    return _squeezed(out, selection)


def _strip_rows(
    source: ByteSource,
    strips: _Strips,
    page: int,
    strip: int,
    bounds: list[tuple[int, int]],
    dst: NDArray[Any],
) -> None:
    """Decode strip ``strip`` of page ``page`` up to the last row in ``bounds`` (y, x(, s))
    and copy its rows in the region into ``dst`` (the region's rows of that page)."""
    y0, y1 = bounds[0]
    row_shape = strips.shape[strips.lead + 1 :]
    row_bytes = math.prod(row_shape) * strips.dtype.itemsize
    at = strip * strips.rows  # the strip's first row, then of each piece
    needed = min(y1, at + strips.rows, strips.shape[strips.lead]) - at
    offset, count = strips.offsets[page][strip], strips.counts[page][strip]
    if not offset or not count:  # a strip never written: zeros, as tifffile reads it
        dst[max(at, y0) - y0 : at + needed - y0] = 0
        return
    if not strips.streamed:
        _whole_strip(source, strips, (offset, count), at, needed, bounds, dst)
        return
    piece = max(row_bytes, _PIECE // row_bytes * row_bytes)
    for buf in _inflate(source, offset, count, needed * row_bytes, piece):
        block = np.frombuffer(buf, strips.dtype).reshape(-1, *row_shape)
        _place(strips, block, at, bounds, dst)
        at += len(block)


def _place(
    strips: _Strips, block: NDArray[Any], at: int, bounds: list[tuple[int, int]], dst: NDArray[Any]
) -> None:
    """Copy the rows in the region (``bounds``: y, x(, s)) of ``block``, decoded rows from row
    ``at``, into ``dst`` (the region's rows of the page), the predictor undone."""
    (y0, y1), (x0, x1) = bounds[0], bounds[1]
    if block.dtype != dst.dtype or (strips.predictor and not block.flags.writeable):
        block = block.astype(dst.dtype)  # writable, native
    if strips.predictor:
        np.cumsum(block, axis=1, dtype=dst.dtype, out=block)
    lo, hi = max(at, y0), min(at + len(block), y1)
    if lo < hi:
        rest = tuple(slice(a, b) for a, b in bounds[2:])
        dst[lo - y0 : hi - y0] = block[(slice(lo - at, hi - at), slice(x0, x1), *rest)]


def _whole_strip(
    source: ByteSource,
    strips: _Strips,
    segment: tuple[int, int],
    at: int,
    needed: int,
    bounds: list[tuple[int, int]],
    dst: NDArray[Any],
) -> None:
    """Decode the strip at ``segment`` (offset, bytes), first row ``at``, of a compression
    :func:`_decoder` decodes whole (its first ``needed`` rows where the codec stops early):
    straight into ``dst`` when the region takes those rows whole (a plane stored as one strip
    is decoded into the output, with only its compressed bytes beside it), else into a buffer
    of the strip's rows, copied out."""
    offset, count = segment
    row_shape = strips.shape[strips.lead + 1 :]
    own = min(strips.rows, strips.shape[strips.lead] - at)  # the strip's rows
    rows = needed if strips.compression in _STOPS else own
    data = source.view_at(offset, count)
    if len(data) < count:
        raise ValueError(f"strip at byte {offset} is cut short by the end of file")
    y0 = bounds[0][0]
    whole = all(b == (0, n) for b, n in zip(bounds[1:], row_shape, strict=True))
    if whole and at >= y0 and rows == needed and dst.dtype == strips.dtype:
        block = dst[at - y0 : at - y0 + rows]
        if block.flags.c_contiguous:
            _decode_into(strips.compression, data, block, offset)
            if strips.predictor:
                np.cumsum(block, axis=1, dtype=block.dtype, out=block)
            return
    block = np.empty((rows, *row_shape), strips.dtype)
    _decode_into(strips.compression, data, block, offset)
    _place(strips, block, at, bounds, dst)


def _decode_into(compression: int, data: Any, out: NDArray[Any], offset: int) -> None:
    """Fill ``out`` (C-contiguous) with the first bytes the strip ``data`` (at byte
    ``offset``) decodes to.

    :raises ValueError: the strip decodes to fewer bytes than ``out`` holds.
    """
    decode = _decoder(compression)
    view = out.reshape(-1).view(np.uint8)
    try:
        got = memoryview(decode(data, out=view)).nbytes
    except Exception:
        if compression in _STOPS:
            raise
        # a strip of more rows than the image has left (a last strip written whole): the
        # codec refuses a buffer too small for it, so it is decoded into its own
        decoded = np.frombuffer(decode(data), np.uint8)
        got = min(decoded.nbytes, view.nbytes)
        view[:got] = decoded[:got]
    if got < view.nbytes:
        raise ValueError(f"strip at byte {offset} decodes to {got} bytes, not {view.nbytes}")


def is_tiff_name(url: Any) -> bool:
    """Whether ``url`` (a path or URL) names a TIFF by its suffix; an http(s) URL by its path,
    so a signed URL (``name.tif?sig=...``) counts."""
    if not isinstance(url, str | os.PathLike):
        return False
    text = os.fspath(url)
    if text.lower().startswith(("http://", "https://")):
        text = urlsplit(text).path
    return text.lower().endswith(_TIFF_SUFFIXES)


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
