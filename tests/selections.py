"""Hypothesis strategies of zarr-python's orthogonal selections, shared by the indexing tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

__all__ = ["orthogonal"]


@st.composite
def orthogonal(
    draw: st.DrawFn, shape: tuple[int, ...], *, max_step: int = 6, min_list: int = 1
) -> tuple[Any, ...]:
    """One int, slice (any step up to ``max_step`` either way), list (repeats, any order, at
    least ``min_list`` long) or boolean mask per axis of ``shape``."""
    sel: list[Any] = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "list", "mask"]))
        if kind == "int":
            sel.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = st.none() | st.integers(1, max_step) | st.integers(-max_step, -1)
            sel.append(slice(draw(bound), draw(bound), draw(step)))
        elif kind == "list":
            sel.append(draw(st.lists(st.integers(-n, n - 1), min_size=min_list, max_size=6)))
        else:
            sel.append(np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))))
    return tuple(sel)
