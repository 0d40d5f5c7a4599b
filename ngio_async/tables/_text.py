"""ngio's text backends (pure): ``json`` (the columns as lists in the attributes of the table's
``table`` subgroup) and ``csv`` (``table.csv`` in the table group, as pyarrow writes it)."""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from .._errors import MetadataError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from numpy.typing import NDArray

__all__ = [
    "column_from_values",
    "decode_csv",
    "decode_json",
    "encode_csv",
    "encode_json",
    "json_documents",
]


_NUMBERS = frozenset({int, float, type(None)})


def column_from_values(values: Sequence[Any]) -> NDArray[Any]:
    """A numpy column of JSON-like ``values``: bool, int64 (also no values; uint64 or ``object``
    beyond it), float64 (``None`` as NaN when the others are numbers) or ``object`` (strings;
    ``None`` kept).

    Decided by the set of the values' types (one pass in C, not a test per value)."""
    kinds = set(map(type, values))
    if kinds == {bool}:
        return np.asarray(values, dtype=bool)
    if kinds <= {int}:
        return _integers(values)
    if kinds <= _NUMBERS:
        return np.asarray(values, dtype=np.float64)  # None reads as NaN
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _integers(values: Sequence[int]) -> NDArray[Any]:
    """int64; beyond it uint64 (a uint64 column written), else ``object`` (Python ints)."""
    for dtype in (np.int64, np.uint64):
        try:
            return np.asarray(values, dtype=dtype)
        except OverflowError:
            pass
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def decode_json(attrs: Mapping[str, Any], path: str) -> dict[str, NDArray[Any]]:
    """The columns of a ``json`` table: its ``table`` group's attributes (column -> list)."""
    columns: dict[str, NDArray[Any]] = {}
    n: int | None = None
    for name, values in attrs.items():
        if not isinstance(values, list):
            raise MetadataError(f"column {name!r} is not a list", f"{path}$.{name}")
        if n is not None and len(values) != n:
            raise MetadataError(
                f"column {name!r} has {len(values)} rows, others {n}", f"{path}$.{name}"
            )
        n = len(values)
        columns[str(name)] = column_from_values(values)
    return columns


def encode_json(columns: Mapping[str, NDArray[Any]]) -> dict[str, list[Any]]:
    """The attributes of a ``json`` table's ``table`` group (NaN as ``None``)."""
    return {name: _json_values(np.asarray(col)) for name, col in columns.items()}


def _json_values(col: NDArray[Any]) -> list[Any]:
    """A column as a list, NaN as ``None`` (whole-column numpy steps, no test per value)."""
    if col.dtype.kind == "f":
        nan = np.isnan(col)
        if not nan.any():
            return col.tolist()  # type: ignore[no-any-return]
        cells = col.astype(object)
        cells[nan] = None
        return cells.tolist()  # type: ignore[no-any-return]
    values: list[Any] = col.tolist()
    if col.dtype == object and any(issubclass(k, float) for k in set(map(type, values))):
        return [None if _nan(v) else v for v in values]
    return values


def json_documents(data: Mapping[str, list[Any]], *, v3: bool) -> dict[str, bytes]:
    """The documents of a ``json`` table's ``table`` group, whose attributes are ``data``
    (column -> list, as :func:`encode_json` gives them): encoded by msgspec in one call, no
    walk over the values for non-finite floats; a column holding an infinity is written as
    :func:`~ngio_async.meta.write_document` writes it (bare ``Infinity``)."""
    if any(_infinite(v) for v in data.values()):
        from ._anndata import group_documents

        return group_documents(data, v3=v3)
    if v3:
        doc = {"attributes": data, "zarr_format": 3, "node_type": "group"}
        return {"zarr.json": msgspec.json.encode(doc)}
    return {".zgroup": b'{"zarr_format":2}', ".zattrs": msgspec.json.encode(data)}


def _infinite(values: list[Any]) -> bool:
    kinds = set(map(type, values))
    if not any(issubclass(k, float) for k in kinds):
        return False
    if kinds <= _NUMBERS:  # numbers and None (NaN): one numpy test
        return bool(np.isinf(np.asarray(values, dtype=np.float64)).any())
    return any(isinstance(v, float) and math.isinf(v) for v in values)


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


_TRUE = {"true": True, "false": False}


def _csv_cell(text: str) -> tuple[str, Any]:
    """The type (``int``, ``float``, ``bool``, ``str``) and value pyarrow infers for a cell."""
    low = text.lower()
    if low in _TRUE:
        return "bool", _TRUE[low]
    try:
        return "int", int(text)
    except ValueError:
        pass
    try:
        return "float", float(text)
    except ValueError:
        return "str", text


def _csv_column(cells: Sequence[str]) -> NDArray[Any]:
    typed = [None if c == "" else _csv_cell(c) for c in cells]
    kinds = {t[0] for t in typed if t is not None}
    nulls = any(t is None for t in typed)
    if kinds == {"bool"}:
        if not nulls:
            return np.asarray([t[1] for t in typed if t is not None], dtype=bool)
        out = np.empty(len(cells), dtype=object)  # booleans with a missing value, as pyarrow
        out[:] = [None if t is None else t[1] for t in typed]
        return out
    if kinds <= {"int"} and kinds and not nulls:
        return np.asarray([t[1] for t in typed if t is not None], dtype=np.int64)
    if kinds <= {"int", "float"} and kinds:
        return np.asarray([math.nan if t is None else float(t[1]) for t in typed])
    out = np.empty(len(cells), dtype=object)
    out[:] = list(cells)
    return out


def decode_csv(raw: bytes, path: str) -> dict[str, NDArray[Any]]:
    """The columns of a ``csv`` table (``table.csv``; types inferred as pyarrow does: bool,
    int64, float64, else strings)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path} is not UTF-8: {exc}", path) from exc
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise MetadataError(f"{path} has no header row", path)
    header, body = rows[0], [r for r in rows[1:] if r]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise MetadataError(
                f"{path}: row {i + 1} has {len(row)} cells, the header {len(header)}", path
            )
    return {name: _csv_column([r[j] for r in body]) for j, name in enumerate(header)}


def _csv_text(value: Any) -> str:
    if value is None or _nan(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # 4.0, not 4: read back as a float
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return str(value)


#: rows formatted at a time: the Python objects of one block live at once, not the table's
_CSV_BLOCK = 1 << 15


def encode_csv(columns: Mapping[str, Sequence[Any] | NDArray[Any]]) -> bytes:
    """A ``csv`` table's ``table.csv``, as pyarrow writes it (quoted header and strings);
    columns are lists or numpy arrays (NaN and ``None`` written as empty cells)."""
    names = list(columns)
    parts = [(",".join(_csv_text(str(k)) for k in names) + "\n").encode("utf-8")]
    rows = len(columns[names[0]]) if names else 0
    for start in range(0, rows, _CSV_BLOCK):
        stop = min(start + _CSV_BLOCK, rows)
        block = [_cells(columns[k], start, stop) for k in names]
        lines = [",".join(row) for row in zip(*block, strict=True)]
        parts.append(("\n".join(lines) + "\n").encode("utf-8"))
    return b"".join(parts)


def _cells(column: Sequence[Any] | NDArray[Any], start: int, stop: int) -> list[str]:
    values = column[start:stop]
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [_csv_text(v) for v in values]
