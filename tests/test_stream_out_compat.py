"""``stream(tiles, func, out=<dataset>)`` with an output of another calibration: the level of the
tiles' pixel size first, else the level of the same index and size (an output created without
the image's scale keeps working); ``pyramid=`` writing a level above 0 of an image that is no
label image is refused (its finer levels would be overwritten by upsampled pixels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]
DATA = np.arange(64 * 64, dtype=np.uint16).reshape(1, 64, 64)


async def _image(path: Path) -> None:
    async with ngio_async.create_async(
        path, shape=DATA.shape, dtype="uint16", axes="cyx", chunks=(1, 16, 16), levels=3,
        scale={"y": 0.325, "x": 0.325},
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_an_output_of_default_scale_and_the_same_shape_takes_the_tiles(
    tmp_path: Path,
) -> None:
    await _image(tmp_path / "a.zarr")
    async with (
        ngio_async.open_async(tmp_path / "a.zarr") as ds,
        ngio_async.create_async(
            tmp_path / "out.zarr",
            shape=DATA.shape,
            dtype="uint16",
            axes="cyx",
            chunks=(1, 16, 16),
            levels=3,
        ) as out,  # fmt: skip
    ):
        assert out.levels[0].scale[-1] == 1.0  # another pixel size than the tiles' 0.325
        await ngio_async.stream(ds.tiles(), lambda a: a + 1, out=out)
        np.testing.assert_array_equal(await out.read(), DATA + 1)
        # level 1 tiles: out's level 1 (the same index, the same size)
        await ngio_async.stream(ds.tiles(1), lambda a: a * 0 + 7, out=out)
        assert (await out.read(level=1) == 7).all()
        np.testing.assert_array_equal(await out.read(), DATA + 1)  # level 0 untouched
        # a shape no level of that index has: refused, naming the pixel sizes
        small = await ngio_async.create_async(
            tmp_path / "small.zarr", shape=(1, 16, 16), dtype="uint16", axes="cyx"
        )
        async with small:
            with pytest.raises(ValueError, match=r"of pixels \(0\.325, 0\.325\)"):
                ngio_async.stream(ds.tiles(), lambda a: a, out=small)


async def test_pyramid_above_level_0_of_an_image_is_refused(tmp_path: Path) -> None:
    await _image(tmp_path / "a.zarr")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        before = _files(tmp_path / "a.zarr")
        for pyramid in (True, "mean"):
            with pytest.raises(ValueError, match=r"would replace its finer levels \('0'\)"):
                ngio_async.stream(ds.tiles(1), lambda a: a // 2, out=ds, pyramid=pyramid)
        assert _files(tmp_path / "a.zarr") == before
        # a label image's finer levels are upsampled (ngio's consolidate): allowed
        lab = await ds.labels.create("n", dtype="uint16")
        await ngio_async.stream(ds.tiles(1), lambda a: (a > 100).astype("uint16"), out=lab,
                                pyramid=True)  # fmt: skip
        one = await lab.read(level=1)
        np.testing.assert_array_equal(await lab.read(), np.repeat(np.repeat(one, 2, -2), 2, -1))
        # without pyramid, level 1 of the image alone
        await ngio_async.stream(ds.tiles(1), lambda a: a // 2, out=ds)
        np.testing.assert_array_equal(await ds.read(), DATA)
