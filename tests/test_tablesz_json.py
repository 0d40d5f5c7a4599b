"""The json table backend, now built columnwise: the same documents and column types as the
value-by-value code gave (NaN as null, an infinity bare, the types JSON values read as)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.meta import read_document, write_document
from ngio_async.tables._text import column_from_values, encode_json, json_documents

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([True, False], "bool", [True, False]),
        ([1, 2, -3], "int64", [1, 2, -3]),
        ([], "int64", []),
        ([1, 2.5, None], "float64", [1.0, 2.5, math.nan]),
        ([None, None], "float64", [math.nan, math.nan]),
        ([True, None], "object", [True, None]),
        ([1, True], "object", [1, True]),
        (["a", None, "b"], "object", ["a", None, "b"]),
        (["a", 1], "object", ["a", 1]),
    ],
)
def test_json_values_read_as_the_same_types(
    values: list[Any], dtype: str, expected: list[Any]
) -> None:
    col = column_from_values(values)
    assert col.dtype == np.dtype(dtype)
    if col.dtype.kind == "f":
        np.testing.assert_array_equal(col, np.asarray(expected))
    else:
        assert col.tolist() == expected
        assert [type(v) for v in col.tolist()] == [type(v) for v in expected]


def test_json_documents_equal_the_generic_writer() -> None:
    columns = {
        "f": np.array([1.5, np.nan, -0.0]),
        "i": np.array([1, 2, 3]),
        "b": np.array([True, False, True]),
        "s": np.array(["a", None, "é"], dtype=object),
        "o": np.array([1.0, float("nan"), "x"], dtype=object),
    }
    data = encode_json(columns)
    assert data["f"] == [1.5, None, -0.0] and data["o"] == [1.0, None, "x"]
    for v3 in (False, True):
        docs = json_documents(data, v3=v3)
        if v3:
            doc = {"attributes": data, "zarr_format": 3, "node_type": "group"}
            assert docs == {"zarr.json": write_document(doc)}
        else:
            assert docs == {".zgroup": b'{"zarr_format":2}', ".zattrs": write_document(data)}
    inf = encode_json({"f": np.array([1.0, np.inf, np.nan])})
    raw = json_documents(inf, v3=False)[".zattrs"]
    assert b"Infinity" in raw
    assert read_document(raw) == {"f": [1.0, math.inf, None]}


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_json_table_round_trips(tmp_path: Path, version: str) -> None:
    cols: dict[str, Any] = {
        "m": np.array([0.5, np.nan, np.inf, 2.0]),
        "n": np.arange(4),
        "ok": np.array([True, False, True, True]),
        "name": np.array(["a", "b", None, "d"], dtype=object),
    }
    path = tmp_path / "j.zarr"
    async with ngio_async.create_async(
        path,
        shape=(8, 8),
        dtype="uint8",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.tables.write_features("j", cols, labels=np.arange(1, 5), backend="json")
    async with ngio_async.open_async(path) as ds:
        table = await ds.tables.read("j")
    np.testing.assert_array_equal(table["m"], cols["m"])
    assert table["n"].dtype == np.int64 and table["ok"].dtype == bool
    assert table["name"].tolist() == ["a", "b", None, "d"]
    np.testing.assert_array_equal(table.index, np.arange(1, 5))
