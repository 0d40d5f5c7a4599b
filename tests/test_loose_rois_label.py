"""``ds.read_rois(..., label="<name>")`` opens the label image for the stream: it is closed
when the stream ends (exhausted, a break, an error, a cancel, ``aclose``), the image that
holds it and its store stay open and read on; a label image passed open is never closed."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async import stream

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.images import Dataset, RoiStream

pytestmark = pytest.mark.anyio

TABLE = "nuclei_ROI_table"


def _image(root: Path) -> str:
    url = str(root / "img.ome.zarr")
    with ngio_async.create(
        url, shape=(1, 16, 16), dtype="uint16", axes="cyx", scale=0.5, levels=1
    ) as ds:
        ds.write(np.arange(256, dtype="uint16").reshape(1, 16, 16))
        with ds.labels.create("nuclei", dtype="uint16") as lab:
            cells = np.zeros((16, 16), "uint16")
            cells[2:6, 2:6] = 1
            cells[8:12, 10:14] = 2
            cells[12:14, 0:3] = 3
            lab.write(cells)
            ds.tables.write_rois(TABLE, lab.masking_rois(), label="nuclei")
    return url


def _label(rois: RoiStream) -> Dataset:
    label: Any = rois._label
    assert not isinstance(label, str) and label is not None, "the stream opened no label"
    return label  # type: ignore[no-any-return]


async def _still_reads(ds: Dataset) -> None:
    """The image, its store and its label image still read."""
    assert not ds.closed and not ds.store.closed
    assert int((await ds.read())[0, 3, 3]) == 3 * 16 + 3
    async with ds.labels.open("nuclei") as lab:
        assert int((await lab.read())[9, 11]) == 2


async def test_label_closed_at_the_end_and_on_a_break(tmp_path: Path) -> None:
    async with ngio_async.open_async(_image(tmp_path)) as ds:
        rois = ds.read_rois(TABLE, label="nuclei")
        seen = [int(r.mask.sum()) async for r in rois]
        assert seen == [16, 16, 6]
        assert _label(rois).closed
        await _still_reads(ds)

        rois = ds.read_rois(TABLE, label="nuclei", prefetch=1)
        async for r in rois:  # a bare loop left by a break: the iterator is dropped
            assert r.roi.label == 1
            break
        gc.collect()
        await anyio.sleep(0.01)
        assert _label(rois).closed
        await _still_reads(ds)

        rois = ds.read_rois(TABLE, label="nuclei", prefetch=1)
        async with rois as it:  # the structured form, left by a break
            async for _ in it:
                break
        assert _label(rois).closed
        await _still_reads(ds)

        rois = ds.read_rois(TABLE, label="nuclei")
        bare: Any = rois.__aiter__()
        await bare.__anext__()
        await bare.aclose()
        assert _label(rois).closed
        await _still_reads(ds)


async def test_label_closed_on_an_error_and_a_cancel(tmp_path: Path) -> None:
    async with ngio_async.open_async(_image(tmp_path)) as ds:
        rois = ds.read_rois(TABLE, label="nuclei")

        async def consume() -> None:
            async for r in rois:
                _ = 1 / (int(r.roi.label or 0) - 1)

        with pytest.raises(ZeroDivisionError):
            await consume()
        gc.collect()
        await anyio.sleep(0.01)
        assert _label(rois).closed

        # a read failing inside the stream (a ROI outside the image) ends it, label closed
        (roi, *_) = await ds.tables.rois(TABLE)
        bad = type(roi)("far", {"x": (100.0, 101.0), "y": (0.0, 1.0)}, label=1)
        rois = ds.read_rois([roi, bad], label="nuclei")
        with pytest.raises(IndexError, match="far"):
            async for _ in rois:
                pass
        assert _label(rois).closed

        rois = ds.read_rois(TABLE, label="nuclei")
        with anyio.CancelScope() as scope:  # cancelled while it reads ahead
            async with rois as it:
                async for _ in it:
                    scope.cancel()
                    await anyio.sleep(1)
        assert scope.cancelled_caught
        assert _label(rois).closed
        await _still_reads(ds)


async def test_label_stays_open_for_the_writes_of_a_stream(tmp_path: Path) -> None:
    async with ngio_async.open_async(_image(tmp_path), mode="r+") as ds:
        out = await ds.labels.create("cells", dtype="uint16")
        rois = ds.read_rois(TABLE, label="nuclei")
        await stream(rois, lambda a: np.full(a.shape[1:], 7, "uint16"), out=out, masked=True)
        assert _label(rois).closed
        got = await out.read()
        await out.aclose()
        assert int(got.sum()) == 7 * (16 + 16 + 6)
        await _still_reads(ds)


async def test_an_open_label_is_not_closed(tmp_path: Path) -> None:
    async with ngio_async.open_async(_image(tmp_path)) as ds, ds.labels.open("nuclei") as lab:
        assert [r.roi.label async for r in ds.read_rois(TABLE, label=lab)] == [1, 2, 3]
        assert not lab.closed
        assert int((await lab.read())[3, 3]) == 1


def test_label_closed_blocking(tmp_path: Path) -> None:
    with ngio_async.open(_image(tmp_path)) as ds:
        it = ds.read_rois(TABLE, label="nuclei")
        for _ in it:
            break
        it.close()
        keep: Any = it.keep
        assert _label(keep[2]).closed
        assert int(ds.read()[0, 3, 3]) == 51
