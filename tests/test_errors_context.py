"""Errors raised out of a task group do not hold that group as their context: the group holds
the error, and picklers that keep contexts (tblib, installed by dask.distributed) recursed
forever on the cycle, so the error reached a distributed client as a bare ``Exception``."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async._prefetch import first_error

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


def _in_a_cycle(exc: BaseException) -> bool:
    """Whether a group in ``exc``'s context chain holds ``exc``."""

    def holds(group: BaseExceptionGroup[BaseException]) -> bool:
        return any(
            e is exc or (isinstance(e, BaseExceptionGroup) and holds(e)) for e in group.exceptions
        )

    ctx = exc.__context__
    while ctx is not None:
        if isinstance(ctx, BaseExceptionGroup) and holds(ctx):
            return True
        ctx = ctx.__context__
    return False


async def test_first_error_raises_the_leaf_without_its_group_as_context() -> None:
    async def fail() -> None:
        raise KeyError("k")

    async def run() -> None:
        with first_error():
            async with anyio.create_task_group() as tg:
                tg.start_soon(fail)

    with pytest.raises(KeyError) as info:
        await run()
    assert not _in_a_cycle(info.value)


async def test_an_open_error_from_the_level_reads_has_no_cycle(tmp_path: Path) -> None:
    url = tmp_path / "img.zarr"
    with ngio_async.create(str(url), shape=(8, 8), dtype="uint8", axes="yx", levels=2) as ds:
        ds.write(np.zeros((8, 8), "uint8"), pyramid=True)
    shutil.rmtree(url / "1")
    with pytest.raises(ngio_async.NotFoundError) as info:
        await ngio_async.open_async(str(url))
    assert not _in_a_cycle(info.value)


async def test_a_convert_error_has_no_cycle(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    with ngio_async.create(
        str(src), shape=(64, 64), dtype="uint8", axes="yx", chunks=(16, 16), levels=1
    ) as ds:
        ds.write(np.ones((64, 64), "uint8"))
    chunk = max(p for p in (src / "0").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    with pytest.raises(ngio_async.CodecError) as info:
        await ngio_async.convert(str(src), str(tmp_path / "dst.zarr"))
    assert not _in_a_cycle(info.value)
