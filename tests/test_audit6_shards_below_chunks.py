"""Shards asked smaller than the chunks asked are refused, as shards that are no whole multiple
of them are: ``--chunks 20,20 --shards 10,10`` wrote shards of 20x20 (one chunk each) without a
word, while ``--shards 50,50`` was refused. Without ``chunks`` (a batch whose default chunks
vary per image) a shard below the image's chunks still becomes one chunk."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from cli_run import run

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def tiff(tmp_path: Path) -> Path:
    path = tmp_path / "w.tif"
    tifffile.imwrite(path, np.arange(300 * 300, dtype=np.uint16).reshape(300, 300))
    return path


def test_a_tiff_with_shards_below_its_chunks_is_refused(tiff: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"shards \(10, 10\) must be whole multiples"):
        ngio_async.convert_sync(tiff, tmp_path / "out.zarr", chunks=(20, 20), shards=(10, 10))
    assert not (tmp_path / "out.zarr").exists()


def test_an_ome_zarr_with_shards_below_the_chunks_is_refused(tiff: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    ngio_async.convert_sync(tiff, src, chunks=(32, 32), shards=False)
    with pytest.raises(ValueError, match=r"shards \(10, 10\) must be whole multiples"):
        ngio_async.convert_sync(src, tmp_path / "out.zarr", chunks=(20, 20), shards=(10, 10))
    assert not (tmp_path / "out.zarr").exists()


def test_the_command_line_says_so(
    tiff: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.zarr"
    code, _, err = run(
        ["convert", str(tiff), str(out), "--chunks", "20,20", "--shards", "10,10"], capsys
    )
    assert code == 2
    assert "shards (10, 10) must be whole multiples of the chunks (20, 20)" in err
    assert not out.exists()


def test_default_chunks_still_take_a_smaller_shard_as_one_chunk(tiff: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    ngio_async.convert_sync(tiff, src, chunks=(64, 64), shards=False)
    ngio_async.convert_sync(src, tmp_path / "out.zarr", shards=(16, 16))
    with ngio_async.open(tmp_path / "out.zarr") as ds:
        assert ds.levels[0].chunks == (64, 64)
        assert ds.levels[0].shards == (64, 64)
        assert np.array_equal(ds[...], np.arange(300 * 300, dtype=np.uint16).reshape(300, 300))
