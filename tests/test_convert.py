"""``ngio_async.convert``: TIFF / OME-TIFF -> OME-Zarr (streaming, metadata), OME-Zarr round trips
(0.4 <-> 0.5, layout, codecs, S3), batches and the reader registry."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Literal

import anyio
import numpy as np
import pytest
import tifffile
import zarr
from tiffs import (
    ramp,
    write_big_endian,
    write_imagej,
    write_ome,
    write_resolution,
    write_stripped,
    write_tiled,
)

import ngio_async
from ngio_async import formats
from ngio_async.convert import ConvertResult, TiffSource, is_complete, output_name
from ngio_async.convert._tiffmeta import map_axes
from ngio_async.meta import to_attrs
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from numpy.typing import NDArray
    from servers import S3Server, StaticServer

pytestmark = pytest.mark.anyio


async def read_all(url: Any, level: int = 0, **options: Any) -> NDArray[Any]:
    async with ngio_async.open_async(url, **options) as ds:
        return await ds.read(level=level)


# ------------------------------------------------------------------------------ TIFF
@pytest.mark.parametrize("layout", ["tiled", "stripped"])
async def test_tiff_zyx_pixels_pyramid_and_plane_reads(tmp_path: Path, layout: str) -> None:
    data = ramp((5, 300, 260))
    src = tmp_path / f"{layout}.tif"
    (write_tiled if layout == "tiled" else write_stripped)(src, data)
    dst = tmp_path / "out.ome.zarr"
    calls: list[tuple[int, int]] = []
    async with TiffSource(src) as source:
        result = await ngio_async.convert(
            source, dst, chunks=(1, 64, 64), levels=2, progress=lambda d, t: calls.append((d, t))
        )
        # streamed plane by plane: one shard (here a whole plane) per read at most,
        # and every pixel read exactly once
        assert source.max_read_bytes <= source.plane_bytes
        assert source.bytes_read == data.nbytes
        assert source.reads >= data.shape[0]
    assert result.axes == ("z", "y", "x")
    assert result.levels == 2
    assert calls[-1][0] == calls[-1][1] == result.tiles
    async with ngio_async.open_async(dst) as ds:
        assert ds.metadata.ngff_version == "0.5"
        np.testing.assert_array_equal(await ds.read(), data)
        assert ds.levels[1].shape == (5, 150, 130)
        assert ds.levels[0].chunks == (1, 64, 64)
        lvl1 = await ds.read(level=1)
        expected = data[:, :2, :2].reshape(5, 1, 2, 1, 2).mean(axis=(2, 4))
        np.testing.assert_allclose(lvl1[:, :1, :1], expected, atol=1)


async def test_tiff_tile_reads_smaller_than_a_plane(tmp_path: Path) -> None:
    data = ramp((2, 256, 256))
    src = write_tiled(tmp_path / "t.tif", data, tile=(32, 32))
    async with TiffSource(src) as source:
        await ngio_async.convert(source, tmp_path / "o.zarr", chunks=(1, 32, 32), shards=False)
        assert source.max_read_bytes == 32 * 32 * 2  # one tile per read, not one plane
        assert source.reads == 2 * 8 * 8
    np.testing.assert_array_equal(await read_all(tmp_path / "o.zarr"), data)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_ome_tiff_channels_scales_units(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    data = ramp((3, 2, 70, 90))  # czyx
    src = write_ome(
        tmp_path / "img.ome.tif",
        data,
        channels=["DAPI", "GFP", "RFP"],
        colors=[-16776961, 16711935, 65535],  # RGBA as signed int32: red, green, blue
        physical=(2.0, 0.5, 0.25),
        unit="nm",
        tile=(32, 32),
    )
    result = await ngio_async.convert(src, tmp_path / "img.ome.zarr", ngff_version=version)
    assert result.ngff_version == version
    async with ngio_async.open_async(tmp_path / "img.ome.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(await ds.read(), data)
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (1.0, 2.0, 0.5, 0.25)
        assert [a.unit for a in cal.axes] == [None, "nanometer", "nanometer", "nanometer"]
        assert [c.label for c in ds.metadata.channels] == ["DAPI", "GFP", "RFP"]
        assert [c.color for c in ds.metadata.channels] == ["FF0000", "00FF00", "0000FF"]
        assert np.array_equal(await ds.read(c="GFP"), data[1])


async def test_plain_tiff_resolution_tags(tmp_path: Path) -> None:
    data = ramp((60, 80), "uint8")
    src = write_resolution(tmp_path / "plain.tiff", data, per_cm=(4000.0, 2000.0))
    await ngio_async.convert(src, tmp_path / "plain.ome.zarr")
    async with ngio_async.open_async(tmp_path / "plain.ome.zarr") as ds:
        assert ds.axes == ("y", "x")
        np.testing.assert_array_equal(await ds.read(), data)
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == pytest.approx((5.0, 2.5))  # 1 cm / 2000 px, 1 cm / 4000 px, in µm
        assert cal["x"].unit == cal["y"].unit == "micrometer"


async def test_rgb_samples_become_channels(tmp_path: Path) -> None:
    data = ramp((40, 50, 3), "uint8")
    src = write_resolution(tmp_path / "rgb.tif", data, per_cm=(10000.0, 10000.0), rgb=True)
    await ngio_async.convert(src, tmp_path / "rgb.ome.zarr", ngff_version="0.4")
    async with ngio_async.open_async(tmp_path / "rgb.ome.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        np.testing.assert_array_equal(await ds.read(), np.moveaxis(data, -1, 0))
        assert [c.label for c in ds.metadata.channels] == ["red", "green", "blue"]
        assert ds.metadata.spatial_calibration[0]["x"].scale == pytest.approx(1.0)


async def test_imagej_hyperstack_and_big_endian(tmp_path: Path) -> None:
    data = ramp((2, 3, 40, 50))  # zcyx
    src = write_imagej(tmp_path / "ij.tif", data, axes="ZCYX", spacing=2.0, pixel=(0.25, 0.5))
    await ngio_async.convert(src, tmp_path / "ij.zarr")
    async with ngio_async.open_async(tmp_path / "ij.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(await ds.read(), data.transpose(1, 0, 2, 3))
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == pytest.approx((1.0, 2.0, 0.25, 0.5))
        assert cal["z"].unit == cal["x"].unit == "micrometer"
    be = ramp((4, 30, 20), ">u2")
    await ngio_async.convert(write_big_endian(tmp_path / "be.tif", be), tmp_path / "be.zarr")
    async with ngio_async.open_async(tmp_path / "be.zarr") as ds:
        assert ds.dtype == np.dtype("uint16")
        np.testing.assert_array_equal(await ds.read(), be.astype("uint16"))


@pytest.mark.parametrize("spacing", [0.0, -1.5])
async def test_a_tiff_pixel_size_of_zero_or_below_is_no_calibration(
    tmp_path: Path, spacing: float
) -> None:
    # ImageJ writes spacing=0 for some stacks: the image converts, z keeps the default 1
    data = ramp((3, 20, 30))
    src = write_imagej(tmp_path / "ij.tif", data, axes="ZYX", spacing=spacing, pixel=(0.5, 0.5))
    await ngio_async.convert(src, tmp_path / "ij.zarr")
    async with ngio_async.open_async(tmp_path / "ij.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), data)
        assert ds.metadata.spatial_calibration[0].scale == pytest.approx((1.0, 0.5, 0.5))


def test_axis_mapping() -> None:
    assert map_axes("QYX", (3, 4, 5)) == ["z", "y", "x"]
    assert map_axes("TZCYXS", (1, 2, 3, 4, 5, 1)) == ["t", "z", "c", "y", "x", None]
    assert map_axes("YXS", (4, 5, 3)) == ["y", "x", "c"]
    assert map_axes("ZQYX", (2, 3, 4, 5)) == ["z", "t", "y", "x"]
    with pytest.raises(ngio_async.UnsupportedError):
        map_axes("CYXS", (2, 4, 5, 3))


# ------------------------------------------------------------------------------ OME-Zarr
async def make_source(path: Path, version: str = "0.4") -> NDArray[Any]:
    """A 2-level czyx image with a 2-level label image and unknown omero keys."""
    data = ramp((2, 3, 96, 80))
    labels = (ramp((3, 96, 80), "uint16") % 5).astype("uint32")
    async with ngio_async.create_async(
        path,
        shape=data.shape,
        dtype="uint16",
        axes="czyx",
        scale=(1.0, 2.0, 0.5, 0.5),
        translation=(0.0, 1.0, 2.0, 3.0),
        chunks=(1, 1, 32, 32),
        levels=2,
        channels=[{"label": "DAPI", "window": (10, 900)}, "GFP"],
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        await ds.write(data)
        await ds.build_pyramid()
        cells = await ds.labels.create(
            "cells", colors={1: [255, 0, 0, 255]}, properties=[{"label-value": 1, "area": 3}]
        )
        await cells.write(labels)
        await cells.build_pyramid()
    key = path / (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads(key.read_text())
    attrs = doc if version == "0.4" else doc["attributes"]["ome"]
    attrs["omero"]["name"] = "my image"
    attrs["omero"]["rdefs"] = {"model": "color", "defaultZ": 1}
    attrs["omero"]["vendor_key"] = {"x": [1, 2]}
    attrs["omero"]["channels"][0]["family"] = "linear"
    key.write_text(json.dumps(doc))
    return data


async def snapshot(url: Any, **options: Any) -> dict[str, Any]:
    """Every level's pixels, of the image and its labels, and the NGFF metadata as 0.4 attrs."""
    out: dict[str, Any] = {}
    async with ngio_async.open_async(url, **options) as ds:
        out["meta"] = to_attrs(ds.metadata.ome, "0.4")
        out["levels"] = [await ds.read(level=i) for i in range(len(ds.levels))]
        out["labels"] = {}
        for name in await ds.labels.names():
            lab = await ds.labels.open(name)
            out["labels"][name] = (
                to_attrs(lab.metadata.ome, "0.4"),
                [await lab.read(level=i) for i in range(len(lab.levels))],
            )
            await lab.aclose()
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["meta"] == b["meta"]
    assert len(a["levels"]) == len(b["levels"])
    for x, y in zip(a["levels"], b["levels"], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a["labels"].keys() == b["labels"].keys()
    for name, (meta, levels) in a["labels"].items():
        assert b["labels"][name][0] == meta
        for x, y in zip(levels, b["labels"][name][1], strict=True):
            np.testing.assert_array_equal(x, y)


async def test_round_trip_04_05_04_is_exact(tmp_path: Path) -> None:
    await make_source(tmp_path / "a.zarr", "0.4")
    r1 = await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "b.zarr", ngff_version="0.5")
    r2 = await ngio_async.convert(tmp_path / "b.zarr", tmp_path / "c.zarr", ngff_version="0.4")
    assert r1.labels == r2.labels == ("cells",)
    a, b, c = [await snapshot(tmp_path / n) for n in ("a.zarr", "b.zarr", "c.zarr")]
    assert_same(a, b)
    assert_same(a, c)
    b_doc = json.loads((tmp_path / "b.zarr" / "zarr.json").read_text())["attributes"]["ome"]
    assert b_doc["version"] == "0.5"
    assert b_doc["omero"]["vendor_key"] == {"x": [1, 2]}
    assert b_doc["omero"]["channels"][0]["family"] == "linear"
    a_doc = json.loads((tmp_path / "a.zarr" / ".zattrs").read_text())
    c_doc = json.loads((tmp_path / "c.zarr" / ".zattrs").read_text())
    assert a_doc == c_doc  # the whole document, unknown keys included
    for rel in ("labels/.zattrs", "labels/cells/.zattrs"):
        assert json.loads((tmp_path / "a.zarr" / rel).read_text()) == json.loads(
            (tmp_path / "c.zarr" / rel).read_text()
        )
    # 0.5 arrays are zarr v3 with dimension names; 0.4 arrays are v2
    assert zarr.open_array(tmp_path / "b.zarr" / "0").metadata.zarr_format == 3
    assert zarr.open_array(tmp_path / "c.zarr" / "labels" / "cells" / "1").metadata.zarr_format == 2


