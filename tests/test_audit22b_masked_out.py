"""stream(ds.read_rois(..., label=...), func, out=<label image>, masked=True) writes each
result only where its ROI's object is, the rest of the box as stored, as ngio 1.1.3's
MaskedSegmentationIterator does (it protects the pixels outside the mask): an object whose
box holds another object (an L around it) no longer zeroes that one's pixels (written
before it)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

DATA = np.random.default_rng(5).integers(0, 200, (1, 2, 32, 40), dtype=np.uint16)
NUCLEI = np.zeros(DATA.shape[1:], np.uint32)
NUCLEI[:, 2:28, 2:8] = 2
NUCLEI[:, 22:28, 2:36] = 2  # an L: its box holds object 1 (written after it)
NUCLEI[:, 5:18, 12:30] = 1


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = ((a > 100) * (1 + a % 5)).astype(np.uint32)
    return out


def _ngio(path: Path) -> np.ndarray[Any, Any]:
    """ngio's MaskedSegmentationIterator into label ``seg``: its level 0."""
    import ngio
    from ngio.iterators import MaskedSegmentationIterator

    c: Any = ngio.open_ome_zarr_container(str(path))
    seg = c.derive_label("seg", dtype="uint32")
    it: Any = MaskedSegmentationIterator(
        c.get_masked_image("nuclei"), seg, channel_selection="DAPI", axes_order="zyx"
    )
    it.map_as_numpy(segment)
    return np.asarray(c.get_label("seg", path="0").get_as_numpy())


async def test_masked_stream_into_a_label_writes_inside_the_objects(tmp_path: Path) -> None:
    pytest.importorskip("ngio")
    path = tmp_path / "ours.zarr"
    async with await ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="czyx", channels=["DAPI"], levels=2,
        chunks=(1, 1, 16, 16), ngff_version="0.4",
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)
        nuclei = await ds.labels.create("nuclei", dtype="uint32")
        await nuclei.write(NUCLEI, pyramid=True)
        await ds.tables.write_rois("nuclei_ROI_table", await nuclei.masking_rois(), label="nuclei")
        await nuclei.aclose()
    shutil.copytree(path, tmp_path / "ngio.zarr")
    theirs = _ngio(tmp_path / "ngio.zarr")
    want = np.where(NUCLEI > 0, segment(DATA[0]), 0)
    np.testing.assert_array_equal(theirs, want)
    async with ngio_async.open_async(path, mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint32")
        rois = ds.read_rois("nuclei_ROI_table", label="nuclei", c="DAPI")
        await ngio_async.stream(rois, segment, out=seg, masked=True, pyramid=True, threads=1)
        np.testing.assert_array_equal(await seg.read(), want)
        lower = await seg.read(level=1)
        await seg.build_pyramid()
        np.testing.assert_array_equal(lower, await seg.read(level=1))


async def test_masked_stream_into_a_label_reads_the_labels_once(tmp_path: Path) -> None:
    """Each ROI's labels, read by the stream, also say where to write in the label image out:
    they are not read a second time, nor is out's box (14 label GETs were 8 here)."""
    from ngio_async.stores import InstrumentedStore, open_store

    path = str(tmp_path / "img.zarr")
    async with await ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="czyx", channels=["DAPI"], levels=1,
        chunks=(1, 1, 16, 16), ngff_version="0.5",
    ) as ds:  # fmt: skip
        await ds.write(DATA)
        nuclei = await ds.labels.create("nuclei", dtype="uint32")
        await nuclei.write(NUCLEI)
        await ds.tables.write_rois("nuclei_ROI_table", await nuclei.masking_rois(), label="nuclei")
        await nuclei.aclose()
    store = InstrumentedStore(open_store(path))

    def gets(prefix: str) -> int:
        return sum(n for (m, k), n in store.calls.items() if m == "get" and k.startswith(prefix))

    async with ngio_async.open_async(store, mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint32")
        store.reset()
        async for _ in ds.read_rois("nuclei_ROI_table", label="nuclei", c="DAPI"):
            pass
        read_alone = gets("labels/nuclei/")
        store.reset()
        rois = ds.read_rois("nuclei_ROI_table", label="nuclei", c="DAPI")
        await ngio_async.stream(rois, segment, out=seg, masked=True, threads=1)
        assert gets("labels/nuclei/") == read_alone
        puts = sum(n for (m, k), n in store.calls.items() if m == "put" and "seg/" in k)
        assert gets("labels/seg/0/") <= puts  # one read per object patched, no box read
        np.testing.assert_array_equal(await seg.read(), np.where(NUCLEI > 0, segment(DATA[0]), 0))
        await seg.aclose()
