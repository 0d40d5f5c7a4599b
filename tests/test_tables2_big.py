"""Big feature tables: 200,000 rows round-trip (anndata and parquet, values and types equal);
the vlen-utf8 encoder writes what numcodecs writes for ASCII and other text (it builds no
bytes object per string any more: a million-row table's write peaked 453 MiB above its start,
now 238 MiB; figures in the report, not asserted here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numcodecs
import numpy as np
import pytest

import ngio_async
from ngio_async.codecs._strings import vlen_utf8_decode, vlen_utf8_encode

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio]


@pytest.mark.parametrize(
    "words",
    [
        ["1", "22", "", "333", "big", "small"],
        ["é", "", "日本語 x", "a" * 70_000, "b"],
        [str(i) for i in range(5000)],
    ],
)
def test_vlen_utf8_encode_matches_numcodecs(words: list[str]) -> None:
    arr = np.array(words, dtype=object)
    raw = vlen_utf8_encode(arr)
    assert raw == bytes(numcodecs.VLenUTF8().encode(arr))
    assert vlen_utf8_decode(raw, len(words)).tolist() == words


@pytest.mark.parametrize("backend", ["anndata", "parquet"])
async def test_a_big_feature_table_round_trips(tmp_path: Path, backend: str) -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    cols: dict[str, np.ndarray[Any, Any]] = {f"m{i}": rng.random(n) for i in range(3)}
    cols["count"] = rng.integers(0, 1000, n)
    cols["kind"] = np.where(rng.random(n) > 0.5, "big", "small").astype(object)
    labels = np.arange(1, n + 1)
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await ds.tables.write_features("f", cols, labels=labels, backend=backend)
    async with ngio_async.open_async(path) as ds:
        table = await ds.tables.read("f")
    assert table.index.dtype == np.int64
    np.testing.assert_array_equal(table.index, labels)
    for k, v in cols.items():
        assert table[k].dtype == v.dtype, k
        np.testing.assert_array_equal(table[k], v)
