"""The async ``Dataset`` and ``Level`` answer numpy's questions (``len``, ``size``) as the
blocking ones do, and an assignment (which cannot be awaited) says what to write with."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


async def test_len_size_and_assignment(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    async with await ngio_async.create_async(
        path, shape=(3, 20, 24), dtype="uint16", axes="zyx", levels=2
    ) as ds:
        lvl = ds.levels[1]
        assert (len(ds), ds.size) == (3, 3 * 20 * 24)
        assert (len(lvl), lvl.size) == (3, 3 * 10 * 12)
        assert ds.nbytes == ds.size * 2
        with pytest.raises(TypeError, match=r"await ds\.write_at\(selection, data\)"):
            ds[0] = 1
        with pytest.raises(TypeError, match=r"await level\.setitem\(selection, data\)"):
            lvl[0] = 1
        await lvl.setitem(0, np.uint16(5))  # what the message says works
        assert (await lvl[0] == 5).all()
        await ds.write_at(np.s_[1, :2], 9)
        assert (await ds[1, :2] == 9).all()
    with ngio_async.open(path) as again:  # the blocking API agrees
        assert (len(again), again.size) == (3, 3 * 20 * 24)
