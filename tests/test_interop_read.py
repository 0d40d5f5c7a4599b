"""Interop: images written by ngio and ome-zarr-py open in ngio_async with the same pixels and metadata.

Each writer (ngio 1.1, ome-zarr-py 0.18) writes a czyx uint16 image (3 levels, channels DAPI / GFP,
pixel size 0.5 um in y/x, z spacing 2 um) and a uint32 label image ``cells``, as NGFF 0.4 and 0.5.
ngio_async must read the same values per level as the writer's own reader and zarr-python, and
report the same pixel sizes, units, axes, channel labels and labels.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from interop_writers import (
    AXES,
    CHANNELS,
    LABEL_AXES,
    LEVEL_SHAPES,
    SCALES,
    UNIT,
    WARNING_FILTERS,
    Written,
    ngio_channels,
    ngio_labels,
    ngio_pixel_sizes,
    ome_zarr_metadata,
    ome_zarr_pixel_sizes,
    read_ngio,
    read_ome_zarr,
    read_zarr,
    write_ngio,
    write_ome_zarr,
)

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytest.importorskip("ngio", reason="ngio is not installed (pip install 'ngio==1.1.3')")
pytest.importorskip("ome_zarr", reason="ome-zarr is not installed (pip install 'ome-zarr==0.18.0')")

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

#: (id, writer): every format each writer supports, plus ngio's sharded 0.5 layout
CASES: list[tuple[str, Callable[[Path], Written]]] = [
    ("ngio-0.4", lambda p: write_ngio(p, "0.4")),
    ("ngio-0.4-dot-separator", lambda p: write_ngio(p, "0.4", dimension_separator=".")),
    ("ngio-0.5", lambda p: write_ngio(p, "0.5")),
    (
        "ngio-0.5-sharded",
        lambda p: write_ngio(p, "0.5", chunks=(1, 1, 16, 16), shards=(1, 1, 32, 32)),
    ),
    ("ome-zarr-0.4", lambda p: write_ome_zarr(p, "0.4")),
    ("ome-zarr-0.5", lambda p: write_ome_zarr(p, "0.5")),
]


@pytest.fixture(scope="module", params=[c[1] for c in CASES], ids=[c[0] for c in CASES])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Written:
    path = tmp_path_factory.mktemp("interop") / "image.ome.zarr"
    writer: Callable[[Path], Written] = request.param
    return writer(path)


def own_reader(w: Written, label: str | None = None) -> list[np.ndarray]:
    return read_ngio(w.path, label) if w.writer == "ngio" else read_ome_zarr(w.path, label)


def own_pixel_sizes(w: Written, label: str | None = None) -> list[dict[str, float]]:
    return (
        ngio_pixel_sizes(w.path, label)
        if w.writer == "ngio"
        else ome_zarr_pixel_sizes(w.path, label)
    )


def raw_attrs(w: Written, sub: str = "") -> dict[str, Any]:
    """The group's NGFF attributes as stored (0.4 ``.zattrs``; 0.5 ``zarr.json`` ``ome``)."""
    root = w.path / sub if sub else w.path
    if w.version == "0.4":
        return dict(json.loads((root / ".zattrs").read_text()))
    return dict(json.loads((root / "zarr.json").read_text())["attributes"]["ome"])


# ---------------------------------------------------------------------------------- pixels
def test_levels_equal_writer_reader_and_zarr(written: Written) -> None:
    theirs = own_reader(written)
    raw = read_zarr(written.path, written.level_paths)
    with ngio_async.open(written.path) as ds:
        assert ds.metadata.paths == tuple(written.level_paths)
        assert len(ds.levels) == len(theirs) == len(LEVEL_SHAPES)
        for i, (level, want, zarr_level) in enumerate(zip(ds.levels, theirs, raw, strict=True)):
            got = np.asarray(level)
            assert got.shape == LEVEL_SHAPES[i] == want.shape
            assert got.dtype == want.dtype == np.uint16
            np.testing.assert_array_equal(got, want, err_msg=f"level {i}")
            np.testing.assert_array_equal(got, zarr_level, err_msg=f"level {i}")
        np.testing.assert_array_equal(ds[...], written.image)


async def test_levels_equal_async(written: Written) -> None:
    theirs = own_reader(written)
    async with ngio_async.open_async(written.path) as ds:
        for i, want in enumerate(theirs):
            np.testing.assert_array_equal(await ds.levels[i][...], want, err_msg=f"level {i}")
        # by axis name and channel label, on a lower level
        gfp = await ds.read(level=1, c="GFP", z=2, y=slice(3, 29), x=slice(5, 40))
        np.testing.assert_array_equal(gfp, theirs[1][1, 2, 3:29, 5:40])
        total = 0
        async for tile in ds.tiles(level=0):
            np.testing.assert_array_equal(tile.data, written.image[tile.region])
            total += tile.data.size
        assert total == written.image.size


def test_region_reads(written: Written) -> None:
    img = written.image
    with ngio_async.open(written.path) as ds:
        np.testing.assert_array_equal(ds[1, 2, 5:50, 3:77], img[1, 2, 5:50, 3:77])
        np.testing.assert_array_equal(ds.read(c="DAPI", z=slice(1, 3)), img[0, 1:3])
        np.testing.assert_array_equal(ds.read(c=["GFP", "DAPI"], y=7), img[[1, 0], :, 7])


