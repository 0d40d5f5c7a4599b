"""Writing a new node's metadata in an order that never leaves group metadata pointing at missing
arrays: the root refused or cleared, claimed (a conditional put of its first array's document),
the arrays' documents, the group's last; a failure removes what was written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .._errors import ExistsError, PermissionDeniedError, StoreError, UnsupportedError
from ._consolidated import _put_all, update_consolidated
from ._open import join
from ._root_checks import (
    _NODE_KEYS,
    Listing,
    _get_or_none,
    _is_node_key,
    _listed_error,
    _refuse_cloud_array_above,
    _refuse_other_version,
    _refused,
    _scan_above,
    _url_of,
    refuse_array_above,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..stores import AsyncStore
    from ._create_plan import ImagePlan


async def _prepare_root(
    store: AsyncStore,
    root: str,
    overwrite: bool,
    *,
    paths: Sequence[str] = (),
    label: bool = False,
    version: str | None = None,
) -> None:
    """Refuse (or, with ``overwrite``, delete) an existing zarr node at ``root``.

    A node is zarr metadata at the root or (when the store lists) anywhere below it: a
    half-written hierarchy would otherwise mix stale arrays into the new image. Stored objects
    under the array ``paths`` about to be created count too (an interrupted write, or an
    overwrite by an older version, which deleted the metadata first, can leave them behind: the
    new arrays would read them as their pixels).
    Other files are left alone when nothing is found.
    Refused whatever ``overwrite`` (before anything is deleted): a root below an array, or one
    that a group above lists as one of its levels, one of its wells or (unless ``label``: a
    label image is created) one of its label images: the group would list a wrong node; and
    (``version``, of a label image) a ``labels`` group above of the other NGFF version (it
    could not list it: see ``check_same_version``).
    """
    where = _url_of(store.url, root)
    found: list[str] = []
    arrays: list[str] = []  # array metadata of a parent of root: nothing may go below it
    # (document, root's path there, (what, path) it lists at or below root)
    listings: list[tuple[str, str, tuple[Listing, str]]] = []
    parts = root.split("/") if root else []
    parents = ["/".join(parts[:i]) for i in range(len(parts))]
    parent_keys = {join(p, name) for p in parents for name in ("zarr.json", ".zarray", ".zattrs")}
    if store.url.startswith("file://"):  # the directories above the store's root
        refuse_array_above(store.url[len("file://") :], where, label=label)
    # the prefixes above a cloud store's root
    await _refuse_cloud_array_above(store, where, label=label)

    seen: set[str] = set()

    async def check(key: str) -> None:
        if key in parent_keys:
            await _scan_above(store, key, root, arrays, listings, seen)
        elif await store.exists(key):
            found.append(key)

    from ._run_all import _run_all

    keys_to_check = [join(root, name) for name in _NODE_KEYS] + sorted(parent_keys)
    await _run_all(keys_to_check, check, len(keys_to_check))
    if arrays:
        key = min(arrays, key=len)
        parent = key.rsplit("/", 1)[0] if "/" in key else ""
        raise ExistsError(
            f"cannot create {where}: its parent "
            f"{repr(parent) if parent else '(the store root)'} is a zarr array ({key}), and an"
            " array cannot hold other nodes",
            url=store.url,
            key=key,
            kind="parent",
        )
    if refused := _refused(listings, label=label):
        key, rel, listed = min(refused)
        raise _listed_error(where, _url_of(store.url, key.rpartition("/")[0]), key, rel, listed)
    if version is not None and parents and parents[-1].rsplit("/", 1)[-1] == "labels":
        _refuse_other_version(store.url, parents[-1], version, seen)
    keys: list[str] | None = None
    what = "a zarr node"
    if not found and store.supports_listing:
        keys = await store.list_prefix(root)
        under = tuple(join(root, p) + "/" for p in paths)
        found = [k for k in keys if under and k.startswith(under) and not _is_node_key(k)]
        if found:  # the new arrays would read them as their pixels
            what = "stored chunks without metadata"
        else:  # e.g. the arrays of a create interrupted before its group metadata
            found = [k for k in keys if _is_node_key(k)]
            what = "zarr metadata below it but none of its own"
    if not found:
        return
    if not overwrite:
        shown = ", ".join(sorted(found)[:3]) + (", ..." if len(found) > 3 else "")
        if what == "stored chunks without metadata":
            shown += ", left by an interrupted write or overwrite"
        elif what != "a zarr node":
            shown += ", as an interrupted create, overwrite or conversion leaves it"
        raise ExistsError(
            f"{where} already holds {what} ({shown}); pass overwrite=True to replace it",
            url=store.url,
            key=min(found),
            kind="node",
        )
    if not store.supports_listing:
        raise UnsupportedError(
            f"cannot overwrite {where}: the store cannot list the keys to delete"
        )
    if keys is None:
        keys = await store.list_prefix(root)
    # the group's metadata first (the old image stops opening), then the data, the metadata
    # below last: interrupted, what is left is always found again as a node by the retry
    # (chunks of a label image whose metadata went first were found by nothing, left forever)
    top = {join(root, name) for name in _NODE_KEYS}
    stages = [
        [k for k in keys if k in top],
        [k for k in keys if not _is_node_key(k)],
        [k for k in keys if _is_node_key(k) and k not in top],
    ]
    # consolidated copies above stop listing the old node first: were it deleted and the new
    # one not written (a failure), readers trusting them would read its arrays as fill value
    await update_consolidated(store, [], removed=root)
    for stage in stages:  # bulk requests where the store has them (S3, Azure: 256 keys each)
        await store.delete_many(stage)


async def write_plan_metadata(
    store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool, consolidate: bool = True
) -> None:
    """Refuse or clear an existing node, then write every array's metadata (concurrently) and
    the group documents last, in order: no NGFF metadata ever names a missing array. The
    consolidated metadata above ``root`` (if any) is updated last.

    A failure (or cancellation) before the group documents are all written removes the
    documents written so far (best effort), so that the same call can simply be retried. The
    claim, and everything from the group documents on, are shielded from cancellation: a put
    cancelled in flight may still land after that cleanup (obstore), leaving NGFF metadata
    without its arrays (or an unclaimed node a retry is refused)."""
    await claim_root(store, root, plan, overwrite=overwrite)
    await complete_root(store, root, plan, overwrite=overwrite, consolidate=consolidate)


async def claim_root(store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool) -> None:
    """The first half of :func:`write_plan_metadata`: refuse or clear an existing node, then
    (``overwrite=False``) claim the node. When it fails, nothing of this call is stored."""
    label = plan.ome.image_label is not None
    version = plan.version if label else None
    await _prepare_root(store, root, overwrite, paths=plan.paths, label=label, version=version)
    if not overwrite:  # claim the node: of two creates that both found it free, one is refused
        first = plan.array_documents()[0]
        with anyio.CancelScope(shield=True):  # a claim landing after a cancellation stays
            await _claim(store, root, (join(root, first[0]), first[1]))


async def complete_root(
    store: AsyncStore, root: str, plan: ImagePlan, *, overwrite: bool, consolidate: bool = True
) -> None:
    """The second half of :func:`write_plan_metadata`, on a claimed (or cleared) node.
    ``consolidate=False``: the caller brings the consolidated metadata above up to date with
    these documents itself (a label image's, with its listing: once, not twice). Level paths
    that lie in groups (ngff-zarr's ``scale0/image``) get those groups' documents too."""
    from ._create_plan import path_groups

    inner = path_groups(root, plan.paths, plan.version)
    arrays = [(join(root, k), d) for k, d in plan.array_documents()]
    groups = [(join(root, k), d) for k, d in plan.group_documents()]
    try:
        await _put_all(store, inner + (arrays if overwrite else arrays[1:]), consolidate=False)
    except BaseException as exc:
        await discard_documents(store, root, [k for k, _ in groups + inner + arrays], exc)
        raise
    # the rest runs to its end: cancelled mid-put, a put could land after the cleanup; and a
    # cancellation after the group documents would leave a complete node its caller (a label,
    # a field) does not know of, never listed
    with anyio.CancelScope(shield=True):
        try:
            for key, data in groups:
                await store.put(key, data)
        except BaseException as exc:
            await discard_documents(store, root, [k for k, _ in groups + inner + arrays], exc)
            raise
        if consolidate:
            docs = inner + arrays + groups
            await update_consolidated(store, docs, removed=root if overwrite else None)


async def discard_documents(
    store: AsyncStore,
    root: str,
    keys: Sequence[str],
    exc: BaseException,
    *,
    consolidated: bool = False,
) -> None:
    """Delete the metadata ``keys`` (in order: the group's documents first) of a node whose
    creation failed with ``exc``, shielded from cancellation, then (``consolidated``: they may
    have reached them) drop the node from the consolidated copies above. When that fails too,
    ``exc`` gets a note saying what is left and how to replace it."""
    where = _url_of(store.url, root)
    with anyio.CancelScope(shield=True):
        try:
            for key in keys:
                await store.delete(key)
            if consolidated:
                await update_consolidated(store, [], removed=root)
        except Exception as cleanup:  # noqa: BLE001 - reported on exc
            exc.add_note(
                f"the metadata written so far at {where} could not be removed ({cleanup}); "
                "create it again with overwrite=True"
            )


async def _claim(
    store: AsyncStore, root: str, first: tuple[str, bytes], *, exists_ok: bool = False
) -> None:
    """Put the first level's array metadata only if absent (stores without conditional puts:
    plainly): two creates that both found no node (two dataset objects, two processes) would
    otherwise both write every document, the second silently replacing the first.
    ``exists_ok``: a document found there is fine (a plain group another writer made, which
    it may have given attributes since: never replaced)."""
    try:
        claimed = await store.put_if_absent(*first)
    except UnsupportedError:
        await store.put(*first)
        claimed = True
    except StoreError as exc:  # no answer (a timeout, a reset): the put may have landed
        if isinstance(exc, PermissionDeniedError) or not (
            await _holds(store, *first) or (exists_ok and await store.exists(first[0]))
        ):
            raise
        claimed = True  # it did: the node is this create's (a retry would be refused by it)
    if claimed or exists_ok:
        return
    where = _url_of(store.url, root)
    why = "was created meanwhile by another writer"
    if await _holds(store, *first):
        # obstore retries a conditional put whose answer was lost: the retry finds our own
        why = (
            "holds the very document this create claims it with, written meanwhile by "
            "another create of the same image or by this one (a request whose answer was "
            "lost and was sent again)"
        )
    raise ExistsError(
        f"{where} {why} ({first[0]}); pass overwrite=True to replace it",
        url=store.url,
        key=first[0],
        kind="node",
    )


async def _holds(store: AsyncStore, key: str, data: bytes) -> bool:
    """Whether ``key`` holds exactly ``data`` (``False`` also when it cannot be read)."""
    try:
        stored = await _get_or_none(store, key)
    except StoreError:
        return False
    return stored is not None and bytes(stored) == data
