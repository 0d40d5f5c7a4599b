"""A json table with integers beyond int64 (a uint64 column holding 2**64 - 1) reads back as
written (it was written, then every read raised 'Python int too large to convert to C long');
string columns with non-ASCII, empty, missing and very long cells and a string index come back
from every backend that keeps them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_json_integers_beyond_int64(tmp_path: Path, version: str) -> None:
    big = np.array([2**64 - 1, 0, 5], dtype=np.uint64)
    async with ngio_async.create_async(
        tmp_path / "img.zarr",
        shape=(8, 8),
        dtype="uint8",
        axes="yx",
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.tables.write("t", {"big": big, "small": np.arange(3)}, backend="json")
        table = await ds.tables.read("t")
        assert table.columns["big"].dtype == np.uint64
        assert table.columns["big"].tolist() == big.tolist()
        assert table.columns["small"].dtype == np.int64


@pytest.mark.parametrize("backend", ["json", "anndata"])
async def test_strings_and_a_string_index(tmp_path: Path, backend: str) -> None:
    text = np.array(["ä😀", "", "é" * 100_000 + "末", None], dtype=object)
    index = ["ü1", "", "3" * 5000, "末尾"]
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(8, 8), dtype="uint8", axes="yx"
    ) as ds:
        await ds.tables.write("t", {"s": text}, index=index, index_key="name", backend=backend)
        table = await ds.tables.read("t")
        assert list(table.index) == index
        assert table.columns["s"].tolist() == text.tolist()


@pytest.mark.parametrize("backend", ["anndata", "json", "csv"])
async def test_text_that_is_no_utf8_is_refused_naming_table_and_column(
    tmp_path: Path, backend: str
) -> None:
    """A lone surrogate cannot be UTF-8: refused naming the table, the column and the row
    (it raised the codec's bare error, or named chunk 'c/0[0]'), and nothing is written."""
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(8, 8), dtype="uint8", axes="yx"
    ) as ds:
        text = np.array(["ok", "bad\ud800"], dtype=object)
        with pytest.raises(ValueError, match=r"table 't': column 's' row 1 .*UTF-8"):
            await ds.tables.write("t", {"s": text}, backend=backend)
        with pytest.raises(ValueError, match=r"table 't': the index row 0 .*UTF-8"):
            await ds.tables.write(
                "t", {"n": np.arange(2)}, index=["\udc80", "b"], index_key="id", backend=backend
            )
        assert await ds.tables.names() == []
        assert not (tmp_path / "img.zarr" / "tables" / "t").exists()
