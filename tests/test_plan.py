"""Region planning and numpy basic-index normalisation (pure, no store)."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ngio_async.engine import (
    keys_ahead,
    normalize_selection,
    plan_chunks,
    plan_shards,
    region_shape,
)
from ngio_async.engine.plan import Region, chunk_grid_range, nchunks
from ngio_async.meta.zarr import ArrayV2Meta, ArrayV3Meta, decode_array_v2, decode_array_v3

SETTINGS = settings(max_examples=50, deadline=None)


def meta_v2(shape: tuple[int, ...], chunks: tuple[int, ...], sep: str = ".") -> ArrayV2Meta:
    doc = {
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": "<u2",
        "compressor": None,
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": sep,
    }
    return decode_array_v2(json.dumps(doc))


def meta_v3(
    shape: tuple[int, ...], chunks: tuple[int, ...], shards: tuple[int, ...] | None = None
) -> ArrayV3Meta:
    bytes_codec = {"name": "bytes", "configuration": {"endian": "little"}}
    codecs: list[Any] = [bytes_codec]
    if shards is not None:
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": chunks,
                    "codecs": codecs,
                    "index_codecs": [bytes_codec, {"name": "crc32c"}],
                },
            }
        ]
    doc = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": shards or chunks}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": 0,
        "codecs": codecs,
    }
    return decode_array_v3(json.dumps(doc))


@st.composite
def grids(draw: st.DrawFn) -> tuple[ArrayV3Meta, Region]:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.integers(0, 12)) for _ in range(ndim))
    chunks = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    shards = tuple(c * draw(st.integers(1, 3)) for c in chunks) if draw(st.booleans()) else None
    region = []
    for n in shape:
        a = draw(st.integers(0, n))
        region.append(slice(a, draw(st.integers(a, n))))
    return meta_v3(shape, chunks, shards), tuple(region)


@SETTINGS
@given(grids())
def test_chunks_tile_the_region_exactly(case: tuple[ArrayV3Meta, Region]) -> None:
    meta, region = case
    src = np.arange(max(1, int(np.prod(meta.shape))), dtype=np.int64)[: int(np.prod(meta.shape))]
    src = src.reshape(meta.shape)
    out = np.full(region_shape(region), -1, dtype=np.int64)
    hits = np.zeros(region_shape(region), dtype=np.int64)
    plans = list(plan_chunks(meta, region))
    assert len(plans) == nchunks(meta, region)
    for p in plans:
        origin = tuple(c * s for c, s in zip(p.coords, meta.chunks, strict=True))
        # pad the chunk like a stored edge chunk
        chunk = np.full(meta.chunks, -2, dtype=np.int64)
        sl = tuple(
            slice(o, min(o + s, n)) for o, s, n in zip(origin, meta.chunks, meta.shape, strict=True)
        )
        part = src[sl]
        chunk[tuple(slice(0, m) for m in part.shape)] = part
        out[p.out_selection] = chunk[p.chunk_selection]
        hits[p.out_selection] += 1
        outer = meta.stored_chunks
        assert p.key == meta.chunk_key(tuple(o // s for o, s in zip(origin, outer, strict=True)))
    np.testing.assert_array_equal(out, src[region])
    assert np.all(hits == 1)


@SETTINGS
@given(grids())
def test_shards_group_the_chunks(case: tuple[ArrayV3Meta, Region]) -> None:
    meta, region = case
    flat = {(p.key, p.coords): p for p in plan_chunks(meta, region)}
    cps = tuple(s // c for s, c in zip(meta.stored_chunks, meta.chunks, strict=True))
    seen = 0
    for sp in plan_shards(meta, region):
        assert sp.key == meta.chunk_key(sp.coords)
        assert sp.chunks, "a shard plan always needs at least one inner chunk"
        for ic in sp.chunks:
            assert all(0 <= c < n for c, n in zip(ic.coords, cps, strict=True))
            g = tuple(s * n + c for s, n, c in zip(sp.coords, cps, ic.coords, strict=True))
            p = flat[(sp.key, g)]
            assert p.chunk_selection == ic.chunk_selection
            assert p.out_selection == ic.out_selection
            # the shard's out selection contains every inner piece
            for big, small in zip(sp.out_selection, ic.out_selection, strict=True):
                assert big.start <= small.start <= small.stop <= big.stop
            seen += 1
    assert seen == len(flat)


def test_keys_and_selections_v2() -> None:
    meta = meta_v2((10, 10), (4, 4), sep="/")
    plans = list(plan_chunks(meta, (slice(3, 9), slice(0, 4))))
    assert [p.key for p in plans] == ["0/0", "1/0", "2/0"]
    assert [p.chunk_selection for p in plans] == [
        (slice(3, 4), slice(0, 4)),
        (slice(0, 4), slice(0, 4)),
        (slice(0, 1), slice(0, 4)),
    ]
    assert [p.out_selection[0] for p in plans] == [slice(0, 1), slice(1, 5), slice(5, 6)]
    assert [p.key for p in plan_chunks(meta_v2((10, 10), (4, 4)), (slice(0, 1), slice(5, 6)))] == [
        "0.1"
    ]


def test_sharded_plan_example() -> None:
    meta = meta_v3((16, 16), (4, 4), (8, 8))
    plans = list(plan_shards(meta, (slice(6, 10), slice(0, 4))))
    assert [(p.key, [c.coords for c in p.chunks]) for p in plans] == [
        ("c/0/0", [(1, 0)]),
        ("c/1/0", [(0, 0)]),
    ]
    assert plans[0].chunks[0].chunk_selection == (slice(2, 4), slice(0, 4))
    assert plans[1].chunks[0].out_selection == (slice(2, 4), slice(0, 4))
    # chunk plans name the shard holding each chunk
    assert [p.key for p in plan_chunks(meta, (slice(6, 10), slice(0, 4)))] == ["c/0/0", "c/1/0"]


def test_zero_dim_and_empty_regions() -> None:
    meta = meta_v3((), ())
    (p,) = plan_chunks(meta, ())
    assert p.key == "c"
    assert p.coords == ()
    meta = meta_v3((5, 5), (2, 2))
    assert list(plan_chunks(meta, (slice(2, 2), slice(0, 5)))) == []
    assert list(plan_shards(meta, (slice(2, 2), slice(0, 5)))) == []
    assert chunk_grid_range((slice(3, 3),), (2,)) == (range(0),)


@pytest.mark.parametrize(
    "region",
    [
        (slice(0, 6), slice(0, 5)),
        (slice(0, 5),),
        (slice(-1, 3), slice(0, 5)),
        (slice(0, 5, 2), slice(0, 5)),
    ],
)
def test_bad_regions(region: Region) -> None:
    with pytest.raises(ValueError, match="region"):
        list(plan_chunks(meta_v3((5, 5), (2, 2)), region))


# ---------------------------------------------------------------------------- basic indexing


@st.composite
def basic_index(draw: st.DrawFn) -> tuple[tuple[int, ...], Any]:
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.integers(0, 7)) for _ in range(ndim))
    parts: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int" and n > 0:
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 3, n + 3)
            step = st.none() | st.integers(1, 4) | st.integers(-4, -1)
            parts.append(slice(draw(bound), draw(bound), draw(step)))
        else:
            parts.append(slice(None))
        if draw(st.integers(0, 4)) == 0:
            parts.append(None)  # newaxis
    # sometimes drop trailing parts or replace a run by an ellipsis
    if len(parts) > 0 and draw(st.booleans()):
        i = draw(st.integers(0, len(parts)))
        j = draw(st.integers(i, len(parts)))
        parts = [*parts[:i], Ellipsis, *parts[j:]]
    elif len(parts) > 0 and draw(st.booleans()):
        parts = parts[: draw(st.integers(0, len(parts)))]
    index: Any = tuple(parts)
    if len(parts) == 1 and draw(st.booleans()):
        index = parts[0]
    return shape, index


@SETTINGS
@given(basic_index())
def test_normalize_matches_numpy(case: tuple[tuple[int, ...], Any]) -> None:
    shape, index = case
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    expected = a[index]
    sel = normalize_selection(index, shape)
    for s, n in zip(sel.region, shape, strict=True):
        assert 0 <= s.start <= s.stop <= n
        assert s.step is None
    got = sel.apply(a[sel.region])
    assert got.shape == expected.shape == sel.shape
    np.testing.assert_array_equal(got, expected)


def test_normalize_examples() -> None:
    sel = normalize_selection((-1, slice(1, None, 3)), (4, 10))
    assert sel.region == (slice(3, 4), slice(1, 8))
    assert sel.steps == (1, 3)
    assert sel.drop_axes == (0,)
    assert sel.shape == (3,)
    assert normalize_selection(np.int64(2), (5,)).region == (slice(2, 3),)
    assert normalize_selection(..., (2, 3)).region == (slice(0, 2), slice(0, 3))
    assert normalize_selection(slice(10, 20), (5,)).region == (slice(5, 5),)
    back = normalize_selection((None, slice(None, 1, -3), ..., None), (10, 4))
    assert back.region == (slice(3, 10), slice(0, 4))  # rows 9, 6, 3 (covering, step 1)
    assert back.steps == (-3, 1)
    assert back.new_axes == (0, 3)
    assert back.shape == (1, 3, 4, 1)
    assert not back.is_region


@pytest.mark.parametrize(
    ("index", "exc"),
    [
        (5, IndexError),
        (-6, IndexError),
        ((0, 0, 0), IndexError),
        ((..., ...), IndexError),
        (True, TypeError),
        ([1, 2], TypeError),
        (np.array([1]), TypeError),
        (np.array([True] * 5), TypeError),
        ((slice(None), [0, 1]), TypeError),
        (slice(None, None, 0), ValueError),
        ((None, 0, 0, 0), IndexError),
        (1.5, TypeError),
    ],
)
def test_normalize_errors(index: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        normalize_selection(index, (5, 5))


def test_plans_cover_all_chunks_in_c_order() -> None:
    meta = meta_v3((5, 7), (2, 3))
    region = (slice(0, 5), slice(0, 7))
    coords = [p.coords for p in plan_chunks(meta, region)]
    assert coords == list(itertools.product(range(3), range(3)))


def test_keys_ahead_puts_each_new_key_ahead_of_its_item() -> None:
    items = ["t0", "t1", "t2", "t3", "t4", "t5"]
    shard = {"t0": "A", "t1": "A", "t2": "B", "t3": "A", "t4": "C", "t5": "C"}
    got = list(keys_ahead(iter(items), lambda t: [shard[t]], ahead=2))
    assert [g for g in got if g.startswith("t")] == items  # every item, in order
    assert got == ["A", "B", "t0", "t1", "C", "t2", "t3", "t4", "t5"]
    for key in "ABC":  # each key once, at least 2 items before the first item needing it
        first = min(i for i, t in enumerate(items) if shard[t] == key)
        assert got.count(key) == 1
        assert got.index(f"t{first}") - got.index(key) >= 1 + min(first, 2)
    # a forgotten key (beyond `remember`) is asked for again; ahead=0 passes items straight on
    again = list(keys_ahead(iter(["x", "y", "x"]), lambda t: [t.upper()], ahead=0, remember=1))
    assert again == ["X", "x", "Y", "y", "X", "x"]


def test_strided_parts_read_only_the_chunks_holding_selected_elements() -> None:
    from ngio_async.engine import strided_parts

    region = (slice(0, 1), slice(0, 2048), slice(3, 2048))
    parts = strided_parts(region, (1, 1024, 1024), (1, 64, 64))
    assert parts is not None and len(parts) == 4  # 2 x 2 selected pixels, 4 of 1,024 chunks
    assert {p[0][1].start for p in parts} == {0, 1024} and {p[0][2].start for p in parts} == {
        3,
        1027,
    }
    assert all(s.stop - s.start == 1 for p in parts for s in p[0][1:])
    assert sorted(p[1][1:] for p in parts) == [
        (slice(0, 1), slice(0, 1)),
        (slice(0, 1), slice(1, 2)),
        (slice(1, 2), slice(0, 1)),
        (slice(1, 2), slice(1, 2)),
    ]
    # no step, or all of it in one stored object: the covering read
    assert strided_parts(region, (1, 1, 1), (1, 64, 64)) is None
    assert strided_parts(region, (1, 2, 3), (1, 64, 64), (1, 4096, 4096)) is None
    # steps of a chunk or below: one piece per stored object (never the whole covering region)
    parts = strided_parts(region, (1, 64, -64), (1, 64, 64))
    assert parts is not None and len(parts) == 32 * 32
    parts = strided_parts(region, (1, 2, 3), (1, 64, 64), (1, 512, 512))
    assert parts is not None and len(parts) == 4 * 4


def test_part_cells_group_stored_objects_last_axes_first() -> None:
    from ngio_async.engine.plan import part_cells

    region = (slice(0, 2), slice(0, 1000), slice(0, 1000))
    # everything fits: one cell per axis (the covering read)
    assert part_cells(region, (1, 64, 64), 2, 8 << 20) == (2, 1000, 1000)
    # 64 KiB: whole rows of 1000 pixels, 32 at a time (whole stored objects along y)
    assert part_cells(region, (1, 16, 64), 2, 64 << 10) == (1, 32, 1000)
    # less than one stored object: one stored object
    assert part_cells(region, (1, 64, 64), 2, 1024) == (1, 64, 64)


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 9), st.integers(1, 3)), max_size=3),
    st.data(),
)
def test_strided_parts_assemble_the_selection_one_stored_object_at_a_time(
    axes: list[tuple[int, int, int]], data: st.DataObject
) -> None:
    from ngio_async.engine import strided_parts

    shape = tuple(n for n, _, _ in axes)
    chunks = tuple(c for _, c, _ in axes)
    stored = tuple(c * k for _, c, k in axes)
    index = tuple(
        slice(
            data.draw(st.none() | st.integers(-n - 2, n + 2)),
            data.draw(st.none() | st.integers(-n - 2, n + 2)),
            data.draw(st.integers(1, 12) | st.integers(-12, -1)),
        )
        for n in shape
    )
    a = np.arange(math.prod(shape), dtype=np.int32).reshape(shape)
    sel = normalize_selection(index, shape)
    parts = strided_parts(sel.region, sel.steps, chunks, stored)
    if parts is None:
        return
    full = tuple(
        -(-(r.stop - r.start) // abs(s)) for r, s in zip(sel.region, sel.steps, strict=True)
    )
    out = np.full(full, -1, dtype=np.int32)
    every = tuple(slice(None, None, abs(s)) for s in sel.steps)
    for sub, target in parts:
        # inside one stored object, starting and ending on a selected element
        for r, sr, s, cell in zip(sel.region, sub, sel.steps, stored, strict=True):
            assert sr.start // cell == (sr.stop - 1) // cell
            assert (sr.start - r.start) % abs(s) == 0 and (sr.stop - 1 - r.start) % abs(s) == 0
        assert (out[target] == -1).all()  # each element once
        out[target] = a[sub][every]
    back = tuple(slice(None, None, -1 if s < 0 else 1) for s in sel.steps)
    np.testing.assert_array_equal(out[back], a[index])
