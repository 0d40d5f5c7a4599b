"""``Table.to_pandas()`` dtypes as anndata and ngio 1.1.3 give them: categorical, nullable
integer and boolean, strings, for tables ngio writes (anndata and parquet backends) and for
tables written here from a pandas DataFrame or copied from a read table (NGFF 0.4 and 0.5);
a table with missing values in a categorical or nullable column writes (it was refused)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _frame() -> Any:
    import pandas as pd  # type: ignore[import-untyped]

    return pd.DataFrame(
        {
            "label": [1, 2, 3, 4],
            "cat": pd.Categorical(["a", "b", "a", None]),
            "nint": pd.array([1, None, 3, 4], dtype="Int64"),
            "nbool": pd.array([True, False, None, True], dtype="boolean"),
            "s": ["x", "y", "é z", "w"],
            "f": [1.0, 2.0, np.nan, 4.0],
            "i": np.array([1, 2, 3, 4], np.int16),
        }
    ).set_index("label")


def _dtypes(frame: Any) -> dict[str, str]:
    return {k: str(v) for k, v in frame.dtypes.items()}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_to_pandas_dtypes_equal_ngios(tmp_path: Path, version: str) -> None:
    import ngio
    import pandas as pd
    from ngio.tables import FeatureTable

    path = tmp_path / "img.zarr"
    ngio.create_ome_zarr_from_array(
        str(path),
        np.zeros((1, 8, 8), np.uint16),
        pixelsize=0.5,
        levels=1,
        axes_names="zyx",
        ngff_version=version,  # type: ignore[arg-type]
    )
    c: Any = ngio.open_ome_zarr_container(str(path))
    df = _frame()
    for be in ("anndata", "parquet", "json", "csv"):
        c.add_table(f"ngio_{be}", FeatureTable(df), backend=be)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write(
            "direct", df, index=list(df.index), index_key="label", type="feature_table"
        )
        direct = await ds.tables.read("direct")
        assert direct.dtypes == {"cat": "category", "nint": "Int64", "nbool": "boolean"}
        assert direct["nint"].tolist() == [1, None, 3, 4]
        for be in ("anndata", "parquet", "json", "csv"):
            await ds.tables.write(f"copy_{be}", direct, backend=be)
        names = await ds.tables.names()
        ours = {n: (await ds.tables.read(n)).to_pandas() for n in names}
    for name in names:
        theirs = c.get_table(name).dataframe
        assert _dtypes(ours[name]) == _dtypes(theirs), name
        pd.testing.assert_frame_equal(ours[name], theirs, check_like=True, obj=name)
    # what anndata and ngio give for the AnnData layout: categorical, Int64, boolean
    for name in ("ngio_anndata", "direct", "copy_anndata"):
        want = {"cat": "category", "nint": "Int64", "i": "int16", "s": "object"}
        assert {k: v for k, v in _dtypes(ours[name]).items() if k in want} == want, name
    import anndata  # type: ignore[import-untyped]

    obs = anndata.read_zarr(str(path / "tables" / "direct")).obs
    assert str(obs["cat"].dtype) == "category" and str(obs["nint"].dtype) == "Int64"
    assert str(obs["nbool"].dtype) == "boolean"
    # a parquet categorical is a dictionary column, nullable columns are named in the file's
    # pandas metadata: ngio's pandas sees them as ngio's own parquet writes give them
    assert _dtypes(ours["copy_parquet"]) == _dtypes(ours["ngio_parquet"])
    assert _dtypes(ours["copy_parquet"])["nint"] == "Int64"


async def test_concatenated_plate_tables_keep_common_dtypes(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "plate.zarr"
    async with ngio_async.create_plate_async(path, rows=["A"], columns=["1", "2"]) as plate:
        for col, cats in (("1", ["a", "b", "a", None]), ("2", ["a", "b", "b", "b"])):
            async with await plate.add_image("A", col, shape=(4, 4), dtype="uint8", levels=1) as ds:
                df = _frame().assign(cat=pd.Categorical(cats))
                await ds.tables.write("t", df, index=list(df.index), index_key="label")
                await ds.tables.write("u", df.assign(cat=pd.Categorical(["q"] * 4)))
        table = (await plate.tables.concatenate("t")).to_pandas()
        same = (await plate.tables.concatenate("u")).to_pandas()
    assert str(table["nint"].dtype) == "Int64" and str(table["nbool"].dtype) == "boolean"
    assert str(table["cat"].dtype) == "category"  # the same categories in both: kept
    assert str(same["cat"].dtype) == "category"
    assert table["nint"].isna().tolist() == [False, True, False, False] * 2


async def test_parquet_nullable_widths_round_trip(tmp_path: Path) -> None:
    import ngio
    import pandas as pd

    df = pd.DataFrame(
        {
            "i32": pd.array([1, None], dtype="Int32"),
            "u8": pd.array([None, 7], dtype="UInt8"),
            "b": pd.array([None, True], dtype="boolean"),
        }
    )
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(4, 4), dtype="uint8", levels=1) as ds:
        await ds.tables.write("t", df, backend="parquet")
        ours = (await ds.tables.read("t")).to_pandas()
    c: Any = ngio.open_ome_zarr_container(str(path))
    want = {"i32": "Int32", "u8": "UInt8", "b": "boolean"}
    assert _dtypes(ours) == _dtypes(c.get_table("t").dataframe) == want
    assert ours["u8"].tolist()[1] == 7 and ours["i32"].isna().tolist() == [False, True]


async def test_a_dataframe_writes_with_its_named_index(tmp_path: Path) -> None:
    """``write(name, df)`` of a DataFrame indexed by ``label`` keeps that index (it was
    dropped: the rows came back named 0..n-1 and ``label`` was lost)."""
    import ngio
    import pandas as pd

    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(4, 4), dtype="uint8", levels=1) as ds:
        df = _frame()
        await ds.tables.write("indexed", df, type="feature_table")
        await ds.tables.write("plain", df.reset_index())  # an unnamed index: rows 0..n-1
        indexed = await ds.tables.read("indexed")
        plain = await ds.tables.read("plain")
    assert indexed.index_key == "label" and indexed.index.tolist() == [1, 2, 3, 4]
    assert indexed.attrs["index_type"] == "int" and "label" not in indexed.columns
    pd.testing.assert_frame_equal(indexed.to_pandas(), df, check_like=True)
    assert plain.index_key is None and plain["label"].tolist() == [1, 2, 3, 4]
    c: Any = ngio.open_ome_zarr_container(str(path))
    assert plain.index.tolist() == c.get_table("plain").dataframe.index.tolist() == list("0123")
    pd.testing.assert_frame_equal(c.get_table("indexed").dataframe, df, check_like=True)
