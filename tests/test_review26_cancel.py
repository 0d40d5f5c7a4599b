"""A remote whole-shard tile stream (``ordered=False``) stopped while its runs fetched ahead
wait for their bytes (a timeout, a ``break``, ``aclose``, a failing sibling task) leaves
nothing behind: no request in flight, no fetch other reads would wait for, and the dataset
streams again in full. Repeated with the stop at different points; counted on a loopback
HTTP server (GETs held at the store, as in test_fetchahead26_stream), never timed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
import pytest
from test_fetchahead26_stream import FITS, NAME, TILE, held_store, until

import ngio_async

if TYPE_CHECKING:
    from servers import StaticServer

pytestmark = pytest.mark.anyio

REGIONS = [None, (slice(0, 1), slice(10, 250), slice(5, 200))]  # whole shards; parts too


def nothing_left(ds: Any, store: Any) -> None:
    level = ds.levels[0]
    assert store.in_flight == 0 and store.asking == 0
    assert not level._in_flight._pending
    assert not level._shards_in_flight._running
    assert not level._index_loading


@pytest.mark.parametrize("region", REGIONS, ids=["aligned", "parts"])
@pytest.mark.parametrize("how", ["timeout", "break", "aclose", "sibling"])
async def test_stopped_while_runs_wait_for_their_bytes(
    http_images: tuple[StaticServer, dict[str, Any]], how: str, region: Any
) -> None:
    data = http_images[1][NAME]
    store = held_store(http_images)
    async with ngio_async.open_async(store) as ds:
        for taken in (0, 2):  # stopped after 0 or 2 tiles taken
            store.held = True
            stream = ds.tiles(shape=TILE, region=region, ordered=False)
            it = stream.__aiter__()

            async def consume(it: Any = it, taken: int = taken) -> None:
                await until(lambda: store.asking > FITS)  # runs fetched ahead of the window
                store.let_go()  # their GETs answered: those past the bound wait for bytes
                for _ in range(taken):
                    await it.__anext__()
                await anyio.sleep_forever()

            if how == "timeout":
                with anyio.move_on_after(0.3):
                    await consume()
                del it
            elif how == "break":
                async with anyio.create_task_group() as tg:
                    tg.start_soon(consume)
                    await anyio.sleep(0.3)
                    tg.cancel_scope.cancel()
                del it
            elif how == "aclose":
                with anyio.move_on_after(0.3):
                    await consume()
                await it.aclose()
            else:

                async def failing() -> None:
                    await anyio.sleep(0.3)
                    raise OSError("sibling failed")

                async def both() -> None:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(consume)
                        tg.start_soon(failing)

                with pytest.raises(ExceptionGroup):
                    await both()
                del it
            store.release_all()
            with anyio.fail_after(10):
                await until(lambda: store.in_flight == 0 and store.asking == 0)
            nothing_left(ds, store)
            got = np.zeros_like(data)
            seen = np.zeros(data.shape, bool)
            with anyio.fail_after(20):
                async for tile in ds.tiles(shape=TILE, region=region, ordered=False):
                    got[tile.region] = tile.data
                    seen[tile.region] = True
                assert np.array_equal(await ds.read(0), data)
            assert np.array_equal(got[seen], data[seen]) and seen.any()
            nothing_left(ds, store)
