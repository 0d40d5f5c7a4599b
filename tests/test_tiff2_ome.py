"""OME-TIFFs as microscopes and Bio-Formats write them, converted: physical sizes and time
increments in any OME unit, signed RGBA channel colors, planes in any ``DimensionOrder``."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

import ngio_async
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _ome_xml(order: str, sizes: dict[str, int], pixels: str, channels: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}">'
        f'<Image ID="Image:0" Name="img"><Pixels ID="Pixels:0" DimensionOrder="{order}" '
        f'Type="uint16" SizeX="{sizes["X"]}" SizeY="{sizes["Y"]}" SizeZ="{sizes["Z"]}" '
        f'SizeC="{sizes["C"]}" SizeT="{sizes["T"]}" {pixels}>{channels}'
        f'<TiffData IFD="0" PlaneCount="{sizes["Z"] * sizes["C"] * sizes["T"]}"/>'
        "</Pixels></Image></OME>"
    )


def _write(
    path: Path, tczyx: np.ndarray[Any, Any], order: str, pixels: str = "", **kw: Any
) -> Path:
    """``tczyx`` as an OME-TIFF of one plane per page, in ``order``'s plane order."""
    nt, nc, nz, ny, nx = tczyx.shape
    sizes = {"T": nt, "C": nc, "Z": nz, "Y": ny, "X": nx}
    slow_first = order[:1:-1]  # "XYCZT": T, Z, C (C fastest)
    planes = [
        tczyx[d["T"], d["C"], d["Z"]]
        for idx in itertools.product(*(range(sizes[a]) for a in slow_first))
        for d in [dict(zip(slow_first, idx, strict=True))]
    ]
    channels = kw.pop("channels", "")
    xml = _ome_xml(order, sizes, pixels, channels)
    tifffile.imwrite(
        path,
        np.stack(planes),
        description=xml.encode(),
        metadata=None,
        photometric="minisblack",
        **kw,
    )
    return path


def _data(shape: tuple[int, ...] = (2, 2, 3, 8, 10)) -> np.ndarray[Any, Any]:
    return (np.arange(int(np.prod(shape))) * 7 % 60000).reshape(shape).astype(np.uint16)


@pytest.mark.parametrize(("order", "compression"), [("XYCZT", None), ("XYTCZ", "zlib")])
def test_planes_in_any_dimension_order_land_where_they_belong(
    tmp_path: Path, order: str, compression: str | None
) -> None:
    data = _data()
    src = _write(tmp_path / "o.ome.tif", data, order, compression=compression)
    ngio_async.convert_sync(src, tmp_path / "o.zarr")
    with ngio_async.open(tmp_path / "o.zarr") as ds:
        assert ds.axes == ("t", "c", "z", "y", "x")
        np.testing.assert_array_equal(ds[...], data)


@pytest.mark.parametrize(
    ("xy", "z", "t", "expected"),
    [
        ("nm", "µm", "ms", ("millisecond", "micrometer", "nanometer")),
        ("\u03bcm", "mm", "min", ("minute", "millimeter", "micrometer")),  # Greek mu
        ("Å", "nm", "µs", ("microsecond", "nanometer", "angstrom")),
        ("pm", "cm", "h", ("hour", "centimeter", "picometer")),
        ("Mm", "m", "Ms", ("megasecond", "meter", "megameter")),  # not milli-
        ("µm", "µm", "ps", ("picosecond", "micrometer", "micrometer")),
    ],
)
def test_physical_sizes_and_time_increments_keep_their_units(
    tmp_path: Path, xy: str, z: str, t: str, expected: tuple[str, str, str]
) -> None:
    pixels = (
        f'PhysicalSizeX="0.5" PhysicalSizeXUnit="{xy}" PhysicalSizeY="0.25" '
        f'PhysicalSizeYUnit="{xy}" PhysicalSizeZ="2.0" PhysicalSizeZUnit="{z}" '
        f'TimeIncrement="1.5" TimeIncrementUnit="{t}"'
    )
    data = _data((2, 1, 3, 8, 10))
    src = _write(tmp_path / "u.ome.tif", data, "XYZCT", pixels)
    ngio_async.convert_sync(src, tmp_path / "u.zarr")
    with ngio_async.open(tmp_path / "u.zarr") as ds:
        assert ds.axes == ("t", "z", "y", "x")
        cal = ds.metadata.spatial_calibration[0]
        assert cal.scale == (1.5, 2.0, 0.25, 0.5)
        tu, zu, xyu = expected
        assert [a.unit for a in cal.axes] == [tu, zu, xyu, xyu]


