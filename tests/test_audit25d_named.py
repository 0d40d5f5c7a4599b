"""Reads and writes by axis name (``ds.read(c="DAPI", z=slice(...))``, ``await
ds.read(...)``, ``ds.write(v, **axes)``) against numpy's ``a[c, z, y, x]`` on the same pixels:
integers of any integer type, slices of any step, ``None``, one list (channel labels, ints or
both; repeats, any order, empty) kept in its axis's place as zarr-python reads it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ngio_async

SHAPE = (3, 4, 9, 10)
AXES = "czyx"
LABELS = ["DAPI", "GFP", "RFP"]
DATA = (np.arange(int(np.prod(SHAPE))) * 7 % 65521).astype(np.uint16).reshape(SHAPE)
INT_TYPES = [int, np.int64, np.int32, np.uint8]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("named") / "img.zarr"
    with ngio_async.create(
        root, shape=SHAPE, dtype="uint16", axes=AXES, levels=1, chunks=(1, 2, 4, 4),
        shards=(2, 2, 8, 8), channels=LABELS,
    ) as ds:  # fmt: skip
        ds.write(DATA)
        yield ds


@st.composite
def named(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """Axis-name keywords and numpy's selection for them (labels as their indices)."""
    listed = draw(st.none() | st.sampled_from(AXES))
    axes: dict[str, Any] = {}
    sel: list[Any] = []
    for name, n in zip(AXES, SHAPE, strict=True):
        if name == listed:
            picks = draw(st.lists(st.integers(-n, n - 1), max_size=4))
            given: list[Any] = list(picks)
            if name == "c":  # some of them as labels
                given = [LABELS[p] if draw(st.booleans()) else p for p in picks]
            axes[name] = given if draw(st.booleans()) else tuple(given)
            sel.append(picks)
            continue
        kind = draw(st.sampled_from(["absent", "none", "int", "slice", "label"]))
        if kind == "label" and name == "c":
            i = draw(st.integers(0, n - 1))
            axes[name] = draw(st.sampled_from([str, np.str_]))(LABELS[i])
            sel.append(i)
        elif kind == "int":
            i = draw(st.integers(-n, n - 1))
            typ = draw(st.sampled_from(INT_TYPES))
            axes[name] = typ(i % n) if typ is np.uint8 else typ(i)
            sel.append(int(axes[name]))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = st.none() | st.integers(-5, 5).filter(bool)
            axes[name] = slice(draw(bound), draw(bound), draw(step))
            sel.append(axes[name])
        else:
            if kind == "none":
                axes[name] = None
            sel.append(slice(None))
    return axes, tuple(sel)


def reference(data: np.ndarray[Any, Any], sel: tuple[Any, ...]) -> Any:
    """numpy's result with the one list's axis kept in place (as zarr-python reads it)."""
    where = [i for i, s in enumerate(sel) if isinstance(s, list)]
    if not where:
        return data[sel]
    (at,) = where
    basic = (*sel[:at], slice(None), *sel[at + 1 :])
    out_axis = sum(1 for s in sel[:at] if isinstance(s, slice))
    return data[basic][(slice(None),) * out_axis + (sel[at],)]


SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(case=named())
def test_reads_by_axis_name_are_numpys(image: Any, case: Any) -> None:
    axes, sel = case
    want = reference(DATA, sel)
    got = image.read(**axes)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(image.read(0, **axes), want)


@pytest.mark.anyio
async def test_async_reads_by_axis_name_are_numpys(image: Any) -> None:
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"c": ["RFP", 0, "RFP"], "z": slice(None, None, -2)}, DATA[[2, 0, 2], ::-2]),
        ({"c": np.str_("GFP"), "y": np.int64(-1), "x": slice(9, 1, -3)}, DATA[1, :, -1, 9:1:-3]),
        ({"z": [], "c": 0}, DATA[0, []]),
        ({"x": (9, 0, 9), "c": None}, DATA[..., [9, 0, 9]]),
        ({"z": np.uint8(3), "y": [8, -9, 8]}, DATA[:, 3][:, [8, -9, 8]]),
    ]
    async with ngio_async.open_async(image.async_dataset.url) as ds:
        for axes, want in cases:
            got = await ds.read(**axes)
            assert got.shape == want.shape, axes
            np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("named_w") / "img.zarr"
    with ngio_async.create(
        root, shape=SHAPE, dtype="uint16", axes=AXES, levels=1, chunks=(1, 2, 4, 4),
        channels=LABELS,
    ) as ds:  # fmt: skip
        ds.write(DATA)
        yield ds


@SETTINGS
@given(case=named(), data=st.data())
def test_writes_by_axis_name_are_numpys(writable: Any, case: Any, data: st.DataObject) -> None:
    axes, sel = case
    want = writable[...]
    shape = reference(want, sel).shape
    if data.draw(st.booleans()):
        value: Any = data.draw(st.integers(0, 65535))
    else:
        value = (np.arange(int(np.prod(shape))) + data.draw(st.integers(0, 9))).astype("u2")
        value = value.reshape(shape)
    where = [i for i, s in enumerate(sel) if isinstance(s, list)]
    if where:  # numpy: assign through the list's axis, kept in place
        at = where[0]
        basic = (*sel[:at], slice(None), *sel[at + 1 :])
        out_axis = sum(1 for s in sel[:at] if isinstance(s, slice))
        want[basic][(slice(None),) * out_axis + (sel[at],)] = value
    else:
        want[sel] = value
    writable.write(value, **axes)
    np.testing.assert_array_equal(writable[...], want)
