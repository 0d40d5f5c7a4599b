"""ngio's ``parquet`` backend: ``table.parquet`` in the table group, one column per field (the
row names a column first, named by ``index_key``), as pyarrow writes it.

pyarrow (the ``tables`` extra) only turns the file's bytes into columns and back here: the bytes
go through the dataset's store. It is imported when a parquet table is first read or written.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import MetadataError, UnsupportedError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = ["arrow_installed", "decode_csv_arrow", "decode_parquet", "encode_parquet"]


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


def decode_parquet(
    raw: bytes | memoryview, path: str, table: str
) -> tuple[dict[str, NDArray[Any]], dict[str, str]]:
    """The columns of ``table.parquet`` (``path``): numbers and booleans as numpy arrays
    (a missing float as NaN), strings, categories and columns with missing integers or
    booleans as ``object`` arrays (a missing value as ``None``); and the pandas dtype of the
    columns pyarrow gives pandas another one than numpy's (``category``: dictionaries;
    ``Int64``, ``boolean``, ...: as the file's pandas metadata says; ``float64``: integers
    with missing values and no such metadata)."""
    pa = _pyarrow(table, "reading")
    try:
        data = pa.parquet.read_table(pa.BufferReader(raw))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise MetadataError(f"{path} is not a readable parquet file: {exc}", path) from exc
    columns, dtypes = {}, {}
    said = _pandas_dtypes(data.schema)
    for i, name in enumerate(data.column_names):
        col = data.column(i)
        columns[str(name)] = _column(pa, col)
        dtype = said.get(str(name))
        if pa.types.is_dictionary(col.type):
            dtype = "category"
        elif dtype is None and pa.types.is_integer(col.type) and col.null_count:
            dtype = "float64"
        if dtype is not None:
            dtypes[str(name)] = dtype
    return columns, dtypes


#: the pandas extension dtypes the pandas metadata of a parquet file may name
_EXTENSION = frozenset(
    {"boolean", "string", *(f"{u}Int{b}" for u in ("", "U") for b in (8, 16, 32, 64))}
)


def _pandas_dtypes(schema: Any) -> dict[str, str]:
    """``{column: dtype}`` of the columns the file's pandas metadata gives an extension dtype."""
    try:
        meta = schema.pandas_metadata or {}
    except ValueError:  # not JSON: ignored, as pyarrow's to_pandas would fail on it
        return {}
    out = {}
    for col in meta.get("columns", []) if isinstance(meta, dict) else []:
        if isinstance(col, dict) and col.get("numpy_type") in _EXTENSION:
            out[str(col.get("name"))] = str(col["numpy_type"])
    return out


def _column(pa: Any, chunked: Any) -> NDArray[Any]:
    col = chunked.combine_chunks() if chunked.num_chunks != 1 else chunked.chunk(0)
    kind = col.type
    if pa.types.is_dictionary(kind):
        col, kind = col.dictionary_decode(), kind.value_type
    if pa.types.is_floating(kind):  # float32 stays float32, as pandas gets it; missing: NaN
        return np.asarray(col.to_numpy(zero_copy_only=False))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        if col.null_count == 0:
            return np.asarray(col.to_numpy(zero_copy_only=False))
        out = np.empty(len(col), dtype=object)  # a missing value as None, not NaN
        out[:] = col.to_pylist()
        return out
    values: NDArray[Any] = np.asarray(col.to_numpy(zero_copy_only=False))  # strings, ...
    return values if values.dtype == object else values.astype(object)


def arrow_installed() -> bool:
    """Whether pyarrow can be imported (the ``tables`` extra)."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def decode_csv_arrow(raw: bytes | memoryview, path: str, table: str) -> dict[str, NDArray[Any]]:
    """The columns of ``table.csv`` as pyarrow reads it (what ngio does): its type inference,
    its null cells; integers with a missing value as float64 with NaN, as pandas gets them.
    A fraction of the pure reader's time and memory on big tables."""
    pa = _pyarrow(table, "reading")
    import pyarrow.csv  # type: ignore[import-untyped]

    try:
        data = pyarrow.csv.read_csv(pa.BufferReader(raw))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise MetadataError(f"{path} is not a readable csv table: {exc}", path) from exc
    columns = {}
    for i, name in enumerate(data.column_names):
        col = data.column(i)
        if pa.types.is_integer(col.type) and col.null_count:
            columns[str(name)] = np.asarray(col.to_numpy(zero_copy_only=False), np.float64)
        else:
            columns[str(name)] = _column(pa, col)
    return columns


def encode_parquet(
    columns: Mapping[str, Sequence[Any] | NDArray[Any]],
    table: str,
    dtypes: Mapping[str, str] | None = None,
) -> bytes:
    """``table.parquet`` of ``columns`` (name -> 1-D values), as pyarrow writes it; columns
    whose pandas dtype (``dtypes``) is ``category`` dictionary-encoded, and the nullable ones
    (``Int64``, ``boolean``, ...) named in the file's pandas metadata, as pandas writes them."""
    pa = _pyarrow(table, "writing")
    arrays = {}
    for name, values in columns.items():
        arr = np.asarray(values) if not isinstance(values, list) else None
        if arr is not None and arr.dtype != object:
            arrays[name] = pa.array(arr)
        else:
            cells = list(values)
            arrays[name] = pa.array([None if _nan(v) else v for v in cells])
        dtype = (dtypes or {}).get(name)
        if dtype == "category":
            arrays[name] = arrays[name].dictionary_encode()
        elif dtype is not None and "Int" in dtype:  # Int32: int32 in the file
            arrays[name] = arrays[name].cast(pa.from_numpy_dtype(np.dtype(dtype.lower())))
    data = pa.table(arrays)
    extension = [(k, d) for k, d in (dtypes or {}).items() if d in _EXTENSION and k in arrays]
    if extension:  # as pandas notes them: pyarrow's to_pandas (ngio's reader) gives them back
        columns_meta = [
            {"name": k, "field_name": k, "pandas_type": d.lower(), "numpy_type": d}
            for k, d in extension
        ]
        meta = {"index_columns": [], "column_indexes": [], "columns": columns_meta}
        data = data.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})
    sink = pa.BufferOutputStream()
    pa.parquet.write_table(data, sink)
    return bytes(sink.getvalue().to_pybytes())


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)
