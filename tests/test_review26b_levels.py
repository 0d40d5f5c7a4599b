"""Review of the blocking dataset keeping its levels weakly (``SyncDataset.levels``): two
threads asking for the levels at once may each make their own level objects (the list is
made without a lock); each still pickles (dask's process and distributed schedulers). The
interleaving is injected: the other thread's ``ds.levels`` runs while this one makes its
first level."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import numpy as np

import ngio_async
from ngio_async import _sync_api

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_levels_made_by_two_threads_at_once_both_pickle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(url, shape=(32, 32), dtype="uint8", axes="yx") as ds:
        ds.write(np.arange(32 * 32, dtype="uint8").reshape(32, 32))
    with ngio_async.open(url) as ds:
        real = _sync_api.SyncLevel
        theirs: list[Any] = []

        def interleaved(*args: Any, **kwargs: Any) -> Any:
            if not theirs:  # another thread's ds.levels, run while this one makes a level
                theirs.append(None)
                theirs[0] = ds.levels
            return real(*args, **kwargs)

        monkeypatch.setattr(_sync_api, "SyncLevel", interleaved)
        mine = ds.levels
        monkeypatch.setattr(_sync_api, "SyncLevel", real)
        assert mine[0] is not theirs[0][0]  # (the race: two level objects for one level)
        for level in (mine[0], theirs[0][0]):  # one raised ValueError 'is not in list'
            copy = pickle.loads(pickle.dumps(level))
            np.testing.assert_array_equal(copy[0:2, 0:2], [[0, 1], [32, 33]])
