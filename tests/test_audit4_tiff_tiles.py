"""``ds.tiles()`` over a TIFF opened as a dataset (audit of issue 4): tiles smaller than the
TIFF's chunks (its strips, pages or tiles) were read in runs by the zarr chunk machinery,
from the empty stand-in store behind the dataset: every such tile came back as zeros (the
fill value), silently, while ``read`` gave the pixels. Local and over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile
from servers import StaticServer

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.anyio
DATA = np.random.default_rng(4).integers(1, 60000, (3, 70, 53), dtype=np.uint16)


@pytest.fixture(scope="module")
def tiffs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, StaticServer]]:
    root = tmp_path_factory.mktemp("tiffs")
    tifffile.imwrite(root / "strips.tif", DATA, photometric="minisblack", metadata={"axes": "CYX"})
    tifffile.imwrite(
        root / "tiled.ome.tif",
        DATA,
        tile=(16, 16),
        photometric="minisblack",
        metadata={"axes": "CYX"},
    )
    server = StaticServer(root).start()
    try:
        yield root, server
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["strips.tif", "tiled.ome.tif"])
@pytest.mark.parametrize("where", ["file", "http"])
@pytest.mark.parametrize(
    "kw",
    [
        {"shape": (7, 9)},
        {"shape": (7, 9), "overlap": 3, "ordered": False},
        {"shape": (16, 16), "overlap": 1},
        {"shape": (1, 20, None), "c": [2, 0]},
        {},
    ],
    ids=["small", "small-halo-unordered", "chunk-halo", "rows-picks", "default"],
)
async def test_tiles_of_a_tiff_hold_its_pixels(
    tiffs: tuple[Path, StaticServer], name: str, where: str, kw: dict[str, Any]
) -> None:
    root, server = tiffs
    url = str(root / name) if where == "file" else f"{server.url}{name}"
    async with ngio_async.open_async(url) as ds:
        assert ds.shape == DATA.shape
        stream = ds.tiles(**kw)
        cover = np.zeros(DATA.shape, int)
        count = 0
        async for tile in stream:
            assert tile.data.shape == DATA[tile.region].shape
            np.testing.assert_array_equal(tile.data, DATA[tile.region])  # was: zeros
            cover[tile.core] += 1
            count += 1
        assert count == len(stream) > 0
        assert set(np.unique(cover)) == {0, 1} if "c" in kw else (cover == 1).all()


def test_sync_tiles_of_a_tiff_hold_its_pixels(tiffs: tuple[Path, StaticServer]) -> None:
    root, _ = tiffs
    with ngio_async.open(root / "strips.tif") as ds:
        for tile in ds.tiles(shape=(10, 10), overlap=2):
            np.testing.assert_array_equal(tile.data, DATA[tile.region])
