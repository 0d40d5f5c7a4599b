"""Opening a remote image asks for its first level's metadata along with the group's document
(one round trip fewer when the level is named ``0``, as most are); a wrong guess costs one
request and changes nothing else."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path


def _gets(store: InstrumentedStore) -> dict[str, int]:
    return {key: n for (method, key), n in store.calls.items() if method == "get"}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_the_first_level_is_read_with_the_group(tmp_path: Path, version: str) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(8, 8), dtype="uint8", axes="yx", ngff_version=version) as ds:
        ds.write(np.arange(64, dtype="uint8").reshape(8, 8))
    store = InstrumentedStore(open_store(url), latency=0.05)  # remote-like: no blocking reads
    async with store, ngio_async.open_async(store) as ds:
        assert int((await ds.read())[7, 7]) == 63
    gets = _gets(store)
    group = "zarr.json" if version == "0.5" else ".zattrs"
    assert gets[group] == 1 and gets["0/zarr.json"] == 1  # the guess (0.5) asked once
    if version == "0.5":
        assert store.peak_in_flight >= 2  # group and level documents in flight together
    else:
        assert gets["0/.zarray"] == 1  # a 0.4 image: the guess missed, the level read once


async def test_a_level_not_named_0_opens_after_one_wasted_request(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    with ngio_async.create(str(url), shape=(8, 8), dtype="uint8", axes="yx", levels=1) as ds:
        ds.write(np.full((8, 8), 5, dtype="uint8"))
    (url / "0").rename(url / "s0")
    doc = json.loads((url / "zarr.json").read_text())
    doc["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "s0"
    (url / "zarr.json").write_text(json.dumps(doc))
    store = InstrumentedStore(open_store(str(url)))
    async with store, ngio_async.open_async(store) as ds:
        assert (await ds.read() == 5).all()
    gets = _gets(store)
    assert gets.get("0/zarr.json", 0) <= 1 and gets["s0/zarr.json"] == 1


async def test_a_missing_image_is_a_plain_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    store = InstrumentedStore(open_store(str(tmp_path / "empty")))
    async with store:
        with pytest.raises(ngio_async.NotFoundError):  # not an exception group
            await ngio_async.open_async(store)
        assert store.in_flight == 0


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_group_read_takes_the_early_answer(tmp_path: Path, version: str) -> None:
    """A bioformats2raw container's first image has its group document at ``0/zarr.json``
    (0.5), the first level's guess: ``read_group_metadata(..., early=)`` takes that answer
    (present, or missing for 0.4) instead of asking again."""
    from test_validate_bf2raw import container

    from ngio_async.images._open import EarlyGet, first_level_key, read_group_metadata

    path = container(tmp_path, version)
    store = InstrumentedStore(open_store(str(path)), latency=0.01)
    async with store, anyio.create_task_group() as tg:
        early = EarlyGet(store, first_level_key("", None))
        tg.start_soon(early.run)
        meta = await read_group_metadata(store, "0", early=early)
    assert meta.multiscales is not None
    assert _gets(store) == (
        {"0/zarr.json": 1} if version == "0.5" else {"0/zarr.json": 1, "0/.zattrs": 1}
    )


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_container_opens_its_first_image_with_the_early_answer(
    tmp_path: Path, version: str
) -> None:
    """Opening a bioformats2raw container reads series 0's group document once: the early
    GET of ``0/zarr.json`` already holds it (0.5; for 0.4 it holds the miss)."""
    from test_validate_bf2raw import container

    path = container(tmp_path, version)
    store = InstrumentedStore(open_store(str(path)), latency=0.01)
    async with store, ngio_async.open_async(store) as ds:
        assert ds.shape
    gets = _gets(store)
    assert gets["0/zarr.json"] == 1, gets
