"""Blocking objects inherited through ``fork()``: in the child they raise ClosedError (the
parent's loop thread does not exist there), never hang; the parent's keep working."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest

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
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            answer = b"bad"
            try:
                os.close(read_fd)
                signal.alarm(10)  # a hang fails the test instead of blocking it
                try:
                    writer.write(((slice(16, 32), slice(0, 16)), one))
                except ClosedError:
                    try:
                        context.__exit__(None, None, None)  # was: waited forever
                    except ClosedError as exc:
                        answer = b"ok" if "fork" in str(exc) else repr(exc).encode()
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                answer = repr(exc).encode()
            finally:
                os.write(write_fd, answer)
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            answer = f.read()
        os.waitpid(pid, 0)
        assert answer == b"ok"
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
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            answers = []
            try:
                os.close(read_fd)
                signal.alarm(10)
                # was: the parent's async plate and image run on a new loop in the child
                # (UnsupportedError from the store, or worse), as if they were the child's own
                for make in (lambda: fov.labels.open("cells"), lambda: plate.image("A", "1")):
                    try:
                        make().close()
                        answers.append("opened")
                    except ClosedError as exc:
                        answers.append("ok" if "fork" in str(exc) else repr(exc))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                answers.append(repr(exc))
            finally:
                os.write(write_fd, ",".join(answers).encode())
                os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            answer = f.read()
        os.waitpid(pid, 0)
        assert answer == b"ok,ok"
        fov.labels.open("cells").close()  # the parent's objects work on
