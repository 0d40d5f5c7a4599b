"""Named selections (``ds.read(c=..., z=...)``, ``write``, ``tiles``, ``read_roi``, blocking and
async, NGFF 0.4 and 0.5) take every single-axis form ``ds[...]`` takes: numpy ints and 0-d
integer arrays, slices with steps, lists and 1-D int arrays, 1-D boolean masks of the axis's
length, plus channel labels (also as a string array); each checked against numpy (the one list's
axis kept in place, as zarr-python reads it) and against ``ds[...]`` with the same values. Bad
values are refused naming the axis and the value, before any I/O."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

import ngio_async
from ngio_async.tables import Roi

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

pytestmark = pytest.mark.filterwarnings("ignore")

SHAPE = (3, 4, 5, 6)
LABELS = ["DAPI", "GFP", "RFP"]
DATA = (np.arange(int(np.prod(SHAPE))) * 7 % 251).astype(np.uint16).reshape(SHAPE)
MASK_Y = [True, False, True, False, True]

# (named selection, the same values as ds[...] takes them: labels as their indices)
CASES: list[tuple[dict[str, Any], tuple[Any, ...]]] = [
    ({"c": [True, False, True]}, ([True, False, True],)),
    (
        {"c": np.array([False, True, True]), "z": np.array(2)},
        (np.array([False, True, True]), np.array(2)),
    ),
    (
        {"z": np.array(-1, dtype=np.int8), "y": np.array([4, 0, 4], dtype=np.uint16)},
        (slice(None), np.array(-1, dtype=np.int8), np.array([4, 0, 4], dtype=np.uint16)),
    ),
    (
        {"c": np.int32(2), "y": MASK_Y, "x": slice(None, None, -2)},
        (np.int32(2), slice(None), MASK_Y, slice(None, None, -2)),
    ),
    ({"c": np.array(["GFP", "DAPI"]), "x": np.uint8(5)}, ([1, 0], slice(None), slice(None), 5)),
    ({"c": "RFP", "z": slice(3, 0, -2), "x": [False] * 6}, (2, slice(3, 0, -2), slice(None), [])),
    ({"c": np.array("GFP"), "y": np.array([], dtype=np.int64)}, (1, slice(None), [])),
]


def _plain(sel: tuple[Any, ...], ndim: int) -> tuple[Any, ...]:
    """``sel`` with one entry per axis, 0-d arrays as ints (numpy's basic indexing, a view)."""
    sel = tuple(int(s) if np.ndim(s) == 0 and not isinstance(s, slice) else s for s in sel)
    return sel + (slice(None),) * (ndim - len(sel))


def reference(data: np.ndarray[Any, Any], sel: tuple[Any, ...]) -> Any:
    """``data[sel]`` with the one list (or mask) kept in its axis's place, as zarr-python and
    ``ds[...]`` read it (numpy moves it first when an int precedes it)."""
    sel = _plain(sel, data.ndim)
    where = [i for i, s in enumerate(sel) if isinstance(s, list) or np.ndim(s) == 1]
    if not where:
        return data[sel]
    (at,) = where
    picks = sel[at]
    if np.asarray(picks).dtype == bool:
        picks = np.flatnonzero(picks)
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    out_axis = sum(1 for s in sel[:at] if isinstance(s, slice))
    return data[basic][(slice(None),) * out_axis + (np.asarray(picks, dtype=np.intp),)]


def _create(path: Path, version: str) -> Any:
    ds = ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="czyx", channels=LABELS, levels=1,
        chunks=(1, 2, 2, 4), ngff_version=version,
    )  # fmt: skip
    ds.write(DATA)
    return ds


