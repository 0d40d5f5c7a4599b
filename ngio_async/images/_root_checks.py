"""Where a new node may not go: below a zarr array (local directories, and the keys above a root
on object stores), at a path a group above lists as another kind of node (level, label,
well), or beside metadata of another NGFF version."""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, Any, Literal

from .._errors import ExistsError, PermissionDeniedError
from ..meta import read_document
from ._open import join

if TYPE_CHECKING:
    from ..stores import AsyncStore


_NODE_KEYS = ("zarr.json", ".zattrs", ".zgroup", ".zarray")


def _decoded(raw: Any) -> Any:
    """A JSON document decoded (``None`` when it is not JSON)."""
    import msgspec

    try:
        return read_document(raw)
    except msgspec.DecodeError:
        return None


def _node_type(raw: Any) -> Any:
    """``node_type`` of a zarr v3 ``zarr.json`` (``None`` when it is not a JSON object)."""
    doc = _decoded(raw)
    return doc.get("node_type") if isinstance(doc, dict) else None


Listing = Literal["level", "label", "well"]


def _paths(items: Any, key: str = "path") -> list[str]:
    """The ``key`` of every object of a JSON list, stripped of ``/`` (others skipped)."""
    if not isinstance(items, list):
        return []
    return [str(i[key]).strip("/") for i in items if isinstance(i, dict) and key in i]


def _within(rel: str, paths: list[str]) -> str | None:
    """The first of ``paths`` that is ``rel`` or lies below it."""
    return next((p for p in paths if p == rel or p.startswith(rel + "/")), None)


def _listed_as(raw: Any, rel: str) -> tuple[Listing, str] | None:
    """What the NGFF attributes of a group document (a v3 ``zarr.json`` or a v2 ``.zattrs``)
    list at or below the node at ``rel`` below the group, and its path there: a ``"level"``
    of one of its multiscales, a ``"label"`` image of its labels group, a ``"well"`` of its
    plate (a row group holds wells); ``None`` when nothing."""
    doc = _decoded(raw)
    if not isinstance(doc, dict):
        return None
    if "zarr_format" in doc:  # zarr.json: the attributes, NGFF 0.5 under "ome"
        doc = doc.get("attributes")
        if not isinstance(doc, dict):
            return None
    for attrs in (doc, doc.get("ome")):
        if not isinstance(attrs, dict):
            continue
        multiscales = attrs.get("multiscales")
        for ms in multiscales if isinstance(multiscales, list) else ():
            if isinstance(ms, dict) and (path := _within(rel, _paths(ms.get("datasets")))):
                return "level", path
        labels = attrs.get("labels")
        names = [str(n).strip("/") for n in labels] if isinstance(labels, list) else []
        if path := _within(rel, names):
            return "label", path
        plate = attrs.get("plate")
        if isinstance(plate, dict) and (path := _within(rel, _paths(plate.get("wells")))):
            return "well", path
    return None


def _url_of(url: str, path: str) -> str:
    """The URL of ``path`` below a store's ``url`` (``memory://`` + ``a`` is ``memory://a``)."""
    return f"{url}{'' if url.endswith('/') else '/'}{path}" if path else url


def _listed_error(
    where: str, holder: str, doc: str, rel: str, listed: tuple[Listing, str]
) -> ExistsError:
    """The refusal of a create at ``where`` (``rel`` below the group ``holder``), where the
    group lists (in ``doc``) ``listed`` (what, path): replaced by an image, the group would
    list a wrong node or a missing one."""
    what, path = listed
    it = "it is" if path == rel else "it holds"
    if what == "level":
        why = (
            f"{it} level {path!r} of the image {holder} ({doc}): an image there would leave "
            "that image's multiscales pointing at a group. Write the level through its "
            "image, or create this image elsewhere"
        )
    elif what == "label":
        why = (
            f"{it} label image {path!r} of {holder} ({doc}), which would keep listing it "
            "without its image-label metadata: replace it with the image's "
            f"labels.create({path!r}, overwrite=True), or create a label image here "
            "(create_like of one)"
        )
    else:
        why = (
            f"{it} well {path!r} of the plate {holder} ({doc}): an image there would leave "
            "the plate listing a missing well or an image as one"
        )
    return ExistsError(f"cannot create {where}: {why}", url=holder, key=doc, kind="parent")


