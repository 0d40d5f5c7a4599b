"""Writing metadata documents and keeping the consolidated metadata above them up to date (one
read-modify-write of a group document at a time per store)."""

from __future__ import annotations

import warnings
import weakref
from typing import TYPE_CHECKING, Any

import anyio

from .._errors import CredentialsRefusedError, PermissionDeniedError
from ..meta import read_document, write_document
from ._open import join
from ._root_checks import _get_or_none, _is_node_key

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from ..stores import AsyncStore, Buffer


async def _put_all(
    store: AsyncStore, docs: Sequence[tuple[str, bytes]], *, consolidate: bool = True
) -> None:
    """Put metadata documents concurrently, then (``consolidate``) update the consolidated
    copies of them above (:func:`update_consolidated`)."""
    from ._run_all import _run_all

    async def put(doc: tuple[str, bytes]) -> None:
        # (shielded: another put failing cancels the rest, and a put cancelled mid-way could
        # land after the caller removed what was written: a retry then met a stray group)
        with anyio.CancelScope(shield=True):
            await store.put(*doc)

    await _run_all(docs, put, 64)
    if consolidate:
        await update_consolidated(store, docs)


_METADATA_LOCKS: weakref.WeakKeyDictionary[AsyncStore, anyio.Lock] = weakref.WeakKeyDictionary()


def metadata_lock(store: AsyncStore) -> anyio.Lock:
    """The lock of read-modify-writes of group documents on ``store`` (one per store object):
    a group's ``zarr.json`` holds both its NGFF attributes and the consolidated copy."""
    lock = _METADATA_LOCKS.get(store)
    if lock is None:
        lock = _METADATA_LOCKS[store] = anyio.Lock()
    return lock


