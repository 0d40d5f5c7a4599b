"""A chunk (or inner chunk) is left unstored only when every pixel is the fill value, so it
reads back as written. A complex level whose fill value has a NaN part took any pixel with a
NaN in either part for the fill (``nan+1j`` and ``5+nanj`` read back as ``nan+0j``), and a
float level whose fill is ``0.0`` dropped chunks of ``-0.0`` (read back as ``+0.0``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _bits(a: Any) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize("shards", [False, (2, 8, 8)], ids=["chunks", "shards"])
@pytest.mark.parametrize(
    ("dtype", "fill", "value"),
    [
        ("complex64", complex(np.nan, 0), complex(np.nan, 1)),
        ("complex64", complex(np.nan, 0), complex(5, np.nan)),
        ("complex128", complex(1, np.nan), complex(np.nan, np.nan)),
        ("complex128", complex(0, 0), complex(-0.0, 0)),
        ("float32", 0.0, -0.0),
        ("float64", -0.0, 0.0),
    ],
    ids=repr,
)
def test_a_chunk_unlike_the_fill_value_is_stored_and_reads_back(
    tmp_path: Path, shards: Any, dtype: str, fill: complex, value: complex
) -> None:
    root = tmp_path / "img.zarr"
    with ngio_async.create(
        root, shape=(2, 8, 8), dtype=dtype, axes="zyx", levels=1, chunks=(1, 4, 4),
        shards=shards, fill_value=fill,
    ) as ds:  # fmt: skip
        ds[0, :4, :4] = value  # one whole chunk
        ds[1, 4:, 2:6] = value  # parts of two
        want = np.full((2, 8, 8), fill, dtype=dtype)
        want[0, :4, :4] = value
        want[1, 4:, 2:6] = value
        assert _bits(ds[...]) == _bits(want)
        assert _bits(ds.levels[0][0, :4, :4]) == _bits(want[0, :4, :4])
    assert _bits(zarr.open_array(root / "0", mode="r")[...]) == _bits(want)
    with ngio_async.open(root) as ds:  # read-only: the blocking reads' own short way
        assert _bits(ds[0, :4, :4]) == _bits(want[0, :4, :4])


@pytest.mark.parametrize(
    ("dtype", "fill", "value"),
    [("complex64", complex(np.nan, 0), complex(np.nan, 0)), ("float32", np.nan, np.nan)],
    ids=repr,
)
def test_a_chunk_of_the_fill_value_is_not_stored(
    tmp_path: Path, dtype: str, fill: complex, value: complex
) -> None:
    root = tmp_path / "img.zarr"
    with ngio_async.create(
        root, shape=(1, 4, 4), dtype=dtype, axes="zyx", levels=1, chunks=(1, 4, 4),
        shards=False, fill_value=fill,
    ) as ds:  # fmt: skip
        ds[...] = value
        assert _bits(ds[...]) == _bits(np.full((1, 4, 4), fill, dtype=dtype))
    assert not [p for p in (root / "0").rglob("*") if p.is_file() and p.name != "zarr.json"]
