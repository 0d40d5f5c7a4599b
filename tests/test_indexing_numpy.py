"""``ds[...]`` and ``ds[...] = v`` against numpy on the same data, for any basic selection
(integers of any integer type, slices of any step, ``...`` anywhere, ``None``) with at most one
list, integer array or boolean mask (its axis kept in place, as zarr-python reads it), on a
chunked and a sharded level, through the blocking and the async API."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings, strategies as st
from images import Spec, upload, write_image

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

SHAPE = (3, 21, 26)
DATA = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE)
LAYOUTS: dict[str, dict[str, Any]] = {
    "chunks": {"chunks": (2, 8, 8)},
    "shards": {"chunks": (1, 4, 8), "shards": (2, 8, 16)},
}
INT_TYPES = [int, np.int64, np.int32, np.uint8, np.intp]


def _make(path: Path, layout: str) -> Path:
    with ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="zyx", levels=1, **LAYOUTS[layout]
    ) as ds:
        ds.write(DATA)
    return path


@pytest.fixture(scope="module", params=list(LAYOUTS))
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(tmp_path_factory.mktemp("idx") / "img.zarr", request.param)


@st.composite
def axis_index(draw: st.DrawFn, n: int) -> Any:
    kind = draw(st.sampled_from(["int", "slice", "slice", "full"]))
    if kind == "int":
        i = draw(st.integers(-n, n - 1))
        typ = draw(st.sampled_from(INT_TYPES))
        return typ(i % n) if typ is np.uint8 else typ(i)
    if kind == "full":
        return slice(None)
    bound = st.none() | st.integers(-n - 3, n + 3)
    step = st.none() | st.integers(-9, 9).filter(bool)
    return slice(draw(bound), draw(bound), draw(step))


@st.composite
def list_index(draw: st.DrawFn, n: int) -> Any:
    kind = draw(st.sampled_from(["list", "array", "mask"]))
    if kind == "mask":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    picks = draw(st.lists(st.integers(-n, n - 1), max_size=6))  # repeats, any order, empty
    return picks if kind == "list" else np.array(picks, dtype=np.int64)


@st.composite
def selections(draw: st.DrawFn, lists: bool = True) -> tuple[tuple[Any, ...], Any]:
    """A selection and numpy's reference for it: ``(selection, basic, out_axis, indices)``."""
    ndim = len(SHAPE)
    used = draw(st.integers(0, ndim))  # trailing axes left out
    per_axis: list[Any] = [draw(axis_index(SHAPE[ax])) for ax in range(used)]
    listed = draw(st.none() | st.integers(0, used - 1)) if lists and used else None
    if listed is not None:
        per_axis[listed] = draw(list_index(SHAPE[listed]))
    sel: list[Any] = list(per_axis)
    if draw(st.booleans()):  # '...' standing for a run of full slices (possibly none)
        sel += [slice(None)] * (ndim - used)
        lo = draw(st.integers(0, len(sel)))
        hi = draw(st.integers(lo, len(sel)))
        if all(isinstance(s, slice) and s == slice(None) for s in sel[lo:hi]):
            sel[lo:hi] = [Ellipsis]
    for _ in range(draw(st.integers(0, 2))):
        sel.insert(draw(st.integers(0, len(sel))), None)
    return tuple(sel), listed


def _one_list(sel: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]] | None:
    """For a selection with one list (or array), zarr-python's orthogonal reading of it in
    numpy's terms: the basic selection with that axis whole, then the index into its result
    that picks the list along the axis where it stays; ``None`` for none, or one per axis
    (points: numpy's fancy indexing)."""
    where = [i for i, s in enumerate(sel) if isinstance(s, list | np.ndarray)]
    if len(where) != 1:
        return None
    (at,) = where
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    out_axis = sum(1 for s in sel[:at] if s is None or isinstance(s, slice))
    if Ellipsis in sel[:at]:
        used = sum(1 for s in sel if s is not None and s is not Ellipsis)
        out_axis += len(SHAPE) - used
    return basic, (slice(None),) * out_axis + (sel[at],)


