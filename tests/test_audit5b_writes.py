"""Writes as users give them: numpy assignment's rules for the data's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_data_with_leading_axes_of_one_is_taken_as_numpy_takes_it(
    tmp_path: Path, version: str
) -> None:
    """numpy assigns ``(1, 16, 16)`` to ``a[1]`` (leading axes of length 1 are dropped); a
    plane read with ``ds[0:1]`` written back to ``ds[1]`` was refused ("does not fit the
    selection of shape (16, 16)"). Every write path now takes it; other shapes are still
    refused, naming both shapes."""
    plane = np.arange(256, dtype=np.uint16).reshape(1, 16, 16)
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(3, 16, 16), dtype="uint16", axes="zyx", chunks=(1, 8, 8),
        levels=2, ngff_version=version,  # type: ignore[arg-type]
    ) as ds:  # fmt: skip
        expected = np.zeros((3, 16, 16), np.uint16)
        await ds.write_at((1,), plane)  # ds[1] = plane
        expected[1] = plane
        await ds.write(plane[None] + 1, z=2, pyramid=True)  # (1, 1, 16, 16)
        expected[2] = plane + 1
        await ds.levels[0].setitem((0, slice(0, 8)), plane[:, :8] + 2)
        expected[0, :8] = plane[0, :8] + 2
        await ds.write_orthogonal((0, [9, 10]), plane[:, 9:11] + 3)
        expected[0, [9, 10]] = plane[0, 9:11] + 3
        async with ds.writer() as w:
            await w.write(((slice(1, 2), slice(0, 8), slice(0, 8)), plane[None, :, :8, :8]))
        np.testing.assert_array_equal(await ds.levels[0][...], expected)
        with pytest.raises(ValueError, match=r"shape \(2, 16, 16\) does not fit .* \(16, 16\)"):
            await ds.write_at((1,), np.zeros((2, 16, 16), np.uint16))
        with pytest.raises(ValueError, match=r"shape \(16, 1, 16\) does not fit .* \(16, 16\)"):
            await ds.write_at((1,), np.zeros((16, 1, 16), np.uint16))
