"""Pure rendering: channel composites, default display settings, image and ``.npy`` encoding.

No I/O and no event loop here: the server runs :func:`composite`, :func:`encode_image` and
:func:`encode_npy` in worker threads.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from ..images import ChannelInfo

__all__ = [
    "FORMATS",
    "PALETTE",
    "Window",
    "composite",
    "compute_windows",
    "default_channels",
    "default_colors",
    "encode_image",
    "encode_npy",
    "parse_color",
    "render_tile",
]

Window = tuple[float, float]

#: default colours: one channel is white; several take these in channel order
PALETTE = ("FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "00FFFF", "FFFFFF")

#: URL extension -> (Pillow format, media type)
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpg": ("JPEG", "image/jpeg"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}

_MAX_DEFAULT_CHANNELS = 3
_PERCENTILES = (0.1, 99.9)


def parse_color(text: str) -> tuple[int, int, int] | None:
    """``RRGGBB`` (an optional ``#`` prefix) as integers, ``None`` if malformed."""
    text = text.strip().removeprefix("#")
    if len(text) != 6:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def default_channels(n_channels: int, channels: Sequence[ChannelInfo]) -> list[int]:
    """Channels shown by default: those marked ``active`` in ``omero``; else the first three."""
    active = [c.index for c in channels if c.active and c.index < n_channels]
    if active:
        return active
    return list(range(min(n_channels, _MAX_DEFAULT_CHANNELS)))


def default_colors(
    selected: Sequence[int], n_channels: int, channels: Sequence[ChannelInfo]
) -> list[tuple[int, int, int]]:
    """Colours of ``selected``: the ``omero`` colour when valid; else white for a one-channel
    image and :data:`PALETTE` (by channel index) otherwise."""
    out = []
    for i in selected:
        color = None
        if i < len(channels) and channels[i].color:
            color = parse_color(channels[i].color or "")
        if color is None:
            fallback = "FFFFFF" if n_channels == 1 else PALETTE[i % len(PALETTE)]
            color = parse_color(fallback)
        assert color is not None
        out.append(color)
    return out


def compute_windows(planes: NDArray[Any], channel_axis: int | None) -> list[Window]:
    """Per-channel display range of ``planes`` (the smallest level): the 0.1 and 99.9
    percentiles, NaNs ignored; ``(lo, lo + 1)`` when the channel is flat or empty."""
    data = np.asarray(planes)
    data = data[np.newaxis] if channel_axis is None else np.moveaxis(data, channel_axis, 0)
    out: list[Window] = []
    for channel in data:
        values = channel.astype(np.float64, copy=False).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = (float(v) for v in np.percentile(values, _PERCENTILES))
        out.append((lo, hi) if hi > lo else (lo, lo + 1.0))
    return out


def composite(
    planes: Sequence[NDArray[Any]],
    windows: Sequence[Window],
    colors: Sequence[tuple[int, int, int]],
) -> NDArray[np.uint8]:
    """Additive RGB composite of 2-D ``planes``: each maps linearly through its window
    (clipped to 0..1), times its colour; the sum is clipped to 0..255 and rounded to uint8."""
    if not planes:
        raise ValueError("composite() needs at least one plane")
    height, width = planes[0].shape
    acc = np.zeros((3, height, width), dtype=np.float32)  # one contiguous plane per colour
    norm = np.empty((height, width), dtype=np.float32)
    term = np.empty_like(norm)
    for plane, (start, end), color in zip(planes, windows, colors, strict=True):
        span = np.float32(end - start) if end > start else np.float32(1e-12)
        np.subtract(plane, np.float32(start), out=norm, dtype=np.float32, casting="unsafe")
        np.divide(norm, span, out=norm)
        np.clip(norm, 0.0, 1.0, out=norm)
        for k, value in enumerate(color):
            if value:
                np.multiply(norm, np.float32(value), out=term)
                acc[k] += term
    np.clip(acc, 0.0, 255.0, out=acc)
    np.rint(acc, out=acc)
    return np.ascontiguousarray(acc.astype(np.uint8).transpose(1, 2, 0))


def encode_image(rgb: NDArray[np.uint8], ext: str) -> bytes:
    """Encode an ``(h, w, 3)`` uint8 image as PNG, JPEG or WebP (``ext`` a key of FORMATS)."""
    from PIL import Image

    fmt = FORMATS[ext][0]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    out = io.BytesIO()
    options: dict[str, Any] = {
        "PNG": {"compress_level": 1},  # fast; tiles are cached by ETag
        "JPEG": {"quality": 90},
        "WEBP": {"quality": 90, "method": 2},  # ~3x faster than the default method 4
    }[fmt]
    image.save(out, format=fmt, **options)
    return out.getvalue()


def render_tile(
    planes: Sequence[NDArray[Any]],
    windows: Sequence[Window],
    colors: Sequence[tuple[int, int, int]],
    ext: str,
) -> bytes:
    """:func:`composite` then :func:`encode_image` (one worker-thread call)."""
    return encode_image(composite(planes, windows, colors), ext)


def encode_npy(data: NDArray[Any]) -> bytes:
    """``data`` in numpy's ``.npy`` format."""
    out = io.BytesIO()
    np.lib.format.write_array(out, np.ascontiguousarray(data), allow_pickle=False)
    return out.getvalue()