def _refused_listing(raw: Any, rel: str, *, label: bool) -> tuple[Listing, str] | None:
    """:func:`_listed_as`, but ``None`` for a listed label image ``rel`` when ``label`` (a
    label image replacing a label image keeps the listing right)."""
    listed = _listed_as(raw, rel)
    return None if listed == ("label", rel) and label else listed


def _is_node_key(key: str) -> bool:
    return key.rsplit("/", 1)[-1] in _NODE_KEYS


def _local_directory(url: str | os.PathLike[str]) -> str | None:
    """The directory a plain path or ``file://`` URL names (as ``open_store`` resolves it),
    ``None`` for other URLs."""
    from urllib.parse import unquote, urlsplit

    if isinstance(url, os.PathLike):
        return os.path.abspath(os.path.expanduser(os.fspath(url)))
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) <= 1:  # a plain path (or a Windows drive letter)
        return os.path.abspath(os.path.expanduser(url))
    return unquote(urlsplit(url).path) if scheme == "file" else None


def _node_above(
    directory: str, *, label: bool = False
) -> tuple[str, tuple[Listing, str] | None] | None:
    """The metadata file of the nearest directory above ``directory`` (up to the filesystem
    root; a stat per directory, a read of each ``zarr.json`` / ``.zattrs`` found) that is a
    zarr array (``(file, None)``) or a group listing ``directory`` as one of its parts
    (``(file, what)``, see :func:`_refused_listing`)."""
    current = os.path.abspath(directory)
    while (parent := os.path.dirname(current)) != current:
        current = parent
        rel = os.path.relpath(directory, current).replace(os.sep, "/")
        if os.path.isfile(v2 := os.path.join(current, ".zarray")):
            return v2, None
        for name in ("zarr.json", ".zattrs"):
            try:
                with open(os.path.join(current, name), "rb") as f:
                    raw = f.read()  # cut short, a large document would not decode
            except OSError:  # absent (or unreadable: not a node this create can see)
                continue
            if name == "zarr.json" and _node_type(raw) == "array":
                return os.path.join(current, name), None
            if (what := _refused_listing(raw, rel, label=label)) is not None:
                return os.path.join(current, name), what
    return None


def refuse_array_above(directory: str, where: str, *, label: bool = False) -> None:
    """Raise :class:`ExistsError` (``kind="parent"``) when a directory above the local store
    root ``directory`` is a zarr array (the store cannot see it, and nothing may go below it),
    or a group that lists ``directory`` as a level, a well or (unless ``label``: a label
    image replaces it) a label image."""
    found = _node_above(os.path.abspath(directory), label=label)
    if found is None:
        return
    (array, name), what = os.path.split(found[0]), found[1]
    if what is not None:
        rel = os.path.relpath(directory, array).replace(os.sep, "/")
        raise _listed_error(where, f"file://{array}", name, rel, what)
    raise ExistsError(
        f"cannot create {where}: its parent {array!r} is a zarr array ({found[0]}), and an"
        " array cannot hold other nodes",
        url=f"file://{array}",
        key=name,
        kind="parent",
    )


# cloud stores whose root has no array above it (checked once per store)
_CLEAR_ABOVE: weakref.WeakSet[AsyncStore] = weakref.WeakSet()


async def _bucket_root(store: AsyncStore) -> tuple[AsyncStore, str] | None:
    """A store at the root of the bucket (or container) of a cloud ``store`` rooted below it
    (seen through :class:`~ngio_async.stores.InstrumentedStore` wrappers), with ``store``'s
    prefix there; ``None`` for other stores. Its client (7-20 ms of work) is built in a
    worker thread at its first request, as ``store``'s own (waited for here, if not built
    yet), not on the event loop."""
    from obstore.store import AzureStore, GCSStore, S3Store

    from ..stores import InstrumentedStore, ObstoreStore
    from ..stores._obstore_clients import bucket_root_client

    while isinstance(store, InstrumentedStore):
        store = store.inner
    if not isinstance(store, ObstoreStore):
        return None
    await store.ready()
    inner = store.obstore
    if not isinstance(inner, S3Store | GCSStore | AzureStore):
        return None
    prefix = str(inner.prefix or "").strip("/")
    if not prefix:
        return None
    root = ObstoreStore(bucket_root_client(inner), limits=store.limits, limiter=store.limiter)
    return root, prefix


