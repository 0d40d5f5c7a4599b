"""``stream(ds.tiles(level), func, out=<label image>)`` writes each result to the label's level
of the tiles' pixel size (matched per space axis by name, not by level index): level 1 tiles
into level 1 of a label of the image's pyramid, level 1 tiles into level 0 of a label made at
half the resolution; no such level: refused at the call, nothing written. ``pyramid=``: the
coarser levels built from the level written, the finer ones upsampled from it (nearest, as
ngio's ``Label.consolidate`` does)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
# constant over 4x4 blocks of level 0: every downsampling method gives the same coarser levels
BLOCKS = np.random.default_rng(7).integers(0, 9, (16, 16), dtype=np.uint16)
DATA = np.repeat(np.repeat(BLOCKS, 4, 0), 4, 1)[None]  # (c, y, x) = (1, 64, 64)


def segment(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A label of the tile, numbered by value, pixel by pixel."""
    out: np.ndarray[Any, Any] = ((a > 2) * a).astype(np.uint16)
    return out


def up(a: np.ndarray[Any, Any], f: int) -> np.ndarray[Any, Any]:
    return np.repeat(np.repeat(a, f, -2), f, -1)


async def _image(path: Path, version: str) -> None:
    async with ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        channels=["DAPI"], ngff_version=version, scale={"y": 0.5, "x": 0.5},  # type: ignore[arg-type]
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)


async def _levels(lab: Any) -> list[np.ndarray[Any, Any]]:
    return [await lab.read(level=i) for i in range(len(lab.levels))]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_level1_tiles_into_level1_of_a_label(tmp_path: Path, version: str) -> None:
    await _image(tmp_path / "a.zarr", version)
    want1 = segment(DATA[0, ::2, ::2])
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        # no pyramid: level 1 alone (it landed at level 0, half of it, before)
        lab = await ds.labels.create("n", dtype="uint16")
        await ngio_async.stream(ds.tiles(1, c="DAPI"), segment, out=lab)
        got = await _levels(lab)
        np.testing.assert_array_equal(got[1], want1)
        assert not got[0].any() and not got[2].any()
        await lab.aclose()
        # pyramid=True: level 2 built from level 1, level 0 upsampled from it
        lab = await ds.labels.create("p", dtype="uint16")
        await ngio_async.stream(ds.tiles(1, c="DAPI"), segment, out=lab, pyramid=True)
        got = await _levels(lab)
        np.testing.assert_array_equal(got[1], want1)
        np.testing.assert_array_equal(got[2], want1[::2, ::2])
        np.testing.assert_array_equal(got[0], up(want1, 2))
        await lab.aclose()


async def test_tiles_into_a_label_of_other_pixels(tmp_path: Path) -> None:
    """A label made at level 1's resolution (ngio's derive_label): its level 0 takes the level
    1 tiles, its level 1 the level 2 tiles; level 0 tiles have no level there: refused."""
    ngio = pytest.importorskip("ngio")
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    oz = ngio.open_ome_zarr_container(str(url))
    oz.derive_label("half", ref_image=oz.get_image(path="1"), dtype="uint16")
    calls: list[int] = []

    def seg(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(1)
        return segment(a)

    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("half", mode="r+")
        assert [lvl.scale[-1] for lvl in lab.levels][:2] == [1.0, 2.0]
        before = _files(url)
        with pytest.raises(ValueError, match=r"labels/half/0 of pixels \(1\.0, 1\.0\).*"
                           r"level '0' of pixels \(0\.5, 0\.5\).*nothing was written"):  # fmt: skip
            ngio_async.stream(ds.tiles(c="DAPI"), seg, out=lab, pyramid=True)
        assert not calls and _files(url) == before
        want1 = segment(DATA[0, ::2, ::2])
        await ngio_async.stream(ds.tiles(1, c="DAPI"), seg, out=lab, pyramid=True)
        got = await _levels(lab)
        np.testing.assert_array_equal(got[0], want1)
        np.testing.assert_array_equal(got[1], want1[::2, ::2])
        # level 2 tiles (0.5 * 4 = 2.0) into its level 1, level 0 upsampled from there
        await ngio_async.stream(ds.tiles(2, c="DAPI"), lambda a: seg(a) + 1, out=lab, pyramid=True)
        got = await _levels(lab)
        want2 = segment(DATA[0, ::4, ::4]) + 1
        np.testing.assert_array_equal(got[1], want2)
        np.testing.assert_array_equal(got[0], up(want2, 2))
        await lab.aclose()


async def test_equal_to_ngio_set_array_at_level1_and_consolidate(tmp_path: Path) -> None:
    """ngio: a label's level 1 set, then consolidate() (nearest both ways: level 2 down,
    level 0 up); ngio_async: the level 1 tiles streamed with pyramid='nearest'. Levels 0 and 1
    equal ngio's, on pixel-by-pixel data (not constant over windows); level 2 is level 1's
    even pixels (ngio 1.1.3's nearest takes the odd ones: build_pyramid's rule, kept)."""
    ngio = pytest.importorskip("ngio")
    rng = np.random.default_rng(3)
    data = rng.integers(0, 9, (1, 64, 64), dtype=np.uint16)
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        channels=["DAPI"], ngff_version="0.4",
    ) as ds:  # fmt: skip
        await ds.write(data, pyramid=True)
        await (await ds.labels.create("mine", dtype="uint16")).aclose()
        await (await ds.labels.create("theirs", dtype="uint16")).aclose()
    oz = ngio.open_ome_zarr_container(str(url))
    theirs = oz.get_label("theirs", path="1")
    theirs.set_array(segment(np.asarray(oz.get_image(path="1").get_array(c=0)).reshape(32, 32)))
    theirs.consolidate()
    async with ngio_async.open_async(url, mode="r+") as ds:
        mine = await ds.labels.open("mine", mode="r+")
        await ngio_async.stream(ds.tiles(1, c="DAPI"), segment, out=mine, pyramid="nearest")
        ref = await ds.labels.open("theirs")
        got, want = await _levels(mine), await _levels(ref)
        assert got[1].any() and len(got) == len(want) == 3
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[2], got[1][::2, ::2])
        await mine.aclose()
        await ref.aclose()


