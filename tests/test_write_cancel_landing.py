"""A write cancelled while its put is in flight: the put may still land afterwards (obstore's
local puts run on threads a cancel does not stop), so a write, once begun, runs to its end
(bounded) before the caller's cancellation goes on, and the lower levels rebuilt after a failed
``writer(pyramid=True)`` block follow what level 0 got. The store below lands each put 0.3 s
later, whatever happens to its caller (fault injection: a real store cannot be made to)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio
import numpy as np
import pytest

import ngio_async
from ngio_async.stores import InstrumentedStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from ngio_async.stores._base import Buffer

pytestmark = pytest.mark.anyio


class LateLandingPuts(InstrumentedStore):
    """Each chunk put lands ``delay`` s after it is sent, even when its caller is cancelled."""

    delay = 0.3

    async def _put_once(self, key: str, data: Buffer, *, if_absent: bool) -> bool:
        if "/c/" not in key and not key.split("/")[-1][:1].isdigit():
            return await super()._put_once(key, data, if_absent=if_absent)

        async def land() -> bool:
            await asyncio.sleep(self.delay)
            return await self.inner._put_once(key, data, if_absent=if_absent)

        return await asyncio.shield(asyncio.ensure_future(land()))


async def _fail_with_a_put_in_flight(lab: ngio_async.Dataset) -> None:
    async with lab.writer(pyramid=True) as w:
        await w.write(((slice(0, 16), slice(16, 32)), np.full((16, 16), 7, np.uint16)))
        await anyio.sleep(0.05)  # the put is in flight
        raise RuntimeError("segmentation failed")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
async def test_a_block_failing_while_a_put_is_in_flight_leaves_levels_following(
    tmp_path: Path, version: str
) -> None:
    url = tmp_path / "a.zarr"
    async with ngio_async.create_async(
        url, shape=(32, 32), dtype="uint8", axes="yx", chunks=(16, 16), levels=2,
        ngff_version=version,  # type: ignore[arg-type]
    ) as ds:  # fmt: skip
        await (await ds.labels.create("seg", dtype="uint16")).aclose()
    store = LateLandingPuts(open_store(url))
    async with ngio_async.open_async(store, mode="r+") as ds:
        lab = await ds.labels.open("seg", mode="r+")
        with pytest.raises(RuntimeError, match="segmentation failed"):
            await _fail_with_a_put_in_flight(lab)
        await lab.aclose()
    await anyio.sleep(2 * LateLandingPuts.delay)  # any put still on its way has landed
    async with ngio_async.open_async(url) as ds, ds.labels.open("seg") as lab:
        level0, level1 = await lab.read(), await lab.read(level=1)
    assert (level0[:16, 16:] == 7).all()  # the tile landed, whole
    np.testing.assert_array_equal(level1, level0[::2, ::2])  # and level 1 follows it
