"""Regressions found by auditing the writing issue (5) against its text, as a user runs it:
clear errors for bad input, and edits that change nothing write nothing."""

from __future__ import annotations

import errno
import json
import os
from typing import TYPE_CHECKING, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def make(path: Path, version: Literal["0.4", "0.5"]) -> None:
    async with ngio_async.create_async(
        path, shape=(2, 32, 32), dtype="uint16", axes="cyx", channels=["DAPI", "GFP"],
        ngff_version=version,
    ) as ds:  # fmt: skip
        await ds.write(np.ones((2, 32, 32), np.uint16))


def test_create_like_names_a_url_given_as_its_source(tmp_path: Path) -> None:
    src = tmp_path / "src.ome.zarr"
    with ngio_async.create(src, shape=(2, 32, 32), dtype="uint16", axes="cyx"):
        pass
    for given in (str(src), src):
        with pytest.raises(TypeError, match=r"src must be an open dataset.*open it first"):
            ngio_async.create_like(given, tmp_path / "b.ome.zarr")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.ome.zarr"]  # nothing created


async def test_create_like_async_names_a_url_given_as_its_source(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"src must be an open dataset.*open_async"):
        await ngio_async.create_like_async(str(tmp_path), tmp_path / "a.ome.zarr")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_label_values_the_dtype_cannot_hold_are_refused(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path, version)
    at = "$.image-label" if version == "0.4" else "$.ome.image-label"
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(MetadataError, match=r"label value 300 is not a uint8 value") as info:
            await ds.labels.create("a", dtype="uint8", colors={1: "#FF0000", 300: "#00FF00"})
        assert info.value.path == f"{at}.colors[1].label-value"
        with pytest.raises(MetadataError, match=r"label value -1 is not a uint16") as info:
            await ds.labels.create("b", dtype="uint16", properties={-1: {"class": "x"}})
        assert info.value.path.startswith(f"{at}.")
        assert info.value.path.endswith("].label-value")
        assert await ds.labels.names() == []  # refused before anything is written
        assert not (path / "labels").exists()
        lab = await ds.labels.create("c", dtype="int8", colors={-128: "#0000FF", 127: "#FF0000"})
        await lab.aclose()
        with pytest.raises(MetadataError, match="label value 128 is not a int8") as info:
            await ds.labels.set_colors("c", {128: "#00FF00"})
        assert info.value.path == f"{at}.colors[0].label-value"
        colors = await ds.labels.set_colors("c")  # the stored ones, untouched
    assert {c.label_value for c in colors} == {-128, 0, 127}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_set_channels_that_changes_nothing_writes_nothing(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path, version)
    key = path / ("zarr.json" if version == "0.5" else ".zattrs")
    doc = json.loads(key.read_bytes())
    key.write_text(json.dumps(doc, indent=4))  # as zarr-python / ome-zarr-py lay it out
    before = key.read_bytes()
    store = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(store, path="img.ome.zarr", mode="r+") as ds:
        await ds.set_channels(labels=["DAPI", "GFP"])
        await ds.set_channels(colors=[c.color or "FFFFFF" for c in ds.metadata.channels])
    assert store.method_counts["put"] == 0
    assert key.read_bytes() == before


async def test_a_set_scale_retried_after_a_failed_label_write_scales_the_label(
    tmp_path: Path,
) -> None:
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(path, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        await (await ds.labels.create("cells", dtype="uint8")).aclose()

    def full_disk(method: str, key: str) -> BaseException | None:
        if method == "put" and key.endswith("labels/cells/zarr.json"):
            return OSError(errno.ENOSPC, "No space left on device", key)
        return None

    store = InstrumentedStore(open_store(tmp_path), fail=full_disk)
    async with ngio_async.open_async(store, path="img.ome.zarr", mode="r+") as ds:
        with pytest.raises(ngio_async.StoreError):
            await ds.set_scale({"y": 2.0, "x": 2.0})
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.set_scale({"y": 2.0, "x": 2.0})  # the retry
    async with ngio_async.open_async(path / "labels" / "cells") as label:
        assert label.metadata.spatial_calibration[0].scale == (2.0, 2.0)


async def test_build_pyramid_on_a_read_only_dataset_raises_before_any_request(
    tmp_path: Path,
) -> None:
    await make(tmp_path / "img.ome.zarr", "0.5")
    store = InstrumentedStore(open_store(tmp_path))
    async with ngio_async.open_async(store, path="img.ome.zarr") as ds:
        store.reset()
        with pytest.raises(ngio_async.ReadOnlyError):
            await ds.build_pyramid(levels=2)
        assert store.total_requests == 0


async def test_an_unknown_dtype_is_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"^dtype 'foo' is not a data type"):
        await ngio_async.create_async(tmp_path / "a.ome.zarr", shape=(4, 4), dtype="foo")
    await make(tmp_path / "img.ome.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "img.ome.zarr", mode="r+") as ds:
        with pytest.raises(TypeError, match=r"^dtype 'uint33' is not a data type"):
            await ds.labels.create("cells", dtype="uint33")
        with pytest.raises(TypeError, match=r"^dtype 'bar' is not a data type"):
            await ngio_async.create_like_async(ds, tmp_path / "b.ome.zarr", dtype="bar")
    assert sorted(os.listdir(tmp_path)) == ["img.ome.zarr"]


@pytest.mark.parametrize("failing", ["a", "b"])
async def test_a_failed_set_scale_puts_back_what_it_rewrote(tmp_path: Path, failing: str) -> None:
    """The image and the label images rewritten before the failing one are put back as they
    were (byte for byte), the error names the failing document; the retry scales them all."""
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(path, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        for name in ("a", "b"):
            await (await ds.labels.create(name, dtype="uint8")).aclose()
    docs = [path / "zarr.json", path / "labels" / "a" / "zarr.json", path / "labels/b/zarr.json"]
    before = [p.read_bytes() for p in docs]

    def full_disk(method: str, key: str) -> BaseException | None:
        if method == "put" and key.endswith(f"labels/{failing}/zarr.json"):
            return OSError(errno.ENOSPC, "No space left on device", key)
        return None

    store = InstrumentedStore(open_store(tmp_path), fail=full_disk)
    async with ngio_async.open_async(store, path="img.ome.zarr", mode="r+") as ds:
        with pytest.raises(ngio_async.StoreError, match=f"labels/{failing}/zarr.json"):
            await ds.set_scale({"y": 2.0, "x": 2.0}, units="nanometer")
        assert ds.levels[0].scale == (1.0, 1.0)  # the open dataset follows the undo too
    assert [p.read_bytes() for p in docs] == before
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.set_scale({"y": 2.0, "x": 2.0}, units="nanometer")  # the retry
    for name in ("a", "b"):
        async with ngio_async.open_async(path / "labels" / name) as label:
            cal = label.metadata.spatial_calibration[0]
            assert cal.scale == (2.0, 2.0)
            assert [cal[a].unit for a in ("y", "x")] == ["nanometer", "nanometer"]
