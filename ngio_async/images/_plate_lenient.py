"""Plates and wells as peer tools write them, read when what they mean is clear (pure; no
I/O). ``validate`` still reports the rule each breaks, and this library never writes them so.

- A plate whose wells have no ``rowIndex`` / ``columnIndex`` (writers of 0.4 plates from before
  NGFF required them): their indices are those of the row and column their path names, as
  ome-zarr-py reads them (it goes by the paths only). A path that names no listed row or
  column stays an error naming the well.
- A well whose field paths hold ``_``, ``.`` or ``-`` (``fov_a``: ome-zarr-py and ngio write
  and read them; NGFF 0.4 / 0.5 allow letters and digits only, 0.6 allows these too): read as
  they are. Any other path (a ``/``, a space, only dots, a leading ``__``) stays an error.

The mends here take a document that fails validation at a JSON path and give the document
that validates (:func:`~ngio_async.images._open.lenient_doc` chains them); the field paths are
validated as placeholders and put back on the model after (:func:`fields_as_stored`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeGuard

import msgspec

from .._errors import MetadataError
from ..meta import decode_json

if TYPE_CHECKING:
    from ..meta import OmeMetadata

__all__ = [
    "fields_as_stored",
    "indexed_wells",
    "peer_field_name",
    "peer_fields",
    "wells_by_their_paths",
]

#: a field path NGFF 0.6 allows (a zarr node name); 0.4 / 0.5 allow letters and digits only
_NODE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def peer_field_name(path: Any) -> TypeGuard[str]:
    """Whether ``path`` is a field path a well of a peer tool may hold and this library reads:
    a node name of letters, digits, ``_``, ``.`` and ``-`` (NGFF 0.6's rule), not only dots,
    not starting with ``__`` (zarr keeps those names)."""
    return (
        isinstance(path, str)
        and _NODE_NAME.fullmatch(path) is not None
        and set(path) != {"."}
        and not path.startswith("__")
    )


def _names(entries: Any) -> list[Any]:
    return [e.get("name") if isinstance(e, dict) else None for e in entries or ()]


def indexed_wells(plate: dict[str, Any], *, out_of_range: bool = False) -> list[Any]:
    """The ``wells`` of ``plate`` (a plate body as stored), each one without a ``rowIndex`` or
    ``columnIndex`` (``out_of_range``: or with one out of range of the rows or columns, as
    0.4 writers that counted from 1 left them) given those of the row and column its path
    ``<row>/<column>`` names; the others, and those whose path names no listed row or column,
    as they are."""
    rows, columns = _names(plate.get("rows")), _names(plate.get("columns"))

    def placed(w: dict[str, Any]) -> bool:
        at = (w.get("rowIndex"), w.get("columnIndex"))
        if None in at:
            return False
        return not out_of_range or all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n
            for i, n in zip(at, (len(rows), len(columns)), strict=True)
        )

    out: list[Any] = []
    for w in plate.get("wells") or ():
        if isinstance(w, dict) and not placed(w):
            row, _, column = str(w.get("path")).partition("/")
            if row in rows and column in columns:
                w = {**w, "rowIndex": rows.index(row), "columnIndex": columns.index(column)}
        out.append(w)
    return out


def wells_by_their_paths(
    plate: dict[str, Any], where: str
) -> tuple[dict[str, Any], str, str] | None:
    """``plate`` (a plate body) with the ``rowIndex`` / ``columnIndex`` its wells lack taken
    from their paths (:func:`indexed_wells`), when ``where`` (a validation error's path
    inside the body) is such a well, and what was done. ``None``: ``where`` is no such well.

    :raises MetadataError: a well without indices whose path names no listed row or column
        (the well and the rows or columns named).
    """
    if re.fullmatch(r"\.wells\[\d+\]", where) is None or not isinstance(plate.get("wells"), list):
        return None
    rows, columns = _names(plate.get("rows")), _names(plate.get("columns"))
    wells = plate["wells"]
    fixed = indexed_wells(plate)
    for i, (old, new) in enumerate(zip(wells, fixed, strict=True)):
        if isinstance(old, dict) and ("rowIndex" not in new or "columnIndex" not in new):
            path = old.get("path")
            row, _, column = str(path).partition("/")
            what = (
                f"row {row!r} (rows: {rows})"
                if row not in rows
                else f"column {column!r} (columns: {columns})"
            )
            raise MetadataError(
                f"well {path!r} has no rowIndex / columnIndex, and its path names no listed {what}",
                f".wells[{i}]",
            )
    moved = [repr(o.get("path")) for o, n in zip(wells, fixed, strict=True) if o is not n]
    if not moved:
        return None
    shown = ", ".join(moved[:3]) + (", ..." if len(moved) > 3 else "")
    s = "s" if len(moved) > 1 else ""
    done = f"the rowIndex / columnIndex of well{s} {shown} taken from the path{s}"
    return {**plate, "wells": fixed}, "plate", done


def peer_fields(well: dict[str, Any], where: str) -> tuple[dict[str, Any], str, str] | None:
    """``well`` (a well body) with its field paths of peer tools (:func:`peer_field_name`,
    other than letters and digits) replaced by placeholders NGFF 0.4 / 0.5 allow, when
    ``where`` (a validation error's path inside the body) is one of them, and what was done.
    One path gets one placeholder (a path given twice stays a duplicate); the model validated
    gets the paths back from :func:`fields_as_stored`. ``None``: ``where`` is no such path, or
    another path is no node name."""
    images = well.get("images")
    found = re.fullmatch(r"\.images\[(\d+)\]\.path", where)
    if found is None or not isinstance(images, list):
        return None
    paths = [im.get("path") if isinstance(im, dict) else None for im in images]
    if not peer_field_name(paths[int(found[1])]):
        return None
    taken = {p for p in paths if isinstance(p, str)}
    placeholders: dict[str, str] = {}
    fixed = []
    for im, path in zip(images, paths, strict=True):
        if isinstance(path, str) and not path.isalnum() and peer_field_name(path):
            if path not in placeholders:
                n = len(placeholders)
                while f"peer{n}" in taken:
                    n += 1
                placeholders[path] = f"peer{n}"
                taken.add(f"peer{n}")
            im = {**im, "path": placeholders[path]}
        fixed.append(im)
    shown = ", ".join(map(repr, list(placeholders)[:3])) + (
        ", ..." if len(placeholders) > 3 else ""
    )
    done = (
        f"field path{'s' if len(placeholders) > 1 else ''} {shown} read as stored (NGFF 0.6 "
        "allows '_', '.' and '-' in them; 0.4 and 0.5 letters and digits only)"
    )
    return {**well, "images": fixed}, "well", done


def fields_as_stored(ome: OmeMetadata, doc: Any) -> None:
    """Put the field paths of ``doc`` (a group document as stored) back on ``ome`` (its model,
    validated with the placeholders of :func:`peer_fields`): nothing when it has no well or
    the paths already agree."""
    if isinstance(doc, bytes | bytearray):  # a 0.4 .zattrs as read
        try:
            doc = decode_json(msgspec.json.Decoder().decode, bytes(doc), "invalid JSON")
        except (MetadataError, ValueError):
            return
    if ome.well is None or not isinstance(doc, dict):
        return
    ome_body = doc.get("ome")
    well = (ome_body if isinstance(ome_body, dict) else doc).get("well")
    images = well.get("images") if isinstance(well, dict) else None
    if not isinstance(images, list) or len(images) != len(ome.well.images):
        return
    for model, stored in zip(ome.well.images, images, strict=True):
        path = stored.get("path") if isinstance(stored, dict) else None
        if isinstance(path, str) and path != model.path and peer_field_name(path):
            model.path = path


def refuse_peer_fields(images: list[dict[str, Any]], well: str, where: str) -> None:
    """Refuse a write of well ``well``'s document that would keep ``images`` (its entries as
    stored, after the write) when one of their paths breaks NGFF 0.4 / 0.5 (a peer tool's
    ``fov_a``: read, never written): the document would not validate.

    :raises MetadataError: naming the well, the field and what to do (before any write).
    """
    for i, im in enumerate(images):
        path = im.get("path")
        if not (isinstance(path, str) and path.isascii() and path.isalnum()):
            raise MetadataError(
                f"well {well!r} of plate {where} lists field {path!r}, a path NGFF 0.4 and 0.5 "
                "do not allow (letters and digits only): the well is read as it is, but its "
                "document is not rewritten, since it would stay invalid (remove that field "
                "first, or add this one to another well); nothing was written",
                f".well.images[{i}].path",
            )
