"""ngio's ``parquet`` backend: ``table.parquet`` in the table group, one column per field (the
row names a column first, named by ``index_key``), as pyarrow writes it.

pyarrow (the ``tables`` extra) only turns the file's bytes into columns and back here: the bytes
go through the dataset's store. It is imported when a parquet table is first read or written.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MetadataError, UnsupportedError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = ["decode_parquet", "encode_parquet"]


def _pyarrow(table: str, doing: str) -> Any:
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError:
        raise UnsupportedError(
            f"table {table!r}: {doing} a parquet table needs pyarrow: "
            "pip install 'ngio_async[tables]'"
        ) from None
    return pa


def decode_parquet(raw: bytes, path: str, table: str) -> dict[str, NDArray[Any]]:
    """The columns of ``table.parquet`` (``path``): numbers and booleans as numpy arrays
    (a missing float as NaN), strings, categories and columns with missing integers or
    booleans as ``object`` arrays (a missing value as ``None``)."""
    pa = _pyarrow(table, "reading")
    try:
        data = pa.parquet.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise MetadataError(f"{path} is not a readable parquet file: {exc}", path) from exc
    return {str(name): _column(pa, data.column(i)) for i, name in enumerate(data.column_names)}


def _column(pa: Any, chunked: Any) -> NDArray[Any]:
    col = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    kind = col.type
    if pa.types.is_dictionary(kind):
        col, kind = col.dictionary_decode(), kind.value_type
    if pa.types.is_floating(kind):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and col.null_count == 0:
        return np.asarray(col.to_numpy(zero_copy_only=False))
    out = np.empty(len(col), dtype=object)
    out[:] = col.to_pylist()
    return out


def encode_parquet(columns: Mapping[str, Sequence[Any] | NDArray[Any]], table: str) -> bytes:
    """``table.parquet`` of ``columns`` (name -> 1-D values), as pyarrow writes it."""
    pa = _pyarrow(table, "writing")
    arrays = {}
    for name, values in columns.items():
        arr = np.asarray(values) if not isinstance(values, list) else None
        if arr is not None and arr.dtype != object:
            arrays[name] = pa.array(arr)
        else:
            cells = list(values)
            arrays[name] = pa.array([None if _nan(v) else v for v in cells])
    sink = pa.BufferOutputStream()
    pa.parquet.write_table(pa.table(arrays), sink)
    return bytes(sink.getvalue().to_pybytes())


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
