"""Repairing a source's invalid ``omero`` metadata (display windows, colors) so it converts,
with a warning naming each repair."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import MetadataError
from ..images._open import join, opened_as_stored
from ..meta import read_document, validate
from ..meta._ngff_old import OLD_VERSIONS, is_zarr_v2

if TYPE_CHECKING:
    import numpy as np

    from ..images import Dataset
    from ..meta import OmeMetadata

_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _default_window(dtype: np.dtype[Any]) -> dict[str, float]:
    """A channel window over the whole range of ``dtype`` (floats: 0 to 1)."""
    import numpy as np

    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = 0.0, 1.0
    return {"min": low, "max": high, "start": low, "end": high}


def _repair_step(omero: dict[str, Any], path: str, dtype: np.dtype[Any]) -> str | None:
    """Mend the part of a raw ``omero`` block at ``path`` (relative to it) that breaks a rule:
    a channel's ``color`` (CSS style ``#RRGGBB`` or 8 hex digits: its ``RRGGBB``; else white)
    or ``window`` (the dtype's range) replaced, another key removed. ``None``: not mendable."""
    steps = _STEP.findall(path)
    if not steps or steps[0][0] != "channels":
        key = steps[0][0] if steps else ""
        if key and key in omero:  # rdefs, id, name, ...
            del omero[key]
            return f"removed {key}"
        return None
    channels = omero.get("channels")
    if len(steps) < 2 or not steps[1][1] or not isinstance(channels, list):
        return None
    index = int(steps[1][1])
    channel = channels[index] if index < len(channels) else None
    if not isinstance(channel, dict):
        return None
    key = steps[2][0] if len(steps) > 2 else ""
    if key in ("", "color") and not _HEX6.match(str(channel.get("color", ""))):
        old = str(channel.get("color", ""))
        digits = old.removeprefix("#")
        channel["color"] = (
            digits[:6] if re.fullmatch(r"[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?", digits) else "FFFFFF"
        )
        return f"channels[{index}].color {old!r} -> {channel['color']!r}"
    if key in ("", "window"):
        old_window = channel.get("window")
        if key == "" and isinstance(old_window, dict):
            return None
        window = _default_window(dtype)
        if isinstance(old_window, dict):  # its valid values stay
            for k, v in old_window.items():
                if k in window and isinstance(v, int | float) and not isinstance(v, bool):
                    window[k] = v if math.isfinite(v) else window[k]
            if window == old_window:
                return None
        channel["window"] = window
        return f"channels[{index}].window -> {window}"
    if key in channel:
        del channel[key]
        return f"removed channels[{index}].{key}"
    return None


_HEX6 = re.compile(r"^[0-9A-Fa-f]{6}$")


async def _with_repaired_omero(src: Dataset) -> OmeMetadata | None:
    """``src``'s metadata with its stored ``omero`` block mended by :func:`_repair_step` when
    it breaks a rule (a :class:`MetadataWarning` says how), so the channels' labels, colors
    and windows are carried: a block opened without it, or opened mended (a channel missing
    its window was read with an empty one: here it gets the dtype's range). ``None``:
    nothing to mend, or it cannot be (the opened metadata is carried, as the opening
    warned)."""
    import copy
    import warnings

    from ..meta import MetadataWarning

    v3 = not is_zarr_v2(src.metadata.ngff_version)  # 0.4, 0.1 - 0.3: .zattrs
    key = join(src.root, "zarr.json" if v3 else ".zattrs")
    if opened_as_stored(src.store, key):  # it kept every rule: nothing to mend, no GET
        return None
    raw = await src.store.get(key)
    try:
        doc: Any = read_document(raw) if raw is not None else None
    except msgspec.DecodeError:
        return None
    attrs: Any = doc.get("attributes") if v3 and isinstance(doc, dict) else doc
    body: Any = attrs.get("ome") if v3 and isinstance(attrs, dict) else attrs
    if not isinstance(body, dict) or not isinstance(body.get("omero"), dict):
        return None
    attrs = copy.deepcopy(attrs)
    omero: dict[str, Any] = (attrs["ome"] if v3 else attrs)["omero"]
    at = "$.ome.omero" if v3 else "$.omero"
    mended: list[str] = []
    for _ in range(64):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MetadataWarning)
                ome = validate(attrs)
        except MetadataError as exc:
            inside = exc.path == at or exc.path.startswith((at + ".", at + "["))
            done = _repair_step(omero, exc.path[len(at) :], src.dtype) if inside else None
            if done is None:
                return None
            mended.append(f"{done} ({exc.rule})")
            continue
        if not mended:  # the stored block keeps every rule: what was opened is carried
            return None
        warnings.warn(
            f"{src.url}: its 'omero' block, which breaks a rule, is carried mended: "
            + "; ".join(mended),
            MetadataWarning,
            stacklevel=2,
        )
        if src.metadata.ngff_version in OLD_VERSIONS:  # the scales derived at open, not 1s
            ome.multiscales = src.metadata.ome.multiscales
        return ome
    return None
