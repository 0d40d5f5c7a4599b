"""HTTP stores redirected where they cannot follow: the message quotes the redirect's
target without its password or signed query string."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from servers import Faults, StaticServer

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import open_store
from ngio_async.stores._url_utils import redact_urls

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)
TARGETS = {
    "ftp": "ftp://mallory:PASSWORD1@127.0.0.1:1/x.bin?X-Amz-Signature=SIGNATURE1",
    "badport": "http://mallory:PASSWORD1@127.0.0.1:99999999/x?X-Amz-Signature=SIGNATURE1",
}


@dataclass
class Redirector(StaticServer):
    """Redirects ``/<name>/...`` to ``TARGETS[name]``."""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": TARGETS[path.split("/")[1]]})


@pytest.fixture
def redirector(http_root: Path) -> Iterator[Redirector]:
    server = Redirector(http_root).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_an_unfollowable_redirect_names_its_target_without_secrets(
    redirector: Redirector, backend: str, name: str
) -> None:
    """aiohttp's error is the ``Location`` as sent (``NonHttpUrlRedirectClientError:
    ftp://mallory:PASSWORD1@...?X-Amz-Signature=...``), and the message quoted it."""
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(redirector.url, limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
        for ask in (store.get, store.exists, store.size):
            with pytest.raises(StoreError) as info:
                await ask(f"{name}/a")
            message = str(info.value)
            assert f"'{name}/a'" in message, message
            assert "PASSWORD1" not in message and "SIGNATURE1" not in message, message
            assert "mallory" not in message, message


def test_redact_urls() -> None:
    text = "see ftp://u:p@h:1/a/b?sig=x#f 'http://tok@h/c?q' and http://h/d"
    assert redact_urls(text) == "see ftp://h:1/a/b?*** 'http://h/c?***' and http://h/d"
    assert redact_urls("x http://u:pw@h:bad/p?sig=1 y") == "x http://h:bad/p?*** y"


@pytest.mark.parametrize("password", ["a", "0", "s"])
async def test_a_short_password_leaves_the_rest_of_the_message_readable(password: str) -> None:
    """Every occurrence of the URL's password was starred: 'C***nnot connect to host
    ***27.0.0.***' for the password 'a' or '1'."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:{password}@127.0.0.1:{port}/data"
    async with open_store(url, limits=Limits(max_retries=0)) as store:
        with pytest.raises(StoreError) as info:
            await store.get("small.txt")
    message = str(info.value)
    assert f"Cannot connect to host 127.0.0.1:{port} ssl:default" in message, message
    assert f"'small.txt' at http://127.0.0.1:{port}/data failed" in message, message
