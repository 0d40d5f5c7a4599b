"""Tables as a user meets them: on S3 (every backend) and over read-only HTTP (reads; writes
refused naming the mode), names with spaces and non-ASCII letters, an image opened read-only,
ROI tables with z and t, and a masking ROI table used to read one object's label pixels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import ngio_async
from ngio_async import ReadOnlyError, UnsupportedError
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server, StaticServer

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]

BACKENDS = ("anndata", "json", "csv", "parquet")
ROIS = [
    Roi.box("FOV 1 é", x=(0.0, 4.0), y=(0.0, 4.0), z=(0.0, 2.0)),
    Roi.box("FOV_2", x=(4.0, 8.0), y=(0.0, 4.0), z=(1.0, 2.0)),
]


async def _tables(ds: Any) -> None:
    for be in BACKENDS:
        await ds.tables.write_rois(f"rois {be} é", ROIS, backend=be)
        await ds.tables.write_features(
            f"feats_{be}", {"a": [0.5, 1.5], "s": ["u", "日本"]}, labels=[1, 2], backend=be
        )


async def _check(ds: Any) -> None:
    names = await ds.tables.names()
    assert names == [n for be in BACKENDS for n in (f"rois {be} é", f"feats_{be}")]
    for be in BACKENDS:
        assert await ds.tables.rois(f"rois {be} é") == ROIS, be
        t = await ds.tables.read(f"feats_{be}")
        assert t["s"].tolist() == ["u", "日本"] and t.index.tolist() == [1, 2], be


async def test_tables_on_s3_every_backend(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = s3_server.options()
    async with ngio_async.create_async(url, shape=(8, 8), dtype="uint8", levels=1, **options) as ds:
        await _tables(ds)
    async with ngio_async.open_async(url, **options) as ds:
        await _check(ds)
        with pytest.raises(ReadOnlyError, match=r"mode='r'"):
            await ds.tables.write_rois("more", ROIS)
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        await ds.tables.delete("rois parquet é")
        assert "rois parquet é" not in await ds.tables.names()


async def test_tables_over_http_read_only(
    tmp_path: Path, http_root: Path, http_server: StaticServer
) -> None:
    path = http_root / "img.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await _tables(ds)
    url = f"{http_server.url.rstrip('/')}/img.zarr"
    async with ngio_async.open_async(url) as ds:
        await _check(ds)
        with pytest.raises(ReadOnlyError, match=r"img\.zarr.*read-only"):
            await ds.tables.write_rois("more", ROIS)
        with pytest.raises(ReadOnlyError, match=r"read-only"):
            await ds.tables.delete("feats_csv")
    # mode='r+' is refused at open (writes used to fail later, "does not support listing")
    with pytest.raises(UnsupportedError, match=r"img\.zarr with mode='r\+': http://.*read-only"):
        await ngio_async.open_async(url, mode="r+")


async def test_a_read_only_image_refuses_table_writes(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    async with ngio_async.create_async(path, shape=(8, 8), dtype="uint8", levels=1) as ds:
        await ds.tables.write_rois("r", ROIS)
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    async with ngio_async.open_async(path) as ds:
        for write in (
            ds.tables.write_rois("r2", ROIS),
            ds.tables.write_features("f", {"a": [1.0]}, labels=[1]),
            ds.tables.write("g", {"a": [1.0]}),
            ds.tables.delete("r"),
        ):
            with pytest.raises(ReadOnlyError, match=r"img\.zarr.*mode='r'.*mode='r\+'"):
                await write
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before


def test_bad_table_names_are_refused_naming_them(tmp_path: Path) -> None:
    with ngio_async.create(tmp_path / "i.zarr", shape=(4, 4), dtype="uint8", levels=1) as ds:
        for bad in ("a/b", " lead", "trail ", "__x", "zarr.json", ".zattrs", "tab\tx"):
            with pytest.raises(ValueError, match="invalid table name"):
                ds.tables.write(bad, {"a": [1.0]})
        ds.tables.write("ok name ü", {"a": [1.0]})
        assert ds.tables.names() == ["ok name ü"]
