"""``write(..., merge="sum")`` of integers is exact up to 64 bits, signed or not (numpy adds
``uint64`` and ``int64`` as ``float64``, rounded past 2**53, and wraps past 64 bits), and a sum
the data type cannot hold is refused with the error every write gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.images._merge import SumOutOfRange, _sum

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

U64_MAX = 2**64 - 1


async def _label(tmp_path: Path, dtype: str, stored: list[int]) -> ngio_async.Dataset:
    ds = await ngio_async.create_async(
        tmp_path / f"{dtype}.zarr", shape=(1, len(stored)), dtype=dtype, axes="yx",
        chunks=(1, len(stored)), levels=1,
    )  # fmt: skip
    await ds.write(np.array([stored], dtype=dtype))
    return ds


async def test_a_uint64_sum_with_an_int64_patch_is_exact(tmp_path: Path) -> None:
    stored = [2**60 + 1, U64_MAX - 10, 2**53 + 1, 7]
    ds = await _label(tmp_path, "uint64", stored)
    patch = [3, 10, -(2**53), -7]
    await ds.write(np.array([patch], np.int64), merge="sum")
    got = (await ds.read()).tolist()[0]
    await ds.aclose()
    assert got == [s + p for s, p in zip(stored, patch, strict=True)]


async def test_an_int64_sum_with_a_uint64_patch_is_exact(tmp_path: Path) -> None:
    stored = [-5, -(2**63), 2**62]
    ds = await _label(tmp_path, "int64", stored)
    patch = [2**63 + 2, 2**63 - 1 + 2**63, 2**62 - 1]  # sums: 2**63 - 3, 2**63 - 1, 2**63 - 1
    await ds.write(np.array([patch], np.uint64), merge="sum")
    got = (await ds.read()).tolist()[0]
    await ds.aclose()
    assert got == [s + p for s, p in zip(stored, patch, strict=True)]


@pytest.mark.parametrize(
    ("dtype", "stored", "patch", "values"),
    [
        ("uint64", [U64_MAX - 1, 5], ([3, 0], np.int64), f"5..{U64_MAX + 2}"),
        ("uint64", [U64_MAX, 5], ([U64_MAX, 0], np.uint64), f"5..{2 * U64_MAX}"),
        ("uint64", [4, 5], ([-6, -(2**63)], np.int64), f"{-(2**63) + 5}..-2"),
        ("int64", [2**63 - 1, 0], ([1, 0], np.int64), f"0..{2**63}"),
        ("int64", [-(2**63), 3], ([2**63 + 2, U64_MAX], np.uint64), f"2..{2**64 + 2}"),
    ],
)
async def test_a_sum_past_the_data_type_is_refused_as_every_write_refuses_it(
    tmp_path: Path,
    dtype: str,
    stored: list[int],
    patch: tuple[list[int], type[np.integer]],
    values: str,
) -> None:
    ds = await _label(tmp_path, dtype, stored)
    numbers, patch_dtype = patch
    info = np.iinfo(dtype)
    message = (
        f"data values {values} do not fit a {dtype} level ({info.min}..{info.max}; level "
        "'0'): cast them yourself if wrapping is meant"
    )
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        await ds.write(np.array([numbers], dtype=patch_dtype), merge="sum")
    assert (await ds.read()).tolist()[0] == stored  # nothing written
    await ds.aclose()


async def test_the_refusal_reads_as_a_plain_write_s(tmp_path: Path) -> None:
    ds = await _label(tmp_path, "uint16", [65000])
    with pytest.raises(ValueError) as merged:
        await ds.write(np.array([[1000]], np.uint16), merge="sum")
    with pytest.raises(ValueError) as plain:
        await ds.write(np.array([[66000]], np.int64))
    await ds.aclose()
    assert str(merged.value) == str(plain.value)


KINDS = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]


@pytest.mark.parametrize("stored_dtype", KINDS)
def test_sum_is_python_s_integer_sum_or_refused(stored_dtype: str) -> None:
    rng = np.random.default_rng(KINDS.index(stored_dtype))
    for patch_dtype in [*KINDS, "bool"]:

        def draw(dtype: str, n: int = 64) -> np.ndarray:
            if dtype == "bool":
                return rng.integers(0, 2, n).astype(bool)
            info = np.iinfo(dtype)
            edges = np.array([info.min, info.max, 0, 1, info.max - 1], dtype=dtype)
            some = rng.integers(info.min, info.max, n - edges.size, dtype=dtype, endpoint=True)
            return np.concatenate([edges, some])

        stored, patch = draw(stored_dtype), draw(patch_dtype)
        exact = [int(s) + int(p) for s, p in zip(stored.tolist(), patch.tolist(), strict=True)]
        info = np.iinfo(stored_dtype)
        fits = [info.min <= v <= info.max for v in exact]
        try:
            got = _sum(stored, patch)
        except SumOutOfRange as exc:
            assert not all(fits)
            assert (exc.low, exc.high) == (min(exact), max(exact))
        else:
            assert all(fits) and got.dtype == stored.dtype
            assert got.tolist() == exact
        kept = np.array(fits)  # the sums that fit: exact, each
        if kept.any():
            got = _sum(stored[kept], patch[kept])
            assert got.tolist() == [v for v, f in zip(exact, fits, strict=True) if f]
        assert _sum(stored[2:3].reshape(()), patch[2:3].reshape(())).shape == ()  # 0 + 0
