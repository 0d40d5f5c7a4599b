"""Audit of stream(..., stitch=StitchConfig(compact=True)) as users stream into labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from scipy import ndimage  # type: ignore[import-untyped]

import ngio_async
from ngio_async import StitchConfig

if TYPE_CHECKING:
    from pathlib import Path


def _segment(a: np.ndarray) -> np.ndarray:
    return np.asarray(ndimage.label(a > 50)[0], dtype=np.uint32)


def _image() -> np.ndarray:
    img = np.zeros((2, 1, 48, 48), "uint16")
    img[0, 0, 4:10, 4:44] = 100  # a bar across the tile seams
    img[0, 0, 30:40, 30:40] = 100
    img[1] = 7  # the other channel: nothing to segment
    return img


def test_compact_with_one_channel_of_a_czyx_image(tmp_path: Path) -> None:
    """Tiles of one channel (c="DAPI") cover a label without a c axis: compact was refused
    ('the tiles must cover the whole image'), counting the channel not streamed."""
    img = _image()
    with ngio_async.create(
        f"{tmp_path}/img.ome.zarr", shape=img.shape, dtype="uint16", axes="czyx",
        chunks=(1, 1, 24, 24), channels=["DAPI", "GFP"],
    ) as ds:  # fmt: skip
        ds.write(img)
        with ds.labels.create("seg", dtype="uint32") as seg:
            assert "c" not in seg.axes
            tiles = ds.tiles(shape=(1, 1, 24, 24), overlap=(0, 0, 6, 6), c="DAPI")
            config = StitchConfig(compact=True)
            ngio_async.stream_sync(tiles, _segment, out=seg, unique_labels=1000, stitch=config)
            got = seg.read()
    assert np.unique(got).tolist() == [0, 1, 2]
    assert got[0, 6, ::8].tolist() == [0, 1, 1, 1, 1, 1]
    assert (got[0, 30:40, 30:40] == 2).all()


def test_compact_still_refuses_one_plane_of_a_z_stack(tmp_path: Path) -> None:
    """An axis the label has (z) must still be covered whole."""
    url = f"{tmp_path}/img.ome.zarr"
    with ngio_async.create(url, shape=(2, 48, 48), dtype="uint16", axes="zyx") as ds:
        seg = ds.labels.create("seg", dtype="uint32")
        tiles = ds.tiles(shape=(1, 24, 24), overlap=(0, 6, 6), z=0)
        config = StitchConfig(compact=True)
        with pytest.raises(ValueError, match="cover the whole image"):
            ngio_async.stream_sync(tiles, _segment, out=seg, unique_labels=1000, stitch=config)
        seg.close()


def test_a_seam_matcher_using_its_patches_as_scratch_changes_no_result(tmp_path: Path) -> None:
    """The patches were views of the tiles' results: a matcher zeroing them (after pairing)
    zeroed the written pixels and made its own pairs look absent ('each pair takes a
    non-zero id of patch_a')."""
    from ngio_async.images._stitch import iou_pairs

    def scratch(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
        pairs = iou_pairs(a, b, 0.3)
        a[...] = 0
        b[...] = 0
        return pairs

    img = _image()[0, 0]
    with ngio_async.create(
        f"{tmp_path}/img.ome.zarr", shape=img.shape, dtype="uint16", axes="yx", chunks=(24, 24)
    ) as ds:
        ds.write(img)
        with ds.labels.create("seg", dtype="uint32") as seg:
            tiles = ds.tiles(shape=(24, 24), overlap=6)
            config = StitchConfig(seam_matcher=scratch)
            ngio_async.stream_sync(tiles, _segment, out=seg, unique_labels=1000, stitch=config)
            got = seg.read()
    assert np.unique(got).tolist() == [0, 1, 3001]
    assert np.array_equal(got > 0, img > 50)
