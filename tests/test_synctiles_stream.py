"""``stream_sync(ds.tiles(...), func, out=...)``: the blocking API's tile pipeline gives what the
async ``stream`` gives on the same image (every level, stitched or not, tiles of level 1, no
``out``), refuses what it refuses at the call (nothing written), runs on S3, and Ctrl-C
finishes the write under way."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = pytest.mark.filterwarnings("ignore")

TILE, HALO = 24, 8


def _pixels() -> np.ndarray[Any, Any]:
    yy, xx = np.mgrid[0:64, 0:64]
    dapi = np.zeros((64, 64), np.uint16)
    for cy, cx, r in [(10, 24, 5), (24, 10, 5), (24, 24, 6), (38, 38, 4)]:  # cut by seams
        dapi[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 100
    dapi[52:58, 4:60] = 100
    return np.stack([dapi, 100 - dapi])  # GFP: the other way round (its tiles differ)


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


def _image(url: Any, **options: Any) -> None:
    with ngio_async.create(
        url,
        shape=(2, 64, 64),
        dtype="uint16",
        axes="cyx",
        scale=0.5,
        levels=3,
        channels=[{"label": "DAPI"}, {"label": "GFP"}],
        **options,
    ) as ds:
        ds.write(_pixels(), pyramid=True)


async def _async_run(url: Any, label: str, options: dict[str, Any], **kw: Any) -> Any:
    """The async stream's labels (every level) or pairs, into a new label ``label``."""
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        tiles = ds.tiles(kw.pop("level", 0), shape=(1, TILE, TILE), c="DAPI", overlap=HALO)
        if kw.pop("pairs", False):
            got = await ngio_async.stream(tiles, segment)
            assert got is not None
            return {_key(t): v.tolist() for t, v in got}
        async with await ds.labels.create(label, dtype="uint32") as lab:
            await ngio_async.stream(tiles, segment, out=lab, unique_labels=1000, **kw)
            return [await lab.read(level=k) for k in range(len(lab.levels))]


def _key(tile: Any) -> tuple[tuple[int, int], ...]:
    return tuple((s.start, s.stop) for s in tile.region)


def _sync_run(ds: Any, label: str, **kw: Any) -> list[np.ndarray[Any, Any]]:
    tiles = ds.tiles(kw.pop("level", 0), shape=(1, TILE, TILE), c="DAPI", overlap=HALO)
    with ds.labels.create(label, dtype="uint32") as lab:
        assert ngio_async.stream_sync(tiles, segment, out=lab, unique_labels=1000, **kw) is None
        return [lab.read(level=k) for k in range(len(lab.levels))]


