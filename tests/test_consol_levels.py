"""A label image written at a coarser level, then every other level rebuilt from it (ngio's
``set_array`` / ``set_roi`` at that level, then ``Label.consolidate()``):
``write(..., level=k, pyramid=...)``, ``write_roi``, ``writer(level=k, pyramid=...)`` and
``build_pyramid(from_level=k, regions=...)``. The coarser levels are downsampled from level
``k``, the finer ones upsampled (nearest: finer pixel ``i`` takes pixel ``i // f``); only the
regions written are rebuilt. Intensity images are refused before any I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
SHAPE = (1, 64, 64)  # (c, y, x); label levels (64, 64), (32, 32), (16, 16)
RNG = np.random.default_rng(11)
FIRST = RNG.integers(0, 6, (32, 32), dtype=np.uint16)  # level 1, pixel by pixel
PATCH = RNG.integers(0, 6, (13, 11), dtype=np.uint16)  # at level 1 (5:18, 9:20): unaligned
Y, X = slice(5, 18), slice(9, 20)


def up(a: np.ndarray[Any, Any], f: int) -> np.ndarray[Any, Any]:
    return np.repeat(np.repeat(a, f, -2), f, -1)


async def _image(url: Any, version: str = "0.4", **options: Any) -> None:
    async with ngio_async.create_async(
        url, shape=SHAPE, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        channels=["DAPI"], ngff_version=version, scale={"y": 0.5, "x": 0.5}, **options,  # type: ignore[arg-type]
    ) as ds:  # fmt: skip
        await ds.write(RNG.integers(0, 900, SHAPE, dtype=np.uint16), pyramid=True)
        for name in ("mine", "theirs"):
            await (await ds.labels.create(name, dtype="uint16")).aclose()


async def _levels(lab: Any) -> list[np.ndarray[Any, Any]]:
    return [await lab.read(level=i) for i in range(len(lab.levels))]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _ngio(url: Path, first: bool = True) -> list[np.ndarray[Any, Any]]:
    """ngio: level 1 of label "theirs" set (whole, then the patch), consolidated each time."""
    ngio = pytest.importorskip("ngio")
    oz = ngio.open_ome_zarr_container(str(url))
    theirs = oz.get_label("theirs", path="1")
    if first:
        theirs.set_array(FIRST)
        theirs.consolidate()
    theirs.set_array(PATCH, y=Y, x=X)
    theirs.consolidate()
    return [np.asarray(oz.get_label("theirs", path=p).get_array()) for p in ("0", "1", "2")]


def _equal(got: list[np.ndarray[Any, Any]], want: list[np.ndarray[Any, Any]]) -> None:
    assert len(got) == len(want) == 3
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(g, w, err_msg=f"level {i}")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_write_at_level1_equals_ngio_set_array_and_consolidate(
    tmp_path: Path, version: str
) -> None:
    url = tmp_path / "a.zarr"
    await _image(url, version)
    want = _ngio(url)
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write(FIRST, level=1, pyramid="ngio")
        assert (await lab.read(level=0)).any()
        await lab.write(PATCH, level=1, pyramid="ngio", y=Y, x=X)
        _equal(await _levels(lab), want)
        await lab.aclose()


async def test_writer_and_build_pyramid_from_level1(tmp_path: Path) -> None:
    """writer(level=1, pyramid=...): tiles of level 1; build_pyramid(from_level=1, regions=)
    after a plain level-1 write of the patch; both equal to ngio's."""
    url = tmp_path / "a.zarr"
    await _image(url, "0.5")
    want = _ngio(url)
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")
        async with lab.writer(1, pyramid="ngio") as w:
            for y in (0, 16):
                await w.write(((slice(y, y + 16), slice(0, 32)), FIRST[y : y + 16]))
        await lab.write(PATCH, level=1, y=Y, x=X)  # level 1 alone: the others not yet
        assert not np.array_equal((await lab.read(level=0))[10:36, 18:40], up(PATCH, 2))
        seen: list[tuple[int, int]] = []
        await lab.build_pyramid(
            from_level=1,
            method="ngio",
            regions=[(Y, X)],
            progress=lambda d, t: seen.append((d, t)),
        )
        _equal(await _levels(lab), want)
        assert seen and seen[-1][0] == seen[-1][1] and len({t for _, t in seen}) == 1
        await lab.aclose()


