"""``ds.tiles()`` parameters: regions, named axes and their checks (raised at the call)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
SPEC = Spec(version="0.4", shape=(3, 2, 40, 50), chunks=(1, 1, 16, 16), levels=2,
            channels=("DAPI", "GFP", "RFP"))  # fmt: skip


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, list[np.ndarray[Any, Any]]]:
    return tmp_path, write_image(tmp_path, SPEC)


async def test_a_region_reaching_outside_the_level_is_an_error(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, datas = image
    full = (slice(None), slice(None))
    async with ngio_async.open_async(root) as ds:
        # was: silently clipped (or no tile at all), e.g. level-0 coordinates on level 1
        with pytest.raises(IndexError, match=r"'y'.* 0:40 reaches outside level 1.* 20 pixels"):
            ds.tiles(level=1, region=(*full, slice(0, 40), slice(0, 25)))
        with pytest.raises(IndexError, match=r"'x'.* 60:70 reaches outside level 0"):
            ds.tiles(region=(*full, slice(None), slice(60, 70)))
        # a named axis's slice is clipped as read() clips it (numpy's rule)
        clipped = [t.region[2] async for t in ds.tiles(y=slice(30, 90), x=slice(-70, 60))]
        assert clipped and {(r.start, r.stop) for r in clipped} == {(30, 32), (32, 40)}
        np.testing.assert_array_equal(
            await ds.read(y=slice(30, 90), x=slice(-70, 60)), datas[0][:, :, 30:40, :]
        )
        # was: "index 45 is out of bounds for axis 0" (y is axis 2)
        with pytest.raises(IndexError, match=r"axis 'y': index 45 is out of bounds"):
            ds.tiles(y=45)
        inside = [t.region async for t in ds.tiles(region=(*full, slice(-8, None), slice(0, 50)))]
        assert inside and all(r[2] == slice(32, 40) for r in inside)  # negative: from the end


async def test_region_and_named_axes_both_limit_the_iteration(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, datas = image
    region = (slice(None), slice(0, 1), slice(0, 20), slice(None))
    async with ngio_async.open_async(root) as ds:
        # was: y=slice(10, 30) replaced the region's 0:20 and tiles came from 20:30 too
        tiles = [t async for t in ds.tiles(region=region, y=slice(10, 30), c=["RFP", "GFP"])]
        assert tiles
        cover = np.zeros(datas[0].shape, int)
        for t in tiles:
            np.testing.assert_array_equal(t.data, datas[0][t.region])
            cover[t.region] += 1
        want = np.zeros_like(cover)
        want[1:3, 0:1, 10:20, :] = 1
        np.testing.assert_array_equal(cover, want)
        assert len(ds.tiles(region=region, y=30)) == 0  # disjoint: nothing


async def test_bad_parameters_are_refused_at_the_call(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, _ = image
    async with ngio_async.open_async(root) as ds:
        with pytest.raises(TypeError, match="tile shape must be ints"):
            ds.tiles(shape=(10.5, 16))  # type: ignore[arg-type]  # was: truncated to 10
        with pytest.raises(ValueError, match="prefetch must be a positive integer, got 0"):
            ds.tiles(prefetch=0)  # was: "window must be ..." (no such parameter)
        with pytest.raises(TypeError, match="progress must be a callable"):
            ds.tiles(progress=3)  # type: ignore[arg-type]  # was: raised at the first tile
        with pytest.raises(TypeError, match="ordered must be True or False, got 'no'"):
            ds.tiles(ordered="no")  # type: ignore[arg-type]  # was: taken as True
        no: Any = np.bool_(False)  # numpy's bools are taken
        assert len([t async for t in ds.tiles(ordered=no)]) == len(ds.tiles())


async def test_overlap_takes_numpy_ints_and_refuses_fractions(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, datas = image
    async with ngio_async.open_async(root) as ds:
        # was: TypeError "'numpy.int64' object is not iterable"
        halo: Any = np.int64(3)
        tiles = [t async for t in ds.tiles(c=0, z=0, shape=(20, 25), overlap=halo)]
        assert [t.region[2:] for t in tiles[:2]] == [
            (slice(0, 23), slice(0, 28)),
            (slice(0, 23), slice(22, 50)),
        ]
        for t in tiles:
            np.testing.assert_array_equal(t.data, datas[0][t.region])
        for bad in (1.5, (0, 0, 1.5, 2)):  # was: "'float' object is not iterable" / truncated
            with pytest.raises(TypeError, match="overlap must be an int or one int per axis"):
                ds.tiles(overlap=bad)  # type: ignore[arg-type]