def _equal_levels(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b) == 3
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_stream_sync_over_tiles_gives_the_async_streams_labels(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    _image(url)
    cases: list[dict[str, Any]] = [
        {"pyramid": True},
        {"pyramid": True, "stitch": True},
        {"stitch": 0.5},
        {"level": 1, "pyramid": True},  # level-1 tiles: the label's level 1, finer upsampled
    ]
    want = [anyio.run(partial(_async_run, url, f"a{k}", {}, **c)) for k, c in enumerate(cases)]
    with ngio_async.open(url, mode="r+") as ds:
        got = [_sync_run(ds, f"s{k}", **c) for k, c in enumerate(cases)]
        pairs = ngio_async.stream_sync(
            ds.tiles(shape=(1, TILE, TILE), c="DAPI", overlap=HALO), segment
        )
    for w, g in zip(want, got, strict=True):
        _equal_levels(w, g)
    assert len(np.unique(got[0][0])) - 1 == 12  # not stitched: each tile's part its own id
    assert len(np.unique(got[1][0])) - 1 == 5  # stitched: the image's five objects
    assert got[3][0].any() and got[3][1].any()
    assert pairs is not None and len(pairs) == 9
    theirs = anyio.run(lambda: _async_run(url, "", {}, pairs=True))
    assert {_key(t): v.tolist() for t, v in pairs} == theirs


def test_stream_sync_over_tiles_refuses_at_the_call_nothing_written(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    _image(url)
    calls: list[int] = []

    def func(a: Any) -> Any:
        calls.append(1)
        return segment(a)

    with ngio_async.open(url, mode="r+") as ds, ds.labels.create("seg", dtype="uint8") as lab:
        plain = ds.tiles(shape=(1, TILE, TILE), c="DAPI")
        grown = ds.tiles(shape=(1, TILE, TILE), c="DAPI", overlap=HALO)
        refused: list[tuple[Any, str, Any, dict[str, Any]]] = [
            (ValueError, "overlap", plain, {"out": lab, "unique_labels": 10, "stitch": True}),
            (ValueError, "unique_labels", grown, {"out": lab, "stitch": True}),
            (ValueError, "uint8 holds", grown, {"out": lab, "unique_labels": 1000, "stitch": 1}),
            (TypeError, "give out=", grown, {"pyramid": True}),
            (ValueError, "image read", grown, {"out": ds}),
            (ValueError, "not an axis of the tiles", lab.tiles(), {"out": ds}),
        ]
        for error, match, tiles, kw in refused:
            with pytest.raises(error, match=match):
                ngio_async.stream_sync(tiles, func, **kw)
        with pytest.raises(ValueError, match="several positions along it"):
            ngio_async.stream_sync(ds.tiles(), func, out=lab)
        with pytest.raises(TypeError, match="takes the tiles or ROIs"):
            ngio_async.stream_sync(iter([]), func)
        started = ds.tiles(shape=(1, TILE, TILE), c="DAPI")
        next(started)
        with pytest.raises(ValueError, match="already iterated"):
            ngio_async.stream_sync(started, func, out=lab)
        started.close()
        assert not lab.read().any()
        np.testing.assert_array_equal(ds.read(), _pixels())
    assert calls == []


def test_stream_sync_over_tiles_on_s3(s3_server: S3Server) -> None:
    url = f"{s3_server.fresh_url()}/img.zarr"
    opts = s3_server.options()
    _image(url, **opts)
    want = anyio.run(lambda: _async_run(url, "a", opts, pyramid=True, stitch=True))
    with ngio_async.open(url, mode="r+", **opts) as ds:
        got = _sync_run(ds, "s", pyramid=True, stitch=True)
    _equal_levels(want, got)
    assert len(np.unique(got[0])) - 1 == 5


_INTERRUPTED = """
import signal, sys, threading
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import zarr
import ngio_async
from test_whole_stream_atomic import TILE, _states, _sync_image

store = _sync_image(Path(sys.argv[2]))
main = threading.main_thread().ident

def func(a):
    if int(a.flat[0]) == 2:  # tile 1: once tile 0's first shard landed, Ctrl-C
        assert store.landed.wait(10)
        signal.pthread_kill(main, signal.SIGINT)
    return a + 100

with ngio_async.open(store, mode="r+") as ds:
    try:
        ngio_async.stream_sync(ds.tiles(shape=TILE), func, out=ds, threads=1, window=1)
    except KeyboardInterrupt:  # read by zarr-python: what is stored now, whatever runs on
        stored = zarr.open_array(sys.argv[2] + "/img.ome.zarr/0", mode="r")[...]
        states = _states(stored)
        print("interrupted", states[0], "HALF" in states.values(), list(states.values())[-1])

# the same with a progress callback (the call waited on in a helper thread, reports relayed)
store = _sync_image(Path(sys.argv[2]) / "p")
with ngio_async.open(store, mode="r+") as ds:
    tiles = ds.tiles(shape=TILE, progress=lambda done, total: None)
    try:
        ngio_async.stream_sync(tiles, func, out=ds, threads=1, window=1)
    except KeyboardInterrupt:
        stored = zarr.open_array(sys.argv[2] + "/p/img.ome.zarr/0", mode="r")[...]
        states = _states(stored)
        print("relayed", states[0], "HALF" in states.values(), list(states.values())[-1])
"""


def test_stream_sync_over_tiles_interrupted_finishes_the_write_under_way(
    tmp_path: Path,
) -> None:
    """A real SIGINT to a child process's main thread while tile 0's write is half done (one
    of its two shards landed): ``KeyboardInterrupt`` comes out after that write ended, no
    tile half written, the last one never written."""
    import subprocess
    import sys
    from pathlib import Path as P

    here = str(P(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED, here, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.split("\n")[:2] == [
        "interrupted new False old",
        "relayed new False old",
    ], done.stderr


def test_stream_sync_over_tiles_reports_progress_in_the_calling_thread_as_it_runs(
    tmp_path: Path,
) -> None:
    """``ds.tiles(progress=...)``: called in the thread of ``stream_sync`` (which may use the
    blocking API there), while the stream runs: the last tile's func waits for a report."""
    import threading

    url = tmp_path / "img.zarr"
    _image(url)
    me = threading.get_ident()
    reports: list[tuple[int, int | None, bool]] = []
    reported = threading.Event()

    with ngio_async.open(url, mode="r+") as ds, ds.labels.create("seg", dtype="uint32") as lab:

        def progress(done: int, total: int | None) -> None:
            reports.append((done, total, threading.get_ident() == me))
            lab.read(level=2)  # the blocking API works here
            reported.set()

        def func(a: Any) -> Any:
            assert reported.wait(10), "no progress report while the stream ran"
            return segment(a)

        tiles = ds.tiles(shape=(1, TILE, TILE), c="DAPI", progress=progress)
        ngio_async.stream_sync(tiles, func, out=lab, threads=1, window=1)
        np.testing.assert_array_equal(lab.read() > 0, _pixels()[0] > 50)
    assert [d for d, _, _ in reports] == list(range(1, 10))
    assert all(t == 9 and mine for _, t, mine in reports)


def test_stream_sync_over_tiles_into_a_blocking_writer(tmp_path: Path) -> None:
    """``out=`` a blocking ``lab.writer()``, entered: each result written through it, on the
    label's axes, its level alone (the writer's own ``pyramid=False``)."""
    url = tmp_path / "img.zarr"
    _image(url)
    with ngio_async.open(url, mode="r+") as ds, ds.labels.create("seg", dtype="uint32") as lab:
        tiles = ds.tiles(shape=(1, TILE, TILE), c="DAPI")
        with lab.writer() as w:
            assert ngio_async.stream_sync(tiles, segment, out=w) is None
        np.testing.assert_array_equal(lab.read() > 0, _pixels()[0] > 50)
        assert not lab.read(level=1).any()  # the writer's own pyramid=False
