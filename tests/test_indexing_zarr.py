"""``ds.oindex[...]``, ``ds.vindex[...]`` and ``ds[...]`` writes against zarr-python 3 writing
the same selection into a copy of the same store: the stored pixels must be equal (repeated
indices, any order, masks, scalars and broadcast values)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st
from selections import orthogonal

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Callable

SHAPE = (3, 21, 26)
DATA = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)


@pytest.fixture(scope="module", params=["chunks", "shards"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two copies of one image: one written by ngio_async, one by zarr-python."""
    base = tmp_path_factory.mktemp("pair")
    layout: dict[str, Any] = (
        {"chunks": (2, 8, 8)}
        if request.param == "chunks"
        else {"chunks": (1, 4, 8), "shards": (2, 8, 16)}
    )
    ours = base / "ours.zarr"
    with ngio_async.create(ours, shape=SHAPE, dtype="uint16", axes="zyx", levels=1, **layout) as ds:
        ds.write(DATA)
    theirs = base / "theirs.zarr"
    shutil.copytree(ours, theirs)
    return ours, zarr.open_array(theirs / "0", mode="r+")


@st.composite
def points(draw: st.DrawFn) -> tuple[Any, ...]:
    count = draw(st.integers(1, 7))
    return tuple(
        np.array(draw(st.lists(st.integers(-n, n - 1), min_size=count, max_size=count)))
        for n in SHAPE
    )


def _value(draw: Callable[[st.SearchStrategy[Any]], Any], shape: tuple[int, ...]) -> Any:
    if draw(st.booleans()):
        return np.uint16(draw(st.integers(0, 60000)))
    if shape and draw(st.booleans()):  # broadcast along the leading axes
        last = shape[-1]
        return np.arange(last, dtype=np.uint16) + 30000
    return (np.arange(int(np.prod(shape)), dtype=np.uint16) + 40000).reshape(shape)


def _picks(sel: tuple[Any, ...]) -> list[np.ndarray[Any, Any]]:
    """The coordinates each axis takes (``np.ix_``'s arguments)."""
    picks = []
    for s, n in zip(sel, SHAPE, strict=True):
        if isinstance(s, slice):
            picks.append(np.arange(n)[s])
        elif isinstance(s, list | np.ndarray):
            picks.append(np.arange(n)[np.asarray(s)])
        else:
            picks.append(np.array([s % n]))
    return picks


def _ortho_write(ref: np.ndarray[Any, Any], sel: tuple[Any, ...], value: Any) -> None:
    """numpy's ``ref[np.ix_(...)] = value`` for an orthogonal selection (the last of repeated
    coordinates wins)."""
    picks = _picks(sel)
    shape = tuple(len(p) for p, s in zip(picks, sel, strict=True) if not _is_int(s))
    full = np.broadcast_to(value, shape).reshape([len(p) for p in picks])
    ref[np.ix_(*picks)] = full


def _is_int(s: Any) -> bool:
    return isinstance(s, int | np.integer)


def _zarr_too(theirs: Any, write: Any, ref: np.ndarray[Any, Any]) -> None:
    """zarr-python's write of the same selection, where it takes it, gives the same pixels
    (zarr-python 3.1 refuses some: negative steps, a 1-d value broadcast along an oindex
    selection, a (n, 1) value for an integer then a list)."""
    try:
        write()
    except (ValueError, IndexError):
        return
    np.testing.assert_array_equal(theirs[...], ref)


def _backwards(sel: tuple[Any, ...]) -> bool:
    return any(isinstance(s, slice) and (s.step or 1) < 0 for s in sel)


