"""``stream(image tiles, segment, out=<label>)``: the tiles (``c, z, y, x``) are mapped onto
the label image's axes (``z, y, x``) by name, their length-1 ``c`` (and ``func``'s) left
out; ``out=`` a label writer, or the label image itself with ``pyramid=``; refused, naming
the axes, where an axis of length > 1 would be dropped or an axis of the label is missing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio
DATA = np.random.default_rng(5).integers(0, 200, (2, 3, 40, 48), dtype=np.uint16)


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A threshold of the tile, numbered by value (a label, not just a mask), pixel by pixel."""
    out: np.ndarray[Any, Any] = ((a > 100) * (1 + a % 5)).astype(np.uint16)
    return out


async def _image(path: Path, version: str = "0.5") -> None:
    async with ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16),
        levels=3, channels=["DAPI", "GFP"], ngff_version=version,  # type: ignore[arg-type]
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)


async def _reference(ds: Any, full: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Every level of a label image holding ``full``, written whole with pyramid=True."""
    ref = await ds.labels.create("ref", dtype="uint16")
    await ref.write(full, pyramid=True)
    levels = [await ref.read(level=i) for i in range(len(ref.levels))]
    await ref.aclose()
    return levels


async def _levels(lab: Any) -> list[np.ndarray[Any, Any]]:
    return [await lab.read(level=i) for i in range(len(lab.levels))]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_image_tiles_into_a_label_by_axis_name(tmp_path: Path, version: str) -> None:
    await _image(tmp_path / "a.zarr", version)
    full = segment(DATA[0])
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        want = await _reference(ds, full)
        # out=<writer>, pyramid by the writer's own rule
        lab = await ds.labels.create("w", dtype="uint16")
        async with lab.writer(pyramid=True) as w:
            await ngio_async.stream(ds.tiles(c="DAPI"), segment, out=w)
        for got, ref in zip(await _levels(lab), want, strict=True):
            np.testing.assert_array_equal(got, ref)
        await lab.aclose()
        # out=<the label image>, pyramid=True; func returning the tile without its c axis
        lab = await ds.labels.create("d", dtype="uint16")
        await ngio_async.stream(ds.tiles(c="DAPI"), lambda a: segment(a[0]), out=lab, pyramid=True)
        for got, ref in zip(await _levels(lab), want, strict=True):
            np.testing.assert_array_equal(got, ref)
        await lab.aclose()
        # no pyramid: level 0 alone, the lower levels untouched (all 0)
        lab = await ds.labels.create("n", dtype="uint16")
        await ngio_async.stream(ds.tiles(c="GFP", shape=(1, 2, 24, 24)), segment, out=lab)
        levels = await _levels(lab)
        np.testing.assert_array_equal(levels[0], segment(DATA[1]))
        assert not levels[1].any()
        await lab.aclose()


async def test_dropped_or_missing_axes_are_refused_naming_them(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.create("seg", dtype="uint16")
        # both channels: their results would land on the same label pixels
        with pytest.raises(ValueError, match=r"axis 'c' is dropped, but the tiles cover sev"):
            ngio_async.stream(ds.tiles(), segment, out=lab)
        async with lab.writer() as w:
            with pytest.raises(ValueError, match=r"axis 'c' is dropped.*ds.tiles\(c=...\)"):
                ngio_async.stream(ds.tiles(), segment, out=w)
        # one tile spanning both channels: refused at that tile, nothing written
        with pytest.raises(ValueError, match=r"axis 'c' of the tiles is not an axis of the im"):
            await ngio_async.stream(ds.tiles(shape=(2, 1, 40, 48)), segment, out=lab)
        # func's result keeping a c of 2 for a tile of c 1
        with pytest.raises(ValueError, match=r"only where it has length 1 \(the result has"):
            await ngio_async.stream(
                ds.tiles(c="DAPI"), lambda a: np.concatenate([a, a]), out=lab, threads=1
            )
        assert not (await lab.read()).any()
        # tiles lacking an axis of the image written (a y, x plane image into z, y, x)
        async with ngio_async.create_async(
            tmp_path / "p.zarr", shape=(40, 48), dtype="uint16", axes="yx"
        ) as plane:
            with pytest.raises(ValueError, match=r"axis 'z' of the image written is not an ax"):
                ngio_async.stream(plane.tiles(), segment, out=lab)
        # pyramid= with a writer: the writer's own rule
        async with lab.writer() as w:
            with pytest.raises(TypeError, match=r"give pyramid= to it"):
                ngio_async.stream(ds.tiles(c="DAPI"), segment, out=w, pyramid=True)
        with pytest.raises(ValueError, match=r"average label ids"):
            ngio_async.stream(ds.tiles(c="DAPI"), segment, out=lab, pyramid="mean")
        with pytest.raises(TypeError, match=r"give out="):
            ngio_async.stream(ds.tiles(c="DAPI"), segment, pyramid=True)
        assert not (await lab.read()).any()
        await lab.aclose()


async def test_a_failing_tile_stream_leaves_the_pyramid_following_level_0(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr")
    first = DATA[0, 0, 16, 16]  # the first pixel of the 5th tile (16x16 tiles, 3 x 3 each plane)

    stored = tmp_path / "a.zarr" / "labels" / "seg" / "0"

    def fails(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if a[0, 0, 0, 0] == first:
            for _ in range(1000):  # (until an earlier tile's write landed: not all dropped)
                # (a chunk stored: not its temporary file, "<key>#<n>", being written)
                if any(p.is_file() and "c" in p.parts and "#" not in p.name
                       for p in stored.rglob("*")):  # fmt: skip
                    break
                time.sleep(0.01)
            raise RuntimeError("segmentation failed")
        return segment(a)

    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.create("seg", dtype="uint16")
        tiles = ds.tiles(c="DAPI", shape=(1, 1, 16, 16))
        with pytest.raises(RuntimeError, match="segmentation failed"):
            await ngio_async.stream(tiles, fails, out=lab, pyramid=True, window=1)
        got = await _levels(lab)
        assert got[0].any() and not got[0].all()  # some tiles landed, not all
        want = await _reference(ds, got[0])
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        await lab.aclose()
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds, ds.labels.open("seg") as lab:
        with pytest.raises(ngio_async.ReadOnlyError):
            ngio_async.stream(ds.tiles(c="DAPI"), segment, out=lab)
    with ngio_async.open(tmp_path / "a.zarr", mode="r+") as blocking:
        async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
            with pytest.raises(TypeError, match=r"a dataset opened with open_async, got"):
                ngio_async.stream(ds.tiles(c="DAPI"), segment, out=blocking)  # type: ignore[arg-type]