async def test_rechunk_reshard_recompress(tmp_path: Path) -> None:
    data = await make_source(tmp_path / "a.zarr", "0.5")
    before = await snapshot(tmp_path / "a.zarr")
    result = await ngio_async.convert(
        tmp_path / "a.zarr",
        tmp_path / "b.zarr",
        chunks=(1, 1, 16, 16),
        shards=(1, 1, 48, 32),
        compressor="gzip",
    )
    assert result.tiles > 0
    assert_same(before, await snapshot(tmp_path / "b.zarr"))
    arr = zarr.open_array(tmp_path / "b.zarr" / "0")
    assert arr.chunks == (1, 1, 16, 16)
    assert arr.shards == (1, 1, 48, 32)
    assert type(arr.compressors[0]).__name__ == "GzipCodec"
    np.testing.assert_array_equal(arr[:], data)
    lab = zarr.open_array(tmp_path / "b.zarr" / "labels" / "cells" / "0")
    assert lab.chunks == (1, 16, 16)
    assert lab.shards == (1, 48, 32)
    # unsharded, uncompressed
    await ngio_async.convert(
        tmp_path / "b.zarr", tmp_path / "c.zarr", shards=False, compressor=False
    )
    arr = zarr.open_array(tmp_path / "c.zarr" / "0")
    assert arr.shards is None
    assert arr.chunks == (1, 1, 16, 16)
    assert not arr.compressors
    assert_same(before, await snapshot(tmp_path / "c.zarr"))


async def test_levels_fewer_and_more(tmp_path: Path) -> None:
    data = await make_source(tmp_path / "a.zarr", "0.5")
    r = await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "one.zarr", levels=1)
    assert r.levels == 1
    r = await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "three.zarr", levels=3)
    assert r.levels == 3
    async with ngio_async.open_async(tmp_path / "three.zarr") as ds:
        assert len(ds.levels) == 3
        assert ds.levels[2].shape == (2, 3, 24, 20)
        np.testing.assert_array_equal(await ds.read(), data)
        assert ds.metadata.spatial_calibration[2]["x"].scale == pytest.approx(2.0)


async def test_disk_to_s3_and_back(tmp_path: Path, s3_server: S3Server) -> None:
    await make_source(tmp_path / "a.zarr", "0.4")
    before = await snapshot(tmp_path / "a.zarr")
    url = s3_server.fresh_url() + "/img.ome.zarr"
    await ngio_async.convert(
        tmp_path / "a.zarr", url, ngff_version="0.5", dst_options=s3_server.options()
    )
    assert_same(before, await snapshot(url, **s3_server.options()))
    await ngio_async.convert(
        url, tmp_path / "back.zarr", ngff_version="0.4", src_options=s3_server.options()
    )
    assert_same(before, await snapshot(tmp_path / "back.zarr"))


async def test_refuses_existing_without_overwrite(tmp_path: Path) -> None:
    await make_source(tmp_path / "a.zarr", "0.5")
    await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "b.zarr")
    with pytest.raises(ngio_async.ExistsError):
        await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "b.zarr")
    await ngio_async.convert(tmp_path / "a.zarr", tmp_path / "b.zarr", overwrite=True)


# ------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("spelling", ["same", "file-url", "symlink", "parent", "inside"])
def test_refuses_a_destination_that_is_or_holds_the_source(tmp_path: Path, spelling: str) -> None:
    """Writing there would delete the source before it is read (it used to: all zeros)."""
    src = tmp_path / "d" / "img.ome.zarr"
    src.parent.mkdir()
    data = ramp((1, 64, 64))
    with ngio_async.create(src, shape=data.shape, dtype="uint16", axes="cyx", levels=1) as ds:
        ds.write(data)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    dst = {
        "same": str(src),
        "file-url": f"file://{src}/",
        "symlink": str(tmp_path / "link" / "img.ome.zarr"),
        "parent": str(src.parent),
        "inside": str(src / "out.zarr"),
    }[spelling]
    before = tree_state(tmp_path / "d"), sorted(os.listdir(src))
    with pytest.raises(ValueError, match="destroy the source") as info:
        ngio_async.convert_sync(src, dst, ngff_version="0.4", overwrite=True)
    assert dst in str(info.value) and str(src) in str(info.value)  # names both
    # nothing touched: no file rewritten or removed, no directory created
    assert (tree_state(tmp_path / "d"), sorted(os.listdir(src))) == before
    with ngio_async.open(src) as ds:
        np.testing.assert_array_equal(np.asarray(ds), data)


