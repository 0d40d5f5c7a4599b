"""Late reservation (``prefetch(reserve_late=True)``): an item whose fn asks for its bytes
from several of its own tasks at once (a run of tiles over two shards, each shard fetched and
then decoded in its own task) gets them once, and every one of those tasks goes on.
Reserved bytes are counted from the engine's own state, never timed."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from ngio_async._prefetch import fetched_ahead, prefetch, reserve_decoded

pytestmark = pytest.mark.anyio


async def test_an_item_asking_for_its_bytes_from_two_tasks_at_once_goes_on() -> None:
    asked: list[tuple[int, bool]] = []

    async def fn(item: int) -> int:
        async def part() -> None:
            await anyio.lowlevel.checkpoint()
            await reserve_decoded()  # both parts wait for the same grant
            asked.append((item, fetched_ahead()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(part)
            tg.start_soon(part)
        return item

    got: list[int] = []
    with anyio.fail_after(5):
        async with prefetch(
            range(6),
            fn,
            window=4,
            max_bytes=20,
            size_of=lambda _: 10,
            ordered=False,
            reserve_late=True,
        ) as results:
            async for r in results:
                got.append(r)
                await anyio.sleep(0.01)  # a slow consumer: the later items wait for bytes
    assert sorted(got) == list(range(6))
    assert len(asked) == 12 and not any(ahead for _, ahead in asked)


async def test_a_part_cancelled_while_waiting_does_not_hold_back_later_items() -> None:
    """A sibling's failure cancels a part waiting for the item's bytes; the fn handles the
    error and returns: the later items are granted, none waits for the stale one."""

    async def fn(item: int) -> int:
        if item == 0:
            try:
                async with anyio.create_task_group() as tg:

                    async def waiter() -> None:
                        await reserve_decoded()

                    async def failing() -> None:
                        await anyio.sleep(0.01)
                        raise OSError("part failed")

                    tg.start_soon(waiter)
                    tg.start_soon(failing)
            except* OSError:
                pass
            return -1
        return item

    got: list[int] = []
    with anyio.fail_after(5):
        async with prefetch(
            range(8),
            fn,
            window=3,
            max_bytes=10,
            size_of=lambda _: 10,
            ordered=False,
            reserve_late=True,
        ) as results:
            got = [r async for r in results]
    assert sorted(got) == [-1, *range(1, 8)]
