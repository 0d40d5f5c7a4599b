"""Consolidated metadata of peer tools (zarr-python, ngff-zarr): where it lives, how to edit it.

zarr v2 keeps a copy of every metadata document below a group in that group's ``.zmetadata``
(``{"metadata": {"0/.zarray": {...}}, "zarr_consolidated_format": 1}``); zarr-python 3 keeps the
v3 equivalent in the group's ``zarr.json`` (``consolidated_metadata.metadata``, one entry per
node path, the child's whole ``zarr.json``). Readers that trust the copy (``zarr.open_group``,
``zarr.open_consolidated``) see nothing else, so a write below such a group must edit it too.
No I/O here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["V2_NAMES", "copy_entries", "edit_consolidated", "holders_of", "missing_parents"]

V2_NAMES = frozenset({".zarray", ".zattrs", ".zgroup"})
_EMPTY = {"kind": "inline", "must_understand": False, "metadata": {}}


def _split(key: str) -> tuple[str, str]:
    node, _, name = key.rpartition("/")
    return node, name


def _relative(path: str, base: str) -> str:
    return path if not base else path[len(base) + 1 :]


def _ancestors(node: str) -> list[str]:
    """``node``'s strict ancestors, the store root first (``"a/b"``: ``""``, ``"a"``)."""
    parts = node.split("/") if node else []
    return ["/".join(parts[:i]) for i in range(len(parts))]


def holders_of(key: str) -> list[tuple[str, str]]:
    """The documents that may hold a consolidated copy of the metadata document ``key``, each
    with the copy's entry name: ``(".zmetadata", "0/.zarray")`` for ``0/.zarray``,
    ``("zarr.json", "0")`` for ``0/zarr.json``. Empty for any other key."""
    node, name = _split(key)
    if name in V2_NAMES:  # a group's own .zmetadata lists its .zattrs too
        return [
            (f"{d}/.zmetadata" if d else ".zmetadata", _relative(key, d))
            for d in [*_ancestors(node), node]
        ]
    if name == "zarr.json" and node:
        return [
            (f"{d}/zarr.json" if d else "zarr.json", _relative(node, d)) for d in _ancestors(node)
        ]
    return []


def missing_parents(holder: dict[str, Any], v3: bool, name: str) -> list[str]:
    """The groups between a holder and entry ``name`` that its copy lacks (node paths relative
    to the holder, outermost first): zarr-python cannot read a copy naming a node whose parent
    it does not list."""
    entries = copy_entries(holder, v3) or {}
    node = name if v3 else _split(name)[0]
    return [p for p in _ancestors(node)[1:] if (p if v3 else f"{p}/.zgroup") not in entries]


def copy_entries(holder: dict[str, Any], v3: bool) -> dict[str, Any] | None:
    """The entries of a holder document; ``None``: it has no consolidated metadata. Raises
    ``ValueError`` for a copy this module cannot edit."""
    if v3:
        cm = holder.get("consolidated_metadata")
        if cm is None:
            return None
        if not isinstance(cm, dict) or cm.get("kind", "inline") != "inline":
            raise ValueError("its consolidated_metadata is not of kind 'inline'")
        entries = cm.setdefault("metadata", {})
    else:
        entries = holder.get("metadata")
    if not isinstance(entries, dict):
        raise ValueError("its consolidated metadata has no 'metadata' object")
    return entries


def edit_consolidated(
    holder: dict[str, Any],
    v3: bool,
    entries: dict[str, Any],
    removed: str | None = None,
) -> bool:
    """Put ``entries`` (entry name -> document) into the consolidated copy of ``holder`` (in
    place), after dropping the entries at and below ``removed`` (an entry path: a node deleted
    or replaced). Return whether ``holder`` holds a copy. ``ValueError``: it holds one this
    module cannot edit (unknown kind or layout)."""
    current = copy_entries(holder, v3)
    if current is None:
        return False
    if removed is not None:
        for name in list(current):
            if name == removed or name.startswith(f"{removed}/"):
                del current[name]
    for name, doc in entries.items():
        if v3 and isinstance(doc, dict) and doc.get("consolidated_metadata") is not None:
            doc = {**doc, "consolidated_metadata": dict(_EMPTY)}  # flattened, as zarr-python does
        current[name] = doc
    return True
