"""``ds[1, :, [2, 3]]``: an integer and a list separated by a slice. numpy moves the list's
axis first (its advanced-indexing rule: shape (2, 5)); zarr-python's ``Array.__getitem__``,
dask and tensorstore's ``__getitem__`` keep it in place (shape (5, 2)), and so does ngio_async
(the README's indexing rule). Pinned here against the tools themselves: a zarr-python that
changes its answer fails this test rather than ours silently differing from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

KEY: tuple[Any, ...] = (1, slice(None), [2, 3])


def _others(data: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """What each tool gives for :data:`KEY`."""
    z = zarr.create_array(store={}, shape=data.shape, dtype=data.dtype, chunks=(2, 2, 2))
    z[...] = data
    out = {"numpy": data[KEY], "zarr": np.asarray(z[KEY])}
    try:
        import dask.array as da

        out["dask"] = np.asarray(da.from_array(data, chunks=2)[KEY])  # type: ignore[no-untyped-call]
    except ImportError:
        pass
    try:
        import tensorstore as ts

        out["tensorstore"] = np.asarray(ts.array(data)[KEY].read().result())
    except ImportError:
        pass
    return out


def test_an_int_and_a_list_apart_keep_the_list_axis_in_place(tmp_path: Path) -> None:
    data = np.arange(4 * 5 * 6, dtype="uint16").reshape(4, 5, 6)
    url = tmp_path / "x.ome.zarr"
    with ngio_async.create(url, shape=data.shape, dtype="uint16", axes="zyx", levels=1) as ds:
        ds.write(data)
    others = _others(data)
    assert others["numpy"].shape == (2, 5)  # numpy: the list's axis first
    in_place = data[1][:, [2, 3]]  # (5, 2): zarr-python's orthogonal rule
    for name, got in others.items():
        if name != "numpy":
            np.testing.assert_array_equal(got, in_place, err_msg=name)
    with ngio_async.open(url) as ds:
        np.testing.assert_array_equal(ds[KEY], in_place)
        np.testing.assert_array_equal(ds.oindex[KEY], in_place)
        with pytest.raises(IndexError, match=r"\.oindex"):  # a slice: refused, as zarr-python
            ds.vindex[KEY]
        # two lists: zarr-python refuses them in __getitem__ (IndexError), numpy reads them
        # pointwise; here the error says which of the two to ask for
        with pytest.raises(IndexError, match=r"\.oindex.*\.vindex"):
            ds[[1, 2], :, [2, 3]]
