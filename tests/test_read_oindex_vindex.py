"""zarr-python's ``oindex`` (orthogonal: each axis on its own, as ``np.ix_``) and ``vindex``
(pointwise: integer arrays broadcast together, or one mask of the whole shape), read and
written, on sharded and unsharded zarr v3 levels and on zarr v2 ones; and ``level[...]`` with
several lists, which zarr-python 3 reads as one or the other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from selections import orthogonal

import ngio_async
from ngio_async.engine.plan import UnsupportedIndexError
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server

SHAPE = (2, 3, 40, 40)  # edge chunks of 8 along y and x
DATA = np.arange(np.prod(SHAPE), dtype="uint16").reshape(SHAPE)
LAYOUTS: dict[str, dict[str, Any]] = {
    "v3-sharded": {"shards": (1, 1, 32, 32)},  # 2x2 inner chunks of 16 per shard
    "v3-chunks": {"shards": False},
    "v2": {"ngff_version": "0.4"},
}


def _make(path: Path, layout: str) -> Path:
    with ngio_async.create(
        path, shape=SHAPE, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16), **LAYOUTS[layout]
    ) as ds:
        ds.write(DATA)
    return path


@pytest.fixture(scope="module", params=list(LAYOUTS))
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(tmp_path_factory.mktemp("ov") / "img.zarr", request.param)


def ortho_reference(a: np.ndarray[Any, Any], sel: tuple[Any, ...]) -> np.ndarray[Any, Any]:
    """numpy's ``a[np.ix_(...)]`` for one int / slice / list / mask per axis."""
    picks: list[np.ndarray[Any, Any]] = []
    kept: list[int] = []
    for ax, s in enumerate(sel):
        n = a.shape[ax]
        if isinstance(s, int | np.integer):
            picks.append(np.array([s % n]))
        elif isinstance(s, slice):
            picks.append(np.arange(n)[s])
            kept.append(ax)
        else:
            arr = np.asarray(s)
            picks.append(np.flatnonzero(arr) if arr.dtype == bool else arr.astype(np.intp))
            kept.append(ax)
    out: np.ndarray[Any, Any] = a[np.ix_(*picks)]
    return out.reshape([len(picks[ax]) for ax in kept])


ORTHO_CASES: list[Any] = [
    np.s_[0, [2, 0], [1, 39, 17], [3, 3, 20]],  # repeats, any order, three axes
    np.s_[[1, 0], :, [5, 30], 4:37:5],
    np.s_[0, np.array([True, False, True]), ::3, [39, -1, 0]],
    np.s_[1, 2, [33], [0, 16, 32]],
    np.s_[..., [7, 8], [9, 25]],
]


@pytest.mark.parametrize("selection", ORTHO_CASES)
def test_oindex_reads_as_zarr_python_and_numpy(image: Path, selection: Any) -> None:
    import zarr

    want = np.asarray(zarr.open_array(str(image / "0"), mode="r").oindex[selection])
    full = (slice(None),) * 2 + selection[1:] if selection[0] is Ellipsis else selection
    np.testing.assert_array_equal(want, ortho_reference(DATA, full))
    with ngio_async.open(image) as ds:
        got = ds.oindex[selection]
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ds.levels[0].oindex[selection], want)


VINDEX_CASES: list[Any] = [
    np.s_[0, 0, [1, 2, 39], [3, 39, 17]],
    np.s_[[1, 0, 1], [2, 2, 0], [-1, 0, 20], [5, 5, 5]],  # repeats of one point
    np.s_[1, 2, np.array([[1, 20], [30, 39]]), np.array([[0], [33]])],  # broadcast 2-d
    np.s_[0, [1], [2], np.arange(0, 40, 3)],
    DATA % 7 == 3,  # a mask of the whole shape
]


@pytest.mark.parametrize("selection", VINDEX_CASES)
def test_vindex_reads_as_zarr_python_and_numpy(image: Path, selection: Any) -> None:
    import zarr

    want = DATA[selection]
    np.testing.assert_array_equal(
        zarr.open_array(str(image / "0"), mode="r").vindex[selection], want
    )
    with ngio_async.open(image) as ds:
        got = ds.vindex[selection]
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ds.levels[0].vindex[selection], want)


