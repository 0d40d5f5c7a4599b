"""A display window another tool wrote (``min``/``max``: a 12-bit camera's 0..4095, as
OME-TIFF exports and ome-zarr-py write them) keeps its ``min``/``max`` and its unknown keys
when ``set_channels`` sets its ``start``/``end`` from a ``(start, end)`` pair or from
percentiles, as ngio's ``set_channel_windows`` does (they became the data type's 0..65535)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import zarr

import ngio_async

if TYPE_CHECKING:
    from pathlib import Path

PEER_WINDOW = {"min": 0, "max": 4095, "start": 10, "end": 300, "x-by": "peer"}


def _image(path: Path) -> None:
    with ngio_async.create(
        path,
        shape=(2, 16, 16),
        dtype="uint16",
        axes="cyx",
        channels=["A", "B"],
        ngff_version="0.4",
    ) as ds:
        ds.write(np.arange(1, 513, dtype=np.uint16).reshape(2, 16, 16))
    group = zarr.open_group(path, mode="r+")
    attrs: Any = group.attrs.asdict()
    attrs["omero"]["channels"][0]["window"] = dict(PEER_WINDOW)
    group.attrs.put(attrs)


def _window(path: Path, channel: int = 0) -> dict[str, Any]:
    attrs: Any = zarr.open_group(path, mode="r").attrs.asdict()
    return dict(attrs["omero"]["channels"][channel]["window"])


def test_a_start_end_pair_keeps_the_stored_min_max_as_ngio(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "ngio.zarr"
    _image(ours)
    _image(theirs)
    with ngio_async.open(ours, mode="r+") as ds:
        ds.set_channels(windows=[(20, 400), None])
    assert _window(ours) == {"min": 0, "max": 4095, "start": 20, "end": 400, "x-by": "peer"}
    ngio = pytest.importorskip("ngio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ngio.open_ome_zarr_container(str(theirs)).set_channel_windows([(20, 400), (1, 2)])
    expected = _window(theirs)
    got = _window(ours)
    assert {k: got[k] for k in expected} == expected  # min, max, start, end
    with ngio_async.open(ours, mode="r+") as ds:  # beyond the range: widened to hold it
        ds.set_channels(windows=[(5, 5000), None])
    assert _window(ours) == {"min": 0, "max": 5000, "start": 5, "end": 5000, "x-by": "peer"}


def test_percentile_windows_keep_the_stored_min_max(tmp_path: Path) -> None:
    path = tmp_path / "img.zarr"
    _image(path)
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_channels(windows="percentiles", percentiles=(0, 100))
    assert _window(path) == {"min": 0, "max": 4095, "start": 1, "end": 256, "x-by": "peer"}
    assert _window(path, 1) == {"min": 0, "max": 65535, "start": 257, "end": 512}


def test_a_color_or_active_flag_of_none_keeps_the_channels(tmp_path: Path) -> None:
    """``None`` for one channel keeps its color / ``active`` flag (the README's "one value per
    channel, None keeps it"): it was a ``TypeError`` ("colors[0] must be a color")."""
    path = tmp_path / "img.zarr"
    _image(path)
    with ngio_async.open(path, mode="r+") as ds:
        ds.set_channels(colors=["FF00FF", "00FFFF"], active=[False, True])
        ds.set_channels(colors=[None, "#ffff00"], active=[True, None])
    attrs: Any = zarr.open_group(path, mode="r").attrs.asdict()
    channels = attrs["omero"]["channels"]
    assert [(c["color"], c["active"]) for c in channels] == [("FF00FF", True), ("FFFF00", True)]
    assert channels[0]["window"] == PEER_WINDOW  # untouched
