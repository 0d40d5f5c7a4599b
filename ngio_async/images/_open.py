"""Opening an image: read the group and level metadata in as few round trips as the format allows.

NGFF 0.5: the group's ``zarr.json``, then every level's ``zarr.json`` concurrently (1 + levels
GETs; 1 when the group's consolidated metadata holds the levels'). NGFF 0.4: ``zarr.json`` is
tried first (absent), then ``.zattrs``, then every level's ``.zarray`` concurrently (2 + levels
GETs). Opening only reads.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
import weakref
from typing import TYPE_CHECKING, Any, TypeGuard

import anyio
import msgspec

from .._errors import MetadataError, NotFoundError, PermissionDeniedError, UnsupportedError
from .._prefetch import first_leaf, start_deferred
from ..meta import NGFF_KEYS, MetadataWarning, OmeMetadata, decode_json, validate
from ..meta._ngff_old import OLD_VERSIONS, is_zarr_v2, nested_keys, scales_from_shapes
from ..meta.zarr import ArrayV2Meta, ArrayV3Meta, decode_array_v2, decode_node_v3
from ..stores import CredentialsRefusedError
from ._plate_lenient import fields_as_stored, peer_fields, wells_by_their_paths

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..meta.zarr import ArrayMeta
    from ..stores import AsyncStore
    from ._dataset import Dataset

__all__ = [
    "EarlyGet",
    "container_series",
    "first_level_key",
    "listed_series",
    "no_group",
    "read_group_metadata",
    "read_level_metadata",
    "refresh_image",
]


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def _at(store: AsyncStore, path: str) -> str:
    """The URL of ``path`` in ``store`` (the store's own URL for the root)."""
    return f"{store.url.rstrip('/')}/{path}" if path else store.url


async def read_group_metadata(
    store: AsyncStore,
    root: str,
    *,
    parent_version: str | None = None,
    plain_ok: bool = False,
    early: EarlyGet | _Read | None = None,
) -> OmeMetadata:
    """The validated NGFF metadata of the group at ``root`` (0.5 ``zarr.json`` or 0.4 ``.zattrs``).

    ``parent_version``: the NGFF version of the enclosing image, assumed when a 0.5 child group
    omits ``ome.version`` (ome-zarr-py 0.18 writes its ``labels`` group so). ``plain_ok``: a 0.5
    group without ``ome`` attributes (a plain zarr group) is empty metadata, not an error, and a
    group whose two documents are both denied (403: how stores that may not list answer for
    missing keys) is not found. ``early``: a GET already started for one of its documents (a
    bioformats2raw container's first image, ``0/zarr.json``, is the first level's guess).

    :raises NotFoundError: no zarr group at ``root``.
    :raises MetadataError: the metadata is invalid (the message names the key and JSON path).
    """
    get = store.get if early is None else early.get
    zattrs: Any = _UNREAD  # .zattrs as read first (bytes, None: missing, or the 403)
    if is_zarr_v2(parent_version):
        # a 0.4 (or 0.1 - 0.3) parent's children are 0.4 groups: .zattrs first, no zarr.json miss per group
        # (a child without one goes on in the usual order, without reading .zattrs again)
        try:
            zattrs = await get(join(root, ".zattrs"))
        except PermissionDeniedError as exc:
            zattrs = exc
        if zattrs is not None and not isinstance(zattrs, PermissionDeniedError):
            return _zattrs_metadata(zattrs, store, join(root, ".zattrs"), plain_ok)
    key = join(root, "zarr.json")
    try:
        raw = await get(key)
    except CredentialsRefusedError:
        raise  # (every document is refused: never a missing group, even an optional one)
    except PermissionDeniedError as exc:
        # stores that may not list answer 403 for a missing key (S3 without s3:ListBucket):
        # a 0.4 image has no zarr.json; its .zattrs decides
        denied: PermissionDeniedError | None = exc
        raw = None
    else:
        denied = None
    if raw is not None:
        node = _decoded(decode_node_v3, raw, store, key)
        if isinstance(node, ArrayV3Meta):
            raise MetadataError(
                f"{_at(store, key)} is an array, not an OME-Zarr group{_parent_hint(store, root)}",
                "$",
            )
        attrs: Any = node.attributes
        if "ome" not in attrs and plain_ok:
            return OmeMetadata()
        if "ome" not in attrs:
            found = [k for k in NGFF_KEYS if k in attrs]
            hint = (
                f" (it holds {', '.join(map(repr, found))} outside 'ome', as NGFF 0.4 does in "
                ".zattrs; NGFF 0.5 puts them in 'ome' with 'version')"
                if found
                else ""
            )
            raise MetadataError(
                f"{_at(store, key)} has no 'ome' attributes: not an OME-Zarr 0.5 group{hint}",
                "$.attributes",
            )
        ome = attrs["ome"]
        if parent_version is not None and isinstance(ome, dict) and "version" not in ome:
            attrs = {**attrs, "ome": {**ome, "version": parent_version}}
        meta = _validated(attrs, store, key, prefix_hint="attributes")
        _keep_consolidated(store, root, meta, node.consolidated_metadata)
        return meta
    key = join(root, ".zattrs")
    both_denied = False
    try:
        if zattrs is _UNREAD:
            raw = await get(key)
        elif isinstance(zattrs, PermissionDeniedError):
            raise zattrs
        else:
            raw = zattrs
    except PermissionDeniedError as exc:
        if denied is None or isinstance(exc, CredentialsRefusedError):
            raise
        raw = None
        both_denied = True
    if raw is None and denied is not None:
        if plain_ok:  # an optional group (labels): both documents denied reads as absent
            raise NotFoundError(
                f"no readable OME-Zarr group at {_at(store, root)} (zarr.json and .zattrs "
                "denied: missing, on a store that may not list)",
                url=store.url,
                key=key,
            ) from denied
        if both_denied and not (
            denied.missing_credentials or isinstance(denied, CredentialsRefusedError)
        ):
            # a typo in a URL on a public bucket said only "access denied": say what else it is
            # (not when the credentials were refused: the image may well be there)
            raise PermissionDeniedError(
                f"{denied} (.zattrs too: not allowed, or no image there; S3 without "
                "s3:ListBucket answers 403 for a missing object)",
                url=denied.url,
                key=denied.key,
                missing_credentials=False,
            ) from denied
        raise denied
    if raw is None:
        # the URL a user gave (the store's root) may name a zarr v2 array: one level of an image
        # a group that may be absent (labels) or whose parent was read: its bucket exists
        raise await no_group(
            store,
            root,
            key,
            probe=not root and not plain_ok,
            bucket=parent_version is None and not plain_ok,
        )
    return _zattrs_metadata(raw, store, key, plain_ok)


async def no_group(
    store: AsyncStore, root: str, key: str, *, probe: bool, bucket: bool = True
) -> NotFoundError:
    """The error for a missing group at ``root`` (``key``: the document asked for last);
    ``probe``: say so when a zarr v2 array is there instead (one more request); ``bucket``:
    name a missing bucket (a cloud store's one listing, :meth:`AsyncStore.missing_bucket`)."""
    what = "neither zarr.json nor .zattrs exists"
    if store.forbidden_is_missing:
        what += ", or forbidden: forbidden_is_missing=True reads a 403 as missing"
    if probe and await _exists(store, join(root, ".zarray")):
        what = f"it is a zarr array (.zarray){_parent_hint(store, root)}"
    elif bucket and (gone := await _missing_bucket(store, key)) is not None:
        return gone  # the bucket itself (a cloud store's one listing; a 404 did not say)
    return NotFoundError(
        f"no OME-Zarr group at {_at(store, root)} ({what})", url=store.url, key=key
    )


async def _missing_bucket(store: AsyncStore, key: str) -> NotFoundError | None:
    """``store.missing_bucket(key)``; ``None`` when it fails (a hint, never an error)."""
    try:
        return await store.missing_bucket(key)
    except Exception:  # noqa: BLE001 - only a better message depends on it
        return None


async def _exists(store: AsyncStore, key: str) -> bool:
    """Whether ``key`` exists; ``False`` when the store will not say (a hint, never an error)."""
    try:
        return await store.exists(key)
    except Exception:  # noqa: BLE001 - only a better message depends on it
        return False


def _parent_hint(store: AsyncStore, root: str) -> str:
    """Advice for an array opened as an image: its group (one level up) is the image."""
    url = _at(store, root).rstrip("/")
    scheme, sep, rest = url.partition("://")
    parent = rest.rsplit("/", 1)[0] if "/" in rest.strip("/") else ""
    if not sep or not parent or parent.endswith(":"):
        return "; an image is the group that holds its levels"
    return f"; an image is the group that holds its levels: is it {scheme}://{parent}?"


_UNREAD: Any = object()


def _zattrs_metadata(raw: Any, store: AsyncStore, key: str, plain_ok: bool) -> OmeMetadata:
    if plain_ok and _plain_v2(raw):
        return OmeMetadata()
    return _validated(bytes(raw), store, key, prefix_hint=None)


def _plain_v2(raw: Any) -> bool:
    """A ``.zattrs`` without any NGFF key (a plain zarr group's attributes)."""
    doc = _json(bytes(raw))
    # invalid JSON (or not UTF-8, or too deep): validation reports it
    return isinstance(doc, dict) and not any(k in doc for k in NGFF_KEYS)


def _json(raw: bytes) -> Any:
    """``raw`` decoded as the metadata decoders read it (Python's bare ``NaN`` and
    ``Infinity`` too); ``None`` when it is not JSON."""
    try:
        return decode_json(msgspec.json.Decoder().decode, raw, "invalid JSON")
    except (MetadataError, ValueError):
        return None


#: per store, the NGFF version and first level path of the image it last opened (the guess
#: for the next: a plate's fields, an image's labels, the images of one shared store)
_LAYOUTS: weakref.WeakKeyDictionary[AsyncStore, tuple[str | None, str]] = (
    weakref.WeakKeyDictionary()
)
#: per store, the images opened whose group document held their levels' (consolidated
#: metadata): opened again, nothing is guessed for them
_SELF_CONTAINED: weakref.WeakKeyDictionary[AsyncStore, set[str]] = weakref.WeakKeyDictionary()


class EarlyGet:
    """A GET started before it is known to be needed: the first level's metadata, fetched
    while the group's document is (opening a remote image takes one round trip fewer when the
    guess is right). Run :meth:`run` in a task group; :meth:`get` answers for any key.

    Only an informed guess is sent: the first level's path and version of the image ``store``
    opened before (a plate's fields, an image's labels, the images of one shared store). The
    first image a store opens asks for nothing early (``key`` is ``None``): guessing ``0``
    there cost a request in vain for every image whose levels are named otherwise
    (ome-zarr-py's ``s0``), above the 1 + levels GETs an 0.5 image opens with, and saved a
    round trip only for images of one level (the others' levels are read in a second round
    trip anyway). :meth:`settle` drops a wrong guess not sent yet."""

    def __init__(self, store: AsyncStore, key: str) -> None:
        self.store = store
        self.key = _layout_guess(store, key)
        self._done = anyio.Event()
        self._raw: Any = _UNREAD
        self._scope = anyio.CancelScope()

    async def run(self) -> None:
        try:
            if self.key is None:
                return
            with self._scope, contextlib.suppress(Exception):  # the reader asks again, and raises
                self._raw = await self.store.get(self.key)
        finally:
            self._done.set()

    def settle(self, keys: Sequence[str]) -> None:
        """The keys needed are ``keys``: a guess not among them is not waited for (nor sent,
        when it still waits for a request slot)."""
        if self.key not in keys:
            self._scope.cancel()

    async def get(self, key: str) -> Any:
        """The object at ``key``: the early answer when it is the guessed key."""
        if key == self.key:
            await self._done.wait()
            if self._raw is not _UNREAD:
                return self._raw
        return await self.store.get(key)


def first_level_key(root: str, version: str | None, path: str = "0") -> str:
    """The metadata key of the level ``path`` (most images name their first ``0``) of the image
    at ``root`` (a 0.4 ``.zarray``, else 0.5)."""
    return join(root, path, ".zarray" if is_zarr_v2(version) else "zarr.json")


def _layout_guess(store: AsyncStore, key: str) -> str | None:
    """The key to ask for early instead of ``key`` (a :func:`first_level_key` of level ``0``):
    that of the first level of the image ``store`` opened last, its path, and its version
    unless the ``.zarray`` of ``key`` says 0.4 (a 0.4 parent). ``None`` when ``store`` opened
    no image yet, or opened this one with its levels in its group document: nothing is
    guessed."""
    known = _LAYOUTS.get(store)
    if known is None:
        return None
    for doc, version in ((".zarray", "0.4"), ("zarr.json", None)):
        if key == f"0/{doc}" or key.endswith(f"/0/{doc}"):
            root = key[: -len(f"0/{doc}")].rstrip("/")
            if root in _SELF_CONTAINED.get(store, ()):
                return None
            return first_level_key(root, version or known[0], known[1])
    return key


#: per store and group path, the level documents the group's ``zarr.json`` holds in its
#: consolidated metadata, with the metadata read from that document (used only with it)
_CONSOLIDATED: weakref.WeakKeyDictionary[
    AsyncStore, dict[str, tuple[OmeMetadata, dict[str, ArrayV3Meta]]]
] = weakref.WeakKeyDictionary()


def _keep_consolidated(store: AsyncStore, root: str, meta: OmeMetadata, consolidated: Any) -> None:
    """Keep the array documents of ``meta``'s levels that ``consolidated`` (the group
    ``zarr.json``'s ``consolidated_metadata``, as zarr-python writes and this library keeps up
    to date) holds, for :func:`read_level_metadata` of the same open (an entry that is no
    valid array document is left out: its own document is read)."""
    kept = _CONSOLIDATED.setdefault(store, {})
    kept.pop(root, None)
    entries = consolidated.get("metadata") if isinstance(consolidated, dict) else None
    if not isinstance(entries, dict) or consolidated.get("kind", "inline") != "inline":
        return
    found: dict[str, ArrayV3Meta] = {}
    for ms in meta.multiscales or ():
        for d in ms.datasets:
            entry = entries.get(d.path.strip("/"))
            if not isinstance(entry, dict) or entry.get("node_type") != "array":
                continue
            try:
                node = decode_node_v3(msgspec.json.encode(entry))
            except (MetadataError, UnsupportedError, msgspec.MsgspecError, TypeError):
                continue
            if isinstance(node, ArrayV3Meta):
                found[d.path] = node
    if found:
        kept[root] = (meta, found)


def _known_levels(
    store: AsyncStore, root: str, meta: OmeMetadata, paths: Sequence[str]
) -> list[ArrayMeta] | None:
    """The level documents of ``paths`` that the consolidated metadata read with ``meta``
    (this very object: the same open) holds, all of them; else ``None``."""
    kept = _CONSOLIDATED.get(store, {}).pop(root, None)
    if kept is None or kept[0] is not meta or not paths:
        return None
    arrays = [kept[1].get(p) for p in paths]
    return None if any(a is None for a in arrays) else [a for a in arrays if a is not None]


async def read_level_metadata(
    store: AsyncStore,
    root: str,
    meta: OmeMetadata,
    paths: tuple[str, ...],
    early: EarlyGet | None = None,
    *,
    multiscale: int = 0,
    consolidated: bool = True,
) -> list[ArrayMeta]:
    """Every level's array metadata, checked against the axes of
    ``meta.multiscales[multiscale]``: from the group's consolidated metadata when it was read
    with ``meta`` and holds them all (no request; should they not fit the multiscale, the
    documents decide), else fetched concurrently (``early``: a GET already started for one).
    ``consolidated=False`` (an open for writing): always the documents, since another tool may
    have resized a level without updating the consolidated copy, and a write sized by a stale
    shape would overwrite what lies past it."""
    v3 = not is_zarr_v2(meta.version)
    known = _known_levels(store, root, meta, paths) if v3 else None
    if not consolidated:
        known = None
    if known is not None:
        try:
            _check_levels(meta, paths, known, store, root, multiscale)
        except MetadataError:
            known = None
    if early is not None:
        keys = [join(root, p, "zarr.json" if v3 else ".zarray") for p in paths]
        early.settle([] if known is not None else keys)
        if paths:
            _LAYOUTS[store] = (meta.version, paths[0])
    if known is not None:
        _SELF_CONTAINED.setdefault(store, set()).add(root)
        return known
    _SELF_CONTAINED.get(store, set()).discard(root)
    results: list[ArrayMeta | None] = [None] * len(paths)

    async def one(i: int, path: str) -> None:
        key = join(root, path, "zarr.json" if v3 else ".zarray")
        raw = await (store.get(key) if early is None else early.get(key))
        if raw is None:
            # zarr-python 3 writes v3 arrays by default, under 0.4 metadata too
            other = join(root, path, ".zarray" if v3 else "zarr.json")
            hint = (
                f" ({other} does: a zarr {'v2' if v3 else 'v3'} array, and NGFF "
                f"{meta.version} needs zarr {'v3' if v3 else 'v2'} arrays)"
                if await _exists(store, other)
                else ""
            )
            raise NotFoundError(
                f"level {path!r} of {_at(store, root)} is missing: {key} does not exist{hint}",
                url=store.url,
                key=key,
            )
        if v3:
            node = _decoded(decode_node_v3, raw, store, key)
            if not isinstance(node, ArrayV3Meta):
                raise MetadataError(f"{_at(store, key)}: level {path!r} is a group, not an array")
            results[i] = node
        else:
            arr = _decoded(decode_array_v2, raw, store, key)
            results[i] = await _old_keys(arr, raw, meta.version, store, join(root, path))

    try:
        async with anyio.create_task_group() as tg:
            for i, path in enumerate(paths):
                start_deferred(tg, one, i, path)
    except BaseExceptionGroup as group:
        first: BaseException | None = first_leaf(group)
    else:
        first = None
    if first is not None:
        raise first  # outside ``except``: the group holding it is not its context (a cycle)
    arrays = [a for a in results if a is not None]
    _check_levels(meta, paths, arrays, store, root, multiscale)
    _old_scales(meta, paths, arrays, multiscale)
    return arrays


async def _old_keys(
    arr: ArrayV2Meta, raw: Any, version: str | None, store: AsyncStore, level: str
) -> ArrayV2Meta:
    """A level of an NGFF 0.2 / 0.3 image whose ``.zarray`` does not name its
    ``dimension_separator`` (written before zarr had one): nested chunk keys, as the spec says,
    unless its first chunk is stored under the flat key and not the nested one (a writer that
    kept zarr's default): one HEAD, two for flat keys; neither found (an unwritten chunk, a
    store that will not say) keeps the nested keys."""
    if not nested_keys(version) or b'"dimension_separator"' in bytes(raw):
        return arr
    nested = msgspec.structs.replace(arr, dimension_separator="/")
    zeros = ["0"] * len(arr.shape)
    if len(zeros) < 2 or await _exists(store, join(level, "/".join(zeros))):
        return nested
    if await _exists(store, join(level, ".".join(zeros))):
        return arr  # (zarr v2's default separator, ".")
    return nested


def _old_scales(
    meta: OmeMetadata, paths: Sequence[str], arrays: Sequence[ArrayMeta], multiscale: int
) -> None:
    """An NGFF 0.1 - 0.3 image (no transformations) read with all its levels: their scales
    from their shapes (``scales_from_shapes``)."""
    if meta.version not in OLD_VERSIONS or not meta.multiscales:
        return
    ms = meta.multiscales[multiscale]
    if list(paths) == [d.path for d in ms.datasets]:
        scales_from_shapes(ms, [a.shape for a in arrays])


def _decoded(decoder: Any, raw: Any, store: AsyncStore, key: str) -> Any:
    try:
        return decoder(bytes(raw))
    except MetadataError as exc:
        raise MetadataError(f"{_at(store, key)}: {exc.rule}", exc.path) from None
    except UnsupportedError as exc:
        raise UnsupportedError(f"{_at(store, key)}: {exc}") from None


#: per store, the group documents it opened and whether the open mended them (read leniently)
_MENDED: weakref.WeakKeyDictionary[AsyncStore, dict[str, bool]] = weakref.WeakKeyDictionary()


def opened_as_stored(store: AsyncStore, key: str) -> bool:
    """Whether the group document ``key`` of ``store`` was opened as stored: it kept every
    rule, nothing of it was mended or dropped (``False`` also when it was not opened here)."""
    return _MENDED.get(store, {}).get(key) is False


def _validated(doc: Any, store: AsyncStore, key: str, prefix_hint: str | None) -> OmeMetadata:
    try:
        ome = validate(doc)
    except MetadataError as exc:
        path = exc.path if prefix_hint is None else "$." + prefix_hint + exc.path[1:]
        try:
            lenient = lenient_doc(doc, exc.path)
        except MetadataError as refused:  # a peer's layout that cannot be read: why
            raise MetadataError(f"{_at(store, key)}: {refused.rule}", path) from None
        if lenient is None:
            raise MetadataError(f"{_at(store, key)}: {exc.rule}", path) from None
        # omero and image-label colors / properties are display metadata: the pixels stay
        # readable without them (`validate` still reports the violation)
        warnings.warn(
            f"{_at(store, key)}: {exc.rule} - at `{path}`; {lenient[2]}",
            MetadataWarning,
            stacklevel=4,
        )
        ome = _validated(lenient[0], store, key, prefix_hint)
        fields_as_stored(ome, doc)  # a peer's field paths, validated as placeholders
        _MENDED.setdefault(store, {})[key] = True
        return ome
    except UnsupportedError as exc:
        raise UnsupportedError(f"{_at(store, key)}: {exc}") from None
    _MENDED.setdefault(store, {})[key] = False
    return ome


def lenient_doc(doc: Any, path: str) -> tuple[dict[str, Any], str, str] | None:
    """``doc`` mended where ``path`` (a validation error) lies in display metadata: without
    its ``omero`` block, or with its ``image-label`` ``colors`` / ``properties`` mended (or
    dropped) or without its ``source``; or where peer writers break a rule without changing
    what the pixels mean: ``identity`` transformations (iohub) left out, axes without a type
    typed by their names, 0.4 well indices out of range of the rows / columns taken from the
    well path; a peer's plate wells without indices, and well field paths such as ``fov_a``
    (``_plate_lenient``). With the key of the block changed and what was done. ``None``
    elsewhere.

    :raises MetadataError: a plate well without indices whose path names no listed row or
        column (the well named)."""
    if isinstance(doc, bytes):
        doc = _json(doc)
    if not isinstance(doc, dict):
        return None
    ome = doc.get("ome")
    at, body = ("$.ome", ome) if isinstance(ome, dict) else ("$", doc)

    def inside(sub: str) -> bool:
        return path == sub or path.startswith((sub + ".", sub + "["))

    def rebuilt(new_body: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "ome": new_body} if body is ome else new_body

    if isinstance(body.get("multiscales"), list) and inside(f"{at}.multiscales"):
        where = path[len(f"{at}.multiscales") :]
        found = _without_identity(body["multiscales"], where) or _typed_axes(
            body["multiscales"], where
        )
        return None if found is None else (rebuilt({**body, "multiscales": found[0]}), *found[1:])
    if isinstance(body.get("plate"), dict) and inside(f"{at}.plate.wells"):
        sub = path[len(f"{at}.plate") :]
        plate = _wells_at_their_paths(body["plate"], sub) if at == "$" else None
        plate = plate or wells_by_their_paths(body["plate"], sub)
        return None if plate is None else (rebuilt({**body, "plate": plate[0]}), *plate[1:])
    if isinstance(body.get("well"), dict) and inside(f"{at}.well.images"):
        well = peer_fields(body["well"], path[len(f"{at}.well") :])
        return None if well is None else (rebuilt({**body, "well": well[0]}), *well[1:])
    if "omero" in body and inside(f"{at}.omero"):
        mended = _mended_channel(body["omero"], path[len(f"{at}.omero") :])
        if mended is not None:
            return rebuilt({**body, "omero": mended[0]}), "omero", mended[1]
        without = {k: v for k, v in body.items() if k != "omero"}
        return rebuilt(without), "omero", "the image is read without its 'omero' channel metadata"
    label = body.get("image-label")
    if not isinstance(label, dict):
        return None
    if "source" in label and inside(f"{at}.image-label.source"):
        fixed = {k: v for k, v in label.items() if k != "source"}
        return rebuilt({**body, "image-label": fixed}), "image-label", "its source is left out"
    for field in ("colors", "properties"):
        if field in label and inside(f"{at}.image-label.{field}"):
            entries, done = _mended_entries(label[field], field)
            if entries is None or entries == label[field]:  # nothing to mend: drop them all
                entries, done = None, f"its 'image-label' {field} are left out"
            fixed = {k: v for k, v in label.items() if k != field}
            if entries is not None:
                fixed[field] = entries
            return rebuilt({**body, "image-label": fixed}), "image-label", done
    return None


_TRANSFORM = re.compile(
    r"\[(\d+)\](?:\.datasets\[(\d+)\])?\.coordinateTransformations\[(\d+)\](?:\.\w+)?"
)


def _is_identity(t: Any) -> bool:
    return isinstance(t, dict) and t.get("type") == "identity"


def _without_identity(multiscales: list[Any], where: str) -> tuple[list[Any], str, str] | None:
    """``multiscales`` without their ``identity`` transformations (iohub writes
    ``[{"type": "identity"}]`` at the multiscale level; NGFF 0.4 / 0.5 allow only ``scale``
    and ``translation`` there) when ``where`` (a path inside them) points at one: a list left
    empty is left out (a level's: read as scale 1, which is what identity is), and what was
    done. ``None``: ``where`` is no identity transformation."""
    found = _TRANSFORM.fullmatch(where)
    if found is None:
        return None
    try:
        ms = multiscales[int(found[1])]
        owner = ms if found[2] is None else ms["datasets"][int(found[2])]
        entry = owner["coordinateTransformations"][int(found[3])]
    except (LookupError, TypeError):  # not there, or not objects and lists
        return None
    if not _is_identity(entry):
        return None
    dropped = 0

    def kept(ts: Any, ndim: int | None) -> Any:
        nonlocal dropped
        if not isinstance(ts, list):
            return ts
        out = [t for t in ts if not _is_identity(t)]
        dropped += len(ts) - len(out)
        if not out and ndim is not None:  # a level's only transformation
            return [{"type": "scale", "scale": [1.0] * ndim}]
        return out

    fixed = []
    for ms in multiscales:
        if not isinstance(ms, dict):
            fixed.append(ms)
            continue
        axes = ms.get("axes")
        ndim = len(axes) if isinstance(axes, list) else None
        new = {**ms}
        if "coordinateTransformations" in ms:
            outer = kept(ms["coordinateTransformations"], None)
            if outer == []:
                del new["coordinateTransformations"]
            else:
                new["coordinateTransformations"] = outer
        if isinstance(ms.get("datasets"), list):
            new["datasets"] = [
                {**d, "coordinateTransformations": kept(d["coordinateTransformations"], ndim)}
                if isinstance(d, dict) and "coordinateTransformations" in d
                else d
                for d in ms["datasets"]
            ]
        fixed.append(new)
    s = "s" if dropped > 1 else ""
    return (
        fixed,
        "multiscales",
        f"{dropped} 'identity' transformation{s} left out (identity changes nothing)",
    )


def _names(entries: Any) -> list[Any]:
    return [e.get("name") if isinstance(e, dict) else None for e in entries or ()]


def _wells_at_their_paths(
    plate: dict[str, Any], where: str
) -> tuple[dict[str, Any], str, str] | None:
    """The 0.4 ``plate`` with the ``rowIndex`` / ``columnIndex`` of every well whose index is
    out of range of its ``rows`` / ``columns`` taken from its path ``<row>/<column>`` (the
    path decides, as for a well whose indices disagree with its path; writers got the indices
    NGFF 0.4 added late wrong: 1-based, or counted over rows not listed), and what was done.
    ``None``: ``where`` is not such an index, or a well path names no listed row / column."""
    if re.fullmatch(r"\.wells\[\d+\]\.(?:rowIndex|columnIndex)", where) is None:
        return None
    rows, columns, wells = (
        _names(plate.get("rows")),
        _names(plate.get("columns")),
        plate.get("wells"),
    )
    if not isinstance(wells, list):
        return None

    def out_of_range(value: Any, n: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= n

    fixed, moved = [], []
    for w in wells:
        if isinstance(w, dict) and (
            out_of_range(w.get("rowIndex"), len(rows))
            or out_of_range(w.get("columnIndex"), len(columns))
        ):
            row, _, column = str(w.get("path")).partition("/")
            if row not in rows or column not in columns:
                return None
            w = {**w, "rowIndex": rows.index(row), "columnIndex": columns.index(column)}
            moved.append(repr(w["path"]))
        fixed.append(w)
    if not moved:
        return None
    many = f"{len(moved)} wells ({', '.join(moved[:3])}{', ...' if len(moved) > 3 else ''})"
    what = f"well {moved[0]} read at its path" if len(moved) == 1 else f"{many} read at their paths"
    return {**plate, "wells": fixed}, "plate", f"{what} (the path decides)"


_AXES = re.compile(r"\[(\d+)\]\.axes(?:\[\d+\].*)?")
#: the type an axis without one is read with, by its name (the names NGFF's examples use)
_TYPE_BY_NAME = {"x": "space", "y": "space", "z": "space", "c": "channel", "t": "time"}


def _typed_axes(multiscales: list[Any], where: str) -> tuple[list[Any], str, str] | None:
    """``multiscales`` whose axes without a ``type`` (or given as bare names, as NGFF 0.3
    wrote them) are typed by their names (x / y / z: space, c: channel, t: time) when
    ``where`` (a path inside them) points at their axes, and what was done. ``None``: no axis
    to type so (the error is another)."""
    found = _AXES.fullmatch(where)
    if found is None:
        return None
    typed: list[str] = []
    fixed = []
    for ms in multiscales:
        axes = ms.get("axes") if isinstance(ms, dict) else None
        if not isinstance(axes, list):
            fixed.append(ms)
            continue
        new_axes = []
        for axis in axes:
            name = (
                axis
                if isinstance(axis, str)
                else axis.get("name")
                if isinstance(axis, dict)
                else None
            )
            kind = _TYPE_BY_NAME.get(name.lower()) if isinstance(name, str) else None
            if kind is not None and (isinstance(axis, str) or "type" not in axis):
                axis = {**({"name": name} if isinstance(axis, str) else axis), "type": kind}
                typed.append(f"{name!r}: {kind}")
            new_axes.append(axis)
        fixed.append({**ms, "axes": new_axes})
    if not typed:
        return None
    return fixed, "multiscales", f"axes without a type read by their names ({', '.join(typed)})"


_CHANNEL_FIELD = re.compile(r"\.channels\[(\d+)\]\.(color|window)(?:\.\w+)?")
_CHANNEL = re.compile(r"\.channels\[(\d+)\]")
_HEX_COLOR = re.compile(r"[0-9A-Fa-f]{6}(?:[0-9A-Fa-f]{2})?")


def _mended_channel(omero: Any, where: str) -> tuple[dict[str, Any], str] | None:
    """The ``omero`` block with the one channel ``color`` or ``window`` that ``where`` (a path
    inside the block) points at mended, and what was done: a CSS ``#RRGGBB`` (or 8 hex
    digits) color its 6 digits, another color white; a window without a number for ``min`` or
    ``max`` given its ``start`` / ``end`` there. ``None``: not mendable so (ome-zarr-py and
    napari read such channels; dropping the block lost every channel's name)."""
    found = _CHANNEL_FIELD.fullmatch(where)
    channels = omero.get("channels") if isinstance(omero, dict) else None
    missing = _CHANNEL.fullmatch(where)
    if missing is not None and isinstance(channels, list):
        return _missing_keys_mended(omero, channels, int(missing[1]))
    if found is None or not isinstance(channels, list) or int(found[1]) >= len(channels):
        return None
    i, field = int(found[1]), found[2]
    channel = channels[i]
    if not isinstance(channel, dict):
        return None
    old = channel.get(field)
    if field == "color":
        digits = old.removeprefix("#") if isinstance(old, str) else ""
        new: Any = digits[:6] if _HEX_COLOR.fullmatch(digits) else "FFFFFF"
    else:
        if not isinstance(old, dict) or not all(_finite(old.get(k)) for k in ("start", "end")):
            return None
        new = {**old}
        for bound, edge in (("min", "start"), ("max", "end")):
            if not _finite(new.get(bound)):
                new[bound] = old[edge]
    if new == old:
        return None
    fixed = [*channels]
    fixed[i] = {**channel, field: new}
    return {**omero, "channels": fixed}, f"channel {i}'s {field} {old!r} is read as {new!r}"


#: what a channel missing its ``window`` is read with: an empty range, which says "no
#: window" to the readers of ``ChannelInfo.window`` that ask for a shown range (the model has
#: no window-less channel)
_NO_WINDOW = {"min": 0, "max": 0, "start": 0, "end": 0}


def _missing_keys_mended(
    omero: dict[str, Any], channels: list[Any], at: int
) -> tuple[dict[str, Any], str] | None:
    """The ``omero`` block with every channel missing its ``color`` (read as white) or
    ``window`` (read as an empty range) mended, and what was done. ``None`` when channel
    ``at`` misses neither (it is no object, or misses another key)."""
    if at >= len(channels) or not isinstance(channels[at], dict):
        return None
    if all(k in channels[at] for k in ("color", "window")):
        return None
    fixed: list[Any] = []
    colors: list[str] = []
    windows: list[str] = []
    for i, channel in enumerate(channels):
        if isinstance(channel, dict) and "color" not in channel:
            channel = {**channel, "color": "FFFFFF"}
            colors.append(str(i))
        if isinstance(channel, dict) and "window" not in channel:
            channel = {**channel, "window": {**_NO_WINDOW}}
            windows.append(str(i))
        fixed.append(channel)
    done = [
        f"channel {', '.join(ids)} without a {what}"
        for ids, what in ((colors, "color: read as 'FFFFFF'"), (windows, "window: read as (0, 0)"))
        if ids
    ]
    return {**omero, "channels": fixed}, "; ".join(done) + " (the labels are kept)"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _mended_entries(entries: Any, field: str) -> tuple[list[Any] | None, str]:
    """The ``image-label`` ``colors`` / ``properties`` list ``entries`` mended where that is
    unambiguous (napari's rgba floats 0..1 scaled to 0..255 when some are fractions, an rgb
    triple made opaque), entries that still break a rule dropped (of duplicate label values,
    the first kept); ``None`` when none is left. And what was done."""
    from ..meta import LabelColor, LabelProperty

    if not isinstance(entries, list):
        return None, f"its 'image-label' {field} are left out"
    model: type[LabelColor | LabelProperty] = LabelColor if field == "colors" else LabelProperty

    def numbers(rgba: Any) -> TypeGuard[list[float]]:
        return isinstance(rgba, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in rgba
        )

    rgbas = [e.get("rgba") if isinstance(e, dict) else None for e in entries]
    unit = any(  # napari's convention: fractions in 0..1
        numbers(c) and any(isinstance(v, float) and not v.is_integer() for v in c) for c in rgbas
    ) and all(not numbers(c) or all(0 <= v <= 1 for v in c) for c in rgbas)
    kept: list[Any] = []
    seen: set[int] = set()
    scaled = opaque = dropped = duplicates = 0
    for entry in entries:
        item = entry
        rgba = item.get("rgba") if isinstance(item, dict) else None
        if field == "colors" and numbers(rgba) and len(rgba) in (3, 4):
            new = list(rgba)
            if unit and any(isinstance(v, float) for v in new):
                new, scaled = [round(v * 255) for v in new], scaled + 1
            if len(new) == 3:
                new, opaque = [*new, 255], opaque + 1
            item = {**item, "rgba": [int(v) if float(v).is_integer() else v for v in new]}
        if isinstance(item, dict) and isinstance(item.get("label-value"), float):
            value = item["label-value"]
            if value.is_integer():
                item = {**item, "label-value": int(value)}
        try:
            checked = msgspec.convert(item, model)
        except (msgspec.ValidationError, ValueError):
            dropped += 1
            continue
        if checked.label_value in seen:
            duplicates += 1
            continue
        seen.add(checked.label_value)
        kept.append(item)
    done = [
        f"{n} {what}"
        for n, what in (
            (scaled, "rgba in 0..1 scaled to 0..255"),
            (opaque, "rgb given alpha 255"),
            (duplicates, "duplicate label-value entries dropped (the first kept)"),
            (dropped, "invalid entries dropped"),
        )
        if n
    ]
    if not kept:
        return None, f"its 'image-label' {field} are left out"
    return kept, f"its 'image-label' {field} are read mended ({', '.join(done) or 'normalised'})"


def _check_levels(
    meta: OmeMetadata,
    paths: tuple[str, ...],
    arrays: list[ArrayMeta],
    store: AsyncStore,
    root: str,
    multiscale: int = 0,
) -> None:
    """Cross-node rules: ndim == axes (A3/M4), 0.5 dimension_names (V4; 0.6 has no such rule:
    its arrays' dimensions are those of the array coordinate system), largest first (M3)."""
    assert meta.multiscales is not None
    names = tuple(a.name for a in meta.multiscales[multiscale].axes)
    where = _at(store, root)
    v3 = not is_zarr_v2(meta.version)

    def at(path: str) -> str:
        """The URL of a level's array metadata document."""
        return _at(store, join(root, path, "zarr.json" if v3 else ".zarray"))

    for path, arr in zip(paths, arrays, strict=True):
        if len(arr.shape) != len(names):
            raise MetadataError(
                f"{at(path)}: level {path!r} has {len(arr.shape)} dimensions, "
                f"the multiscale has {len(names)} axes ({', '.join(names)})",
                "$.shape",
            )
        dims = arr.dimension_names if isinstance(arr, ArrayV3Meta) else None
        # a null name (tensorstore's for an unlabelled dimension) names nothing, as no names
        contradicts = any(
            d is not None and d != n for d, n in zip(dims or names, names, strict=True)
        )
        if dims is not None and contradicts and meta.version == "0.5":  # 0.6: no rule
            raise MetadataError(
                f"{at(path)}: level {path!r} has dimension_names {list(dims)}, "
                f"expected the axis names {list(names)}",
                "$.dimension_names",
            )
    sizes = [arr.shape for arr in arrays]
    for i in range(1, len(sizes)):
        if any(b > a for a, b in zip(sizes[i - 1], sizes[i], strict=True)):
            warnings.warn(
                f"{where}: level {paths[i]!r} {sizes[i]} is larger than level {paths[i - 1]!r} "
                f"{sizes[i - 1]}; levels should go from largest to smallest",
                MetadataWarning,
                stacklevel=3,
            )
    if meta.image_label is not None:
        for path, arr in zip(paths, arrays, strict=True):
            if arr.dtype.kind not in "iu":
                message = (
                    f"{at(path)}: label level {path!r} has dtype {arr.dtype}; labels are integers"
                )
                field = "$.data_type" if v3 else "$.dtype"
                if not v3:  # 0.4 (and before): a warning
                    warnings.warn(f"{message} - at `{field}`", MetadataWarning, stacklevel=3)
                else:
                    raise MetadataError(message, field)


async def listed_series(store: AsyncStore, root: str, version: str | None) -> list[str] | None:
    """The image paths the ``OME`` group of the bioformats2raw container at ``root`` lists;
    ``None`` without a list (no ``OME`` group, one holding only ``METADATA.ome.xml``, or a
    broken one: left to ``validate``), where the images are ``0``, ``1``, ..."""
    try:
        listing = await read_group_metadata(
            store, join(root, "OME"), parent_version=version, plain_ok=True
        )
    except (NotFoundError, MetadataError):
        return None
    return list(listing.series) if listing.series else None


async def container_series(store: AsyncStore, root: str, version: str | None) -> list[str]:
    """The images of the bioformats2raw container at ``root``: ``OME/series`` when the ``OME``
    group lists them, else ``0``, ``1``, ... as long as they exist."""
    listed = await listed_series(store, root, version)
    if listed is not None:
        return listed
    found: list[str] = []
    while True:
        try:
            await read_group_metadata(store, join(root, str(len(found))), parent_version=version)
        except CredentialsRefusedError:
            raise  # (no series ends at credentials refused)
        except (NotFoundError, PermissionDeniedError):  # 403: missing, where none may list
            return found
        found.append(str(len(found)))


async def refresh_image(ds: Dataset) -> None:
    """Bring ``ds``'s cached metadata and levels up to its stored group document (what other
    dataset objects or processes wrote since it was opened: scales, channels, added levels):
    one GET, plus the array metadata of levels it did not know."""
    from ._level import Level
    from ._metadata import ImageMetadata

    version = ds.metadata.ngff_version
    key = join(ds.root, ".zattrs" if is_zarr_v2(version) else "zarr.json")
    raw = await ds.store.get(key)
    if raw is None:  # gone (or another version's): read as at open, and fail as it would
        ome = await read_group_metadata(ds.store, ds.root, parent_version=version)
    else:
        # the document at hand, this read never suspends: the filter is this task's alone
        with warnings.catch_warnings():  # shown when the image was opened
            warnings.simplefilter("ignore", MetadataWarning)
            read = _Read(ds.store, {key: raw})
            ome = await read_group_metadata(ds.store, ds.root, parent_version=version, early=read)
    if not ome.multiscales or len(ome.multiscales) <= ds.metadata.index:
        raise NotFoundError(
            f"{ds.url} is no longer the image it was opened as (its multiscales changed)",
            url=ds.store.url,
            key=ds.root,
        )
    _CONSOLIDATED.get(ds.store, {}).pop(ds.root, None)  # what others wrote: the documents
    metadata = ImageMetadata(ome, ds.metadata.index)
    known = {lvl.path: lvl for lvl in ds.levels}
    paths = metadata.paths
    missing = tuple(p for p in paths if join(ds.root, p) not in known)
    arrays = (
        await read_level_metadata(ds.store, ds.root, ome, missing, multiscale=ds.metadata.index)
        if missing
        else []
    )
    new = dict(zip(missing, arrays, strict=True))
    if ome.version in OLD_VERSIONS and missing != paths:  # scales from shapes, as at open
        shapes = [new[p].shape if p in new else known[join(ds.root, p)].shape for p in paths]
        scales_from_shapes(metadata.multiscale, shapes)
        metadata = ImageMetadata(ome, ds.metadata.index)
    last = ds.levels[-1]
    levels = []
    for path, cal in zip(paths, metadata.spatial_calibration, strict=True):
        lvl = known.get(join(ds.root, path))
        if lvl is None:
            lvl = Level(
                ds.store,
                join(ds.root, path),
                new[path],
                scale=cal.scale,
                translation=cal.translation,
                workers=ds._workers,
                window=last._window,
            )
            lvl.writable = last.writable
        lvl.scale, lvl.translation = cal.scale, cal.translation
        levels.append(lvl)
    ds.metadata = metadata
    ds.levels[:] = levels
    ds._attach_read_cache()  # what other programs wrote is read anew


class _Read:
    """Documents already read (``read_group_metadata``'s ``early``): the answers for their
    keys come without a suspension; other keys are read from ``store``."""

    def __init__(self, store: AsyncStore, docs: dict[str, Any]) -> None:
        self.store = store
        self.docs = docs

    async def get(self, key: str) -> Any:
        if key in self.docs:
            return self.docs[key]
        return await self.store.get(key)