@pytest.fixture(params=["0.4", "0.5"])
def image(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with _create(tmp_path / "img.zarr", request.param) as ds:
        yield ds


@pytest.mark.parametrize(("named", "sel"), CASES)
def test_blocking_reads_take_what_indexing_takes(image: Any, named: Any, sel: Any) -> None:
    want = reference(DATA, sel)
    got = image.read(**named)
    assert got.shape == want.shape and got.dtype == want.dtype, named
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(image[sel], want)  # ds[...] takes the same values


@pytest.mark.anyio
async def test_async_reads_and_writes_take_what_indexing_takes(image: Any) -> None:
    want = DATA.copy()
    async with ngio_async.open_async(image.async_dataset.url, mode="r+") as ds:
        for named, sel in CASES:
            got = await ds.read(**named)
            assert got.shape == reference(DATA, sel).shape, named
            np.testing.assert_array_equal(got, reference(DATA, sel))
        for k, (named, sel) in enumerate(CASES):
            shape = reference(want, sel).shape
            value = (np.arange(int(np.prod(shape))) + 300 * (k + 1)).astype("u2").reshape(shape)
            await ds.write(value, **named)
            _assign(want, sel, value)
            np.testing.assert_array_equal(await ds.getitem(...), want, err_msg=str(named))


def _assign(data: np.ndarray[Any, Any], sel: tuple[Any, ...], value: Any) -> None:
    """numpy's assignment through ``sel``, its one list's axis kept in place."""
    sel = _plain(sel, data.ndim)
    where = [i for i, s in enumerate(sel) if isinstance(s, list) or np.ndim(s) == 1]
    if not where:
        data[sel] = value
        return
    (at,) = where
    picks = np.asarray(sel[at])
    picks = np.flatnonzero(picks) if picks.dtype == bool else picks.astype(np.intp)
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    out_axis = sum(1 for s in sel[:at] if isinstance(s, slice))
    data[basic][(slice(None),) * out_axis + (picks,)] = value


def test_blocking_writes_take_what_indexing_takes(image: Any) -> None:
    want = DATA.copy()
    for k, (named, sel) in enumerate(CASES):
        shape = reference(want, sel).shape
        value = (np.arange(int(np.prod(shape))) + 1000 * (k + 1)).astype("u2").reshape(shape)
        image.write(value, **named)
        _assign(want, sel, value)
        np.testing.assert_array_equal(image[...], want, err_msg=str(named))
    image.write(7, c=[False, True, False], z=np.array(0))  # a value broadcast, as numpy
    want[1, 0] = 7
    np.testing.assert_array_equal(image[...], want)


def test_axes_order_tiles_and_rois_take_masks_and_0d_arrays(image: Any) -> None:
    got = image.read(c=[True, False, True], z=np.array(1), axes_order="yxzc")
    assert got.shape == (5, 6, 1, 2)  # the 0-d array dropped z, as an int does
    np.testing.assert_array_equal(got[:, :, 0], DATA[[0, 2], 1].transpose(1, 2, 0))
    tiles = list(image.tiles(c=np.array([True, False, True]), z=np.array(3)))
    assert {t.region[0].start for t in tiles} == {0, 2}
    assert all(t.region[1] == slice(3, 4) for t in tiles)
    for t in tiles:
        np.testing.assert_array_equal(t.data, DATA[t.region])
    roi = Roi.box("cell", x=(1.0, 4.0), y=(0.0, 2.0), z=(2.0, 3.0))
    read = image.read_roi(roi, c=[False, True, True])
    np.testing.assert_array_equal(read.data, DATA[1:3, 2:3, 0:2, 1:4])
    image.write_roi(roi, 9, c=np.array(["RFP"]))
    np.testing.assert_array_equal(image.read(c=2, z=2, y=slice(0, 2), x=slice(1, 4)), 9)
    np.testing.assert_array_equal(image.read(c=1, z=2), DATA[1, 2])


BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"c": [True, False]}, IndexError, "axis 'c': a boolean mask needs one value per index"),
    ({"c": [True, 1, 0]}, TypeError, "axis 'c': a boolean mask takes booleans only"),
    ({"z": np.array(2.0)}, TypeError, "axis 'z': expected an int"),
    ({"z": np.array([[1]])}, TypeError, "axis 'z': a list selection must be 1-D"),
    ({"y": slice(0.5, 2)}, TypeError, "axis 'y': slice bounds"),
    ({"y": slice(0, 2, 0)}, ValueError, "axis 'y': a slice step cannot be zero"),
    ({"x": True}, TypeError, "axis 'x': a single boolean"),
    ({"x": [0.5]}, TypeError, "axis 'x': list items must be ints"),
    ({"z": "DAPI"}, ValueError, "axis 'z' is not the channel axis, got the label 'DAPI'"),
    ({"z": np.array(9)}, IndexError, "axis 'z': index 9 is out of bounds"),
    ({"c": [0], "z": [1]}, ValueError, "lists on 'c' and 'z'"),
]


@pytest.mark.parametrize(("named", "error", "match"), BAD)
def test_refusals_name_the_axis_and_value(
    image: Any, named: Any, error: type[Exception], match: str
) -> None:
    shown = re.escape(repr(next(iter(named.values()))))
    calls: list[Callable[[], object]] = [
        lambda: image.read(**named),
        lambda: image.write(0, **named),
        lambda: image.tiles(**named),
    ]
    for call in calls:
        with pytest.raises(error, match=re.escape(match)) as info:
            call()
        if error is not IndexError and "lists on" not in match:
            assert re.search(shown, str(info.value)), str(info.value)
    np.testing.assert_array_equal(image[...], DATA)  # nothing written
