"""Tiles from a stream that recycles its big arrays (``TilePool``) keep their pixels in every
way a consumer holds or passes them on: results that are the tiles themselves written into
another image (on disk, uncompressed, and on S3, pyramids following), the blocking loop's
tiles kept, and views, buffers and copies kept past the stream's end."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import Limits
from ngio_async.images import _tile_pool

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.anyio

SPEC = Spec(shape=(12, 64, 64), chunks=(1, 32, 32), shards=(1, 64, 64), levels=2)


@pytest.fixture(autouse=True)
def small_tiles_pooled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tile_pool, "MIN_BYTES", 1)


@pytest.mark.parametrize("where", ["disk", "s3"])
@pytest.mark.parametrize("shape", [None, (1, 16, 64)])
async def test_tiles_written_as_they_are_into_another_image_land_whole(
    tmp_path: Path, s3_server: S3Server, where: str, shape: Any
) -> None:
    (data, _) = write_image(tmp_path / "src", SPEC)
    urls: list[Any] = [tmp_path / "out", tmp_path / "fresh"]
    opts: dict[str, Any] = {}
    if where == "s3":
        urls, opts = [s3_server.fresh_url(), s3_server.fresh_url()], s3_server.options()
    for url, reuse in zip(urls, (True, False), strict=True):
        limits = Limits(reuse_tile_arrays=reuse)
        async with ngio_async.open_async(tmp_path / "src", limits=limits) as ds:
            out = await ngio_async.create_like_async(ds, url, compressor=None, **opts)
            async with out:  # the tiles themselves written while the next ones are decoded
                tiles = ds.tiles(shape=shape, prefetch=2)
                await ngio_async.stream(tiles, lambda a: a, out=out, pyramid=True)
                assert (tiles.array_pool is not None) is reuse
                # (how many arrays were taken again depends on how fast the writes drain)
    async with (
        ngio_async.open_async(urls[0], **opts) as out,
        ngio_async.open_async(urls[1], **opts) as fresh,
    ):
        np.testing.assert_array_equal(await out.read(level=0), data)
        np.testing.assert_array_equal(await out.read(level=1), await fresh.read(level=1))


HOLDERS: dict[str, Any] = {
    "asarray": lambda t: np.asarray(t.data),
    "slice": lambda t: t.data[0, 3:40],
    "reshape": lambda t: t.data.reshape(-1),
    "memoryview": lambda t: memoryview(t.data),
    "frombuffer": lambda t: np.frombuffer(t.data, dtype=t.data.dtype).reshape(t.data.shape),
    "dlpack": lambda t: np.from_dlpack(t.data),
    "pickle5": lambda t: _pickled(t.data),
}


def _pickled(a: np.ndarray[Any, Any]) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Protocol 5: the array's buffer out of band (not copied)."""
    buffers: list[pickle.PickleBuffer] = []
    return pickle.dumps(a, protocol=5, buffer_callback=buffers.append), buffers


def pixels(how: str, held: Any) -> Any:
    if how == "pickle5":
        return pickle.loads(held[0], buffers=held[1])
    return np.asarray(held).reshape(-1) if how == "reshape" else np.asarray(held)


@pytest.mark.parametrize("how", sorted(HOLDERS))
def test_what_the_blocking_loop_hands_on_keeps_its_pixels(tmp_path: Path, how: str) -> None:
    (data, _) = write_image(tmp_path, SPEC)
    with ngio_async.open(tmp_path) as ds:
        kept = [(t.region, HOLDERS[how](t)) for t in ds.tiles(shape=(1, 16, 64), prefetch=4)]
        for region, held in kept:
            want = data[region][0, 3:40] if how == "slice" else data[region]
            np.testing.assert_array_equal(
                pixels(how, held), want.reshape(-1) if how == "reshape" else want
            )
