"""Writes cast data to the level's dtype as numpy does, but refuse values the dtype cannot
hold (README, "Writing"): complex data too. It was cast by numpy's own rules, so
``[300+0j]`` became 44 in an ``uint8`` level, ``[-1+0j]`` 255, ``[nan+0j]`` 0 in an ``int16``
one, imaginary parts were dropped, and ``1e300`` became ``inf`` in a ``complex64`` level
(where a ``float32`` level refuses it)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _level(tmp_path: Path, dtype: str) -> ngio_async.SyncDataset:
    return ngio_async.create(
        tmp_path / "img.zarr", shape=(2, 3), dtype=dtype, axes="yx", levels=1, fill_value=7
    )


@pytest.mark.parametrize(
    ("dtype", "data", "match"),
    [
        ("uint8", np.array([300 + 0j, 1]), "do not fit a uint8 level"),
        ("uint8", np.array([-1 + 0j, 1], dtype=np.complex64), "do not fit a uint8 level"),
        ("int16", np.array([np.nan + 0j, 1]), "NaN or infinity"),
        ("uint8", np.array([1 + 1j, 1]), "imaginary part"),
        ("float64", np.array([2.5 - 1e-9j, 1]), "imaginary part"),
        ("float32", np.array([1e300 + 0j, 1]), "would become infinite"),
        ("complex64", np.array([1e300 + 0j, 1]), "would become infinite"),
        ("complex64", np.array([1 + 1e300j, 1]), "would become infinite"),
        ("complex64", np.array([1e300, 1.0]), "would become infinite"),
        ("complex64", 1e300, "would become infinite"),
        ("complex64", 1e300j, "would become infinite"),
        ("complex64", [1, -1e300], "would become infinite"),
    ],
)
def test_complex_values_a_level_cannot_hold_are_refused(
    tmp_path: Path, dtype: str, data: Any, match: str
) -> None:
    with _level(tmp_path, dtype) as ds:
        for target in (ds, ds.levels[0]):
            with pytest.raises(ValueError, match=match) as info:
                target[0, :2] = data
            assert "level '0'" in str(info.value)
        with pytest.raises(ValueError, match=match):
            ds.oindex[[0], [1, 0]] = data
        with pytest.raises(ValueError, match=match):
            ds.vindex[[0, 1], [2, 0]] = data
        with pytest.raises(ValueError, match=match):
            ds.write(data, y=1, x=slice(1, 3))
        np.testing.assert_array_equal(ds[...], np.full((2, 3), 7, dtype=dtype))
    np.testing.assert_array_equal(
        zarr.open_array(tmp_path / "img.zarr" / "0", mode="r")[...], np.full((2, 3), 7, dtype)
    )


@pytest.mark.parametrize(
    ("dtype", "data", "want"),
    [
        ("uint8", np.array([255.5 + 0j, -0.5 - 0j]), [255, 0]),  # truncated, as numpy
        ("int64", np.array([-(2.0**63) + 0j, 3 + 0j], dtype=np.complex64), [-(2**63), 3]),
        ("float32", np.array([np.nan + 0j, -np.inf + 0j]), [np.nan, -np.inf]),
        ("float16", np.array([65504 + 0j, 1.5]), [65504, 1.5]),
        ("complex64", np.array([3e38 - 3e38j, np.nan + 1j]), [3e38 - 3e38j, np.nan + 1j]),
        ("complex64", np.array([np.inf, -3e38]), [np.inf, -3e38]),
        ("complex64", 2.5 - 1j, [2.5 - 1j, 2.5 - 1j]),
        ("complex128", np.array([1e300 + 1e-300j, 1j], dtype=np.complex128), [1e300 + 1e-300j, 1j]),
    ],
)
def test_complex_values_a_level_holds_are_written_without_warnings(
    tmp_path: Path, dtype: str, data: Any, want: list[Any]
) -> None:
    with _level(tmp_path, dtype) as ds, warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning came from the library's copy
        ds[0, :2] = data
        ds.vindex[[1, 1], [0, 1]] = data
        expected = np.full((2, 3), 7, dtype=dtype)
        expected[:, :2] = np.array(want, dtype=dtype)
        np.testing.assert_array_equal(ds[...], expected)


@pytest.mark.parametrize(
    ("dtype", "data"),
    [
        ("uint8", [np.int64(-1), 2]),
        ("uint8", (np.float32(-2), 1)),
        ("int8", [[np.int16(200), np.int16(3)]]),
        ("uint16", [np.array([70000, 1])]),
        ("int32", [np.float64(np.nan), 1]),
    ],
    ids=repr,
)
def test_lists_of_numpy_scalars_a_level_cannot_hold_are_refused(
    tmp_path: Path, dtype: str, data: Any
) -> None:
    """A list holding numpy scalars or arrays was cast unchecked ([np.int64(-1), 2] wrote
    [255, 2] into uint8), where the same values as an array, or as Python ints, are refused."""
    with _level(tmp_path, dtype) as ds:
        with pytest.raises(ValueError, match=f"a {dtype} level|not a {dtype} value"):
            ds[0, :2] = data
        with pytest.raises(ValueError, match=f"a {dtype} level|not a {dtype} value"):
            ds[0, :2] = np.array(data)
        ds[1, :2] = [np.int64(3), np.float64(2.5)]  # values it holds: cast as numpy casts
        want = np.full((2, 3), 7, dtype=dtype)
        want[1, :2] = [3, 2]
        np.testing.assert_array_equal(ds[...], want)
