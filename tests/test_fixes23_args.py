"""Argument refusals found by reading today's docs: ``set_channels(colors=)`` of non-strings,
``set_channels(wavelength_ids=)`` giving two channels one id, ``stream(stitch=)`` into an image of
floats, and ``write(axes_order=)`` naming an axis the image lacks: each refused before any write,
naming the argument."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_set_channels_refuses_bad_colors_and_shared_wavelength_ids(tmp_path: Path) -> None:
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 8, 8), dtype="uint8", axes="cyx",
        channels=[{"label": "A", "wavelength_id": "A01_C01"}, {"label": "B", "wavelength_id": "A01_C02"}],
    ) as ds:  # fmt: skip
        before = _files(url)
        with pytest.raises(TypeError, match=r"colors\[0\] must be a color as hex 'RRGGBB'"):
            await ds.set_channels(colors=[1, 2])  # type: ignore[list-item]
        with pytest.raises(TypeError, match=r"colors\[1\] must be a color.*'blue'"):
            await ds.set_channels(colors=["#00FF00", "blue"])
        with pytest.raises(ValueError, match=r"channels 0 and 1 would both have wavelength_id 'X'"):
            await ds.set_channels(wavelength_ids=["X", "X"])
        # one new id equal to the other channel's kept one
        with pytest.raises(
            ValueError, match=r"channels 0 and 1 would both have wavelength_id 'A01_C02'"
        ):
            await ds.set_channels(wavelength_ids=["A01_C02", None])
        with pytest.raises(ValueError, match=r"channels 0 and 1 would both have label 'B'"):
            await ds.set_channels(labels=["B", "B"])
        assert _files(url) == before
        await ds.set_channels(colors=["00ff00", "#0000FF"], wavelength_ids=["A01_C02", "A01_C01"])
        assert [c.color for c in ds.metadata.ome.omero.channels] == ["00FF00", "0000FF"]  # type: ignore[union-attr]


async def test_stitch_into_an_image_of_floats_is_refused(tmp_path: Path) -> None:
    async with (
        ngio_async.create_async(tmp_path / "a.zarr", shape=(32, 32), dtype="uint8", axes="yx") as ds,
        ngio_async.create_async(tmp_path / "f.zarr", shape=(32, 32), dtype="float32", axes="yx") as out,
    ):  # fmt: skip
        with pytest.raises(TypeError, match=r"joins label ids: out .* holds float32"):
            ngio_async.stream(ds.tiles(shape=(16, 16), overlap=2), lambda a: a, out=out,
                              unique_labels=100, stitch=True)  # fmt: skip


async def test_axes_order_naming_an_axis_the_image_lacks(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=(8, 8), dtype="uint8", axes="yx"
    ) as ds:
        with pytest.raises(
            ValueError, match=r"'c' \(size 8\) is no axis of the write.*\['y'\] is not named"
        ):
            await ds.write(np.ones((8, 8), np.uint8), axes_order="xc")
        await ds.write(np.ones((1, 8, 8), np.uint8), axes_order="cyx")  # a size-1 axis: dropped
        assert (await ds.read()).all()


async def test_create_refuses_a_label_or_wavelength_id_twice(tmp_path: Path) -> None:
    for channels, key in (
        (["A", "A"], "label 'A'"),
        (
            [{"label": "A", "wavelength_id": "W"}, {"label": "B", "wavelength_id": "W"}],
            "wavelength_id 'W'",
        ),
    ):
        with pytest.raises(ValueError, match=rf"channels: channels 0 and 1 would both have {key}"):
            await ngio_async.create_async(
                tmp_path / "a.zarr", shape=(2, 8, 8), dtype="uint8", axes="cyx", channels=channels
            )
        assert not (tmp_path / "a.zarr").exists()


async def test_duplicates_another_tool_wrote_still_open_and_edit(tmp_path: Path) -> None:
    """Labels twice in a dataset written elsewhere: opened, and edited in what is given."""
    import json

    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=(2, 8, 8), dtype="uint8", axes="cyx", channels=["A", "B"], ngff_version="0.4"
    ):
        pass
    attrs = json.loads((url / ".zattrs").read_text())
    attrs["omero"]["channels"][1]["label"] = "A"
    (url / ".zattrs").write_text(json.dumps(attrs))
    async with ngio_async.open_async(url, mode="r+") as ds:
        await ds.set_channels(colors=["FF0000", "00FF00"])
        assert [c.label for c in ds.metadata.ome.omero.channels] == ["A", "A"]  # type: ignore[union-attr]
        async with ngio_async.create_like_async(ds, tmp_path / "b.zarr") as copy:  # copied as is
            assert [c.label for c in copy.metadata.ome.omero.channels] == ["A", "A"]  # type: ignore[union-attr]


def test_convert_keeps_channels_a_tiff_names_alike(tmp_path: Path) -> None:
    """An OME-TIFF naming two channels alike converts as it is (its names kept)."""
    tifffile = pytest.importorskip("tifffile")
    src = tmp_path / "twice.ome.tif"
    data = np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16)
    tifffile.imwrite(
        src, data, ome=True, metadata={"axes": "CYX", "Channel": {"Name": ["Cy5", "Cy5"]}}
    )
    ngio_async.convert_sync(src, tmp_path / "o.zarr")
    with ngio_async.open(tmp_path / "o.zarr") as ds:
        assert [c.label for c in ds.metadata.channels] == ["Cy5", "Cy5"]
        np.testing.assert_array_equal(ds.read(), data)


async def test_masked_stream_refuses_level_at_the_call(tmp_path: Path) -> None:
    async with ngio_async.create_async(
        tmp_path / "a.zarr", shape=(16, 16), dtype="uint8", axes="yx", levels=2
    ) as ds:
        lab = await ds.labels.create("n", dtype="uint16")
        await lab.write(np.pad(np.ones((4, 4), np.uint16), 6), pyramid=True)
        await lab.aclose()
        async with ds.masked("n") as m:
            with pytest.raises(TypeError, match=r"takes no level=: give it to ds.masked"):
                m.stream(level=1)
            assert [r.data.shape async for r in m.stream()] == [(4, 4)]
