"""Zipped OME-Zarr (``.ozx``) on S3 (moto) and a static HTTP server reads as the folder it
was zipped from: the directory in one ranged GET of the file's tail, then one ranged GET per
metadata document and chunk; a zip replaced under a reader raises ``ChangedError``."""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import TYPE_CHECKING

import numpy as np
import pytest
from test_ozx27_local import DATA, LABEL, write_source, zip_folder

import ngio_async
from ngio_async import ChangedError
from ngio_async.stores import InstrumentedStore, open_store
from ngio_async.stores._zip import TAIL, ZipStore

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer


@pytest.fixture(scope="module")
def ozx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An image ngio_async wrote, zipped with its entries stored."""
    folder = tmp_path_factory.mktemp("ozx27r")
    return zip_folder(write_source(folder), folder / "img.ozx").read_bytes()


def _ngff_zarr_ozx(path: Path) -> Path:
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(DATA, dims=["c", "y", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_ngff_zarr(
            str(path), nz.to_multiscales(image, scale_factors=[2], chunks=16), version="0.5"
        )
    return path


def _gets(server: StaticServer, path: str) -> list[str | None]:
    return [r.range for r in server.requests if r.method == "GET" and r.path == path]


async def test_over_http_one_directory_read_then_one_per_chunk(
    ozx: bytes, http_server: StaticServer, http_root: Path
) -> None:
    (http_root / "img.ozx").write_bytes(ozx)
    async with ngio_async.open_async(f"{http_server.url}img.ozx") as ds:
        assert ds.url.endswith("/img.ozx")
        gets = _gets(http_server, "/img.ozx")
        assert gets[0] == f"bytes=-{TAIL}"  # the directory: the tail, the whole of this zip
        assert len(gets) == 1 + 1 + 2  # then the group's zarr.json and the levels'
        assert all(g is not None and not g.startswith("bytes=-") for g in gets[1:])
        assert http_server.count() == len(gets)  # nothing else (no HEAD, no listing)
        http_server.reset()
        np.testing.assert_array_equal(await ds.read(level=0, c=0), DATA[0])
        assert len(_gets(http_server, "/img.ozx")) == 16 == http_server.count()  # 16 chunks
        async with await ds.labels.open("cells") as cells:
            np.testing.assert_array_equal(await cells.read(), LABEL)
        assert (await ds.tables.read("facts")).columns["size"].tolist() == [0, 1, 2, 3]
    async with ngio_async.open_async(f"{http_server.url}img.ozx/labels/cells") as ds:
        np.testing.assert_array_equal(await ds.read(), LABEL)


def test_over_http_an_ozx_ngff_zarr_wrote(http_server: StaticServer, http_root: Path) -> None:
    _ngff_zarr_ozx(http_root / "nz.ozx")
    with ngio_async.open(f"{http_server.url}nz.ozx") as ds:
        np.testing.assert_array_equal(ds[...], DATA)
        np.testing.assert_array_equal(ds.levels[1][...], ds.levels[1][...])
        tiles = list(ds.tiles(level=0))
        for tile in tiles:
            np.testing.assert_array_equal(tile.data, DATA[tile.region])
    gets = _gets(http_server, "/nz.ozx")
    assert sum(1 for g in gets if g is not None and g.startswith("bytes=-")) == 1  # directory once
    assert http_server.count() == len(gets)


async def test_a_zip_replaced_under_a_reader_is_a_changed_error(
    ozx: bytes, http_server: StaticServer, http_root: Path, tmp_path: Path
) -> None:
    (http_root / "img.ozx").write_bytes(ozx)
    (tmp_path / "img.ozx").write_bytes(ozx)
    for url in (f"{http_server.url}img.ozx", tmp_path / "img.ozx"):
        async with ngio_async.open_async(url) as ds:
            np.testing.assert_array_equal(await ds.read(level=0, c=0), DATA[0])
            for folder in (http_root, tmp_path):  # another zip renamed over it
                (folder / "new.ozx").write_bytes(ozx[:-2] + b"\0\0")
                os.replace(folder / "new.ozx", folder / "img.ozx")
            with pytest.raises(ChangedError, match=r"img\.ozx"):
                await ds.read(level=0, c=1)
            (http_root / "img.ozx").write_bytes(ozx)
            (tmp_path / "img.ozx").write_bytes(ozx)


async def test_on_s3(ozx: bytes, s3_server: S3Server, tmp_path: Path) -> None:
    url = s3_server.fresh_url()
    nz = _ngff_zarr_ozx(tmp_path / "nz.ozx").read_bytes()
    async with open_store(url, **s3_server.options()) as bucket:
        await bucket.put("img.ozx", ozx)
        await bucket.put("nz.ozx", nz)
    async with ngio_async.open_async(f"{url}/img.ozx", **s3_server.options()) as ds:
        assert ds.url == f"{url}/img.ozx"
        np.testing.assert_array_equal(await ds.read(), DATA)
        async with await ds.labels.open("cells") as cells:
            np.testing.assert_array_equal(await cells.read(), LABEL)
    # a group inside the zip, by its URL
    async with ngio_async.open_async(f"{url}/img.ozx/labels/cells", **s3_server.options()) as ds:
        assert ds.url == f"{url}/img.ozx/labels/cells"
        np.testing.assert_array_equal(await ds.read(), LABEL)
    with zipfile.ZipFile(tmp_path / "nz.ozx") as zf:  # its entries as a folder beside it
        entries = {name: zf.read(name) for name in zf.namelist()}
    async with open_store(f"{url}/nz.ome.zarr", **s3_server.options()) as folder:
        for name, data in entries.items():
            await folder.put(name, data)
    gets = []
    for zipped in (True, False):
        store = open_store(url if zipped else f"{url}/nz.ome.zarr", **s3_server.options())
        counted = InstrumentedStore(store)
        async with ngio_async.open_async(ZipStore(counted, "nz.ozx") if zipped else counted) as ds:
            # (zip: the directory, then) the group's zarr.json, consolidating the levels'
            assert counted.method_counts == {"get": 1 + zipped}
            counted.reset()
            async for tile in ds.tiles(level=0):
                np.testing.assert_array_equal(tile.data, DATA[tile.region])
            assert set(counted.method_counts) == {"get"}
            gets.append(counted.method_counts["get"])
    assert gets[0] == gets[1] == 2 * 4  # per shard: its index, its chunks (coalesced)
