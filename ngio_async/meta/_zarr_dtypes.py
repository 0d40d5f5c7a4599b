"""Zarr data types: the v3 names this library reads, v2's numpy dtype strings, and what a v2
``|O`` array holds (its vlen filter)."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from ngio_async._errors import MetadataError, UnsupportedError

#: The v3 core data types this library reads (numpy dtype names coincide with them).
V3_DATA_TYPES: Final = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)


#: The v3 data type of variable-length UTF-8 strings (zarr-python's ``str`` arrays; read as
#: numpy ``object`` arrays of ``str``, written with the ``vlen-utf8`` codec): tables hold them,
#: images never do.
V3_STRING: Final = "string"


#: The v2 filters of ``|O`` arrays (zarr-python's ``str``/``bytes`` arrays): the items they hold.
_V2_VLEN: Final[dict[str, type[str | bytes]]] = {"vlen-utf8": str, "vlen-bytes": bytes}


def _v2_items(filters: tuple[dict[str, Any], ...] | None) -> type[str | bytes] | None:
    for f in filters or ():
        found = _V2_VLEN.get(str(f.get("id")))
        if found is not None:
            return found
    return None


def _v2_dtype(dt: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(dt)
    except TypeError as exc:
        raise MetadataError(f"invalid dtype {dt!r}", "$.dtype") from exc
    if dtype.kind not in "biufcO" or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsupportedError(
            f"v2 dtype {dt!r} is not supported (numeric, bool and |O strings only; at $.dtype)"
        )
    return dtype


def _v3_name(dt: str) -> str | None:
    """The v3 name of a data type written another way (``Float32``, v2's ``<u2``), if any."""
    if dt.lower() in V3_DATA_TYPES:
        return dt.lower()
    try:
        name = np.dtype(dt).name
    except (TypeError, ValueError):
        return None
    return name if name in V3_DATA_TYPES else None


def _v3_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(object) if name == V3_STRING else np.dtype(name)
