"""``_PlateDocuments``: a :class:`~ngio_async.images.Plate`'s edits of its own and its wells'
documents: each read again and rewritten with a compare-and-swap (other processes' edits
kept), validated before it is written, its consolidated copies updated; the row and well
groups made where missing; the locks serialising one plate object's edits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from .._errors import MetadataError, NotFoundError
from ..meta import Plate as PlateMeta, Well, validate, write_document
from ..meta._validate import _UNVERSIONED
from ._consolidated import metadata_lock, update_consolidated
from ._labels import _object
from ._metadata_writes import _claim
from ._open import join
from ._plate_base import _PlateBase
from ._plate_docs import _DERIVED_KEY, _UNVERSIONED_KEY, _derived_of, _grown
from ._plate_layout import PENDING_KEY, _group_doc, _pending_meta
from ._plate_lenient import indexed_wells

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from ..stores import Buffer


class _PlateDocuments(_PlateBase):
    """Reading and rewriting the plate's and its wells' documents."""

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
        keep: Collection[int] = (),
    ) -> None:
        """Rewrite the plate's ``wells`` (the document read again first, other keys kept): the
        NGFF ``plate`` when wells are left, else the pending layout. Wells a peer tool listed
        without ``rowIndex`` / ``columnIndex`` (in 0.4 also out of range) get those of their
        paths' row and column, as they were read (:func:`indexed_wells`): the plate written
        validates. ``counts``: fields of an
        acquisition in a well, raising its ``maximumfieldcount`` (:func:`_grown`).
        ``body_edit``: then the whole plate body (rows, columns, acquisitions). ``keep``:
        acquisitions added without a ``maximumfieldcount``, kept here from now on."""
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
                # a peer's wells without indices (a 0.4 one's out of range): as read, by path
                body["wells"] = edit(indexed_wells(body, out_of_range=self.version == "0.4"))
                if body_edit is not None:
                    body = body_edit(body)
                derived = _derived_of(attrs) | set(keep)
                if counts:
                    body["acquisitions"] = _grown(body.get("acquisitions"), counts, derived)
                if keep:
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
