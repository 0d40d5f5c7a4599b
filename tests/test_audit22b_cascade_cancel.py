"""A pyramid write cancelled while its lower levels are being rebuilt at the end (every
level-0 pixel landed, ``Cascade.finish`` under way) still leaves every lower level following
level 0: the stream of ROIs into a label image with ``pyramid=True``, ``write(...,
pyramid=True)`` and ``writer(pyramid=True)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.images._cascade import Cascade
from ngio_async.images._tiles import Tile
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _cancel_in_finish(monkeypatch: pytest.MonkeyPatch, scope: anyio.CancelScope) -> list[int]:
    """Fault injection: the caller's scope is cancelled as the first ``finish`` starts."""
    original = Cascade.finish
    calls: list[int] = []

    async def finish(self: Cascade) -> None:
        calls.append(1)
        if len(calls) == 1:
            scope.cancel()
        await original(self)

    monkeypatch.setattr(Cascade, "finish", finish)
    return calls


async def _levels(ds: Any) -> list[np.ndarray[Any, Any]]:
    return [await ds.read(level=i) for i in range(len(ds.levels))]


async def _assert_follow(ds: Any) -> None:
    """Every lower level equals the pyramid built again from level 0."""
    got = await _levels(ds)
    assert got[0].any()
    await ds.build_pyramid()
    for i, (a, b) in enumerate(zip(got, await _levels(ds), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"level {i}")


async def test_roi_stream_cancelled_in_its_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = await ngio_async.create_async(
        tmp_path / "img.zarr", shape=(1, 48, 48), dtype="uint16", axes="cyx",
        channels=["DAPI"], levels=3, chunks=(1, 16, 16),
    )  # fmt: skip
    await ds.write(np.arange(48 * 48, dtype="uint16").reshape(1, 48, 48))
    rois = [Roi(f"r{i}", {"y": (i * 10.0, i * 10.0 + 13), "x": (3.0, 45.0)}) for i in range(4)]
    await ds.tables.write_rois("FOV", rois)
    lab = await ds.labels.create("seg", dtype="uint16")
    with anyio.CancelScope() as scope:
        calls = _cancel_in_finish(monkeypatch, scope)
        await ngio_async.stream(
            ds.read_rois("FOV", c="DAPI"), lambda a: (a % 5).astype("uint8"), out=lab,
            pyramid=True, unique_labels=10,
        )  # fmt: skip
    assert scope.cancelled_caught and calls
    await _assert_follow(lab)


@pytest.mark.parametrize("how", ["write", "writer"])
async def test_pyramid_write_cancelled_in_its_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    ds = await ngio_async.create_async(
        tmp_path / "img.zarr", shape=(48, 48), dtype="uint16", levels=3, chunks=(16, 16)
    )
    data = np.arange(48 * 48, dtype="uint16").reshape(48, 48)
    with anyio.CancelScope() as scope:
        calls = _cancel_in_finish(monkeypatch, scope)
        if how == "write":  # not on the downsampling windows: rebuilt from the store
            await ds.write_at(np.s_[3:45, 5:41], data[3:45, 5:41], pyramid=True)
        else:
            async with ds.writer(pyramid=True) as w:
                async for tile in ds.tiles(shape=(13, 48)):
                    await w.write(Tile(data[tile.region], tile.region, tile.index, tile.core, 0))
    assert scope.cancelled_caught and calls
    await _assert_follow(ds)
