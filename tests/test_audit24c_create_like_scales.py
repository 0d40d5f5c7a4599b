"""``create_like(src, url, scale=...)`` keeps the source's levels (their shapes) and so each
level's ratio of scale to level 0's: ngio's 2.5x pyramid (45 -> 18 -> 7 pixels) at a new pixel
size got scales of ``scale * 2**i`` (its level 1 covered 28 of 37 um in x), and a 0.6 image
whose levels are downsampled in z too kept z's scale on every level (level 1's 2 planes
covered half of level 0's 4). ``shape=`` rebuilds the levels, and their translations too (the
source's pixel-centre shifts of each level were kept for levels that no longer had them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_ngff06_read import SHAPES, _attrs, _write
from test_pyrx_ngio import _ngio

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _extents(ds: Any) -> list[list[float]]:
    """What each level covers per axis (shape times scale)."""
    return [
        [n * s for n, s in zip(lvl.shape, cal.scale, strict=True)]
        for lvl, cal in zip(ds.levels, ds.metadata.spatial_calibration, strict=True)
    ]


async def test_a_new_scale_keeps_each_levels_ratio_to_level_0(tmp_path: Path) -> None:
    _ngio(tmp_path / "a.zarr", (45, 37), (2.5, 2.5), 3, (16, 16))
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        src = [list(c.scale) for c in ds.metadata.spatial_calibration]
        async with ngio_async.create_like_async(ds, tmp_path / "c.zarr", scale={"x": 1.0}) as c:
            assert [lvl.shape for lvl in c.levels] == [lvl.shape for lvl in ds.levels]
            got = [list(cal.scale) for cal in c.metadata.spatial_calibration]
            want = [[s[0], s[1] * 2] for s in src]  # x: 0.5 -> 1.0, each level alike
            np.testing.assert_allclose(got, want)
            np.testing.assert_allclose(_extents(c), [[22.5, 37.0]] * 3)  # as level 0


async def test_06_levels_downsampled_in_z_keep_their_z_scales_and_shape_resets_translations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "img06.zarr"
    _write(path, _attrs("zarr_json/valid/example-image-multiscales_example.json"), SHAPES)
    async with ngio_async.open_async(path) as ds:
        src = [list(c.scale) for c in ds.metadata.spatial_calibration]
        assert [lvl.shape[2] for lvl in ds.levels] == [4, 2, 1]  # z halved too
        async with ngio_async.create_like_async(
            ds, tmp_path / "c.zarr", scale=[1, 1, 1, 1, 2]
        ) as c:
            assert [lvl.shape for lvl in c.levels] == [lvl.shape for lvl in ds.levels]
            got = [list(cal.scale) for cal in c.metadata.spatial_calibration]
            want = [[s[0] * 10, s[1], s[2] * 2, s[3] * 2, s[4] * 4] for s in src]
            np.testing.assert_allclose(got, want)
            z_extents = {e[2] for e in _extents(c)}
            assert z_extents == {4.0}
        async with ngio_async.create_like_async(
            ds, tmp_path / "s.zarr", shape=(1, 2, 4, 32, 32)
        ) as c:
            assert [lvl.shape[2] for lvl in c.levels] == [4, 4, 4]  # create's levels: y/x only
            assert {tuple(cal.translation) for cal in c.metadata.spatial_calibration} == {
                (0.0,) * 5
            }
