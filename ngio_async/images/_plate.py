"""HCS plates: ``open_plate_async`` / ``create_plate_async`` -> :class:`Plate`.

A plate (NGFF 0.4 or 0.5) is a group with ``plate`` metadata (rows, columns, wells,
acquisitions), one group per row, one group per well (``<row>/<column>``) with ``well`` metadata
(its fields of view), and one ordinary OME-Zarr image per field (``<row>/<column>/<field>``),
possibly with labels. Opening a plate reads its group metadata only; a well's metadata is read
when the well is first asked for (then cached), fields are opened one at a time as
:class:`~ngio_async.images.Dataset` objects that share the plate's store and limits::

    async with open_plate_async("s3://bucket/plate.zarr") as plate:
        for well, field in await plate.image_paths():       # every well read concurrently
            async with await plate.image(well, field=field) as ds:
                arr = await ds.read(c="DAPI")

Writing keeps every completed call's hierarchy valid, and never leaves metadata naming a node
that is missing or not yet complete:

1. :func:`create_plate_async` refuses an existing node (unless ``overwrite``), writes the row
   groups and the declared wells' groups (plain zarr groups: no ``well`` metadata yet) and the
   plate group. NGFF requires a plate to list at least one well and a well at least one field,
   so until its first field exists the plate layout (rows, columns, acquisitions, name, field
   count) is kept under the group's non-NGFF ``ngio_async`` attribute: a plate without fields
   is not yet an NGFF plate (``ngio-async validate`` says so), but it opens here (with no wells)
   in any process, ready for :meth:`Plate.add_image`.
2. :meth:`Plate.add_image` writes the field image (its arrays, then its group metadata), then
   the well's ``well`` metadata (the field appended), and last, for a well not listed yet, the
   plate's ``wells`` list (the first time: the NGFF ``plate`` metadata replaces the pending
   layout). The plate lists exactly the wells that have at least one field.

Every metadata document is read again right before it is rewritten (keys this library does not
model are kept), and written only if it validates. Updates of one :class:`Plate` object are
serialised by locks, and the plate's and wells' documents are rewritten with
:meth:`~ngio_async.stores.AsyncStore.update` (a compare-and-swap: conditional puts on S3, GCS,
Azure and memory stores, a ``flock`` of the document's directory on local disks), so several
processes may add fields to one plate at once: none loses another's wells or fields, and
``field_count`` holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from .._errors import (
    ExistsError,
    MetadataError,
    NotFoundError,
    PermissionDeniedError,
    ReadOnlyError,
    UnsupportedError,
)
from .._workers import Workers
from ..meta import (
    Acquisition,
    Plate as PlateMeta,
    Well,
    WellImage,
    validate,
    write_document,
)
from ..meta._validate import _UNVERSIONED
from ..meta.zarr import encode_group_v2, encode_group_v3
from ..tables._plate import PlateTables
from ._consolidated import _put_all, metadata_lock, update_consolidated
from ._create import _PLAN_KEYS, _open_target
from ._create_plan import ImagePlan, level_names, plan_image
from ._dataset import Dataset
from ._labels import _object, check_same_version
from ._metadata_writes import _claim, _prepare_root, claim_root, complete_root, discard_documents
from ._node import StoreNode, store_path
from ._open import join, read_group_metadata
from ._opening import _check_mode, _Opening, closing_store_on_error, open_node
from ._run_all import _run_all

if TYPE_CHECKING:
    import os

    from .._limits import Limits
    from ..stores import AsyncStore, Buffer
    from ._opening import Mode

__all__ = ["Plate", "PlateWell", "create_plate_async", "open_plate_async"]

_T = TypeVar("_T")

#: the non-NGFF attribute holding the layout of a plate that has no field yet
PENDING_KEY = "ngio_async"

AcquisitionSpec = int | Mapping[str, Any] | Acquisition
WellSpec = str | tuple[str | int, str | int]


@dataclass(frozen=True, slots=True)
class PlateWell:
    """One well of a plate: ``path`` (``"A/1"``), ``row``, ``column`` and its fields of view."""

    path: str
    row: str
    column: str
    metadata: Well

    @property
    def images(self) -> list[WellImage]:
        """The fields of view (``path``, ``acquisition``), in metadata order."""
        return list(self.metadata.images)

    @property
    def fields(self) -> list[str]:
        """The field paths, in metadata order."""
        return [im.path for im in self.metadata.images]

    def field_paths(self, acquisition: int | None = None) -> list[str]:
        """The field paths, all or those of one acquisition."""
        return [
            im.path
            for im in self.metadata.images
            if acquisition is None or im.acquisition == acquisition
        ]


# ------------------------------------------------------------------------------ helpers
def _where(store: AsyncStore, root: str) -> str:
    return f"{store.url.rstrip('/')}/{root}" if root else store.url


def _ngff_attrs(body: dict[str, Any], key: str, version: str) -> dict[str, Any]:
    """The NGFF attributes ``{key: body}`` of ``version`` (what :func:`validate` takes)."""
    if version == "0.4":
        return {key: {**body, "version": "0.4"}}
    return {"ome": {"version": version, key: body}}


def _pending_meta(body: Any, version: str, where: str, unversioned: bool = False) -> PlateMeta:
    """The :class:`~ngio_async.meta.Plate` of a pending layout (every rule checked; no wells);
    ``unversioned``: of a 0.4 plate stored without ``version`` (marked as decoded so)."""
    from msgspec.structs import replace

    try:
        row, column = body["rows"][0]["name"], body["columns"][0]["name"]
        probe = {**body, "wells": [{"path": f"{row}/{column}", "rowIndex": 0, "columnIndex": 0}]}
    except (KeyError, IndexError, TypeError):
        raise MetadataError(
            f"{where}: the pending plate layout needs 'rows' and 'columns'",
            f"$.{PENDING_KEY}.plate",
        ) from None
    try:
        plate = validate(_ngff_attrs(probe, "plate", version), kind="plate").plate
    except MetadataError as exc:
        raise MetadataError(f"{where}: pending plate layout: {exc.rule}", exc.path) from None
    assert plate is not None
    plate = replace(plate, wells=[])
    if unversioned and version == "0.4":
        plate.extra[_UNVERSIONED] = True
    return plate


def _name(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{what}: expected a name (str or int), got {value!r}")
    text = str(value)
    if not text.isascii() or not text.isalnum():
        raise ValueError(f"{what} {text!r}: names are letters and digits only")
    return text


def _split_well(row: Any, column: Any) -> tuple[str, str]:
    """``("A", "1")`` from ``("A", "1")``, ``("A", 1)`` or ``("A/1", None)``."""
    if column is None:
        if isinstance(row, tuple) and len(row) == 2:
            row, column = row
        elif isinstance(row, str) and row.count("/") == 1:
            row, column = row.split("/")
        else:
            raise ValueError(f"a well is 'row/column' or (row, column), got {row!r}")
    elif isinstance(row, str) and "/" in row:  # image(*pair) of image_paths(): (well, field)
        raise ValueError(
            f"{row!r} is a well path, so {column!r} cannot be its column: give the well as "
            f"'row/column' or as row, column, and the field by name (field={column!r})"
        )
    return _name(row, "row"), _name(column, "column")


def _acquisition_json(spec: AcquisitionSpec, i: int) -> dict[str, Any]:
    from ..meta._base import dump

    if isinstance(spec, Acquisition):
        out: dict[str, Any] = dump(spec)
        return out
    if isinstance(spec, Mapping):
        return dict(spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"id": spec}
    raise TypeError(f"acquisitions[{i}]: expected an id, a dict or an Acquisition, got {spec!r}")


def _group_doc(v3: bool) -> list[tuple[str, bytes]]:
    return [("zarr.json", encode_group_v3())] if v3 else [(".zgroup", encode_group_v2())]


# ------------------------------------------------------------------------------ the plate
class Plate(StoreNode):
    """An HCS plate: ``rows``, ``columns``, ``wells``, ``acquisitions``; fields open as datasets.

    Open with :func:`open_plate_async` (read; ``mode="r+"`` to add fields) or create with
    :func:`create_plate_async`. The datasets it opens or creates share its store: close them
    before (or with) the plate; :meth:`aclose` closes the store if the plate opened it.
    """

    _what = "plate"

    def __init__(
        self,
        store: AsyncStore,
        root: str,
        metadata: PlateMeta,
        version: str,
        *,
        limits: Limits,
        owns_store: bool,
        mode: Mode,
    ) -> None:
        self.store = store
        self.root = root
        self.metadata = metadata
        self.limits = limits
        self.mode: Mode = mode
        self._version = version
        self._owns_store = owns_store
        self._workers = Workers(limits.decode_threads)
        self._wells: dict[str, PlateWell] = {}
        self._plate_lock: anyio.Lock | None = None
        self._well_locks: dict[str, anyio.Lock] = {}
        self._first_paths: tuple[str, ...] | None = None
        self._first_field = ""  # its path, once read: 'A/1/0'
        self._derived: set[int] | None = None  # acquisitions whose maximumfieldcount we keep
        #: the plate's own tables (its ``tables/`` group) and its images' ones, concatenated
        self.tables = PlateTables(self, version=version)

    # ---------------------------------------------------------------- opening / closing
    @classmethod
    async def open_in(
        cls,
        store: AsyncStore,
        root: str = "",
        *,
        limits: Limits | None = None,
        owns_store: bool = False,
        mode: Mode = "r",
    ) -> Plate:
        """Open the plate at ``root`` of an open store: its group metadata only.

        :raises UnsupportedError: the group holds other NGFF metadata (an image, a well, ...).
        :raises MetadataError: the group has no (or invalid) NGFF metadata; the key is named.
        :raises NotFoundError: no zarr group at ``root``.
        """
        _check_mode(mode)
        root = root.strip("/")
        metadata, version = await _read_plate(store, root)
        return cls(
            store,
            root,
            metadata,
            version,
            limits=limits or store.limits,
            owns_store=owns_store,
            mode=mode,
        )

    def _check_writable(self, *, ngff: bool = True) -> None:
        """Refuse a write before any I/O: the plate is closed or read-only, or (``ngff``: the
        write adds NGFF metadata, a field or a well) it is NGFF 0.6. Tables may be written
        into a 0.6 plate: they leave its NGFF metadata alone."""
        self._check_open()
        if self.mode != "r+":
            raise ReadOnlyError(
                f"{self.url} is open read-only (mode='r'); open it with mode='r+' to write"
            )
        if ngff and self.version not in ("0.4", "0.5"):  # 0.6 is read, not written
            raise UnsupportedError(
                f"{self.url}: cannot write to an NGFF {self.version} plate (ngio_async writes "
                "NGFF 0.4 and 0.5; a field added would be a 0.5 image in a 0.6 hierarchy)"
            )

    # ---------------------------------------------------------------- description
    @property
    def url(self) -> str:
        return _where(self.store, self.root)

    @property
    def version(self) -> str:
        """The NGFF version, ``"0.4"`` or ``"0.5"`` (the fields added follow it)."""
        return self._version

    @property
    def name(self) -> str | None:
        return self.metadata.name

    @property
    def rows(self) -> list[str]:
        return [r.name for r in self.metadata.rows]

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.metadata.columns]

    @property
    def wells(self) -> list[str]:
        """The paths (``"A/1"``) of the wells listed, in metadata order (those with fields)."""
        return [w.path for w in self.metadata.wells]

    @property
    def acquisitions(self) -> list[Acquisition]:
        return list(self.metadata.acquisitions or ())

    @property
    def field_count(self) -> int | None:
        """The most fields a well may have (``None``: not stated)."""
        return self.metadata.field_count

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return (
            f"<Plate{state} {self.url} ngff={self.version} "
            f"{len(self.metadata.rows)}x{len(self.metadata.columns)} wells={len(self.wells)}>"
        )

    # ---------------------------------------------------------------- reading
    def _numbered(self, column: Any, name: str) -> str:
        """The plate's column ``name``, or for an int ``column`` the plate's one column of that
        number when its names are zero-padded (ngio's ``"01"``), as ngio takes ``column=1``."""
        if name in self.columns or isinstance(column, bool) or not isinstance(column, int):
            return name
        same = [c for c in self.columns if c.isdigit() and int(c) == column]
        return same[0] if len(same) == 1 else name

    async def _listed(self, row: Any, column: Any) -> str:
        """The path of the listed well ``(row, column)``; one not listed in the plate as read
        is looked for again in its document read again (another writer may have listed it).

        :raises NotFoundError: the plate does not list it (the well named).
        """
        r, c = _split_well(row, column)

        def find() -> str:
            path = f"{r}/{self._numbered(column, c)}"
            if path not in self.wells:
                shown = ", ".join(self.wells[:8]) + (", ..." if len(self.wells) > 8 else "")
                raise NotFoundError(
                    f"no well {path!r} in plate {self.url} (wells: {shown or 'none'})",
                    url=self.store.url,
                    key=join(self.root, path),
                )
            return path

        return await self._or_reread(find)

    async def _or_reread(self, resolve: Callable[[], _T]) -> _T:
        """``resolve()`` (checks against the plate as read); when it refuses (``ValueError``,
        :class:`NotFoundError`: no such row, column, well, acquisition), the same after the
        plate's document is read again once: another writer may have added it since."""
        try:
            return resolve()
        except (ValueError, NotFoundError):
            await self._reread()
        return resolve()

    async def _reread(self) -> None:
        """The plate's metadata read again from its document (serialised with its edits: an
        edit's result is never replaced by an older read)."""
        async with self._lock():
            self.metadata, _ = await _read_plate(self.store, self.root)
            self._derived = None  # read again when asked for

    def _lock(self) -> anyio.Lock:
        if self._plate_lock is None:
            self._plate_lock = anyio.Lock()
        return self._plate_lock

    async def well(self, row: str | int, column: str | int | None = None) -> PlateWell:
        """The well ``(row, column)`` (or ``"A/1"``): its fields of view. Its metadata is read
        once and cached.

        :raises NotFoundError: the plate lists no such well, or the well's group is missing.
        """
        self._check_open()
        path = await self._listed(row, column)
        cached = self._wells.get(path)
        if cached is not None:
            return cached
        try:
            meta = await read_group_metadata(
                self.store, join(self.root, path), parent_version=self.version
            )
        except NotFoundError:
            raise NotFoundError(
                f"well {path!r} is listed by plate {self.url} but its group is missing",
                url=self.store.url,
                key=join(self.root, path),
            ) from None
        if meta.well is None:
            key = join(self.root, path, ".zattrs" if meta.version == "0.4" else "zarr.json")
            raise MetadataError(
                f"{self.store.url.rstrip('/')}/{key}: well {path!r} of the plate has no 'well' "
                f"metadata (its NGFF metadata: {', '.join(meta.kinds) or 'none'})"
            )
        r, c = path.split("/")
        well = PlateWell(path, r, c, meta.well)
        self._wells[path] = well
        return well

    async def image_paths(self, acquisition: int | None = None) -> list[tuple[str, str]]:
        """``(well path, field path)`` of every field (of one ``acquisition``, or all), in
        metadata order. The wells not read yet are read concurrently (at most
        ``limits.max_requests`` at a time). In a plate of one acquisition, the fields that
        name none (NGFF requires it with several only) are that acquisition's."""
        self._check_open()
        wells = self.wells

        async def read(path: str) -> None:
            await self.well(path)

        await _run_all([w for w in wells if w not in self._wells], read, self.limits.max_requests)
        ids = [a.id for a in self.acquisitions]
        implied = ids[0] if len(ids) == 1 else None
        return [
            (w, im.path)
            for w in wells
            for im in self._wells[w].images
            if acquisition is None
            or im.acquisition == acquisition
            or (im.acquisition is None and acquisition == implied)
        ]

    async def image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: int | str = 0,
        *,
        mode: Mode | None = None,
    ) -> Dataset:
        """Open a field of view as a :class:`~ngio_async.images.Dataset` (metadata only).

        ``field``: an index into the well's fields (metadata order) or a field path. The
        dataset shares the plate's store, limits and decode threads; closing it leaves the
        store open (the plate owns it).

        :param mode: ``"r"`` or ``"r+"``; default the plate's own mode.
        :raises NotFoundError: no such well or field.
        """
        well = await self.well(row, column)
        try:
            path = self._field_path(well, field)
        except NotFoundError:  # the well as cached: read it again once (fields added since)
            self._wells.pop(well.path, None)
            well = await self.well(well.path)
            path = self._field_path(well, field)
        return await Dataset.open_in(
            self.store,
            join(self.root, well.path, path),
            limits=self.limits,
            workers=self._workers,
            mode=self.mode if mode is None else mode,
            parent_version=self.version,
        )

    def _field_path(self, well: PlateWell, field: int | str) -> str:
        """The path of ``well``'s field ``field`` (an index or a path)."""
        fields = well.fields
        if isinstance(field, str):
            if field not in fields:
                raise NotFoundError(
                    f"well {well.path!r} of plate {self.url} has no field {field!r} "
                    f"(fields: {', '.join(fields)})",
                    url=self.store.url,
                    key=join(self.root, well.path, field),
                )
            return field
        if not isinstance(field, int) or isinstance(field, bool):
            raise TypeError(f"field: expected an index or a field path, got {field!r}")
        if not -len(fields) <= field < len(fields):
            hint = f" (the field named {str(field)!r}: field={str(field)!r})"
            raise NotFoundError(
                f"well {well.path!r} of plate {self.url} has {len(fields)} fields "
                f"({', '.join(fields)}): no field index {field}"
                + (hint if str(field) in fields else ""),
                url=self.store.url,
                key=join(self.root, well.path),
            )
        return fields[field]

    # ---------------------------------------------------------------- writing
    async def add_image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: str | int = "0",
        *,
        acquisition: int | None = None,
        overwrite: bool = False,
        **create_options: Any,
    ) -> Dataset:
        """Create field ``field`` of well ``(row, column)`` (an empty image; see
        :func:`~ngio_async.create_async` for ``shape=``, ``dtype=``, ``axes=``, ``channels=``,
        ``scale=``, ``chunks=``, ``shards=``, ``levels=``, ...; the NGFF version is the
        plate's; without ``levels=``, as many levels as the plate's first field has, named as
        its are) and list it; return the writable dataset.

        Written in order: the row and well groups when missing, the image (arrays, then its
        group metadata), the well's ``well`` metadata, and last the plate's ``wells`` list if
        the well was not listed yet. ``overwrite=True`` replaces an existing field (first
        unlisted, then deleted and created again, then listed at its old place).

        :param acquisition: the field's acquisition id (one of the plate's; required when the
            plate has several acquisitions).
        :raises ValueError: the row or column is not the plate's, an unknown acquisition, or
            the well already has ``field_count`` fields (all before any write).
        :raises ExistsError: the field exists and ``overwrite`` is false.
        :raises ReadOnlyError: the plate is read-only (before any I/O).
        """
        self._check_writable()
        r, given = _split_well(row, column)
        name = _name(field, "field")

        def resolve() -> tuple[str, dict[str, Any], tuple[str, str]]:
            """The column's name, the well's ``wells`` entry (its indices as the plate was
            read) and its row's and column's names; checks the acquisition."""
            c = self._numbered(column, given)
            known = next((w for w in self.metadata.wells if w.path == f"{r}/{c}"), None)
            ref: dict[str, Any] = (
                {"path": known.path, "rowIndex": known.row_index, "columnIndex": known.column_index}
                if known is not None
                else self._new_well_ref(r, c)
            )
            self._check_acquisition(acquisition)
            return c, ref, (self.rows[ref["rowIndex"]], self.columns[ref["columnIndex"]])

        c, ref, names = await self._or_reread(resolve)  # a row added since the open is found
        well_path = f"{r}/{c}"
        version = create_options.pop("ngff_version", self.version)
        if version != self.version:
            raise ValueError(
                f"ngff_version {version!r}: the fields of a {self.version} plate are "
                f"{self.version} images"
            )
        for key in create_options:  # the plate's store and limits are the field's
            if key not in _FIELD_OPTIONS:
                raise TypeError(f"add_image() got an unexpected keyword argument {key!r}")
        for key in ("shape", "dtype"):
            if key not in create_options:
                raise TypeError(f"add_image() missing the keyword argument {key!r}")
        ngff: Literal["0.4", "0.5"] = "0.4" if self.version == "0.4" else "0.5"
        plan = plan_image(ngff_version=ngff, **create_options)  # before any I/O
        first = await self._first_field_paths()
        if len(first) > 1 and not {"levels", "level_shapes"} & create_options.keys():
            # plate readers (ome-zarr-py, thus napari) read every field with the first
            # field's levels: a field with fewer is missing there
            try:
                plan = plan_image(ngff_version=ngff, levels=len(first), **create_options)
            except ValueError as exc:
                raise ValueError(
                    f"{exc}; without levels=, a field gets as many levels as the plate's first "
                    f"field {self._first_field!r} has ({len(first)}: plate readers read every "
                    "field with them); pass levels= to choose"
                ) from None
        plan = _level_paths(plan, first)
        root = join(self.root, well_path, name)
        entry: dict[str, Any] = {"path": name}
        if acquisition is not None:
            entry["acquisition"] = acquisition
        await check_same_version(self.store, join(self.root, well_path), self.version)
        async with self._well_lock(well_path):
            images = await self._well_images(well_path)
            paths = [im.get("path") for im in images]
            at: int | None = None
            if name in paths:
                if not overwrite:
                    raise ExistsError(
                        f"field {name!r} of well {well_path!r} exists in plate {self.url}; "
                        "pass overwrite=True to replace it",
                        url=self.store.url,
                        key=root,
                        kind="node",
                    )
                at = paths.index(name)
                await self._unlist_field(well_path, name, last=len(images) == 1)
            elif self.field_count is not None and len(images) >= self.field_count:
                raise ValueError(
                    f"well {well_path!r} already has {len(images)} fields: the plate's "
                    f"field_count is {self.field_count}"
                )
            else:
                await self._check_acquisition_room(well_path, images, acquisition)
            await self._ensure_groups(r, well_path)

            alone = [False]  # the well had no other field (another writer may have unlisted it)

            def listed(ims: list[dict[str, Any]]) -> list[dict[str, Any]]:
                ims = [im for im in ims if im.get("path") != name]
                alone[0] = not ims
                if at is None and self.field_count is not None and len(ims) >= self.field_count:
                    # filled meanwhile by another process: this field is removed again
                    raise ValueError(
                        f"well {well_path!r} already has {len(ims)} fields: the plate's "
                        f"field_count is {self.field_count}"
                    )
                ims.insert(len(ims) if at is None else at, entry)
                return ims

            await claim_root(self.store, root, plan, overwrite=overwrite)
            try:
                await complete_root(self.store, root, plan, overwrite=overwrite)
                well = await self._edit_well(well_path, listed)
                assert well is not None
                counts = self._grown_counts(well, acquisition)
                if well_path not in self.wells or counts or alone[0]:
                    await self._edit_plate(
                        lambda wells: wells, counts, body_edit=_well_listed(ref, *names)
                    )
            except BaseException as exc:  # not listed: removed, so that a retry can create it
                await self._discard_unlisted(well_path, name, root, plan, exc)
                raise
            self._wells[well_path] = PlateWell(well_path, r, c, well)
        return Dataset.from_plan(
            self.store,
            root,
            plan.ome,
            list(plan.arrays),
            limits=self.limits,
            workers=self._workers,
            mode="r+",
            auto_windows=plan.auto_windows,
        )

    async def remove_image(
        self,
        row: str | int,
        column: str | int | None = None,
        field: str | int = "0",
        *,
        delete: bool = False,
    ) -> None:
        """Unlist field ``field`` (its path) of well ``(row, column)`` (ngio's
        ``remove_image``): from the well, and when it was the well's last field the well
        from the plate first. Its data stays, as ngio leaves it, unless ``delete=True``
        (deleted once unlisted).

        :raises NotFoundError: no such well or field.
        :raises ReadOnlyError: the plate is read-only (before any I/O).
        """
        from ._plate_ops import remove_image

        await remove_image(self, row, column, field, delete=delete)

    async def add_row(self, row: str) -> None:
        """Add row ``row`` to the plate's layout (ngio's ``add_row``): the rows sorted by name,
        each listed well's ``rowIndex`` following its row; nothing when it is there.

        :raises ValueError: ``row`` is no name of letters and digits (before any I/O).
        :raises ReadOnlyError: the plate is read-only (before any I/O).
        """
        from ._plate_ops import add_row

        await add_row(self, row)

    async def add_column(self, column: str | int) -> None:
        """Add column ``column`` (ngio's ``add_column``): the columns sorted by number (other
        names after them), each listed well's ``columnIndex`` following its column; a number
        (an int or digits, as ngio takes them) is the plate's column of that number when there
        is one (``"1"`` finds ``"01"``: nothing to add), else zero-padded where the plate's
        columns are (``3`` or ``"3"`` -> ``"03"``).

        :raises ValueError: ``column`` is no name of letters and digits (before any I/O).
        :raises ReadOnlyError: the plate is read-only (before any I/O).
        """
        from ._plate_ops import add_column

        await add_column(self, column)

    async def add_acquisition(self, id: int, name: str | None = None, **fields: Any) -> None:
        """Add acquisition ``id`` (ngio's ``add_acquisition``; ``name`` default: the id as text;
        ``fields``: ``maximumfieldcount``, ``description``, ``starttime``, ``endtime``);
        nothing when the plate has that id. Fields of it can then be added
        (``add_image(..., acquisition=id)``).

        :raises ValueError, TypeError, MetadataError: a bad id or field (before any write).
        :raises ReadOnlyError: the plate is read-only (before any I/O).
        """
        from ._plate_ops import add_acquisition

        await add_acquisition(self, id, name, **fields)

    async def _discard_unlisted(
        self, well_path: str, name: str, root: str, plan: ImagePlan, exc: BaseException
    ) -> None:
        """After ``add_image`` failed with ``exc`` while listing field ``name``: unless the well
        lists it and the plate lists the well (then it is complete), unlist it from the well
        and remove its metadata (best effort; a store that cannot be read is left alone).
        The well's and plate's puts are shielded from cancellation: cancelled in flight, one
        could land after this check and list a field removed here."""
        with anyio.CancelScope(shield=True):
            try:
                listed = name in [im.get("path") for im in await self._well_images(well_path)]
                key, doc = await self._read_doc(self.root)
                body = {} if doc is None else self._ngff(self._attrs(doc, key)) or {}
                plate = body.get("plate")
                wells = plate.get("wells") if isinstance(plate, dict) else None
                if listed and any(
                    isinstance(w, dict) and w.get("path") == well_path for w in wells or ()
                ):
                    return
                if listed:
                    await self._edit_well(
                        well_path, lambda ims: [im for im in ims if im.get("path") != name]
                    )
            except Exception:  # noqa: BLE001 - the store fails: leave what is there
                return
        keys = [join(root, k) for k, _ in plan.group_documents()]
        keys += [join(root, k) for k, _ in plan.array_documents()]
        await discard_documents(self.store, root, keys, exc, consolidated=True)

    async def _first_field_paths(self) -> tuple[str, ...]:
        """The level paths of the plate's first field (its first well's first field), ``()``
        when there is none or it cannot be read. Read once per plate object."""
        if self._first_paths is None and self.metadata.wells:
            first = self.metadata.wells[0].path
            try:
                well = await self.well(first)
                meta = await read_group_metadata(
                    self.store, join(self.root, first, well.fields[0]), parent_version=self.version
                )
            except (NotFoundError, MetadataError, PermissionDeniedError):
                return ()
            if meta.multiscales:
                self._first_paths = tuple(d.path for d in meta.multiscales[0].datasets)
                self._first_field = f"{first}/{well.fields[0]}"
        return self._first_paths or ()

    def _new_well_ref(self, r: str, c: str) -> dict[str, Any]:
        """The ``wells`` entry of a well not listed yet (before any write).

        Its path follows the plate's listed wells: ``<row>/<column>`` as NGFF says, or
        ``<column>/<row>`` when every listed well is so (0.4 plates written with the names
        swapped: their well paths are read as they are, NGFF 0.4 only warns).

        :raises ValueError: a name is not the plate's, or another well has that position.
        """
        path = f"{r}/{c}"
        rows, columns = self.rows, self.columns
        wells = self.metadata.wells
        swapped = bool(wells) and all(
            w.path == f"{columns[w.column_index]}/{rows[w.row_index]}"
            and w.path != f"{rows[w.row_index]}/{columns[w.column_index]}"
            for w in wells
        )
        if swapped:
            if r not in columns or c not in rows:
                raise ValueError(
                    f"well {path!r} is not in plate {self.url}: its well paths are "
                    f"'<column>/<row>' (columns: {columns}, rows: {rows}; wells: {self.wells})"
                )
            at = (rows.index(c), columns.index(r))
        else:
            if r not in rows:
                raise ValueError(f"row {r!r} is not a row of plate {self.url} (rows: {rows})")
            if c not in columns:
                raise ValueError(
                    f"column {c!r} is not a column of plate {self.url} (columns: {columns})"
                )
            at = (rows.index(r), columns.index(c))
        for w in wells:
            if (w.row_index, w.column_index) == at:
                raise ValueError(
                    f"well {path!r} would be at rowIndex {at[0]}, columnIndex {at[1]} of plate "
                    f"{self.url}, where the plate lists well {w.path!r}: add the field there"
                )
        return {"path": path, "rowIndex": at[0], "columnIndex": at[1]}

    def _check_acquisition(self, acquisition: int | None) -> None:
        ids = [a.id for a in self.acquisitions]
        if acquisition is None:
            if len(ids) > 1:
                raise ValueError(
                    f"plate {self.url} has {len(ids)} acquisitions ({ids}): pass acquisition=<id>"
                )
            return
        if isinstance(acquisition, bool) or not isinstance(acquisition, int):
            raise TypeError(f"acquisition: expected an int id, got {acquisition!r}")
        if acquisition not in ids:
            raise ValueError(
                f"acquisition {acquisition} is not one of plate {self.url}'s acquisitions "
                f"({ids or 'none'})"
            )

    async def _check_acquisition_room(
        self, well_path: str, images: list[dict[str, Any]], acquisition: int | None
    ) -> None:
        """An acquisition's ``maximumfieldcount``: its fields in one well (checked before any
        write, like ``field_count``), unless it is one this library keeps (see
        :meth:`_grown_counts`)."""
        if acquisition is None:
            return
        most = next((a.maximumfieldcount for a in self.acquisitions if a.id == acquisition), None)
        if most is None or acquisition in await self._derived_ids():
            return
        have = sum(1 for im in images if im.get("acquisition") == acquisition)
        if most is not None and have >= most:
            raise ValueError(
                f"well {well_path!r} already has {have} fields of acquisition {acquisition}: "
                f"its maximumfieldcount is {most}"
            )

    async def _derived_ids(self) -> set[int]:
        """The acquisitions whose ``maximumfieldcount`` was given by no one but kept here as
        the most fields any well has of them (recorded under the plate's ``ngio_async``
        attribute); read once per plate object."""
        if self._derived is None:
            key, doc = await self._read_doc(self.root)
            self._derived = _derived_of(self._attrs(doc, key) if doc is not None else {})
        return self._derived

    def _grown_counts(self, well: Well, acquisition: int | None) -> dict[int, int]:
        """``{acquisition: its fields in well}`` when that is more than the plate's
        ``maximumfieldcount`` of it, which no one gave (absent, or kept here): NGFF's strict
        schema wants one per acquisition, so the plate keeps it as the most fields of the
        acquisition in any well."""
        if acquisition is None:
            return {}
        acq = next((a for a in self.acquisitions if a.id == acquisition), None)
        if acq is None:
            return {}
        count = sum(1 for im in well.images if im.acquisition == acquisition)
        most = acq.maximumfieldcount
        derived = most is None or (self._derived is not None and acquisition in self._derived)
        return {acquisition: count} if derived and count > (most or 0) else {}

    def _well_lock(self, path: str) -> anyio.Lock:
        lock = self._well_locks.get(path)
        if lock is None:
            lock = self._well_locks[path] = anyio.Lock()
        return lock

    async def _unlist_field(self, well_path: str, name: str, *, last: bool) -> None:
        """Unlist a field before it is replaced: from the well (and, when it is the well's
        only field, the well from the plate first)."""
        self._wells.pop(well_path, None)
        if last and well_path in self.wells:
            await self._edit_plate(lambda wells: [w for w in wells if w.get("path") != well_path])
        await self._edit_well(well_path, lambda ims: [im for im in ims if im.get("path") != name])

    async def _ensure_groups(self, row: str, well_path: str) -> None:
        """The row and well groups (plain zarr groups), where missing."""
        v3 = self.version != "0.4"
        for group in (join(self.root, row), join(self.root, well_path)):
            for key, data in _group_doc(v3):
                if not await self.store.exists(join(group, key)):
                    # create-only: another process may have made it meanwhile, with metadata
                    await _claim(self.store, group, (join(group, key), data), exists_ok=True)
        # consolidated copies get these groups with the well's document (_edit_well: a copy
        # takes the groups missing above an entry from the store)

    def _doc_key(self, root: str) -> str:
        return join(root, ".zattrs" if self.version == "0.4" else "zarr.json")

    async def _read_doc(self, root: str) -> tuple[str, dict[str, Any] | None]:
        key = self._doc_key(root)
        raw = await self.store.get(key)
        return key, None if raw is None else _object(raw, key)

    def _attrs(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        """The attributes of a group document (0.5: ``attributes``; 0.4: the whole .zattrs)."""
        if self.version == "0.4":
            return doc
        if doc.get("node_type") != "group":
            raise MetadataError(f"{self.store.url}/{key} is not a group", "$.node_type")
        attrs = doc.setdefault("attributes", {})
        if not isinstance(attrs, dict):
            raise MetadataError(f"{self.store.url}/{key}: 'attributes' is not an object")
        return attrs

    def _ngff(self, attrs: dict[str, Any], create: bool = False) -> dict[str, Any] | None:
        """Where the NGFF keys are: the 0.5 ``ome`` object, the 0.4 attributes."""
        if self.version == "0.4":
            return attrs
        ome = attrs.get("ome")
        if ome is None and create:
            ome = attrs["ome"] = {"version": self.version}
        return ome if isinstance(ome, dict) else None

    def _unversioned(self) -> bool:
        """Whether the plate is a 0.4 document stored without a ``version`` (its new wells
        are written without one too)."""
        return _UNVERSIONED in self.metadata.extra

    async def _well_images(self, well_path: str) -> list[dict[str, Any]]:
        """The ``images`` list of a well group as stored (empty: no group or no metadata)."""
        key, doc = await self._read_doc(join(self.root, well_path))
        if doc is None:
            return []
        ngff = self._ngff(self._attrs(doc, key))
        well = ngff.get("well") if ngff is not None else None
        images = well.get("images") if isinstance(well, dict) else None
        return [im for im in images if isinstance(im, dict)] if isinstance(images, list) else []

    async def _edit_well(
        self, well_path: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    ) -> Well | None:
        """Rewrite a well's ``images`` (read again first; other keys kept); no images left
        removes its ``well`` metadata. Returns the validated well metadata written."""
        async with metadata_lock(self.store):  # consolidated copies: RMWs of zarr.json too
            return await self._edit_well_locked(well_path, edit)

    async def _edit_well_locked(
        self, well_path: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    ) -> Well | None:
        key = self._doc_key(join(self.root, well_path))
        result: list[Well | None] = [None]

        async def edited(raw: Buffer | None) -> bytes:
            doc = None if raw is None else _object(raw, key)
            if doc is None:
                doc = {"zarr_format": 3, "node_type": "group"} if self.version != "0.4" else {}
            attrs = self._attrs(doc, key)
            ngff = self._ngff(attrs, create=True)
            assert ngff is not None
            found = ngff.get("well")
            old: dict[str, Any] = found if isinstance(found, dict) else {}
            images = edit(list(old.get("images") or []))
            result[0] = None
            if images:
                well = {**old, "images": images}  # a stored 'version' (or none) is kept
                if self.version == "0.4" and not old and not self._unversioned():
                    well["version"] = "0.4"  # a new well: as its plate has it
                ngff["well"] = well
                result[0] = validate(attrs, kind="well").well
            else:
                ngff.pop("well", None)
                if self.version != "0.4" and set(ngff) <= {"version"}:
                    attrs.pop("ome", None)
            return write_document(doc)

        with anyio.CancelScope(shield=True):  # see _discard_unlisted
            data = await self.store.update(key, edited)  # other processes' edits kept
        assert data is not None
        await update_consolidated(self.store, [(key, bytes(data))], locked=True, shared=[key])
        return result[0]

    async def _edit_plate(
        self,
        edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        counts: Mapping[int, int] | None = None,
        *,
        body_edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """Rewrite the plate's ``wells`` (the document read again first, other keys kept): the
        NGFF ``plate`` when wells are left, else the pending layout. ``counts``: fields of an
        acquisition in a well, raising its kept ``maximumfieldcount`` (:meth:`_grown_counts`).
        ``body_edit``: then the whole plate body (rows, columns, acquisitions)."""
        async with self._lock(), metadata_lock(self.store):
            key = self._doc_key(self.root)
            out: list[Any] = [None, None]

            async def edited(raw: Buffer | None) -> bytes:
                if raw is None:
                    raise NotFoundError(
                        f"{self.store.url}/{key} is gone", url=self.store.url, key=key
                    )
                doc = _object(raw, key)
                attrs = self._attrs(doc, key)
                ngff = self._ngff(attrs, create=True)
                assert ngff is not None
                pending = attrs.get(PENDING_KEY)
                body = ngff.get("plate")
                stored = isinstance(body, dict)  # its 'version' (or none) is kept
                unversioned = isinstance(body, dict) and "version" not in body
                unversioned = unversioned and self.version == "0.4"
                if not isinstance(body, dict) and isinstance(pending, dict):
                    body = pending.get("plate")
                    unversioned = pending.get(_UNVERSIONED_KEY) is True
                if not isinstance(body, dict):
                    raise MetadataError(f"{self.store.url}/{key} holds no plate")
                body = dict(body)  # a 0.5 'version' written by others (ome-zarr-py) is kept
                body["wells"] = edit(list(body.get("wells") or []))
                if body_edit is not None:
                    body = body_edit(body)
                derived = _derived_of(attrs)
                if counts:
                    body["acquisitions"] = _grown(body.get("acquisitions"), counts, derived)
                    pending = attrs.setdefault(PENDING_KEY, {})
                    if isinstance(pending, dict):
                        pending[_DERIVED_KEY] = sorted(derived)
                if isinstance(pending, dict):
                    pending.pop("plate", None)
                    pending.pop(_UNVERSIONED_KEY, None)
                    if not pending:
                        attrs.pop(PENDING_KEY)
                if body["wells"]:
                    if self.version == "0.4" and not stored and not unversioned:
                        body["version"] = "0.4"
                    ngff["plate"] = body
                    checked = validate(attrs, kind="plate")  # never write an invalid document
                    assert checked.plate is not None
                    metadata: PlateMeta = checked.plate
                else:
                    ngff.pop("plate", None)
                    if self.version != "0.4" and set(ngff) <= {"version"}:
                        attrs.pop("ome", None)
                    body.pop("version", None)
                    kept = attrs.setdefault(PENDING_KEY, {})
                    kept["plate"] = body
                    if unversioned:  # listed again, it stays without one
                        kept[_UNVERSIONED_KEY] = True
                    metadata = _pending_meta(
                        body, self.version, f"{self.store.url}/{key}", unversioned
                    )
                out[:] = [metadata, derived]
                return write_document(doc)

            with anyio.CancelScope(shield=True):  # see _discard_unlisted
                data = await self.store.update(key, edited)  # other processes' edits kept
            assert data is not None
            await update_consolidated(self.store, [(key, bytes(data))], locked=True, shared=[key])
            self.metadata, self._derived = out


_DERIVED_KEY = "maximumfieldcount_kept"
#: the options of :meth:`Plate.add_image` passed on to :func:`plan_image`
_FIELD_OPTIONS = _PLAN_KEYS | {"level_shapes", "level_translations"}
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
    """``acquisitions`` (as stored) with the ``maximumfieldcount`` of ``counts``' ids raised
    to their counts where no one gave it (absent, or in ``derived``: updated in place)."""
    if not isinstance(acquisitions, list):
        return acquisitions
    out = []
    for a in acquisitions:
        i = a.get("id") if isinstance(a, dict) else None
        if isinstance(i, int) and i in counts:
            most = a.get("maximumfieldcount")
            if most is None or i in derived:
                derived.add(i)
                if not isinstance(most, int) or most < counts[i]:
                    a = {**a, "maximumfieldcount": counts[i]}
        out.append(a)
    return out


def _level_paths(plan: ImagePlan, existing: Sequence[str]) -> ImagePlan:
    """``plan`` with its levels named as the plate's existing fields name theirs.

    Readers of plates (ome-zarr-py) take the first field's level paths for every field: a
    field whose levels are ``0, 1`` in a plate whose first field has ``s0, s1`` reads as
    missing there. Paths ``<prefix><i>`` continue past the existing levels; others are taken
    as they are, and the levels beyond them keep their own names (``str(i)``) when free.
    """
    from msgspec.structs import replace

    if not existing or tuple(existing[: len(plan.paths)]) == plan.paths[: len(existing)]:
        return plan
    paths = level_names(existing, len(plan.paths))
    ome = plan.ome
    assert ome.multiscales is not None
    ms = ome.multiscales[0]
    datasets = [replace(d, path=p) for d, p in zip(ms.datasets, paths, strict=True)]
    ms = replace(ms, datasets=datasets)
    ome = replace(ome, multiscales=[ms, *ome.multiscales[1:]])
    return dataclasses.replace(plan, paths=tuple(paths), ome=ome)


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


async def _read_plate(store: AsyncStore, root: str) -> tuple[PlateMeta, str]:
    """The plate metadata (NGFF, or the pending layout of a plate without fields) and NGFF
    version of the group at ``root``.

    :raises UnsupportedError: the group holds other NGFF metadata (an image, a well, ...).
    :raises MetadataError: the group has no (or invalid) NGFF metadata; the key is named.
    :raises NotFoundError: no zarr group at ``root``.
    """
    try:
        ome = await read_group_metadata(store, root)
    except MetadataError:
        pending = await _read_pending(store, root)
        if pending is None:
            raise
        return pending
    version = ome.version or "0.5"
    if ome.plate is None:
        key = join(root, ".zattrs" if version == "0.4" else "zarr.json")
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


# ------------------------------------------------------------------------------ entry points
def open_plate_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
    *,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    mode: Mode = "r",
    **store_options: Any,
) -> _Opening[Plate]:
    """Open an HCS plate: ``plate = await open_plate_async(url)`` or ``async with``.

    Only the plate group's metadata is read. Same ``url``, ``limits``, ``path`` and store
    options as :func:`~ngio_async.open_async`; ``mode="r+"`` allows :meth:`Plate.add_image`.

    :raises UnsupportedError: the group is an image, a well, ... (not a plate).
    :raises MetadataError: the group has no NGFF metadata, or invalid plate metadata.
    """
    return open_node(Plate.open_in, url, limits, path, mode, store_options)


def _directory_name(url: Any, root: str) -> str | None:
    """The last path component of ``url`` (a path, URL or store) and ``root``, without
    ``.zarr`` / ``.ome.zarr``; ``None`` when there is none (a bucket, ``memory://``)."""
    text = root or str(url if isinstance(url, str) else getattr(url, "url", url))
    if "://" in text:
        text = text.split("://", 1)[1].partition("/")[2]  # not the bucket or host
    last = text.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".ome.zarr", ".zarr"):
        if last.lower().endswith(suffix):
            last = last[: -len(suffix)]
            break
    return last or None


