"""set_channels(windows="percentiles") refuses what it cannot write before reading the lowest
level: a store that takes no writes (an image over HTTP opened r+), a channel-less image
without channels (both were raised only after every tile of the lowest level was read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


async def test_a_read_only_store_is_refused_before_reading(
    http_root: Path, http_server: StaticServer
) -> None:
    async with ngio_async.create_async(
        http_root / "img.zarr", shape=(2, 32, 32), dtype="uint8", axes="cyx", chunks=(1, 8, 8)
    ) as ds:
        await ds.write(np.full((2, 32, 32), 9, np.uint8))
    before = (http_root / "img.zarr" / "zarr.json").read_bytes()
    http_server.reset()
    with pytest.raises(UnsupportedError, match="read-only"):  # refused at open now
        await ngio_async.open_async(http_server.url + "img.zarr", mode="r+")
    assert http_server.count("GET") == 0  # no chunk read for nothing
    assert (http_root / "img.zarr" / "zarr.json").read_bytes() == before


async def test_a_channel_less_image_without_channels_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(16, 16), dtype="uint8", axes="yx"
    ) as ds:
        await ds.write(np.full((16, 16), 9, np.uint8))
        assert ds.metadata.ome.omero is None
    for chunk in (tmp_path / "img.zarr" / "0" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a chunk")  # read, it would fail otherwise
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        with pytest.raises(ValueError, match="no channel axis and no channels"):
            await ds.set_channels(windows="percentiles")


@pytest.mark.parametrize(
    "pair",
    [[1, 99], (np.float32(1), np.float32(99)), (np.int64(1), 99), np.array([1.0, 99.0])],
    ids=["list", "float32", "int64", "array"],
)
async def test_one_pair_given_otherwise_than_a_tuple_of_floats(
    tmp_path: Path, pair: object
) -> None:
    """One (start, end) pair as a list, numpy numbers or an array is one pair for every
    channel (it was refused: '2 pairs for 3 channels')."""
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=(3, 16, 16), dtype="uint16", axes="cyx", levels=1
    ) as ds:
        await ds.write(np.arange(3 * 256, dtype=np.uint16).reshape(3, 16, 16) + 1)
        await ds.set_channels(windows="percentiles", percentiles=(1, 99))
        want = [c.window for c in ds.metadata.channels]
        await ds.set_channels(windows="percentiles", percentiles=pair)  # type: ignore[arg-type]
        assert [c.window for c in ds.metadata.channels] == want
