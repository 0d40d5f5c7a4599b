"""What a new image gets when the caller says little: the documents written, read back as JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path


def _ome(root: Path, version: str) -> dict[str, Any]:
    """The NGFF attributes of the image group at ``root``, as stored."""
    if version == "0.4":
        doc: dict[str, Any] = json.loads((root / ".zattrs").read_text())
        return doc
    attrs: dict[str, Any] = json.loads((root / "zarr.json").read_text())["attributes"]["ome"]
    return attrs


def _units(root: Path, version: str) -> dict[str, str | None]:
    axes = _ome(root, version)["multiscales"][0]["axes"]
    return {a["name"]: a.get("unit") for a in axes}


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_time_axis_gets_seconds(tmp_path: Path, version: str) -> None:
    """The t axis got no unit (NGFF: SHOULD have one; ngio writes ``second``); c none."""
    root = tmp_path / "movie.ome.zarr"
    ngio_async.create(
        root, shape=(2, 1, 1, 8, 8), dtype="uint8", axes="tczyx", ngff_version=version
    ).close()
    axes = _ome(root, version)["multiscales"][0]["axes"]
    assert axes == [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        ("nanometer", {"t": "second", "c": None, "y": "nanometer", "x": "nanometer"}),
        ({"x": "nanometer"}, {"t": "second", "c": None, "y": "micrometer", "x": "nanometer"}),
        ({"t": "millisecond"}, {"t": "millisecond", "c": None, "y": "micrometer"}),
        (None, {"t": None, "c": None, "y": None, "x": None}),
        (["minute", None, "meter", "meter"], {"t": "minute", "c": None, "x": "meter"}),
    ],
)
def test_units_given_keep_time_default(
    tmp_path: Path, units: Any, expected: dict[str, Any]
) -> None:
    """A space unit (one, or a mapping) leaves t its default; ``None`` means no units; a list
    is taken as it is."""
    root = tmp_path / "img.zarr"
    ngio_async.create(root, shape=(2, 1, 8, 8), dtype="uint8", axes="tcyx", units=units).close()
    got = _units(root, "0.5")
    assert {k: got[k] for k in expected} == expected


def _array(root: Path, level: str = "0") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((root / level / "zarr.json").read_text())
    return doc


def _chunks_shards(doc: dict[str, Any]) -> tuple[list[int], list[int] | None]:
    """(chunk shape, shard shape or None) of a zarr v3 array document."""
    grid = doc["chunk_grid"]["configuration"]["chunk_shape"]
    codec = doc["codecs"][0]
    if codec["name"] == "sharding_indexed":
        return codec["configuration"]["chunk_shape"], grid
    return grid, None


def test_small_planes_are_stacked_along_z_then_t(tmp_path: Path) -> None:
    """A z-stack of 64 x 64 planes was written one 8 KiB chunk per plane (a cloud read of the
    volume: 40 requests); its chunks now hold the planes up to ~1 MiB, as convert's do."""
    root = tmp_path / "stack.zarr"
    ngio_async.create(root, shape=(3, 1, 40, 64, 64), dtype="uint16", axes="tczyx").close()
    chunks, shards = _chunks_shards(_array(root))
    assert (chunks, shards) == ([3, 1, 40, 64, 64], None)
    explicit = tmp_path / "explicit.zarr"  # shards given: chunks one plane deep, as before
    ngio_async.create(
        explicit, shape=(40, 64, 64), dtype="uint16", axes="zyx", shards=(2, 64, 64)
    ).close()
    assert _chunks_shards(_array(explicit)) == ([1, 64, 64], [2, 64, 64])


@pytest.mark.parametrize(
    ("shape", "axes", "dtype"),
    [
        ((30, 100, 100), "zyx", "uint8"),
        ((2, 50, 300, 300), "czyx", "uint16"),
        ((500, 40, 60), "tyx", "float32"),
        ((2, 8, 3000, 2000), "czyx", "uint16"),
        ((5000, 4000), "yx", "float64"),
        ((4, 2, 10, 256, 256), "tczyx", "uint8"),
    ],
)
def test_default_chunk_bytes_fit_cloud_reads(
    tmp_path: Path, shape: tuple[int, ...], axes: str, dtype: str
) -> None:
    """Every default chunk holds 256 KiB .. 4 MiB (or the whole of its channel when that is
    less); big planes are sharded, a shard a whole number of chunks."""
    import numpy as np

    root = tmp_path / "img.zarr"
    ngio_async.create(root, shape=shape, dtype=dtype, axes=axes).close()
    chunks, shards = _chunks_shards(_array(root))
    item = np.dtype(dtype).itemsize
    whole = item * int(np.prod([n for n, a in zip(shape, axes, strict=True) if a != "c"]))
    nbytes = item * int(np.prod(chunks))
    assert min(256 << 10, whole) <= nbytes <= 4 << 20, (chunks, nbytes)
    big = any(shape[axes.index(a)] > chunks[axes.index(a)] for a in "yx")
    assert (shards is not None) == big
    if shards is not None:
        assert all(s % c == 0 for s, c in zip(shards, chunks, strict=True))


