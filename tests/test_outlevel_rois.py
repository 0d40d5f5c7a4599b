"""``stream(ds.read_rois(..., level), func, out=<label image>)`` (and ``stream_sync``) writes
each ROI's result to the label's level of the ROIs' pixel size: level 1 ROIs into level 1 of a
label of the image's pyramid, or into level 0 of a label made at level 1's resolution;
``pyramid=True``: the coarser levels built from it, the finer ones upsampled (nearest); a
label with no level of that pixel size: refused at the call, nothing written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_outlevel_tiles import DATA, _files, _image, segment, up

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore")
# in micrometres (the image's pixels are 0.5): level 1 boxes [0:16, 0:24] and [16:32, 8:32]
ROIS = [
    Roi("a", {"y": (0.0, 16.0), "x": (0.0, 24.0)}),
    Roi("b", {"y": (16.0, 32.0), "x": (8.0, 32.0)}),
]


def _want1() -> np.ndarray[Any, Any]:
    want = np.zeros((32, 32), np.uint16)
    level1 = DATA[0, ::2, ::2]
    for y, x in ((slice(0, 16), slice(0, 24)), (slice(16, 32), slice(8, 32))):
        want[y, x] = segment(level1[y, x])
    return want


async def _prepared(path: Path, version: str) -> None:
    await _image(path, version)
    async with ngio_async.open_async(path, mode="r+") as ds:
        await ds.tables.write_rois("FOV", ROIS)
        await (await ds.labels.create("seg", dtype="uint16")).aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_level1_rois_into_level1_of_a_label(tmp_path: Path, version: str) -> None:
    await _prepared(tmp_path / "a.zarr", version)
    want = _want1()
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.open("seg", mode="r+")
        await ngio_async.stream(ds.read_rois("FOV", 1, c="DAPI"), segment, out=lab, pyramid=True)
        got = [await lab.read(level=i) for i in range(3)]
        np.testing.assert_array_equal(got[1], want)
        np.testing.assert_array_equal(got[2], want[::2, ::2])
        np.testing.assert_array_equal(got[0], up(want, 2))
        await lab.aclose()


@pytest.mark.anyio
async def test_masked_level1_rois_into_level1(tmp_path: Path) -> None:
    """masked=True: ROIs of a masking table, read at level 1 with their labels, each result
    written only inside its object at the label's level 1; level 0 follows it there alone
    (upsampled), its finer pixels elsewhere in the box kept."""
    await _prepared(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        nuc = await ds.labels.create("nuclei", dtype="uint16")
        objects = np.zeros((64, 64), np.uint16)
        objects[4:20, 8:40], objects[36:60, 20:52] = 1, 2
        objects[12:20, 16:40] = 0  # an L: its box holds pixels of no object
        await nuc.write(objects, pyramid=True)
        await ds.tables.write_rois("nuclei_ROI_table", await nuc.masking_rois(), label="nuclei")
        out = await ds.labels.open("seg", mode="r+")
        fine = np.indices((64, 64)).sum(axis=0) % 2 * 9  # a checkerboard: level 1 loses it
        await out.write(fine.astype("uint16"), pyramid=True)
        before = [await out.read(level=i) for i in range(2)]
        rois = ds.read_rois("nuclei_ROI_table", 1, c="DAPI", label="nuclei")
        await ngio_async.stream(rois, lambda a: np.full(a.shape, 5, "uint16"), out=out,
                                masked=True, pyramid=True)  # fmt: skip
        got = [await out.read(level=i) for i in range(2)]
        inside = objects[::2, ::2] > 0
        np.testing.assert_array_equal(got[1], np.where(inside, 5, before[1]))
        np.testing.assert_array_equal(got[0], np.where(up(inside, 2), 5, before[0]))
        await nuc.aclose()
        await out.aclose()


def test_stream_sync_level1_rois_into_a_label_of_other_pixels(tmp_path: Path) -> None:
    """The blocking twin: a label made at level 1's resolution takes the level 1 ROIs at its
    level 0; the level 0 ROIs have no level there: refused, nothing written."""
    ngio = pytest.importorskip("ngio")
    url = tmp_path / "a.zarr"
    anyio.run(_prepared, url, "0.4")
    oz = ngio.open_ome_zarr_container(str(url))
    oz.derive_label("half", ref_image=oz.get_image(path="1"), dtype="uint16")
    want = _want1()
    with ngio_async.open(url, mode="r+") as ds:
        half = ds.labels.open("half", mode="r+")
        before = _files(url)
        with pytest.raises(ValueError, match=r"labels/half/0 of pixels \(1\.0, 1\.0\).*level "
                           r"'0' of pixels \(0\.5, 0\.5\).*nothing was written"):  # fmt: skip
            ngio_async.stream_sync(ds.read_rois("FOV", c="DAPI"), segment, out=half)
        assert _files(url) == before
        rois = ds.read_rois("FOV", 1, c="DAPI")
        assert ngio_async.stream_sync(rois, segment, out=half, pyramid=True) is None
        np.testing.assert_array_equal(half.read(level=0), want)
        np.testing.assert_array_equal(half.read(level=1), want[::2, ::2])
        half.close()