async def test_a_writer_keeps_its_level(tmp_path: Path) -> None:
    """out=<writer> of level 1: the writer's level (the tiles of level 1 fit)."""
    await _image(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.create("w", dtype="uint16")
        async with lab.writer(1) as w:
            await ngio_async.stream(ds.tiles(1, c="DAPI"), segment, out=w)
        np.testing.assert_array_equal(await lab.read(level=1), segment(DATA[0, ::2, ::2]))
        assert not (await lab.read(level=0)).any()
        await lab.aclose()


async def test_a_failing_level1_stream_leaves_every_level_following_it(tmp_path: Path) -> None:
    """func fails part way: the level 1 results that landed are in level 2 (downsampled) and
    level 0 (upsampled) too; the rest of every level as before."""
    await _image(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        lab = await ds.labels.create("p", dtype="uint16")
        level1 = tmp_path / "a.zarr" / "labels" / "p" / "1"
        seen: list[int] = []

        def seg(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
            seen.append(1)
            if len(seen) == 3:
                for _ in range(1000):  # (until an earlier tile's write landed: not all dropped)
                    # (a chunk stored: not its temporary file, "0#...", being written)
                    if any(p.is_file() and "#" not in p.name for p in level1.rglob("c/*/*")):
                        break
                    time.sleep(0.01)
                raise RuntimeError("third tile")
            return segment(a) + 1

        with pytest.raises(RuntimeError, match="third tile"):
            await ngio_async.stream(
                ds.tiles(1, c="DAPI", shape=(1, 16, 16)),
                seg,
                out=lab,
                pyramid=True,
                threads=1,
                window=1,
            )
        got = await _levels(lab)
        assert got[1].any() and not got[1].all()  # some tiles landed (value >= 1), not all
        np.testing.assert_array_equal(got[2], got[1][::2, ::2])
        np.testing.assert_array_equal(got[0], up(got[1], 2))
        await lab.aclose()


async def test_pixel_sizes_compared_in_units(tmp_path: Path) -> None:
    """An image in nanometres of 1000 nm pixels takes the level 1 tiles (1 micrometre) of an
    image in micrometres at its level 0."""
    await _image(tmp_path / "a.zarr", "0.5")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as ds,
        ngio_async.create_async(
            tmp_path / "nm.zarr",
            shape=(1, 32, 32),
            dtype="uint16",
            axes="cyx",
            chunks=(1, 16, 16),
            levels=2,
            scale={"y": 1000.0, "x": 1000.0},
            units="nanometer",
        ) as nm,  # fmt: skip
    ):
        await ngio_async.stream(ds.tiles(1), lambda a: a + 1, out=nm)
        np.testing.assert_array_equal(await nm.read(), DATA[:, ::2, ::2] + 1)
        with pytest.raises(ValueError, match=r"of pixels \(1000\.0, 1000\.0\) nanometer.*"
                           r"\(2000\.0, 2000\.0\) nanometer.*of pixels \(0\.5, 0\.5\) micrometer"):  # fmt: skip
            ngio_async.stream(ds.tiles(0), lambda a: a + 1, out=nm)
