"""Repeated strings written as categorical columns take anndata's category order (natsort's)
for any string: a column holding a digit such as '²' raised ValueError ("invalid literal for
int()", naming no column) and wrote no table; '02' and '2' (equal numbers) came in set order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore")


def test_categories_in_anndata_order_for_any_string(tmp_path: Path) -> None:
    anndata = pytest.importorskip("anndata")
    natsort = pytest.importorskip("natsort")
    values = ["b²", "b2", "b10", "2", "02", "٣", "x", "b²", "02", "x"]
    ds = ngio_async.create(tmp_path / "img.zarr", shape=(8, 8), dtype="uint8")
    with ds:
        ds.tables.write_features(
            "f",
            {"kind": np.asarray(values, dtype=object), "area": np.arange(10.0)},
            labels=np.arange(1, 11),
        )
    obs = anndata.read_zarr(tmp_path / "img.zarr" / "tables" / "f").obs
    assert list(obs["kind"].cat.categories) == natsort.natsorted(sorted(set(values)))
    assert obs["kind"].tolist() == values


def test_pandas_string_columns_that_repeat_are_categorical(tmp_path: Path) -> None:
    """anndata makes a pandas "string" column categorical too when its values repeat (ngio
    writes it so); it was stored as a string array."""
    anndata = pytest.importorskip("anndata")
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(
        {
            "label": [1, 2, 3, 4],
            "kind": pd.array(["b", "a", "b", "a"], dtype="string"),
            "name": pd.array(["p", "q", "r", "s"], dtype="string"),
        }
    ).set_index("label")
    ds = ngio_async.create(tmp_path / "img.zarr", shape=(8, 8), dtype="uint8")
    with ds:
        ds.tables.write_features("f", df)
    mine = anndata.read_zarr(tmp_path / "img.zarr" / "tables" / "f").obs
    assert str(mine["kind"].dtype) == "category"  # anndata's strings_to_categoricals
    assert mine["name"].tolist() == ["p", "q", "r", "s"]
    assert list(mine["kind"].cat.categories) == ["a", "b"]
    assert mine["kind"].tolist() == ["b", "a", "b", "a"]