async def _scan_above(
    store: AsyncStore,
    key: str,
    below: str,
    arrays: list[str],
    listings: list[tuple[str, str, tuple[Listing, str]]],
    seen: set[str] | None = None,
) -> None:
    """Look at the metadata ``key`` of a node above the path ``below`` of ``store``: an array
    there (its ``zarr.json`` or ``.zarray``) goes to ``arrays``, what a group document lists at
    or below ``below`` to ``listings`` as (document, ``below``'s path in the group, (what,
    path)), the key itself, found, to ``seen``. A missing key is skipped, also where a store
    answers 403 for one."""
    if key.endswith(".zarray"):
        try:
            if await store.exists(key):
                arrays.append(key)
        except PermissionDeniedError:
            pass
        return
    raw = await _get_or_none(store, key)
    if raw is None:
        return
    if seen is not None:
        seen.add(key)
    if key.endswith("zarr.json") and _node_type(raw) == "array":
        arrays.append(key)
    rel = below[len(key.rpartition("/")[0]) :].strip("/")
    if (what := _listed_as(raw, rel)) is not None:
        listings.append((key, rel, what))


def _refused(
    listings: list[tuple[str, str, tuple[Listing, str]]], *, label: bool
) -> list[tuple[str, str, tuple[Listing, str]]]:
    """The ``listings`` (see :func:`_scan_above`) that refuse a create; a label image
    replacing a listed label image (``label``) keeps the listing right."""
    return [(k, r, w) for k, r, w in listings if not (label and w == ("label", r))]


async def _refuse_cloud_array_above(store: AsyncStore, where: str, *, label: bool = False) -> None:
    """Raise :class:`ExistsError` (``kind="parent"``) when a prefix above a cloud store's root
    (which it cannot see) is a zarr array (nothing may go below it: an overwrite would delete
    its chunks) or a group listing the root as a part (see :func:`refuse_array_above`)."""
    if store in _CLEAR_ABOVE:
        return
    found = await _bucket_root(store)
    if found is None:
        return
    bucket, prefix = found
    parts = prefix.split("/")
    arrays: list[str] = []
    listings: list[tuple[str, str, tuple[Listing, str]]] = []

    async def check(key: str) -> None:
        await _scan_above(bucket, key, prefix, arrays, listings)

    from ._run_all import _run_all

    above = ["/".join(parts[:i]) for i in range(len(parts))]
    keys = [join(p, name) for p in above for name in ("zarr.json", ".zarray", ".zattrs")]
    try:
        await _run_all(keys, check, len(keys))
    finally:
        await bucket.aclose()
    if arrays:
        key = min(arrays, key=len)
        parent, _, name = key.rpartition("/")
        array = f"{bucket.url.rstrip('/')}/{parent}" if parent else bucket.url
        raise ExistsError(
            f"cannot create {where}: its parent {array} is a zarr array ({name}), and an"
            " array cannot hold other nodes",
            url=array,
            key=name,
            kind="parent",
        )
    if refused := _refused(listings, label=label):
        key, rel, what = min(refused)
        parent, _, name = key.rpartition("/")
        holder = _url_of(bucket.url, parent)
        raise _listed_error(where, holder, name, rel, what)
    if not listings:
        _CLEAR_ABOVE.add(store)  # the many images of a plate ask once


def _refuse_other_version(url: str, group: str, version: str, seen: set[str]) -> None:
    """Refuse a node of NGFF ``version`` in ``group``, which the keys ``seen`` (found there)
    show to be of the other version only (as ``check_same_version``, without its requests)."""
    from ._labels import other_version_error, version_documents

    mine, other = version_documents(version)
    if join(group, mine) not in seen and join(group, other) in seen:
        raise other_version_error(url, group, version)


async def _get_or_none(store: AsyncStore, key: str) -> Any:
    """``store.get(key)``; ``None`` also where a store answers 403 for a missing key."""
    try:
        return await store.get(key)
    except PermissionDeniedError:
        return None
