"""NGFF 0.6 images take writes into their existing arrays: a whole-image write(...,
pyramid=True) fills every level and leaves the group document alone (it wrote every level,
then raised UnsupportedError recording the downsampling method in the metadata);
set_channels(windows="percentiles") is refused before the lowest level is read."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_ngff06_read import SHAPES, _attrs, _write

import ngio_async
from ngio_async import UnsupportedError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

DOC = "zarr_json/valid/example-image-multiscales_example.json"


@pytest.mark.parametrize("how", ["write", "writer"])
async def test_a_whole_pyramid_write(tmp_path: Path, how: str) -> None:
    path = tmp_path / "img06.zarr"
    _write(path, _attrs(DOC), SHAPES)
    before = (path / "zarr.json").read_bytes()
    await ngio_async.convert(path, tmp_path / "ref.zarr")  # the same levels, as 0.5
    data = np.arange(int(np.prod(SHAPES[0])), dtype=np.uint16).reshape(SHAPES[0])
    async with ngio_async.open_async(path, mode="r+") as ds:
        if how == "write":
            await ds.write(data, pyramid=True)
        else:
            async with ds.writer(pyramid=True) as out:
                await out.write((tuple(slice(0, n) for n in SHAPES[0]), data))
        got = [await ds.read(level=i) for i in range(3)]
    assert (path / "zarr.json").read_bytes() == before
    np.testing.assert_array_equal(got[0], data)
    async with ngio_async.open_async(tmp_path / "ref.zarr", mode="r+") as ref:
        assert ref.metadata.ngff_version == "0.5"
        assert [lvl.shape for lvl in ref.levels] == list(SHAPES)
        await ref.write(data, pyramid=True)
        for i in (1, 2):
            np.testing.assert_array_equal(got[i], await ref.read(level=i))


async def test_percentile_windows_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "img06.zarr"
    _write(path, _attrs(DOC), SHAPES)
    for chunk in (path / "s2" / "c").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a chunk")  # read, it would fail otherwise
    async with ngio_async.open_async(path, mode="r+") as ds:
        with pytest.raises(UnsupportedError, match=r"NGFF 0\.6rc0"):
            await ds.set_channels(windows="percentiles")
