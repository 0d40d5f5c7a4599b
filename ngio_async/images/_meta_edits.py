"""ngio's metadata edits that ``set_scale`` / ``set_channels`` do not cover: the image's name
(``set_name``) and its axis names (``set_axes_names``).

Each is one edit of the group document (a compare-and-swap, :meth:`Dataset._edit_metadata`:
validated before it is written, keys this library does not model kept, consolidated copies
updated). Renaming axes of an NGFF 0.5 image also rewrites every level's ``dimension_names``
(0.5: they MUST be the axes' names): the arrays first, then the group document; a failure puts
the arrays rewritten back (best effort) and raises. Label images follow an axis renaming (the
axes they share with the image, by name), as they follow ``set_scale``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import MetadataError, NotFoundError, UnsupportedError
from ._open import join

if TYPE_CHECKING:
    from ..meta import OmeMetadata
    from ..stores import Buffer
    from ._dataset import Dataset

__all__ = ["set_axes_names", "set_name"]


async def set_name(ds: Dataset, name: str) -> None:
    """See :meth:`~ngio_async.images.Dataset.set_name`."""
    from msgspec.structs import replace

    from ._dataset_edits import _with_extra

    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    ds._check_writable()

    def edit(ome: OmeMetadata) -> OmeMetadata:
        assert ome.multiscales is not None
        multiscales = list(ome.multiscales)
        ms = multiscales[ds.metadata.index]
        multiscales[ds.metadata.index] = _with_extra(replace(ms, name=name), ms)
        return _with_extra(replace(ome, multiscales=multiscales), ome)

    await ds._edit_metadata(edit)


def _new_names(ds: Dataset, names: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``{old: new}`` for the axes renamed (checked: strings, one per axis or known axes)."""
    old = ds.axes
    if isinstance(names, Mapping):
        unknown = [a for a in names if a not in old]
        if unknown:
            raise ValueError(f"axis {unknown[0]!r} is not an axis of {ds.url} (axes: {old})")
        given = [names.get(a, a) for a in old]
    elif isinstance(names, str | bytes) or not isinstance(names, Sequence):
        raise TypeError(f"names must be one name per axis or a mapping, got {names!r}")
    else:
        given = list(names)
        if len(given) != len(old):
            raise ValueError(f"{len(given)} axis names for {len(old)} axes {old}")
    for i, n in enumerate(given):
        if not isinstance(n, str) or not n:
            raise TypeError(f"axis name [{i}] must be a non-empty string, got {n!r}")
    if len(set(given)) != len(given):
        raise ValueError(f"axis names {given} are not unique (NGFF: axis names MUST be)")
    return {a: n for a, n in zip(old, given, strict=True) if a != n}


async def set_axes_names(
    ds: Dataset, names: Sequence[str] | Mapping[str, str], *, labels: bool = True
) -> None:
    """See :meth:`~ngio_async.images.Dataset.set_axes_names`."""
    ds._check_writable()
    version = ds.metadata.ngff_version
    if version not in ("0.4", "0.5"):  # refused before a level's document is rewritten
        raise UnsupportedError(
            f"{ds.store.url}: cannot rename the axes of an NGFF {version} image (ngio_async "
            "writes NGFF 0.4 and 0.5; convert it to 0.5 first)"
        )
    renamed = _new_names(ds, names)
    if not renamed:
        return
    async with ds.structure_lock():
        follow = labels and ds.metadata.ome.image_label is None and ds.metadata.index == 0
        plan = await _label_renames(ds, renamed) if follow else []
        await _rename(ds, renamed)
        if plan:
            await _rename_labels(ds, renamed, plan)


