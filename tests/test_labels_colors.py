"""``labels.set_colors``: colors derived from the label values written, so that label images
pass ``validate --strict`` (NGFF L3: ``colors`` SHOULD exist) and viewers that draw a value
without a color transparent (napari through ome-zarr-py) show every label."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async import MetadataError, ReadOnlyError
from ngio_async.cli._validate import validate_hierarchy

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def cells() -> np.ndarray:
    data = np.zeros((1, 64, 64), np.uint32)
    data[0, :8, :8] = 1
    data[0, 40:50, 40:50] = 7
    data[0, 60:, 60:] = 2**31  # a value no tile-local range would hold
    return data


async def make(path: Path, version: Literal["0.4", "0.5"], **label: Any) -> None:
    async with ngio_async.create_async(
        path, shape=(2, 1, 64, 64), dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16),
        levels=2, channels=["DAPI", "GFP"], ngff_version=version,
    ) as ds:  # fmt: skip
        await ds.write(np.ones((2, 1, 64, 64), np.uint16), pyramid=True)
        lab = await ds.labels.create("cells", **label)
        await lab.write(cells(), pyramid=True)
        await lab.aclose()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_derived_colors_pass_strict_and_reach_peer_readers(
    tmp_path: Path, version: Literal["0.4", "0.5"], caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path, version, colors={7: [1, 2, 3, 255]}, properties=[{"label-value": 7, "k": "x"}])
    async with ngio_async.open_async(path, mode="r+") as ds:
        colors = await ds.labels.set_colors("cells")
        again = await ds.labels.set_colors("cells")  # nothing new: the same colors
    got = {c.label_value: c.rgba or [] for c in colors}
    assert got.keys() == {0, 1, 7, 2**31}
    assert got[7] == [1, 2, 3, 255]  # a stored color is kept
    assert got[0] == [0, 0, 0, 0]  # background: transparent
    assert got[1] != got[2**31] and got[1][3] == got[2**31][3] == 255
    assert [(c.label_value, c.rgba) for c in again] == [(c.label_value, c.rgba) for c in colors]
    report = await validate_hierarchy(str(path), strict=True)
    assert report.errors == [], [p.line() for p in report.problems]

    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Label, Reader  # type: ignore[import-untyped]

    caplog.set_level(logging.ERROR, logger="ome_zarr")
    reader = Reader(parse_url(str(path / "labels" / "cells")))
    nodes = [n for n in reader() if n.load(Label)]
    meta = nodes[0].metadata
    assert meta["color"] == {v: [x / 255 for x in rgba] for v, rgba in got.items()}
    # kept, and one per colored value (ome-zarr-models, thus ngio, wants the same values)
    assert meta["properties"] == {7: {"k": "x"}, 0: {}, 1: {}, 2**31: {}}
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), cells())

    ngio = pytest.importorskip("ngio")
    container = ngio.open_ome_zarr_container(str(path))
    assert container.list_labels() == ["cells"]
    np.testing.assert_array_equal(container.get_label("cells").get_as_numpy(), cells())


async def test_explicit_colors_replace_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.zarr"
    await make(path, "0.5")
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(ValueError, match="more than 2 values"):
            await ds.labels.set_colors("cells", max_values=2)  # 0, 1, 7, 2**31
        label = await ds.labels.open("cells")
        assert label.metadata.ome.image_label is not None
        assert label.metadata.ome.image_label.colors is None  # nothing written
        await label.aclose()
        with pytest.raises(MetadataError, match=r"0\.\.1 floats"):
            await ds.labels.set_colors("cells", {1: (1.0, 0.0, 0.0, 1.0)})  # type: ignore[dict-item]
        colors = await ds.labels.set_colors("cells", {1: (255, 0, 0, 255)})
        assert [(c.label_value, c.rgba) for c in colors] == [(1, [255, 0, 0, 255])]
    async with ngio_async.open_async(path) as ds:
        with pytest.raises(ReadOnlyError):
            await ds.labels.set_colors("cells")
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(FileNotFoundError, match="no label 'other'"):
            await ds.labels.set_colors("other")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_created_colors_and_properties_open_in_ngio(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    """ome-zarr-models (ngio's reader) refuses a color without ``rgba`` and colors and
    properties of different label values: such labels did not open in ngio at all."""
    ngio = pytest.importorskip("ngio")
    path = tmp_path / "img.ome.zarr"
    async with ngio_async.create_async(
        path, shape=(1, 16, 16), dtype="uint8", axes="cyx", ngff_version=version
    ) as ds:
        await ds.labels.create(
            "a", colors={1: [255, 0, 0, 255], 2: [0, 255, 0, 255]}, properties=[{"label-value": 3}]
        )
        await ds.labels.create("b", colors=[{"label-value": 1}])
        c = await ds.labels.create("c", colors={1: None, 2: [1, 2, 3, 4]})  # None: derived
        assert c.metadata.ome.image_label is not None
        assert [x.rgba for x in c.metadata.ome.image_label.colors or []][1] == [1, 2, 3, 4]
        assert all(x.rgba for x in c.metadata.ome.image_label.colors or [])
        await c.aclose()
        a = await ds.labels.open("a")
        image_label = a.metadata.ome.image_label
        await a.aclose()
    assert image_label is not None
    assert [c.label_value for c in image_label.colors or []] == [1, 2, 3]
    assert [p.label_value for p in image_label.properties or []] == [3, 1, 2]
    container = ngio.open_ome_zarr_container(str(path))
    for name in ("a", "b", "c"):
        assert container.get_label(name).shape == (16, 16)


async def test_derived_colors_keep_colors_another_writer_set_during_the_scan(
    tmp_path: Path,
) -> None:
    """``set_colors()`` derives colors from the stored values (a scan of level 0) and writes
    them with the colors stored *then*: another writer's colors set during the scan are kept
    (it wrote those read when the label was opened: the other writer's were lost)."""
    import anyio

    from ngio_async.stores import Buffer, ByteRequest, InstrumentedStore, open_store

    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(8, 8), dtype="uint8", axes="yx", levels=1) as img:
        img.labels.create("cells").write(np.arange(64, dtype="uint32").reshape(8, 8) % 3)
    scanning, go = anyio.Event(), anyio.Event()

    class Paused(InstrumentedStore):
        async def _get_once(self, key: str, byte_range: ByteRequest | None) -> Buffer | None:
            if key.startswith("labels/cells/0/c") and not scanning.is_set():
                scanning.set()
                await go.wait()
            return await super()._get_once(key, byte_range)

    async def other_writer() -> None:
        await scanning.wait()
        async with ngio_async.open_async(url, mode="r+") as other:
            await other.labels.set_colors("cells", {5: (255, 0, 0, 255)})
        go.set()

    store = Paused(open_store(url))
    async with (
        store,
        ngio_async.open_async(store, mode="r+") as ds,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(other_writer)
        colors = await ds.labels.set_colors("cells")
    assert sorted(c.label_value for c in colors) == [0, 1, 2, 5]
    with ngio_async.open(url) as back, back.labels.open("cells") as label:
        stored = label.metadata.ome.image_label
        assert stored is not None and stored.colors is not None
        assert {c.label_value: c.rgba for c in stored.colors}[5] == [255, 0, 0, 255]