@pytest.mark.parametrize(
    "selection",
    [
        np.s_[0, 0, [1, 2], [3, 39]],  # pure fancy: pointwise, (2,)
        np.s_[[1, 0], [2, 0], [5, 33], [0, 17]],
        np.s_[0, 1, np.array([[1, 2]]), np.array([[3], [39]])],  # (2, 2)
        np.s_[[True, False], [0, 2], [1], [3]],  # a boolean list: orthogonal
        DATA > 20000,  # a mask of the whole shape
    ],
)
def test_several_lists_read_as_zarr_python_3(image: Path, selection: Any) -> None:
    import zarr

    want = np.asarray(zarr.open_array(str(image / "0"), mode="r")[selection])
    with ngio_async.open(image) as ds:
        got = ds[selection]
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


@st.composite
def points(draw: st.DrawFn) -> tuple[Any, ...]:
    count = draw(st.integers(0, 8))
    sel: list[Any] = []
    for n in SHAPE:
        if draw(st.booleans()):
            sel.append(draw(st.integers(-n, n - 1)))  # broadcast against the arrays
        else:
            sel.append(
                np.array(
                    draw(st.lists(st.integers(-n, n - 1), min_size=count, max_size=count)),
                    dtype=np.int64,
                )
            )
    if not any(isinstance(s, np.ndarray) for s in sel):
        sel[-1] = np.zeros(count, dtype=np.int64)
    return tuple(sel)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make(tmp_path_factory.mktemp("ovh") / "img.zarr", "v3-sharded")


@settings(max_examples=40, deadline=None)
@given(selection=orthogonal(SHAPE, max_step=9, min_list=0))
def test_any_orthogonal_selection_is_numpys(sharded: Path, selection: tuple[Any, ...]) -> None:
    with ngio_async.open(sharded) as ds:
        got = ds.oindex[selection]
    want = ortho_reference(DATA, selection)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(selection=points())
def test_any_points_are_numpys(sharded: Path, selection: tuple[Any, ...]) -> None:
    with ngio_async.open(sharded) as ds:
        got = ds.vindex[selection]
    want = DATA[selection]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("how", "selection", "error", "match"),
    [
        ("oindex", np.s_[0, [0, 3], :, :], IndexError, "index 3 is out of bounds for axis 1 with size 3"),
        ("oindex", np.s_[0, 0, [-41], :], IndexError, "index -41 is out of bounds for axis 2 with size 40"),
        ("oindex", np.s_[0, 0, np.ones(39, bool), :], IndexError, "along axis 2; size of axis is 40 but size of corresponding boolean axis is 39"),
        ("oindex", np.s_[0, 0, [1.5], :], UnsupportedIndexError, "integers or booleans, got float64 .axis 2."),
        ("oindex", np.s_[0, 0, "a"], UnsupportedIndexError, "got str .axis 2."),
        ("vindex", np.s_[0, 0, [1, 40], [2, 3]], IndexError, "index 40 is out of bounds for axis 2 with size 40"),
        ("vindex", np.s_[0, 0, :, [2, 3]], UnsupportedIndexError, "got slice .axis 2.: use .oindex"),
        ("vindex", np.s_[0, [1], [2]], IndexError, r"one integer or integer array per axis \(4\)"),
        ("vindex", np.s_[0, 0, [1, 2, 3], [2, 3]], IndexError, r"could not be broadcast together with shapes \(\) \(\) \(3,\) \(2,\)"),
        ("vindex", np.zeros((2, 3, 40), bool), IndexError, r"its shape is \(2, 3, 40\), the array's \(2, 3, 40, 40\)"),
        ("vindex", np.s_[0, 0, [True, False], [1, 2]], UnsupportedIndexError, "integer arrays, got an array of bool .axis 2."),
        ("getitem", np.s_[0, [0, 1], [1, 2]], UnsupportedIndexError, r"use \.oindex\[\.\.\.\] .orthogonal"),
        ("getitem", np.s_[0, 0, [1, 2], [1, 2, 3]], IndexError, "could not be broadcast"),
    ],
)  # fmt: skip
def test_bad_selections_say_why(
    sharded: Path, how: str, selection: Any, error: type, match: str
) -> None:
    with ngio_async.open(sharded) as ds:
        read = ds if how == "getitem" else getattr(ds, how)
        with pytest.raises(error, match=match):
            read[selection]


def test_empty_orthogonal_selections(sharded: Path) -> None:
    """zarr-python refuses empty lists (it reads them as floats); numpy's shapes."""
    with ngio_async.open(sharded) as ds:
        assert ds.oindex[0, [], :, [1]].shape == (0, 40, 1)
        assert ds.oindex[:, [], [], 3].shape == (2, 0, 0)
        assert ds.oindex[0, 1, np.zeros(40, bool), ::2].shape == (0, 20)


