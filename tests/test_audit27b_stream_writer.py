"""``stream(..., out=<writer>)`` with a writer whose ``write`` is no coroutine (audit of issue
4): a blocking dataset's writer wrote the first tile, then the stream failed with "object
NoneType can't be used in 'await' expression", naming neither ``out`` nor the way out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.images import Tile

SPEC = Spec(version="0.5", shape=(2, 24, 20), chunks=(1, 8, 8), levels=1)


class PlainWriter:
    """A writer whose ``write`` is a plain function."""

    def __init__(self) -> None:
        self.tiles: list[Tile] = []

    def write(self, tile: Tile) -> None:
        self.tiles.append(tile)


@pytest.mark.anyio
async def test_a_blocking_writer_is_refused_at_the_call(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path / "a.zarr", SPEC)
    async with ngio_async.open_async(tmp_path / "a.zarr") as src:
        await (await ngio_async.create_like_async(src, tmp_path / "b.zarr")).aclose()
        with ngio_async.open(tmp_path / "b.zarr", mode="r+") as dst, dst.writer() as w:
            with pytest.raises(TypeError, match=r"blocking writer.*open_async.*stream_sync"):
                ngio_async.stream(src.tiles(), lambda a: a + 1, out=w)  # type: ignore[arg-type]
            assert not dst.read().any()  # was: the first tile written
        # the same writer through stream_sync, the blocking twin, writes every tile
        with ngio_async.open(tmp_path / "a.zarr") as blocking_src:
            with ngio_async.open(tmp_path / "b.zarr", mode="r+") as dst, dst.writer() as w:
                assert ngio_async.stream_sync(blocking_src.tiles(), lambda a: a + 1, out=w) is None
            with ngio_async.open(tmp_path / "b.zarr") as dst:
                np.testing.assert_array_equal(dst.read(), data + 1)


@pytest.mark.anyio
async def test_a_plain_write_is_named_when_it_returns_no_awaitable(tmp_path: Path) -> None:
    write_image(tmp_path / "a.zarr", SPEC)
    out = PlainWriter()
    async with ngio_async.open_async(tmp_path / "a.zarr") as src:
        with pytest.raises(
            TypeError, match=r"out.write\(tile\), which returned None .*async def write"
        ) as got:
            await ngio_async.stream(src.tiles(), lambda a: a, out=cast_writer(out))
    assert "the tile at [0:1, 0:8, 0:8]" in str(got.value.__notes__)
    assert len(out.tiles) == 1  # its first write ran, then the stream stopped


def cast_writer(out: Any) -> Any:
    return out


@pytest.mark.anyio
async def test_a_blocking_dataset_as_out_of_a_roi_stream_is_refused(tmp_path: Path) -> None:
    """It failed at the first ROI with AttributeError "'SyncLevel' object has no attribute
    'begun'"."""
    (data,) = write_image(tmp_path / "a.zarr", SPEC)
    rois = [Roi.box("a", x=(0, 2.5), y=(0, 2.5)), Roi.box("b", x=(5, 10), y=(4, 10))]  # 0.5 um px
    async with ngio_async.open_async(tmp_path / "a.zarr") as src:
        await (await ngio_async.create_like_async(src, tmp_path / "b.zarr")).aclose()
        with ngio_async.open(tmp_path / "b.zarr", mode="r+") as dst:
            with pytest.raises(TypeError, match=r"blocking one .*open_async.*stream_sync"):
                ngio_async.stream(src.read_rois(rois), lambda a: a + 1, out=dst)  # type: ignore[arg-type]
            assert not dst.read().any()
    with (
        ngio_async.open(tmp_path / "a.zarr") as blocking_src,
        ngio_async.open(tmp_path / "b.zarr", mode="r+") as dst,
    ):  # the blocking twin takes it
        ngio_async.stream_sync(blocking_src.read_rois(rois), lambda a: a + 1, out=dst)
        np.testing.assert_array_equal(dst.read()[:, 8:20, 10:20], data[:, 8:20, 10:20] + 1)
