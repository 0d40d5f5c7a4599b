"""ngio 1.1.3's image operations in ngio_async, compared with ngio on the same images (NGFF 0.4
and 0.5): channel windows from percentiles, the whole image's ROI table, the image's name, its
axis names and units (ngio's ``set_space_unit`` / ``set_time_unit`` are ``set_scale(units=)``)."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async import ReadOnlyError

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore")]


def _data() -> Any:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 1000, (2, 3, 32, 40)).astype(np.uint16)
    data[1, :, :16] = 0  # zeros are left out
    return data


def _ngio_image(path: Path, version: str, chunks: tuple[int, ...] = (1, 3, 32, 40)) -> Any:
    import ngio

    c: Any = ngio.create_ome_zarr_from_array(
        str(path),
        _data(),
        pixelsize=0.5,
        z_spacing=2.0,
        levels=2,
        axes_names="czyx",
        chunks=chunks,
        ngff_version=version,  # type: ignore[arg-type]
    )
    c.derive_label("nuclei")
    return c


def _windows(ds: Any) -> list[tuple[float, float]]:
    return [(ch.window.start, ch.window.end) for ch in ds.metadata.ome.omero.channels]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_percentile_windows_match_ngio(tmp_path: Path, version: str) -> None:
    c = _ngio_image(tmp_path / "a.zarr", version)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        qs: list[Any] = [(0.1, 99.9), (1.0, 99.0), [(5.0, 95.0), (50.0, 50.5)]]
        for q in qs:
            c.set_channel_windows_with_percentiles(q)
            want = [
                (ch.channel_visualisation.start, ch.channel_visualisation.end)
                for ch in c.get_image().channels_meta.channels
            ]
            await ds.set_channels(windows="percentiles", percentiles=q)
            assert _windows(ds) == want
        await ds.set_channels(windows="percentiles")  # ngio's default (0.1, 99.9)
        c.set_channel_windows_with_percentiles()
        assert _windows(ds) == [
            (ch.channel_visualisation.start, ch.channel_visualisation.end)
            for ch in c.get_image().channels_meta.channels
        ]
        with pytest.raises(ValueError, match="percentiles"):
            await ds.set_channels(windows="percentiles", percentiles=[(1.0, 99.0)])
        with pytest.raises(ValueError, match="start < end"):
            await ds.set_channels(windows="percentiles", percentiles=(99.0, 1.0))


async def test_percentiles_are_exact_over_a_level_of_many_chunks(tmp_path: Path) -> None:
    """The lowest level in 12 chunks (ngio's dask merge of per-chunk percentiles only
    approximates there): numpy's nearest percentile of all the values above zero."""
    _ngio_image(tmp_path / "a.zarr", "0.5", chunks=(1, 1, 8, 8))
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        low = await ds.read(level=1)
        await ds.set_channels(windows="percentiles", percentiles=(1.0, 99.0))
        want = []
        for ch in low:
            v = ch[ch > 0]
            want.append(tuple(float(x) for x in np.percentile(v, [1.0, 99.0], method="nearest")))
        assert _windows(ds) == want


async def test_degenerate_percentile_windows_as_ngio(tmp_path: Path) -> None:
    import ngio

    data = np.zeros((3, 1, 16, 16), np.uint8)
    data[1, 0, 0, 0] = 5  # sparse: the percentiles coincide (0 left out: one value)
    data[2] = 7  # constant
    c: Any = ngio.create_ome_zarr_from_array(
        str(tmp_path / "a.zarr"), data, pixelsize=1.0, levels=1, axes_names="czyx"
    )
    c.set_channel_windows_with_percentiles()
    want = [
        (ch.channel_visualisation.start, ch.channel_visualisation.end)
        for ch in c.get_image().channels_meta.channels
    ]
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        await ds.set_channels(windows="percentiles")
        assert _windows(ds) == want == [(0.0, 1.0), (0.0, 5.0), (0.0, 7.0)]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_image_roi_table_matches_ngio(tmp_path: Path, version: str) -> None:
    c = _ngio_image(tmp_path / "a.zarr", version)
    c.add_table("theirs", c.build_image_roi_table())
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        roi = ds.image_roi()
        await ds.tables.write_rois("mine", [roi])
        assert await ds.tables.rois("mine") == await ds.tables.rois("theirs")
        mine, theirs = await ds.tables.read("mine"), await ds.tables.read("theirs")
        for k, col in theirs.columns.items():
            np.testing.assert_array_equal(mine.columns[k], col)
        assert roi.ranges == {"x": (0.0, 20.0), "y": (0.0, 16.0), "z": (0.0, 6.0)}
        np.testing.assert_array_equal((await ds.read_roi(roi)).data, _data())
    import ngio

    table: Any = ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).get_table("mine")
    rois = table.rois()
    assert [(r.name, r.get("x").length, r.get("z").length) for r in rois] == [("image", 20, 6)]


