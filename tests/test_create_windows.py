"""Channels created without a display window get ``start``/``end`` from the data once the
pyramid is built (they covered the whole dtype range: 12-bit data in uint16 showed nearly
black in viewers); windows the user gave are never overridden; ``set_channels(windows="auto")``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio

DATA = np.random.default_rng(0).integers(100, 4096, (2, 64, 64), dtype=np.uint16)


def _windows(ds: ngio_async.Dataset) -> list[tuple[float, float, float, float]]:
    omero = ds.metadata.ome.omero
    assert omero is not None
    return [(c.window.min, c.window.max, c.window.start, c.window.end) for c in omero.channels]


def _extents(data: np.ndarray) -> list[tuple[float, float]]:
    """(min, max) of each channel."""
    return [(float(data[c].min()), float(data[c].max())) for c in range(data.shape[0])]


@pytest.mark.parametrize("how", ["write", "writer", "build_pyramid"])
async def test_windows_follow_the_data(tmp_path: Path, how: str) -> None:
    url = str(tmp_path / "img.ome.zarr")
    channels: list[str | dict[str, Any]] = ["DAPI", {"label": "GFP", "window": (0, 1000)}]
    async with ngio_async.create_async(
        url, shape=DATA.shape, dtype="uint16", axes="cyx", levels=2, channels=channels
    ) as ds:
        assert _windows(ds) == [(0, 65535, 0, 65535), (0, 65535, 0, 1000)]
        if how == "write":
            await ds.write(DATA, pyramid=True)
        elif how == "writer":
            async with ds.writer(pyramid=True) as w:
                await w.write(((slice(None), slice(None), slice(None)), DATA))
        else:
            await ds.write(DATA)
            assert _windows(ds)[0] == (0, 65535, 0, 65535)  # no pyramid built yet
            await ds.build_pyramid()
        lowest = await ds.levels[-1][...]
        lo, hi = float(lowest[0].min()), float(lowest[0].max())
        assert 100 <= lo < hi <= 4095
        assert _windows(ds) == [(0, 65535, lo, hi), (0, 65535, 0, 1000)]
    async with ngio_async.open_async(url) as ds:
        assert _windows(ds) == [(0, 65535, lo, hi), (0, 65535, 0, 1000)]


async def test_a_window_set_is_kept_and_auto_on_request(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    async with ngio_async.create_async(
        url, shape=DATA.shape, dtype="uint16", axes="cyx", levels=1, channels=["a", "b"]
    ) as ds:
        await ds.set_channels(windows=[(5, 50), None])
        await ds.write(DATA, pyramid=True)
        assert _windows(ds) == [(0, 65535, 5, 50), (0, 65535, *_extents(DATA)[1])]
    async with ngio_async.open_async(url, mode="r+") as ds:
        await ds.set_channels(windows="auto")
        assert [w[2:] for w in _windows(ds)] == _extents(DATA)
        await ds.set_channels(windows=["auto", None])  # per channel
        with pytest.raises(ValueError, match="'auto', 'percentiles' or one value per channel"):
            await ds.set_channels(windows="full")  # type: ignore[arg-type]


async def test_float_and_constant_channels(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    data = np.zeros((2, 32, 32), "float32")
    data[0] = np.linspace(-2.0, 7.5, 32 * 32).reshape(32, 32)
    data[0, 0, 0] = np.nan
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="float32", axes="cyx", levels=1, channels=["x", "zero"]
    ) as ds:
        await ds.write(data, pyramid=True)
        lo, hi = float(np.nanmin(data[0])), float(np.nanmax(data[0]))
        assert _windows(ds) == [(lo, hi, lo, hi), (0, 1, 0, 1)]  # a constant channel: kept


async def test_plane_by_plane_writes_rescan_what_they_change(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    async with ngio_async.create_async(
        url, shape=(1, 3, 64, 64), dtype="uint16", axes="czyx", levels=2, channels=["a"]
    ) as ds:
        seen = []
        for z, value in ((0, 10), (1, 500), (1, 50), (2, 30)):
            await ds.write(np.full((64, 64), value, "uint16"), c=0, z=z, pyramid=True)
            seen.append(_windows(ds)[0][2:])
        assert seen == [(0, 10), (0, 500), (0, 50), (10, 50)]  # 500 overwritten: gone
        await ds.write(np.full((64, 64), 900, "uint16"), c=0, z=0)  # no pyramid: level 1 kept
        await ds.build_pyramid()
        assert _windows(ds)[0][2:] == (30, 900)


async def test_a_write_without_pyramid_is_not_missed(tmp_path: Path) -> None:
    url = str(tmp_path / "img.ome.zarr")
    async with ngio_async.create_async(
        url, shape=(1, 2, 32, 32), dtype="uint16", axes="czyx", levels=1, channels=["a"]
    ) as ds:  # one level: the lowest is level 0
        await ds.write(np.full((32, 32), 500, "uint16"), c=0, z=0, pyramid=True)
        assert _windows(ds)[0][2:] == (0, 500)
        await ds.write(np.full((32, 32), 5, "uint16"), c=0, z=0)
        await ds.write(np.full((32, 32), 7, "uint16"), c=0, z=1, pyramid=True)
        assert _windows(ds)[0][2:] == (5, 7)
