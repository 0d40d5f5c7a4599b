"""The sync shim on datasets: numpy, dask, napari-style levels, running loops, misuse."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

import dask.array as da
import numpy as np
import pytest
from images import Spec, write_image
from servers import Faults

import ngio_async
from ngio_async import ClosedError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

SPEC = Spec(
    version="0.5", shape=(2, 3, 48, 40), chunks=(1, 1, 16, 16), levels=3, channels=("DAPI", "GFP")
)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, list[np.ndarray[Any, Any]]]:
    return tmp_path, write_image(tmp_path, SPEC)


def test_sync_reads(image: tuple[Path, list[np.ndarray[Any, Any]]]) -> None:
    root, datas = image
    with ngio_async.open(root) as ds:
        assert (ds.shape, ds.ndim, len(ds), ds.dtype) == (SPEC.shape, 4, 2, np.dtype("uint16"))
        np.testing.assert_array_equal(ds[1, 2, 10:30, 5:25], datas[0][1, 2, 10:30, 5:25])
        np.testing.assert_array_equal(ds[..., -1], datas[0][..., -1])
        np.testing.assert_array_equal(np.asarray(ds), datas[0])
        np.testing.assert_array_equal(ds.read(c="GFP", z=1), datas[0][1, 1])
        np.testing.assert_array_equal(ds.read(level=1, c=["GFP", "DAPI"]), datas[1][[1, 0]])
        with pytest.raises(IndexError):
            ds[2]
        with pytest.raises(KeyError, match="'Cy5'"):
            ds.read(c="Cy5")
        with pytest.raises(ValueError, match="unknown axis 'q'"):
            ds.read(q=1)
        # napari: a multiscale list of array-likes
        levels = ds.levels
        assert [lvl.shape for lvl in levels] == [d.shape for d in datas]
        np.testing.assert_array_equal(np.asarray(levels[2]), datas[2])
        assert ds.level(pixel_size=1.0).shape == datas[1].shape
        assert ds.metadata.channels[1].label == "GFP"
        assert ds.metadata.spatial_calibration[1]["x"].scale == 1.0


def test_dask_from_array_is_lazy_and_equal(image: tuple[Path, list[np.ndarray[Any, Any]]]) -> None:
    root, datas = image
    with ngio_async.open(root) as ds:
        arr = da.from_array(ds, chunks=(1, 1, 16, 16))  # type: ignore[no-untyped-call]
        np.testing.assert_array_equal(arr.compute(), datas[0])
        np.testing.assert_array_equal(
            arr[1, :, 20:30].sum(axis=0).compute(), datas[0][1, :, 20:30].sum(axis=0)
        )
        lvl = da.from_array(ds.levels[1], chunks=ds.levels[1].chunks)  # type: ignore[no-untyped-call]
        np.testing.assert_array_equal(lvl.compute(), datas[1])


def test_inside_a_running_loop(image: tuple[Path, list[np.ndarray[Any, Any]]]) -> None:
    """Jupyter: the caller's thread runs an event loop; the sync API must not deadlock."""
    root, datas = image

    async def notebook_cell() -> np.ndarray[Any, Any]:
        with ngio_async.open(root) as ds:
            return ds[0, 0, :8, :8]

    np.testing.assert_array_equal(asyncio.run(notebook_cell()), datas[0][0, 0, :8, :8])


