"""``stream(..., stitch=StitchConfig(seam_matcher=...))`` runs the matcher (and the IoU) in a
worker thread, one call at a time, as the results land: the event loop stays free (a matcher
waiting for the loop to act would deadlock on the loop's thread), its error stops the stream
naming the seam, the result it was joining not written and nothing rewritten."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from test_ngio4_stitch import HALO, TILE, _image, _same_objects, _whole

import ngio_async
from ngio_async import StitchConfig
from ngio_async.images._stitch import iou_pairs
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore::FutureWarning")]


async def test_the_matcher_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """The matcher waits until the test's loop task has seen it start: on the loop's thread
    the task would never run (the matcher gives up after 60 s and the test fails)."""
    img = _image()
    started, go = threading.Event(), threading.Event()
    threads: set[int] = set()
    calls = []

    def matcher(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
        threads.add(threading.get_ident())
        calls.append(a.shape)
        started.set()
        if not go.wait(60):
            raise RuntimeError("the event loop never ran while the matcher waited")
        return iou_pairs(a, b, 0.3)

    async def release() -> None:
        while not started.is_set():  # noqa: ASYNC110 - set by a worker thread
            await anyio.sleep(0.005)
        go.set()

    loop_thread = threading.get_ident()
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx", chunks=(32, 32)
    ) as ds:
        await ds.write(img)
        async with await ds.labels.create("seg", dtype="uint32") as lab:
            async with anyio.create_task_group() as tg:
                tg.start_soon(release)
                run = ngio_async.stream(
                    ds.tiles(shape=(TILE, TILE), overlap=HALO), _whole, out=lab,
                    unique_labels=100, stitch=StitchConfig(seam_matcher=matcher),
                )  # fmt: skip
                await run
            got = await lab.read()
    assert _same_objects(got, _whole(img))  # joined as the IoU joins them
    # the 20 neighbour pairs of a 3 x 3 grid (12 sides, 8 corners), none on the loop thread
    assert len(calls) == 20 and loop_thread not in threads


def _fovs() -> list[Roi]:
    return [
        Roi(f"FOV_{i}", {"y": (0.0, 16.0), "x": (x * 0.5, (x + 32) * 0.5)})
        for i, x in enumerate((0, 32))
    ]


@pytest.mark.parametrize("blocking", [False, True])
async def test_a_failing_matcher_names_the_seam_and_writes_nothing_more(
    tmp_path: Path, blocking: bool
) -> None:
    """Two FOVs with a halo: the first to land is written; the matcher fails on the seam
    with the second, which is not written; no id is rewritten."""
    img = _image()

    def matcher(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> list[tuple[int, int]]:
        raise ZeroDivisionError("the model's seam check failed")

    stitch = StitchConfig(seam_matcher=matcher, compact=True)
    if blocking:
        with ngio_async.create(
            tmp_path / "img.zarr", shape=img.shape, dtype="uint16", axes="yx", scale=0.5
        ) as sds:
            sds.write(img)
            with sds.labels.create("seg", dtype="uint32") as slab:
                with pytest.raises(ZeroDivisionError) as info:
                    ngio_async.stream_sync(
                        sds.read_rois(_fovs(), halo={"y": 8, "x": 8}), _whole, out=slab,
                        unique_labels=100, stitch=stitch, threads=1,
                    )  # fmt: skip
                got = slab.read()
    else:
        async with ngio_async.create_async(
            tmp_path / "img.zarr",
            shape=img.shape,
            dtype="uint16",
            axes="yx",
            scale=0.5,
            levels=2,
        ) as ds:
            await ds.write(img)
            async with await ds.labels.create("seg", dtype="uint32") as lab:
                run = ngio_async.stream(
                    ds.read_rois(_fovs(), halo={"y": 8, "x": 8}), _whole, out=lab,
                    unique_labels=100, stitch=stitch, threads=1, pyramid=True,
                )  # fmt: skip
                with pytest.raises(ZeroDivisionError) as info:
                    await run
                got = await lab.read()
                assert not (await lab.read(level=1))[16:].any()
            assert run.stitched is not None and run.stitched.rewrites == 0
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "seam_matcher on the ROIs at [0:40, 0:40] and [0:40, 24:64]" in notes, notes
    left, right = got[:32, :32], got[:32, 32:]
    assert left.any() != right.any()  # one FOV written (its own ids), the other not at all
    written = left if left.any() else right
    assert written.max() < 200 and not got[32:].any()