def reference(data: np.ndarray[Any, Any], sel: Any) -> Any:
    """numpy's result, the one list's axis kept in place (zarr-python's orthogonal reading)."""
    sel = sel if isinstance(sel, tuple) else (sel,)
    split = _one_list(sel)
    return data[sel] if split is None else data[split[0]][split[1]]


def assign(data: np.ndarray[Any, Any], sel: tuple[Any, ...], value: Any) -> None:
    """``data[sel] = value`` as :func:`reference` reads ``sel``."""
    split = _one_list(sel)
    if split is None:
        data[sel] = value
    else:
        data[split[0]][split[1]] = value  # (the basic selection is a view of data)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=selections())
def test_getitem_is_numpys(image: Path, case: tuple[tuple[Any, ...], Any]) -> None:
    sel, _ = case
    want = reference(DATA, sel)
    with ngio_async.open(image) as ds:
        got = ds[sel]
        level = ds.levels[0][sel]
    assert type(got) is type(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(level, want)


@pytest.mark.anyio
async def test_async_getitem_and_read_are_numpys(image: Path) -> None:
    cases: list[Any] = [
        np.s_[np.int64(-1), ::-3, 25:0:-7],
        np.s_[None, ..., np.uint8(4), None],
        np.s_[..., [25, 0, 0, -1]],
        np.s_[:, np.arange(21) % 2 == 0, 3],
        np.s_[5:1],
        np.s_[-100:100, 2],
    ]
    async with ngio_async.open_async(image) as ds:
        for sel in cases:
            want = reference(DATA, sel)
            got = await ds.levels[0][sel]
            assert got.shape == want.shape, sel
            np.testing.assert_array_equal(got, want)
        got = await ds.read(z=-1, y=slice(None, None, -2), x=[3, 1, 3])
        np.testing.assert_array_equal(got, DATA[-1, ::-2][:, [3, 1, 3]])


def test_zero_d_results_are_numpy_scalars(image: Path) -> None:
    with ngio_async.open(image) as ds:
        got: Any = ds[np.int32(2), -1, np.uint8(7)]
        assert type(got) is np.uint16 and got == DATA[2, -1, 7]
        got = ds[1, 2, 3, None]
        assert got.shape == (1,) and got[0] == DATA[1, 2, 3]
        # numpy: an index with '...' gives a 0-d array, not a scalar
        for sel in (np.s_[..., 1, 2, 3], np.s_[1, ..., 2, 3], np.s_[1, 2, 3, ...]):
            got = ds[sel]
            assert type(got) is np.ndarray and got.shape == () and got == DATA[1, 2, 3], sel
            got = ds.levels[0][sel]
            assert type(got) is np.ndarray and got.shape == (), sel


@pytest.mark.parametrize(
    ("selection", "match"),
    [
        (np.s_[3], "index 3 is out of bounds for axis 0 with size 3"),
        (np.s_[-4], "index -4 is out of bounds for axis 0 with size 3"),
        (np.s_[0, 21], "index 21 is out of bounds for axis 1 with size 21"),
        (np.s_[..., np.int64(-27)], "index -27 is out of bounds for axis 2 with size 26"),
        (np.s_[None, 0, None, 0, 26], "index 26 is out of bounds for axis 2 with size 26"),
        (np.s_[0, :, [1, 26]], "index 26 is out of bounds for axis 2 with size 26"),
        (np.s_[0, 0, 0, 0], "too many indices"),
        (np.s_[..., 0, ...], "single ellipsis"),
    ],
)
def test_out_of_range_integers_name_the_axis(image: Path, selection: Any, match: str) -> None:
    with pytest.raises(IndexError):
        DATA[selection]
    with ngio_async.open(image) as ds:
        with pytest.raises(IndexError, match=match):
            ds[selection]
        with pytest.raises(IndexError, match=match):
            ds.levels[0][selection]


def _value(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """A scalar, an array of ``shape``, or one that broadcasts to it."""
    kind = draw(st.sampled_from(["scalar", "numpy scalar", "full", "broadcast"]))
    if kind == "scalar":
        return draw(st.integers(0, 60000))
    if kind == "numpy scalar":
        return np.uint16(draw(st.integers(0, 60000)))
    if kind == "full":
        size = int(np.prod(shape))
        return (np.arange(size, dtype=np.uint16) + 40000).reshape(shape)
    # broadcast: trailing axes kept, some set to 1, leading ones dropped
    keep = draw(st.integers(0, len(shape)))
    sub = shape[len(shape) - keep :]
    sub = tuple(1 if draw(st.booleans()) else n for n in sub)
    return (np.arange(int(np.prod(sub)), dtype=np.uint16) + 50000).reshape(sub)


@st.composite
def writes(draw: st.DrawFn) -> tuple[tuple[Any, ...], Any]:
    sel, _ = draw(selections())
    return sel, _value(draw, reference(DATA, sel).shape)


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory, image: Path) -> Path:
    path = tmp_path_factory.mktemp("w") / "img.zarr"
    shutil.copytree(image, path)
    return path


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=writes())
def test_setitem_is_numpys(writable: Path, case: tuple[tuple[Any, ...], Any]) -> None:
    sel, value = case
    with ngio_async.open(writable, mode="r+") as ds:
        want = np.asarray(ds)
        assign(want, sel, value)
        ds[sel] = value
        np.testing.assert_array_equal(ds[...], want)
    np.testing.assert_array_equal(zarr.open_array(writable / "0", mode="r")[...], want)


