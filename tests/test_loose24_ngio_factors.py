"""``method="ngio"`` / ``pyramid="ngio"`` on label pyramids of non-integer factors: ngio 1.1
writes them (``scaling_factors=(2.5, 2.5)``: levels of 45 -> 18 -> 7 pixels, each built by its
nearest ``dask_zoom`` over the level above's chunks) and they were refused ("not an integer
downsampling"); every level now equals ngio's own, whole, by tiles, by regions, by writes."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_pyrx_ngio import _labels, _levels, _ngio, _zero_lower

import ngio_async
from ngio_async._errors import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

CASES = {
    "2d-2.5": ((45, 37), (2.5, 2.5), 3, (16, 16)),
    "2d-1.5x3.5": ((40, 57), (1.5, 3.5), 3, (8, 16)),
    "3d-1.5": ((5, 50, 61), (1.0, 1.5, 1.5), 3, (2, 16, 16)),
}


def _equal(got: list[Any], want: list[Any], what: str) -> None:
    assert [g.shape for g in got] == [w.shape for w in want]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, w, err_msg=f"{what}: level {i}")


@pytest.mark.parametrize("case", list(CASES))
async def test_build_pyramid_ngio_of_non_integer_factors(tmp_path: Path, case: str) -> None:
    shape, factors, levels, chunks = CASES[case]
    want = _ngio(tmp_path / "a.zarr", shape, factors, levels, chunks)
    pairs = itertools.pairwise(want)
    assert any(a % b for w, v in pairs for a, b in zip(w.shape, v.shape, strict=True))
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.open("cells", mode="r+")
        with pytest.raises(UnsupportedError, match="not an integer downsampling"):
            await lab.build_pyramid(method="mode")  # the factors matter there: refused
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio")
        _equal(await _levels(lab), want, "whole")
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio", tile=(4,) * len(shape), source="level0")
        _equal(await _levels(lab), want, "tiles from level 0")
        await lab.aclose()


async def test_regions_and_pyramid_writes_of_non_integer_factors(tmp_path: Path) -> None:
    shape = (45, 37)
    want = _ngio(tmp_path / "a.zarr", shape, (2.5, 2.5), 3, (16, 16))
    data = _labels(shape)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.open("cells", mode="r+")
        changed = data.copy()
        changed[5:20, 11:30] = 99
        await lab.write_at((slice(5, 20), slice(11, 30)), changed[5:20, 11:30])
        await lab.build_pyramid(method="ngio", regions=[(slice(5, 20), slice(11, 30))])
        by_region = await _levels(lab)
        assert (by_region[1] == 99).any() and (by_region[2] == 99).any()
        await _zero_lower(lab)
        await lab.build_pyramid(method="ngio")
        _equal(by_region, await _levels(lab), "regions")
        await lab.write_at(..., data)
        await _zero_lower(lab)
        for y0, y1 in ((0, 13), (13, 45)):  # unaligned blocks
            for x0, x1 in ((0, 7), (7, 37)):
                box = (slice(y0, y1), slice(x0, x1))
                await lab.write_at(box, data[box], pyramid="ngio")
        _equal(await _levels(lab), want, "write_at")
        await _zero_lower(lab)
        async with lab.writer(pyramid="ngio") as bands:
            for x0, x1 in ((0, 5), (5, 21), (21, 37)):
                await bands.write(((slice(0, 45), slice(x0, x1)), data[:, x0:x1]))
        _equal(await _levels(lab), want, "writer")
        await lab.aclose()


async def test_level1_writes_of_non_integer_factors_equal_ngio(tmp_path: Path) -> None:
    """ngio's ``set_array`` at level 1, then ``consolidate()`` (level 0 upsampled by its zoom,
    level 2 downsampled): ``write(level=1, pyramid="ngio")`` and ``build_pyramid(from_level=1,
    method="ngio")`` give its pixels (the finer level's upsampling was refused the same way)."""
    import warnings

    import ngio

    new = _labels((18, 14), seed=3)
    url = tmp_path / "a.zarr"
    _ngio(url, (45, 37), (2.5, 2.5), 3, (16, 16))
    label = ngio.open_ome_zarr_container(str(url)).get_label("cells", path="1")
    label.set_array(new)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        label.consolidate()
    container = ngio.open_ome_zarr_container(str(url))
    want = [np.asarray(container.get_label("cells", path=p).get_array()) for p in "012"]
    _ngio(url, (45, 37), (2.5, 2.5), 3, (16, 16))  # ngio's pyramid of the first labels again
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("cells", mode="r+")
        await lab.write(new, level=1, pyramid="ngio")
        _equal(await _levels(lab), want, "write at level 1")
        await _zero_lower(lab)
        await lab.write_at(..., np.zeros((45, 37), "uint32"))
        await lab.write(new, level=1)
        await lab.build_pyramid(from_level=1, method="ngio")
        _equal(await _levels(lab), want, "build_pyramid(from_level=1)")
        await lab.aclose()
