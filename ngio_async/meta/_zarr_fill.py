"""Zarr fill values: the JSON forms (numbers, ``NaN``/``Infinity``, hex bit patterns, ``[re, im]``,
v2's ``null``, strings) read as a numpy scalar of the array's dtype, checked against it."""

from __future__ import annotations

import math
from typing import Any, Final, TypeAlias

import numpy as np

from ngio_async._errors import MetadataError, UnsupportedError

FillValue: TypeAlias = bool | int | float | str | list[int | float | str] | None


_FLOAT_NAMES: Final = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _parse_float(value: object, dtype: np.dtype[Any], path: str) -> float | np.generic:
    if isinstance(value, bool):
        raise MetadataError(f"expected a number for {dtype.name} fill value, got {value!r}", path)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in _FLOAT_NAMES:
            return _FLOAT_NAMES[value]
        if value.startswith("0x"):
            try:
                bits = int(value, 16)
            except ValueError:
                raise MetadataError(f"invalid hex fill value {value!r}", path) from None
            uint = np.dtype(f"u{dtype.itemsize}")
            if len(value) - 2 != 2 * dtype.itemsize:
                raise MetadataError(
                    f"hex fill value {value!r} needs {2 * dtype.itemsize} hex digits", path
                )
            return float(np.array([bits], dtype=uint).view(dtype.newbyteorder("="))[0])
    raise MetadataError(f"invalid {dtype.name} fill value {value!r}", path)


def _parse_fill(
    value: object,
    dtype: np.dtype[Any],
    path: str,
    *,
    v3: bool,
    items: type[str | bytes] | None = str,
) -> np.generic:
    kind = dtype.kind
    if kind == "O":
        return _parse_vlen_fill(value, path, v3=v3, items=items)  # type: ignore[no-any-return]
    if value is None:
        if v3:
            raise MetadataError("fill_value must not be null in zarr v3", path)
        return dtype.type(0)  # type: ignore[no-any-return]
    if kind == "b":
        if not isinstance(value, bool):
            if not v3 and value in (0, 1) and not isinstance(value, float):
                return dtype.type(bool(value))  # type: ignore[no-any-return]
            raise MetadataError(f"expected true/false for a bool fill value, got {value!r}", path)
        return dtype.type(value)  # type: ignore[no-any-return]
    if kind in "iu":
        given = value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetadataError(f"expected an integer fill value, got {value!r}", path)
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise MetadataError(f"fill value {given!r} out of range for {dtype.name}", path)
        return dtype.type(value)  # type: ignore[no-any-return]
    if kind == "f":
        return dtype.type(_parse_float(value, dtype, path))  # type: ignore[no-any-return]
    if kind == "c":
        if not isinstance(value, list) or len(value) != 2:
            raise MetadataError(
                f"expected [real, imag] for a complex fill value, got {value!r}", path
            )
        part = np.dtype(f"f{dtype.itemsize // 2}")
        re_ = _parse_float(value[0], part, f"{path}[0]")
        im_ = _parse_float(value[1], part, f"{path}[1]")
        return dtype.type(complex(float(re_), float(im_)))  # type: ignore[no-any-return]
    raise UnsupportedError(f"data type {dtype} is not supported")


def _parse_vlen_fill(value: object, path: str, *, v3: bool, items: type[str | bytes] | None) -> Any:
    """The fill value of a ``string`` (v3) or ``|O`` (v2) array: a ``str`` (zarr-python writes
    ``""``); v2 ``null`` reads as the empty item."""
    if value is None and not v3:
        return b"" if items is bytes else ""
    if items is bytes:
        if value == "":
            return b""
        raise UnsupportedError(f"fill value {value!r} of a vlen-bytes array is not supported")
    if not isinstance(value, str):
        raise MetadataError(f"expected a string fill value, got {value!r}", path)
    return value
