"""The unfinished mark of an output being written (so a failed conversion is redone without
``overwrite``), and :func:`is_complete`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from .._errors import NotFoundError
from ..images._metadata_writes import _prepare_root
from ..meta import read_document, write_document
from ..meta.zarr import GroupV3Meta, encode_group_v2, encode_group_v3

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..stores import AsyncStore

__all__ = ["is_complete"]

#: the root group's attributes while a conversion writes the destination (its NGFF group
#: metadata, written last, replaces them): a re-run recognises what an interrupted conversion
#: left by them, and replaces it without ``overwrite``
_UNFINISHED = {"ngio_async": {"convert": "unfinished"}}


def _is_unfinished(raw: Any, v3: bool) -> bool:
    """Whether a root ``zarr.json`` (``v3``) or ``.zattrs`` carries :data:`_UNFINISHED`'s mark
    (alone, or beside the NGFF metadata of an image whose extra levels were being built)."""
    try:
        doc = read_document(raw)
    except msgspec.DecodeError:
        return False
    if v3:
        if not isinstance(doc, dict) or doc.get("node_type") != "group":
            return False
        doc = doc.get("attributes")
    mark = doc.get("ngio_async") if isinstance(doc, dict) else None
    return isinstance(mark, dict) and mark.get("convert") == _UNFINISHED["ngio_async"]["convert"]


async def _edit_root_attrs(
    store: AsyncStore, version: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Read the root group's attributes, ``edit`` them in place, write the document back."""
    key = ".zattrs" if version == "0.4" else "zarr.json"
    raw = await store.get(key)
    if raw is None:
        raise NotFoundError(f"{store.url}/{key} is gone", url=store.url, key=key)
    doc = read_document(raw)
    edit(doc if version == "0.4" else doc["attributes"])
    await store.put(key, write_document(doc))


async def _unmark(store: AsyncStore, version: str) -> None:
    """Drop :data:`_UNFINISHED`'s mark from the root group's attributes (the rest stays)."""

    def drop(attrs: dict[str, Any]) -> None:
        mark = attrs.get("ngio_async")
        if isinstance(mark, dict):
            mark.pop("convert", None)
            if not mark:
                del attrs["ngio_async"]

    await _edit_root_attrs(store, version, drop)


async def _mark(store: AsyncStore, version: str) -> None:
    """Put :data:`_UNFINISHED`'s mark back into the root group's attributes (the rest stays)."""

    def put(attrs: dict[str, Any]) -> None:
        mark = attrs.get("ngio_async")
        attrs["ngio_async"] = {
            **(mark if isinstance(mark, dict) else {}),
            **_UNFINISHED["ngio_async"],
        }

    await _edit_root_attrs(store, version, put)


async def _start(store: AsyncStore, version: str, overwrite: bool, *, label: bool = False) -> bool:
    """Make the destination's root ready and mark it unfinished: refuse an existing node
    (``overwrite``: delete it), except what an interrupted conversion left (its root group
    carries :data:`_UNFINISHED`'s mark), which is replaced as if ``overwrite``; then write the
    mark (claimed, unless ``overwrite``: of two conversions to one place, one is refused).
    Returns the ``overwrite`` the images below the root are prepared with."""
    from ..images._metadata_writes import _claim
    from ..images._root_checks import _get_or_none

    if not overwrite:
        for key in ("zarr.json", ".zattrs"):
            raw = await _get_or_none(store, key)
            if raw is not None and _is_unfinished(raw, key == "zarr.json"):
                overwrite = True  # ours, and never finished: nothing in it is the user's
                break
    await _prepare_root(store, "", overwrite, label=label)
    if version == "0.4":
        docs = [(".zgroup", encode_group_v2()), (".zattrs", msgspec.json.encode(_UNFINISHED))]
    else:
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=_UNFINISHED)
        docs = [("zarr.json", encode_group_v3(doc))]
    if not overwrite:
        with anyio.CancelScope(shield=True):  # a claim landing after a cancellation stays
            await _claim(store, "", docs[0])
        docs = docs[1:]
    for key, data in docs:
        await store.put(key, data)
    return overwrite


async def is_complete(url: Any, **store_options: Any) -> bool:
    """True when ``url`` holds an image or an HCS plate whose NGFF group metadata exists
    (written last)."""
    from ..stores import open_store

    try:
        store = open_store(url, **store_options)
    except NotFoundError:
        return False
    try:
        raw = await store.get("zarr.json")
        if raw is not None:
            doc = read_document(raw)
            ome = doc.get("attributes", {}).get("ome", {}) if isinstance(doc, dict) else {}
            complete = isinstance(ome, dict) and bool(_COMPLETE_KEYS & set(ome))
            return complete and not _is_unfinished(raw, True)
        raw = await store.get(".zattrs")
        attrs = None if raw is None else read_document(raw)
        complete = isinstance(attrs, dict) and bool(_COMPLETE_KEYS & set(attrs))
        return complete and not _is_unfinished(raw, False)
    except (msgspec.DecodeError, AttributeError):
        return False
    finally:
        await store.aclose()


#: the NGFF keys of a complete output's group (written last)
_COMPLETE_KEYS = frozenset({"multiscales", "plate", "bioformats2raw.layout"})
