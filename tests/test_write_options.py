"""Dataset.write/write_at options and set_channels inputs: numpy values, pyramid=None, and a
failed pyramid write that stops counting as a live cascade at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

import ngio_async
from ngio_async.images._cascade import _ALIVE, _image_key

if TYPE_CHECKING:
    from pathlib import Path


async def _image(path: Path) -> ngio_async.Dataset:
    return await ngio_async.create_async(
        path, shape=(2, 64, 64), dtype="uint8", axes="cyx", chunks=(1, 32, 32), levels=2
    )


async def test_set_channels_takes_numpy_labels_and_flags(tmp_path: Path) -> None:
    async with await _image(tmp_path / "a.zarr") as ds:
        labels, active = np.array(["DAPI", "GFP"]), np.array([True, False])
        await ds.set_channels(labels=labels, active=active)  # type: ignore[arg-type]
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        assert [c.label for c in ds.metadata.channels] == ["DAPI", "GFP"]
        assert [c.active for c in ds.metadata.channels] == [True, False]
        assert all(type(c.label) is str for c in ds.metadata.channels)


async def test_set_channels_refuses_labels_that_are_no_strings(tmp_path: Path) -> None:
    async with await _image(tmp_path / "a.zarr") as ds:
        with pytest.raises(TypeError, match=r"labels\[1\]"):
            await ds.set_channels(labels=["DAPI", 3])  # type: ignore[list-item]


@pytest.mark.parametrize("how", ["write", "write_at"])
async def test_pyramid_none_writes_level_0_only(tmp_path: Path, how: str) -> None:
    async with await _image(tmp_path / "a.zarr") as ds:
        data = np.full((1, 32, 32), 200, dtype="uint8")
        if how == "write":
            await ds.write(data, pyramid=None, c=slice(0, 1), y=slice(0, 32), x=slice(0, 32))
        else:
            await ds.write_at((slice(0, 1), slice(0, 32), slice(0, 32)), data, pyramid=None)
        assert (await ds.read(level=0, c=0, y=slice(0, 32), x=slice(0, 32)) == 200).all()
        assert (await ds.read(level=1) == 0).all()  # no pyramid was built


@pytest.mark.parametrize("how", ["write", "write_at"])
async def test_a_failed_pyramid_write_is_no_live_cascade(tmp_path: Path, how: str) -> None:
    async with await _image(tmp_path / "a.zarr") as ds:
        bad = np.zeros((1, 5, 7), dtype="uint8")  # not the selection's shape
        sel = (slice(0, 1), slice(0, 32), slice(0, 32))
        call = (
            ds.write(bad, pyramid=True, c=sel[0], y=sel[1], x=sel[2])
            if how == "write"
            else ds.write_at(sel, bad, pyramid=True)
        )
        with pytest.raises(ValueError, match="shape") as caught:
            await call
        assert caught.traceback  # the traceback (and its frames' cascade) is still referenced
        assert not list(_ALIVE.get(_image_key(ds), ()))


async def test_a_channel_label_beyond_the_channel_axis_is_named(tmp_path: Path) -> None:
    async with await _image(tmp_path / "a.zarr") as ds:
        await ds.set_channels(labels=["A", "B"])
    import zarr

    group = zarr.open_group(tmp_path / "a.zarr", mode="a")
    ome: dict[str, Any] = dict(cast("dict[str, Any]", group.attrs["ome"]))
    channels = list(ome["omero"]["channels"])
    ome["omero"] = {"channels": [*channels, {**channels[0], "label": "C"}]}
    group.attrs["ome"] = ome
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        with pytest.raises(IndexError, match=r"'C' is channel 2 .* has 2 channels"):
            await ds.read(c="C")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (np.full((1, 32, 32), -1), r"values -1\.\.-1 do not fit a uint8 level"),
        (np.full((1, 32, 32), 300, dtype="int16"), r"300\.\.300 do not fit"),
        (np.full((1, 32, 32), np.nan, dtype="float32"), "NaN or infinity"),
        (np.full((1, 32, 32), 1e6), "do not fit"),
    ],
)
async def test_array_values_an_integer_level_cannot_hold_are_refused(
    tmp_path: Path, data: np.ndarray, match: str
) -> None:
    """numpy's cast would wrap them (-1 -> 255: two label ids merged) or invent values (NaN);
    nothing is written."""
    async with await _image(tmp_path / "a.zarr") as ds:
        sel = (slice(0, 1), slice(0, 32), slice(0, 32))
        with pytest.raises(ValueError, match=match):
            await ds.write_at(sel, data)
        assert not (await ds.read(level=0)).any()
        await ds.write_at(sel, np.full((1, 32, 32), 200, dtype="int64"))  # fits: cast
        await ds.write_at(sel, np.full((1, 32, 32), 7.9))  # fractions truncate, as in numpy
        assert (await ds.read(level=0, c=0, y=slice(0, 32), x=slice(0, 32)) == 7).all()


async def test_label_images_refuse_mean_downsampling(tmp_path: Path) -> None:
    async with (
        await _image(tmp_path / "a.zarr") as ds,
        await ds.labels.create("cells", dtype="uint16") as label,
    ):
        with pytest.raises(ValueError, match="would average label ids"):
            await label.build_pyramid(method="mean")
        with pytest.raises(ValueError, match="would average label ids"):
            await label.write(np.ones((64, 64), dtype="uint16"), pyramid="mean")
        await label.write(np.ones((64, 64), dtype="uint16"), pyramid=True)  # mode
        assert (await label.read(level=1) == 1).all()


async def test_image_tiles_into_a_label_writer_name_the_axes(tmp_path: Path) -> None:
    async with (
        await _image(tmp_path / "a.zarr") as ds,
        await ds.labels.create("cells", dtype="uint16") as label,
    ):
        tile = await anext(aiter(ds.tiles(c=0)))
        async with label.writer() as w:
            with pytest.raises(ValueError, match="a tile region of 3 axes for a level of 2"):
                await w.write(tile)
