"""Audit of issue 5: ``build_pyramid`` checks every argument before it writes anything. A bad
``tile``, ``regions``, ``source``, ``window`` or ``progress`` with ``levels=`` above the stored
count was refused only after the new levels' arrays were written (and, for ``progress``, after
their first tile): arrays no group lists were left behind. ``window="3"`` failed with a bare
comparison error and ``progress=5`` with "'int' object is not callable", naming neither."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"tile": (0, 0)}, ValueError, "tile sizes must be >= 1, got (0, 0)"),
    ({"tile": (16,)}, ValueError, "tile needs 3 values (one per axis) or 2 (y, x), got (16,)"),
    ({"regions": [5]}, TypeError, "a region is one slice, (start, stop) or index per axis"),
    ({"regions": [(0, slice(100, 200), slice(None))]}, ValueError, "is outside level 0"),
    ({"source": "x"}, ValueError, "source must be 'previous' or 'level0', got 'x'"),
    ({"window": 2.5}, TypeError, "window must be an integer, got 2.5"),
    ({"window": "3"}, TypeError, "window must be an integer, got '3'"),
    ({"window": 0}, ValueError, "window must be >= 1, got 0"),
    ({"progress": 5}, TypeError, "progress must be a callable progress(done, total), got 5"),
]


def files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize(("bad", "error", "message"), BAD)
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_bad_arguments_are_refused_before_new_levels_are_written(
    tmp_path: Path,
    version: Literal["0.4", "0.5"],
    bad: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        path, shape=(2, 64, 64), dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=1,
        ngff_version=version,
    ) as ds:  # fmt: skip
        await ds.write(np.ones((2, 64, 64), "uint16"))
        before = files(path)
        with pytest.raises(error, match=re.escape(message)):
            await ds.build_pyramid(levels=3, **bad)
        assert files(path) == before  # no array of a level the group does not list
        assert len(ds.levels) == 1
        await ds.build_pyramid(levels=3)
    async with ngio_async.open_async(path) as ds:
        assert [lvl.shape for lvl in ds.levels] == [(2, 64, 64), (2, 32, 32), (2, 16, 16)]
        assert int((await ds.levels[2][...]).min()) == 1


async def test_a_progress_that_is_no_callable_is_refused_before_the_first_tile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        path, shape=(64, 64), dtype="uint16", axes="yx", chunks=(16, 16), levels=2
    ) as ds:
        await ds.write(np.ones((64, 64), "uint16"))
        with pytest.raises(TypeError, match="progress must be a callable"):
            await ds.build_pyramid(progress=5)  # type: ignore[arg-type]
        assert not (await ds.levels[1][...]).any()  # no tile was built
