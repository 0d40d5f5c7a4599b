"""``ds[sel]``, ``ds.levels[0][sel]`` and ``ds[sel] = v`` against numpy on the same pixels, for
every kind of dtype (bool, int8, uint64, float16, float64, complex64, big-endian int32 of a
zarr v2 image), each with a fill value at an extreme (min, max, NaN, inf, a complex NaN) for
the chunks never written and partial edge chunks, chunked and sharded; zarr-python's read of
the same array agrees wherever it takes the selection. Selections: integers of any integer
type, slices of any step, ``...``, ``None``, one list / integer array / mask (its axis kept
in place, as zarr-python reads it), numpy's integer-array (point) indexing, a whole-shape mask.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st
from images import Spec, write_image

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

SHAPE = (3, 9, 10)
WRITTEN = np.s_[0:2, 0:6, 0:7]  # the rest of the level is never written: its fill value
INT_TYPES = [int, np.int64, np.int32, np.int16, np.uint8, np.intp]
_BASE = np.arange(int(np.prod(SHAPE))).reshape(SHAPE)

CASES: dict[str, tuple[str, Any, dict[str, Any]]] = {  # name: dtype, fill value, layout
    "bool": ("bool", True, {"chunks": (2, 4, 4), "shards": False}),
    "int8": ("int8", -128, {"chunks": (1, 2, 4), "shards": (2, 4, 8)}),
    "uint64": ("uint64", 2**64 - 1, {"chunks": (2, 4, 4), "shards": False}),
    "float16": ("float16", np.nan, {"chunks": (1, 2, 4), "shards": (2, 4, 8)}),
    "float64": ("float64", -np.inf, {"chunks": (2, 4, 4), "shards": False}),
    "complex64": ("complex64", complex(np.nan, 1), {"chunks": (1, 2, 4), "shards": (2, 4, 8)}),
    ">i4 v2": (">i4", 2**31 - 1, {}),
}


def _pixels(dtype: str) -> np.ndarray[Any, Any]:
    """Distinct values of ``dtype`` across its range (NaN, inf and -0.0 among the floats)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.asarray(_BASE % 3 == 0)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        step = (int(info.max) - int(info.min)) // (_BASE.size - 1)  # min .. near max
        return np.array([int(info.min) + int(i) * step for i in _BASE.flat], dt).reshape(SHAPE)
    if dt.kind == "c":
        return (_BASE / 7 - 1j * _BASE[::-1] / 3).astype(dt)
    vals = (_BASE - 100) / 7
    vals.flat[::11] = np.nan
    vals.flat[5::13] = np.inf
    vals.flat[7::17] = -0.0
    return vals.astype(dt)


def _expected(name: str) -> np.ndarray[Any, Any]:
    dtype, fill, _ = CASES[name]
    want = np.full(SHAPE, fill, dtype=dtype)
    want[WRITTEN] = _pixels(dtype)[WRITTEN]
    return want


def _make(root: Path, name: str) -> Path:
    dtype, fill, layout = CASES[name]
    want = _expected(name)
    if name.endswith("v2"):  # zarr-python writes a 0.4 image big-endian, as stored elsewhere
        data = write_image(
            root, Spec(version="0.4", shape=SHAPE, chunks=(2, 4, 4), dtype=dtype, levels=1,
                       fill_value=fill, written=WRITTEN),
        )[0]  # fmt: skip
        with ngio_async.open(root, mode="r+") as ds:
            ds[WRITTEN] = want[WRITTEN]  # replace the random pixels with ours
        assert data.dtype == np.dtype(dtype)
        return root
    with ngio_async.create(
        root, shape=SHAPE, dtype=dtype, axes="zyx", levels=1, fill_value=fill, **layout
    ) as ds:
        ds[WRITTEN] = want[WRITTEN]
    return root


@pytest.fixture(scope="module", params=list(CASES))
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The image's name, its root, and it opened read-only and for writing (kept open)."""
    name = request.param
    root = _make(tmp_path_factory.mktemp("dt") / "img.zarr", name)
    with ngio_async.open(root) as read_only, ngio_async.open(root, mode="r+") as writable:
        yield name, root, read_only, writable


# ------------------------------------------------------------------------------ selections


@st.composite
def _axis(draw: st.DrawFn, n: int) -> Any:
    kind = draw(st.sampled_from(["int", "slice", "slice", "full"]))
    if kind == "int":
        i = draw(st.integers(-n, n - 1))
        typ = draw(st.sampled_from(INT_TYPES))
        return typ(i % n) if typ is np.uint8 else typ(i)
    if kind == "full":
        return slice(None)
    bound = st.none() | st.integers(-n - 3, n + 3)
    return slice(draw(bound), draw(bound), draw(st.none() | st.integers(-7, 7).filter(bool)))


@st.composite
def _one_list(draw: st.DrawFn, n: int) -> Any:
    kind = draw(st.sampled_from(["list", "array", "mask"]))
    if kind == "mask":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    picks = draw(st.lists(st.integers(-n, n - 1), max_size=5))  # repeats, any order, empty
    return picks if kind == "list" else np.array(picks, dtype=draw(st.sampled_from(["i8", "i2"])))