async def test_refuses_the_same_memory_store(tmp_path: Path) -> None:
    store = open_store("memory://")
    async with await ngio_async.create_async(
        store, shape=(32, 32), dtype="uint8", axes="yx", levels=1
    ) as ds:
        await ds.write(np.full((32, 32), 7, "uint8"))
        with pytest.raises(ValueError, match="is the source"):
            await ngio_async.convert(ds, store, overwrite=True)
        assert (await ds.read() == 7).all()
        # another memory store (memory:// URLs open new ones) is a different place
        other = open_store("memory://")
        result = await ngio_async.convert(ds, other)
        assert result.shape == (32, 32)
        await other.aclose()
    await store.aclose()


async def test_convert_many_reports_an_input_that_is_its_own_output(tmp_path: Path) -> None:
    data = ramp((1, 48, 48))
    own = tmp_path / "e.ome.zarr"
    async with ngio_async.create_async(
        own, shape=data.shape, dtype="uint16", axes="cyx", levels=1
    ) as ds:
        await ds.write(data)
    tif = write_tiled(tmp_path / "f.tif", ramp((2, 32, 32)), tile=(16, 16))
    before = tree_state(own)
    for overwrite in (True, False):
        results = await ngio_async.convert_many([own, tif], tmp_path, overwrite=overwrite)
        failure = results[str(own)]
        assert isinstance(failure, ValueError) and "is the source" in str(failure)
        assert isinstance(results[str(tif)], ConvertResult)  # the other input is converted
        assert tree_state(own) == before
    np.testing.assert_array_equal(await read_all(own), data)


# ------------------------------------------------------------------------------ attributes
def _group_doc(path: Path) -> dict[str, Any]:
    """The group attributes as stored: ``.zattrs`` (0.4) or ``zarr.json["attributes"]``."""
    if (path / "zarr.json").exists():
        return json.loads((path / "zarr.json").read_text())["attributes"]  # type: ignore[no-any-return]
    return json.loads((path / ".zattrs").read_text())  # type: ignore[no-any-return]


def _add_user_key(path: Path, value: Any) -> None:
    key = path / ("zarr.json" if (path / "zarr.json").exists() else ".zattrs")
    doc = json.loads(key.read_text())
    (doc["attributes"] if key.name == "zarr.json" else doc)["foo"] = value
    key.write_text(json.dumps(doc))


