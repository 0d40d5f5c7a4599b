"""``downsample(mean)`` of a block of whole windows returns its kernel's array (no copy into a
second output): the same values as the piecewise path, a fresh array of the block's dtype."""

from __future__ import annotations

import numpy as np
import pytest

from ngio_async.engine import pyramid
from ngio_async.engine.pyramid import downsample


def piecewise(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """The mean window piece by piece into an output array (the path of uneven blocks)."""
    out_shape = tuple(-(-n // f) for n, f in zip(block.shape, factors, strict=True))
    out = np.empty(out_shape, dtype=block.dtype)
    for src, dst, window in pyramid._pieces(block.shape, factors):
        out[dst] = pyramid._mean_piece(pyramid._windowed(block[src], window), block.dtype)
    return out


@pytest.mark.parametrize("dtype", ["uint16", "int8", "int32", "uint64", "float32", "bool"])
@pytest.mark.parametrize("factors", [(1, 2, 2), (2, 2, 1), (1, 3, 2)])
def test_whole_windows_equal_the_piecewise_mean(dtype: str, factors: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    block = (rng.random((2, 12, 8)) * 200).astype(dtype)
    got = downsample(block, factors, "mean")
    want = piecewise(block, factors)
    assert got.dtype == block.dtype
    assert got.shape == tuple(n // f for n, f in zip(block.shape, factors, strict=True))
    np.testing.assert_array_equal(got, want)
    assert not np.shares_memory(got, block)
    assert got.flags.writeable and got.flags.c_contiguous
    got[...] = 0  # the caller's to keep: the source is untouched
    np.testing.assert_array_equal(downsample(block, factors, "mean"), want)
