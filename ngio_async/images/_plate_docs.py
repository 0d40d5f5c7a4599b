"""A plate's group document: read (its NGFF ``plate``, or the pending layout of a plate without
fields), and the pure edits of its body (a well listed in row and column order, the
``maximumfieldcount`` kept as the most fields of an acquisition in any well)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import (
    CredentialsRefusedError,
    MetadataError,
    PermissionDeniedError,
    UnsupportedError,
)
from ..meta import validate
from ..meta._ngff_old import is_zarr_v2
from ._labels import _object
from ._open import join, read_group_metadata
from ._plate_layout import PENDING_KEY, _pending_meta, _where

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ..meta import Plate as PlateMeta, Well
    from ..stores import AsyncStore


_DERIVED_KEY = "maximumfieldcount_kept"


#: in the pending layout of a 0.4 plate whose wells were all unlisted: it had no 'version'
_UNVERSIONED_KEY = "plate_unversioned"


def _derived_of(attrs: dict[str, Any]) -> set[int]:
    """The acquisition ids recorded as having a kept ``maximumfieldcount``."""
    pending = attrs.get(PENDING_KEY)
    ids = pending.get(_DERIVED_KEY) if isinstance(pending, dict) else None
    if not isinstance(ids, list):
        return set()
    return {i for i in ids if isinstance(i, int) and not isinstance(i, bool)}


def _grown(acquisitions: Any, counts: Mapping[int, int], derived: set[int]) -> Any:
    """``acquisitions`` (as stored) with the ``maximumfieldcount`` (NGFF: the most fields of
    the acquisition in a well, not a limit) of ``counts``' ids raised to their counts where
    less; an absent one is set only for the ids in ``derived``, acquisitions made here
    without one (their fields all added here: a well's count is the most). Absent in a plate
    another tool wrote, it stays so: one well's count could be less than another's."""
    if not isinstance(acquisitions, list):
        return acquisitions
    out = []
    for a in acquisitions:
        i = a.get("id") if isinstance(a, dict) else None
        count = counts.get(i, 0) if isinstance(i, int) else 0
        if count > 0:
            most = a.get("maximumfieldcount")
            if (most is None and i in derived) or (isinstance(most, int) and most < count):
                a = {**a, "maximumfieldcount": count}
        out.append(a)
    return out


def _well_listed(
    ref: dict[str, Any], row: str, column: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A plate body edit listing well ``ref`` (:func:`_with_well`) with the indices of its
    ``row`` and ``column`` names in the body edited: another writer may have added rows or
    columns since ``ref`` was made from the plate as read."""

    def edit(body: dict[str, Any]) -> dict[str, Any]:
        rows = [e.get("name") for e in body.get("rows") or [] if isinstance(e, dict)]
        columns = [e.get("name") for e in body.get("columns") or [] if isinstance(e, dict)]
        placed = ref
        if row in rows and column in columns:
            placed = {**ref, "rowIndex": rows.index(row), "columnIndex": columns.index(column)}
        return {**body, "wells": _with_well(list(body.get("wells") or []), placed)}

    return edit


def _field_count_raised(body: dict[str, Any], fields: int) -> dict[str, Any]:
    """``body`` with its ``field_count`` (NGFF: the most fields of any well) raised to a
    well's ``fields`` when it is less; a body without one is left so (it is optional)."""
    count = body.get("field_count")
    if isinstance(count, int) and not isinstance(count, bool) and count < fields:
        return {**body, "field_count": fields}
    return body


def _with_well(wells: list[dict[str, Any]], ref: dict[str, Any]) -> list[dict[str, Any]]:
    """``wells`` with ``ref`` added once, before the first well that comes after it in row
    then column order (the existing order is kept)."""
    if any(w.get("path") == ref["path"] for w in wells):
        return wells
    key = (ref["rowIndex"], ref["columnIndex"])
    for i, w in enumerate(wells):
        if (w.get("rowIndex", -1), w.get("columnIndex", -1)) > key:
            return [*wells[:i], ref, *wells[i:]]
    return [*wells, ref]


async def _consolidated_wells(
    store: AsyncStore, root: str, version: str, paths: Sequence[str]
) -> dict[str, Well]:
    """The well metadata of ``paths`` that the plate's consolidated metadata holds (one GET:
    the 0.5 ``zarr.json``'s ``consolidated_metadata``, the 0.4 ``.zmetadata``); an entry
    missing or not a valid well of ``version`` is left out (its own document is read)."""
    v2 = is_zarr_v2(version)  # 0.4 and 0.1 - 0.3
    key = join(root, ".zmetadata" if v2 else "zarr.json")
    try:
        raw = await store.get(key)
        doc = None if raw is None else _object(raw, key)
    except CredentialsRefusedError:
        raise
    except (MetadataError, PermissionDeniedError):
        return {}
    entries = (doc or {}).get("metadata" if v2 else "consolidated_metadata")
    if not v2 and isinstance(entries, dict) and entries.get("kind", "inline") == "inline":
        entries = entries.get("metadata")
    if not isinstance(entries, dict):
        return {}
    found: dict[str, Well] = {}
    for path in paths:
        entry = entries.get(f"{path}/.zattrs" if v2 else path)
        attrs = entry.get("attributes") if isinstance(entry, dict) and not v2 else entry
        if not v2 and isinstance(attrs, dict) and isinstance(attrs.get("ome"), dict):
            attrs = {**attrs, "ome": {"version": version, **attrs["ome"]}}
        try:
            well = validate(attrs, version=version, kind="well").well if attrs else None
        except (MetadataError, UnsupportedError):
            continue
        if well is not None:
            found[path] = well
    return found


async def _read_plate(store: AsyncStore, root: str) -> tuple[PlateMeta, str]:
    """The plate metadata (NGFF, or the pending layout of a plate without fields) and NGFF
    version of the group at ``root``.

    :raises UnsupportedError: the group holds other NGFF metadata (an image, a well, ...).
    :raises MetadataError: the group has no (or invalid) NGFF metadata; the key is named.
    :raises NotFoundError: no zarr group at ``root``.
    """
    for attempt in range(3):
        try:
            ome = await read_group_metadata(store, root)
            break
        except MetadataError:
            pending = await _read_pending(store, root)
            if pending is not None:
                return pending
            if attempt == 2:
                raise
            # neither NGFF nor pending when read again: another writer listed the plate's
            # first well (or removed its last) between the two reads; read it once more
    version = ome.version or "0.5"
    if ome.plate is None:
        key = join(root, ".zattrs" if is_zarr_v2(version) else "zarr.json")
        kinds = ", ".join(ome.kinds) or "none"
        hint = " (a well: its plate is the group two levels up)" if ome.well is not None else ""
        raise UnsupportedError(
            f"{_where(store, root)} is not an HCS plate: {store.url.rstrip('/')}/{key} "
            f"has no 'plate' metadata (its NGFF metadata: {kinds}){hint}"
        )
    return ome.plate, version


async def _read_pending(store: AsyncStore, root: str) -> tuple[PlateMeta, str] | None:
    """The layout of a plate that has no field yet, ``None`` when the group is not one."""
    for name, version in (("zarr.json", "0.5"), (".zattrs", "0.4")):
        key = join(root, name)
        try:
            raw = await store.get(key)
        except CredentialsRefusedError:
            raise
        except PermissionDeniedError:  # a missing key on a store that may not list
            if version == "0.4":
                raise
            continue
        if raw is None:
            continue
        try:
            doc = _object(raw, key)
        except MetadataError:
            return None
        attrs = doc.get("attributes") if version == "0.5" else doc
        pending = attrs.get(PENDING_KEY) if isinstance(attrs, dict) else None
        body = pending.get("plate") if isinstance(pending, dict) else None
        if not isinstance(body, dict):
            return None
        where = f"{store.url.rstrip('/')}/{key}"
        assert isinstance(pending, dict)  # it holds the body
        return _pending_meta(body, version, where, pending.get(_UNVERSIONED_KEY) is True), version
    return None
