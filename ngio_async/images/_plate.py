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
``field_count`` (when the plate has one) stays the most fields of any well.

Its parts: the layout (:class:`PlateWell`, names, the pending layout, a new plate's plan) in
``_plate_layout``; reading the plate's document and the edits of its body in ``_plate_docs``;
a plate's state, description and name resolution in ``_plate_base``; the rewrites of its and
its wells' documents in ``_plate_documents``; ngio's further plate operations in
``_plate_ops``; the plates and wells peer tools write outside NGFF 0.4 / 0.5 that are read
(wells without indices, field paths such as ``fov_a``) in ``_plate_lenient``.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import (
    CredentialsRefusedError,
    ExistsError,
    MetadataError,
    NotFoundError,
    PermissionDeniedError,
)
from .._workers import Workers
from ..meta import OmeMetadata, Plate as PlateMeta, Well, write_document
from ..meta._ngff_old import is_zarr_v2
from ..meta.zarr import encode_group_v2
from ..tables._plate import PlateTables
from ._consolidated import _put_all
from ._create import _PLAN_KEYS, _open_target
from ._create_plan import ImagePlan, level_names, path_groups, plan_image
from ._dataset import Dataset
from ._labels import check_same_version
from ._metadata_writes import _claim, _prepare_root, claim_root, complete_root, discard_documents
from ._node import store_path
from ._open import join, read_group_metadata
from ._opening import _check_mode, _Opening, closing_store_on_error, open_node
from ._plate_docs import (
    _DERIVED_KEY,
    _consolidated_wells,
    _field_count_raised,
    _grown,
    _read_plate,
    _well_listed,
)
from ._plate_documents import _PlateDocuments
from ._plate_layout import (
    PENDING_KEY,
    AcquisitionSpec,
    PlateWell,
    WellSpec,
    _directory_name,
    _group_doc,
    _name,
    _plan_plate,
    _split_well,
)
from ._plate_lenient import refuse_peer_fields
from ._run_all import _run_all

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from .._limits import Limits
    from ..stores import AsyncStore
    from ._opening import Mode

__all__ = ["Plate", "create_plate_async", "open_plate_async"]


class Plate(_PlateDocuments):
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
        # its tables, weakly: they hold the plate (no cycle; see Dataset.tables)
        self._tables: weakref.ref[PlateTables] | None = None

    @property
    def tables(self) -> PlateTables:
        """The plate's own tables (its ``tables/`` group) and its images' ones, concatenated."""
        tables = None if self._tables is None else self._tables()
        if tables is None:
            tables = PlateTables(self, version=self._version)
            self._tables = weakref.ref(tables)
        return tables

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
        _check_mode(mode, store, root)
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

    async def well(self, row: str | int, column: str | int | None = None) -> PlateWell:
        """The well ``(row, column)`` (or ``"A/1"``): its fields of view. Its metadata is read
        once and cached. A well whose ``images`` list is empty (ngio's ``add_well`` writes it
        so; NGFF wants one field at least) is read as a well without fields.

        :raises NotFoundError: the plate lists no such well, or the well's group is missing.
        """
        self._check_open()
        path = await self._listed(row, column)
        cached = self._wells.get(path)
        if cached is not None:
            return self._current(cached)
        try:
            meta = await read_group_metadata(
                self.store, join(self.root, path), parent_version=self.version
            )
        except MetadataError:
            if not await self._no_fields(path):
                raise
            meta = OmeMetadata(well=Well(images=[]), version=self.version)
        except NotFoundError:
            raise NotFoundError(
                f"well {path!r} is listed by plate {self.url} but its group is missing",
                url=self.store.url,
                key=join(self.root, path),
            ) from None
        if meta.well is None:
            key = join(self.root, path, ".zattrs" if is_zarr_v2(meta.version) else "zarr.json")
            raise MetadataError(
                f"{self.store.url.rstrip('/')}/{key}: well {path!r} of the plate has no 'well' "
                f"metadata (its NGFF metadata: {', '.join(meta.kinds) or 'none'})"
            )
        r, c = path.split("/")
        well = PlateWell(path, r, c, meta.well, self._only_acquisition())
        self._wells[path] = well
        return well

    def _only_acquisition(self) -> int | None:
        """The id of the plate's one acquisition (``None``: none or several)."""
        ids = [a.id for a in self.acquisitions]
        return ids[0] if len(ids) == 1 else None

    def _current(self, well: PlateWell) -> PlateWell:
        """``well`` (as cached) with the plate's one acquisition as it is now (one may have
        been added since)."""
        only = self._only_acquisition()
        return (
            well
            if well.only_acquisition == only
            else dataclasses.replace(well, only_acquisition=only)
        )

    async def _no_fields(self, path: str) -> bool:
        """Whether the well at ``path`` has ``well`` metadata with an empty ``images`` list."""
        try:
            key, doc = await self._read_doc(join(self.root, path))
            ngff = self._ngff(self._attrs(doc, key)) if doc is not None else None
        except MetadataError:
            return False
        well = ngff.get("well") if ngff is not None else None
        return isinstance(well, dict) and well.get("images") == []

    async def image_paths(
        self, acquisition: int | None = None, *, consolidated: bool = False
    ) -> list[tuple[str, str]]:
        """``(well path, field path)`` of every field (of one ``acquisition``, or all), in
        metadata order. The wells not read yet are read concurrently (at most
        ``limits.max_requests`` at a time). ``consolidated=True`` (read-only) takes them from
        the plate's consolidated metadata when it holds them (one request, whatever the number
        of wells): only for a copy kept current, since tools that add a field without
        consolidating again (ngio's ``add_image`` on a 0.4 plate, zarr-python's attribute
        writes) leave it out of the copy. In a plate of one acquisition, the fields that name
        none (NGFF requires it with several only) are that acquisition's, here as in
        ``(await plate.well(...)).field_paths(acquisition)``."""
        self._check_open()
        wells = self.wells
        missing = [w for w in wells if w not in self._wells]
        if consolidated and len(missing) > 1 and self.mode == "r":  # a writer reads documents
            found = await _consolidated_wells(self.store, self.root, self.version, missing)
            for path, meta in found.items():
                r, c = path.split("/")
                self._wells[path] = PlateWell(path, r, c, meta, self._only_acquisition())

        async def read(path: str) -> None:
            await self.well(path)

        await _run_all([w for w in wells if w not in self._wells], read, self.limits.max_requests)
        return [
            (w, path)
            for w in wells
            for path in self._current(self._wells[w]).field_paths(acquisition)
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
        self._check_open()
        listed = await self._listed(row, column)
        cached = listed in self._wells  # (a well read just now is not read again at once)
        well = await self.well(listed)
        try:
            path = self._field_path(well, field)
        except NotFoundError:  # the well as cached: read it again once (fields added since)
            if not cached:
                raise
            self._wells.pop(well.path, None)
            well = await self.well(well.path)
            path = self._field_path(well, field)
        root = join(self.root, well.path, path)
        try:
            return await Dataset.open_in(
                self.store,
                root,
                limits=self.limits,
                workers=self._workers,
                mode=self.mode if mode is None else mode,
                parent_version=self.version,
            )
        except NotFoundError as exc:
            if exc.key not in (root, join(root, "zarr.json"), join(root, ".zattrs")):
                raise  # something inside the field (a level) is missing: said so
            raise NotFoundError(
                f"field {path!r} of well {well.path!r} is listed by plate {self.url} but "
                f"missing: {exc} (the well's other fields: "
                f"{', '.join(f for f in well.fields if f != path) or 'none'})",
                url=self.store.url,
                key=root,
            ) from None

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
        unlisted, then deleted and created again, then listed at its old place). A well
        given more fields than the plate's ``field_count`` (NGFF: the most fields of any
        well, not a limit) raises it to its count with that last rewrite; a plate without
        one stays so. So is the acquisition's ``maximumfieldcount`` (its fields in a well);
        one the plate lacks is set only where this library made the acquisition without one
        (a plate another tool wrote keeps none: one well's count could be less than
        another's).

        :param acquisition: the field's acquisition id (one of the plate's; required when the
            plate has several acquisitions).
        :raises ValueError: the row or column is not the plate's, or an unknown acquisition
            (before any write).
        :raises ExistsError: the field exists and ``overwrite`` is false.
        :raises MetadataError: the well lists a field a peer tool named outside NGFF 0.4 / 0.5
            (``fov_a``: read, but its document is not rewritten; before any write).
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
            refuse_peer_fields(images, well_path, self.url)  # a peer's 'fov_a': not rewritten
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
            await self._ensure_groups(r, well_path)

            alone = [False]  # the well had no other field (another writer may have unlisted it)

            def listed(ims: list[dict[str, Any]]) -> list[dict[str, Any]]:
                ims = [im for im in ims if im.get("path") != name]
                alone[0] = not ims
                ims.insert(len(ims) if at is None else at, entry)
                return ims

            await claim_root(self.store, root, plan, overwrite=overwrite)
            try:
                await complete_root(self.store, root, plan, overwrite=overwrite)
                well = await self._edit_well(well_path, listed)
                assert well is not None
                counts = self._grown_counts(well, acquisition)
                n = len(well.images)
                more = self.field_count is not None and n > self.field_count
                if well_path not in self.wells or counts or alone[0] or more:
                    listing = _well_listed(ref, *names)  # and field_count raised to n if less
                    await self._edit_plate(
                        lambda wells: wells,
                        counts,
                        body_edit=lambda body: _field_count_raised(listing(body), n),
                    )
            except BaseException as exc:  # not listed: removed, so that a retry can create it
                await self._discard_unlisted(well_path, name, root, plan, exc)
                raise
            self._wells[well_path] = PlateWell(well_path, r, c, well, self._only_acquisition())
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
        (deleted once unlisted). The plate's ``field_count`` stays (an upper bound then, as
        ngio leaves it): lowering it would read every well's document, and could not see a
        field another process is adding meanwhile. A field a peer tool named outside NGFF 0.4
        / 0.5 (``fov_a``) may be removed too.

        :raises NotFoundError: no such well or field.
        :raises MetadataError: a field named so would stay in the well (its document is not
            rewritten; before any write).
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
        lists it and the plate lists the well with a ``field_count`` and the field's
        acquisition's ``maximumfieldcount`` (if any) that count its fields (then it is
        complete), unlist it from the well and remove its metadata (best effort; a store that
        cannot be read is left alone).
        The well's and plate's puts are shielded from cancellation: cancelled in flight, one
        could land after this check and list a field removed here."""
        with anyio.CancelScope(shield=True):
            try:
                images = await self._well_images(well_path)
                listed = name in [im.get("path") for im in images]
                key, doc = await self._read_doc(self.root)
                body = {} if doc is None else self._ngff(self._attrs(doc, key)) or {}
                plate = body.get("plate")
                plate = plate if isinstance(plate, dict) else {}
                if (
                    listed
                    and any(
                        isinstance(w, dict) and w.get("path") == well_path
                        for w in plate.get("wells") or ()
                    )
                    and _field_count_raised(plate, len(images)) is plate  # field_count counts them
                    and _counted(plate.get("acquisitions"), images, name)
                ):
                    return
                if listed:
                    await self._edit_well(
                        well_path, lambda ims: [im for im in ims if im.get("path") != name]
                    )
            except Exception:  # noqa: BLE001 - the store fails: leave what is there
                return
        keys = [join(root, k) for k, _ in plan.group_documents()]
        keys += [k for k, _ in path_groups(root, plan.paths, plan.version)]
        keys += [join(root, k) for k, _ in plan.array_documents()]
        await discard_documents(self.store, root, keys, exc, consolidated=True)

    async def _first_field_paths(self) -> tuple[str, ...]:
        """The level paths of the plate's first field (its first well's first field), ``()``
        when there is none or it cannot be read. Read once per plate object."""
        if self._first_paths is None and self.metadata.wells:
            first = self.metadata.wells[0].path
            try:
                well = await self.well(first)
                if not well.fields:  # ngio's add_well: no field yet
                    return ()
                meta = await read_group_metadata(
                    self.store, join(self.root, first, well.fields[0]), parent_version=self.version
                )
            except CredentialsRefusedError:
                raise
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

    def _grown_counts(self, well: Well, acquisition: int | None) -> dict[int, int]:
        """``{acquisition: its fields in well}`` when the plate's ``maximumfieldcount`` of it
        may have to be raised (see :func:`_grown`: a stated one less than that count, an
        absent one unless this plate is known to keep none of it)."""
        acq = next((a for a in self.acquisitions if a.id == acquisition), None)
        if acq is None or acquisition is None:
            return {}
        count = sum(1 for im in well.images if im.acquisition == acquisition)
        most = acq.maximumfieldcount
        if most is None:  # kept here (or not known yet: the plate's rewrite decides)
            grow = self._derived is None or acquisition in self._derived
        else:
            grow = count > most
        return {acquisition: count} if grow else {}


def _counted(acquisitions: Any, images: list[dict[str, Any]], name: str) -> bool:
    """Whether the stated ``maximumfieldcount`` of field ``name``'s acquisition (if any)
    counts that acquisition's fields among ``images`` (a well's, as stored)."""
    acq = next((im.get("acquisition") for im in images if im.get("path") == name), None)
    if not isinstance(acq, int):
        return True
    count = sum(1 for im in images if im.get("acquisition") == acq)
    return bool(_grown(acquisitions, {acq: count}, set()) == acquisitions)


#: the options of :meth:`Plate.add_image` passed on to :func:`plan_image`
_FIELD_OPTIONS = _PLAN_KEYS | {"level_shapes", "level_scales", "level_translations"}


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
        ``maximumfieldcount`` (NGFF: the most fields of the acquisition in a well, not a
        limit): ``add_image`` raises a given one when a well gets more; without one, the
        plate keeps it as the most fields of the acquisition in any well.
    :param field_count: the most fields of any well (NGFF's ``field_count``; optional):
        ``add_image`` raises it when a well gets more, ``remove_image`` leaves it.
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
        kept = [a["id"] for a in body.get("acquisitions") or () if "maximumfieldcount" not in a]
        attrs: dict[str, Any] = {PENDING_KEY: {"plate": body}}
        if kept:  # their maximumfieldcount is kept here (NGFF's strict schema wants one)
            attrs[PENDING_KEY][_DERIVED_KEY] = kept
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
        plate = Plate(
            store,
            root,
            metadata,
            ngff_version,
            limits=limits or store.limits,
            owns_store=owns,
            mode="r+",
        )
        plate._derived = set(kept)
        return plate

    async def go() -> Plate:
        store, owns = _open_target(url, limits, dict(store_options))
        return await closing_store_on_error(store, owns, write(store, owns))

    return _Opening(go)
