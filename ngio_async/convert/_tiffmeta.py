"""A TIFF's metadata as NGFF: axes, units, pixel sizes and intervals, channel names, colors
and display (OME-XML, ImageJ, Aperio SVS, Zeiss LSM, QPTIFF, the resolution tags)."""

from __future__ import annotations

import itertools
import math
import os
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import UnsupportedError
from ..meta._validate import _SPACE_UNITS, _TIME_UNITS

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["map_axes", "metadata_only", "ome_calibration", "resolution_pixel_size"]

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