async def test_image_roi_of_a_time_series_as_ngio(tmp_path: Path) -> None:
    import ngio

    c: Any = ngio.create_ome_zarr_from_array(
        str(tmp_path / "t.zarr"),
        np.zeros((3, 32, 40), np.uint8),
        pixelsize=0.5,
        time_spacing=2.0,
        axes_names="tyx",
        levels=1,
    )
    c.add_table("theirs", c.build_image_roi_table(name="all"))
    async with ngio_async.open_async(tmp_path / "t.zarr", mode="r+") as ds:
        await ds.tables.write_rois("mine", [ds.image_roi("all")])
        mine, theirs = await ds.tables.read("mine"), await ds.tables.read("theirs")
        assert mine.columns.keys() == theirs.columns.keys()
        for k, col in theirs.columns.items():
            np.testing.assert_array_equal(mine.columns[k], col)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_set_name_as_ngio(tmp_path: Path, version: str) -> None:
    import ngio

    _ngio_image(tmp_path / "a.zarr", version)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    ngio.open_ome_zarr_container(str(tmp_path / "a.zarr")).set_name("renamed")
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        await ds.set_name("renamed")
        assert ds.metadata.multiscale.name == "renamed"
        with pytest.raises(TypeError, match="string"):
            await ds.set_name(3)  # type: ignore[arg-type]
    for p in ("a.zarr", "b.zarr"):
        assert ngio.open_ome_zarr_container(str(tmp_path / p)).get_image().meta.name == "renamed"
    async with ngio_async.open_async(tmp_path / "b.zarr") as ds:
        assert ds.metadata.multiscale.name == "renamed"
        with pytest.raises(ReadOnlyError):
            await ds.set_name("again")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_space_and_time_units_are_set_scale_units(tmp_path: Path, version: str) -> None:
    """ngio's set_space_unit / set_time_unit (labels too): ``set_scale(units=...)``."""
    import ngio

    c: Any = ngio.create_ome_zarr_from_array(
        str(tmp_path / "a.zarr"),
        np.zeros((2, 3, 16, 16), np.uint8),
        pixelsize=0.5,
        axes_names="tzyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )
    c.derive_label("nuclei")
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    c.set_space_unit("nanometer")
    c.set_time_unit("millisecond")
    async with ngio_async.open_async(tmp_path / "b.zarr", mode="r+") as ds:
        await ds.set_scale(units="nanometer")
        await ds.set_scale(units={"t": "millisecond"})
    for name in ("a.zarr", "b.zarr"):
        theirs = ngio.open_ome_zarr_container(str(tmp_path / name))
        for image in (theirs.get_image(), theirs.get_label("nuclei")):
            assert (image.space_unit, image.time_unit) == ("nanometer", "millisecond")


def _zarr_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_set_axes_names_renames_levels_and_labels(tmp_path: Path, version: str) -> None:
    import zarr

    _ngio_image(tmp_path / "a.zarr", version)
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        with pytest.raises(ValueError, match="unique"):
            await ds.set_axes_names(["c", "z", "x", "x"])
        with pytest.raises(ValueError, match="4 axes"):
            await ds.set_axes_names(["c", "x"])
        await ds.set_axes_names({"c": "channel", "z": "depth"})
        assert ds.axes == ("channel", "depth", "y", "x")
        np.testing.assert_array_equal(await ds.read(channel=1, depth=2), _data()[1, 2])
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        assert ds.axes == ("channel", "depth", "y", "x")
        assert [a.type for a in ds.metadata.axes] == ["channel", "space", "space", "space"]
        assert [a.unit for a in ds.metadata.axes][1:] == ["micrometer"] * 3
        async with ds.labels.open("nuclei") as lab:
            assert lab.axes == ("depth", "y", "x")
    if version == "0.5":  # the levels' dimension_names follow (0.5: they MUST be the axes')
        for level in ("0", "1"):
            doc = _zarr_json(tmp_path / "a.zarr" / level / "zarr.json")
            assert doc["dimension_names"] == ["channel", "depth", "y", "x"]
            arr = zarr.open_array(str(tmp_path / "a.zarr" / level))
            assert arr.metadata.dimension_names == ("channel", "depth", "y", "x")  # type: ignore[union-attr]
        doc = _zarr_json(tmp_path / "a.zarr" / "labels" / "nuclei" / "0" / "zarr.json")
        assert doc["dimension_names"] == ["depth", "y", "x"]


async def test_metadata_edits_and_windows_on_s3(s3_server: S3Server) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = s3_server.options()
    data = _data()
    async with ngio_async.create_async(
        url, shape=data.shape, dtype="uint16", axes="czyx", scale=0.5, levels=1, **options
    ) as ds:
        await ds.write(data)
        await ds.labels.create("nuclei")
    async with ngio_async.open_async(url, mode="r+", **options) as ds:
        await ds.set_channels(windows="percentiles", percentiles=(1.0, 99.0))
        await ds.set_name("on s3")
        await ds.tables.write_rois("image_ROI_table", [ds.image_roi()])
        await ds.set_axes_names({"z": "depth"})
    async with ngio_async.open_async(url, **options) as ds:
        want = [
            tuple(float(x) for x in np.percentile(ch[ch > 0], [1.0, 99.0], method="nearest"))
            for ch in data
        ]
        assert _windows(ds) == want
        assert ds.metadata.multiscale.name == "on s3"
        assert ds.axes == ("c", "depth", "y", "x")
        async with ds.labels.open("nuclei") as lab:
            assert lab.axes == ("depth", "y", "x")
        [roi] = await ds.tables.rois("image_ROI_table")
        assert roi.ranges == {"x": (0.0, 20.0), "y": (0.0, 16.0), "z": (0.0, 1.5)}


async def test_a_failed_axis_rename_puts_the_levels_back(tmp_path: Path) -> None:
    """Fault injection: the group document's write fails after the 0.5 levels' were renamed;
    they are put back, and the image opens as before."""
    _ngio_image(tmp_path / "a.zarr", "0.5")
    async with ngio_async.open_async(tmp_path / "a.zarr", mode="r+") as ds:
        real = ds._edit_metadata

        async def failing(edit: Any) -> None:
            raise OSError("injected: the group write fails")

        ds._edit_metadata = failing  # type: ignore[method-assign]
        try:
            with pytest.raises(OSError, match="injected"):
                await ds.set_axes_names({"z": "depth"})
        finally:
            ds._edit_metadata = real  # type: ignore[method-assign]
    for level in ("0", "1"):
        doc = _zarr_json(tmp_path / "a.zarr" / level / "zarr.json")
        assert doc["dimension_names"] == ["c", "z", "y", "x"]
    async with ngio_async.open_async(tmp_path / "a.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")


def test_blocking_twins(tmp_path: Path) -> None:
    _ngio_image(tmp_path / "a.zarr", "0.5")
    with ngio_async.open(tmp_path / "a.zarr", mode="r+") as ds:
        ds.set_channels(windows="percentiles", percentiles=(1.0, 99.0))
        ds.set_name("blocking")
        assert ds.image_roi().ranges["x"] == (0.0, 20.0)
        ds.set_axes_names(["c", "z", "y", "x"])  # nothing renamed: nothing written
    with ngio_async.open(tmp_path / "a.zarr") as ds:
        assert ds.metadata.multiscale.name == "blocking"
        assert _windows(ds) == [
            tuple(float(x) for x in np.percentile(ch[ch > 0], [1.0, 99.0], method="nearest"))
            for ch in ds.read(level=1)  # the lowest level
        ]


async def test_image_roi_units(tmp_path: Path) -> None:
    """A ROI is in the image's stored units on every axis (ngio's numbers: z in nanometres
    here); an image without units gives its stored numbers too."""
    async with ngio_async.create_async(
        tmp_path / "a.zarr",
        shape=(3, 4, 8, 8),
        dtype="uint8",
        axes="tzyx",
        scale={"t": 5.0, "y": 2.0, "x": 2.0},
        units={"t": "millisecond", "z": "nanometer", "y": "micrometer", "x": "micrometer"},
    ) as ds:
        roi = ds.image_roi()
        assert roi.ranges == {"z": (0.0, 4.0), "y": (0.0, 16.0), "x": (0.0, 16.0)}
        assert roi.time == (0.0, 15.0)
    async with ngio_async.create_async(
        tmp_path / "b.zarr", shape=(8, 8), dtype="uint8", axes="yx", scale=2.0, units=None
    ) as ds:
        assert ds.image_roi().ranges == {"y": (0.0, 16.0), "x": (0.0, 16.0), "z": (0.0, 1.0)}


async def test_percentile_windows_are_refused_before_any_read(tmp_path: Path) -> None:
    """A mistake in another argument, or in the percentiles, is raised before the lowest
    level is read (no request at all)."""
    from ngio_async.stores import InstrumentedStore, open_store

    _ngio_image(tmp_path / "a.zarr", "0.5")
    store = InstrumentedStore(open_store(str(tmp_path / "a.zarr")))
    async with ngio_async.open_async(store, mode="r+") as ds:
        store.reset()
        with pytest.raises(ValueError, match="labels: 1 values for 2 channels"):
            await ds.set_channels(labels=["one"], windows="percentiles")
        with pytest.raises(ValueError, match="0 <= start < end <= 100"):
            await ds.set_channels(windows="percentiles", percentiles=(1.0, 101.0))
        with pytest.raises(ValueError, match="'auto', 'percentiles'"):
            await ds.set_channels(windows="percentile")  # type: ignore[arg-type]
        assert store.total_requests == 0
