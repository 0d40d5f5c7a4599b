"""``--chunks`` / ``--shards`` (and ``chunks=`` / ``shards=``) with fewer values than the image
has axes: the values are the last axes' (right-aligned, as numpy broadcasts), the leading axes
take 1. ``convert --shards 1,1,4096,4096`` of a 5-D (tczyx) image failed ("has 4 values:
expected 5")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
from cli_run import run
from tiffs import ramp

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray

SHAPE = (2, 2, 3, 40, 48)  # t, c, z, y, x


def _five_d(path: Path, version: str) -> NDArray[np.uint16]:
    data = ramp(SHAPE)
    with ngio_async.create(
        str(path),
        shape=SHAPE,
        dtype="uint16",
        axes="tczyx",
        chunks=(1, 1, 1, 20, 24),
        levels=1,
        ngff_version=version,
    ) as ds:
        ds.write(data)
    return data


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_cli_shards_and_chunks_of_the_last_axes_of_a_5d_ome_zarr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    src = tmp_path / "src.ome.zarr"
    data = _five_d(src, version)
    out = tmp_path / "sharded.ome.zarr"
    argv = ["convert", "-q", str(src), str(out), "--ngff-version", "0.5"]
    code, _, err = run([*argv, "--shards", "1,1,4096,4096"], capsys)
    assert code == 0, err
    with ngio_async.open(str(out)) as ds:
        assert ds.axes == ("t", "c", "z", "y", "x")
        level = ds.levels[0]
        assert level.chunks == (1, 1, 1, 20, 24)  # the source's
        assert level.shards == (1, 1, 1, 40, 48)  # 4096 cut to the chunks covering the image
        assert np.array_equal(ds[...], data)

    out = tmp_path / "rechunked.ome.zarr"
    argv = ["convert", "-q", str(src), str(out), "--ngff-version", "0.5"]
    code, _, err = run([*argv, "--chunks", "16,16", "--shards", "2,32,32"], capsys)
    assert code == 0, err
    with ngio_async.open(str(out)) as ds:
        level = ds.levels[0]
        assert level.chunks == (1, 1, 1, 16, 16)
        assert level.shards == (1, 1, 2, 32, 32)
        assert np.array_equal(ds[...], data)


def test_cli_too_many_values_name_what_is_expected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.ome.zarr"
    _five_d(src, "0.5")
    out = tmp_path / "out.ome.zarr"
    argv = ["convert", "-q", str(src), str(out), "--shards", "2,1,1,1,64,64"]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err == (
        "ngio-async: error: shards (2, 1, 1, 1, 64, 64) has 6 values: expected 5 or fewer "
        "positive integers (one per axis ['t', 'c', 'z', 'y', 'x']; fewer are the last axes', "
        "the leading ones take 1)\n"
    )
    assert not out.exists()
    code, _, err = run(["convert", "-q", str(src), str(out), "--chunks", "1,0,64"], capsys)
    assert code == 2 and "invalid shape '1,0,64'" in err, err
    assert not out.exists()
    with pytest.raises(ValueError, match=r"chunks \(1, 0, 64\): chunks\['y'\] is 0"):
        ngio_async.convert_sync(str(src), str(out), chunks=(1, 0, 64))
    assert not out.exists()


@pytest.mark.anyio
async def test_a_5d_ome_tiff_takes_the_last_axes_shards(tmp_path: Path) -> None:
    """A TIFF source (planned by ``plan_image``, not copied level by level) the same way."""
    data = ramp(SHAPE)
    tif = tmp_path / "a.ome.tif"
    tifffile.imwrite(tif, data, metadata={"axes": "TCZYX"})
    out = tmp_path / "a.ome.zarr"
    await ngio_async.convert(tif, out, chunks=(8, 8), shards=(16, 16), levels=1)
    async with ngio_async.open_async(str(out)) as ds:
        assert ds.shape == SHAPE
        assert ds.levels[0].chunks == (1, 1, 1, 8, 8)
        assert ds.levels[0].shards == (1, 1, 1, 16, 16)
        assert np.array_equal(await ds.read(), data)
