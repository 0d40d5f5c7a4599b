"""numpy basic indexing on levels and datasets: ``None`` (newaxis) and negative steps as numpy.

Reads go through every path (one chunk, many chunks, strided reads that skip chunks, the sync
shim); writes through ``level[...] = data``. Advanced indexing is refused with a TypeError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from images import Spec, upload, write_image

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

SELECTIONS: list[Any] = [
    None,
    (None, 0),
    (0, None, slice(None, None, -1)),
    (..., None),
    (slice(None, None, -1), slice(None, None, -1), slice(None, None, -1)),
    (slice(1, None, -1), slice(60, 3, -7), slice(None, None, -20)),  # strided: skips chunks
    (-1, slice(40, 10, -1), 5),  # inside one chunk, backwards
    (slice(None), slice(5, 5, -1)),  # empty
    (None, ..., slice(None, None, -33), None),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    root = tmp_path_factory.mktemp("idx") / "img.ome.zarr"
    spec = Spec(shape=(2, 64, 64), chunks=(1, 16, 16), shards=(1, 32, 32), levels=1)
    return root, write_image(root, spec)[0]


@pytest.mark.anyio
@pytest.mark.parametrize("selection", SELECTIONS, ids=repr)
async def test_level_getitem_newaxis_and_negative_steps(
    image: tuple[Path, np.ndarray], selection: Any
) -> None:
    root, data = image
    async with ngio_async.open_async(root) as ds:
        got = await ds.levels[0][selection]
    np.testing.assert_array_equal(got, data[selection])
    assert got.shape == data[selection].shape


def test_sync_getitem_newaxis_and_negative_steps(image: tuple[Path, np.ndarray]) -> None:
    root, data = image
    with ngio_async.open(root) as ds:
        for selection in SELECTIONS:
            np.testing.assert_array_equal(ds[selection], data[selection])
            assert ds[selection].shape == data[selection].shape


@pytest.mark.parametrize(
    "selection",
    [(slice(None), [0, 1], np.array([0, 1])), (0, np.zeros((2, 2), bool)), True, 1.0],
    ids=["slice and two lists", "2-d mask", "bool", "float"],
)
def test_advanced_indexing_is_a_clear_type_error(
    image: tuple[Path, np.ndarray], selection: Any
) -> None:
    """One 1-D list, array or mask is read (tests/test_read_list_index.py), and pure fancy
    indexing pointwise as zarr-python does (tests/test_read_oindex_vindex.py); not other mixes."""
    with (
        ngio_async.open(image[0]) as ds,
        pytest.raises(TypeError, match=r"basic indexing|one list or array index|one dimension"),
    ):
        ds[selection]


@pytest.mark.anyio
async def test_setitem_newaxis_and_negative_steps(tmp_path: Path) -> None:
    root = tmp_path / "img.ome.zarr"
    data = write_image(root, Spec(shape=(2, 64, 64), chunks=(1, 16, 16), levels=1))[0]
    async with ngio_async.open_async(root, mode="r+") as ds:
        lvl = ds.levels[0]
        value = np.arange(2 * 64, dtype="uint16").reshape(2, 1, 64)
        await lvl.setitem((slice(None, None, -1), None, 3), value)
        data[::-1, 3] = value[:, 0]
        await lvl.setitem((0, slice(50, 2, -16), slice(None, None, -1)), 7)
        data[0, 50:2:-16, ::-1] = 7
        np.testing.assert_array_equal(await lvl[...], data)


@pytest.mark.anyio
@pytest.mark.parametrize("shards", [None, (32, 32)], ids=["chunked", "sharded"])
async def test_remote_read_of_a_region_outside_the_level_is_refused(
    tmp_path: Path, s3_server: S3Server, shards: tuple[int, int] | None
) -> None:
    """A region inside one chunk but past the level's edge read the chunk's padding remotely
    (a (14, 3) array from a 10-row level); it is a ValueError on every store, as locally."""
    root = tmp_path / "img.ome.zarr"
    write_image(root, Spec(shape=(10, 10), chunks=(10, 10), levels=1))
    data = np.asarray(zarr.open_array(root / "0")[...])
    zarr.create_array(root, name="0", data=data, chunks=(16, 16), shards=shards, overwrite=True)
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(root, store)
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        lvl = ds.levels[0]
        assert lvl.chunks == (16, 16)
        for region in [(slice(0, 14), slice(0, 3)), (slice(0, 3), slice(None)), (slice(0, 3),)]:
            with pytest.raises(ValueError, match="region"):
                await lvl.read(region)
        np.testing.assert_array_equal(await lvl.read((slice(0, 10), slice(0, 3))), data[:, :3])


def test_index_cache_get_survives_an_eviction_by_another_thread() -> None:
    """Decode threads share a tile stream's index cache: a key evicted by another thread's put
    between ``get``'s lookup and its LRU bump raised KeyError out of the stream."""
    from collections import OrderedDict

    from ngio_async.images._index_cache import IndexCache

    class EvictedMeanwhile(OrderedDict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            value = super().get(key, default)
            self.pop(key, None)  # what a concurrent put's popitem(last=False) does
            return value

    cache = IndexCache()
    cache.put("0/c/0/0", None)
    cache._entries = EvictedMeanwhile(cache._entries)
    assert cache.get("0/c/0/0") is None  # the index it found, not a KeyError


@pytest.mark.anyio
@pytest.mark.parametrize("shards", [None, (1, 128, 128)], ids=["chunked", "sharded"])
async def test_strided_reads_never_hold_the_covering_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shards: tuple[int, ...] | None
) -> None:
    """``level[::16, ::16]`` (a thumbnail) decoded the whole covering region into one array
    (5 GB for a 50k x 50k slide). A large covering region is read in blocks now, a bounded
    number at once (budgets scaled down here: 32 KiB blocks, 128 KiB at once, 2 MiB level)."""
    import tracemalloc

    from ngio_async.images import _level

    monkeypatch.setattr(_level, "_PART_BYTES", 32 << 10, raising=False)
    monkeypatch.setattr(_level, "_STRIDED_BYTES", 128 << 10, raising=False)
    root = tmp_path / "img.ome.zarr"
    spec = Spec(shape=(1, 1024, 1024), chunks=(1, 64, 64), shards=shards, levels=1)
    data = write_image(root, spec)[0]
    async with ngio_async.open_async(root) as ds:
        lvl = ds.levels[0]
        await lvl[0, ::8, ::8]  # warm up: decode threads, their scratch buffers, codecs
        selections: list[tuple[Any, ...]] = [
            np.s_[0, ::16, ::16],
            np.s_[0, ::-64, 5::64],
            np.s_[:, 3::3, ::-7],
        ]
        for selection in selections:
            tracemalloc.start()
            try:
                got = await lvl[selection]
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            np.testing.assert_array_equal(got, data[selection])
            assert peak < lvl.nbytes // 2 + got.nbytes, (selection, peak)  # old: > nbytes


@pytest.mark.parametrize("selection", [1.5, "a", (slice(0, 2), 2.0)], ids=["float", "str", "tuple"])
def test_a_float_or_string_index_is_an_index_error_as_in_numpy(
    image: tuple[Path, np.ndarray], selection: Any
) -> None:
    with pytest.raises(IndexError):
        image[1][selection]  # numpy's answer
    with ngio_async.open(image[0]) as ds, pytest.raises(IndexError, match="basic indexing"):
        ds[selection]
