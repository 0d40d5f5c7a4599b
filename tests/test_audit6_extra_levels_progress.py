"""The levels a conversion adds to an OME-Zarr source (``levels=`` more than it has, built after
the copy) are counted by ``progress``: it reported ``(n, n)`` when the copy ended and nothing
while the extra levels were computed (a bar at 100% for the rest of the conversion)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def test_progress_counts_the_extra_levels(tmp_path: Path) -> None:
    data = np.arange(2 * 256 * 256, dtype=np.uint16).reshape(2, 256, 256)
    src = tmp_path / "src.zarr"
    with ngio_async.create(
        src, shape=data.shape, dtype="uint16", axes="cyx", chunks=(1, 64, 64), levels=1
    ) as ds:
        ds.write(data)
    seen: list[tuple[int, int]] = []
    ngio_async.convert_sync(
        src, tmp_path / "out.zarr", levels=3, progress=lambda d, t: seen.append((d, t))
    )
    copy_total = seen[0][1]
    assert seen[-1][0] == seen[-1][1] > copy_total  # the extra levels' tiles are counted
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with ngio_async.open(tmp_path / "out.zarr") as out:
        assert len(out.levels) == 3
        assert np.array_equal(out[...], data)
