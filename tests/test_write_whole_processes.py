"""A whole-object write on local disk waits for another process's partial write of that object.

A partial write reads the object, merges, writes it back, holding the object's lock
(``<object>#0``). A whole-object write took no lock: landing between that read and that put,
it was overwritten by the merge of the older bytes (its pixels lost, the old ones back).
Here the partial writer pauses after its read (an injected hook) until the whole write has
landed (the old code) or is waiting for the lock (the new code).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from processes import spawned_pool

import ngio_async
import ngio_async.images._write as write_module

if TYPE_CHECKING:
    from collections.abc import Iterator
    from multiprocessing.pool import Pool
    from pathlib import Path

SHAPE = (16, 32)
PATIENCE = 30.0  # seconds a worker waits for the other before giving up (a hang guard)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with spawned_pool() as workers:
        yield workers


def _wait_for(condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the other worker never got there")
        time.sleep(0.002)


def _partial(args: tuple[str, str, str]) -> str:
    """Write 3s into a corner of the object; after reading it, wait for the whole write."""
    url, obj, marks = args
    encode = write_module._encode_object

    def paused(*a: Any) -> Any:
        if a[2] is not None:  # the bytes read by the read-modify-write
            before = os.stat(obj).st_ino
            open(os.path.join(marks, "read"), "w").close()
            # the whole write landed (the old code), or it waits for the lock
            waiting = os.path.join(marks, "waiting")
            _wait_for(lambda: os.stat(obj).st_ino != before or os.path.exists(waiting))
        return encode(*a)

    write_module._encode_object = paused  # type: ignore[assignment]

    async def main() -> None:
        async with ngio_async.open_async(url, mode="r+") as ds:
            await ds.write(np.full((8, 8), 3, "uint16"), y=slice(0, 8), x=slice(0, 8))

    anyio.run(main)
    return "partial"


def _whole(args: tuple[str, str, str]) -> str:
    """Once the partial write has read the object, write it whole with 2s."""
    url, _obj, marks = args
    take_lock = vars(write_module)["take_lock"]

    async def waiting(*a: Any) -> int:
        open(os.path.join(marks, "waiting"), "w").close()  # noqa: ASYNC230
        return int(await take_lock(*a))

    vars(write_module)["take_lock"] = waiting

    async def main() -> None:
        async with ngio_async.open_async(url, mode="r+") as ds:
            _wait_for(lambda: os.path.exists(os.path.join(marks, "read")))
            await ds.write(np.full(SHAPE, 2, "uint16"))

    anyio.run(main)
    return "whole"


@pytest.mark.parametrize("sharded", [True, False], ids=["shard", "chunk"])
def test_a_whole_write_is_not_lost_to_a_partial_write_of_another_process(
    pool: Pool, tmp_path: Path, sharded: bool
) -> None:
    url = str(tmp_path / "img.zarr")
    with ngio_async.create(
        url, shape=SHAPE, dtype="uint16", chunks=(8, 8) if sharded else SHAPE,
        shards=SHAPE if sharded else False, levels=1,
    ) as ds:  # fmt: skip
        ds.write(np.ones(SHAPE, "uint16"))
    args = (url, str(tmp_path / "img.zarr" / "0" / "c" / "0" / "0"), str(tmp_path))
    partial = pool.apply_async(_partial, (args,))
    whole = pool.apply_async(_whole, (args,))
    assert (partial.get(timeout=60), whole.get(timeout=60)) == ("partial", "whole")
    with ngio_async.open(url) as back:
        got = np.asarray(back[:])
    # the whole write started after the partial write's read: it lands after it, whole
    np.testing.assert_array_equal(got, np.full(SHAPE, 2, "uint16"))
    names = sorted(p.name for p in (tmp_path / "img.zarr").rglob("*") if p.is_file())
    assert names == ["0", "zarr.json", "zarr.json"]  # no lock file left