def _plan_plate(
    rows: Sequence[str | int],
    columns: Sequence[str | int],
    wells: Sequence[WellSpec] | None,
    acquisitions: Sequence[AcquisitionSpec] | None,
    name: str | None,
    ngff_version: str,
    field_count: int | None,
) -> tuple[dict[str, Any], list[str], PlateMeta]:
    """The pending plate body, the declared well paths and the plate model (pure; every rule
    checked)."""
    if ngff_version not in ("0.4", "0.5"):
        raise ValueError(f"ngff_version must be '0.4' or '0.5', got {ngff_version!r}")
    if isinstance(rows, str | int) or isinstance(columns, str | int):
        raise TypeError("rows and columns are sequences of names, e.g. ['A', 'B'], ['1', '2']")
    row_names = [_name(r, f"rows[{i}]") for i, r in enumerate(rows)]
    col_names = [_name(c, f"columns[{i}]") for i, c in enumerate(columns)]
    if not row_names or not col_names:
        raise ValueError("a plate needs at least one row and one column")
    body: dict[str, Any] = {
        "rows": [{"name": r} for r in row_names],
        "columns": [{"name": c} for c in col_names],
    }
    if acquisitions is not None:
        body["acquisitions"] = [_acquisition_json(a, i) for i, a in enumerate(acquisitions)]
        for a in body["acquisitions"]:  # NGFF's strict schema wants a name
            if a.get("name") is None and isinstance(a.get("id"), int):
                a["name"] = str(a["id"])
    if field_count is not None:
        if isinstance(field_count, bool) or not isinstance(field_count, int) or field_count < 1:
            raise ValueError(f"field_count must be an int >= 1, got {field_count!r}")
        body["field_count"] = field_count
    if name is not None:
        body["name"] = str(name)
    if wells is None:
        declared = [f"{r}/{c}" for r in row_names for c in col_names]
    else:
        declared = []
        for w in wells:
            r, c = _split_well(w, None)
            if r not in row_names or c not in col_names:
                raise ValueError(f"well '{r}/{c}' is not in the plate's rows and columns")
            if f"{r}/{c}" in declared:
                raise ValueError(f"well '{r}/{c}' is given twice")
            declared.append(f"{r}/{c}")
    metadata = _pending_meta(body, ngff_version, "plate")  # raises MetadataError (JSON path)
    return {**body, "wells": []}, declared, metadata