@pytest.mark.parametrize(
    "selection",
    [np.s_[0, 0, [3, 1, 3]], np.s_[:, [2, 2, 0], ::-5], np.s_[..., np.array([5, -1, 5])]],
    ids=repr,
)
def test_setitem_with_repeats_takes_the_last_as_numpy(writable: Path, selection: Any) -> None:
    with ngio_async.open(writable, mode="r+") as ds:
        want = np.asarray(ds)
        value = np.arange(int(np.prod(reference(want, selection).shape)), dtype=np.uint16)
        value = value.reshape(reference(want, selection).shape) + 7
        assign(want, selection, value)
        ds[selection] = value
        np.testing.assert_array_equal(ds[...], want)


def test_zero_d_integer_arrays_are_integers_as_in_numpy(writable: Path) -> None:
    with ngio_async.open(writable, mode="r+") as ds:
        want = np.asarray(ds)
        for sel in (np.s_[np.array(1)], np.s_[np.array(-1), 2], np.s_[0, :, np.array(np.uint8(3))]):
            got = ds[sel]
            assert got.shape == want[sel].shape
            np.testing.assert_array_equal(got, want[sel])
        ds[np.array(2), np.array(-1)] = 17
        want[2, -1] = 17
        np.testing.assert_array_equal(ds[...], want)
        with pytest.raises(IndexError, match="axis 0"):  # numpy: a new axis, masked; refused
            ds[np.array(True)]


@pytest.mark.parametrize("mask", [True, False, np.True_], ids=repr)
def test_boolean_scalars_are_a_clear_index_error(image: Path, mask: Any) -> None:
    with ngio_async.open(image) as ds, pytest.raises(IndexError, match="got bool"):
        ds[0, mask]


S3_READS: list[Any] = [
    np.s_[np.int64(-1), ::-3, 25:0:-7],
    np.s_[None, ..., np.uint8(4), None],
    np.s_[:, [20, 0, 0, -1], 5:],
    np.s_[..., 1, 2, 3],
    np.s_[5:1, ...],
    np.s_[:, ::9, ::-13],
]


