"""Group documents of the output: writing them, reading the source's (plain or NGFF), and
the warnings for what a conversion leaves out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .._errors import CredentialsRefusedError, MetadataError, NotFoundError, PermissionDeniedError
from ..images._open import join, read_group_metadata
from ..meta import read_document, to_attrs, write_document
from ..meta._ngff_old import is_zarr_v2
from ..meta.zarr import GroupV3Meta, encode_group_v2, encode_group_v3

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..images import Dataset
    from ..images._create_plan import ImagePlan
    from ..meta import OmeMetadata
    from ..stores import AsyncStore


async def _data_windowed(image: Dataset, plan: ImagePlan) -> OmeMetadata:
    """``plan.ome`` with the display windows of the channels given none (``plan.auto_windows``)
    taken from the written pixels: the lowest level's range, as ``build_pyramid`` sets them for a
    created image (a channel of one value keeps the dtype's range)."""
    from msgspec.structs import replace

    from ..images._dataset_edits import followed_windows

    omero = plan.ome.omero
    if not plan.auto_windows or omero is None:
        return plan.ome
    windows = followed_windows(omero, await image._data_windows(plan.auto_windows))
    channels = [
        c if w is None else replace(c, window=w)
        for c, w in zip(omero.channels, windows, strict=True)
    ]
    return replace(plan.ome, omero=replace(omero, channels=channels))


async def _write_group(store: AsyncStore, root: str, attrs: dict[str, Any], version: str) -> None:
    if version == "0.4":
        await store.put(join(root, ".zgroup"), encode_group_v2())
        await store.put(join(root, ".zattrs"), write_document(attrs))
    else:
        doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs)
        await store.put(join(root, "zarr.json"), encode_group_v3(doc))


async def _has_group(store: AsyncStore, root: str) -> bool:
    """Whether a group (or any zarr node) document exists at ``root``."""
    for name in ("zarr.json", ".zattrs", ".zgroup"):
        if await store.exists(join(root, name)):
            return True
    return False


def _leave_out(attrs: dict[str, Any], kind: str, name: str, version: str) -> None:
    """Drop ``name`` from the listing of group attributes ``attrs`` (in ``version``):
    ``kind`` ``"labels"`` (label names), ``"well"`` (its images) or ``"plate"`` (its wells)."""
    body = attrs.get("ome", attrs) if version == "0.5" else attrs
    if kind == "labels":
        listing = body.get("labels")
        if isinstance(listing, list):
            body["labels"] = [n for n in listing if n != name]
        return
    obj = body.get(kind)
    key = "images" if kind == "well" else "wells"
    if isinstance(obj, dict) and isinstance(obj.get(key), list):
        obj[key] = [e for e in obj[key] if not (isinstance(e, dict) and e.get("path") == name)]


async def _has_tables(store: AsyncStore, root: str, version: str) -> bool:
    """Whether the group at ``root`` has a ``tables`` child group (ngio / Fractal tables)."""
    v2 = is_zarr_v2(version)  # 0.4 and 0.1 - 0.3 sources
    return await store.exists(join(root, "tables", ".zgroup" if v2 else "zarr.json"))


def _missing(what: str, where: str) -> None:
    """Warn that ``what``, listed in ``where``, does not exist and is left out."""
    import warnings

    from ..meta import MetadataWarning

    warnings.warn(
        f"{what} does not exist (no group metadata): it is left out of the conversion and of "
        f"the {where} listing",
        MetadataWarning,
        stacklevel=3,
    )


def _with_series(attrs: dict[str, Any], paths: Sequence[str], version: str) -> dict[str, Any]:
    """The ``OME`` group's attributes ``attrs`` (in ``version``) listing ``paths``."""
    from ..meta import OmeMetadata

    listing = to_attrs(OmeMetadata(version=version, series=list(paths)), version)
    out = dict(attrs)
    if version == "0.4":
        out.update(listing)
    else:
        out["ome"] = {**(out.get("ome") or {}), **listing["ome"]}
    return out


async def _read_ome_group(
    store: AsyncStore, root: str, source: str, version: str
) -> tuple[dict[str, Any], bytes | None] | None:
    """A bioformats2raw container's (or plate's) ``OME`` group (its attributes in ``version``)
    and its ``METADATA.ome.xml``; ``None`` when it has neither."""
    raw = await store.get(join(root, "OME", "METADATA.ome.xml"))
    xml = None if raw is None else bytes(raw)
    try:
        meta = await read_group_metadata(
            store, join(root, "OME"), parent_version=source, plain_ok=True
        )
    except NotFoundError:
        return None if xml is None else ({}, xml)
    except MetadataError:  # e.g. only a 0.5 "version": no listing, the images are 0/, 1/, ...
        return {}, xml
    return (to_attrs(meta, version) if meta.kinds else {}), xml  # else a plain group


def _plain_group(version: str, attrs: dict[str, Any] | None = None) -> list[tuple[str, bytes]]:
    """The documents of a group without NGFF metadata (``attrs``: its own attributes)."""
    if version == "0.4":
        docs = [(".zgroup", encode_group_v2())]
        return docs + ([(".zattrs", write_document(attrs))] if attrs else [])
    doc = GroupV3Meta(zarr_format=3, node_type="group", attributes=attrs or {})
    return [("zarr.json", encode_group_v3(doc))]


async def _json_or_none(store: AsyncStore, key: str) -> Any:
    """The JSON document at ``key``; ``None`` when missing, denied (S3 denies a missing key
    to a reader without list permission) or not JSON."""
    try:
        raw = await store.get(key)
        return read_document(raw) if raw is not None else None
    except CredentialsRefusedError:
        raise
    except (PermissionDeniedError, msgspec.DecodeError):
        return None


async def _plain_attrs(store: AsyncStore, root: str, version: str) -> dict[str, Any]:
    """The attributes of the group at ``root`` (NGFF ``version``: 0.5 ``zarr.json``, 0.4
    ``.zattrs``) that has no NGFF metadata (a plate's row); none when missing or not JSON."""
    v2 = is_zarr_v2(version)  # 0.4 and 0.1 - 0.3 sources
    doc = await _json_or_none(store, join(root, ".zattrs" if v2 else "zarr.json"))
    if not v2:
        doc = doc.get("attributes") if isinstance(doc, dict) else None
    return doc if isinstance(doc, dict) else {}