def _unique(sel: tuple[Any, ...]) -> bool:
    return all(
        not isinstance(s, list) or len({x % n for x in s}) == len(s)
        for s, n in zip(sel, SHAPE, strict=True)
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_oindex_reads_and_writes_as_numpy_and_zarr_python(pair: Any, data: st.DataObject) -> None:
    ours, theirs = pair
    sel = data.draw(orthogonal(SHAPE))
    picks = _picks(sel)
    shape = tuple(len(p) for p, s in zip(picks, sel, strict=True) if not _is_int(s))
    value = _value(data.draw, shape)
    ref = DATA.copy()
    _ortho_write(ref, sel, value)
    theirs[...] = DATA  # each example from the same pixels
    with ngio_async.open(ours, mode="r+") as ds:
        ds.write(DATA)
        got = ds.oindex[sel]
        np.testing.assert_array_equal(got, DATA[np.ix_(*picks)].reshape(shape))
        if not _backwards(sel):  # zarr-python refuses negative steps
            np.testing.assert_array_equal(got, theirs.oindex[sel])
        ds.oindex[sel] = value
    np.testing.assert_array_equal(zarr.open_array(ours / "0", mode="r")[...], ref)
    if _unique(sel):  # zarr-python's order among repeated coordinates is its own
        _zarr_too(theirs, lambda: theirs.oindex.__setitem__(sel, value), ref)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_vindex_reads_and_writes_as_numpy_and_zarr_python(pair: Any, data: st.DataObject) -> None:
    ours, theirs = pair
    sel = data.draw(points())
    value = _value(data.draw, sel[0].shape)
    ref = DATA.copy()
    ref[sel] = value
    theirs[...] = DATA
    with ngio_async.open(ours, mode="r+") as ds:
        ds.write(DATA)
        got = ds.vindex[sel]
        np.testing.assert_array_equal(got, DATA[sel])
        np.testing.assert_array_equal(got, theirs.vindex[sel])
        ds.vindex[sel] = value
    np.testing.assert_array_equal(zarr.open_array(ours / "0", mode="r")[...], ref)
    flat = np.ravel_multi_index([s % n for s, n in zip(sel, SHAPE, strict=True)], SHAPE)
    if np.unique(flat).size == flat.size:
        _zarr_too(theirs, lambda: theirs.vindex.__setitem__(sel, value), ref)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_setitem_with_one_list_as_numpy_and_zarr_python(pair: Any, data: st.DataObject) -> None:
    ours, theirs = pair
    sel = list(data.draw(orthogonal(SHAPE)))
    at = data.draw(st.integers(0, 2))  # one list or mask, the other axes ints or slices
    for ax, s in enumerate(sel):
        if ax != at and isinstance(s, list | np.ndarray):
            sel[ax] = slice(None)
    if not isinstance(sel[at], list | np.ndarray):
        sel[at] = [SHAPE[at] - 1, 0]
    selection = tuple(sel)
    picks = _picks(selection)
    shape = tuple(len(p) for p, s in zip(picks, selection, strict=True) if not _is_int(s))
    value = _value(data.draw, shape)
    ref = DATA.copy()
    _ortho_write(ref, selection, value)
    theirs[...] = DATA
    with ngio_async.open(ours, mode="r+") as ds:
        ds.write(DATA)
        got = ds[selection]
        np.testing.assert_array_equal(got, DATA[np.ix_(*picks)].reshape(shape))
        if not _backwards(selection):
            np.testing.assert_array_equal(got, theirs[selection])
        ds[selection] = value
    np.testing.assert_array_equal(zarr.open_array(ours / "0", mode="r")[...], ref)
    if _unique(selection):
        _zarr_too(theirs, lambda: theirs.__setitem__(selection, value), ref)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_full_boolean_masks_as_numpy_and_zarr_python(pair: Any, data: st.DataObject) -> None:
    """``ds[mask]``, ``ds.vindex[mask]`` (a mask of the image's shape) read and write the
    masked pixels in C order, as numpy's ``a[mask]``."""
    ours, theirs = pair
    seed = data.draw(st.integers(0, 2**16))
    mask = np.random.default_rng(seed).random(SHAPE) < data.draw(st.sampled_from([0, 0.05, 0.5]))
    count = int(mask.sum())
    scalar = data.draw(st.booleans())
    value: Any = np.uint16(5) if scalar else np.arange(count, dtype=np.uint16) + 100
    ref = DATA.copy()
    ref[mask] = value
    theirs[...] = DATA
    with ngio_async.open(ours, mode="r+") as ds:
        ds.write(DATA)
        np.testing.assert_array_equal(ds[mask], DATA[mask])
        np.testing.assert_array_equal(ds.vindex[mask], theirs.vindex[mask])
        if data.draw(st.booleans()):
            ds[mask] = value
        else:
            ds.vindex[mask] = value
    np.testing.assert_array_equal(zarr.open_array(ours / "0", mode="r")[...], ref)
    _zarr_too(theirs, lambda: theirs.vindex.__setitem__(mask, value), ref)