@st.composite
def _basic(draw: st.DrawFn) -> tuple[Any, ...]:
    used = draw(st.integers(0, len(SHAPE)))  # trailing axes left out
    sel: list[Any] = [draw(_axis(SHAPE[ax])) for ax in range(used)]
    if used and draw(st.booleans()):
        ax = draw(st.integers(0, used - 1))
        sel[ax] = draw(_one_list(SHAPE[ax]))
    if draw(st.booleans()):  # '...' for a run of full slices (possibly none)
        sel += [slice(None)] * (len(SHAPE) - used)
        lo = draw(st.integers(0, len(sel)))
        hi = draw(st.integers(lo, len(sel)))
        if all(isinstance(s, slice) and s == slice(None) for s in sel[lo:hi]):
            sel[lo:hi] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        sel.insert(draw(st.integers(0, len(sel))), None)
    return tuple(sel)


@st.composite
def _points(draw: st.DrawFn) -> tuple[Any, ...]:
    """numpy's integer-array indexing: an integer or integer array per axis, broadcast."""
    shape = draw(st.sampled_from([(3,), (2, 2), (1, 4), (0,)]))
    sel: list[Any] = []
    for n in SHAPE:
        if draw(st.integers(0, 3)) == 0:
            sel.append(draw(st.sampled_from(INT_TYPES[:3]))(draw(st.integers(-n, n - 1))))
            continue
        sub = shape if draw(st.booleans()) else (1,) * len(shape)
        size = int(np.prod(sub))
        picks = draw(st.lists(st.integers(-n, n - 1), min_size=size, max_size=size))
        sel.append(np.array(picks, dtype=np.int64).reshape(sub))
    arrays = [s for s in sel if isinstance(s, np.ndarray)]
    if not arrays or (len(arrays) == 1 and arrays[0].ndim == 1):
        sel[0] = np.array([0, -1, 0])
        sel[1] = np.array([[2], [-1]])
    return tuple(sel)


@st.composite
def selections(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(["basic", "basic", "basic", "points", "mask"]))
    if kind == "points":
        return draw(_points())
    if kind == "mask":
        flags = draw(st.lists(st.booleans(), min_size=_BASE.size, max_size=_BASE.size))
        return (np.array(flags).reshape(SHAPE),)
    return draw(_basic())


def _split(sel: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """A selection of one 1-d list or array among basic indices, in numpy's terms: the basic
    selection with that axis whole, then the index into its result that picks the list along
    the axis where it stays (zarr-python's reading); ``None`` for any other selection."""
    where = [i for i, s in enumerate(sel) if isinstance(s, list | np.ndarray)]
    if len(where) != 1 or np.ndim(sel[where[0]]) != 1:
        return None
    (at,) = where
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    out_axis = sum(1 for s in sel[:at] if s is None or isinstance(s, slice))
    if Ellipsis in sel[:at]:
        out_axis += len(SHAPE) - sum(1 for s in sel if s is not None and s is not Ellipsis)
    return basic, (slice(None),) * out_axis + (sel[at],)


def reference(data: np.ndarray[Any, Any], sel: tuple[Any, ...]) -> Any:
    split = _split(sel)
    return data[sel] if split is None else data[split[0]][split[1]]


def assign(data: np.ndarray[Any, Any], sel: tuple[Any, ...], value: Any) -> None:
    split = _split(sel)
    if split is None:
        data[sel] = value
    else:
        data[split[0]][split[1]] = value  # (the basic selection is a view of data)


def _same(got: Any, want: Any, what: str) -> None:
    assert type(got) is type(want), what
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), what


# ------------------------------------------------------------------------------ tests

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(sel=selections())
def test_reads_are_numpys_for_every_dtype(image: Any, sel: tuple[Any, ...]) -> None:
    name, root, read_only, writable = image
    want = reference(_expected(name), sel)
    _same(read_only[sel], want, "read-only ds[sel]")  # the blocking reads' own short way
    _same(read_only.levels[0][sel], want, "read-only level[sel]")
    _same(writable[sel], want, "ds[sel]")  # through the event loop
    try:
        theirs = zarr.open_array(root / "0", mode="r")[sel]
    except (IndexError, TypeError, ValueError):
        return  # negative steps, None, ...: zarr-python does not take them
    np.testing.assert_array_equal(theirs, want)


@pytest.fixture(scope="module")
def writable(image: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A copy of the image, opened for writing (kept open)."""
    copy = tmp_path_factory.mktemp("w") / "img.zarr"
    shutil.copytree(image[1], copy)
    with ngio_async.open(copy, mode="r+") as ds:
        yield copy, ds


@st.composite
def _value(draw: st.DrawFn, dtype: np.dtype[Any], shape: tuple[int, ...]) -> Any:
    """Values of the level's dtype (drawn from its pixels) as a Python scalar, a numpy
    scalar, an array of ``shape``, or one that broadcasts to it."""
    pool = _pixels(dtype.str).ravel()
    kind = draw(st.sampled_from(["python", "numpy", "full", "broadcast"]))
    if kind in ("python", "numpy"):
        one = pool[draw(st.integers(0, pool.size - 1))]
        return one.item() if kind == "python" else one
    if kind == "broadcast":  # trailing axes kept, some of them 1
        keep = draw(st.integers(0, len(shape)))
        shape = tuple(1 if draw(st.booleans()) else n for n in shape[len(shape) - keep :])
    start = draw(st.integers(0, pool.size))
    return np.resize(np.roll(pool, -start), shape)


@SETTINGS
@given(data=st.data())
def test_writes_are_numpys_for_every_dtype(writable: Any, data: st.DataObject) -> None:
    root, ds = writable
    sel = data.draw(selections())
    want = ds[...]
    value = data.draw(_value(ds.dtype, reference(want, sel).shape))
    assign(want, sel, value)
    ds[sel] = value
    _same(ds[...], want, "after ds[sel] = value")
    _same(zarr.open_array(root / "0", mode="r")[...], want, "zarr-python's read")
