"""World (physical) coordinates -> pixel regions per level: ``ds.world_region``,
``ds.world_extent``, ``ds.level_for``, against regions computed by hand."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pytest
import zarr

import ngio_async
from ngio_async import MetadataError
from ngio_async.images._world import SNAP
from ngio_async.meta import MetadataWarning

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def write_calibrated(
    root: Path,
    version: str,
    axes: Sequence[tuple[str, str | None, str | None]],
    levels: Sequence[tuple[Sequence[int], Sequence[float], Sequence[float] | None]],
    outer: tuple[Sequence[float], Sequence[float] | None] | None = None,
    extra: dict[str, Any] | None = None,
    dtype: str = "uint16",
    data: Sequence[np.ndarray[Any, Any]] | None = None,
) -> list[np.ndarray[Any, Any]]:
    """An image at ``root`` written with zarr-python: ``axes`` (name, type, unit); per level
    (shape, scale, translation); ``outer``: the multiscale-level scale and translation;
    ``extra``: more keys of the NGFF block. Returns each level's pixels (``data`` or
    ``arange``)."""
    fmt: Literal[2, 3] = 3 if version == "0.5" else 2
    names: dict[str, Any] = {"dimension_names": [a[0] for a in axes]} if fmt == 3 else {}
    out = []
    datasets = []
    for i, (shape, scale, translation) in enumerate(levels):
        arr = zarr.create_array(
            store=root, name=str(i), shape=tuple(shape), chunks=tuple(shape), dtype=dtype,
            zarr_format=fmt, fill_value=0,
            **names,
        )  # fmt: skip
        values = (
            data[i] if data is not None else np.arange(math.prod(shape), dtype=dtype)
        ).reshape(shape)
        arr[...] = values
        out.append(values)
        ts: list[dict[str, Any]] = [{"type": "scale", "scale": list(scale)}]
        if translation is not None:
            ts.append({"type": "translation", "translation": list(translation)})
        datasets.append({"path": str(i), "coordinateTransformations": ts})
    ms: dict[str, Any] = {
        "axes": [
            {"name": n, **({"type": t} if t else {}), **({"unit": u} if u else {})}
            for n, t, u in axes
        ],
        "datasets": datasets,
    }
    if outer is not None:
        ots: list[dict[str, Any]] = [{"type": "scale", "scale": list(outer[0])}]
        if outer[1] is not None:
            ots.append({"type": "translation", "translation": list(outer[1])})
        ms["coordinateTransformations"] = ots
    block: dict[str, Any] = {"multiscales": [ms], **(extra or {})}
    group = zarr.open_group(root, mode="a", zarr_format=fmt)
    if fmt == 3:
        group.attrs.update({"ome": {"version": "0.5", **block}})
    else:
        ms["version"] = "0.4"
        group.attrs.update(block)
    return out


CYX = [("c", "channel", None), ("y", "space", "micrometer"), ("x", "space", "micrometer")]


def _image_a(root: Path) -> None:
    """0.4, with multiscale-level transforms: level 0 is y 0.8 um from 12, x 0.6 um from 16;
    level 1 (centred) y 1.6 from 12.4, x 1.2 from 16.3."""
    write_calibrated(
        root, "0.4", CYX,
        [((2, 20, 30), (1, 0.4, 0.3), (0, 1.0, -2.0)), ((2, 10, 15), (1, 0.8, 0.6), (0, 1.2, -1.85))],
        outer=((1, 2, 2), (0, 10, 20)),
        extra={"omero": {"channels": [
            {"label": "DAPI", "color": "0000FF", "window": {"min": 0, "max": 9, "start": 0, "end": 9}},
            {"label": "GFP", "color": "00FF00", "window": {"min": 0, "max": 9, "start": 0, "end": 9}},
        ]}},
    )  # fmt: skip


def test_hand_computed_regions_with_multiscale_transforms_04(tmp_path: Path) -> None:
    _image_a(tmp_path / "a.zarr")
    with ngio_async.open(tmp_path / "a.zarr") as ds:
        cal = ds.metadata.spatial_calibration
        assert cal[0]["y"].scale == pytest.approx(0.8) and cal[0]["x"].translation == 16
        box: dict[str, Any] = {"y": (13.0, 15.0), "x": (17.0, 20.0)}
        # level 0: y (13-12)/0.8 = 1.25 .. 3.75 -> 1:4; x (17-16)/0.6 = 1.67 .. 6.67 -> 1:7
        assert ds.world_region(0, c="GFP", **box) == (1, slice(1, 4), slice(1, 7))
        # level 1: y (13-12.4)/1.6 = 0.375 .. 1.625 -> 0:2; x 0.58 .. 3.08 -> 0:4
        assert ds.world_region(1, **box) == (slice(0, 2), slice(0, 2), slice(0, 4))
        # a point: the pixel holding it, the axis dropped; a point on an edge opens a pixel
        assert ds.world_region(0, c=0, y=12.8, x=16.0) == (0, 1, 0)
        assert ds.world_region(1, y=(12.4, 14.0), x=17.5) == (slice(0, 2), slice(0, 1), 1)
        # channels as read takes them: a label list
        assert ds.world_region(0, c=["GFP", "DAPI"], y=(12, 12.8))[0] == [1, 0]
        # a level by path
        assert ds.world_region("1", **box) == ds.world_region(1, **box)
        assert ds.world_extent(0) == {"y": (12.0, 28.0), "x": (16.0, 34.0)}
        ext = ds.world_extent(1)
        assert ext["y"] == pytest.approx((12.4, 28.4)) and ext["x"] == pytest.approx((16.3, 34.3))
        # origin="image": the translation ignored (ngio, Fractal ROI tables)
        assert ds.world_region(0, origin="image", y=(1.0, 3.0), x=(1.0, 4.0)) == (
            slice(0, 2), slice(1, 4), slice(1, 7),
        )  # fmt: skip
        assert ds.world_extent(0, origin="image") == {"y": (0.0, 16.0), "x": (0.0, 18.0)}


def test_non_integer_scales_snap_to_pixel_edges_05(tmp_path: Path) -> None:
    """0.65 um pixels: 13 um is pixel edge 20 though 13/0.65 = 20.000000000000004; a float32
    bound (a Fractal ROI table) is a little off too, within 1/100 pixel."""
    write_calibrated(
        tmp_path / "b.zarr", "0.5", CYX[1:],
        [((40, 40), (0.65, 0.65), None), ((20, 20), (1.3, 1.3), None)],
    )  # fmt: skip
    with ngio_async.open(tmp_path / "b.zarr") as ds:
        assert ds.world_region(0, y=(13.0, 26.0), x=(0.65 * 3, 0.65 * 7)) == (
            slice(20, 40), slice(3, 7),
        )  # fmt: skip
        f32 = float(np.float32(0.65 * 7))
        assert f32 != 0.65 * 7
        assert ds.world_region(0, y=(f32, 13.0)) == (slice(7, 20), slice(0, 40))
        # 2% of a pixel past an edge is past it
        assert ds.world_region(0, x=(0.65 * 3.02, 0.65 * 6.98)) == (slice(0, 40), slice(3, 7))
        assert ds.world_region(1, y=(13.0, 26.0)) == (slice(10, 20), slice(0, 20))
        # a range thinner than 1/100 pixel on an edge still covers a pixel
        assert ds.world_region(0, y=(13.0, 13.001)) == (slice(20, 21), slice(0, 40))


def test_same_box_covers_the_same_extent_at_every_level(tmp_path: Path) -> None:
    """Each level's region covers the box (clipped to the image) and less than one of its
    pixels more on each side."""
    _image_a(tmp_path / "a.zarr")
    rng = np.random.default_rng(7)
    with ngio_async.open(tmp_path / "a.zarr") as ds:
        for _ in range(60):
            y0, x0 = rng.uniform(8, 29), rng.uniform(12, 35)
            box: dict[str, Any] = {
                "y": (y0, y0 + rng.uniform(0.1, 9)),
                "x": (x0, x0 + rng.uniform(0.1, 9)),
            }
            for level, cal in enumerate(ds.metadata.spatial_calibration):
                extent = ds.world_extent(level)
                if any(box[n][1] <= extent[n][0] or box[n][0] >= extent[n][1] for n in "yx"):
                    with pytest.raises(IndexError, match="is outside the image"):
                        ds.world_region(level, **box)
                    continue
                region = ds.world_region(level, **box)
                for k, name in ((1, "y"), (2, "x")):
                    s, t = cal[name].scale, cal[name].translation
                    lo, hi = t + region[k].start * s, t + region[k].stop * s
                    want = (max(box[name][0], extent[name][0]), min(box[name][1], extent[name][1]))
                    tol = SNAP * s
                    assert lo <= want[0] + tol and hi >= want[1] - tol, (level, name, box)
                    assert want[0] - lo < s + tol and hi - want[1] < s + tol, (level, name, box)


def test_clipping_and_outside(tmp_path: Path) -> None:
    _image_a(tmp_path / "a.zarr")
    with ngio_async.open(tmp_path / "a.zarr") as ds:
        assert ds.world_region(0, y=(-100, 12.9), x=(33.9, 1e9))[1:] == (slice(0, 2), slice(29, 30))
        with pytest.raises(IndexError) as e:
            ds.world_region(1, y=(5, 12.4))
        assert str(e.value) == (
            "axis 'y': the world range (5, 12.4) micrometer is outside the image, whose world "
            "extent there is [12.4, 28.4) micrometer at level 1"
        )
        with pytest.raises(IndexError, match=r"axis 'x': the world coordinate 34 micrometer is "):
            ds.world_region(0, x=34.0)  # the extent's end is outside (half-open)
        with pytest.raises(IndexError, match=r"range \(1, 2\) millimeter is outside .*\[16, 34\)"):
            ds.world_region(0, unit="millimeter", x=(1, 2))


@pytest.mark.parametrize(
    ("axes", "error", "message"),
    [
        ({"y": (15.0, 13.0)}, ValueError, "axis 'y': the world range (15, 13) is reversed"),
        ({"x": (14.0, 14.0)}, ValueError, "axis 'x': the world range (14, 14) is empty"),
        ({"y": (float("nan"), 13.0)}, ValueError, "axis 'y': the world range bound nan is not"),
        ({"x": (13.0, math.inf)}, ValueError, "axis 'x': the world range bound inf is not"),
        ({"y": -math.inf}, ValueError, "axis 'y': the world coordinate -inf is not finite"),
        ({"y": (1, 2, 3)}, TypeError, "axis 'y': a world range is a (start, stop) pair, got 3"),
        ({"x": slice(0, 4)}, TypeError, "axis 'x': a world coordinate must be a number, got sl"),
        ({"y": ("a", 2)}, TypeError, "axis 'y': a world range bound must be a number, got 'a'"),
        ({"y": (True, 2)}, TypeError, "axis 'y': a world range bound must be a number, got True"),
        ({"q": (1, 2)}, ValueError, "unknown axis 'q'"),
        ({"c": "RFP"}, KeyError, "no channel labelled 'RFP'"),
    ],
)
def test_errors_name_the_axis(
    tmp_path: Path, axes: dict[str, Any], error: type[Exception], message: str
) -> None:
    _image_a(tmp_path / "a.zarr")
    with ngio_async.open(tmp_path / "a.zarr") as ds, pytest.raises(error) as e:
        ds.world_region(0, **axes)
    assert message in str(e.value)


def _image_tczyx(root: Path) -> None:
    """0.5: t 2.5 s, z 1.5 um from 0.75, y/x 325 nm; level 1 halves y/x."""
    axes = [
        ("t", "time", "second"), ("c", "channel", None), ("z", "space", "micrometer"),
        ("y", "space", "nanometer"), ("x", "space", "nanometer"),
    ]  # fmt: skip
    write_calibrated(
        root, "0.5", axes,
        [((3, 2, 4, 16, 24), (2.5, 1, 1.5, 325, 325), (0, 0, 0.75, 0, 0)),
         ((3, 2, 4, 8, 12), (2.5, 1, 1.5, 650, 650), (0, 0, 0.75, 162.5, 162.5))],
    )  # fmt: skip


def test_units_convert_to_each_axis(tmp_path: Path) -> None:
    _image_tczyx(tmp_path / "t.zarr")
    with ngio_async.open(tmp_path / "t.zarr") as ds:
        # y 0.65..1.3 um = 650..1300 nm = pixels 2..4; z 2.0 um -> (2 - 0.75)/1.5 = 0.83 -> 0
        assert ds.world_region(0, unit="micrometer", z=2.0, y=(0.65, 1.3), x=(0, 3.25)) == (
            slice(0, 3), slice(0, 2), 0, slice(2, 4), slice(0, 10),
        )  # fmt: skip
        assert ds.world_region(0, unit="um", y=(0.65, 1.3))[3] == slice(2, 4)
        assert ds.world_region(0, unit="millimeter", y=(0.00065, 0.0013))[3] == slice(2, 4)
        # without unit=: as stored (y in nanometres, t in seconds)
        assert ds.world_region(0, t=(2.5, 5.1), y=(650, 1300))[::3] == (slice(1, 3), slice(2, 4))
        # a unit per axis
        region = ds.world_region(
            1, unit={"t": "millisecond", "y": "micrometer"}, t=4000, y=(1.3, 2)
        )
        assert region[0] == 1 and region[3] == slice(1, 3)  # y: (1300-162.5)/650 = 1.75 ..
        assert ds.world_extent(0, unit="micrometer")["x"] == pytest.approx((0.0, 7.8))
        assert ds.world_extent(1, unit={"t": "minute"})["t"] == pytest.approx((0.0, 0.125))
        assert ds.world_extent(0)["t"] == (0.0, 7.5)
        # a unit name applies to the axes of its kind: t stays in seconds here
        assert ds.world_region(0, unit="micrometer", t=(2.5, 5.1), y=(0.65, 1.3))[::3] == (
            slice(1, 3), slice(2, 4),
        )  # fmt: skip
        with pytest.raises(ValueError, match=r"unit 'second' is a time, and no axis given is m"):
            ds.world_region(0, unit="second", y=(0.65, 1.3))
        with pytest.raises(ValueError, match=r"axis 'y' is in 'nanometer' \(a length\): a time"):
            ds.world_region(0, unit={"y": "second"}, y=(0.65, 1.3))
        with pytest.raises(ValueError, match="unknown unit 'furlong'"):
            ds.world_region(0, unit="furlong", y=(1, 2))
        with pytest.raises(ValueError, match="unit= names axis 'w'"):
            ds.world_region(0, unit={"w": "second"}, y=(1, 2))
        with pytest.raises(TypeError, match="unit= must be a unit name"):
            ds.world_region(0, unit=3, y=(1, 2))  # type: ignore[arg-type]


def test_axes_without_a_known_unit(tmp_path: Path) -> None:
    axes = [("y", "space", None), ("x", "space", "pixel")]
    write_calibrated(tmp_path / "u.zarr", "0.5", axes, [((10, 10), (2, 2), None)])
    with pytest.warns(MetadataWarning, match="'pixel'"):
        ds = ngio_async.open(tmp_path / "u.zarr")
    with ds:
        assert ds.world_region(0, y=(4, 8), x=(0, 3)) == (slice(2, 4), slice(0, 2))
        with pytest.raises(ValueError, match=r"axis 'y' has no unit in the metadata, so 'micr"):
            ds.world_region(0, unit="micrometer", y=(4, 8))
        with pytest.raises(ValueError, match=r"axis 'x' has unit 'pixel', which ngio_async can"):
            ds.world_region(0, unit={"x": "nanometer"}, x=(4, 8))
        assert ds.world_region(0, unit={"x": None}, x=(4, 8)) == (slice(0, 10), slice(2, 4))


def test_level_for(tmp_path: Path) -> None:
    write_calibrated(
        tmp_path / "p.zarr", "0.5", [("z", "space", "micrometer"), *CYX[1:]],
        [((2, 32, 32), (1.0, 0.65, 0.65), None), ((2, 16, 16), (1.0, 1.3, 1.3), None),
         ((2, 8, 8), (1.0, 2.6, 2.6), None)],
    )  # fmt: skip
    with ngio_async.open(tmp_path / "p.zarr") as ds:
        assert [ds.level_for(p) for p in (0.1, 0.65, 0.97, 0.98, 1.3, 1.9, 2.0, 100)] == [
            0, 0, 0, 1, 1, 1, 2, 2,
        ]  # fmt: skip
        assert ds.level_for(1300, unit="nanometer") == 1
        assert ds.level_for((0.65, 2.6)) == 1  # one per y/x: the nearest in both
        assert [ds.level_for(p, not_coarser=True) for p in (0.65, 1.29, 1.3, 2.59, 9)] == [
            0, 0, 1, 1, 2,
        ]  # fmt: skip
        with pytest.raises(ValueError, match=r"no level has pixels at most \(0.5, 0.5\) micro"):
            ds.level_for(0.5, not_coarser=True)
        with pytest.raises(ValueError, match="pixel_size must be positive, got 0"):
            ds.level_for(0)
        assert ds.level_for((1.0, 1.3, 1.3)) == 1  # one per space axis (z, y, x): z counts
        assert ds.level(pixel_size=(1.0, 2.6, 2.6)) is ds.levels[2]  # one rule for both
        assert ds.level(pixel_size=1.3, unit="micrometer") is ds.levels[1]
        assert ds.metadata.nearest_level(1300, unit="nanometer") == 1
        assert ds.level_for(1300, unit="nanometer", exact=True) == 1  # ngio's strict=True
        assert ds.level_for(float(np.float32(2.6)), exact=True) == 2  # a float32 ROI value
        with pytest.raises(ValueError, match=r"no level has pixels of .*nearest, level 1, has"):
            ds.level_for(1.2, exact=True)
        with pytest.raises(ValueError, match="exclude each other"):
            ds.level_for(1.3, exact=True, not_coarser=True)
        with pytest.raises(ValueError, match=r"needs one value per axis \['y', 'x'\], one per "):
            ds.level_for((1, 2, 3, 4))
        with pytest.raises(ValueError, match="unit 'second' is a time, and no axis given"):
            ds.level_for(1, unit="second")
        # the level found reads the box
        level = ds.level_for(1.3, unit="micrometer")
        assert ds.world_region(level, y=(2.6, 5.2))[1] == slice(2, 4)


def test_flipped_and_zero_scales(tmp_path: Path) -> None:
    """A negative scale flips the axis: pixel i covers (t + (i+1)s, t + i*s], so 18.0 is in
    pixel 0 of y (20, -2); a zero scale maps nothing: MetadataError naming level and axis."""
    write_calibrated(tmp_path / "f.zarr", "0.5", CYX[1:], [((10, 10), (-2.0, 2.0), (20.0, 0.0))])
    with ngio_async.open(tmp_path / "f.zarr") as ds:
        assert ds.world_extent(0) == {"y": (0.0, 20.0), "x": (0.0, 20.0)}
        assert ds.world_region(0, y=(15, 19), x=(1, 3)) == (slice(0, 3), slice(0, 2))
        assert [ds.world_region(0, y=p)[0] for p in (19.5, 18.0, 17.9, 0.5)] == [0, 0, 1, 9]
        with pytest.raises(IndexError, match=r"axis 'y': the world coordinate 20 micrometer"):
            ds.world_region(0, y=20.0)
        with pytest.raises(ValueError, match="origin must be 'world' or 'image', got 'pixel'"):
            ds.world_region(0, origin="pixel", y=1.0)  # type: ignore[arg-type]
    write_calibrated(tmp_path / "z.zarr", "0.5", CYX[1:], [((10, 10), (0.0, 2.0), None)])
    with ngio_async.open(tmp_path / "z.zarr") as ds:
        with pytest.raises(MetadataError, match=r"level 0 has scale 0\.0 on axis 'y'"):
            ds.world_region(0, y=(1, 2))
        assert ds.world_region(0, x=(1, 2)) == (slice(0, 10), slice(0, 1))
