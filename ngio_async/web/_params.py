"""Parsing of URL path and query parameters (pure; errors are 400 ``ApiError`` naming them)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import ApiError
from ._render import parse_color

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from multidict import MultiMapping

    from ..images import ChannelInfo
    from ._render import Window

__all__ = [
    "TileQuery",
    "bad",
    "etag_matches",
    "parse_index",
    "parse_region",
    "parse_tile_query",
    "single_values",
]

_INT = re.compile(r"^[0-9]+$")
_SLICE = re.compile(r"^([0-9]*):([0-9]*)$")


def bad(param: str, message: str) -> ApiError:
    """A 400 error about ``param``."""
    return ApiError(400, "bad_parameter", f"parameter {param!r}: {message}")


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weakly compared, or ``*``)."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def parse_index(param: str, text: str) -> int:
    """A non-negative integer path or query parameter."""
    if not _INT.match(text):
        raise bad(param, f"expected a non-negative integer, got {text!r}")
    return int(text)


def single_values(query: MultiMapping[str]) -> dict[str, str]:
    """The query's parameters, each given once (a repeated one is a 400 naming it: which of
    its values was meant is not for the server to guess)."""
    out: dict[str, str] = {}
    for name, value in query.items():
        if name in out:
            raise bad(name, f"given more than once ({out[name]!r}, {value!r}): give it once")
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class TileQuery:
    """Explicit display overrides of a tile request (``None``: the dataset's default)."""

    channels: tuple[int, ...] | None
    windows: tuple[Window, ...] | None
    colors: tuple[tuple[int, int, int], ...] | None
    #: label images painted over the tile, and their opacity
    labels: tuple[str, ...] = ()
    label_opacity: float = 0.5

    def canonical(self) -> str:
        """A canonical text of the overrides (for ETags)."""
        parts = []
        if self.channels is not None:
            parts.append("c=" + ",".join(map(str, self.channels)))
        if self.windows is not None:
            parts.append("window=" + ",".join(f"{a!r}:{b!r}" for a, b in self.windows))
        if self.colors is not None:
            parts.append("color=" + ",".join(f"{r:02X}{g:02X}{b:02X}" for r, g, b in self.colors))
        if self.labels:
            parts.append("labels=" + ",".join(self.labels) + f"&opacity={self.label_opacity!r}")
        return "&".join(parts)


def _channel(token: str, n_channels: int, channels: Sequence[ChannelInfo]) -> int:
    if _INT.match(token):
        index = int(token)
        if index >= n_channels:
            raise bad("c", f"channel {index} out of range (the image has {n_channels})")
        return index
    labels = [c.label for c in channels]
    if token in labels:
        return labels.index(token)
    raise bad("c", f"no channel {token!r} (labels: {labels}, or indices 0..{n_channels - 1})")


def _window(token: str) -> Window:
    start, sep, end = token.partition(":")
    try:
        lo, hi = float(start), float(end)
    except ValueError:
        lo = hi = float("nan")
    if not sep or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise bad("window", f"expected start:end with end > start, got {token!r}")
    return lo, hi


def parse_tile_query(
    query: Mapping[str, str], n_channels: int, channels: Sequence[ChannelInfo]
) -> TileQuery:
    """``c``, ``window`` and ``color`` overrides, ``labels`` to overlay (names, by commas) and
    their ``label_opacity`` (0..1, default 0.5); unknown parameters are rejected."""
    unknown = sorted(set(query) - {"c", "window", "color", "labels", "label_opacity"})
    if unknown:
        raise bad(
            unknown[0], "unknown parameter (tiles take c, window, color, labels, label_opacity)"
        )
    selected: tuple[int, ...] | None = None
    if "c" in query:
        tokens = [t.strip() for t in query["c"].split(",")]
        if not all(tokens):
            raise bad("c", f"expected channel indices or labels, got {query['c']!r}")
        selected = tuple(_channel(t, n_channels, channels) for t in tokens)
    windows = None
    if "window" in query:
        windows = tuple(_window(t.strip()) for t in query["window"].split(","))
    colors = None
    if "color" in query:
        parsed = [parse_color(t) for t in query["color"].split(",")]
        if any(c is None for c in parsed):
            raise bad("color", f"expected RRGGBB hex colours, got {query['color']!r}")
        colors = tuple(c for c in parsed if c is not None)
    labels: tuple[str, ...] = ()
    if "labels" in query:
        labels = tuple(dict.fromkeys(t.strip() for t in query["labels"].split(",")))
        if not all(labels):
            raise bad("labels", f"expected label image names, got {query['labels']!r}")
    opacity = 0.5
    if "label_opacity" in query:
        try:
            opacity = float(query["label_opacity"])
        except ValueError:
            opacity = math.nan
        if not 0 <= opacity <= 1:
            raise bad("label_opacity", f"expected a number in 0..1, got {query['label_opacity']!r}")
    return TileQuery(selected, windows, colors, labels, opacity)


def _selector(name: str, text: str, size: int) -> int | slice:
    """An index or a non-empty ``a:b`` range of an axis of ``size``: an index or a start past
    the end is refused, an end past it is clipped (as numpy clips it); negative values, steps
    and empty or reversed ranges are refused."""
    if _INT.match(text):
        index = int(text)
        if index >= size:
            raise bad(name, f"index {index} out of range (axis {name!r} has {size})")
        return index
    match = _SLICE.match(text)
    if match is None:
        if re.match(r"^-|.*:-", text):
            reason = "negative indices are not accepted"
        elif text.count(":") > 1:
            reason = "steps are not supported"
        else:
            reason = "expected an integer or a:b"
        raise bad(name, f"{reason} (an index or a:b, 0 <= a < b), got {text!r}")
    start = int(match[1]) if match[1] else 0
    stop = min(int(match[2]), size) if match[2] else size
    if start >= size:
        raise bad(name, f"{text!r} starts at {start}, past the end (axis {name!r} has {size})")
    if stop <= start:
        raise bad(name, f"{text!r} is an empty range (expected a:b with b > a)")
    return slice(start, stop)


def parse_region(
    query: Mapping[str, str],
    axes: Sequence[str],
    shape: Sequence[int],
    labels: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, int | slice]:
    """Per-axis selections of a ``region.npy`` query (not ``level``); missing axes: whole.

    :param labels: the channel axis's name -> its channel labels, which select one channel
        (``c=GFP``) like an index.
    """
    out: dict[str, int | slice] = {}
    for name, text in query.items():
        if name == "level":
            continue
        if name not in axes:
            raise bad(name, f"unknown axis (the image's axes are {list(axes)})")
        text = text.strip()
        named = list((labels or {}).get(name, []))
        if text in named and not _INT.match(text):  # a label: that channel's index
            text = str(named.index(text))
        elif named and not (_INT.match(text) or _SLICE.match(text)):
            raise bad(name, f"no channel {text!r} (labels: {named}, an index or a:b)")
        out[name] = _selector(name, text, shape[list(axes).index(name)])
    return out
