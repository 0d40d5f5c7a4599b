"""Audit of write(..., merge=f): functions that cannot give pixels, and errors they raise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def _image(tmp_path: Path) -> Any:
    ds = await ngio_async.create_async(
        tmp_path / "img.zarr", shape=(40, 40), dtype="uint16", axes="yx", chunks=(16, 16)
    )
    await ds.write(np.full((40, 40), 2, "uint16"))
    return ds


async def test_an_async_merge_function_is_refused_before_any_write(tmp_path: Path) -> None:
    """It was called in the worker threads: its coroutine (never awaited) refused as 'gave
    shape ()', per stored object."""

    async def later(stored: Any, patch: Any) -> Any:
        return stored

    ds = await _image(tmp_path)
    with pytest.raises(TypeError, match="merge function 'later' is an async function"):
        await ds.write(np.ones((40, 40), "uint16"), merge=later)
    assert (await ds.read() == 2).all()
    await ds.aclose()


async def test_a_merge_function_s_error_names_where_it_ran(tmp_path: Path) -> None:
    def lookup(stored: Any, patch: Any) -> Any:
        raise KeyError("no such class")

    ds = await _image(tmp_path)
    with pytest.raises(KeyError, match="no such class") as caught:
        await ds.write(np.ones((40, 40), "uint16"), merge=lookup)
    notes = getattr(caught.value, "__notes__", [])
    assert any("merge function 'lookup'" in n and "level '0' of" in n for n in notes), notes
    assert any(str(tmp_path / "img.zarr") in n for n in notes), notes
    await ds.aclose()


async def test_a_float32_sum_past_float32_is_refused_as_a_plain_write(tmp_path: Path) -> None:
    """It was added in float32 and stored as infinity (numpy's overflow warning only), where a
    plain write of the same values, and a float16 sum, are refused."""
    ds = await ngio_async.create_async(
        tmp_path / "f.zarr", shape=(8, 8), dtype="float32", axes="yx", chunks=(8, 8)
    )
    await ds.write(np.full((8, 8), 3e38, "float32"))
    with pytest.raises(ValueError, match=r"do not fit a float32 level.*would become infinite"):
        await ds.write(np.full((8, 8), 3e38, "float32"), merge="sum")
    assert (await ds.read() == np.float32(3e38)).all()  # nothing written
    small = np.full((8, 8), 1.5e-7, "float32")
    await ds.write(small, merge="sum")  # a sum that fits: numpy's float32 sum, exactly
    assert np.array_equal(await ds.read(), np.full((8, 8), 3e38, "float32") + small)
    await ds.write(np.full((8, 8), np.inf, "float32"))  # infinity stored stays infinity
    await ds.write(np.ones((8, 8), "float32"), merge="sum")
    assert np.isinf(await ds.read()).all()
    await ds.aclose()