@pytest.mark.parametrize(
    ("selection", "want_shape"),
    [
        (np.s_[0, 0, [], []], (0,)),
        (np.s_[0, 0, np.zeros((0, 3), np.int64), 1], (0, 3)),
        (np.s_[0, 1, 2, 3], ()),  # numpy: a 0-d result
    ],
)
def test_vindex_edge_shapes_are_numpys(
    sharded: Path, selection: Any, want_shape: tuple[int, ...]
) -> None:
    with ngio_async.open(sharded) as ds:
        got = ds.vindex[selection]
    assert got.shape == want_shape == DATA[selection].shape
    np.testing.assert_array_equal(got, DATA[selection])


# -------------------------------------------------------------------------------------- writes


def _ortho_assign(a: np.ndarray[Any, Any], sel: tuple[Any, ...], value: Any) -> None:
    picks = []
    for ax, s in enumerate(sel):
        n = a.shape[ax]
        if isinstance(s, int):
            picks.append(np.array([s % n]))
        elif isinstance(s, slice):
            picks.append(np.arange(n)[s])
        else:
            arr = np.asarray(s)
            picks.append(np.flatnonzero(arr) if arr.dtype == bool else arr.astype(np.intp))
    shape = [len(p) for p in picks]
    a[np.ix_(*picks)] = np.broadcast_to(value, ortho_reference(a, sel).shape).reshape(shape)


WRITES: list[Any] = [  # (how, selection, value, the reference: np.ix_ or numpy's [])
    ("oindex", np.s_[0, [2, 0], [1, 39, 17], [3, 20]], np.arange(12).reshape(2, 3, 2) + 1000, "ix"),
    ("oindex", np.s_[1, [1, 1], ::7, [5, 38, 5]], np.arange(36).reshape(2, 6, 3) + 2000, "ix"),
    ("oindex", np.s_[[0, 1], 2, 16:32, [0, 39]], 7, "ix"),  # a run: whole chunk rows
    ("oindex", np.s_[0, 0, [], :], 1, "ix"),
    ("vindex", np.s_[0, 0, [1, 2, 39, 1], [3, 39, 17, 3]], [10, 20, 30, 40], "np"),  # last wins
    ("vindex", DATA % 11 == 0, 5, "np"),
    ("vindex", np.s_[1, 2, np.array([[1, 20], [30, 39]]), np.array([[0], [33]])], [[1, 2], [3, 4]], "np"),
    ("getitem", np.s_[0, 1, [5, 6], [7, 8]], [100, 200], "np"),  # pointwise, as zarr-python 3
    ("getitem", np.s_[[1], [True, False, True], [0], [1, 2]], 9, "ix"),  # orthogonal, as it
]  # fmt: skip


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(("how", "selection", "value", "reference"), WRITES)
def test_writes_as_zarr_python_and_numpy(
    tmp_path: Path, layout: str, how: str, selection: Any, value: Any, reference: str
) -> None:
    import zarr

    path = _make(tmp_path / "img.zarr", layout)
    want = DATA.copy()
    if reference == "ix":
        _ortho_assign(want, selection, value)
    else:
        want[selection] = value
    with ngio_async.open(path, mode="r+") as ds:
        if how == "getitem":
            ds[selection] = value
        else:
            getattr(ds.levels[0], how)[selection] = value
    np.testing.assert_array_equal(zarr.open_array(str(path / "0"), mode="r")[...], want)
    empty = isinstance(selection, tuple) and np.size(selection[2]) == 0
    if (reference == "ix" and layout == "v3-sharded") or empty:
        return  # zarr-python 3.1 fails there (orthogonal writes into shards; empty lists)
    other = zarr.open_array(str(_make(tmp_path / "zarr.zarr", layout) / "0"), mode="r+")
    if how == "getitem":
        other[selection] = value
    else:
        getattr(other, how)[selection] = value
    np.testing.assert_array_equal(other[...], want)  # zarr-python writes the same


def test_a_write_of_the_wrong_shape_names_both(sharded: Path) -> None:
    with (
        ngio_async.open(sharded, mode="r+") as ds,
        pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"),
    ):
        ds.vindex[0, 0, [1, 2], [3, 4]] = [1, 2, 3]


# ------------------------------------------------------------------------- async API, pyramid


