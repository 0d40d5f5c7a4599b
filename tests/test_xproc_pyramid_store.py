"""The rebuild of a lower-level tile that other processes may rebuild too, step by step (in one
process: "another process" is another store object over the same objects, with write locks
of its own; the steps are ordered by a store wrapper, fault injection): its put is conditional
on the tile's version read before level 0, so a rebuild stored meanwhile makes it read level 0
and rebuild again; refused every time, the error names the tile. Tiles wholly inside one
write's own pixels cost nothing more; the others one GET each (memory, moto S3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import ChangedError
from ngio_async.engine.pyramid import downsample
from ngio_async.images import _pyramid
from ngio_async.images._write import KeyLocks
from ngio_async.stores import InstrumentedStore, ObstoreStore, open_store

if TYPE_CHECKING:
    from ngio_async.stores import AsyncStore, Buffer

pytestmark = pytest.mark.anyio

TILE = "1/c/0/0"  # the one level-1 object of the image below (its 32x32 level 0, 16x16 shards)


@pytest.fixture(params=["memory", "s3"])
def twin_stores(request: pytest.FixtureRequest) -> tuple[AsyncStore, AsyncStore]:
    """Two store objects over the same objects (memory, or a fresh prefix of moto's S3)."""
    if request.param == "memory":
        first = open_store("memory://")
        assert isinstance(first, ObstoreStore)
        return first, ObstoreStore(first.obstore)
    server = request.getfixturevalue("s3_server")
    url = server.fresh_url()
    return open_store(url, **server.options()), open_store(url, **server.options())


async def _image(store: AsyncStore) -> None:
    async with ngio_async.create_async(
        store, shape=(32, 32), dtype="uint16", axes="yx", chunks=(8, 8), shards=(16, 16),
        levels=2,
    ):  # fmt: skip
        pass


class OtherRebuildsFirst(InstrumentedStore):
    """Before the first conditional put of :data:`TILE`, another writer writes the right half
    of level 0 with ``pyramid=True`` through ``other``: its rebuild of the tile is stored
    first, from a level 0 holding both halves."""

    def __init__(self, inner: AsyncStore, other: AsyncStore) -> None:
        super().__init__(inner)
        self.other = other
        self.meddled = False

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        if key == TILE and not self.meddled:
            self.meddled = True
            async with ngio_async.open_async(self.other, mode="r+") as ds:
                for level in ds.levels:  # another process: write locks of its own
                    level._write_locks = KeyLocks()
                await ds.write(np.full((32, 16), 9, "uint16"), x=slice(16, 32), pyramid=True)
        return await super()._write_for_update_once(key, data, version)


class Refused(InstrumentedStore):
    """Every conditional put of :data:`TILE` is refused (as if rewritten each time)."""

    async def _write_for_update_once(self, key: str, data: Buffer, version: object) -> bool:
        if key == TILE:
            async with self._track("put", key):
                return False
        return await super()._write_for_update_once(key, data, version)


def _left() -> np.ndarray[Any, Any]:
    return np.arange(32 * 16, dtype="uint16").reshape(32, 16)


async def test_a_tile_stored_by_another_writer_meanwhile_is_rebuilt_again(
    twin_stores: tuple[AsyncStore, AsyncStore],
) -> None:
    first, other = twin_stores
    await _image(first)
    store = OtherRebuildsFirst(first, other)
    async with other, ngio_async.open_async(store, mode="r+") as ds:
        await ds.write(_left(), x=slice(0, 16), pyramid=True)
        assert store.meddled
        # its put (from a level 0 read before the other half landed) was refused; read
        # again, the tile held what a rebuild from level 0 gives: nothing more to write
        assert store.calls[("put", TILE)] == 1
        assert store.calls[("get", TILE)] == 2
        level0 = await ds.levels[0][...]
        level1 = await ds.levels[1][...]
    np.testing.assert_array_equal(level0[:, :16], _left())
    assert (level0[:, 16:] == 9).all()
    np.testing.assert_array_equal(level1, downsample(level0, (2, 2), "mean"))


async def test_a_tile_refused_every_time_names_it(
    twin_stores: tuple[AsyncStore, AsyncStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pyramid, "REBUILD_ATTEMPTS", 3)  # (the waits between grow)
    first, _ = twin_stores
    await _image(first)
    store = Refused(first)
    async with ngio_async.open_async(store, mode="r+") as ds:
        with pytest.raises(ChangedError, match=f"pyramid tile '{TILE}' \\(level '1'\\).* 3 reads"):
            await ds.write(_left(), x=slice(0, 16), pyramid=True)
        np.testing.assert_array_equal((await ds.levels[0][...])[:, :16], _left())


async def test_only_tiles_reaching_past_the_pixels_written_cost_a_get() -> None:
    store = InstrumentedStore(open_store("memory://"))
    await _image(store)
    data = np.arange(32 * 32, dtype="uint16").reshape(32, 32)
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        await ds.write(data, pyramid=True)  # the whole image: level 1 from memory
        assert store.method_counts == {"put": 5}
        store.reset()
        for x in (0, 16):  # two halves: the tile depends on the other half each time
            await ds.write(data[:, x : x + 16] + 1, x=slice(x, x + 16), pyramid=True)
        assert store.calls[("get", TILE)] == 2  # its version, read before level 0
        assert store.calls[("put", TILE)] == 2
        level0 = await ds.levels[0][...]
        np.testing.assert_array_equal(await ds.levels[1][...], downsample(level0, (2, 2), "mean"))