# ---------------------------------------------------------------------------------- metadata
def test_axes_pixel_sizes_units(written: Written) -> None:
    theirs = own_pixel_sizes(written)
    with ngio_async.open(written.path) as ds:
        meta = ds.metadata
        assert ds.axes == AXES
        assert meta.ngff_version == written.version
        assert [a.type for a in meta.axes] == ["channel", "space", "space", "space"]
        assert len(meta.spatial_calibration) == len(SCALES)
        for i, (cal, want, their) in enumerate(
            zip(meta.spatial_calibration, SCALES, theirs, strict=True)
        ):
            assert cal.scale == pytest.approx(want), f"level {i}"
            for ax in ("z", "y", "x"):
                assert cal[ax].scale == pytest.approx(their[ax]), f"level {i} axis {ax}"
                assert cal[ax].unit == UNIT
            assert cal["c"].unit is None
            assert ds.levels[i].scale == pytest.approx(want)


def test_translations_as_stored(written: Written) -> None:
    """ome-zarr-py writes a per-level translation (pixel centres); ngio writes none."""
    stored = raw_attrs(written)["multiscales"][0]["datasets"]
    with ngio_async.open(written.path) as ds:
        for i, (cal, dataset) in enumerate(
            zip(ds.metadata.spatial_calibration, stored, strict=True)
        ):
            ts = [t for t in dataset["coordinateTransformations"] if t["type"] == "translation"]
            want = ts[0]["translation"] if ts else [0.0] * len(AXES)
            assert cal.translation == pytest.approx(want), f"level {i}"
        if written.writer == "ome-zarr":  # the reader sees the half-pixel shift of lower levels
            assert ds.metadata.spatial_calibration[1]["x"].translation == pytest.approx(0.25)


def test_channels(written: Written) -> None:
    their = (
        ngio_channels(written.path)
        if written.writer == "ngio"
        else ome_zarr_metadata(written.path)["channel_names"]
    )
    with ngio_async.open(written.path) as ds:
        channels = ds.metadata.channels
        assert [c.label for c in channels] == CHANNELS == list(their)
        assert [c.index for c in channels] == [0, 1]
        assert [c.color for c in channels] == ["0000FF", "00FF00"]
        assert ds.metadata.channel_index("GFP") == 1
        stored = raw_attrs(written)["omero"]["channels"]
        for c, s in zip(channels, stored, strict=True):
            assert c.window == (s["window"]["start"], s["window"]["end"])


# ---------------------------------------------------------------------------------- labels
#: ome-zarr-py 0.18 writes NGFF 0.5 ``labels/zarr.json`` as ``{"ome": {"labels": [...]}}``, without
#: the ``version`` the 0.5 spec requires in every ``ome`` object; ngio_async takes the version of
#: the parent image there (ngio 1.1.3 does not see those labels at all).


def test_label_names(written: Written) -> None:
    with ngio_async.open(written.path) as ds:
        names = ds.labels.names()
    assert names == ["cells"]
    if written.writer == "ngio":
        assert ngio_labels(written.path) == names
    else:
        assert raw_attrs(written, "labels")["labels"] == names


def test_label_values_and_metadata(written: Written) -> None:
    theirs = own_reader(written, "cells")
    their_sizes = own_pixel_sizes(written, "cells")
    paths = written.label_level_paths["cells"]
    raw = read_zarr(written.path, paths, "labels/cells")
    with ngio_async.open(written.path) as ds, ds.labels.open("cells") as lab:
        assert lab.axes == LABEL_AXES
        assert lab.dtype == np.uint32
        image_label = lab.metadata.ome.image_label
        assert image_label is not None
        if written.writer == "ome-zarr":
            assert image_label.colors is not None
            assert (image_label.colors[0].label_value, image_label.colors[0].rgba) == (
                1,
                [255, 0, 0, 255],
            )
        else:
            assert image_label.source is not None
            assert image_label.source.image == "../../"
        assert lab.metadata.paths[: len(theirs)] == tuple(paths[: len(theirs)])
        for i, want in enumerate(theirs):
            got = np.asarray(lab.levels[i])
            np.testing.assert_array_equal(got, want, err_msg=f"label level {i}")
            np.testing.assert_array_equal(got, raw[i], err_msg=f"label level {i}")
        np.testing.assert_array_equal(np.asarray(lab.levels[0]), written.labels["cells"])
        assert set(np.unique(np.asarray(lab.levels[1])).tolist()) == {0, 1, 7, 70000}
        for i, sizes in enumerate(their_sizes):
            cal = lab.metadata.spatial_calibration[i]
            for ax in ("z", "y", "x"):
                assert cal[ax].scale == pytest.approx(sizes[ax]), f"label level {i} axis {ax}"
            assert cal["x"].scale == pytest.approx(SCALES[i][3])
            assert cal["z"].unit == UNIT


async def test_label_async(written: Written) -> None:
    async with ngio_async.open_async(written.path) as ds:
        assert await ds.labels.names() == ["cells"]
        lab = await ds.labels.open("cells")
        try:
            np.testing.assert_array_equal(await lab.levels[0][...], written.labels["cells"])
        finally:
            await lab.aclose()
