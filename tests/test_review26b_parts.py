"""Review of the chunks blocking reads of a local read-only level keep for the rest of their
blocks (``PartKeep``): a read that fails after it claimed a chunk to keep leaves no read of
that chunk waiting for it. Real files (a chunk file replaced by a symlink loop: its ``stat``
fails, as it does for anyone, root too)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import StoreError

if TYPE_CHECKING:
    from pathlib import Path


def _in_thread(fn: Any) -> list[Any]:
    """``fn()`` run in a daemon thread; its result (or error) in a list, empty if it hung."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)  # (a hang detector: the read takes milliseconds)
    return out


def test_failed_read_leaves_no_read_waiting_for_its_chunk(tmp_path: Path) -> None:
    (data,) = write_image(tmp_path, Spec(shape=(64, 32), chunks=(32, 32), levels=1, seed=3))
    bad = tmp_path / "0" / "c" / "1" / "0"
    bad.unlink()
    os.symlink(bad.name, bad)  # a loop: its stat raises ELOOP
    with ngio_async.open(str(tmp_path)) as ds:
        level = ds.levels[0]
        # claims the first chunk (read in part) to keep, then fails at the second's stat
        with pytest.raises(StoreError, match="0/c/1/0"):
            level[16:48, 0:32]
        # a block of the first chunk: it waited forever for the failed read's decode
        got = _in_thread(lambda: level[0:16, 0:32])
        assert got, "the read of chunk 0/c/0/0 hung"
        np.testing.assert_array_equal(got[0], data[0:16, 0:32])
        np.testing.assert_array_equal(level[0:32, 0:32], data[0:32, 0:32])
