"""``stream()`` over ROI streams: ``func`` per ROI in worker threads, results collected or
written at each ROI (or only where a masked ROI's object is), within the stream's bounds."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

FOVS = [
    Roi.box(
        f"FOV_{i}", x=(5.0 * (i % 4), 5.0 * (i % 4) + 5.0), y=(8.0 * (i // 4), 8.0 * (i // 4) + 8.0)
    )
    for i in range(8)
]


def _labels() -> Any:
    lab = np.zeros((3, 32, 40), np.uint16)
    lab[0:2, 4:12, 6:18] = 7
    lab[1:3, 18:30, 22:38] = 12
    lab[1, 10:14, 14:20] = 9  # across 7's box: 7's result must leave 9's pixels alone
    lab[0, 5:7, 7:9] = 0  # a hole in 7: its box's result must not land there
    return lab


async def _image(path: Path) -> None:
    import ngio

    data = np.arange(2 * 3 * 32 * 40, dtype=np.uint16).reshape(2, 3, 32, 40)
    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        data,
        pixelsize=0.5,
        z_spacing=2.0,
        levels=1,
        axes_names="czyx",
        channels_meta=["DAPI", "GFP"],
        ngff_version="0.5",
    )
    label = c.derive_label("nuclei")
    label.set_array(_labels())
    label.consolidate()
    c.add_table("nuclei_ROI_table", c.build_masking_roi_table("nuclei"))
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("FOV_ROI_table", FOVS)


def segment(pixels: Any) -> Any:
    return ((pixels[0] % 7 == 0) * (1 + pixels[0] % 3)).astype(np.uint32)


async def test_results_equal_a_plain_read_func_write_loop(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        a = await ds.labels.create("a", dtype="uint32")
        b = await ds.labels.create("b", dtype="uint32")
        async for r in ds.read_rois("FOV_ROI_table"):
            await a.write_roi(r.roi, segment(r.data))
        rois = ds.read_rois("FOV_ROI_table", prefetch=2)
        assert await ngio_async.stream(rois, segment, out=b, threads=2, window=3) is None
        want = await a.read()
        assert want.any()
        np.testing.assert_array_equal(await b.read(), want)
        got = await ngio_async.stream(ds.read_rois(FOVS, c="GFP"), lambda p: p.sum())
        assert got is not None and sorted(r.roi.name for r, _ in got) == [r.name for r in FOVS]
        for r, value in got:
            assert value == (await ds.read_roi(r.roi, c="GFP")).data.sum()
        await a.aclose()
        await b.aclose()


async def test_peak_rois_in_flight_stays_within_window_and_threads(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    lock = threading.Lock()
    count = {"started": 0, "consumed": 0, "running": 0, "peak_held": 0, "peak_running": 0}

    def func(pixels: Any) -> int:
        with lock:
            count["started"] += 1
            count["running"] += 1
            held = count["started"] - count["consumed"]
            count["peak_held"] = max(count["peak_held"], held)
            count["peak_running"] = max(count["peak_running"], count["running"])
        try:
            return int(pixels.sum())
        finally:
            with lock:
                count["running"] -= 1

    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        rois = ds.read_rois(FOVS * 3, prefetch=4)
        async with ngio_async.stream(rois, func, threads=2, window=3) as results:
            async for _ in results:
                with lock:
                    count["consumed"] += 1
                for _ in range(5):  # a slow consumer: the stream may run ahead, up to its bounds
                    await anyio.lowlevel.checkpoint()
    assert count["consumed"] == count["started"] == 24
    assert count["peak_held"] <= 3
    assert count["peak_running"] <= 2
    assert count["peak_held"] >= 2  # it did run ahead of the consumer


async def test_an_error_in_func_names_the_roi_and_stops_the_rest(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    calls: list[int] = []

    def func(pixels: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise ZeroDivisionError("bad FOV")
        return segment(pixels)

    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        seg = await ds.labels.create("seg", dtype="uint32")
        rois = ds.read_rois("FOV_ROI_table", prefetch=1)
        with pytest.raises(ZeroDivisionError, match="bad FOV") as info:
            await ngio_async.stream(rois, func, out=seg, threads=1, window=1)
        assert any("ROI 'FOV_2'" in note for note in info.value.__notes__)
        assert len(calls) == 3  # no ROI after it ran
        # FOV_0 was written before FOV_1 was handed over (window=1); FOV_1's write may be
        # cancelled by FOV_2's error; nothing after FOV_2 is written
        for i, roi in enumerate(FOVS):
            if i == 1:
                continue
            box = (await seg.read_roi(roi)).data
            want = segment((await ds.read_roi(roi)).data) if i == 0 else 0
            np.testing.assert_array_equal(box, want)
        assert (await seg.read())[:, 16:].max() == 0
        # a break leaves nothing in flight either: the dataset closes cleanly
        async with ngio_async.stream(ds.read_rois(FOVS), segment, window=2) as results:
            async for _ in results:
                break
        await seg.aclose()


async def test_a_masked_streams_results_land_only_where_each_object_is(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    lab = _labels()
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        want = await ds.read()
        want[:, lab != 0] = 1000  # not the hole in 7, nor the rest of any box
        async with ds.masked("nuclei") as m:
            func = lambda a: np.full_like(a, 1000)  # one value over the whole box
            assert await ngio_async.stream(m.stream(), func, out=m, window=2) is None
        np.testing.assert_array_equal(await ds.read(), want)


async def test_out_a_roi_stream_cannot_write_is_refused_at_the_call(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        with pytest.raises(TypeError, match=r"takes a dataset .* or a masked image"):
            ngio_async.stream(ds.read_rois(FOVS), segment, out=object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a stream of planes"):
            ngio_async.stream(ds.read_rois(FOVS, planes=("z",)), segment, out=ds)


async def test_results_go_back_to_the_selection_read(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    lab = _labels()
    async with ngio_async.open_async(tmp_path / "img.zarr", mode="r+") as ds:
        want = await ds.read()
        await ngio_async.stream(ds.read_rois(FOVS[:4], c="GFP"), lambda p: p + 5, out=ds)
        want[1, 0, :16] += 5  # the first row of FOVs (z 0:1 µm: plane 0), GFP only
        np.testing.assert_array_equal(await ds.read(), want)
        async with ds.masked("nuclei") as m:
            await ngio_async.stream(m.stream(c="DAPI"), lambda p: np.full_like(p, 9), out=m)
        want[0, lab != 0] = 9  # DAPI only, each object only
        np.testing.assert_array_equal(await ds.read(), want)
        cells = await ds.labels.create("cells", dtype="uint16")
        await cells.write(np.full((3, 32, 40), 2, np.uint16))
        await cells.aclose()
        async with ds.masked("nuclei") as m, ds.masked("nuclei", of="cells") as onto:
            await ngio_async.stream(m.stream(c="GFP"), lambda p: np.full_like(p, 4), out=onto)
            np.testing.assert_array_equal(await onto.image.read(), np.where(lab != 0, 4, 2))


async def test_cancelling_the_consumer_leaves_no_roi_in_flight(tmp_path: Path) -> None:
    await _image(tmp_path / "img.zarr")
    lock = threading.Lock()
    count = {"started": 0, "running": 0}

    def func(pixels: Any) -> int:
        with lock:
            count["started"] += 1
            count["running"] += 1
        try:
            return int(pixels.sum())
        finally:
            with lock:
                count["running"] -= 1

    async with ngio_async.open_async(tmp_path / "img.zarr") as ds:
        with anyio.CancelScope() as scope:
            async with ngio_async.stream(ds.read_rois(FOVS * 4), func, window=4) as results:
                async for _ in results:
                    scope.cancel()
                    await anyio.lowlevel.checkpoint()  # cancelled here
        assert scope.cancelled_caught
        assert count["running"] == 0  # the worker threads were waited for
        started = count["started"]
        assert started < 32
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert count["started"] == started  # nothing started after the block was left
        assert (await ds.read_roi(FOVS[0])).data.shape == (2, 1, 16, 10)  # still usable