def test_sync_call_from_the_portal_loop_raises(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, _ = image
    with ngio_async.open(root) as ds:
        runner = ds._runner

        async def misuse() -> None:
            ds[0, 0, :2, :2]  # a blocking call on the loop thread itself

        with pytest.raises(RuntimeError, match="deadlock"):
            runner.call(misuse)
        tiles = ds.tiles()
        assert next(tiles).data.shape

        async def close_there() -> None:
            ds.close()  # refused before it stops anything

        with pytest.raises(RuntimeError, match="deadlock"):
            runner.call(close_there)
        assert next(tiles).data.shape  # the tile loop still runs
        tiles.close()


def test_closed_dataset_raises(image: tuple[Path, list[np.ndarray[Any, Any]]]) -> None:
    root, _ = image
    ds = ngio_async.open(root)
    ds.close()
    ds.close()  # idempotent
    with pytest.raises(ClosedError):
        ds[0, 0, :2, :2]


@pytest.mark.anyio
async def test_async_dataset_after_close_raises(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    root, datas = image
    async with ngio_async.open_async(root) as ds:
        np.testing.assert_array_equal(await ds[0, 0], datas[0][0, 0])
    with pytest.raises(ClosedError):
        await ds[0, 0]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_open_as_images(tmp_path: Path, version: str) -> None:
    import zarr

    from ngio_async.meta import ImageLabel, LabelColor, validate

    spec = Spec(version=version, shape=(3, 32, 32), chunks=(1, 16, 16), levels=2)
    write_image(tmp_path, spec)
    label_spec = Spec(
        version=version, shape=(3, 32, 32), chunks=(1, 16, 16), levels=2, dtype="uint32", seed=3
    )
    label_root = tmp_path / "labels" / "cells"
    label_data = write_image(label_root, label_spec)
    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    label_group = zarr.open_group(label_root, mode="a", zarr_format=fmt)
    meta = validate(dict(label_group.attrs))
    meta.image_label = ImageLabel(colors=[LabelColor(label_value=1, rgba=[255, 0, 0, 255])])
    from ngio_async.meta import to_attrs

    label_group.attrs.update(to_attrs(meta, version))
    labels_attrs = {"labels": ["cells"]}
    zarr.open_group(tmp_path / "labels", mode="a", zarr_format=fmt).attrs.update(
        {"ome": {"version": "0.5", **labels_attrs}} if version == "0.5" else labels_attrs
    )
    with ngio_async.open(tmp_path) as ds:
        assert ds.labels.names() == ["cells"]
        with ds.labels["cells"] as cells:
            assert cells.dtype == np.dtype("uint32")
            np.testing.assert_array_equal(cells[1, 5:20, 7:9], label_data[0][1, 5:20, 7:9])
            np.testing.assert_array_equal(np.asarray(cells.levels[1]), label_data[1])
        with pytest.raises(ngio_async.NotFoundError, match=r"no label 'nuclei'.*\['cells'\]"):
            ds.labels.open("nuclei")
    # the image opened only to reach its label stays open while the label is used
    import gc
    import weakref

    image = ngio_async.open(tmp_path)
    cells, image_ref = image.labels["cells"], weakref.ref(image)
    del image
    gc.collect()
    np.testing.assert_array_equal(cells[1, 5:20, 7:9], label_data[0][1, 5:20, 7:9])
    cells.close()
    kept = image_ref()
    assert kept is not None
    kept.close()  # its lease too, not left to the garbage collector


@pytest.mark.parametrize("others", [0, 1], ids=["last-lease", "other-lease-open"])
def test_closing_while_another_thread_reads_raises_closed_error(
    http_root: Path, http_server: StaticServer, others: int
) -> None:
    # a read in flight when another thread closes the dataset ends in ClosedError, never in a
    # bare CancelledError (whether or not the loop stops with this dataset)
    import threading
    import time

    write_image(http_root / "img", SPEC)
    url = f"{http_server.url}img"
    keep = [ngio_async.open(url) for _ in range(others)]
    ds = ngio_async.open(url)
    http_server.faults = Faults(delay=2.0)
    outcome: list[BaseException | None] = []

    def reader() -> None:
        try:
            ds[...]
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - what the thread saw is the point
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    deadline = time.monotonic() + 5
    while http_server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert http_server.in_flight > 0  # the read is waiting on the server
    ds.close()
    thread.join(10)
    http_server.faults = Faults()
    for other in keep:
        other.close()
    (exc,) = outcome
    if exc is not None:
        assert isinstance(exc, ClosedError), repr(exc)


def test_sync_dataset_and_level_pickle_by_reopening(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    import pickle

    root, datas = image
    with ngio_async.open(root) as ds:
        twin = pickle.loads(pickle.dumps(ds))
        level = pickle.loads(pickle.dumps(ds.levels[1]))
        try:
            assert twin is not ds and twin.mode == "r"
            np.testing.assert_array_equal(twin[...], datas[0])
            np.testing.assert_array_equal(level[...], datas[1])
            assert level.shape == datas[1].shape
        finally:
            twin.close()
            level._parent.close()  # the image a pickled level reopened
        # dask's processes scheduler sends the dataset to other processes
        arr = da.from_array(ds, chunks=(1, 1, 16, 16))  # type: ignore[no-untyped-call]
        total = arr.sum(dtype="uint64").compute(scheduler="processes", num_workers=2)
        assert int(total) == int(datas[0].sum(dtype="uint64"))


def test_a_dataset_from_a_store_object_refuses_pickling_clearly(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    import pickle

    from ngio_async.stores import open_store

    root, _ = image
    with ngio_async.open(open_store(root)) as ds, pytest.raises(TypeError, match="open it by URL"):
        pickle.dumps(ds)


def test_a_dropped_dataset_gives_its_lease_back(
    image: tuple[Path, list[np.ndarray[Any, Any]]],
) -> None:
    import gc
    import threading
    import time

    from ngio_async import sync

    def settled() -> int:  # what earlier tests dropped is given back first
        gc.collect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            t.name == "ngio_async-close" for t in threading.enumerate()
        ):
            time.sleep(0.01)
        return sync._provider.leases

    root, datas = image
    before = settled()
    # its levels keep it open: napari takes `open(url).levels` and drops the dataset
    levels = ngio_async.open(root).levels
    gc.collect()
    np.testing.assert_array_equal(levels[1][...], datas[1])
    assert sync._provider.leases == before + 1
    del levels
    gc.collect()
    deadline = time.monotonic() + 10
    while sync._provider.leases > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sync._provider.leases == before


@pytest.mark.parametrize(
    "body",
    [
        "ds = ngio_async.open(URL)\nprint(int(ds[0, 0, 0, 0]))",  # never closed
        "ds = ngio_async.open(URL)\nit = ds.tiles()\nprint(next(it).data.shape[-1])",
    ],
    ids=["open-dataset", "started-tile-iterator"],
)
def test_exit_with_objects_left_open_is_silent(
    http_root: Path, http_server: StaticServer, body: str
) -> None:
    import subprocess
    import sys

    write_image(http_root / "img", SPEC)
    code = f"import ngio_async\nURL = {http_server.url + 'img'!r}\n{body}\n"
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert done.stderr == ""  # no unclosed session, no "Exception ignored", no warning