async def test_write_roi_at_level1_equals_ngio_set_roi(tmp_path: Path) -> None:
    ngio = pytest.importorskip("ngio")
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    # level 1 pixels (5:18, 9:20) in micrometres (level 1 pixels are 1.0)
    roi = Roi("r", {"y": (5.0, 18.0), "x": (9.0, 20.0)})
    oz = ngio.open_ome_zarr_container(str(url))
    theirs = oz.get_label("theirs", path="1")
    theirs.set_roi(ngio.Roi.from_values(name="r", slices={"y": (5.0, 13.0), "x": (9.0, 11.0)},
                                        space="world"), PATCH)  # fmt: skip
    theirs.consolidate()
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write_roi(roi, PATCH, 1, pyramid="ngio")
        ref = await ds.labels.open("theirs")
        want = await _levels(ref)
        assert want[1][Y, X].tolist() == PATCH.tolist()
        _equal(await _levels(lab), want)
        await lab.aclose()
        await ref.aclose()


async def test_build_pyramid_from_level1_whole(tmp_path: Path) -> None:
    """No regions: every level from level 1 (ngio's set_array of all of it, consolidate)."""
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    want = _ngio(url, first=False)
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write(PATCH, level=1, y=Y, x=X)
        await lab.write(RNG.integers(0, 9, (64, 64), dtype=np.uint16))  # level 0: replaced
        await lab.build_pyramid(from_level=1, method="ngio")
        _equal(await _levels(lab), want)
        await lab.aclose()


