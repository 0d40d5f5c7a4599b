"""Interop edges: metadata other tools write that breaks a rule in a way that is unambiguous to
mend (a CSS ``#RRGGBB`` color), and the calls a user of peer tools writes the way those tools
take them (label properties keyed by value, as ``colors`` are)."""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest

import ngio_async
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    from pathlib import Path


def _image_with_colors(path: Path, colors: list[str]) -> None:
    """A 0.4 cyx uint8 image whose omero channel colors are ``colors`` as given."""
    with ngio_async.create(
        path,
        shape=(len(colors), 8, 8),
        dtype="uint8",
        axes="cyx",
        channels=[f"ch{i}" for i in range(len(colors))],
        ngff_version="0.4",
    ) as ds:
        ds.write(np.ones((len(colors), 8, 8), "uint8"))
    attrs = json.loads((path / ".zattrs").read_text())
    for channel, color in zip(attrs["omero"]["channels"], colors, strict=True):
        channel["color"] = color
    (path / ".zattrs").write_text(json.dumps(attrs))


def test_convert_mends_a_css_color_to_its_hex_digits(tmp_path: Path) -> None:
    """A channel color written ``#FF0000`` (or ``#RRGGBBAA``) converts as ``FF0000``, not white."""
    src, dst = tmp_path / "src.zarr", tmp_path / "dst.zarr"
    _image_with_colors(src, ["#FF0000", "#00ff0080"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(src, dst, ngff_version="0.5")
    assert any("is read as '00ff00'" in str(w.message) for w in seen)  # mended at open
    with ngio_async.open(dst) as ds:
        assert [c.color for c in ds.metadata.channels] == ["FF0000", "00ff00"]
        assert [c.label for c in ds.metadata.channels] == ["ch0", "ch1"]


@pytest.mark.parametrize("broken", ["css color", "window without min/max"])
def test_open_keeps_the_channels_of_a_mendable_omero_block(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "img.zarr"
    _image_with_colors(path, ["#FF0000" if broken == "css color" else "FF0000", "00FF00"])
    if broken != "css color":
        attrs = json.loads((path / ".zattrs").read_text())
        attrs["omero"]["channels"][1]["window"] = {"start": 0, "end": 200}
        (path / ".zattrs").write_text(json.dumps(attrs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        ds = ngio_async.open(path)
    with ds:
        assert [c.label for c in ds.metadata.channels] == ["ch0", "ch1"]
        assert ds.metadata.channels[0].color == "FF0000"
        assert ds.read(c="ch1").shape == (8, 8)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_label_properties_keyed_by_value(tmp_path: Path, version: str) -> None:
    """``properties={value: {...}}`` as ``colors={value: rgba}``; a wrong entry is a TypeError
    naming it (was: "argument of type 'int' is not iterable")."""
    async with ngio_async.create_async(
        tmp_path / "img.zarr",
        shape=(8, 8),
        dtype="uint8",
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:
        label = await ds.labels.create(
            "cells",
            dtype="uint16",
            colors={1: [255, 0, 0, 255]},
            properties={1: {"class": "nucleus", "area": 4}},
        )
        await label.aclose()
        label = await ds.labels.open("cells")
        try:
            image_label = label.metadata.ome.image_label
            assert image_label is not None and image_label.properties is not None
            prop = image_label.properties[0]
            assert (prop.label_value, prop.extra) == (1, {"class": "nucleus", "area": 4})
        finally:
            await label.aclose()
        with pytest.raises(TypeError, match=r"properties\[2\]: expected a dict"):
            await ds.labels.create("bad", properties={2: "nucleus"})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match=r"properties\[0\]: expected a dict"):
            await ds.labels.create("bad", properties=[3])  # type: ignore[list-item]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_field_added_to_an_ome_zarr_py_plate_has_its_levels(tmp_path: Path, version: str) -> None:
    """ome-zarr-py reads every field with the first field's levels (s0, s1): a field added
    without ``levels=`` had one level (32 x 32 is below the default's 256), and its well read
    as missing at s1 ("Failed to load A/2/0/s1", zeros)."""
    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url  # type: ignore[import-untyped]
    from ome_zarr.reader import Reader  # type: ignore[import-untyped]
    from test_plate import write_with_ome_zarr_py

    path = tmp_path / "omz.zarr"
    write_with_ome_zarr_py(path, version)  # A/1 (fields 0, 1), B/2; 1 x 32 x 32, 2 levels
    with ngio_async.open_plate(path, mode="r+") as plate:
        with plate.add_image(
            "A", "2", field="0", shape=(1, 32, 32), dtype="uint8", axes="cyx"
        ) as ds:
            ds.write(np.full((1, 32, 32), 99, np.uint8), pyramid=True)
            assert ds.metadata.paths == ("s0", "s1")
        with plate.add_image(
            "B", "1", field="0", shape=(1, 32, 32), dtype="uint8", axes="cyx", levels=1
        ) as ds:
            assert ds.metadata.paths == ("s0",)  # levels= given: as asked
    nodes = list(Reader(parse_url(str(path)))())
    np.testing.assert_array_equal(np.asarray(nodes[0].data[1])[0, :16, 16:], 99)  # A/2 at s1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_set_scale_keeps_a_coarser_label_aligned(tmp_path: Path) -> None:
    """ome-zarr-py (and ngio) write label images at a lower resolution than their image: a
    32 x 32 label at 1.0 um over a 64 x 64 image at 0.5 um. Halving the image's pixel size
    must halve the label's (0.5 um), not set it to the image's (0.25 um: half the extent)."""
    pytest.importorskip("ome_zarr")
    import zarr
    from ome_zarr.format import FormatV04  # type: ignore[import-untyped]
    from ome_zarr.writer import write_image, write_labels  # type: ignore[import-untyped]

    path = tmp_path / "img.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(
        np.ones((64, 64), "uint8"), group, axes="yx", fmt=FormatV04(), scale={"y": 0.5, "x": 0.5}
    )
    write_labels(
        np.ones((32, 32), "uint8"),
        group,
        name="coarse",
        scaler=None,
        axes="yx",
        fmt=FormatV04(),
        scale={"y": 1.0, "x": 1.0},
    )
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_scale(0.25)
        with ds.labels.open("coarse") as label:
            assert label.metadata.spatial_calibration[0].scale == (0.5, 0.5)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_convert_says_the_tables_of_an_ngio_image_are_left_out(
    tmp_path: Path, version: str
) -> None:
    """ngio (Fractal) keeps ROI / feature tables in ``tables/`` beside the image: convert
    rewrites them (since convtables27); one it cannot convert (here: listed, never written)
    is left out, and said so once, naming it (it was silent before)."""
    import zarr

    src = tmp_path / "src.zarr"
    with ngio_async.create(src, shape=(8, 8), dtype="uint8", ngff_version=version) as ds:
        ds.write(np.ones((8, 8), "uint8"))
    tables = zarr.open_group(
        str(src / "tables"), mode="w", zarr_format=2 if version == "0.4" else 3
    )
    tables.attrs["tables"] = ["FOV_ROI_table"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(src, tmp_path / "dst.zarr")
    said = [str(w.message) for w in seen if "FOV_ROI_table" in str(w.message)]
    assert len(said) == 1 and "left out" in said[0]
    with warnings.catch_warnings(record=True) as seen:  # none: no warning
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(tmp_path / "dst.zarr", tmp_path / "again.zarr")
    assert not [w for w in seen if "table" in str(w.message)]


@pytest.mark.filterwarnings("ignore")
def test_convert_keeps_the_tables_of_a_plate_s_fields(tmp_path: Path) -> None:
    """ngio's plate fields with a ROI table each: convert rewrites them (they were left out,
    said once for the plate, before convtables27)."""
    ngio = pytest.importorskip("ngio")
    from ngio import ImageInWellPath

    path = tmp_path / "plate.zarr"
    images = [ImageInWellPath(row="A", column=c, path="0") for c in (1, 2)]
    plate = ngio.create_empty_plate(str(path), name="p", images=images, ngff_version="0.5")
    for im in images:
        store = plate.get_image_store(im.row, im.column, im.path)
        container = ngio.create_synthetic_ome_zarr(
            store, shape=(1, 16, 16), levels=1, axes_names="cyx", ngff_version="0.5"
        )
        container.add_table("FOV_ROI_table", container.build_image_roi_table("FOV"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", MetadataWarning)
        ngio_async.convert_sync(path, tmp_path / "dst.zarr")
    assert not [w for w in seen if "table" in str(w.message)]
    for column in ("01", "02"):
        with (
            ngio_async.open(path / "A" / column / "0") as src,
            ngio_async.open(tmp_path / "dst.zarr" / "A" / column / "0") as ds,
        ):
            assert "FOV_ROI_table" in ds.tables.names()
            assert sorted(ds.tables.names()) == sorted(src.tables.names())


@pytest.mark.parametrize(
    ("data_type", "hint"),
    [("<u2", "did you mean 'uint16'"), ("Float32", "did you mean 'float32'"), ("uint17", "one of")],
)
def test_a_wrong_v3_data_type_names_the_field_and_the_names(
    tmp_path: Path, data_type: str, hint: str
) -> None:
    """Hand-written or v2-minded zarr.json (``"data_type": "<u2"``) said only "not supported"."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(8, 8), dtype="uint16", ngff_version="0.5") as ds:
        ds.write(np.ones((8, 8), "uint16"))
    doc = json.loads((path / "0" / "zarr.json").read_text())
    doc["data_type"] = data_type
    (path / "0" / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(ngio_async.UnsupportedError, match=r"at \$\.data_type") as info:
        ngio_async.open(path)
    assert hint in str(info.value) and "0/zarr.json" in str(info.value)


def _pyramid_with_label(path: Path) -> None:
    """A 2-level yx image whose level 1 is not the mean of level 0 (as another tool's
    downsampling may give), with a label image whose level 1 is not the mode of its level 0."""
    with ngio_async.create(path, shape=(64, 64), dtype="uint8", levels=2, chunks=(32, 32)) as ds:
        ds.write(np.ones((64, 64), "uint8"))
        ds.levels[1][...] = 7
        with ds.labels.create("cells", dtype="uint8") as label:
            label.levels[1][...] = 5


def test_convert_to_more_levels_copies_the_source_levels(tmp_path: Path) -> None:
    """``levels=`` above the source's adds levels below its own: they were all recomputed from
    level 0 (ome-zarr-py's levels became means of it), against "copied level by level"."""
    _pyramid_with_label(tmp_path / "src.zarr")
    ngio_async.convert_sync(tmp_path / "src.zarr", tmp_path / "dst.zarr", levels=4)
    with ngio_async.open(tmp_path / "dst.zarr") as ds:
        assert [lvl.shape for lvl in ds.levels] == [(64, 64), (32, 32), (16, 16), (8, 8)]
        np.testing.assert_array_equal(ds.levels[1][...], 7)  # copied, not the mean (1)
        np.testing.assert_array_equal(ds.levels[3][...], 7)  # built from the copied level


def test_convert_to_more_levels_copies_the_source_label_levels(tmp_path: Path) -> None:
    _pyramid_with_label(tmp_path / "src.zarr")
    ngio_async.convert_sync(tmp_path / "src.zarr", tmp_path / "dst.zarr", levels=3)
    with ngio_async.open(tmp_path / "dst.zarr") as ds, ds.labels.open("cells") as label:
        assert len(label.levels) == 3
        np.testing.assert_array_equal(label.levels[1][...], 5)


def test_a_04_scale_of_the_wrong_length_names_the_document(tmp_path: Path) -> None:
    """NGFF 0.4 only warns on M6 (validate), so the error comes later, from the calibration."""
    path = tmp_path / "img.zarr"
    with ngio_async.create(path, shape=(8, 8), dtype="uint8", ngff_version="0.4") as ds:
        ds.write(np.ones((8, 8), "uint8"))
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 1, 1]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(ngio_async.MetadataError, match=r"scale") as info:
            ngio_async.open(path)
    assert ".zattrs" in str(info.value)


def test_an_int_column_finds_ngios_zero_padded_column(tmp_path: Path) -> None:
    """ngio names column 1 '01' (``ImageInWellPath(column=1)``) and takes ``column=1``: here
    ``image("B", 3)`` was "no well 'B/3'" and ``add_image("A", 3)`` "not a column"."""
    path = tmp_path / "plate.zarr"
    with ngio_async.create_plate(path, rows=["A", "B"], columns=["01", "03"]) as plate:
        for row, column in (("A", "01"), ("B", "03")):
            plate.add_image(row, column, shape=(1, 8, 8), dtype="uint8", axes="cyx").close()
    with ngio_async.open_plate(path, mode="r+") as ours:
        with ours.image("B", 3) as ds:
            assert ds.shape == (1, 8, 8)
        assert ours.well("A", 1).path == "A/01"
        with pytest.raises(ngio_async.NotFoundError, match="no well 'A/1'"):
            ours.image("A", "1")  # a name is a name: only an int is a number
        ours.add_image("A", 3, shape=(1, 8, 8), dtype="uint8", axes="cyx").close()
        assert ours.wells == ["A/01", "A/03", "B/03"]


def test_auto_windows_of_float_data_with_infinities(tmp_path: Path) -> None:
    data = np.ones((1, 32, 32), "float32")
    data[0, 0, 0], data[0, 0, 1], data[0, 1, 0] = np.inf, -np.inf, np.nan
    data[0, 5, 5] = 3.0
    with ngio_async.create(
        tmp_path / "img.zarr", shape=data.shape, dtype="float32", axes="cyx", channels=["a"]
    ) as ds:
        ds.write(data, pyramid=True)
        window = ds.metadata.channels[0].window
        assert window is not None and all(np.isfinite(window))


def _with_nan_attribute(path: Path, version: Literal["0.4", "0.5"], where: str) -> None:
    """An image whose attributes zarr-python wrote with a NaN (Python's ``json`` writes it bare:
    ``NaN``), in a key of its own or in an omero window."""
    import zarr

    with ngio_async.create(
        path,
        shape=(2, 8, 8),
        dtype="float32",
        axes="cyx",
        channels=["a", "b"],
        ngff_version=version,
    ) as ds:
        ds.write(np.ones((2, 8, 8), "float32"))
    group = zarr.open_group(str(path), mode="r+")
    if where == "own key":
        group.attrs["temperature"] = float("nan")
    else:
        attrs: dict[str, Any] = dict(group.attrs)
        body = attrs["ome"] if version == "0.5" else attrs
        body["omero"]["channels"][0]["window"]["start"] = float("nan")
        group.attrs.update(attrs)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_attribute_written_nan_by_zarr_python_opens(
    tmp_path: Path, version: Literal["0.4", "0.5"]
) -> None:
    """zarr-python and ome-zarr-py write attributes with Python's ``json`` (bare ``NaN``) and
    read them back; here the image was refused whole: "invalid JSON: JSON is malformed"."""
    path = tmp_path / "img.zarr"
    _with_nan_attribute(path, version, "own key")
    assert b"NaN" in (path / (".zattrs" if version == "0.4" else "zarr.json")).read_bytes()
    with ngio_async.open(path) as ds:
        assert [c.label for c in ds.metadata.channels] == ["a", "b"]
        assert float(ds[0, 0, 0]) == 1.0
    if version == "0.5":  # a NaN window: the omero block is left out, as other broken ones
        _with_nan_attribute(tmp_path / "window.zarr", version, "window")
        with pytest.warns(MetadataWarning, match=r"finite number, got nan"):
            ds = ngio_async.open(tmp_path / "window.zarr")
        with ds:
            assert float(ds[0, 0, 0]) == 1.0


def test_a_04_window_written_nan_by_zarr_python_opens(tmp_path: Path) -> None:
    _with_nan_attribute(tmp_path / "img.zarr", "0.4", "window")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        ds = ngio_async.open(tmp_path / "img.zarr")
    with ds:
        assert float(ds[0, 0, 0]) == 1.0


async def test_label_colors_as_hex_strings(tmp_path: Path) -> None:
    """Channel colors are hex strings here and in omero; a label color given so,
    ``{1: "#FF0000"}``, was split into characters ("Expected `array` of length <= 4")."""
    async with ngio_async.create_async(tmp_path / "img.zarr", shape=(8, 8), dtype="uint8") as ds:
        label = await ds.labels.create("cells", colors={1: "#FF0000", 2: "00ff0080"})
        await label.aclose()
        colors = await ds.labels.set_colors("cells", {1: "0000FF", 2: [1, 2, 3, 4]})
        assert [(c.label_value, c.rgba) for c in colors] == [
            (1, [0, 0, 255, 255]),
            (2, [1, 2, 3, 4]),
        ]
        with pytest.raises(ValueError, match="'#GG0000': expected 'RRGGBB'"):
            await ds.labels.create("bad", colors={1: "#GG0000"})
        label = await ds.labels.create("again", colors={1: "#FF0000", 2: "00ff0080"})
        try:
            image_label = label.metadata.ome.image_label
            assert image_label is not None and image_label.colors is not None
            rgba = [c.rgba for c in image_label.colors]
            assert rgba == [[255, 0, 0, 255], [0, 255, 0, 128]]
        finally:
            await label.aclose()
