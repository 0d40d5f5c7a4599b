"""Roi.zoom / intersection / union against ngio 1.1.3's Roi on the same boxes: the same
ranges, names and labels, None for boxes apart; and the pixels read for an intersection equal
ngio's get_roi of its intersection (NGFF 0.4 and 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.filterwarnings("ignore")]


def _theirs(roi: Roi) -> Any:
    import ngio

    box: dict[str, Any] = {a: (lo, hi - lo) for a, (lo, hi) in roi.ranges.items()}
    if roi.time is not None:
        box["t"] = (roi.time[0], roi.time[1] - roi.time[0])
    return ngio.Roi.from_values(box, name=roi.name, label=roi.label)


def _as_mine(theirs: Any) -> tuple[Any, ...]:
    box = {s.axis_name: (s.start, s.start + s.length) for s in theirs.slices}
    time = box.pop("t", None)
    return theirs.name, box, theirs.label, time


def _key(roi: Roi) -> tuple[Any, ...]:
    return roi.name, roi.ranges, roi.label, roi.time


A = Roi("FOV_1", {"x": (0.0, 10.0), "y": (2.0, 8.0), "z": (0.0, 1.0)})
PAIRS = [
    (A, Roi("FOV_2", {"x": (4.0, 20.0), "y": (0.0, 5.0), "z": (0.0, 2.0)})),
    (A, Roi("FOV_1", {"x": (9.5, 12.0), "y": (7.0, 9.0), "z": (0.5, 1.0)})),
    (A, Roi("obj", {"x": (3.0, 4.0), "y": (3.0, 4.0)}, label=7)),  # z only in A
    (Roi("t", {"x": (0.0, 4.0), "y": (0.0, 4.0)}, time=(1.0, 3.0)), A),  # t only in one
    (
        Roi("a", {"x": (0.0, 4.0), "y": (0.0, 4.0)}, time=(1.0, 3.0), label=2),
        Roi("b", {"x": (1.0, 5.0), "y": (1.0, 2.0)}, time=(2.0, 6.0), label=2),
    ),
]
APART = [
    (A, Roi("far", {"x": (10.0, 12.0), "y": (2.0, 8.0), "z": (0.0, 1.0)})),  # edges touch
    (A, Roi("above", {"x": (0.0, 10.0), "y": (2.0, 8.0), "z": (1.0, 2.0)})),
]


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_intersection_and_union_as_ngio(a: Roi, b: Roi) -> None:
    theirs = _theirs(a).intersection(_theirs(b))
    mine = a.intersection(b)
    assert mine is not None and theirs is not None
    assert _key(mine) == _as_mine(theirs)
    assert _key(a.union(b)) == _as_mine(_theirs(a).union(_theirs(b)))


@pytest.mark.parametrize(("a", "b"), APART)
def test_boxes_apart_have_no_intersection_as_in_ngio(a: Roi, b: Roi) -> None:
    assert _theirs(a).intersection(_theirs(b)) is None
    assert a.intersection(b) is None


def test_labels_that_differ_are_refused_as_in_ngio() -> None:
    import ngio

    a = Roi("a", {"x": (0.0, 4.0), "y": (0.0, 4.0)}, label=1)
    b = Roi("b", {"x": (1.0, 5.0), "y": (1.0, 2.0)}, label=2)
    with pytest.raises(ngio.NgioValueError):
        _theirs(a).intersection(_theirs(b))
    with pytest.raises(ValueError, match="'a' has label 1, 'b' 2"):
        a.intersection(b)
    with pytest.raises(ValueError, match="label"):
        a.union(b)


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5, 3.0])
def test_zoom_as_ngio(factor: float) -> None:
    roi = Roi("FOV_1", {"x": (2.0, 10.0), "y": (20.0, 26.0), "z": (0.0, 3.0)}, label=3)
    for axes in (("x", "y"), ("z",)):
        theirs = _theirs(roi).zoom(factor, axes=axes)
        assert _key(roi.zoom(factor, axes)) == _as_mine(theirs)
    with pytest.raises(ValueError, match="'FOV_1': zoom must be a positive number"):
        roi.zoom(0)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_intersection_reads_the_pixels_ngio_reads(tmp_path: Path, version: str) -> None:
    import ngio

    data = np.arange(2 * 40 * 48, dtype=np.uint16).reshape(2, 40, 48)
    container = ngio.create_ome_zarr_from_array(
        str(tmp_path / "img.zarr"),
        data,
        pixelsize=0.5,
        axes_names="cyx",
        levels=1,
        ngff_version=version,  # type: ignore[arg-type]
    )
    fov = Roi("FOV_1", {"x": (0.0, 12.0), "y": (0.0, 20.0), "z": (0.0, 1.0)})
    obj = Roi("cell", {"x": (9.25, 16.0), "y": (4.0, 6.5), "z": (0.0, 1.0)}, label=5)
    both = fov.intersection(obj)
    assert both is not None
    theirs_roi = _theirs(fov).intersection(_theirs(obj))
    theirs = container.get_image().get_roi(theirs_roi)
    with ngio_async.open(tmp_path / "img.zarr") as ds:
        np.testing.assert_array_equal(ds.read_roi(both).data, theirs)
        np.testing.assert_array_equal(
            ds.read_roi(fov.zoom(0.5)).data,
            container.get_image().get_roi(_theirs(fov).zoom(0.5)),
        )
