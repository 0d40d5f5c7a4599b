"""Layouts peer tools write that the suite did not pin (all held: no fix needed).

- arrays tensorstore creates itself (its own ``zarr.json`` / ``.zarray``: a shard index at the
  start with crc32c, transpose and big-endian bytes inside the shard, gzip, ``"NaN"`` fill; v3
  keys with ``.``; v2 ``order: F`` with ``/`` keys and zlib; bz2, big-endian int64): ngio_async
  reads what tensorstore reads, and tensorstore reads what ngio_async writes into them;
- an ome-zarr-py plate of two acquisitions whose fields are named ``fovA``, ``fovB`` and ``7``;
- plates both ways with ngff-zarr's HCS reader and writer.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async.meta import Axis, Dataset, Multiscale, OmeMetadata, Scale, to_attrs

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"
)

SHAPE = (13, 11)
TENSORSTORE_ARRAYS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "v3-shard-index-first": ("zarr3", "float32", {
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": [4, 3],
            "codecs": [
                {"name": "transpose", "configuration": {"order": [1, 0]}},
                {"name": "bytes", "configuration": {"endian": "big"}},
                {"name": "gzip", "configuration": {"level": 1}},
            ],
            "index_codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}
            ],
            "index_location": "start",
        }}],
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8, 6]}},
        "fill_value": "NaN",
        "dimension_names": ["y", "x"],
    }),
    "v3-dot-keys": ("zarr3", "uint16", {
        "codecs": [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "zstd", "configuration": {"level": 1}},
        ],
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 5]}},
        "fill_value": 7,
        "dimension_names": ["y", "x"],
    }),
    "v2-order-F": ("zarr", ">f8", {
        "order": "F", "dimension_separator": "/", "fill_value": "NaN",
        "compressor": {"id": "zlib", "level": 1}, "chunks": [5, 4],
    }),
    "v2-bz2": ("zarr", ">i8", {
        "fill_value": -5, "compressor": {"id": "bz2", "level": 1}, "chunks": [5, 4]
    }),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TENSORSTORE_ARRAYS))
def test_arrays_tensorstore_creates(tmp_path: Path, case: str) -> None:
    ts = pytest.importorskip("tensorstore")
    driver, dtype, metadata = TENSORSTORE_ARRAYS[case]
    path = tmp_path / "ts.ome.zarr"
    spec = {"driver": driver, "kvstore": {"driver": "file", "path": str(path / "0")}}
    kind = {"data_type": dtype} if driver == "zarr3" else {"dtype": dtype}
    array = ts.open(
        {**spec, "metadata": {**metadata, **kind, "shape": list(SHAPE)}, "create": True}
    )
    array = array.result()
    rng = np.random.default_rng(0)
    data = (rng.normal(size=SHAPE) * 100).astype(np.dtype(dtype).newbyteorder("="))
    array[0:9, 0:7].write(data[0:9, 0:7]).result()  # the rest: fill value, missing chunks
    fmt = 3 if driver == "zarr3" else 2
    version = "0.5" if fmt == 3 else "0.4"
    multiscale = Multiscale(
        axes=[Axis(name="y", type="space"), Axis(name="x", type="space")],
        datasets=[Dataset(path="0", coordinate_transformations=[Scale(scale=[1.0, 1.0])])],
    )
    group = zarr.open_group(path, mode="a", zarr_format=3 if fmt == 3 else 2)
    group.attrs.update(to_attrs(OmeMetadata(version=version, multiscales=[multiscale]), version))
    want = np.asarray(array.read().result())
    with ngio_async.open(path, mode="r+") as ds:
        np.testing.assert_array_equal(ds[...], want)
        ds[5:12, 2:10] = data[0:7, 0:8]  # across chunks (and shards), into missing ones too
    want[5:12, 2:10] = data[0:7, 0:8]
    reopened = ts.open({**spec, "open": True}).result()
    np.testing.assert_array_equal(np.asarray(reopened.read().result()), want)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ome_zarr_py_plate_of_two_acquisitions_and_named_fields(
    tmp_path: Path, version: str
) -> None:
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05  # type: ignore[import-untyped]
    from ome_zarr.writer import (  # type: ignore[import-untyped]
        write_image,
        write_plate_metadata,
        write_well_metadata,
    )

    fmt = FormatV04() if version == "0.4" else FormatV05()
    path = tmp_path / "plate.ome.zarr"
    root = zarr.open_group(path, mode="w", zarr_format=fmt.zarr_format)
    acquisitions = [
        {"id": 3, "name": "first", "maximumfieldcount": 2},
        {"id": 7, "name": "second", "maximumfieldcount": 1},
    ]
    write_plate_metadata(
        root, ["A", "B"], ["01", "10"], ["A/01", "B/10"], fmt=fmt, acquisitions=acquisitions
    )
    fields: list[dict[str, Any]] = [{"path": "fovA", "acquisition": 3}]
    fields += [{"path": "fovB", "acquisition": 3}, {"path": "7", "acquisition": 7}]
    for well in ("A/01", "B/10"):
        group = root.require_group(well)
        write_well_metadata(group, fields, fmt=fmt)
        for k, field in enumerate(fields):
            image = np.full((2, 16, 16), k + 1, np.uint8)
            write_image(image, group.require_group(field["path"]), axes="cyx", fmt=fmt)
    with ngio_async.open_plate(path, mode="r+") as plate:
        assert [(a.id, a.name) for a in plate.acquisitions] == [(3, "first"), (7, "second")]
        assert plate.image_paths(acquisition=3) == [
            ("A/01", "fovA"), ("A/01", "fovB"), ("B/10", "fovA"), ("B/10", "fovB")
        ]  # fmt: skip
        assert plate.well("B", "10").field_paths(7) == ["7"]
        with plate.image("B", "10", field="7") as fov:  # by its name
            assert int(fov[0, 0, 0]) == 3
        with plate.image("B", "10", field=1) as fov:  # by its index in the well
            assert int(fov[0, 0, 0]) == 2
        kw = {"shape": (2, 16, 16), "dtype": "uint8", "axes": "cyx"}
        with plate.add_image("A", "10", field="fovA", acquisition=7, **kw) as fov:  # type: ignore[arg-type]
            fov.write(np.full((2, 16, 16), 9, np.uint8))
        assert plate.image_paths(acquisition=7) == [("A/01", "7"), ("A/10", "fovA"), ("B/10", "7")]
    ngio = pytest.importorskip("ngio")
    theirs = ngio.open_ome_zarr_plate(str(path), mode="r")
    assert sorted(theirs.get_images(acquisition=7)) == ["A/01/7", "A/10/fovA", "B/10/7"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plates_both_ways_with_ngff_zarr(tmp_path: Path, version: str) -> None:
    nz = pytest.importorskip("ngff_zarr")
    ours = tmp_path / "ours.ome.zarr"
    layout: dict[str, Any] = {"rows": ["A", "B"], "columns": ["1", "2"], "ngff_version": version}
    with ngio_async.create_plate(ours, **layout) as p:
        for row, column, field, value in [
            ("A", "1", "0", 1),
            ("A", "1", "1", 2),
            ("B", "2", "3", 3),
        ]:
            kw = {"shape": (1, 32, 32), "dtype": "uint8", "axes": "cyx", "levels": 2}
            with p.add_image(row, column, field=field, **kw) as fov:  # type: ignore[arg-type]
                fov.write(np.full((1, 32, 32), value, np.uint8), pyramid=True)
    plate = nz.from_hcs_zarr(str(ours))
    assert [w.path for w in plate.wells] == ["A/1", "B/2"]
    well = plate.get_well("B", "2")
    assert [im.path for im in well.images] == ["3"]
    levels = well.get_image(0).images
    assert [np.asarray(level.data).shape for level in levels] == [(1, 32, 32), (1, 16, 16)]
    assert int(np.asarray(levels[1].data)[0, 0, 0]) == 3
    theirs = tmp_path / "theirs.ome.zarr"
    meta = nz.Plate(
        columns=[nz.PlateColumn(name="1")],
        rows=[nz.PlateRow(name="A"), nz.PlateRow(name="B")],
        wells=[nz.PlateWell(path="B/1", rowIndex=1, columnIndex=0)],
        version=version,
    )
    data = np.arange(2 * 24 * 24, dtype=np.uint16).reshape(2, 24, 24)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nz.to_hcs_zarr(nz.HCSPlate(str(theirs), meta), str(theirs))
        image = nz.to_ngff_image(data, dims=["c", "y", "x"])
        multiscales = nz.to_multiscales(image, scale_factors=[2], chunks=16)
        nz.write_hcs_well_image(str(theirs), multiscales, meta, "B", "1", 0, version=version)
    with ngio_async.open_plate(theirs) as plate2:
        assert plate2.image_paths() == [("B/1", "0")]
        with plate2.image("B", "1", field=0) as fov:
            assert fov.metadata.paths == ("scale0/image", "scale1/image")
            np.testing.assert_array_equal(fov[...], data)
