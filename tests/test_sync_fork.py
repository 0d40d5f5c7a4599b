"""Blocking objects inherited through ``fork()``: in the child they raise ClosedError (the
parent's loop thread does not exist there), never hang; the parent's keep working."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
from processes import run_in_fork

import ngio_async
from ngio_async import ClosedError

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(30)
def test_a_writer_inherited_through_fork_refuses_and_exits_in_the_child(tmp_path: Path) -> None:
    one = np.ones((16, 16), "uint8")
    with ngio_async.create(
        tmp_path / "a.zarr", shape=(32, 32), dtype="uint8", axes="yx", chunks=(16, 16), levels=1
    ) as ds:
        context = ds.writer()
        writer = context.__enter__()
        writer.write(((slice(0, 16), slice(0, 16)), one))

        def child() -> None:
            with pytest.raises(ClosedError):
                writer.write(((slice(16, 32), slice(0, 16)), one))
            with pytest.raises(ClosedError, match="fork"):
                context.__exit__(None, None, None)  # was: waited forever

        run_in_fork(child)
        writer.write(((slice(16, 32), slice(16, 32)), one))  # the parent's writer works on
        context.__exit__(None, None, None)
        assert int(ds[...].sum()) == 2 * 16 * 16


@pytest.mark.skipif(not hasattr(os, "fork") or sys.version_info >= (3, 12), reason="posix fork")
@pytest.mark.timeout(30)
def test_labels_and_plate_fields_of_inherited_objects_refuse_in_the_child(
    tmp_path: Path,
) -> None:
    url = tmp_path / "plate.zarr"
    with (
        ngio_async.create_plate(url, rows=["A"], columns=["1"], ngff_version="0.5") as plate,
        plate.add_image("A", "1", shape=(1, 32, 32), dtype="uint8", axes="cyx") as fov,
    ):
        fov.labels.create("cells", dtype="uint16").close()
    with ngio_async.open_plate(url) as plate, plate.image("A", "1") as fov:

        def child() -> None:
            # was: the parent's async plate and image run on a new loop in the child
            # (UnsupportedError from the store, or worse), as if they were the child's own
            with pytest.raises(ClosedError, match="fork"):
                fov.labels.open("cells").close()
            with pytest.raises(ClosedError, match="fork"):
                plate.image("A", "1").close()

        run_in_fork(child)
        fov.labels.open("cells").close()  # the parent's objects work on
