"""The empty-chunk test of a complex level whose fill value is 0: a C-contiguous chunk's bits
read at once (it read the real and imaginary parts as strided views: 1 MiB of complex64
zeros 133 us, complex128 100 us, now 13 us; no timing asserted here), still so that the
chunk reads back as written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

import ngio_async
from ngio_async.codecs._pipeline import all_equal

if TYPE_CHECKING:
    from pathlib import Path


def test_zero_fill_of_complex_chunks() -> None:
    zero = np.complex64(0)
    for dtype in ("complex64", "complex128"):
        assert all_equal(np.zeros((4, 4), dtype), zero)
        assert all_equal(np.zeros((8, 8), dtype)[:, ::2], zero)  # (strided: part by part)
        assert all_equal(np.zeros((), dtype), zero)
        for odd in (complex(-0.0, 0.0), complex(0.0, -0.0), 1e-45j, complex(np.nan, 0)):
            a = np.zeros((4, 4), dtype)
            a[3, 3] = odd
            assert not all_equal(a, zero), (dtype, odd)
            assert not all_equal(a.T, zero), (dtype, odd)  # (F order: part by part)


def test_zero_fill_of_chunks_cut_from_a_larger_array() -> None:
    """A write's chunks are views into the caller's array (rows of a larger one): the bits
    read in any layout (they were compared and sign-tested: 26 -> 225 us per MiB of float32
    views since the sign test came in; 23 us now)."""
    for dtype in ("bool", "uint16", "int32", "float32", "float64", "complex64", "complex128"):
        big = np.zeros((64, 64), dtype)
        zero = np.dtype(dtype).type(0)
        for view in (big[8:24, 8:24], big[::2, 16:48], big[:, ::3], big.T[4:10]):
            assert all_equal(view, zero), (dtype, view.strides)
        odd: list[Any] = [True] if dtype == "bool" else [1]
        if dtype.startswith("float"):
            odd += [-0.0, np.nan]
        if dtype.startswith("complex"):
            odd += [complex(-0.0, 0.0), complex(0.0, -0.0), complex(0.0, np.nan)]
        for value in odd:
            big[20, 40] = value
            for view in (big[16:32, 32:48], big[::2, 32:48], big[:, ::4], big.T[40:41]):
                assert not all_equal(view, zero), (dtype, value, view.strides)
            big[20, 40] = 0


def test_complex_chunks_of_signed_zeros_are_stored(tmp_path: Path) -> None:
    data = np.zeros((16, 16), np.complex64)
    data[8:, 8:] = complex(0.0, -0.0)  # one chunk of -0.0 imaginary parts
    with ngio_async.create(
        tmp_path / "c.zarr", shape=data.shape, dtype="complex64", axes="yx", chunks=(8, 8),
        shards=False,
    ) as ds:  # fmt: skip
        ds.write(data)
        got = ds.read()
    assert np.signbit(got.imag[8:, 8:]).all() and not np.signbit(got.imag[:8]).any()
    stored = [p for p in (tmp_path / "c.zarr" / "0").rglob("*") if p.name != "zarr.json"]
    assert len([p for p in stored if p.is_file()]) == 1  # the zero chunks left unstored