@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_compressor_and_fill_are_zarr_pythons(tmp_path: Path, version: str) -> None:
    """The default compressor and fill value are those zarr-python writes for the same array
    (``zstd`` level 0: v3 after the ``bytes`` codec, v2 as the ``.zarray`` compressor)."""
    import zarr

    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    zarr.create_array(tmp_path / "ref.zarr", shape=(64, 48), dtype="uint16", zarr_format=fmt)
    root = tmp_path / "img.zarr"
    ngio_async.create(root, shape=(64, 48), dtype="uint16", axes="yx", ngff_version=version).close()
    if version == "0.4":
        ref = json.loads((tmp_path / "ref.zarr" / ".zarray").read_text())
        ours = json.loads((root / "0" / ".zarray").read_text())
        assert ours["compressor"] == ref["compressor"] == {"id": "zstd", "level": 0}
        assert ours["fill_value"] == ref["fill_value"] == 0
        return
    ref = json.loads((tmp_path / "ref.zarr" / "zarr.json").read_text())
    ours = _array(root)
    assert ours["codecs"] == ref["codecs"]  # a single chunk: not sharded
    assert ours["fill_value"] == ref["fill_value"] == 0
    assert ours["dimension_names"] == ["y", "x"]


def test_label_image_defaults(tmp_path: Path) -> None:
    """``labels.create`` with a name only: ``uint32``, fill 0, the image's axes and units
    without c (t in seconds), pyramids by ``mode``, ``image-label`` with its source."""
    root = tmp_path / "img.zarr"
    with ngio_async.create(root, shape=(2, 3, 4, 32, 32), dtype="uint8", axes="tczyx") as ds:
        ds.labels.create("nuclei").close()
    label = root / "labels" / "nuclei"
    ome = _ome(label, "0.5")
    ms = ome["multiscales"][0]
    assert [(a["name"], a.get("unit")) for a in ms["axes"]] == [
        ("t", "second"),
        ("z", "micrometer"),
        ("y", "micrometer"),
        ("x", "micrometer"),
    ]
    assert (ms["name"], ms["type"]) == ("nuclei", "mode")
    assert ome["image-label"] == {"source": {"image": "../../"}}
    array = _array(label)
    assert (array["data_type"], array["fill_value"]) == ("uint32", 0)
    assert array["dimension_names"] == ["t", "z", "y", "x"]


@pytest.mark.parametrize(
    ("labels", "colors"),
    [(["DAPI"], ["FFFFFF"]), (["DAPI", "GFP", "RFP"], ["0000FF", "00FF00", "FF0000"])],
)
def test_channel_colors_by_default(tmp_path: Path, labels: list[str], colors: list[str]) -> None:
    """Channels named only: a lone channel was blue (nearly black in napari and vizarr); it
    is white now, as OMERO draws one channel; several keep blue, green, red, ... Windows span
    the data type's range; every channel is active."""
    root = tmp_path / "img.zarr"
    shape = (len(labels), 8, 8)
    ngio_async.create(root, shape=shape, dtype="uint16", axes="cyx", channels=labels).close()
    channels = _ome(root, "0.5")["omero"]["channels"]
    assert [c["color"] for c in channels] == colors
    assert [c["label"] for c in channels] == labels
    window = {"min": 0.0, "max": 65535.0, "start": 0.0, "end": 65535.0}
    assert all(c["window"] == window and c["active"] is True for c in channels)


def test_stacked_chunks_written_plane_by_plane_with_pyramid(tmp_path: Path) -> None:
    """Planes written one at a time into the stacked chunks (each a read-modify-write), with
    the pyramid built on the way: every plane and the lower level are as written."""
    import numpy as np

    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, (12, 64, 64), dtype=np.uint16)
    root = tmp_path / "stack.zarr"
    with ngio_async.create(root, shape=data.shape, dtype="uint16", axes="zyx", levels=2) as ds:
        assert ds.levels[0].chunks == (12, 64, 64)
        for z in range(12):
            ds.write(data[z], z=z, pyramid=True)
    with ngio_async.open(root) as ds:
        assert np.array_equal(ds.levels[0][...], data)
        mean = np.round(data.reshape(12, 32, 2, 32, 2).astype(np.float64).mean(axis=(2, 4)))
        assert np.array_equal(ds.levels[1][...], mean.astype(np.uint16))
