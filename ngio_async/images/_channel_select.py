"""Channel selection as ngio and Fractal tasks select: by label or by ``wavelength_id`` (the
key Fractal writes beside each omero channel's label; ngio writes it equal to the label unless
told otherwise)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._dataset import Dataset


def wavelength_ids(ds: Dataset) -> list[str | None]:
    """Each omero channel's ``wavelength_id``; where it has none, its label, as ngio reads it
    (``None`` where it has neither)."""
    omero = ds.metadata.ome.omero
    if omero is None:
        return []
    return [
        v if isinstance(v := c.extra.get("wavelength_id"), str) else c.label for c in omero.channels
    ]


def channel_index(ds: Dataset, label: str | None, wavelength_id: str | None) -> int:
    """The index of the channel with ``label`` or ``wavelength_id`` (exactly one)."""
    if (label is None) == (wavelength_id is None):
        raise TypeError("channel_index takes a label or a wavelength_id: exactly one of them")
    if label is not None:
        axis = ds.metadata.channel_axis
        return ds._channel(axis, label) if axis is not None else ds.metadata.channel_index(label)
    ids = wavelength_ids(ds)
    found = [i for i, w in enumerate(ids) if w == wavelength_id]
    n = ds.shape[ds.metadata.channel_axis] if ds.metadata.channel_axis is not None else 1
    if len(found) == 1 and found[0] < n:
        return found[0]
    shown = ", ".join(
        f"{i}: {c.label!r} ({w!r})"
        for i, (c, w) in enumerate(zip(ds.metadata.channels, ids, strict=True))
    )
    if len(found) > 1:
        what = f"is ambiguous: channels {found} share it; select the channel by index"
    elif found:
        what = f"is channel {found[0]} of the omero metadata, but the image has {n} channels"
    else:
        what = "names no channel"
    raise KeyError(f"wavelength_id {wavelength_id!r} {what} (channels: {shown or 'none'})")
