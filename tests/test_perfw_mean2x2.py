"""The 2x2 mean of 8/16-bit integers (the pyramid's usual step) equals the general kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ngio_async.engine import pyramid
from ngio_async.engine.pyramid import downsample

SMALL_INTS = ["uint8", "int8", "uint16", "int16"]


def general_mean(block: np.ndarray[Any, Any], factors: tuple[int, ...]) -> np.ndarray[Any, Any]:
    """The same reduction by the int64 path: the window total, rounded half to even."""
    out_shape = tuple(-(-n // f) for n, f in zip(block.shape, factors, strict=True))
    out = np.empty(out_shape, dtype=block.dtype)
    for src, dst, window in pyramid._pieces(block.shape, factors):
        win = pyramid._windowed(block[src], window)
        axes = tuple(range(1, win.ndim, 2))
        count = int(np.prod([win.shape[a] for a in axes]))
        total = win.sum(axis=axes, dtype=np.int64)
        out[dst] = pyramid._round_half_even_div(np.asarray(total), count)
    return out


@pytest.mark.parametrize("dtype", SMALL_INTS)
@pytest.mark.parametrize(
    "shape",
    [(6, 8), (7, 9), (1, 3, 34, 18), (2, 3, 5, 11, 13), (1, 2)],
)
def test_2x2_mean_equals_general_kernel(dtype: str, shape: tuple[int, ...]) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(sum(shape))
    block = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    block.reshape(-1)[:8] = info.max  # full-range sums: no overflow in the 32-bit rows
    block.reshape(-1)[8:16] = info.min
    factors = (1,) * (len(shape) - 2) + (2, 2)
    got = downsample(block, factors, "mean")
    assert got.dtype == block.dtype
    np.testing.assert_array_equal(got, general_mean(block, factors))


@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_2x2_mean_rounds_half_to_even(dtype: str) -> None:
    # window sums 4q + r for r = 0..3, around zero too: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0
    sums = [0, 1, 2, 3, 4, 5, 6, 7, 10, 14, 4 * int(np.iinfo(dtype).max) - 2]
    if dtype == "int16":
        sums += [-1, -2, -3, -5, -6, -10, -32768 * 4 + 2]
    block = np.zeros((2, 2 * len(sums)), dtype=dtype)
    for i, s in enumerate(sums):
        q, r = divmod(s, 4)
        block[:, 2 * i : 2 * i + 2] = q
        for k in range(r):  # r of the four pixels one higher
            block[k // 2, 2 * i + k % 2] += 1
    got = downsample(block, (2, 2), "mean")[0]
    want = [round(s / 4) for s in sums]  # Python rounds half to even
    assert got.tolist() == want


def test_2x2_mean_of_a_strided_block_and_many_row_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # a view with gaps (a region of a bigger array), its sums taken a few rows at a time
    monkeypatch.setattr(pyramid, "_ROWS_BYTES", 64)
    rng = np.random.default_rng(3)
    big = rng.integers(0, 65535, size=(3, 40, 50), endpoint=True, dtype="uint16")
    block = big[1:, 3:38, 5:46]
    got = downsample(block, (1, 2, 2), "mean")
    np.testing.assert_array_equal(got, general_mean(np.ascontiguousarray(block), (1, 2, 2)))


def test_other_windows_keep_the_general_kernel() -> None:
    # 2x2 on other axes than the last two, and 2x2x2: the kernel is not taken, same results
    rng = np.random.default_rng(5)
    block = rng.integers(0, 65535, size=(4, 6, 8), endpoint=True, dtype="uint16")
    for factors in [(2, 2, 1), (2, 1, 2), (2, 2, 2), (1, 4, 1)]:
        np.testing.assert_array_equal(
            downsample(block, factors, "mean"), general_mean(block, factors)
        )
