"""The blocking dataset and its levels as numpy array-likes: ``np.asarray(ds, dtype=...)``,
``__array__(copy=...)`` (numpy 2), ``len``, iteration, the array attributes, and
``dask.array.from_array(ds)`` with blocks on the stored objects' boundaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

SHAPE = (4, 300, 260)
DATA = (np.arange(np.prod(SHAPE)) % 65521).astype(np.uint16).reshape(SHAPE)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arr") / "img.zarr"
    with ngio_async.create(
        path,
        shape=SHAPE,
        dtype="uint16",
        axes="zyx",
        levels=2,
        chunks=(1, 64, 64),
        shards=(2, 128, 128),
    ) as ds:
        ds.write(DATA)
    return path


def _boundaries(chunks: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [np.cumsum(c).tolist()[:-1] for c in chunks]


def test_dask_blocks_fall_on_shard_boundaries(sharded: Path) -> None:
    """dask takes a zarr-3-like ``shards`` for its automatic blocks: a dataset too, or its
    blocks (192 pixels wide with a 300 KiB block size) cut the 128-pixel shards."""
    with ngio_async.open(sharded) as ds, dask.config.set({"array.chunk-size": "300KiB"}):
        assert ds.shards == ds.levels[0].shards == (2, 128, 128)
        sources: list[Any] = [ds, *ds.levels]
        for source in sources:
            blocks = da.from_array(source)  # type: ignore[no-untyped-call]
            if source.shape == SHAPE:
                assert len(blocks.chunks[-1]) > 1  # the limit does cut level 0
            stored = source.shards
            assert stored is not None
            for cuts, size in zip(_boundaries(blocks.chunks), stored, strict=True):
                assert all(cut % size == 0 for cut in cuts), (source, blocks.chunks)
            np.testing.assert_array_equal(blocks.compute(), np.asarray(source))
        strided = da.from_array(ds)[:, ::-3, 5:200:7]  # type: ignore[no-untyped-call]
        np.testing.assert_array_equal(strided.compute(), DATA[:, ::-3, 5:200:7])


def test_an_unsharded_dataset_has_no_shards(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    with ngio_async.create(
        path,
        shape=(2, 40, 40),
        dtype="uint8",
        axes="zyx",
        levels=1,
        chunks=(1, 16, 16),
        ngff_version="0.4",
    ) as ds:
        assert ds.shards is None and ds.levels[0].shards is None
        with dask.config.set({"array.chunk-size": "1KiB"}):
            cuts = _boundaries(da.from_array(ds).chunks)  # type: ignore[no-untyped-call]
        assert all(c % 16 == 0 for c in cuts[-1]) and cuts[-1]


def test_numpy_protocol_and_attributes(sharded: Path) -> None:
    with ngio_async.open(sharded) as ds:
        level = ds.levels[1]
        want1 = np.asarray(level)
        assert want1.shape == level.shape == (4, 150, 130)
        for source, want in ((ds, DATA), (level, want1)):
            assert len(source) == want.shape[0]
            assert source.shape == want.shape and source.dtype == want.dtype
            assert source.ndim == want.ndim and source.size == want.size
            assert source.nbytes == want.nbytes
            got = np.asarray(source, dtype=np.float32)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, want.astype(np.float32))
            copied = np.array(source, copy=True)
            assert copied.flags.writeable and copied.flags.owndata
            np.testing.assert_array_equal(copied, want)
            with pytest.raises(ValueError, match="copy=False"):
                np.asarray(source, copy=False)
            rows = list(source)
            assert len(rows) == len(want)
            for row, expected in zip(rows, want, strict=True):
                np.testing.assert_array_equal(row, expected)
        assert ds[...].flags.writeable  # a result is the caller's own array


@pytest.mark.anyio
async def test_async_levels_are_not_numpy_arrays(sharded: Path) -> None:
    """``await`` reads: numpy's protocols on an async level say so instead of reading."""
    async with ngio_async.open_async(sharded) as ds:
        level = ds.levels[0]
        with pytest.raises(TypeError, match="await"):
            np.asarray(level)
        with pytest.raises(TypeError, match="await"):
            list(level)
        got: Any = await level[..., 3, 4]
        np.testing.assert_array_equal(got, DATA[..., 3, 4])
