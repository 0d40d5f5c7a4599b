"""HTTP 401: the message says the server asks for credentials and how to give them (none
given), or that it refused those given; it said 'access denied' and no more."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from servers import Faults

from ngio_async import PermissionDeniedError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from servers import StaticServer

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_a_401_without_credentials_says_how_to_give_them(
    http_server: StaticServer, backend: str
) -> None:
    kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    async with open_store(http_server.url, limits=FAST, **kwargs) as store:
        for _ in range(2):  # the default store: aiohttp's first GET, then obstore's client
            assert await store.get("data/small.txt") is not None
        http_server.faults = Faults(status=401, status_times=-1)
        for ask in (store.get, store.exists, store.size):
            with pytest.raises(PermissionDeniedError) as info:
                await ask("data/small.txt")
            assert info.value.missing_credentials
            assert "401" in str(info.value) and "'data/small.txt'" in str(info.value)
            assert "asks for credentials: give them in the URL" in str(info.value)


@pytest.mark.parametrize(
    "how", [{"user": "alice:pa55word@"}, {"headers": {"Authorization": "Bearer t0ken"}}]
)
async def test_a_401_with_credentials_says_they_were_refused(
    http_server: StaticServer, how: dict[str, Any]
) -> None:
    url = http_server.url.replace("http://", "http://" + how.get("user", ""))
    http_server.faults = Faults(status=401, status_times=-1)
    async with open_store(url, limits=FAST, headers=how.get("headers")) as store:
        with pytest.raises(PermissionDeniedError) as info:
            await store.get("data/small.txt")
    message = str(info.value)
    assert not info.value.missing_credentials
    assert "refused the credentials given" in message, message
    assert "pa55word" not in message and "t0ken" not in message and "alice" not in message
