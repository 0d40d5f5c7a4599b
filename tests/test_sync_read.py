"""The sync shim on datasets: numpy, dask, napari-style levels, running loops, misuse."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import ClosedError

if TYPE_CHECKING:
    from pathlib import Path

SPEC = Spec(
    version="0.5", shape=(2, 3, 48, 40), chunks=(1, 1, 16, 16), levels=3, channels=("DAPI", "GFP")
)


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:  # type: ignore[type-arg]
    return tmp_path, write_image(tmp_path, SPEC)


def test_sync_reads(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
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


def test_dask_from_array_is_lazy_and_equal(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
    root, datas = image
    with ngio_async.open(root) as ds:
        arr = da.from_array(ds, chunks=(1, 1, 16, 16))
        np.testing.assert_array_equal(arr.compute(), datas[0])
        np.testing.assert_array_equal(
            arr[1, :, 20:30].sum(axis=0).compute(), datas[0][1, :, 20:30].sum(axis=0)
        )
        lvl = da.from_array(ds.levels[1], chunks=ds.levels[1].chunks)
        np.testing.assert_array_equal(lvl.compute(), datas[1])


def test_inside_a_running_loop(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
    """Jupyter: the caller's thread runs an event loop; the sync API must not deadlock."""
    root, datas = image

    async def notebook_cell() -> np.ndarray:  # type: ignore[type-arg]
        with ngio_async.open(root) as ds:
            return ds[0, 0, :8, :8]

    np.testing.assert_array_equal(asyncio.run(notebook_cell()), datas[0][0, 0, :8, :8])


def test_sync_call_from_the_portal_loop_raises(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
    root, _ = image
    with ngio_async.open(root) as ds:
        runner = ds._runner

        async def misuse() -> None:
            ds[0, 0, :2, :2]  # a blocking call on the loop thread itself

        with pytest.raises(RuntimeError, match="deadlock"):
            runner.call(misuse)


def test_closed_dataset_raises(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
    root, _ = image
    ds = ngio_async.open(root)
    ds.close()
    ds.close()  # idempotent
    with pytest.raises(ClosedError):
        ds[0, 0, :2, :2]


@pytest.mark.anyio
async def test_async_dataset_after_close_raises(image: tuple[Path, list[np.ndarray]]) -> None:  # type: ignore[type-arg]
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
    fmt = 3 if version == "0.5" else 2
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
