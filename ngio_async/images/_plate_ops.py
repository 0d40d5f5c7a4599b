"""ngio's plate operations beyond adding fields: remove a field (``remove_image``), create
an empty plate shaped like another (``derive_ome_zarr_plate``), read one well by its URL
(``open_ome_zarr_well``) and grow a plate's layout (``add_row``, ``add_column``,
``add_acquisition``).

A row or column is added where ngio 1.1.3 puts it: the names sorted (columns by number when
they are numbers), every listed well's ``rowIndex`` / ``columnIndex`` moved with its row and
column, in one compare-and-swap of the plate document (other processes' edits kept).

:func:`remove_image` unlists first, in the order that never lists what is missing: when the
field is its well's last, the well from the plate's ``wells`` (the plate lists exactly the
wells that have a field), then the field from the well's ``images`` (compare-and-swaps, as
``add_image`` lists them); a well another process gave a field meanwhile is listed again.
The field's data stays, as ngio leaves it, unless ``delete=True``: then, once unlisted, it is
dropped from the consolidated metadata above and its objects are deleted (its group document
first: interrupted, what is left is an unlisted node that no longer opens).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import MetadataError, NotFoundError, PermissionDeniedError, UnsupportedError
from ..meta._ngff_old import is_zarr_v2
from ._open import join

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from .._limits import Limits
    from ..meta import OmeMetadata
    from ..stores import AsyncStore
    from ._opening import _Opening
    from ._plate import Plate
    from ._plate_layout import PlateWell, WellSpec

__all__ = [
    "add_acquisition",
    "add_column",
    "add_row",
    "create_plate_like_async",
    "open_well_async",
    "remove_image",
]


async def remove_image(
    plate: Plate,
    row: str | int,
    column: str | int | None = None,
    field: str | int = "0",
    *,
    delete: bool = False,
) -> None:
    """See :meth:`~ngio_async.images.Plate.remove_image`."""
    from ._plate_docs import _well_listed
    from ._plate_layout import _name
    from ._plate_lenient import peer_field_name, refuse_peer_fields

    plate._check_writable()
    well_path = await plate._listed(row, column)  # ngio's column=1 finds a plate's "01"
    name = field if peer_field_name(field) else _name(field, "field")  # a peer's 'fov_a' too
    if delete and not plate.store.supports_writes:
        raise UnsupportedError(f"{plate.url} is on a read-only store: nothing was changed")
    root = join(plate.root, well_path, name)
    listed = next(w for w in plate.metadata.wells if w.path == well_path)
    ref = {"path": listed.path, "rowIndex": listed.row_index, "columnIndex": listed.column_index}
    names = plate.rows[listed.row_index], plate.columns[listed.column_index]
    async with plate._well_lock(well_path):
        images = await plate._well_images(well_path)
        paths = [im.get("path") for im in images]
        if name not in paths:
            raise NotFoundError(
                f"well {well_path!r} of plate {plate.url} has no field {name!r} "
                f"(fields: {', '.join(str(p) for p in paths) or 'none'})",
                url=plate.store.url,
                key=root,
            )
        refuse_peer_fields([im for im in images if im.get("path") != name], well_path, plate.url)
        plate._wells.pop(well_path, None)
        last = len(images) == 1
        if last:  # the plate stops listing the well before the well has no field
            await plate._edit_plate(lambda wells: [w for w in wells if w.get("path") != well_path])
        well = await plate._edit_well(
            well_path, lambda ims: [im for im in ims if im.get("path") != name]
        )
        if last and well is not None:  # another process added a field meanwhile
            await plate._edit_plate(_same, body_edit=_well_listed(ref, *names))
        if plate._first_field == f"{well_path}/{name}":
            plate._first_paths, plate._first_field = None, ""
        if delete:
            await _delete_node(plate, root)


async def _delete_node(plate: Plate, root: str) -> None:
    """Delete the (unlisted) node at ``root``: out of the consolidated copies, then its group
    document, its chunks, the documents below."""
    from ._consolidated import update_consolidated
    from ._root_checks import _NODE_KEYS, _is_node_key

    store = plate.store
    await update_consolidated(store, [], removed=root)
    if not store.supports_listing:
        await store.delete_many([join(root, k) for k in _NODE_KEYS])
        return
    keys = await store.list_prefix(root)
    top = {join(root, k) for k in _NODE_KEYS}
    for stage in (
        [k for k in keys if k in top],
        [k for k in keys if not _is_node_key(k)],
        [k for k in keys if _is_node_key(k) and k not in top],
    ):
        if stage:
            await store.delete_many(stage)


def create_plate_like_async(
    src: Plate,
    url: str | os.PathLike[str] | Any,
    *,
    name: str | None = None,
    ngff_version: str | None = None,
    keep_acquisitions: bool = False,
    wells: Sequence[WellSpec] | None = None,
    overwrite: bool = False,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    **store_options: Any,
) -> _Opening[Plate]:
    """Create an empty plate shaped like ``src`` (ngio's ``derive_ome_zarr_plate``):
    ``plate = await create_plate_like_async(src, url)`` or ``async with``.

    Same rows, columns and ``field_count`` as ``src``; the groups of ``src``'s wells (or
    ``wells``); its name (or ``name``) and NGFF version (or ``ngff_version``; a 0.6 plate's is
    0.5); its acquisitions only with ``keep_acquisitions=True`` (as ngio: by default none).
    No field is copied: add them with :meth:`~ngio_async.images.Plate.add_image`. Other
    arguments as :func:`~ngio_async.create_plate_async`.

    :raises ValueError: ``url`` (with ``path``) is ``src``, lies inside it or holds it (before
        any I/O: ``overwrite=True`` would delete the source's fields).
    """
    from ..convert._locations import check_distinct
    from ._plate import Plate, create_plate_async

    if not isinstance(src, Plate):
        raise TypeError(f"src must be an open plate, got {type(src).__name__}")
    src._check_open()
    check_distinct(src, url, None, {**store_options, "path": path})
    version = ngff_version or (src.version if src.version in ("0.4", "0.5") else "0.5")
    if version not in ("0.4", "0.5"):
        raise ValueError(f"ngff_version must be '0.4' or '0.5', got {version!r}")
    return create_plate_async(
        url,
        rows=src.rows,
        columns=src.columns,
        wells=[
            (src.rows[w.row_index], src.columns[w.column_index]) for w in src.metadata.wells
        ]  # by position: a 0.4 plate's '<column>/<row>' well paths become '<row>/<column>'
        if wells is None
        else wells,
        acquisitions=list(src.acquisitions) if keep_acquisitions else None,
        name=src.name if name is None else name,
        ngff_version="0.4" if version == "0.4" else "0.5",
        field_count=src.field_count,
        overwrite=overwrite,
        limits=limits,
        path=path,
        **store_options,
    )


async def open_well_async(
    url: str | os.PathLike[str] | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    **store_options: Any,
) -> PlateWell:
    """The well at ``url`` (``.../plate.zarr/B/03``; ngio's ``open_ome_zarr_well``), read
    without its plate: a :class:`~ngio_async.images.PlateWell` (``row`` and ``column`` from
    the last two parts of its path, ``fields``, ``images`` with each field's
    ``acquisition``, ``field_paths(acquisition)``). One metadata read; nothing stays open.
    Open a field with ``open(f"{url}/{field}")``. Same ``url``, ``limits``, ``path`` and
    store options as :func:`~ngio_async.open_async`.

    :raises NotFoundError: no zarr group there.
    :raises MetadataError: the group has no ``well`` metadata (its kinds named).
    """
    from ..stores import AsyncStore, load_backend, open_store
    from ._node import store_path
    from ._open import read_group_metadata
    from ._plate_layout import PlateWell, _where

    root = store_path(path).strip("/")
    if isinstance(url, AsyncStore):
        if store_options:
            raise ValueError(
                f"store options {sorted(store_options)} need a URL: this is an open store "
                f"({url.url}); give them to open_store() instead"
            )
        store, owns = url, False
    else:
        await load_backend(url, store_options.get("backend"))
        store, owns = open_store(url, limits=limits, **store_options), True
    try:
        try:
            ome = await read_group_metadata(store, root)
        except MetadataError:
            empty = await _empty_well(store, root)
            if empty is None:
                raise
            ome = empty
    finally:
        if owns:
            await store.aclose()
    where = _where(store, root).rstrip("/")
    if ome.well is None:
        key = ".zattrs" if is_zarr_v2(ome.version) else "zarr.json"
        raise MetadataError(
            f"{where} is not a well: its {key} has no 'well' metadata (its NGFF metadata: "
            f"{', '.join(ome.kinds) or 'none'})",
            "$",
        )
    parts = where.split("://", 1)[-1].split("/")
    row, column = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[-1])
    return PlateWell(f"{row}/{column}", row, column, ome.well)


async def _empty_well(store: AsyncStore, root: str) -> OmeMetadata | None:
    """The metadata of a well without fields when the group at ``root`` is one whose
    ``images`` list is empty (ngio's ``add_well`` writes it so; NGFF wants one at least)."""
    from ..meta import OmeMetadata, Well
    from ._labels import _object

    for name, version in (("zarr.json", "0.5"), (".zattrs", "0.4")):
        key = join(root, name)
        try:
            raw = await store.get(key)
            doc = None if raw is None else _object(raw, key)
        except (MetadataError, PermissionDeniedError):
            continue
        if doc is None:
            continue
        ngff = doc if version == "0.4" else (doc.get("attributes") or {}).get("ome")
        if not isinstance(ngff, dict):
            return None
        well = ngff.get("well")
        if isinstance(well, dict) and well.get("images") == []:
            found = ngff.get("version") if version == "0.5" else well.get("version")
            return OmeMetadata(well=Well(images=[]), version=found or version)
        return None
    return None


def _column_key(name: str) -> tuple[int, int, str]:
    """ngio's column order: numbers by value, before other names."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def _with_name(body: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    """``body`` with ``name`` among its ``rows`` / ``columns`` (``key``), sorted as ngio sorts,
    each well's index of that axis following its name."""
    entries = [e for e in body.get(key) or [] if isinstance(e, dict)]
    old = [str(e.get("name")) for e in entries]
    if name in old:
        return body
    new = sorted([*old, name], key=_column_key if key == "columns" else None)
    index = "rowIndex" if key == "rows" else "columnIndex"
    wells = []
    for w in body.get("wells") or []:
        if isinstance(w, dict) and isinstance(w.get(index), int) and 0 <= w[index] < len(old):
            w = {**w, index: new.index(old[w[index]])}
        wells.append(w)
    kept = dict(zip(old, entries, strict=True))  # an entry's other keys stay
    return {**body, key: [kept.get(n, {"name": n}) for n in new], "wells": wells}


def _column_name(columns: Sequence[str], name: str) -> str:
    """A numbered column ``name`` (digits: ngio takes ``"3"`` as ``3``) named as ``columns``
    name their numbered columns: the column of that number when there is one (``"1"`` finds
    ``"01"``), else zero-padded where they are (``"03"``, as ngio writes them)."""
    if not name.isdecimal():
        return name
    same = [c for c in columns if c.isdecimal() and int(c) == int(name)]
    if same:
        return same[0]
    padded = [c for c in columns if c.isdecimal() and len(c) > 1 and c.startswith("0")]
    return f"{int(name):0{len(padded[0])}d}" if padded else name


def _column_added(body: dict[str, Any], name: str) -> dict[str, Any]:
    """``body`` with the column ``name`` (named as its columns are: another writer may have
    added or padded columns since the plate was read)."""
    columns = [str(e.get("name")) for e in body.get("columns") or [] if isinstance(e, dict)]
    return _with_name(body, "columns", _column_name(columns, name))


async def add_row(plate: Plate, row: str) -> None:
    """See :meth:`~ngio_async.images.Plate.add_row`."""
    from ._plate_layout import _name

    plate._check_writable()
    name = _name(row, "row")
    if name not in plate.rows:
        await plate._edit_plate(_same, body_edit=lambda body: _with_name(body, "rows", name))


async def add_column(plate: Plate, column: str | int) -> None:
    """See :meth:`~ngio_async.images.Plate.add_column`."""
    from ._plate_layout import _name

    plate._check_writable()
    given = _name(column, "column")
    if _column_name(plate.columns, given) not in plate.columns:
        await plate._edit_plate(_same, body_edit=lambda body: _column_added(body, given))


async def add_acquisition(plate: Plate, id: int, name: str | None = None, **fields: Any) -> None:
    """See :meth:`~ngio_async.images.Plate.add_acquisition`."""
    from ..meta import Acquisition
    from ._plate_layout import _acquisition_json

    plate._check_writable()
    if isinstance(id, bool) or not isinstance(id, int) or id < 0:
        raise ValueError(f"an acquisition id is an int >= 0, got {id!r}")
    known = {f for f in Acquisition.__struct_encode_fields__ if f not in ("id", "name")}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"add_acquisition: unknown field {unknown[0]!r} (known: {sorted(known)})")
    if any(a.id == id for a in plate.acquisitions):
        return
    entry = _acquisition_json({"id": id, "name": str(id) if name is None else name, **fields}, 0)

    def edit(body: dict[str, Any]) -> dict[str, Any]:
        listed = [a for a in body.get("acquisitions") or [] if isinstance(a, dict)]
        if any(a.get("id") == id for a in listed):  # added meanwhile by another process
            return body
        return {**body, "acquisitions": [*listed, entry]}

    kept = () if "maximumfieldcount" in fields else (id,)  # then kept as its most per well
    await plate._edit_plate(_same, body_edit=edit, keep=kept)


def _same(wells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return wells
