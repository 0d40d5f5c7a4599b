"""Late reservation in input order (``reserve_late=True, ordered=True``): an item of no bytes
(a tile stream's shard indexes, fetched ahead of the runs that need them) is reserved when it
starts, so a later item's grant does not wait for it to finish.

It waited its turn like any item: a later run, fetched and ready to decode, waited for the
earlier index load to end (a slow index held every run after it). Held on events the test
sets: counted, never timed.
"""

from __future__ import annotations

import anyio
import pytest

from ngio_async._prefetch import fetched_ahead, prefetch, reserve_decoded

pytestmark = pytest.mark.anyio


async def test_an_item_of_no_bytes_does_not_hold_the_grants_after_it() -> None:
    index_done = anyio.Event()
    granted: list[int] = []
    ahead: dict[int, bool] = {}

    async def fn(i: int) -> int:
        ahead[i] = fetched_ahead()
        if i == 0:  # an index load of no bytes, slow
            await index_done.wait()
            return i
        await reserve_decoded()
        granted.append(i)
        return i

    async with prefetch(
        range(3), fn, window=3, max_bytes=30, size_of=lambda i: 0 if i == 0 else 10,
        reserve_late=True, ordered=True,
    ) as results:  # fmt: skip
        with anyio.fail_after(10):
            while len(granted) < 2:  # noqa: ASYNC110 - the engine's state: no event to wait on
                await anyio.sleep(0.002)
        assert granted == [1, 2]  # in input order, while item 0 still runs
        assert ahead == {0: False, 1: True, 2: True}
        index_done.set()
        got = [r async for r in results]
    assert got == [0, 1, 2]
