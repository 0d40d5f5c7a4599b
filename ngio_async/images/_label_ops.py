"""Operations on a dataset's label images beyond creating them (``ds.labels``): delete one,
renumber one to ``1..N``.

:func:`delete_label` unlists the name first (a compare-and-swap of the ``labels`` listing, as
:meth:`~ngio_async.images.Labels.create` lists one), then drops it from the consolidated
metadata above and deletes its objects (its group document first, then the chunks, then the
documents below): interrupted anywhere, no listing names a label whose data is missing (what
is left is an unlisted node, which a later delete or ``create(..., overwrite=True)`` removes).

:func:`relabel_sequential` is ngio's ``Label.relabel_sequential``, streamed in two passes over
level 0 in its write units (shards, else chunks): the values, tile by tile, numbered ``1..N``
in first-encounter order over that grid (ngio's numbering, tile for tile) or sorted; then the
remap, tile by tile; the lower levels are rebuilt from level 0 (as ngio consolidates) and the
``image-label`` colors and properties follow their values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .._errors import NotFoundError, ReadOnlyError, UnsupportedError
from ._open import join
from ._opening import read_only_advice

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ..meta import OmeMetadata
    from ._dataset import Dataset
    from ._labels import Labels

__all__ = ["delete_label", "relabel_sequential"]

Order = Literal["encounter", "sorted"]


def _check_label_path(name: object) -> str:
    """A listed label name (a path below ``labels``: ``'a'``, ``'a/b'``)."""
    if not isinstance(name, str) or any(p in ("", ".", "..") for p in name.split("/")):
        raise ValueError(f"invalid label name {name!r}")
    return name


def _check_can_write(ds: Dataset, name: str, what: str) -> None:
    """Refuse before any I/O: the image is read-only, or its store takes no writes."""
    ds._check_open()
    if ds.mode != "r+":
        raise ReadOnlyError(
            f"label {name!r} cannot be {what}: {ds.url} is open read-only "
            f"(mode='r'){read_only_advice(ds.store)}"
        )
    if not ds.store.supports_writes:
        raise UnsupportedError(
            f"label {name!r} cannot be {what}: {ds.url} is on a read-only store "
            f"({type(ds.store).__name__} takes no writes); nothing was changed"
        )
    version = ds.metadata.ngff_version
    if version not in ("0.4", "0.5"):  # 0.6 is read, not written
        raise UnsupportedError(
            f"label {name!r} cannot be {what}: {ds.url} is an NGFF {version} image "
            "(ngio_async writes NGFF 0.4 and 0.5; convert it to 0.5 first)"
        )


async def delete_label(labels: Labels, name: str, *, missing_ok: bool = False) -> None:
    """See :meth:`~ngio_async.images.Labels.delete`."""
    from ._consolidated import update_consolidated
    from ._root_checks import _NODE_KEYS, _is_node_key

    ds = labels._dataset
    _check_label_path(name)
    _check_can_write(ds, name, "deleted")
    root = join(ds.root, "labels", name)
    async with ds.structure_lock(), labels._names.hold(name):
        listed = await labels.names()
        if name not in listed:
            if missing_ok:
                return
            raise NotFoundError(
                f"no label {name!r} in {ds.url} (labels: {listed})", url=ds.store.url, key=name
            )
        await labels._list(name, remove=True)  # first: never a listed label without data
        await update_consolidated(ds.store, [], removed=root)
        if not ds.store.supports_listing:  # unlisted, its group document gone: it no
            # longer opens; the chunks stay (nothing can find them to delete)
            await ds.store.delete_many([join(root, k) for k in _NODE_KEYS])
            return
        keys = await ds.store.list_prefix(root)
        top = {join(root, k) for k in _NODE_KEYS}
        for stage in (  # the group first: interrupted, what is left no longer opens
            [k for k in keys if k in top],
            [k for k in keys if not _is_node_key(k)],
            [k for k in keys if _is_node_key(k) and k not in top],
        ):
            if stage:
                await ds.store.delete_many(stage)


async def relabel_sequential(labels: Labels, name: str, *, order: Order = "encounter") -> int:
    """See :meth:`~ngio_async.images.Labels.relabel_sequential`."""
    if order not in ("encounter", "sorted"):
        raise ValueError(f"order must be 'encounter' or 'sorted', got {order!r}")
    ds = labels._dataset
    _check_label_path(name)
    _check_can_write(ds, name, "relabelled")
    label = await labels.open(name, mode="r+")
    try:
        if label.dtype.kind not in "iu":
            raise TypeError(f"label {name!r} holds {label.dtype} values, not integers")
        lvl = label.levels[0]
        unit = tuple(lvl.shards or lvl.chunks)  # ngio's write units: its numbering's grid
        found = await _values(label, unit)
        if len(found) > np.iinfo(label.dtype).max:  # checked before any write
            raise ValueError(
                f"label {name!r} holds {len(found)} objects: numbered 1..{len(found)}, they do "
                f"not fit its {label.dtype} values (at most {np.iinfo(label.dtype).max})"
            )
        old = sorted(found) if order == "sorted" else found
        mapping = {v: i + 1 for i, v in enumerate(old)}
        if any(k != v for k, v in mapping.items()):
            await _remap_level0(label, unit, mapping)
            if len(label.levels) > 1:
                await label.build_pyramid()  # every level derives from level 0
            await _remap_label_metadata(label, mapping)
        return len(mapping)
    finally:
        await label.aclose()


async def _values(label: Dataset, unit: tuple[int, ...]) -> list[int]:
    """The nonzero values of level 0, in first-encounter order over the grid of ``unit``
    tiles (C order; within a tile, ascending), tile by tile."""
    seen: dict[int, None] = {}
    async for tile in label.tiles(level=0, shape=unit):
        values = await label._workers.run(_nonzero_unique, tile.data)
        for v in values.tolist():
            seen.setdefault(int(v), None)
    return list(seen)


def _nonzero_unique(data: NDArray[Any]) -> NDArray[Any]:
    values: NDArray[Any] = np.unique(data)
    nonzero: NDArray[Any] = values[values != 0]
    return nonzero


def _remapper(mapping: dict[int, int], dtype: np.dtype[Any]) -> Any:
    keys = np.fromiter(sorted(mapping), dtype=dtype, count=len(mapping))
    new = np.array([mapping[int(k)] for k in keys], dtype=dtype)

    def remap(data: NDArray[Any]) -> NDArray[Any]:
        at = np.clip(np.searchsorted(keys, data), 0, len(keys) - 1)
        out: NDArray[Any] = np.where(keys[at] == data, new[at], data).astype(dtype, copy=False)
        return out

    return remap


async def _remap_level0(label: Dataset, unit: tuple[int, ...], mapping: dict[int, int]) -> None:
    """Rewrite level 0 tile by tile (whole write units: no read-modify-write)."""
    from ._stream import stream

    remap = _remapper(mapping, label.dtype)
    async with label.writer(0) as out:
        await stream(label.tiles(level=0, shape=unit), remap, out=out)


async def _remap_label_metadata(label: Dataset, mapping: dict[int, int]) -> None:
    """The ``image-label`` colors and properties of renumbered values get their new values;
    those of values no longer stored are dropped (0, the background, is kept)."""
    from msgspec.structs import replace

    from ._dataset_edits import _with_extra

    stored = label.metadata.ome.image_label
    if stored is None or (stored.colors is None and stored.properties is None):
        return

    def moved(entries: list[Any] | None) -> list[Any] | None:
        if entries is None:
            return None
        out = []
        for e in entries:
            v = e.label_value
            if v == 0:
                out.append(e)
            elif v in mapping:
                out.append(_with_extra(replace(e, label_value=mapping[v]), e))
        return sorted(out, key=lambda e: e.label_value) or None

    def edit(ome: OmeMetadata) -> OmeMetadata:
        old = ome.image_label
        if old is None:
            return ome
        new = replace(old, colors=moved(old.colors), properties=moved(old.properties))
        return _with_extra(replace(ome, image_label=_with_extra(new, old)), ome)

    await label._edit_metadata(edit)
