"""Names of child nodes (label images, tables): what a group may hold under one key (pure)."""

from __future__ import annotations

__all__ = ["check_child_name"]

_METADATA_KEYS = frozenset({".zattrs", ".zgroup", ".zarray", ".zmetadata", "zarr.json"})


def check_child_name(name: str, what: str, *, creating: bool = False) -> None:
    """Refuse a ``what`` name (``"label"``, ``"table"``) that is no single child node of its
    group; ``creating`` also refuses what would break the hierarchy or other stores: zarr
    metadata keys (``labels/.zattrs`` made a directory hid the listing), zarr v3's reserved
    ``__`` prefix, control characters, backslashes (a separator on Windows) and leading or
    trailing whitespace.

    :raises ValueError: naming the name and what it is.
    """
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        raise ValueError(f"invalid {what} name {name!r}")
    if creating and (
        name in _METADATA_KEYS
        or name.startswith("__")
        or "\\" in name
        or name != name.strip()
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    ):
        raise ValueError(
            f"invalid {what} name {name!r}: zarr metadata keys, a leading '__', control "
            "characters, backslashes and leading or trailing whitespace are refused"
        )