@pytest.mark.parametrize(("src_version", "dst_version"), [("0.5", "0.4"), ("0.4", "0.5")])
async def test_user_attributes_stay_at_the_group_level(
    tmp_path: Path, src_version: str, dst_version: str
) -> None:
    src = tmp_path / "src.zarr"
    await make_source(src, src_version)
    groups = ("", "labels", "labels/cells")
    for i, rel in enumerate(groups):
        _add_user_key(src / rel, {"bar": i})
    dst = tmp_path / "dst.zarr"
    await ngio_async.convert(src, dst, ngff_version=dst_version)  # type: ignore[arg-type]
    for i, rel in enumerate(groups):
        attrs = _group_doc(dst / rel)
        assert attrs["foo"] == {"bar": i}, rel  # beside "ome" (0.5) / top level (0.4)
        if dst_version == "0.5":
            assert "foo" not in attrs["ome"]
            assert set(attrs) == {"ome", "foo"}
    # and back: the source's documents again
    back = tmp_path / "back.zarr"
    await ngio_async.convert(dst, back, ngff_version=src_version)  # type: ignore[arg-type]
    for rel in groups:
        assert _group_doc(back / rel) == _group_doc(src / rel), rel


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"chunks": (1, 1, 0, 32)},
            ValueError,
            r"chunks\['y'\] is 0; expected 4 or fewer positive",
        ),
        (
            {"chunks": (2, 1, 1, 64, 64)},
            ValueError,
            r"chunks \(2, 1, 1, 64, 64\) has 5 values: expected 4 or fewer .*'c', 'z'",
        ),
        ({"shards": (0, 64, 64)}, ValueError, r"shards \(0, 64, 64\): shards\['z'\] is 0"),
        ({"shards": ()}, ValueError, r"shards \(\) has 0 values: expected 4 or fewer"),
        ({"shards": (1, 1, 48, 20)}, ValueError, "whole multiples of the chunks"),
        ({"chunks": (1, 1, 16.5, 16)}, TypeError, r"chunks\['y'\] must be an integer"),
        ({"levels": 0}, ValueError, "levels must be >= 1, got 0"),
        ({"levels": -1}, ValueError, "levels must be >= 1, got -1"),
        ({"ngff_version": "0.4", "shards": (1, 1, 64, 64)}, ngio_async.UnsupportedError, "0.4"),
        ({"ngff_version": "0.3"}, ngio_async.UnsupportedError, "'0.3'"),
        ({"compressor": "lz4"}, ValueError, "unknown compressor 'lz4'"),
    ],
)
async def test_layout_options_are_checked_before_anything_is_written(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    src = tmp_path / "a.zarr"
    await make_source(src, "0.5")
    dst = tmp_path / "b.zarr"
    with pytest.raises(error, match=message):
        await ngio_async.convert(src, dst, **options)
    assert not dst.exists()  # no empty directory left behind


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # leading 1s beyond the axes are ignored (one shape for a batch); other values are not
        (
            {"chunks": (2, 64, 64)},
            r"has 3 values: expected 2 or fewer positive integers .*\['y', 'x'\]",
        ),
        ({"chunks": (0, 64)}, r"chunks\['y'\] is 0"),
        ({"levels": 0}, "levels must be >= 1"),
    ],
)
async def test_tiff_layout_options_are_checked_before_anything_is_written(
    tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    src = write_tiled(tmp_path / "t.tif", ramp((64, 64)), tile=(32, 32))
    dst = tmp_path / "t.zarr"
    with pytest.raises(ValueError, match=message):
        await ngio_async.convert(src, dst, **options)
    assert not dst.exists()


def test_convert_sync(tmp_path: Path) -> None:
    data = ramp((2, 64, 64))
    src = write_tiled(tmp_path / "s.tif", data, tile=(32, 32))
    result = ngio_async.convert_sync(src, tmp_path / "s.ome.zarr", ngff_version="0.4")
    assert isinstance(result, ConvertResult)
    with ngio_async.open(tmp_path / "s.ome.zarr") as ds:
        np.testing.assert_array_equal(np.asarray(ds), data)


# ------------------------------------------------------------------------------ batches
def tree_state(root: Path) -> dict[str, int]:
    return {
        os.path.relpath(os.path.join(d, f), root): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(root)
        for f in files
    }


async def test_convert_many_failure_and_rerun(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    good = {
        "a.ome.tif": write_ome(inputs / "a.ome.tif", ramp((2, 1, 40, 30)), channels=["x", "y"]),
        "b.tif": write_tiled(inputs / "b.tif", ramp((3, 64, 64)), tile=(32, 32)),
        "c.tiff": write_stripped(inputs / "c.tiff", ramp((1, 50, 70))),
    }
    (inputs / "broken.tif").write_bytes(b"II*\x00 this is not a tiff")
    out = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    results = await ngio_async.convert_many(
        str(inputs / "*.tif*"), out, concurrency=2, progress=lambda d, t: calls.append((d, t))
    )
    assert len(results) == 4
    assert isinstance(results[str(inputs / "broken.tif")], Exception)
    for name in good:
        res = results[str(inputs / name)]
        assert isinstance(res, ConvertResult), res
        assert not res.skipped
    assert calls[-1] == (4, 4)
    assert sorted(os.listdir(out)) == ["a.ome.zarr", "b.ome.zarr", "c.ome.zarr"]
    assert await is_complete(out / "b.ome.zarr")
    state = tree_state(out)

    results = await ngio_async.convert_many(str(inputs / "*.tif*"), out)
    assert isinstance(results[str(inputs / "broken.tif")], Exception)
    assert all(
        isinstance(r, ConvertResult) and r.skipped for k, r in results.items() if "broken" not in k
    )
    assert tree_state(out) == state  # nothing rewritten

    # an incomplete output (no group metadata: interrupted) is converted again
    (out / "b.ome.zarr" / "zarr.json").unlink()
    assert not await is_complete(out / "b.ome.zarr")
    results = await ngio_async.convert_many([inputs / "b.tif", inputs / "c.tiff"], out)
    b, c = results[str(inputs / "b.tif")], results[str(inputs / "c.tiff")]
    assert isinstance(b, ConvertResult)
    assert not b.skipped
    assert isinstance(c, ConvertResult)
    assert c.skipped
    np.testing.assert_array_equal(await read_all(out / "b.ome.zarr"), ramp((3, 64, 64)))


def test_output_name() -> None:
    assert output_name("/x/a.ome.tif") == "a.ome.zarr"
    assert output_name("b.TIFF") == "b.ome.zarr"
    assert output_name("s3://bkt/c.ome.zarr/") == "c.ome.zarr"


# ------------------------------------------------------------------------------ registry
class ArraySource:
    """A third-party :class:`ImageSource`: a numpy array in memory."""

    def __init__(self, data: NDArray[Any]) -> None:
        self.url = "array://demo"
        self.data = data
        self.axes = ("c", "y", "x")
        self.shape = data.shape
        self.dtype = data.dtype
        self.scale = (1.0, 0.3, 0.3)
        self.units: tuple[str | None, ...] = (None, "micrometer", "micrometer")
        self.translation = (0.0, 0.0, 0.0)
        self.channels: list[dict[str, Any]] | None = [{"label": "one"}, {"label": "two"}]
        self.name: str | None = "demo"
        self.closed = False

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]:
        return self.data[region]

    async def aclose(self) -> None:
        self.closed = True


class ArrayReader:
    name = "array"

    def __init__(self) -> None:
        self.opened: list[ArraySource] = []

    def can_read(self, url: Any) -> bool:
        return isinstance(url, str) and url.startswith("array://")

    async def open(self, url: Any, **options: Any) -> ArraySource:
        source = ArraySource(ramp((2, 30, 40)))
        self.opened.append(source)
        return source


async def test_registry_and_third_party_reader(tmp_path: Path) -> None:
    assert isinstance(formats.find_reader(tmp_path / "x.ome.tiff"), formats.TiffReader)
    assert isinstance(formats.find_reader("s3://b/x.zarr"), formats.OmeZarrReader)
    reader = ArrayReader()
    assert isinstance(reader, formats.Reader)
    formats.register(reader)
    try:
        assert formats.find_reader("array://demo") is reader
        await ngio_async.convert("array://demo", tmp_path / "arr.zarr")
    finally:
        formats.unregister(reader)
    assert reader.opened[0].closed
    async with ngio_async.open_async(tmp_path / "arr.zarr") as ds:
        np.testing.assert_array_equal(await ds.read(), ramp((2, 30, 40)))
        assert [c.label for c in ds.metadata.channels] == ["one", "two"]
        assert ds.metadata.name == "demo"


def test_entry_point_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader installed by another distribution under the ``ngio_async.formats`` group."""
    (tmp_path / "fake_reader_mod.py").write_text(
        "class FakeReader:\n"
        "    name = 'fake'\n"
        "    def can_read(self, url):\n"
        "        return str(url).endswith('.fake')\n"
        "    async def open(self, url, **options):\n"
        "        raise NotImplementedError\n"
    )
    dist = tmp_path / "fake_reader-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-reader\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ngio_async.formats]\nfake = fake_reader_mod:FakeReader\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reader = formats.find_reader("x.fake")
    assert reader.name == "fake"
    assert [r.name for r in formats.readers()][-2:] == ["tiff", "ome-zarr"]


async def test_open_tiff_as_dataset(tmp_path: Path) -> None:
    data = ramp((3, 2, 70, 90))
    src = write_ome(tmp_path / "d.ome.tif", data, channels=["DAPI", "GFP", "RFP"], tile=(32, 32))
    ds = await formats.open_dataset(src)
    async with ds:
        assert ds.axes == ("c", "z", "y", "x")
        assert ds.levels[0].chunks == (1, 1, 32, 32)
        np.testing.assert_array_equal(await ds.read(c="GFP", z=1), data[1, 1])
        np.testing.assert_array_equal(await ds[2, :, 10:40, 5:7], data[2, :, 10:40, 5:7])
        total = 0
        async for tile in ds.tiles(ordered=False):
            np.testing.assert_array_equal(tile.data, data[tile.region])
            total += tile.data.nbytes
        assert total == data.nbytes
        assert ds.metadata.spatial_calibration[0]["x"].scale == 0.25
        assert await ds.labels.names() == []
        with pytest.raises(ngio_async.ReadOnlyError):
            await ds.write(data)
    with formats.open(src) as sync_ds:
        np.testing.assert_array_equal(np.asarray(sync_ds), data)
    with pytest.raises(ngio_async.NotFoundError):  # not a TIFF: OME-Zarr's open_async
        formats.open(tmp_path / "missing.zarr")


class FailingSource(ArraySource):
    """Fails on one tile, after others were written."""

    async def read(self, region: tuple[slice, ...]) -> NDArray[Any]:
        if region[1].start == 64:
            raise OSError("disk on fire")
        return self.data[region]


async def test_failure_mid_way_leaves_an_incomplete_output(tmp_path: Path) -> None:
    source = FailingSource(ramp((2, 128, 64)))
    with pytest.raises(OSError, match="disk on fire"):  # the error itself, not a group
        await ngio_async.convert(source, tmp_path / "f.zarr", chunks=(1, 32, 32), shards=False)
    assert (tmp_path / "f.zarr" / "0" / "zarr.json").exists()  # arrays first ...
    assert not await is_complete(tmp_path / "f.zarr")  # ... the group metadata never
    await ngio_async.convert(ArraySource(ramp((2, 128, 64))), tmp_path / "f.zarr", overwrite=True)
    assert await is_complete(tmp_path / "f.zarr")


def test_open_reads_a_tiff_through_the_dataset_api(tmp_path: Path) -> None:
    import dask.array as da

    planes = np.random.default_rng(1).integers(0, 4000, (3, 64, 80), dtype=np.uint16)
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(
        path, planes, ome=True, tile=(32, 32), metadata={"axes": "ZYX", "PhysicalSizeX": 0.5}
    )
    with ngio_async.open(path) as ds:
        assert ds.axes == ("z", "y", "x")
        np.testing.assert_array_equal(ds[1, 10:40, 5:70], planes[1, 10:40, 5:70])
        np.testing.assert_array_equal(
            da.from_array(ds, chunks=(1, 32, 32)).compute(),  # type: ignore[no-untyped-call]
            planes,
        )
        assert ds.metadata.spatial_calibration[0]["x"].scale == 0.5
        assert sum(t.data.size for t in ds.tiles()) == planes.size

    async def go() -> None:
        async with ngio_async.open_async(str(path)) as ads:
            np.testing.assert_array_equal(await ads[2], planes[2])
            with pytest.raises(ngio_async.ReadOnlyError):
                await ads.write(planes)

    anyio.run(go, backend="asyncio")


# ------------------------------------------------------------------------------ info reads
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_info_reads_every_metadata_document_once(tmp_path: Path, version: str) -> None:
    from images import Spec, write_image

    from ngio_async.cli._info import gather_info
    from ngio_async.stores import InstrumentedStore, open_store

    write_image(tmp_path / "img", Spec(version=version, levels=3))
    store = InstrumentedStore(open_store(str(tmp_path / "img")))
    info = await gather_info(store, sizes=False)  # type: ignore[arg-type]
    assert info["kind"] == "image"
    assert len(info["image"]["levels"]) == 3
    gets = {key: n for (method, key), n in store.calls.items() if method == "get"}
    group = "zarr.json" if version == "0.5" else ".zattrs"
    assert gets[group] == 1  # the image's group metadata: once (was twice)
    assert max(gets.values()) == 1, gets


async def test_info_reads_each_series_metadata_once(tmp_path: Path) -> None:
    from images import Spec, write_image

    from ngio_async.cli._info import gather_info
    from ngio_async.stores import InstrumentedStore, open_store

    root = tmp_path / "bf2raw.zarr"
    for series in ("0", "1"):
        write_image(root / series, Spec(levels=2, seed=int(series)))
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5"}}}
    doc["attributes"]["ome"]["bioformats2raw.layout"] = 3  # type: ignore[index]
    (root / "zarr.json").write_text(json.dumps(doc))
    store = InstrumentedStore(open_store(str(root)))
    info = await gather_info(store, sizes=False)  # type: ignore[arg-type]
    assert info["kind"] == "bioformats2raw"
    assert [s["path"] for s in info["series"]] == ["0", "1"]
    gets = {key: n for (method, key), n in store.calls.items() if method == "get"}
    assert gets["0/zarr.json"] == gets["1/zarr.json"] == gets["zarr.json"] == 1
    assert max(gets.values()) == 1, gets


# ------------------------------------------------------------------------------ remote TIFFs
def _ranges(server: StaticServer, path: str) -> list[tuple[int, int]]:
    """The byte ranges ``[start, end)`` of the GETs of ``path`` (every one must be ranged)."""
    out = []
    for r in server.requests:
        if r.path == path and r.method == "GET":
            assert r.range is not None, "a TIFF is never fetched whole"
            first, last = r.range.removeprefix("bytes=").split("-")
            out.append((int(first), int(last) + 1))
    return out


async def test_http_tiff_levels_regions_and_request_counts(
    http_server: StaticServer, http_root: Path
) -> None:
    from tiffs import write_pyramid

    data = ramp((2, 1024, 768))
    pyramid = write_pyramid(http_root / "big.ome.tif", data, 3, tile=(128, 128))
    size = (http_root / "big.ome.tif").stat().st_size
    url = http_server.url + "big.ome.tif"
    limits = ngio_async.Limits(coalesce_gap=0)  # one request per tile: countable
    async with ngio_async.open_async(url, limits=limits) as ds:
        opened = _ranges(http_server, "/big.ome.tif")
        assert 1 <= len(opened) <= 12  # the header, then one read per IFD further on
        assert [lvl.shape for lvl in ds.levels] == [(2, 1024, 768), (2, 512, 384), (2, 256, 192)]
        assert ds.levels[2].scale == (1.0, 2.0, 2.0)
        source = ds.levels[0].source  # type: ignore[attr-defined]
        header = source.file.cached_bytes
        assert header <= sum(e - s for s, e in opened)  # the last one may end the file
        http_server.reset()
        # rows 100-300, columns 130-260 of channel 1: 3 x 2 tiles of 128x128 (32 KiB each);
        # adjacent tiles come in one request
        part = await ds.read(c=1, y=slice(100, 300), x=slice(130, 260))
        np.testing.assert_array_equal(part, data[1, 100:300, 130:260])
        fetched = _ranges(http_server, "/big.ome.tif")
        assert 3 <= len(fetched) <= 6
        assert sum(end - start for start, end in fetched) == 6 * 128 * 128 * 2
        http_server.reset()
        for i, level in enumerate(pyramid):
            np.testing.assert_array_equal(await ds.read(level=i), level)
        fetched = _ranges(http_server, "/big.ome.tif")
        tiles = sum(2 * -(-lv.shape[1] // 128) * -(-lv.shape[2] // 128) for lv in pyramid)
        assert sum(e - s for s, e in fetched) == tiles * 128 * 128 * 2  # each tile once
        assert sum(e - s for s, e in fetched) < size
        http_server.reset()
        http_server.faults.delay = 0.02
        tiles = 0
        async for tile in ds.tiles(level=1):  # one TIFF tile each, fetched concurrently
            np.testing.assert_array_equal(tile.data, pyramid[1][tile.region])
            tiles += 1
        assert tiles == len(_ranges(http_server, "/big.ome.tif")) == 2 * 4 * 3
        assert http_server.peak_in_flight > 1
        assert source.file.cached_bytes == header  # pixel bytes are dropped after each read


async def test_http_stripped_tiff_and_sync_open(http_server: StaticServer, http_root: Path) -> None:
    data = ramp((3, 200, 90))
    write_stripped(http_root / "strips.tif", data, rowsperstrip=16)
    url = http_server.url + "strips.tif"
    async with ngio_async.open_async(url, limits=ngio_async.Limits(coalesce_gap=0)) as ds:
        http_server.reset()
        part = await ds.read(z=2, y=slice(40, 70))
        np.testing.assert_array_equal(part, data[2, 40:70])
        fetched = _ranges(http_server, "/strips.tif")  # rows 40-69 of uncompressed strips
        assert sum(e - s for s, e in fetched) == 30 * 90 * 2
    with ngio_async.open(url) as sds:
        np.testing.assert_array_equal(sds[1, 5:150, 3:80], data[1, 5:150, 3:80])


async def test_http_tiff_missing(http_server: StaticServer) -> None:
    with pytest.raises(ngio_async.NotFoundError):
        await ngio_async.open_async(http_server.url + "nothing.tif")


async def test_http_tiff_of_an_undecodable_compression_is_refused_at_open(
    tmp_path: Path, http_server: StaticServer, http_root: Path
) -> None:
    odd = http_root / "odd.tif"
    tifffile.imwrite(odd, ramp((2, 20, 30)), photometric="minisblack")
    with tifffile.TiffFile(odd, mode="r+") as tif:
        for page in tif.pages:
            assert isinstance(page, tifffile.TiffPage)
            page.tags["Compression"].overwrite(60000)
    dst = tmp_path / "odd.ome.zarr"
    with pytest.raises(ngio_async.UnsupportedError, match=r"odd\.tif: 60000"):
        await ngio_async.convert(http_server.url + "odd.tif", dst)
    assert not dst.exists()


async def test_s3_tiff_open_and_convert(tmp_path: Path, s3_server: S3Server) -> None:
    from tiffs import write_pyramid

    from ngio_async.stores import open_store

    data = ramp((2, 300, 200))
    pyramid = write_pyramid(tmp_path / "s.ome.tif", data, 2, tile=(64, 64))
    base = s3_server.fresh_url()
    async with open_store(base, **s3_server.options()) as store:
        await store.put("s.ome.tif", (tmp_path / "s.ome.tif").read_bytes())
    url = base + "/s.ome.tif"
    async with ngio_async.open_async(url, **s3_server.options()) as ds:
        assert len(ds.levels) == 2
        np.testing.assert_array_equal(await ds.read(level=1), pyramid[1])
        np.testing.assert_array_equal(await ds.read(y=slice(70, 190)), data[:, 70:190])
    result = await ngio_async.convert(
        url, tmp_path / "out.ome.zarr", levels=2, src_options=s3_server.options()
    )
    assert result.shape == data.shape
    np.testing.assert_array_equal(await read_all(tmp_path / "out.ome.zarr"), data)


async def test_http_tiff_unmapped_layout_fetches_what_it_misses(
    http_server: StaticServer, http_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ngio_async.convert._tiffremote import RemoteTiffSource

    data = ramp((2, 256, 200))
    write_tiled(http_root / "t.tif", data, tile=(64, 64))
    monkeypatch.setattr(RemoteTiffSource, "ranges", lambda self, region, level: None)
    async with ngio_async.open_async(http_server.url + "t.tif", prefix=4096, block=1024) as ds:
        http_server.reset()
        part = await ds.read(z=1, y=slice(70, 130), x=slice(0, 70))
        np.testing.assert_array_equal(part, data[1, 70:130, :70])
        fetched = _ranges(http_server, "/t.tif")
        assert len(fetched) == 4  # one tile per miss: 2 x 2 tiles of 8 KiB
        assert sum(e - s for s, e in fetched) == 4 * 64 * 64 * 2


@pytest.mark.parametrize("kind", ["zlib", "rgb", "planar-rgb", "bigtiff"])
async def test_http_tiff_layouts(http_server: StaticServer, http_root: Path, kind: str) -> None:
    rng = np.random.default_rng(3)
    if kind in ("rgb", "planar-rgb"):
        data = rng.integers(0, 255, (150, 130, 3), dtype=np.uint8)
        planar = "separate" if kind == "planar-rgb" else "contig"
        stored = data if planar == "contig" else np.moveaxis(data, -1, 0)
        tifffile.imwrite(
            http_root / "x.tif", stored, tile=(32, 32), photometric="rgb", planarconfig=planar
        )
        expected = np.moveaxis(data, -1, 0)  # NGFF order: c, y, x
    else:
        expected = ramp((2, 150, 130))
        tifffile.imwrite(
            http_root / "x.tif",
            expected,
            tile=(32, 32),
            compression="zlib" if kind == "zlib" else None,
            bigtiff=kind == "bigtiff",
            photometric="minisblack",
        )
    async with ngio_async.open_async(http_server.url + "x.tif") as ds:
        np.testing.assert_array_equal(await ds.read(), expected)
        http_server.reset()
        part = await ds.read(y=slice(33, 64), x=slice(64, 100))
        np.testing.assert_array_equal(part, expected[:, 33:64, 64:100])
        assert 1 <= len(_ranges(http_server, "/x.tif")) <= 2 * 2 * 3  # 1 tile row x 2 columns
        source = ds.levels[0].source  # type: ignore[attr-defined]
        planned = source.ranges((slice(0, 2), slice(33, 64), slice(64, 100)), 0)
        assert planned is not None  # the tiles are planned, not found by misses
        assert len(planned) == (3 if kind == "planar-rgb" else 1 if kind == "rgb" else 2) * 2


async def test_grayscale_samples_are_no_rgb_and_broken_tiffs_are_codec_errors(
    tmp_path: Path,
) -> None:
    import tifffile

    gray = tmp_path / "gray3.tif"
    tifffile.imwrite(
        gray, np.zeros((3, 32, 32), np.uint16), photometric="minisblack", planarconfig="separate"
    )
    async with ngio_async.open_async(gray) as ds:
        assert [c.label for c in ds.metadata.channels] in ([], [None, None, None])
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00\x00\x00\x03" + b"\x00" * 64)
    with pytest.raises(ngio_async.CodecError, match=r"corrupt\.tif"):
        await ngio_async.open_async(corrupt)
    data = ramp((1, 64, 64))
    good = tmp_path / "zlib.tif"
    tifffile.imwrite(good, data, compression="zlib")
    raw = bytearray(good.read_bytes())
    with tifffile.TiffFile(good) as tif:
        offset = tif.pages[0].dataoffsets[0]
    raw[offset + 8 : offset + 40] = b"\xff" * 32  # a broken deflate stream
    broken = tmp_path / "broken.tif"
    broken.write_bytes(bytes(raw))
    async with ngio_async.open_async(broken) as ds:
        with pytest.raises(ngio_async.CodecError, match=r"broken\.tif"):
            await ds.read()
    with pytest.raises(ValueError, match="has 1 series"):
        await ngio_async.open_async(good, series=3)


async def test_undecodable_or_missing_tiffs_are_refused_before_the_destination_exists(
    tmp_path: Path,
) -> None:
    odd = tmp_path / "odd.tif"
    tifffile.imwrite(odd, ramp((2, 20, 30)), photometric="minisblack")
    with tifffile.TiffFile(odd, mode="r+") as tif:
        for page in tif.pages:
            assert isinstance(page, tifffile.TiffPage)
            page.tags["Compression"].overwrite(60000)  # a compression no codec decodes
    dst = tmp_path / "odd.ome.zarr"
    with pytest.raises(ngio_async.UnsupportedError, match=r"odd\.tif: 60000"):
        await ngio_async.convert(odd, dst)
    assert not dst.exists()  # refused at open: no half-written output
    with pytest.raises(ngio_async.UnsupportedError, match=r"odd\.tif"):
        await ngio_async.open_async(odd)
    missing = tmp_path / "missing.tif"
    with pytest.raises(ngio_async.NotFoundError, match=r"missing\.tif"):
        await ngio_async.convert(missing, tmp_path / "missing.ome.zarr")
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(ngio_async.StoreError, match=r"dir\.tif"):
        await ngio_async.convert(tmp_path / "dir.tif", tmp_path / "dir.ome.zarr")
    assert not (tmp_path / "missing.ome.zarr").exists()


async def test_one_shard_shape_fits_tiffs_of_every_size(tmp_path: Path) -> None:
    """``convert scans/*.tif out/ --shards 1,4096,4096``: a TIFF smaller than the shard (whose
    default chunks are the whole plane) gets shards cut to the image, as OME-Zarr sources do."""
    data = ramp((2, 300, 260))
    src = write_tiled(tmp_path / "small.tif", data)
    dst = tmp_path / "small.ome.zarr"
    await ngio_async.convert(src, dst, shards=(1, 4096, 4096), levels=2)
    async with ngio_async.open_async(dst) as ds:
        assert [lvl.shards for lvl in ds.levels] == [(1, 300, 260), (1, 150, 130)]
        np.testing.assert_array_equal(await ds.read(), data)
    await ngio_async.convert(src, dst, shards=(1, 4096, 4096), chunks=(1, 128, 128), overwrite=True)
    async with ngio_async.open_async(dst) as ds:
        assert ds.levels[0].shards == (1, 384, 384)
        np.testing.assert_array_equal(await ds.read(), data)
    with pytest.raises(ValueError, match="whole multiples"):  # within the image: still checked
        await ngio_async.convert(
            src, dst, shards=(1, 200, 200), chunks=(1, 128, 128), overwrite=True
        )


@pytest.mark.parametrize(
    ("old", "new", "x"),
    [
        ('PhysicalSizeX="0.5"', 'PhysicalSizeX="abc"', 1.0),
        ('PhysicalSizeX="0.5"', 'PhysicalSizeX=""', 1.0),
        ("<Pixels ", '<Pixels TimeIncrement="soon" ', 0.5),
    ],
)
async def test_a_malformed_ome_xml_number_is_no_calibration(
    tmp_path: Path, old: str, new: str, x: float
) -> None:
    """The pixels of an OME-TIFF stay readable when a writer left a bad number in its OME-XML
    (it was a CodecError: 'cannot read the TIFF structure')."""
    data = ramp((2, 30, 40))
    src = tmp_path / "bad.ome.tif"
    tifffile.imwrite(
        src, data, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    )
    with tifffile.TiffFile(src, mode="r+") as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        xml = page.description
        assert old in xml
        page.tags["ImageDescription"].overwrite(xml.replace(old, new, 1))
    dst = tmp_path / "bad.ome.zarr"
    await ngio_async.convert(src, dst)
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), data)
        cal = ds.metadata.spatial_calibration[0]
        assert (cal["y"].scale, cal["x"].scale) == (0.5, x)


async def test_an_ome_xml_tifffile_cannot_parse_is_a_codec_error_naming_the_file(
    tmp_path: Path,
) -> None:
    src = tmp_path / "spp.ome.tif"
    tifffile.imwrite(src, ramp((2, 30, 40)), ome=True, metadata={"axes": "CYX"})
    with tifffile.TiffFile(src, mode="r+") as tif:
        page = tif.pages[0]
        assert isinstance(page, tifffile.TiffPage)
        xml = page.description.replace('SamplesPerPixel="1"', 'SamplesPerPixel="one"')
        page.tags["ImageDescription"].overwrite(xml)
    with pytest.raises(ngio_async.CodecError, match=r"spp\.ome\.tif"):  # was a bare ValueError
        await ngio_async.convert(src, tmp_path / "spp.ome.zarr")
    assert not (tmp_path / "spp.ome.zarr").exists()


async def test_convert_many_names_inputs_that_share_an_output(tmp_path: Path) -> None:
    a = write_tiled(tmp_path / "a.tif", ramp((1, 32, 32)))
    b = write_tiled(tmp_path / "a.tiff", ramp((1, 32, 32)))
    with pytest.raises(
        ValueError, match=r"'.*a\.tif', '.*a\.tiff' would all be written to .*a\.ome\.zarr"
    ):
        await ngio_async.convert_many([a, b], tmp_path / "out")
    assert not (tmp_path / "out" / "a.ome.zarr").exists()


async def test_a_file_url_with_percent_escapes_names_the_tiff(tmp_path: Path) -> None:
    """``file://`` URLs are percent-decoded for TIFFs as for zarr stores (RFC 8089)."""
    folder = tmp_path / "my scans"
    folder.mkdir()
    data = ramp((2, 32, 40))
    write_tiled(folder / "día 1.tif", data)
    url = (folder / "día 1.tif").as_uri()
    assert "%20" in url
    dst = tmp_path / "out.ome.zarr"
    await ngio_async.convert(url, dst)
    async with ngio_async.open_async(dst) as ds:
        np.testing.assert_array_equal(await ds.read(), data)


def test_a_broken_entry_point_reader_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that no longer imports must not break every conversion (TIFF included)."""
    (tmp_path / "broken_reader_mod.py").write_text("import no_such_module_anywhere\n")
    dist = tmp_path / "broken_reader-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-reader\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ngio_async.formats]\nbroken = broken_reader_mod:Reader\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="skipping the reader 'broken'.*ModuleNotFoundError"):
        reader = formats.find_reader(tmp_path / "a.tif")
    assert reader.name == "tiff"


async def test_imagej_time_and_z_units(tmp_path: Path) -> None:
    """ImageJ writes ``tunit=min`` when frames are not seconds apart (2 min was '2 second'),
    ``zunit`` when z's unit differs from x's; a malformed spacing is no calibration."""
    data = np.zeros((3, 2, 20, 30), np.uint8)
    src = tmp_path / "ij.tif"
    metadata = {"axes": "TZYX", "finterval": 2.0, "tunit": "min", "spacing": 0.7, "unit": "um"}
    tifffile.imwrite(
        src, data, imagej=True, resolution=(2.0, 2.0), metadata={**metadata, "zunit": "nm"}
    )
    dst = tmp_path / "ij.ome.zarr"
    await ngio_async.convert(src, dst)
    async with ngio_async.open_async(dst) as ds:
        assert ds.metadata.ome.multiscales is not None
        ms = ds.metadata.ome.multiscales[0]
        assert [(a.name, a.unit) for a in ms.axes] == [
            ("t", "minute"),
            ("z", "nanometer"),
            ("y", "micrometer"),
            ("x", "micrometer"),
        ]
        assert ms.datasets[0].scale == [2.0, 0.7, 0.5, 0.5]
    tifffile.imwrite(src, data, imagej=True, metadata={**metadata, "spacing": "n/a"})
    await ngio_async.convert(src, dst, overwrite=True)
    async with ngio_async.open_async(dst) as ds:
        assert ds.metadata.ome.multiscales is not None
        scale = ds.metadata.ome.multiscales[0].datasets[0].scale
        assert scale is not None and scale[:2] == [2.0, 1.0]


async def test_convert_many_redoes_an_output_without_the_levels_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Extra levels of an OME-Zarr source are built after the group metadata is written: an
    interrupted build left an output that looked complete, and a re-run skipped it."""
    src = tmp_path / "src.ome.zarr"
    async with ngio_async.create_async(src, shape=(64, 64), dtype="uint8", axes="yx") as ds:
        await ds.write(np.ones((64, 64), "uint8"))
    out = tmp_path / "out"

    async def interrupted(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("interrupted")

    with monkeypatch.context() as m:
        m.setattr(ngio_async.Dataset, "build_pyramid", interrupted)
        (failed,) = (await ngio_async.convert_many([src], out, levels=3)).values()
    assert isinstance(failed, RuntimeError)
    assert not await is_complete(out / "src.ome.zarr")  # 1 level, its group marked unfinished
    (result,) = (await ngio_async.convert_many([src], out, levels=3)).values()
    assert isinstance(result, ConvertResult) and not result.skipped and result.levels == 3
    (again,) = (await ngio_async.convert_many([src], out, levels=3)).values()
    assert isinstance(again, ConvertResult) and again.skipped
    (other,) = (await ngio_async.convert_many([src], out, ngff_version="0.4")).values()
    assert isinstance(other, ConvertResult) and not other.skipped
    assert other.ngff_version == "0.4"


async def test_http_tiff_with_escapes_and_a_query_string(
    http_server: StaticServer, http_root: Path
) -> None:
    """A signed URL (name.tif?sig=...) is a TIFF; its name is decoded once (my%20scan.tif is
    /my%20scan.tif on the wire, not /my%2520scan.tif) and the query goes with every request."""
    data = ramp((3, 200, 90))
    write_stripped(http_root / "my scan.tif", data, rowsperstrip=16)
    url = http_server.url + "my%20scan.tif?sig=abc"
    async with ngio_async.open_async(url) as ds:
        np.testing.assert_array_equal(await ds.read(), data)
    targets = [t for t in http_server.raw_targets if "scan" in t]
    assert targets and all(t == "/my%20scan.tif?sig=abc" for t in targets)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("s3://b/scan #1.zarr", "s3://b/scan #2.zarr"),
        ("s3://b/a%41.zarr", "s3://b/aA.zarr"),
        ("gs://b/x.zarr?v1", "gs://b/x.zarr?v2"),
        ("http://h/x.zarr?v=1", "http://h/x.zarr?v=2"),
    ],
)
def test_bucket_paths_are_literal_when_telling_source_and_destination_apart(
    src: str, dst: str
) -> None:
    from ngio_async.convert._locations import check_distinct

    check_distinct(src, dst)  # different keys: no 'the destination is the source'
    with pytest.raises(ValueError, match="is the source"):
        check_distinct(src, src)


def _zarr_python_source(path: Path, zarr_format: int, compressor: Any) -> NDArray[Any]:
    """A one-level cyx image whose array zarr-python wrote with ``compressor``."""
    data = ramp((2, 40, 48))
    ngio_async.create(
        path, shape=data.shape, dtype="uint16", axes="cyx", levels=1,
        ngff_version="0.4" if zarr_format == 2 else "0.5",
    ).close()  # fmt: skip
    arr = zarr.create_array(
        path / "0", shape=data.shape, chunks=(1, 16, 16), dtype="uint16", overwrite=True,
        compressors=compressor, zarr_format=zarr_format,  # type: ignore[arg-type]
        dimension_names=None if zarr_format == 2 else ("c", "y", "x"),
    )  # fmt: skip
    arr[...] = data
    return data


_V2_BLOSC = {"id": "blosc", "cname": "lz4", "clevel": 3, "shuffle": 2, "blocksize": 0}
_V3_BLOSC = {"cname": "lz4", "clevel": 3, "shuffle": "bitshuffle", "typesize": 2, "blocksize": 0}


@pytest.mark.parametrize("target", ["0.4", "0.5"])
@pytest.mark.parametrize(
    ("zarr_format", "compressor", "v2", "v3"),
    [
        (2, "blosc-lz4", _V2_BLOSC, {"name": "blosc", "configuration": _V3_BLOSC}),
        (2, "zstd-7", {"id": "zstd", "level": 7}, {"name": "zstd", "configuration": {"level": 7, "checksum": False}}),
        (3, "blosc-lz4", _V2_BLOSC, {"name": "blosc", "configuration": _V3_BLOSC}),
        (3, "gzip-9", {"id": "gzip", "level": 9}, {"name": "gzip", "configuration": {"level": 9}}),
    ],
)  # fmt: skip
async def test_the_source_compressor_is_kept_with_its_settings(
    tmp_path: Path, target: str, zarr_format: int, compressor: str, v2: Any, v3: Any
) -> None:
    """``compressor=None`` keeps the source's: blosc's ``cname``, levels, shuffle (was: the
    nearest of this library's names, blosc-lz4 rewritten as blosc-zstd level 5)."""
    import numcodecs
    from zarr.codecs import BloscCodec, GzipCodec

    made = {
        (2, "blosc-lz4"): numcodecs.Blosc("lz4", 3, numcodecs.Blosc.BITSHUFFLE),
        (2, "zstd-7"): numcodecs.Zstd(level=7),
        (3, "blosc-lz4"): BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle"),
        (3, "gzip-9"): GzipCodec(level=9),
    }[(zarr_format, compressor)]
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    data = _zarr_python_source(src, zarr_format, made)
    await ngio_async.convert(src, dst, ngff_version=target)  # type: ignore[arg-type]
    if target == "0.4":
        assert json.loads((dst / "0" / ".zarray").read_text())["compressor"] == v2
    else:
        doc = json.loads((dst / "0" / "zarr.json").read_text())
        codecs = doc["codecs"][0]["configuration"]["codecs"]  # sharded
        assert codecs[1:] == [v3]
    np.testing.assert_array_equal(zarr.open_array(dst / "0")[...], data)


@pytest.mark.parametrize(("source", "target"), [("0.4", "0.5"), ("0.5", "0.4")])
async def test_every_multiscale_of_the_group_is_copied(
    tmp_path: Path, source: Literal["0.4", "0.5"], target: Literal["0.4", "0.5"]
) -> None:
    """A group of two multiscales (NGFF allows several): the second one's arrays are copied
    too (its metadata was carried, its arrays were not: a level that did not exist)."""
    from ngio_async.cli._validate import validate_hierarchy

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    data = ramp((40, 48))
    ngio_async.create(
        src, shape=data.shape, dtype="uint16", axes="yx", levels=1, ngff_version=source
    ).close()
    with ngio_async.open(src, mode="r+") as ds:
        ds.write(data)
    other = zarr.create_array(
        src / "other", shape=(8, 6), chunks=(4, 4), dtype="float32", fill_value=float("nan"),
        zarr_format=2 if source == "0.4" else 3,
        dimension_names=None if source == "0.4" else ("y", "x"),
    )  # fmt: skip
    other[:4] = 1.5
    key = src / (".zattrs" if source == "0.4" else "zarr.json")
    doc = json.loads(key.read_text())
    attrs = doc if source == "0.4" else doc["attributes"]["ome"]
    second = json.loads(json.dumps(attrs["multiscales"][0]))
    second["name"] = "second"
    second["datasets"] = [{"path": "other", "coordinateTransformations": [
        {"type": "scale", "scale": [5.0, 5.0]}
    ]}]  # fmt: skip
    attrs["multiscales"].append(second)
    key.write_text(json.dumps(doc))
    await ngio_async.convert(src, dst, ngff_version=target)
    copied = zarr.open_array(dst / "other", mode="r")
    assert copied.metadata.zarr_format == (2 if target == "0.4" else 3)
    np.testing.assert_array_equal(copied[...], other[...])  # NaN where never written
    assert [p.line() for p in (await validate_hierarchy(str(dst))).errors] == []
    async with ngio_async.open_async(dst) as ds:
        assert [m.name for m in ds.metadata.ome.multiscales or []] == ["src", "second"]
        np.testing.assert_array_equal(await ds.read(), data)


async def test_a_04_omero_version_is_not_carried_into_05(tmp_path: Path) -> None:
    """The 0.4 examples' ``omero.version: "0.4"`` stayed, stale, in the 0.5 document."""
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    ngio_async.create(
        src, shape=(2, 8, 8), dtype="uint8", axes="cyx", channels=["a", "b"], ngff_version="0.4"
    ).close()
    doc = json.loads((src / ".zattrs").read_text())
    doc["omero"].update(version="0.4", id=3)
    (src / ".zattrs").write_text(json.dumps(doc))
    await ngio_async.convert(src, dst, ngff_version="0.5")
    omero = json.loads((dst / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert "version" not in omero
    assert omero["id"] == 3 and [c["label"] for c in omero["channels"]] == ["a", "b"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_listed_label_image_that_does_not_exist_is_left_out(
    tmp_path: Path, version: str
) -> None:
    """The ``labels`` listing names one that is not there: the others convert, with a warning
    (the conversion failed on it: "no label 'ghost' ... (labels: [..., 'ghost'])")."""
    from ngio_async.meta import MetadataWarning

    src, dst = tmp_path / "a.zarr", tmp_path / "b.zarr"
    await make_source(src, version)
    key = src / "labels" / (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads(key.read_text())
    (doc if version == "0.4" else doc["attributes"]["ome"])["labels"].append("ghost")
    key.write_text(json.dumps(doc))
    with pytest.warns(
        MetadataWarning, match=r"label image 'ghost' listed in labels/ of .* does not exist"
    ):
        result = await ngio_async.convert(src, dst)
    assert result.labels == ("cells",)
    async with ngio_async.open_async(dst) as ds:
        assert await ds.labels.names() == ["cells"]


@pytest.mark.parametrize("target", ["0.4", "0.5"])
async def test_an_omero_block_that_breaks_a_rule_is_carried_mended(
    tmp_path: Path, target: str
) -> None:
    """The image opens without such a block (with a warning); the conversion carried nothing
    of it: every channel's label, color and window was lost."""
    import warnings

    from ngio_async.meta import MetadataWarning

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    ngio_async.create(
        src, shape=(3, 8, 8), dtype="uint8", axes="cyx", channels=["a", "b", "c"],
        ngff_version="0.4",
    ).close()  # fmt: skip
    doc = json.loads((src / ".zattrs").read_text())
    channels = doc["omero"]["channels"]
    channels[0]["color"] = "red"
    channels[1]["color"] = "FF000080"  # RRGGBBAA
    channels[2]["window"] = {"start": 10, "end": 90}  # no min / max
    doc["omero"]["rdefs"] = {"defaultZ": "first"}
    (src / ".zattrs").write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as seen:  # the opening warns too
        warnings.simplefilter("always", MetadataWarning)
        await ngio_async.convert(src, dst, ngff_version=target)  # type: ignore[arg-type]
    assert any("carried mended" in str(w.message) for w in seen)
    async with ngio_async.open_async(dst) as ds:
        got = [(c.label, c.color, c.window) for c in ds.metadata.channels]
        assert ds.metadata.ome.omero is not None and ds.metadata.ome.omero.rdefs is None
    assert [(label, color) for label, color, _ in got] == [
        ("a", "FFFFFF"), ("b", "FF0000"), ("c", channels[2]["color"])
    ]  # fmt: skip
    assert tuple(got[2][2] or ()) == (10, 90)  # shown range kept; min / max: the uint8 range
    omero = json.loads((dst / (".zattrs" if target == "0.4" else "zarr.json")).read_text())
    omero = omero["omero"] if target == "0.4" else omero["attributes"]["ome"]["omero"]
    assert omero["channels"][2]["window"] == {"min": 0, "max": 255, "start": 10, "end": 90}


async def test_array_codecs_before_the_serializer_do_not_lose_the_compressor(
    tmp_path: Path,
) -> None:
    """A v3 source with a ``transpose`` codec: its blosc settings are kept all the same."""
    from zarr.codecs import BloscCodec, TransposeCodec

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    data = _zarr_python_source(src, 3, BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle"))
    arr = zarr.create_array(
        src / "0", shape=data.shape, chunks=(1, 16, 16), dtype="uint16", overwrite=True,
        filters=[TransposeCodec(order=(0, 2, 1))], dimension_names=("c", "y", "x"),
        compressors=BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle"),
    )  # fmt: skip
    arr[...] = data
    await ngio_async.convert(src, dst, shards=False)
    doc = json.loads((dst / "0" / "zarr.json").read_text())
    assert [c["name"] for c in doc["codecs"]] == ["bytes", "blosc"]
    assert doc["codecs"][1]["configuration"]["cname"] == "lz4"
    np.testing.assert_array_equal(zarr.open_array(dst / "0")[...], data)


async def test_a_channel_without_a_window_is_carried_with_the_dtype_range(tmp_path: Path) -> None:
    """Opening reads a channel missing its window with an empty one (the labels kept); the
    conversion carries the stored block mended instead: the dtype's range, not (0, 0)."""
    import warnings

    from ngio_async.meta import MetadataWarning

    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    ngio_async.create(
        src, shape=(2, 8, 8), dtype="uint16", axes="cyx", channels=["DAPI", "GFP"],
        ngff_version="0.4",
    ).close()  # fmt: skip
    doc = json.loads((src / ".zattrs").read_text())
    del doc["omero"]["channels"][1]["window"]
    (src / ".zattrs").write_text(json.dumps(doc))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MetadataWarning)
        await ngio_async.convert(src, dst, ngff_version="0.5")
    assert any("carried mended" in str(w.message) for w in seen)
    async with ngio_async.open_async(dst) as ds:
        assert [c.label for c in ds.metadata.channels] == ["DAPI", "GFP"]
    omero = json.loads((dst / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert omero["channels"][1]["window"] == {"min": 0, "max": 65535, "start": 0, "end": 65535}
    assert omero["channels"][0]["window"] == doc["omero"]["channels"][0]["window"]
