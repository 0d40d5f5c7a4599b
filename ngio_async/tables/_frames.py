"""A :class:`~ngio_async.tables.Table` as a polars frame or an AnnData object, as ngio 1.1.3's
``table.lazy_frame`` and ``table.anndata`` give the same table. polars and anndata (and pandas,
which both go through) are optional: imported on first use, a missing one an ``ImportError``
naming the extra that installs it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._model import Table

__all__ = ["as_anndata", "as_polars"]


def _optional(module: str, what: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs {module}: pip install 'ngio_async[{extra}]'") from exc


def as_polars(table: Table, *, lazy: bool) -> Any:
    """``table`` as a polars DataFrame (``lazy``: a LazyFrame): its index as the first column,
    named ``index_key`` (an index without a name left out), the columns with their dtypes."""
    _optional("pandas", "Table.to_polars", "polars")
    pl = _optional("polars", "Table.to_polars", "polars")
    frame = table.to_pandas()
    if frame.index.name is not None:
        frame = frame.reset_index()
    out = pl.from_pandas(frame)
    return out.lazy() if lazy else out


def as_anndata(table: Table) -> Any:
    """``table`` as AnnData: read from AnnData, its ``X`` and ``obs`` as stored; else number
    columns in ``X`` (float64 when their types differ) and the string, then integer ones in
    ``obs``, as ngio converts a DataFrame. Row names as strings, named ``index_key``."""
    _optional("pandas", "Table.to_anndata", "anndata")
    ad = _optional("anndata", "Table.to_anndata", "anndata")
    frame = table.to_pandas()
    frame.index = frame.index.astype(str)
    if table.x_columns is not None:
        numbers = [c for c in table.x_columns if c in frame.columns]
        obs = frame[[c for c in frame.columns if c not in numbers]]
    else:
        kinds = {c: _kind(table.name, c, frame[c]) for c in frame.columns}
        numbers = [c for c, k in kinds.items() if k == "number"]
        obs = frame[
            [c for c, k in kinds.items() if k == "str"]
            + [c for c, k in kinds.items() if k == "int"]
        ]
    x = frame[numbers]
    if x.dtypes.nunique() > 1:
        x = x.astype("float64")
    if not numbers:
        return ad.AnnData(X=np.zeros((len(frame), 0), dtype="float64"), obs=obs)
    return ad.AnnData(X=x, obs=obs)


def _kind(table: str, name: str, column: Any) -> str:
    """``"int"``, ``"number"`` or ``"str"``: where ngio puts a column of a DataFrame it turns
    into AnnData (``obs``, ``X``, ``obs``); other values a ``ValueError`` naming the column."""
    from pandas.api import types  # type: ignore[import-untyped]

    if types.is_integer_dtype(column):
        return "int"
    if types.is_numeric_dtype(column):
        return "number"
    present = column.dropna()
    if all(isinstance(v, str) for v in present):
        return "str"
    raise ValueError(
        f"table {table!r}: column {name!r} ({column.dtype}) is neither strings nor numbers: "
        "AnnData holds only those"
    )
