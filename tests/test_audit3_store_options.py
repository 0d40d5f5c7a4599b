"""Store options given with an open store (audit of issue 3): ``open_async(store,
endpoint=...)`` dropped them without a word (the image opened through the store as it was,
credentials or ``anonymous=True`` unused), while ``open_store(store, ...)`` and ``create``
refuse them. They are refused, naming them; the caller's store stays open."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path) -> Path:
    with ngio_async.create(tmp_path / "img.ome.zarr", shape=(16, 16), dtype="uint8", axes="yx"):
        pass
    with ngio_async.create_plate(tmp_path / "plate.zarr", rows=["A"], columns=["1"]):
        pass
    return tmp_path


async def test_open_async_refuses_options_with_a_store(root: Path) -> None:
    async with open_store(root) as store:
        with pytest.raises(ValueError, match=r"\['anonymous', 'endpoint'\]"):
            await ngio_async.open_async(
                store, path="img.ome.zarr", endpoint="http://127.0.0.1:9", anonymous=True
            )
        with pytest.raises(ValueError, match=r"\['region'\]"):
            await ngio_async.open_plate_async(store, path="plate.zarr", region="eu-west-1")
        assert not store.closed
        async with ngio_async.open_async(store, path="img.ome.zarr") as ds:  # without: opens
            assert np.array_equal(await ds[...], np.zeros((16, 16), np.uint8))


def test_open_refuses_options_with_a_store(root: Path) -> None:
    store = open_store(root)
    with pytest.raises(ValueError, match=r"\['backend'\]"):
        ngio_async.open(store, path="img.ome.zarr", backend="aiohttp")
    with pytest.raises(ValueError, match=r"\['endpoint'\]"):
        ngio_async.open_plate(store, path="plate.zarr", endpoint="http://127.0.0.1:9")
    assert not store.closed