def create_plate_async(
    url: str | os.PathLike[str] | AsyncStore | Any,
    *,
    rows: Sequence[str | int],
    columns: Sequence[str | int],
    wells: Sequence[WellSpec] | None = None,
    acquisitions: Sequence[AcquisitionSpec] | None = None,
    name: str | None = None,
    ngff_version: Literal["0.5", "0.4"] = "0.5",
    field_count: int | None = None,
    overwrite: bool = False,
    limits: Limits | None = None,
    path: str | os.PathLike[str] | None = "",
    **store_options: Any,
) -> _Opening[Plate]:
    """Create an empty HCS plate; ``plate = await create_plate_async(...)`` or ``async with``.

    Writes the row groups, the groups of the ``wells`` (default: every row x column; more
    wells of the plate's rows and columns get theirs when their first field is added) and the
    plate group. Add fields with :meth:`Plate.add_image`. Until the first field exists the plate
    is not yet an NGFF plate (NGFF requires at least one well with one field); its layout is
    kept under the non-NGFF ``ngio_async`` attribute and :func:`open_plate_async` opens it.

    :param rows: row names (letters and digits), e.g. ``["A", "B"]``.
    :param columns: column names, e.g. ``["1", "2", "3"]`` (ints are written as text).
    :param wells: the wells whose groups are created now: ``"A/1"`` or ``("A", "1")``.
    :param name: the plate's name (default: its directory's name without ``.zarr``; NGFF's
        strict schema requires one).
    :param acquisitions: ids, or dicts / :class:`~ngio_async.meta.Acquisition` (``id``,
        ``name``, ``maximumfieldcount``, ``description``, ``starttime``, ``endtime``). NGFF's
        strict schema wants a ``name`` (default: the id as text) and a
        ``maximumfieldcount``: a given one bounds the acquisition's fields per well
        (``add_image`` refuses more); without one, the plate keeps it as the most fields of
        the acquisition in any well.
    :param field_count: the most fields a well may hold (``add_image`` refuses more).
    :param overwrite: replace an existing node at ``url`` (its keys are deleted first).
    :raises ExistsError: a zarr node exists there and ``overwrite`` is false.
    :raises ValueError, TypeError, MetadataError: an argument breaks a rule (before any I/O).
    """
    root = store_path(path).strip("/")
    if name is None:  # NGFF's strict plate schema wants a name: the plate's directory's
        name = _directory_name(url, root)
    body, declared, metadata = _plan_plate(
        rows, columns, wells, acquisitions, name, ngff_version, field_count
    )
    v3 = ngff_version != "0.4"

    async def write(store: AsyncStore, owns: bool) -> Plate:
        await _prepare_root(store, root, overwrite)
        groups = sorted({w.split("/")[0] for w in declared}) + declared
        below = [(join(root, g, k), d) for g in groups for k, d in _group_doc(v3)]
        attrs = {PENDING_KEY: {"plate": body}}
        if v3:
            doc = {"zarr_format": 3, "node_type": "group", "attributes": attrs}
            top = [(join(root, "zarr.json"), write_document(doc))]
        else:
            top = [
                (join(root, ".zgroup"), encode_group_v2()),
                (join(root, ".zattrs"), write_document(attrs)),
            ]
        rest = top
        if not overwrite:  # claimed first: of two creates that both found no node, one is
            # refused (the plate's document names no group yet: its layout is pending)
            with anyio.CancelScope(shield=True):
                await _claim(store, root, top[0])
            rest = top[1:]
        try:  # interrupted, the groups written are removed: a retry found them and refused
            await _put_all(store, below)
            with anyio.CancelScope(shield=True):  # cancelled mid-put, it could land after
                for key, data in rest:
                    await store.put(key, data)
        except BaseException as exc:
            await discard_documents(store, root, [k for k, _ in top + below], exc)
            raise
        return Plate(
            store,
            root,
            metadata,
            ngff_version,
            limits=limits or store.limits,
            owns_store=owns,
            mode="r+",
        )

    async def go() -> Plate:
        store, owns = _open_target(url, limits, dict(store_options))
        return await closing_store_on_error(store, owns, write(store, owns))

    return _Opening(go)
