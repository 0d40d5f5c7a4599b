"""Regressions found by running the read path as a user would (issue 3 audit)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def _image(tmp_path: Path) -> str:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(
        url, shape=(2, 16, 16), dtype="uint8", axes="cyx", chunks=(1, 8, 8), levels=1
    ) as ds:
        ds[...] = np.arange(2 * 16 * 16, dtype="uint8").reshape(2, 16, 16)
    return url


# An async dataset has __len__ and a __getitem__ returning coroutines: list(ds) and
# np.asarray(ds) (what a notebook user tries first) took the old sequence protocol and called
# ds[0], ds[1], ... for ever, filling memory (GBs in seconds); now a clear TypeError says what
# to do instead. Each case is bounded, so that a regression fails instead of eating memory.
def _bounded_list(ds: object) -> list[object]:
    return list(itertools.islice(ds, 3))  # type: ignore[call-overload]


def _guarded_asarray(ds: object) -> object:
    assert hasattr(ds, "__array__"), "without __array__, np.asarray(ds) never returns"
    return np.asarray(ds)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("use", "said"),
    [
        (_guarded_asarray, "is not a numpy array"),
        (_bounded_list, "is not iterable"),
        (iter, "is not iterable"),
    ],
)
async def test_an_async_dataset_refuses_numpy_and_iteration_clearly(
    tmp_path: Path, use: Callable[[object], object], said: str
) -> None:
    async with ngio_async.open_async(_image(tmp_path)) as ds:
        with pytest.raises(TypeError, match=said) as caught:
            use(ds)
        assert ds.url in str(caught.value)
        assert "ngio_async.open" in str(caught.value)
        assert np.array_equal(await ds[1, 0], np.arange(256, 272) % 256)


@pytest.mark.timeout(20)
async def test_an_async_level_and_its_indexers_refuse_numpy_and_iteration_clearly(
    tmp_path: Path,
) -> None:
    """A level's list(level) took the sequence protocol for ever too, and np.asarray(level)
    made a 0-d object array."""
    async with ngio_async.open_async(_image(tmp_path)) as ds:
        lvl = ds.levels[0]
        with pytest.raises(TypeError, match=r"the async level '0' of .* is not iterable"):
            _bounded_list(lvl)
        with pytest.raises(TypeError, match=r"is not an array.*ngio_async\.open"):
            _guarded_asarray(lvl)
        for indexer in (lvl.oindex, lvl.vindex):
            with pytest.raises(TypeError, match="is not iterable"):
                _bounded_list(indexer)
        assert np.array_equal(await lvl[1, 0], np.arange(256, 272) % 256)


@pytest.mark.timeout(20)
async def test_an_async_plate_is_neither_iterable_nor_an_array(tmp_path: Path) -> None:
    url = str(tmp_path / "plate.zarr")
    async with ngio_async.create_plate_async(url, rows=["A"], columns=[1]):
        pass
    async with ngio_async.open_plate_async(url) as plate:
        with pytest.raises(TypeError, match=r"the async plate .* is not iterable"):
            _bounded_list(plate)
        with pytest.raises(TypeError, match="is not a numpy array"):
            _guarded_asarray(plate)


# The blocking tiles(progress=...) called the callback on the loop thread when next() had
# waited for the tile, in the caller's thread when it was ready: a callback using the blocking
# API raised RuntimeError ("called from its own event loop thread") at random, and a GUI
# progress bar was updated from a foreign thread. Now it always runs in the consuming thread.
@pytest.mark.timeout(30)
def test_a_blocking_progress_callback_runs_in_the_consuming_thread(tmp_path: Path) -> None:
    import threading

    calls: list[tuple[int, bool, tuple[int, ...]]] = []
    with ngio_async.open(_image(tmp_path)) as ds:

        def progress(done: int, _total: int | None) -> None:
            here = threading.get_ident() == consumer
            calls.append((done, here, ds[0, :2, :2].shape))  # the blocking API works here

        for _ in range(3):
            calls.clear()
            consumer = threading.get_ident()
            for i, tile in enumerate(ds.tiles(shape=(1, 8, 8), progress=progress), start=1):
                assert calls[-1][0] == i  # counted before next() returns it
                assert np.array_equal(tile.data, ds[tile.region])
            assert calls == [(i, True, (2, 2)) for i in range(1, 9)]


# On a store that answers 403 for missing objects (S3 without s3:ListBucket, some static
# servers), opening a mistyped URL said only "access denied (HTTP 403) to 'zarr.json'": the
# message now says that both group documents were denied and that no image may be there.
def test_a_missing_image_where_missing_keys_are_denied_says_it_may_be_missing(
    tmp_path: Path,
) -> None:
    from servers import Faults, StaticServer

    server = StaticServer(tmp_path).start()
    try:
        server.faults = Faults(status=403, status_times=-1)
        with pytest.raises(ngio_async.PermissionDeniedError) as caught:
            ngio_async.open(server.url + "typo.zarr")
        message = str(caught.value)
        assert "'zarr.json'" in message and "typo.zarr" in message
        assert ".zattrs" in message and "no image there" in message
        assert caught.value.key == "zarr.json" and not caught.value.missing_credentials
        assert {r.method for r in server.requests} == {"GET"}  # opening wrote nothing
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["a b%20c#1?.zarr", "100%.zarr", "plain.zarr"])
def test_a_dataset_url_opens_the_same_directory_again(tmp_path: Path, name: str) -> None:
    """``ds.url`` escapes ``% # ?`` (a '%20' in a name was read back as a space, a '#' as the
    start of a fragment: 'no such directory')."""
    path = tmp_path / name
    with ngio_async.create(path, shape=(4, 4), dtype="uint8") as ds:
        ds.write(np.arange(16, dtype="uint8").reshape(4, 4))
        url = ds.url
    assert url.startswith("file://")
    with ngio_async.open(url) as again:
        assert again.url == url
        assert int(again[...].sum()) == 120


async def test_a_forgotten_await_says_so(tmp_path: Path) -> None:
    opening = ngio_async.open_async(_image(tmp_path))
    with pytest.raises(AttributeError, match=r"'shape': .* await it .*async with"):
        _ = opening.shape
    async with opening as ds:  # the opening itself still works
        assert ds.shape


def test_a_zarr_python_store_is_named_with_what_to_give_instead(tmp_path: Path) -> None:
    import zarr.storage

    with pytest.raises(TypeError, match=r"got zarr\.storage\..*LocalStore \(zarr-python stores"):
        ngio_async.open(zarr.storage.LocalStore(str(_image(tmp_path))))
    with pytest.raises(TypeError, match=r"got builtins\.int$"):
        ngio_async.open(3)