@pytest.mark.anyio
async def test_async_api(tmp_path: Path) -> None:
    path = _make(tmp_path / "img.zarr", "v3-sharded")
    async with ngio_async.open_async(path, mode="r+") as ds:
        level = ds.levels[0]
        sel = np.s_[0, [2, 0], 5, [1, 33]]
        np.testing.assert_array_equal(await level.oindex[sel], ortho_reference(DATA, sel))
        np.testing.assert_array_equal(await ds.read_orthogonal(sel), ortho_reference(DATA, sel))
        pts = np.s_[1, [0, 2], [3, 39], [39, 3]]
        np.testing.assert_array_equal(await ds.vindex[pts], DATA[pts])
        np.testing.assert_array_equal(await level.read_points(pts), DATA[pts])
        with pytest.raises(TypeError, match=r"await level\.write_points\(selection, data\)"):
            level.vindex[pts] = 1
        await level.write_points(pts, [7, 8])
        await ds.write_orthogonal(np.s_[0, [1], [0, 39], [0]], 9)
        np.testing.assert_array_equal(await ds.vindex[pts], [7, 8])
        np.testing.assert_array_equal(await ds.oindex[0, 1, [0, 39], 0], [9, 9])


@pytest.mark.anyio
async def test_oindex_and_vindex_writes_cascade_to_the_lower_levels(tmp_path: Path) -> None:
    """pyramid=True: the lower levels equal a full rebuild afterwards."""
    async with ngio_async.create_async(
        tmp_path / "img.zarr", shape=SHAPE, dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16),
        levels=2,
    ) as ds:  # fmt: skip
        await ds.write(DATA, pyramid=True)
        await ds.write_orthogonal(np.s_[0, [1, 2], [3, 30], [0, 17, 39]], 999, pyramid=True)
        await ds.write_points(np.s_[1, [0, 2], [5, 38], [38, 5]], 777, pyramid=True)
        whole = tuple(slice(0, n) for n in ds.levels[1].shape)
        cascaded = await ds.levels[1].read(whole)
        await ds.build_pyramid()
        rebuilt = await ds.levels[1].read(whole)
        assert (await ds.oindex[0, [1, 2], [3, 30], [0, 17, 39]] == 999).all()
    np.testing.assert_array_equal(cascaded, rebuilt)


# ------------------------------------------------------------------------ requests on S3


def _s3_image(s3_server: S3Server, **layout: Any) -> str:
    url = s3_server.fresh_url() + "/img.zarr"

    async def make() -> None:
        async with ngio_async.create_async(
            url, shape=(2, 3, 64, 64), dtype="uint16", axes="czyx", chunks=(1, 1, 16, 16),
            **layout, **s3_server.options(),
        ) as ds:  # fmt: skip
            await ds.write(np.arange(2 * 3 * 64 * 64, dtype="uint16").reshape(2, 3, 64, 64))

    anyio.run(make)
    return url


def test_s3_reads_one_get_per_chunk_holding_selected_elements(s3_server: S3Server) -> None:
    """Unsharded: one GET per chunk holding points, never a chunk between them."""
    url = _s3_image(s3_server, shards=False)
    full = np.arange(2 * 3 * 64 * 64, dtype="uint16").reshape(2, 3, 64, 64)

    async def go() -> None:
        store = InstrumentedStore(open_store(url, **s3_server.options()))
        async with ngio_async.open_async(store) as ds:
            store.reset()
            sel = np.s_[0, [2, 0], [1, 50, 3], [60, 2]]  # y chunks 0, 3; x chunks 3, 0
            np.testing.assert_array_equal(await ds.oindex[sel], ortho_reference(full, sel))
            assert sorted(store.calls) == sorted(
                ("get", f"0/c/0/{z}/{y}/{x}") for z in (0, 2) for y in (0, 3) for x in (0, 3)
            )
            assert set(store.calls.values()) == {1}
            store.reset()
            pts = np.s_[1, [0, 0, 2, 0], [1, 2, 63, 1], [1, 60, 0, 1]]  # 3 chunks, a repeat
            np.testing.assert_array_equal(await ds.vindex[pts], full[pts])
            assert dict(store.calls) == {
                ("get", "0/c/1/0/0/0"): 1,
                ("get", "0/c/1/0/0/3"): 1,
                ("get", "0/c/1/2/3/0"): 1,
            }
        await store.aclose()

    anyio.run(go)