@pytest.mark.anyio
async def test_s3_reads_and_writes_are_numpys(tmp_path: Path, s3_server: S3Server) -> None:
    """The remote read paths (range reads of inner chunks, strided reads skipping chunks) and
    read-modify-writes of a sharded level on S3 give numpy's pixels."""
    local = _make(tmp_path / "img.zarr", "shards")
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(local, store)
    want = DATA.copy()
    with ngio_async.open(url, mode="r+", **s3_server.options()) as ds:
        for sel in S3_READS:
            got = ds[sel]
            assert type(got) is type(want[sel]) and got.shape == want[sel].shape, sel
            np.testing.assert_array_equal(got, want[sel])
        np.testing.assert_array_equal(ds.oindex[::-1, [3, 3, 0], 7], want[::-1][:, [3, 3, 0], 7])
        np.testing.assert_array_equal(
            ds.vindex[[0, 2], [1, -1], [5, 5]], want[[0, 2], [1, -1], [5, 5]]
        )
        ds[:, 20:2:-3, ::5] = 7
        want[:, 20:2:-3, ::5] = 7
        ds[1, :, [25, 0, 25]] = np.array([1, 2, 3], dtype=np.uint16)
        want[1][:, [25, 0, 25]] = np.array([1, 2, 3], dtype=np.uint16)
        np.testing.assert_array_equal(ds[...], want)
    with ngio_async.open(url, **s3_server.options()) as ds:
        np.testing.assert_array_equal(np.asarray(ds), want)


def test_a_big_endian_level_reads_in_its_own_dtype_by_every_path(tmp_path: Path) -> None:
    """A 0.4 image stored big-endian (``>u2``): every read gives ``ds.dtype``, as numpy and
    zarr-python do (a list index gave native ``uint16``: numpy's concatenate promotes)."""
    root = tmp_path / "be.zarr"
    data = write_image(
        root, Spec(version="0.4", shape=(3, 30, 34), chunks=(1, 8, 8), dtype=">u2", levels=1)
    )[0]
    with ngio_async.open(root) as ds:
        assert ds.dtype == np.dtype(">u2")
        reads = {
            "basic": (ds[1, 2:20, 5], data[1, 2:20, 5]),
            "strided": (ds[:, ::-9, ::9], data[:, ::-9, ::9]),
            "list": (ds[1, [7, 0, 7], ::-1], data[1, [7, 0, 7], ::-1]),
            "list in order": (ds[:, [1, 9, 20]], data[:, [1, 9, 20]]),
            "oindex": (ds.oindex[:, [29, 0], 3], data[:, [29, 0], 3]),
            "vindex": (ds.vindex[[0, 2], [5, 5], [33, 0]], data[[0, 2], [5, 5], [33, 0]]),
            "asarray": (np.asarray(ds), data),
        }
        for name, (got, want) in reads.items():
            assert got.dtype == ds.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=name)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "selection",
    [
        np.s_[:, 20:3:-3, ::7],
        np.s_[1, [20, 0, 5, 5], 10:],
        np.s_[None, 2, 5:9, None, -1],
        np.s_[0, 0, 0, ...],
        np.s_[[2, 0], [5, 20], [25, 0]],
    ],
    ids=repr,
)
async def test_setitem_with_pyramid_equals_a_rebuild(tmp_path: Path, selection: Any) -> None:
    """``write_at(selection, v, pyramid=True)`` (``ds[selection] = v`` with the lower levels
    updated) leaves the same levels as a rebuild from level 0."""
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=SHAPE, dtype="uint16", axes="zyx", levels=3,
        **LAYOUTS["shards"],
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)
        shape = reference(DATA, selection).shape
        value = (np.arange(int(np.prod(shape)), dtype=np.uint16) * 97).reshape(shape)
        await ds.write_at(selection, value, pyramid=True)
        want = DATA.copy()
        assign(want, selection, value)
        np.testing.assert_array_equal(await ds.levels[0][...], want)
        cascaded = [await lvl[...] for lvl in ds.levels[1:]]
        await ds.build_pyramid()
        for lvl, got in zip(ds.levels[1:], cascaded, strict=True):
            np.testing.assert_array_equal(got, await lvl[...])


