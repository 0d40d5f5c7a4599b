"""Typed access to the nodes of a hierarchy opened with zarr-python (``Group[key]`` is typed
``Array | Group``): the tests that read what ngio_async wrote back with zarr-python."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr


def zarr_array(group: zarr.Group, path: str) -> zarr.Array[Any]:
    """The array at ``path`` below ``group`` (fails the test if it is a group)."""
    node = group[path]
    assert isinstance(node, zarr.Array), f"{path} is not a zarr array"
    return node


def zarr_group(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` below ``group`` (fails the test if it is an array)."""
    node = group[path]
    assert isinstance(node, zarr.Group), f"{path} is not a zarr group"
    return node


def zarr_read(group: zarr.Group, path: str, selection: Any = ...) -> np.ndarray[Any, Any]:
    """``group[path][selection]`` as a numpy array (a 0-d one for a single element)."""
    return np.asarray(zarr_array(group, path)[selection])