def test_signed_rgba_colors_and_names_become_the_channels(tmp_path: Path) -> None:
    # OME Color is a signed 32-bit RGBA integer: -16776961 is 0xFF0000FF, opaque red
    colors = [-16776961, 16711935, 65535, -1]  # red, green, blue, white
    channels = "".join(
        f'<Channel ID="Channel:0:{i}" Name="ch{i}" Color="{c}" EmissionWavelength="{500 + i}" '
        'SamplesPerPixel="1"/>'
        for i, c in enumerate(colors)
    )
    data = _data((1, 4, 1, 8, 10))
    src = _write(tmp_path / "c.ome.tif", data, "XYZCT", channels=channels)
    ngio_async.convert_sync(src, tmp_path / "c.zarr")
    with ngio_async.open(tmp_path / "c.zarr") as ds:
        assert ds.axes == ("c", "y", "x")
        assert [c.label for c in ds.metadata.channels] == ["ch0", "ch1", "ch2", "ch3"]
        assert [c.color for c in ds.metadata.channels] == ["FF0000", "00FF00", "0000FF", "FFFFFF"]


def _aborted(path: Path) -> np.ndarray[Any, Any]:
    """An OME-TIFF whose OME-XML lists 5 z planes, 3 of them written (an aborted stack)."""
    data = _data((1, 1, 5, 8, 10))
    _write(path, data, "XYZCT")
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    assert xml is not None
    tifffile.imwrite(
        path, data[0, 0, :3], description=xml.encode(), metadata=None, photometric="minisblack"
    )
    stack: np.ndarray[Any, Any] = data[0, 0]
    return stack


def test_planes_the_ome_xml_lists_but_the_file_lacks_are_zeros_with_a_warning(
    tmp_path: Path,
) -> None:
    # they were converted as zeros without a word: a stack that looks complete
    planes = _aborted(tmp_path / "a.ome.tif")
    with pytest.warns(MetadataWarning, match=r"a\.ome\.tif: planes 3 to 4 of the 5"):
        ngio_async.convert_sync(tmp_path / "a.ome.tif", tmp_path / "a.zarr")
    with ngio_async.open(tmp_path / "a.zarr") as ds:
        assert ds.shape == (5, 8, 10)
        np.testing.assert_array_equal(ds[:3], planes[:3])
        assert not ds[3:].any()


def test_the_command_line_says_which_planes_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_run import run

    _aborted(tmp_path / "a.ome.tif")
    code, _, err = run(["convert", str(tmp_path / "a.ome.tif"), str(tmp_path / "a.zarr")], capsys)
    assert code == 0, err
    assert "planes 3 to 4 of the 5 planes" in err, err


def _image(i: int, name: str, ifd: int, planes: int, pixel: float) -> str:
    return (
        f'<Image ID="Image:{i}" Name="{name}"><Pixels ID="Pixels:{i}" DimensionOrder="XYZCT" '
        f'Type="uint16" SizeX="10" SizeY="8" SizeZ="{planes}" SizeC="1" SizeT="1" '
        f'PhysicalSizeX="{pixel}" PhysicalSizeY="{pixel}">'
        f'<Channel ID="Channel:{i}:0" Name="{name}-dapi" SamplesPerPixel="1"/>'
        f'<TiffData IFD="{ifd}" PlaneCount="{planes}"/></Pixels></Image>'
    )


def _ghost_file(root: Path) -> np.ndarray[Any, Any]:
    """``g.ome.tif``: Images a (2 planes), ghost (its planes in no page), c (3 planes)."""
    xml = (
        f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{NS}">'
        + _image(0, "a", 0, 2, 0.1)
        + _image(1, "ghost", 50, 2, 0.2)
        + _image(2, "c", 2, 3, 0.3)
        + "</OME>"
    )
    data: np.ndarray[Any, Any] = _data((1, 1, 5, 8, 10))[0, 0]
    with tifffile.TiffWriter(root / "g.ome.tif") as tif:
        for i, plane in enumerate(data):
            description = xml if i == 0 else None
            tif.write(plane, description=description, metadata=None, photometric="minisblack")
    return data


def test_each_series_takes_its_own_images_metadata_when_an_image_has_no_pages(
    tmp_path: Path,
) -> None:
    # tifffile skips an Image none of whose planes is in the file: the series after it took
    # the calibration and channel names of the Image before (the skipped one's)
    data = _ghost_file(tmp_path)
    result = ngio_async.convert_sync(tmp_path / "g.ome.tif", tmp_path / "g.zarr")
    assert result.series == ("0", "1")
    with ngio_async.open(tmp_path / "g.zarr" / "1") as ds:
        np.testing.assert_array_equal(ds[...], data[None, 2:])
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 1.0, 0.3, 0.3)
        assert [c.label for c in ds.metadata.channels] == ["c-dapi"]
    with ngio_async.open(tmp_path / "g.ome.tif", series=1) as tif:
        assert [c.label for c in tif.metadata.channels] == ["c-dapi"]


def test_each_series_of_a_remote_ome_tiff_takes_its_own_images_metadata(
    http_server: StaticServer, http_root: Path
) -> None:
    _ghost_file(http_root)
    with ngio_async.open(http_server.url + "g.ome.tif?sig=abc", series=1) as tif:
        assert [c.label for c in tif.metadata.channels] == ["c-dapi"]
        assert tif.metadata.spatial_calibration[0].scale == (1.0, 1.0, 0.3, 0.3)