@pytest.mark.anyio
async def test_s3_reads_through_the_read_cache_of_one_chunk_shards(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """A remote level whose shards hold one chunk each (read whole), opened with a read
    cache: reads give numpy's pixels (each small read recursed between read and read_many
    until a RecursionError)."""
    local = tmp_path / "img.zarr"
    data = write_image(
        local, Spec(shape=(2, 24, 24), chunks=(1, 8, 8), shards=(1, 8, 8), levels=1)
    )[0]
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await upload(local, store)
    limits = ngio_async.Limits(read_cache_bytes=2**20)
    with ngio_async.open(url, limits=limits, **s3_server.options()) as ds:
        assert ds.shards == (1, 8, 8)
        for sel in (np.s_[...], np.s_[1, 2:5, 3], np.s_[:, ::-5, [9, 0, 9]]):
            np.testing.assert_array_equal(ds[sel], reference(data, sel))
        np.testing.assert_array_equal(ds.oindex[:, [20, 1], 4:9], data[:, [20, 1], 4:9])


@pytest.mark.parametrize(
    "axes",
    [
        {"z": [2, 0, 2], "y": slice(None, None, -3), "x": 5},
        {"y": [20, 0], "x": slice(3, None, 4)},
        {"z": np.int64(-1), "y": slice(10, 2, -1), "x": [4, 5]},
    ],
    ids=repr,
)
def test_read_and_write_by_axis_name_are_numpys(writable: Path, axes: dict[str, Any]) -> None:
    """``ds.read(**axes)`` / ``ds.write(v, **axes)``: the selection numpy's ``a[z, y, x]``
    makes, the list's axis in place."""
    sel = tuple(axes.get(name, slice(None)) for name in "zyx")
    with ngio_async.open(writable, mode="r+") as ds:
        ds.write(DATA)
        shape = reference(DATA, sel).shape
        value = (np.arange(int(np.prod(shape))) + 50000).astype(np.uint16).reshape(shape)
        want = DATA.copy()
        assign(want, sel, value)
        ds.write(value, **axes)
        np.testing.assert_array_equal(ds[...], want)
        np.testing.assert_array_equal(ds.read(**axes), reference(want, sel))


BIG = 2**64 - 1  # an uint64 index; as int64 it is -1 (the last element)


@pytest.mark.parametrize(
    ("how", "selection"),
    [
        ("read", np.s_[0, np.array([BIG], dtype=np.uint64)]),
        ("read", np.s_[0, [BIG]]),
        ("read", np.s_[0, 0, [BIG - 25]]),
        ("read oindex", np.s_[0, [BIG - 1, BIG], :]),
        ("read oindex", np.s_[np.uint64(BIG), 0, 0]),
        ("read vindex", np.s_[[0], [0], np.array([BIG], dtype=np.uint64)]),
        ("read vindex", np.s_[[0], np.uint64(BIG), [1]]),
        ("write", np.s_[0, [BIG]]),
        ("write oindex", np.s_[0, 0, np.array([BIG], dtype=np.uint64)]),
        ("write vindex", np.s_[[0], [0], np.array([BIG], dtype=np.uint64)]),
    ],
)
def test_unsigned_indices_past_int64_are_out_of_range(
    writable: Path, how: str, selection: Any
) -> None:
    """An index of 2**64 - 1 is out of bounds, as numpy says: it read and wrote the last
    element (cast to int64 it is -1)."""
    with ngio_async.open(writable, mode="r+") as ds:
        before = ds[...]
        target: Any = {"": ds, "oindex": ds.oindex, "vindex": ds.vindex}[how.partition(" ")[2]]
        match = r"index 184\d+ is out of bounds for axis \d with size"
        if how.startswith("write"):
            with pytest.raises(IndexError, match=match):
                target[selection] = 1
        else:
            with pytest.raises(IndexError, match=match):
                target[selection]
        np.testing.assert_array_equal(ds[...], before)