async def _label_renames(ds: Dataset, renamed: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Per label image sharing renamed axes: its name and its renames, checked before any
    write (a label's own axes must stay unique: a z y x label of a c y x image cannot take
    z for y)."""
    plan = []
    for name in await ds.labels.names():
        async with ds.labels.open(name) as label:
            axes = label.axes
        mine = {a: n for a, n in renamed.items() if a in axes}
        new = [mine.get(a, a) for a in axes]
        if len(set(new)) != len(new):
            raise ValueError(
                f"label {name!r} ({ds.store.url}/labels/{name}) would get the axis names {new}: "
                "not unique; nothing was changed (rename its axes first, or pass labels=False)"
            )
        if mine:
            plan.append((name, mine))
    return plan


async def _rename_labels(
    ds: Dataset, renamed: dict[str, str], plan: list[tuple[str, dict[str, str]]]
) -> None:
    """Rename the axes the label images share with the image (``plan``: see
    :func:`_label_renames`); a failure puts back the labels renamed and the image (best
    effort: a retry then renames them all) and raises."""
    from ._dataset_edits import _undo

    done: list[tuple[str, dict[str, str]]] = []

    async def rename_label(name: str, mine: dict[str, str]) -> None:
        label = await ds.labels.open(name, mode="r+")
        try:
            await _rename(label, mine)
        finally:
            await label.aclose()

    try:
        for name, mine in plan:
            await rename_label(name, mine)
            done.append((name, mine))
    except BaseException as exc:
        for name, mine in reversed(done):
            back = {n: a for a, n in mine.items()}
            await _undo(exc, f"{ds.store.url}/labels/{name}", rename_label(name, back))
        await _undo(exc, ds.store.url, _rename(ds, {n: a for a, n in renamed.items()}))
        raise


async def _rename(ds: Dataset, renamed: dict[str, str]) -> None:
    """Rename axes of ``ds`` (``{old: new}``): 0.5 level arrays first, then the group."""
    from msgspec.structs import replace

    from ._dataset_edits import _undo, _with_extra

    def edit(ome: OmeMetadata) -> OmeMetadata:
        assert ome.multiscales is not None
        multiscales = list(ome.multiscales)
        ms = multiscales[ds.metadata.index]
        axes = [
            _with_extra(replace(a, name=renamed[a.name]), a) if a.name in renamed else a
            for a in ms.axes
        ]
        multiscales[ds.metadata.index] = _with_extra(replace(ms, axes=axes), ms)
        return _with_extra(replace(ome, multiscales=multiscales), ome)

    arrays = ds.metadata.ngff_version != "0.4"
    done: list[str] = []
    try:
        if arrays:
            for lvl in ds.levels:
                await _rename_dimensions(ds, lvl.path, renamed)
                done.append(lvl.path)
        await ds._edit_metadata(edit)
    except BaseException as exc:
        back = {n: a for a, n in renamed.items()}

        async def restore() -> None:
            for path in done:
                await _rename_dimensions(ds, path, back)

        if done:
            await _undo(exc, ds.store.url, restore())
        raise
    if arrays:
        _cache_dimensions(ds, renamed)


async def _rename_dimensions(ds: Dataset, path: str, renamed: dict[str, str]) -> None:
    """Rename the ``dimension_names`` of the v3 array at ``path`` (a compare-and-swap)."""
    from ..meta import read_document, write_document
    from ._consolidated import update_consolidated

    key = join(path, "zarr.json")
    where = f"{ds.store.url.rstrip('/')}/{key}"

    async def edited(raw: Buffer | None) -> bytes:
        if raw is None:
            raise NotFoundError(f"{where} is gone", url=ds.store.url, key=key)
        doc: Any = read_document(raw)
        if not isinstance(doc, dict) or doc.get("node_type") != "array":
            raise MetadataError(f"{where} is not an array document", "$.node_type")
        dims = doc.get("dimension_names")
        if isinstance(dims, list):
            doc["dimension_names"] = [renamed.get(d, d) if isinstance(d, str) else d for d in dims]
        return write_document(doc)

    data = await ds.store.update(key, edited)
    if data is not None:
        await update_consolidated(ds.store, [(key, bytes(data))], shared=[key])


def _cache_dimensions(ds: Dataset, renamed: dict[str, str]) -> None:
    """The levels' cached array metadata with the new ``dimension_names``."""
    from msgspec.structs import replace

    from ..meta.zarr import ArrayV3Meta

    for lvl in ds.levels:
        meta = lvl.meta
        if isinstance(meta, ArrayV3Meta) and meta.dimension_names is not None:
            names = tuple(renamed.get(d, d) if d is not None else d for d in meta.dimension_names)
            lvl.meta = replace(meta, dimension_names=names)
