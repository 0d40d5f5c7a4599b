"""Interop, the other way: images ngio_async writes open in ngio and ome-zarr-py with the same data.

ngio_async creates a czyx uint16 image (3 levels, channels DAPI / GFP, pixel size 0.5 um in y/x,
z spacing 2 um) as NGFF 0.4 and 0.5 (sharded), writes it, and checks that ngio 1.1 and
ome-zarr-py 0.18 read the same pixels per level, pixel sizes and channel names; then the same for
``build_pyramid`` (mean for images, mode for labels) and for a label image made with
``ds.labels.create``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
from interop_writers import (
    CHANNELS,
    LABEL_AXES,
    LEVEL_SHAPES,
    NLEVELS,
    PIXEL_SIZE,
    SCALES,
    SHAPE,
    UNIT,
    WARNING_FILTERS,
    Z_SPACING,
    image_data,
    label_data,
    ngio_channels,
    ngio_labels,
    ngio_pixel_sizes,
    ome_zarr_metadata,
    ome_zarr_pixel_sizes,
    read_ngio,
    read_ome_zarr,
)

import ngio_async
from ngio_async.engine.pyramid import downsample

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("ngio", reason="ngio is not installed (pip install 'ngio==1.1.3')")
pytest.importorskip("ome_zarr", reason="ome-zarr is not installed (pip install 'ome-zarr==0.18.0')")

pytestmark = [pytest.mark.filterwarnings(f) for f in WARNING_FILTERS]

#: version -> create_async layout options (0.4 is never sharded)
LAYOUTS: dict[str, dict[str, Any]] = {
    "0.4": {"chunks": (1, 1, 32, 32), "shards": None},
    "0.5": {"chunks": (1, 1, 16, 16), "shards": (1, 1, 32, 32)},
}
VERSIONS = pytest.mark.parametrize("version", ["0.4", "0.5"])
FACTORS = (1, 1, 2, 2)


async def create(path: Path, version: Literal["0.4", "0.5"]) -> Any:
    return await ngio_async.create_async(
        path,
        shape=SHAPE,
        dtype="uint16",
        axes="czyx",
        scale=(1.0, Z_SPACING, PIXEL_SIZE, PIXEL_SIZE),
        units=UNIT,
        ngff_version=version,
        channels=CHANNELS,
        levels=NLEVELS,
        **LAYOUTS[version],
    )


def pyramid(level0: np.ndarray, factors: tuple[int, ...], method: Any) -> list[np.ndarray]:
    levels = [level0]
    for _ in range(NLEVELS - 1):
        levels.append(downsample(levels[-1], factors, method))
    return levels


def check_read_by_others(path: Path, want: list[np.ndarray], label: str | None = None) -> None:
    """ngio and ome-zarr-py read ``want`` per level, with the pixel sizes of :data:`SCALES`."""
    for reader, read, sizes in (
        ("ngio", read_ngio, ngio_pixel_sizes),
        ("ome-zarr", read_ome_zarr, ome_zarr_pixel_sizes),
    ):
        got = read(path, label)
        assert len(got) == len(want), reader
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert g.shape == w.shape, f"{reader} level {i}"
            np.testing.assert_array_equal(g, w, err_msg=f"{reader} level {i}")
        for i, s in enumerate(sizes(path, label)):
            assert s["z"] == pytest.approx(Z_SPACING), f"{reader} level {i}"
            assert s["y"] == pytest.approx(SCALES[i][2]), f"{reader} level {i}"
            assert s["x"] == pytest.approx(SCALES[i][3]), f"{reader} level {i}"


@VERSIONS
async def test_written_levels_read_by_ngio_and_ome_zarr(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "image.ome.zarr"
    want = pyramid(image_data(), FACTORS, "mean")
    ds = await create(path, version)
    try:
        for i, level in enumerate(want):
            await ds.write(level, level=i)
    finally:
        await ds.aclose()
    assert [w.shape for w in want] == LEVEL_SHAPES
    check_read_by_others(path, want)
    assert ngio_channels(path) == CHANNELS
    meta = ome_zarr_metadata(path)
    assert meta["channel_names"] == CHANNELS
    assert [a["name"] for a in meta["axes"]] == ["c", "z", "y", "x"]
    assert [a.get("unit") for a in meta["axes"]] == [None, UNIT, UNIT, UNIT]


@VERSIONS
async def test_build_pyramid_read_by_ngio_and_ome_zarr(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "image.ome.zarr"
    ds = await create(path, version)
    data = image_data()
    try:
        await ds.write(data, level=0)
        await ds.build_pyramid()
        ours = [await lvl[...] for lvl in ds.levels]
    finally:
        await ds.aclose()
    want = pyramid(data, FACTORS, "mean")
    assert [o.shape for o in ours] == LEVEL_SHAPES
    for i, (o, w) in enumerate(zip(ours, want, strict=True)):
        np.testing.assert_array_equal(o, w, err_msg=f"level {i}")
    check_read_by_others(path, want)
    assert ngio_channels(path) == CHANNELS
    assert ome_zarr_metadata(path)["channel_names"] == CHANNELS


@VERSIONS
async def test_labels_read_by_ngio_and_ome_zarr(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    path = tmp_path / "image.ome.zarr"
    lab = label_data()
    ds = await create(path, version)
    try:
        await ds.write(image_data(), level=0)
        cells = await ds.labels.create("cells", dtype="uint32")
        try:
            assert cells.axes == LABEL_AXES
            assert cells.shape == SHAPE[1:]
            await cells.write(lab, level=0)
            await cells.build_pyramid()  # mode: the label's default
            ours = [await lvl[...] for lvl in cells.levels]
        finally:
            await cells.aclose()
        assert await ds.labels.names() == ["cells"]
    finally:
        await ds.aclose()
    for i, (o, w) in enumerate(zip(ours, pyramid(lab, FACTORS[1:], "mode"), strict=True)):
        np.testing.assert_array_equal(o, w, err_msg=f"level {i}")
    for level in ours[1:]:  # labels are never averaged: only values of level 0
        assert set(np.unique(level).tolist()) <= set(np.unique(lab).tolist())
    assert ngio_labels(path) == ["cells"]
    check_read_by_others(path, ours, label="cells")
    label_meta = ome_zarr_metadata(path, "cells")
    assert [a["name"] for a in label_meta["axes"]] == list(LABEL_AXES)
