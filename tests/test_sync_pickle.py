"""Pickling the blocking objects (dask's processes and distributed schedulers send them)."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import ClosedError, _sync_api

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer


def test_plates_labels_pickle_by_reopening_and_iterators_refuse_clearly(tmp_path: Path) -> None:
    url = tmp_path / "plate.zarr"
    with ngio_async.create_plate(url, rows=["A"], columns=["1"], ngff_version="0.5") as plate:
        # was: TypeError("cannot pickle '_thread.lock' object")
        copy = pickle.loads(pickle.dumps(plate))
        assert copy.mode == "r+"
        assert copy.url == plate.url
        copy.close()
        with plate.add_image(
            "A", "1", field="0", shape=(1, 32, 32), dtype="uint8", axes="cyx"
        ) as fov:
            fov.write(np.full((1, 32, 32), 3, "uint8"))
            fov.labels.create("cells", dtype="uint16").close()
    with ngio_async.open_plate(url) as plate, pickle.loads(pickle.dumps(plate)) as copy:
        assert copy.mode == "r"
        assert copy.wells == ["A/1"]
        with copy.image("A", "1") as fov:
            assert int(fov[...].sum()) == 3 * 32 * 32
            labels = pickle.loads(pickle.dumps(fov.labels))  # was: '_thread.lock'
            assert labels.names() == ["cells"]
            labels._parent.close()
            tiles = fov.tiles()
            with pytest.raises(TypeError, match="pickle the dataset"):
                pickle.dumps(tiles)
            tiles.close()


def test_an_image_made_by_create_like_pickles_as_writable(tmp_path: Path) -> None:
    with (
        ngio_async.create(tmp_path / "a.zarr", shape=(32, 32), dtype="uint8", axes="yx") as src,
        ngio_async.create_like(src, tmp_path / "b.zarr", dtype="uint16") as made,
    ):
        # was: TypeError "it was not opened from a URL or path"
        with pickle.loads(pickle.dumps(made)) as copy:
            assert copy.mode == "r+"
            copy[0:4, 0:4] = np.full((4, 4), 300, "uint16")
        assert int(made[0:4, 0:4].sum()) == 300 * 16


def test_unpickling_does_no_io_until_first_use(
    http_server: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distributed scheduler unpickles the datasets of a graph only to pass them on."""
    spec = Spec(version="0.5", shape=(32, 32), chunks=(16, 16), levels=2)
    data = write_image(http_server.root / "img", spec)
    with ngio_async.open(f"{http_server.url}img") as ds:
        payloads = [pickle.dumps(x) for x in (ds, ds.levels[1], ds.labels, ds, ds)]
    monkeypatch.setattr(_sync_api, "_shared", _sync_api._SharedDatasets(4))
    monkeypatch.setattr(_sync_api, "_process", "another process")  # as a worker unpickles
    http_server.reset()
    copy, level, labels, unused, again = (pickle.loads(p) for p in payloads)
    assert "not opened yet" in repr(copy) and pickle.loads(pickle.dumps(copy)) is not copy
    unused.close()
    assert http_server.requests == []  # was: 3 GETs per copy, at unpickling
    np.testing.assert_array_equal(level[...], data[1])  # the first use opens
    assert labels.names() == [] and copy.shape == (32, 32)
    np.testing.assert_array_equal(again[...], data[0])
    assert copy.async_dataset is again.async_dataset  # one opening, shared
    assert "(closed)" in repr(unused)
    with pytest.raises(ClosedError):
        unused[0, 0]
    for x in (copy, again, level._parent, labels._parent):
        x.close()
    _sync_api._shared.close()


def test_a_memory_image_refuses_pickling_clearly() -> None:
    with ngio_async.create(
        "memory://", shape=(16, 16), dtype="uint8", axes="yx", chunks=(16, 16)
    ) as ds:
        # was: pickled, then the copy found a new, empty store: 'no OME-Zarr group at memory://'
        with pytest.raises(TypeError, match=r"memory:// store lives in this process only"):
            pickle.dumps(ds)
        with pytest.raises(TypeError, match=r"memory://"):
            pickle.dumps(ds.levels[0])