def test_s3_sharded_reads_one_index_per_shard_and_one_get_per_inner_chunk(
    s3_server: S3Server,
) -> None:
    url = _s3_image(s3_server, shards=(1, 1, 64, 64))  # 4x4 inner chunks per shard
    full = np.arange(2 * 3 * 64 * 64, dtype="uint16").reshape(2, 3, 64, 64)

    async def go() -> None:
        store = InstrumentedStore(open_store(url, **s3_server.options()))
        async with ngio_async.open_async(store) as ds:
            store.reset()
            pts = np.s_[0, [1, 1, 1, 2], [0, 63, 20, 5], [0, 63, 5, 5]]  # 3 chunks of shard 1
            np.testing.assert_array_equal(await ds.vindex[pts], full[pts])
            # shard (0, 1): its index, then 3 inner chunks; shard (0, 2): index + 1 chunk
            assert dict(store.calls) == {("get", "0/c/0/1/0/0"): 1 + 3, ("get", "0/c/0/2/0/0"): 2}
            store.reset()
            sel = np.s_[1, [0], ::40, [3, 62]]  # y 0 and 40: chunks 0 and 2; x chunks 0, 3
            np.testing.assert_array_equal(await ds.oindex[sel], ortho_reference(full, sel))
            assert dict(store.calls) == {("get", "0/c/1/0/0/0"): 1 + 4}
        await store.aclose()

    anyio.run(go)


@pytest.mark.parametrize(
    "selection",
    [
        np.s_[0, 0, [1, 2], [3, 4]],
        np.s_[[0], [1], [2], [3]],
        np.s_[0, 0, 1, [2, 3]],  # one list among integers: either way, the same result
        np.s_[0, 0, np.array([[1]]), 2],
        np.s_[[True, False], [0, 2], [1], [3]],
        np.s_[[0, 1], [0, 2], [1, 2], [True] * 40],
        np.s_[0, [0, 1], [1, 2]],
        np.s_[:, [0, 1], [1, 2], 0],
        np.s_[0, 0, :, [1, 2]],
        np.s_[..., [1, 2]],
        np.ones(SHAPE, bool),
        np.s_[0, 0, 1, 2],
    ],
)
def test_the_kind_of_a_selection_is_zarr_pythons(selection: Any) -> None:
    """zarr-python 3's own tests of ``array[selection]``: pointwise when it is pure fancy
    indexing, orthogonal when pure orthogonal (several lists), else basic."""
    from zarr.core.indexing import is_pure_fancy_indexing, is_pure_orthogonal_indexing

    from ngio_async.engine.plan import fancy_kind

    items = selection if isinstance(selection, tuple) else (selection,)
    arrays = [s for s in items if isinstance(s, list | np.ndarray)]
    got = fancy_kind(selection, len(SHAPE))
    if is_pure_fancy_indexing(selection, len(SHAPE)):
        one_list = len(arrays) == 1 and np.ndim(arrays[0]) == 1 and isinstance(selection, tuple)
        assert got == "coordinate" or (one_list and got is None)  # None: read as one list
    elif is_pure_orthogonal_indexing(selection, len(SHAPE)) and len(arrays) > 1:
        assert got == "orthogonal"
    else:
        assert got is None


def test_s3_sharded_writes_rewrite_each_shard_once(s3_server: S3Server) -> None:
    """A fancy write touching several inner chunks of one shard reads what it needs and
    rewrites that shard once (one PUT), not once per inner chunk (was: 8, 3 and 4 PUTs)."""
    url = _s3_image(s3_server, shards=(1, 1, 64, 64))  # 4x4 inner chunks of 16x16 per shard
    want = np.arange(2 * 3 * 64 * 64, dtype="uint16").reshape(2, 3, 64, 64)
    writes: list[tuple[str, Any]] = [
        ("write_orthogonal", np.s_[0, [1], [0, 20, 40, 63], [0, 63]]),  # 8 inner chunks
        ("write_points", np.s_[0, [1, 1, 1], [0, 33, 63], [0, 17, 63]]),  # 3 inner chunks
        ("setitem", np.s_[0, 1, [0, 20, 40, 63], :]),  # 4 rows of inner chunks
    ]

    async def go() -> None:
        store = InstrumentedStore(open_store(url, **s3_server.options()))
        async with ngio_async.open_async(store, mode="r+") as ds:
            lvl = ds.levels[0]
            for n, (method, sel) in enumerate(writes):
                store.reset()
                await getattr(lvl, method)(sel, 9000 + n)
                if method == "write_orthogonal":
                    _ortho_assign(want, sel, 9000 + n)
                else:
                    want[sel] = 9000 + n
                assert store.calls[("put", "0/c/0/1/0/0")] == 1, (method, dict(store.calls))
                assert store.method_counts["put"] == 1
                got = await lvl.read(tuple(slice(0, n) for n in want.shape))
                np.testing.assert_array_equal(got, want)
        await store.aclose()

    anyio.run(go)