def _planes_xml(deltas: list[float], unit: str) -> str:
    return "".join(
        f'<Plane TheZ="0" TheC="0" TheT="{t}" DeltaT="{d}" DeltaTUnit="{unit}"/>'
        for t, d in enumerate(deltas)
    )


@pytest.mark.parametrize(
    ("deltas", "unit", "expected"),
    [
        ([0.0, 30.2, 59.9, 90.1], "s", (30.033333333333335, "second")),  # jitter: the mean
        ([5.0, 255.0, 505.0, 755.0], "ms", (250.0, "millisecond")),
        ([0.0, 10.0, 60.0, 70.0], "s", None),  # irregular: no one interval
    ],
)
def test_without_a_time_increment_the_planes_delta_t_gives_the_interval(
    tmp_path: Path, deltas: list[float], unit: str, expected: tuple[float, str] | None
) -> None:
    # Zeiss / Nikon exports give each plane's DeltaT and no TimeIncrement: t had scale 1, no unit
    data = _data((4, 1, 1, 8, 10))
    src = _write(tmp_path / "t.ome.tif", data, "XYZCT", channels=_planes_xml(deltas, unit))
    ngio_async.convert_sync(src, tmp_path / "t.zarr")
    with ngio_async.open(tmp_path / "t.zarr") as ds:
        assert ds.axes == ("t", "y", "x")
        t = ds.metadata.spatial_calibration[0].axes[0]
    if expected is None:
        assert (t.scale, t.unit) == (1.0, None)
    else:
        assert t.scale == pytest.approx(expected[0])
        assert t.unit == expected[1]


def test_an_ome_xml_with_a_bare_ampersand_is_mended_with_a_warning(tmp_path: Path) -> None:
    # a channel named "GFP & RFP" (unescaped, as some writers leave it) and a control
    # character: the XML did not parse, tifffile read plain pages, calibration and names lost
    channels = '<Channel ID="Channel:0:0" Name="GFP & RFP\x01" SamplesPerPixel="1"/>'
    pixels = 'PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeZ="2.0"'
    data = _data((1, 1, 3, 8, 10))
    src = _write(tmp_path / "amp.ome.tif", data, "XYZCT", pixels, channels=channels)
    with pytest.warns(MetadataWarning, match=r"amp\.ome\.tif: its OME-XML does not parse"):
        ngio_async.convert_sync(src, tmp_path / "amp.zarr")
    with ngio_async.open(tmp_path / "amp.zarr") as ds:
        assert ds.axes == ("c", "z", "y", "x")
        np.testing.assert_array_equal(ds[...], data[0])
        assert ds.metadata.spatial_calibration[0].scale == (1.0, 2.0, 0.5, 0.5)
        assert [c.label for c in ds.metadata.channels] == ["GFP & RFP"]


def test_an_ome_xml_that_cannot_be_mended_is_named_in_a_warning(tmp_path: Path) -> None:
    data = _data((1, 1, 3, 8, 10))
    src = tmp_path / "broken.ome.tif"
    xml = _ome_xml("XYZCT", {"X": 10, "Y": 8, "Z": 3, "C": 1, "T": 1}, "", "")
    broken = xml.replace("</Pixels>", "")  # a closing tag missing
    tifffile.imwrite(
        src, data[0, 0], description=broken.encode(), metadata=None, photometric="minisblack"
    )
    with pytest.warns(MetadataWarning, match=r"broken\.ome\.tif: its OME-XML does not parse .*"):
        ngio_async.convert_sync(src, tmp_path / "broken.zarr")
    with ngio_async.open(tmp_path / "broken.zarr") as ds:  # its pages, as they are
        np.testing.assert_array_equal(ds[...], data[0, 0])


@pytest.mark.parametrize(
    ("color", "axes"), [(16711935, ("c", "z", "y", "x")), (-1, ("z", "y", "x"))]
)
def test_the_color_of_a_single_unnamed_channel_is_kept(
    tmp_path: Path, color: int, axes: tuple[str, ...]
) -> None:
    # a green single channel (0x00FF00FF) without a name was shown grey: its color dropped
    # with the channel axis tifffile squeezes; a white one needs no axis
    channels = f'<Channel ID="Channel:0:0" Color="{color}" SamplesPerPixel="1"/>'
    data = _data((1, 1, 3, 8, 10))
    src = _write(tmp_path / "g.ome.tif", data, "XYZCT", channels=channels)
    ngio_async.convert_sync(src, tmp_path / "g.zarr")
    with ngio_async.open(tmp_path / "g.zarr") as ds:
        assert ds.axes == axes
        if "c" in axes:
            assert [c.color for c in ds.metadata.channels] == ["00FF00"]
            np.testing.assert_array_equal(ds[...], data[0])
