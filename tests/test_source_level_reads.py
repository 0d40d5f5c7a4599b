"""Every region-reading path of a dataset opened from an image source (a TIFF, local or over
HTTP; a format plugin's source) gives the source's pixels. There is no zarr data behind such a
level (an empty in-memory store stands in): ``Level.read_many`` and ``read_in_chunks`` read
that store and returned the fill value, silently."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_audit4_tiff_tiles import DATA, tiffs  # noqa: F401  (the fixture: its TIFF and server)

import ngio_async
from ngio_async import formats

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import StaticServer

pytestmark = pytest.mark.anyio
# inside one 16x16 TIFF tile; across several; the whole level
REGIONS = [
    (slice(1, 2), slice(16, 30), slice(32, 45)),
    (slice(0, 2), slice(3, 40), slice(5, 30)),
    (slice(0, 3), slice(0, 70), slice(0, 53)),
]


class _Source:
    """A format plugin's image source: an array in memory."""

    url = "array://levels"
    axes = ("c", "y", "x")
    shape = DATA.shape
    dtype = DATA.dtype
    scale = (1.0, 0.5, 0.5)
    units: tuple[str | None, ...] = (None, "micrometer", "micrometer")
    translation = (0.0, 0.0, 0.0)
    channels: list[dict[str, Any]] | None = None
    name: str | None = None

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]:
        return DATA[region].copy()

    async def aclose(self) -> None:
        pass


class _Reader:
    name = "array-levels"

    def can_read(self, url: Any) -> bool:
        return isinstance(url, str) and url == _Source.url

    async def open(self, url: Any, **options: Any) -> _Source:
        return _Source()


@pytest.fixture(params=["tiff-file", "tiff-http", "plugin"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    served: tuple[Path, StaticServer] = request.getfixturevalue("tiffs")
    root, server = served
    if request.param == "plugin":
        reader = _Reader()
        formats.register(reader)
        try:
            yield _Source.url
        finally:
            formats.unregister(reader)
    elif request.param == "tiff-file":
        yield str(root / "tiled.ome.tif")
    else:
        yield f"{server.url}tiled.ome.tif"


async def test_every_read_path_gives_the_sources_pixels(url: str) -> None:
    async with await formats.open_dataset(url) as ds:
        level = ds.levels[0]
        for region in REGIONS:
            want = DATA[region]
            np.testing.assert_array_equal(await level.read(region), want)
            out = np.zeros_like(want)
            await level.read_into(region, out)
            np.testing.assert_array_equal(out, want)
        many = await level.read_many(REGIONS)
        assert len(many) == len(REGIONS)
        for got, region in zip(many, REGIONS, strict=True):
            np.testing.assert_array_equal(got, DATA[region])
        # the stream's small-tile path: regions inside one chunk each
        small = [(slice(c, c + 1), slice(16, 20), slice(0, 16)) for c in range(3)]
        for got, region in zip(await level.read_in_chunks(small), small, strict=True):
            np.testing.assert_array_equal(got, DATA[region])
        assert await level.read_many([]) == []


def test_sync_reads_give_the_sources_pixels(url: str) -> None:
    with ngio_async.open(url) as ds:
        np.testing.assert_array_equal(np.asarray(ds), DATA)
        np.testing.assert_array_equal(np.asarray(ds[0:2, 3:40, 5:30]), DATA[0:2, 3:40, 5:30])
        tiles = list(ds.tiles(shape=(7, 9)))
        assert sum(t.data.size for t in tiles) == DATA.size
        for t in tiles:
            np.testing.assert_array_equal(t.data, DATA[t.region])
