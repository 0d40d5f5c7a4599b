"""``create_like(..., tables=)``: the source's tables (ngio's ``derive_image(copy_tables=True)``)
written into the new image, all or by name; bad values refused before anything is made."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path


async def _source(root: Path) -> None:
    async with ngio_async.create_async(
        root / "src.ome.zarr", shape=(2, 32, 32), dtype="uint16", axes="cyx", levels=1
    ) as ds:
        await ds.tables.write_rois("FOV_ROI_table", [Roi.box("FOV_1", x=(0.0, 8.0), y=(0.0, 8.0))])
        await ds.tables.write_features(
            "nuclei_features", {"area": [12.5, 30.0], "kind": ["small", "big"]},
            labels=[1, 2], label="nuclei",
        )  # fmt: skip


@pytest.mark.anyio
async def test_every_table_is_copied(tmp_path: Path) -> None:
    await _source(tmp_path)
    async with (
        ngio_async.open_async(tmp_path / "src.ome.zarr") as src,
        ngio_async.create_like_async(src, tmp_path / "copy.ome.zarr", tables=True) as ds,
    ):
        assert await ds.tables.names() == ["FOV_ROI_table", "nuclei_features"]
        for name in ("FOV_ROI_table", "nuclei_features"):
            a, b = await src.tables.read(name), await ds.tables.read(name)
            assert (a.type, a.region, list(a.index)) == (b.type, b.region, list(b.index))
            assert a.columns.keys() == b.columns.keys()
            for col in a.columns:
                np.testing.assert_array_equal(a[col], b[col])
        assert (await ds.tables.rois("FOV_ROI_table"))[0].ranges["x"] == (0.0, 8.0)


@pytest.mark.anyio
async def test_named_tables_only_and_none_by_default(tmp_path: Path) -> None:
    await _source(tmp_path)
    async with ngio_async.open_async(tmp_path / "src.ome.zarr") as src:
        some = tmp_path / "some.ome.zarr"
        async with ngio_async.create_like_async(src, some, tables=["nuclei_features"]) as ds:
            assert await ds.tables.names() == ["nuclei_features"]
        async with ngio_async.create_like_async(src, tmp_path / "none.ome.zarr") as ds:
            assert await ds.tables.names() == []


@pytest.mark.anyio
async def test_a_missing_table_names_it_and_closes_the_copy(tmp_path: Path) -> None:
    await _source(tmp_path)
    async with ngio_async.open_async(tmp_path / "src.ome.zarr") as src:
        with pytest.raises(ngio_async.NotFoundError, match="nope"):
            await ngio_async.create_like_async(src, tmp_path / "c.ome.zarr", tables=["nope"])
        for bad in ("FOV_ROI_table", [3]):
            with pytest.raises(TypeError, match="tables= takes"):
                await ngio_async.create_like_async(src, tmp_path / "d.ome.zarr", tables=bad)
        assert not (tmp_path / "d.ome.zarr").exists()  # refused before anything is made


def test_the_blocking_create_like_copies_tables_and_reopens(tmp_path: Path) -> None:
    import pickle

    import anyio

    anyio.run(_source, tmp_path)
    with (
        ngio_async.open(tmp_path / "src.ome.zarr") as src,
        ngio_async.create_like(src, tmp_path / "copy.ome.zarr", tables=True) as ds,
    ):
        assert ds.tables.names() == ["FOV_ROI_table", "nuclei_features"]
        again = pickle.loads(pickle.dumps(ds))  # reopened without create_like's tables=
        with again:
            assert again.shape == (2, 32, 32)