async def test_build_pyramid_from_level1_rebuilds_the_regions_alone(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    old0 = RNG.integers(1, 9, (64, 64), dtype=np.uint16)
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write(old0)  # level 0 alone: not level 1 upsampled
        await lab.write(PATCH, level=1, y=Y, x=X)
        with pytest.raises(TypeError, match="progress"):
            await lab.build_pyramid(from_level=1, regions=[(Y, X)], progress=3)  # type: ignore[arg-type]
        assert np.array_equal(await lab.read(level=0), old0)  # refused before any write
        await lab.build_pyramid(from_level=1, regions=[(Y, X)])
        want0 = old0.copy()
        want0[10:36, 18:40] = up(PATCH, 2)
        np.testing.assert_array_equal(await lab.read(level=0), want0)
        await lab.aclose()


async def test_masked_write_at_level1_changes_only_the_object(tmp_path: Path) -> None:
    """A masked label write at level 1 (ngio's set_roi_masked): the finer level changes only
    under the object's pixels, though it held other pixels than level 1 upsampled."""
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    nuclei = np.zeros((64, 64), np.uint16)
    nuclei[8:24, 8:40] = 7
    nuclei[8:40, 8:16] = 7  # an L: its box's corner (24:40, 16:40) is not the object
    old0 = RNG.integers(1, 9, (64, 64), dtype=np.uint16)
    async with ngio_async.open_async(url, mode="r+") as ds:
        nuc = await ds.labels.create("nuclei", dtype="uint16")
        await nuc.write(nuclei, pyramid="nearest")
        await nuc.aclose()
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write(old0)  # level 0 alone: not level 1 upsampled
        await lab.aclose()
        async with ds.masked("nuclei", level=1, of="mine") as m:
            got = await m.read_roi(7)
            await m.write_read(got, 5, pyramid="ngio")
        lab = await ds.labels.open("mine")
        levels = await _levels(lab)
        inside = up(nuclei[::2, ::2] == 7, 2)
        np.testing.assert_array_equal(levels[1] == 5, nuclei[::2, ::2] == 7)
        np.testing.assert_array_equal(levels[0], np.where(inside, 5, old0))
        np.testing.assert_array_equal(levels[2], levels[1][1::2, 1::2])  # ngio's pixels
        await lab.aclose()


async def test_a_failing_writer_leaves_every_level_following_level1(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    async with ngio_async.open_async(url, mode="r+") as ds:
        lab = await ds.labels.open("mine", mode="r+")

        async def half_then_fail() -> None:
            async with lab.writer(1, pyramid=True) as w:
                await w.write(((slice(0, 16), slice(0, 32)), FIRST[:16]))
                while w.pending:  # noqa: ASYNC110 - the writer has no event for it
                    await anyio.sleep(0.01)
                raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            await half_then_fail()
        got = await _levels(lab)
        want1 = np.zeros((32, 32), np.uint16)
        want1[:16] = FIRST[:16]
        np.testing.assert_array_equal(got[1], want1)
        np.testing.assert_array_equal(got[0], up(want1, 2))
        assert got[2][:8].any() and not got[2][8:].any()
        await lab.aclose()


async def test_refused_before_any_io(tmp_path: Path) -> None:
    """An intensity image's finer levels are not replaced by upsampled pixels; levels= does
    not go with from_level; nothing is written."""
    url = tmp_path / "a.zarr"
    await _image(url, "0.4")
    before = _files(url)
    async with ngio_async.open_async(url, mode="r+") as ds:
        with pytest.raises(ValueError, match=r"level '1' of .*finer levels \('0'\).*label"):
            await ds.write(np.zeros((1, 32, 32), np.uint16), level=1, pyramid=True)
        with pytest.raises(ValueError, match=r"finer levels \('0'\)"):
            ds.writer(1, pyramid=True)
        with pytest.raises(ValueError, match=r"finer levels \('0'\)"):
            await ds.write_roi(Roi("r", {"y": (0.0, 4.0), "x": (0.0, 4.0)}), 1, 1, pyramid=True)
        with pytest.raises(ValueError, match=r"from_level=1.*finer levels \('0'\).*label"):
            await ds.build_pyramid(from_level=1)
        lab = await ds.labels.open("mine", mode="r+")
        with pytest.raises(ValueError, match=r"levels are added from level 0"):
            await lab.build_pyramid(from_level=1, levels=4)
        with pytest.raises(ValueError, match=r"outside|out of"):
            await lab.build_pyramid(from_level=1, regions=[(slice(0, 40), slice(0, 4))])
        await lab.aclose()
    assert _files(url) == before


async def test_on_s3(s3_server: S3Server) -> None:
    url, options = s3_server.fresh_url() + "/a.zarr", s3_server.options()
    await _image(url, "0.5", **options)
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        lab = await ds.labels.open("mine", mode="r+")
        await lab.write(FIRST, level=1, pyramid=True)
        await lab.write(PATCH, level=1, pyramid=True, y=Y, x=X)
        await lab.aclose()
    want1 = FIRST.copy()
    want1[Y, X] = PATCH
    async with ngio_async.open_async(url, **options) as ds, ds.labels.open("mine") as lab:
        got = await _levels(lab)
        np.testing.assert_array_equal(got[1], want1)
        np.testing.assert_array_equal(got[0], up(want1, 2))
        assert got[2].shape == (16, 16) and got[2].any()


def test_blocking_api(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    anyio.run(_image, url, "0.4")
    want = _ngio(url)
    with ngio_async.open(url, mode="r+") as ds, ds.labels.open("mine", mode="r+") as lab:
        with lab.writer(1, pyramid="ngio") as w:
            w.write(((slice(0, 32), slice(0, 32)), FIRST))
        lab.write(PATCH, 1, "ngio", y=Y, x=X)
        _equal([lab.read(level=i) for i in range(3)], want)
        lab.write(FIRST, 1)
        lab.build_pyramid(from_level=1, method="ngio", regions=[(Y, X)])
        np.testing.assert_array_equal(lab.read(level=0), up(FIRST, 2))


async def test_ngio_upsampling_at_sizes_the_factor_does_not_divide(tmp_path: Path) -> None:
    """Levels (44, 62), (22, 31), (11, 16): ngio upsamples level 2's 16 columns into level
    1's 31 with its nearest zoom (column 29 takes 15, not 29 // 2); method "ngio" gives
    ngio's pixels on every level: by a write, build_pyramid(from_level=2) and stream()."""
    ngio = pytest.importorskip("ngio")
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=(1, 44, 62), dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        channels=["DAPI"], ngff_version="0.4",
    ) as ds:  # fmt: skip
        for name in ("mine", "built", "streamed", "theirs"):
            await (await ds.labels.create(name, dtype="uint16")).aclose()
    level2 = RNG.integers(0, 9, (11, 16), dtype=np.uint16)
    oz = ngio.open_ome_zarr_container(str(url))
    theirs = oz.get_label("theirs", path="2")
    theirs.set_array(level2)
    theirs.consolidate()
    want = [np.asarray(oz.get_label("theirs", path=p).get_array()) for p in ("0", "1", "2")]
    assert want[1][::2, 29].tolist() == level2[:, 15].tolist() != level2[:, 14].tolist()
    async with ngio_async.open_async(url, mode="r+") as ds:
        mine = await ds.labels.open("mine", mode="r+")
        await mine.write(level2, level=2, pyramid="ngio")
        _equal(await _levels(mine), want)
        built = await ds.labels.open("built", mode="r+")
        await built.write(level2, level=2)
        await built.build_pyramid(from_level=2, method="ngio")
        _equal(await _levels(built), want)
        streamed = await ds.labels.open("streamed", mode="r+")
        tiles = ds.tiles(2, c="DAPI")  # one tile: all of level 2
        await ngio_async.stream(tiles, lambda _: level2, out=streamed, pyramid="ngio")
        _equal(await _levels(streamed), want)
        for lab in (mine, built, streamed):
            await lab.aclose()
