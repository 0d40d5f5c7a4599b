"""``AsyncStore.update(..., idempotent=False)``: another writer storing the very bytes this
edit gives, between its read and its conditional put (two sums of +1 into an absent object),
is not taken as this put's own lost answer: the edit runs again on its bytes, so both land.
With the default (``idempotent=True``: writes, max) it is taken as landed, as before."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ngio_async.stores import open_store

if TYPE_CHECKING:
    from servers import S3Server

    from ngio_async.stores import AsyncStore, Buffer

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", "s3"])
def store(request: pytest.FixtureRequest) -> AsyncStore:
    if request.param == "memory":
        return open_store("memory://")
    s3: S3Server = request.getfixturevalue("s3_server")
    return open_store(s3.fresh_url(), **s3.options())


async def _twice(store: AsyncStore, idempotent: bool) -> tuple[int, bytes]:
    """Add 1 to the counter ``n`` (absent: 0) while another writer adds 1 in between."""
    calls = 0

    async def add_one(old: Buffer | None) -> bytes:
        nonlocal calls
        calls += 1
        new = str(int(bytes(old or b"0")) + 1).encode()
        if calls == 1:  # the other writer: the same sum of the same object, stored first
            await store.put("n", new)
        return new

    await store.update("n", add_one, idempotent=idempotent)
    return calls, bytes(await store.get("n") or b"")


async def test_an_edit_that_is_not_idempotent_runs_again_on_the_same_bytes(
    store: AsyncStore,
) -> None:
    async with store:
        assert await _twice(store, idempotent=False) == (2, b"2")


async def test_an_idempotent_edit_takes_the_same_bytes_as_landed(store: AsyncStore) -> None:
    async with store:
        assert await _twice(store, idempotent=True) == (1, b"1")
