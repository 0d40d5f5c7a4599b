"""NGFF 0.1, 0.2 and 0.3 documents read as 0.4 ones (read only; no I/O).

What the old versions leave out is filled in as ome-zarr-py and napari read them:

- 0.1 and 0.2 have no ``axes``: every array is 5D, ``t, c, z, y, x``.
- 0.3's ``axes`` are names only: ``t`` is a time axis, ``c`` a channel axis, the others
  (``z``, ``y``, ``x``) space axes; no units.
- No ``coordinateTransformations``: the first level has a scale of 1 on every axis and no
  translation (pixel units); the reader then gives each lower level the size ratio of the
  first level to it along every space axis (:func:`scales_from_shapes`, as a viewer
  overlays the levels of such an image), 1 along time and channel.
- A 0.1 - 0.3 plate's wells have only a ``path``: its row and column indices are those of
  the path's row and column names.

Per-object ``version`` keys are dropped in the view; the document's version stays on the
view's ``version`` (``"0.3"``), so that the reader reports it and every write refuses it
(``convert`` writes it as 0.4 or 0.5). The chunk keys of 0.2 and 0.3 arrays are nested
(``t/c/z/y/x``): a ``.zarray`` without ``dimension_separator`` is read with ``"/"``
(:func:`nested_keys`); 0.1's are flat (``.``, zarr v2's default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import UnsupportedError
from .ngff import Multiscale, OmeMetadata, Scale, Translation

__all__ = [
    "OLD_VERSIONS",
    "is_zarr_v2",
    "mark_unknown_scales",
    "nested_keys",
    "refuse_write",
    "scales_from_shapes",
    "upgraded",
]

#: the NGFF versions before 0.4 that are read (never written)
OLD_VERSIONS = ("0.1", "0.2", "0.3")
_TCZYX = ("t", "c", "z", "y", "x")
_TYPES = {"t": "time", "c": "channel"}
_VERSIONED = ("plate", "well", "image-label", "omero")
#: on a view's multiscale whose levels had no transformations: its scales are filled in
#: (an ``extra`` key that is no JSON key: never written)
_SCALES_UNKNOWN: Any = ("scales-unknown",)


def is_zarr_v2(version: str | None) -> bool:
    """Whether images of NGFF ``version`` keep their documents in zarr v2 (``.zattrs``,
    ``.zarray``): 0.4 and the versions before it."""
    return version == "0.4" or version in OLD_VERSIONS


def refuse_write(version: str | None, url: str, what: str = "image") -> None:
    """Refuse, before any I/O, a write into the NGFF ``version`` ``what`` (image, plate) at
    ``url`` when it is one of the versions read only (0.1 - 0.3).

    :raises UnsupportedError: naming the version and the way out (``convert``).
    """
    if version in OLD_VERSIONS:
        raise UnsupportedError(
            f"{url} is an NGFF {version} {what}, which ngio_async reads but does not write "
            f"(it writes NGFF 0.4 and 0.5): convert it (`ngio_async convert <{what}> <copy>`, "
            "or `ngio_async.convert`; NGFF 0.4 by default) and write into the copy; nothing "
            "was written"
        )


def nested_keys(version: str | None) -> bool:
    """Whether the arrays of NGFF ``version`` store their chunks nested (``0/0/1``) when their
    ``.zarray`` does not say (0.2 and 0.3 did so before zarr had ``dimension_separator``)."""
    return version in ("0.2", "0.3")


def upgraded(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` (0.1 - 0.3 group attributes) in the shape of 0.4: axes as objects (5D ``tczyx``
    when absent), a scale of 1 on every level, well indices from the well paths, and no
    per-object ``version`` keys. Parts of another shape are left as they are (0.4's
    validation then names them)."""
    out = dict(doc)
    ms = out.get("multiscales")
    if isinstance(ms, list):
        out["multiscales"] = [_multiscale(m) if isinstance(m, Mapping) else m for m in ms]
    for key in _VERSIONED:
        obj = out.get(key)
        if isinstance(obj, Mapping):
            out[key] = {k: v for k, v in obj.items() if k != "version"}
    plate = out.get("plate")
    if isinstance(plate, dict) and isinstance(plate.get("wells"), list):
        out["plate"] = {**plate, "wells": _wells(plate)}
    return out


def _multiscale(ms: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in ms.items() if k != "version"}
    names = ms.get("axes", _TCZYX)
    if isinstance(names, list | tuple):
        out["axes"] = [_axis(a) for a in names]
        ndim = len(names)
        datasets = ms.get("datasets")
        if isinstance(datasets, list) and "coordinateTransformations" not in ms:
            out["datasets"] = [_dataset(d, ndim) for d in datasets]
    return out


def _axis(name: Any) -> Any:
    """0.3's axis name as a 0.4 axis (an object is kept: some writers put 0.4's there)."""
    if not isinstance(name, str):
        return name
    return {"name": name, "type": _TYPES.get(name, "space")}


def _dataset(ds: Any, ndim: int) -> Any:
    if not isinstance(ds, Mapping) or "coordinateTransformations" in ds:
        return ds
    return {**ds, "coordinateTransformations": [{"type": "scale", "scale": [1] * ndim}]}


def _wells(plate: Mapping[str, Any]) -> list[Any]:
    """The wells of ``plate``, those with only a ``path`` given the indices of its names."""
    rows = [r.get("name") for r in plate.get("rows") or () if isinstance(r, Mapping)]
    cols = [c.get("name") for c in plate.get("columns") or () if isinstance(c, Mapping)]
    out: list[Any] = []
    for well in plate["wells"]:
        path = well.get("path") if isinstance(well, Mapping) else None
        parts = path.split("/") if isinstance(path, str) else []
        if len(parts) == 2 and parts[0] in rows and parts[1] in cols and "rowIndex" not in well:
            well = {**well, "rowIndex": rows.index(parts[0]), "columnIndex": cols.index(parts[1])}
        out.append(well)
    return out


def mark_unknown_scales(doc: Mapping[str, Any], meta: OmeMetadata) -> None:
    """Note on each multiscale of ``meta`` (the view of ``doc``) whose levels stated no
    transformations that its scales are to be derived (:func:`scales_from_shapes`)."""
    found = doc.get("multiscales")
    for raw, ms in zip(
        found if isinstance(found, list) else (), meta.multiscales or (), strict=False
    ):
        datasets = raw.get("datasets") if isinstance(raw, Mapping) else None
        if isinstance(datasets, list) and not any(
            isinstance(d, Mapping) and "coordinateTransformations" in d for d in datasets
        ):
            ms.extra[_SCALES_UNKNOWN] = True


def scales_from_shapes(ms: Multiscale, shapes: Sequence[Sequence[int]]) -> None:
    """Give the levels of ``ms`` (an old version's view whose levels stated no
    transformations; others are left as they are) the scale their shapes imply: along each
    space axis, the first level's size over the level's (a level half as wide has scale 2);
    1 along time and channel. Translations stay absent."""
    if not ms.extra.get(_SCALES_UNKNOWN):
        return
    first = shapes[0]
    for ds, shape in zip(ms.datasets, shapes, strict=True):
        scale: list[int | float] = [
            _ratio(first[i], n) if a.type == "space" else 1
            for i, (a, n) in enumerate(zip(ms.axes, shape, strict=True))
        ]
        ts: list[Scale | Translation] = [Scale(scale=scale)]
        ds.coordinate_transformations = ts


def _ratio(a: int, b: int) -> int | float:
    """``a / b`` (an integer when it is one; 1 for an empty axis)."""
    if a <= 0 or b <= 0:
        return 1
    return a // b if a % b == 0 else a / b