async def update_consolidated(
    store: AsyncStore,
    docs: Sequence[tuple[str, bytes]],
    *,
    removed: str | None = None,
    locked: bool = False,
    shared: Collection[str] = (),
) -> None:
    """Bring the consolidated metadata above written documents up to date.

    Peer tools (zarr-python's ``consolidate_metadata``, ngff-zarr) keep a copy of every
    metadata document below a group in it (v2 ``.zmetadata``, v3 ``consolidated_metadata`` of
    ``zarr.json``), and readers that find one trust it alone. Every such copy above the keys of
    ``docs`` (``(key, bytes)`` just written) gets their new documents; entries at and below
    ``removed`` (a node path that was deleted or replaced) are dropped first. A copy this
    library cannot edit is removed, with a :class:`~ngio_async.meta.MetadataWarning` (readers
    then read the documents themselves). Call it after the documents are written (``locked``:
    the caller holds :func:`metadata_lock`). ``shared``: keys of ``docs`` that other processes
    edit too (a plate's, a well's, a labels listing): their copies take the document as stored
    when the copy is written (a copy written last must not bring back an older version).
    """
    import msgspec

    from ..meta import MetadataWarning
    from ..meta._consolidated import copy_entries, edit_consolidated, holders_of, missing_parents
    from ._run_all import _run_all

    wanted: dict[str, dict[str, Any]] = {}
    again: dict[str, dict[str, str]] = {}  # holder: {entry: the shared key it copies}
    # an array holds no copy: no .zmetadata is looked for in one (a GET per level, in vain)
    arrays = {k.rpartition("/")[0] for k, _ in docs if k.rsplit("/", 1)[-1] == ".zarray"}
    for key, data in docs:
        for holder, name in holders_of(key):
            if holder.endswith(".zmetadata") and holder.rpartition("/")[0] in arrays:
                continue
            wanted.setdefault(holder, {})[name] = data
            if key in shared:
                again.setdefault(holder, {})[name] = key
    if removed is not None:
        for holder, _ in holders_of(join(removed, "zarr.json")) + holders_of(
            join(removed, ".zgroup")
        ):
            wanted.setdefault(holder, {})
    if not wanted:
        return

    async def add_parents(
        doc: dict[str, Any], v3: bool, base: str, entries: dict[str, Any]
    ) -> None:
        """Add the groups between ``base`` and each entry that the copy lacks, read from the
        store; an entry below a group not stored yet is left out (the copy stays readable)."""
        names = ["zarr.json"] if v3 else [".zgroup", ".zattrs"]
        for entry in list(entries):
            for parent in missing_parents(doc, v3, entry):
                if (parent if v3 else f"{parent}/.zgroup") in entries:
                    continue
                found = {}
                for name in names:
                    raw = await _get_or_none(store, join(base, parent, name))
                    if raw is not None:
                        found[parent if v3 else f"{parent}/{name}"] = read_document(raw)
                if not found or (not v3 and f"{parent}/.zgroup" not in found):
                    del entries[entry]
                    break
                entries.update(found)

    async def add_below(
        current: dict[str, Any], v3: bool, base: str, entries: dict[str, Any]
    ) -> None:
        """A group new to the copy brings the metadata stored below it (read from a listing
        of its keys): nodes written before their parent group (a first label image before
        the ``labels`` group) are listed with it."""
        groups = [
            name if v3 else name.rpartition("/")[0]
            for name, doc in entries.items()
            if (
                doc.get("node_type") == "group"
                if v3 and isinstance(doc, dict)
                else name.rsplit("/", 1)[-1] in (".zgroup", ".zattrs")
            )
        ]
        new = sorted({g for g in groups if g and (g if v3 else f"{g}/.zgroup") not in current})
        if not new or not store.supports_listing:
            return
        for group in new:
            prefix = join(base, group)
            keys = [k for k in await store.list_prefix(prefix + "/") if _is_node_key(k)]
            for key in sorted(keys):
                rel = key[len(base) + 1 :] if base else key
                name = rel.rpartition("/")[0] if v3 else rel
                if key.endswith("/.zmetadata") or name in entries or (v3 and not name):
                    continue
                if v3 != key.endswith("zarr.json"):
                    continue
                raw = await _get_or_none(store, key)
                if raw is not None:
                    entries[name] = read_document(raw)

    async def update(holder: str) -> None:
        v3 = holder.rsplit("/", 1)[-1] == "zarr.json"
        base = holder.rpartition("/")[0]
        gone = None if removed is None or removed == base else removed
        if gone is not None and base:
            gone = gone[len(base) + 1 :] if gone.startswith(f"{base}/") else None
        failed: list[ValueError] = []
        read = False

        async def edited(raw: Buffer | None) -> bytes | None:
            nonlocal read
            read = True
            failed.clear()
            if raw is None:
                return None
            try:
                doc = read_document(raw)
            except msgspec.DecodeError:
                return None  # not ours to judge: whoever reads it reports it
            if not isinstance(doc, dict) or (v3 and doc.get("node_type") != "group"):
                return None
            entries = {n: read_document(d) for n, d in wanted[holder].items()}
            try:
                current = copy_entries(doc, v3)
                if current is None:
                    return None
                for name, key in again.get(holder, {}).items():
                    stored = await _get_or_none(store, key)  # another process's edit, maybe
                    if stored is not None:
                        entries[name] = read_document(stored)
                await add_parents(doc, v3, base, entries)
                await add_below(current, v3, base, entries)
                edit_consolidated(doc, v3, entries, gone)
                # in key order, as zarr-python writes it: its reader groups the entries of
                # one depth by parent assuming the siblings are adjacent (a field added to
                # well A/1 after well A/2 was listed left a copy zarr could not open)
                flat = copy_entries(doc, v3)
                if flat is not None:
                    ordered = sorted(flat.items())
                    flat.clear()
                    flat.update(ordered)
            except ValueError as exc:
                failed.append(exc)
                if not v3:
                    return None  # deleted below
                del doc["consolidated_metadata"]
            return write_document(doc)

        # a compare-and-swap: another process's edit of the holder (its NGFF attributes, or
        # its copy) is never overwritten with what was read before it
        try:
            await store.update(holder, edited)
        except CredentialsRefusedError:
            raise
        except PermissionDeniedError:
            if read:
                raise
            return  # a store answering 403 for a missing key
        if failed:
            warnings.warn(
                f"removed the consolidated metadata of {store.url.rstrip('/')}/{holder}: "
                f"{failed[0]}, so it could not be brought up to date (readers now read every "
                "document itself; zarr.consolidate_metadata writes it again)",
                MetadataWarning,
                stacklevel=2,
            )
            if not v3:
                await store.delete(holder)

    if locked:
        await _run_all(sorted(wanted), update, 16)
        return
    async with metadata_lock(store):  # in this process, one edit of a holder at a time
        await _run_all(sorted(wanted), update, 16)
