"""Pyramid kernels and planning (pure): downsample against reference implementations, tiling."""

from __future__ import annotations

import math
import time
from collections import Counter
from itertools import product
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from ngio_async.engine.pyramid import (
    LevelPlan,
    downsample,
    pyramid_plan,
    pyramid_shapes,
    region_footprint,
)

SETTINGS = settings(max_examples=60, deadline=None)

INT_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64"]
DTYPES = [*INT_DTYPES, "float32", "float64", "bool"]


# ------------------------------------------------------------------------------ references
def windows(shape: tuple[int, ...], factors: tuple[int, ...]) -> Any:
    """(output index, block region) of every window, by plain loops."""
    out_shape = tuple(math.ceil(n / f) for n, f in zip(shape, factors, strict=True))
    for idx in product(*(range(o) for o in out_shape)):
        yield (
            idx,
            tuple(
                slice(i * f, min((i + 1) * f, n))
                for i, f, n in zip(idx, factors, shape, strict=True)
            ),
        )


def ref_mean(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    out_shape = tuple(math.ceil(n / f) for n, f in zip(block.shape, factors, strict=True))
    out = np.empty(out_shape, dtype=block.dtype)
    for idx, sl in windows(block.shape, factors):
        vals = block[sl].ravel()
        if block.dtype == np.bool_:
            out[idx] = 2 * int(vals.sum()) >= vals.size
        elif block.dtype.kind in "iu":
            total = sum(int(v) for v in vals)  # exact Python ints
            q, r = divmod(total, vals.size)
            if 2 * r > vals.size or (2 * r == vals.size and q % 2 == 1):
                q += 1
            out[idx] = q
        else:
            out[idx] = np.float64(vals.astype(np.float64).sum()) / vals.size
    return out


def ref_mean_masked(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Padded reshape with a masked array (floats only): an independent second reference."""
    padded_shape = tuple(math.ceil(n / f) * f for n, f in zip(block.shape, factors, strict=True))
    data = np.zeros(padded_shape, dtype=np.float64)
    mask = np.ones(padded_shape, dtype=bool)
    inner = tuple(slice(0, n) for n in block.shape)
    data[inner] = block
    mask[inner] = False
    shape: list[int] = []
    for n, f in zip(padded_shape, factors, strict=True):
        shape += [n // f, f]
    m = np.ma.masked_array(data.reshape(shape), mask.reshape(shape))
    return np.asarray(m.mean(axis=tuple(range(1, len(shape), 2))).astype(block.dtype))


def ref_mode(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    out_shape = tuple(math.ceil(n / f) for n, f in zip(block.shape, factors, strict=True))
    out = np.empty(out_shape, dtype=block.dtype)
    for idx, sl in windows(block.shape, factors):
        counts = Counter(block[sl].ravel().tolist())
        top = max(counts.values())
        out[idx] = min(v for v, c in counts.items() if c == top)
    return out


@st.composite
def blocks(draw: Any, dtypes: list[str] = DTYPES, max_side: int = 9) -> Any:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(0, max_side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if dtype.kind == "f":
        elements = st.floats(-1e6, 1e6, allow_nan=False, width=dtype.itemsize * 8)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    else:
        elements = st.booleans()
    block = draw(hnp.arrays(dtype, shape, elements=elements))
    factors = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    return block, factors


# ------------------------------------------------------------------------------ downsample
@SETTINGS
@given(blocks())
def test_mean_matches_reference(case: Any) -> None:
    block, factors = case
    got = downsample(block, factors, "mean")
    want = ref_mean(block, factors)
    assert got.dtype == block.dtype
    assert got.shape == want.shape
    if block.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


@SETTINGS
@given(blocks(dtypes=["float32", "float64"]))
def test_mean_matches_masked_reference(case: Any) -> None:
    block, factors = case
    np.testing.assert_allclose(
        downsample(block, factors, "mean"), ref_mean_masked(block, factors), rtol=1e-6
    )


@SETTINGS
@given(blocks())
def test_nearest_is_strided_slicing(case: Any) -> None:
    block, factors = case
    got = downsample(block, factors, "nearest")
    np.testing.assert_array_equal(got, block[tuple(slice(None, None, f) for f in factors)])
    assert got.dtype == block.dtype


@SETTINGS
@given(blocks())
def test_mode_matches_reference(case: Any) -> None:
    block, factors = case
    got = downsample(block, factors, "mode")
    assert got.dtype == block.dtype
    np.testing.assert_array_equal(got, ref_mode(block, factors))


@SETTINGS
@given(
    st.integers(1, 3).flatmap(
        lambda ndim: st.tuples(
            hnp.arrays(
                np.uint32,
                st.tuples(*[st.integers(0, 12)] * ndim),
                elements=st.integers(0, 4),  # few labels: many ties
            ),
            st.tuples(*[st.integers(1, 4)] * ndim),
        )
    )
)
def test_mode_few_labels_many_ties(case: Any) -> None:
    block, factors = case
    np.testing.assert_array_equal(downsample(block, factors, "mode"), ref_mode(block, factors))


def test_mode_ties_go_to_smallest() -> None:
    block = np.array([[7, 3, 3, 9], [7, 1, 9, 1]], dtype=np.uint32)
    # window 0: {7: 2, 3: 1, 1: 1} -> 7; window 1: {3: 1, 9: 2, 1: 1} -> 9
    np.testing.assert_array_equal(downsample(block, (2, 2), "mode"), [[7, 9]])
    tie = np.array([[5, 2], [2, 5]], dtype=np.int16)  # 5 and 2 twice each -> 2
    np.testing.assert_array_equal(downsample(tie, (2, 2), "mode"), [[2]])
    all_distinct = np.array([4, 8, 6, 1, 3], dtype=np.uint8)  # -> smallest of each window
    np.testing.assert_array_equal(downsample(all_distinct, (2,), "mode"), [4, 1, 3])
    # the edge window counts only its valid pixels
    edge = np.array([1, 1, 2, 3, 3, 2, 0], dtype=np.uint16)
    np.testing.assert_array_equal(downsample(edge, (3,), "mode"), [1, 3, 0])


def test_mode_large_windows_sort_path() -> None:
    """Windows of more than 16 pixels take the sorting path; it agrees with the reference."""
    rng = np.random.default_rng(1)
    for factors in [(4, 8), (5, 5), (3, 7)]:
        block = rng.integers(0, 4, size=(23, 37), dtype=np.uint32)
        np.testing.assert_array_equal(downsample(block, factors, "mode"), ref_mode(block, factors))


def test_mode_nan_is_not_a_label() -> None:
    f = np.array([np.nan, np.nan, 3.0, 4.0], dtype=np.float32)
    np.testing.assert_array_equal(downsample(f, (4,), "mode"), [3.0])
    np.testing.assert_array_equal(downsample(f[:2], (2,), "mode"), [np.nan])


def test_mean_rounding_and_edges() -> None:
    a = np.array([0, 1, 1, 2, 2, 3, 255], dtype=np.uint8)
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, the edge window [255] alone
    np.testing.assert_array_equal(downsample(a, (2,), "mean"), [0, 2, 2, 255])
    neg = np.array([-1, -2, -3, -4, -128], dtype=np.int8)
    np.testing.assert_array_equal(downsample(neg, (2,), "mean"), [-2, -4, -128])
    big = np.array([2**64 - 1, 2**64 - 1, 2**64 - 2], dtype=np.uint64)
    np.testing.assert_array_equal(
        downsample(big, (2,), "mean"), np.array([2**64 - 1, 2**64 - 2], np.uint64)
    )
    b = np.array([True, False, False, False, True], dtype=bool)
    np.testing.assert_array_equal(downsample(b, (2,), "mean"), [True, False, True])
    f = np.arange(10, dtype=np.float32).reshape(2, 5)
    np.testing.assert_allclose(downsample(f, (2, 2), "mean"), [[3.0, 5.0, 6.5]])


def test_factor_one_and_empty() -> None:
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    for method in ("mean", "nearest", "mode"):
        out = downsample(a, (1, 1), method)
        np.testing.assert_array_equal(out, a)
        assert out is not a
        assert downsample(np.zeros((0, 5), np.uint8), (2, 2), method).shape == (0, 3)


def test_downsample_errors() -> None:
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="factors"):
        downsample(a, (2,), "mean")
    with pytest.raises(ValueError, match="factors"):
        downsample(a, (0, 2), "mean")
    with pytest.raises(ValueError, match="method"):
        downsample(a, (2, 2), "median")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mean"):
        downsample(np.array(["a", "b"]), (2,), "mean")


def test_mode_is_vectorised_fast() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 50, size=(1024, 1024), dtype=np.uint32)
    t0 = time.perf_counter()
    out = downsample(labels, (2, 2), "mode")
    elapsed = time.perf_counter() - t0
    assert out.shape == (512, 512)
    assert elapsed < 2.0, f"mode of 1024x1024 took {elapsed:.2f}s"


# ------------------------------------------------------------------------------ planning
@st.composite
def plans(draw: Any) -> Any:
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 40), min_size=ndim, max_size=ndim)))
    nlevels = draw(st.integers(1, 4))
    factors = [
        tuple(draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim)))
        for _ in range(nlevels)
    ]
    tile = tuple(draw(st.lists(st.integers(1, 8), min_size=ndim, max_size=ndim)))
    source = draw(st.sampled_from(["previous", "level0"]))
    return shape, factors, tile, source


def covered(plan: LevelPlan) -> np.ndarray:
    hits = np.zeros(plan.shape, dtype=np.int32)
    for step in plan:
        hits[step.target] += 1
    return hits


@SETTINGS
@given(plans())
def test_plan_covers_each_level_exactly_once(case: Any) -> None:
    shape, factors, tile, source = case
    shapes = pyramid_shapes(shape, factors)
    levels = pyramid_plan(shape, factors, tile, source=source)
    assert [lp.level for lp in levels] == list(range(1, len(factors) + 1))
    cumulative = (1,) * len(shape)
    for lp, f in zip(levels, factors, strict=True):
        cumulative = tuple(a * b for a, b in zip(cumulative, f, strict=True))
        assert lp.shape == shapes[lp.level]
        assert np.all(covered(lp) == 1)
        assert len(lp) == len(list(lp))
        for step in lp:
            src_shape = shapes[step.source_level]
            want_factors = cumulative if source == "level0" else f
            assert step.source_level == (0 if source == "level0" else lp.level - 1)
            assert step.factors == want_factors
            # aligned to the tile grid; whole tiles except at the far edge
            for s, t, n in zip(step.target, tile, lp.shape, strict=True):
                assert s.start % t == 0
                assert s.stop - s.start == t or s.stop == n
            # source within bounds, starting on a window boundary, reducing to the target
            for s, n, fac, tgt in zip(
                step.source, src_shape, step.factors, step.target, strict=True
            ):
                assert 0 <= s.start < s.stop <= n
                assert s.start == tgt.start * fac
                assert math.ceil((s.stop - s.start) / fac) == tgt.stop - tgt.start


@settings(max_examples=40, deadline=None)
@given(plans(), st.sampled_from(["mean", "nearest", "mode"]), st.randoms(use_true_random=False))
def test_tiles_stitch_to_the_whole_level(case: Any, method: Any, rnd: Any) -> None:
    """Building tile by tile gives exactly the levels built whole, one level at a time."""
    shape, factors, tile, _ = case
    rng = np.random.default_rng(rnd.randint(0, 2**32 - 1))
    whole = [rng.integers(0, 6, size=shape, dtype=np.uint16)]
    for f in factors:
        whole.append(downsample(whole[-1], f, method))
    tiled = [whole[0]]
    for lp in pyramid_plan(shape, factors, tile):
        out = np.full(lp.shape, 999, dtype=np.uint16)
        for step in lp:
            block = tiled[step.source_level][step.source]
            out[step.target] = downsample(block, step.factors, method)
        tiled.append(out)
    for a, b in zip(whole, tiled, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)  # 0.4 s an example (the suite's slowest test at 60)
@given(plans(), st.data())
def test_regions_select_affected_tiles(case: Any, data: Any) -> None:
    shape, factors, tile, source = case
    regions = []
    for _ in range(data.draw(st.integers(0, 3))):
        region = []
        for n in shape:
            a = data.draw(st.integers(0, n))
            b = data.draw(st.integers(a, n))
            region.append(slice(a, b))
        regions.append(tuple(region))
    full = pyramid_plan(shape, factors, tile, source=source)
    partial = pyramid_plan(shape, factors, tile, source=source, regions=regions)
    nonempty = [r for r in regions if all(s.stop > s.start for s in r)]
    cumulative = (1,) * len(shape)
    for lp_full, lp, f in zip(full, partial, factors, strict=True):
        cumulative = tuple(a * b for a, b in zip(cumulative, f, strict=True))
        # truly affected target pixels: every output window that reads a changed level-0 pixel
        affected = np.zeros(lp.shape, dtype=bool)
        for r in nonempty:
            changed0 = np.zeros(shape, dtype=bool)
            changed0[r] = True
            mask = changed0
            for g in factors[: lp.level]:  # through every level: a window is dirty if any input is
                mask = _any_reduce(mask, g)
            affected |= mask
        steps = list(lp)
        hits = np.zeros(lp.shape, dtype=np.int32)
        for step in steps:
            hits[step.target] += 1
        assert np.all(hits <= 1), "a tile planned twice"
        assert np.all(hits[affected] == 1), "an affected pixel is not planned"
        # nothing outside the footprint: every planned tile touches a changed footprint
        for step in steps:
            assert any(
                all(
                    s.start < fp.stop and fp.start < s.stop
                    for s, fp in zip(step.target, region_footprint(r, cumulative), strict=True)
                )
                for r in nonempty
            )
        # the steps are those of the full plan
        full_steps = {_key(st_.target): st_ for st_ in lp_full}
        assert all(full_steps[_key(s.target)] == s for s in steps)
    if not nonempty:
        assert all(len(lp) == 0 for lp in partial)


def _key(region: tuple[slice, ...]) -> tuple[tuple[int, int], ...]:
    return tuple((s.start, s.stop) for s in region)  # slices are unhashable before 3.12


def _any_reduce(mask: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(tuple(math.ceil(n / f) for n, f in zip(mask.shape, factors, strict=True)), bool)
    for idx, sl in windows(mask.shape, factors):
        out[idx] = bool(mask[sl].any())
    return out


def test_plan_example_and_tile_per_level() -> None:
    levels = pyramid_plan((2, 3, 64, 80), [(1, 1, 2, 2), (1, 1, 2, 2)], (1, 1, 16, 16))
    assert [lp.shape for lp in levels] == [(2, 3, 32, 40), (2, 3, 16, 20)]
    assert [len(lp) for lp in levels] == [2 * 3 * 2 * 3, 2 * 3 * 1 * 2]
    last = list(levels[0])[-1]
    assert last.target == (slice(1, 2), slice(2, 3), slice(16, 32), slice(32, 40))
    assert last.source == (slice(1, 2), slice(2, 3), slice(32, 64), slice(64, 80))
    per_level = pyramid_plan((64, 80), [(2, 2), (2, 2)], [(32, 32), (None, 8)])
    assert per_level[0].tile == (32, 32)
    assert per_level[1].tile == (16, 8)
    assert per_level[1].grid == (1, 3)
    # regions as (start, stop) pairs; an empty region changes nothing
    lv = pyramid_plan((64, 80), [(2, 2)], (16, 16), regions=[((0, 1), (79, 80)), ((5, 5), (0, 80))])
    assert [s.target for s in lv[0]] == [(slice(0, 16), slice(32, 40))]
    # an index is one pixel (negative from the end), as in a numpy selection
    lv = pyramid_plan((64, 80), [(2, 2)], (16, 16), regions=[(np.int64(40), -1)])
    assert [s.target for s in lv[0]] == [(slice(16, 32), slice(32, 40))]


def test_plan_errors() -> None:
    with pytest.raises(ValueError, match="factors"):
        pyramid_plan((8, 8), [(2,)], (4, 4))
    with pytest.raises(ValueError, match="tile"):
        pyramid_plan((8, 8), [(2, 2)], (4,))
    with pytest.raises(ValueError, match="tile"):
        pyramid_plan((8, 8), [(2, 2)], (0, 4))
    with pytest.raises(ValueError, match="outside"):
        pyramid_plan((8, 8), [(2, 2)], (4, 4), regions=[(slice(0, 9), slice(0, 1))])
    with pytest.raises(ValueError, match="outside"):
        pyramid_plan((8, 8), [(2, 2)], (4, 4), regions=[(8, slice(0, 1))])
    with pytest.raises(TypeError, match=r"each axis takes a slice, .* got 2\.5"):
        pyramid_plan((8, 8), [(2, 2)], (4, 4), regions=[(2.5, slice(0, 1))])
    with pytest.raises(TypeError, match="a region is one slice"):
        pyramid_plan((8, 8), [(2, 2)], (4, 4), regions=[slice(0, 1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="source"):
        pyramid_plan((8, 8), [(2, 2)], (4, 4), source="level1")  # type: ignore[arg-type]
    with pytest.raises(IndexError):
        pyramid_plan((8, 8), [(2, 2)], (4, 4))[0].step((1, 0))
