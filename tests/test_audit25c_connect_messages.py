"""obstore's connection failures name the address that refused: after a redirect to another
server that one, not the store's own host (which was answering); and say why TLS failed."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from servers import Faults, StaticServer, self_signed_tls

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=0, timeout=10)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Redirector(StaticServer):
    target: str = ""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        return web.Response(status=307, headers={"Location": self.target + request.path})


@pytest.fixture
def redirector(http_root: Path) -> Iterator[tuple[Redirector, int]]:
    port = _closed_port()
    server = Redirector(http_root, target=f"http://127.0.0.1:{port}").start()
    try:
        yield server, port
    finally:
        server.stop()


async def test_a_redirect_to_a_server_that_is_down_names_that_server(
    redirector: tuple[Redirector, int],
) -> None:
    """It said 'GET could not connect to 127.0.0.1:<the redirecting server's port>'."""
    server, port = redirector
    async with open_store(server.url, limits=FAST, backend="obstore") as store:
        for ask in (store.get, store.size):
            with pytest.raises(StoreError) as info:
                await ask("a.bin")
            message = str(info.value)
            assert f"could not connect to 127.0.0.1:{port} " in message, message
            assert server.url.rstrip("/") in message  # the store, as every message names it


async def test_a_server_that_is_down_is_named_by_its_url() -> None:
    port = _closed_port()
    async with open_store(f"http://localhost:{port}/x", limits=FAST, backend="obstore") as store:
        with pytest.raises(StoreError, match=f"could not connect to localhost:{port} "):
            await store.get("a.bin")


async def test_an_untrusted_certificate_is_named_as_the_reason(
    tmp_path: Path, http_root: Path
) -> None:
    """It said 'GET could not connect to 127.0.0.1:<port>' and no more."""
    context, _ = self_signed_tls(tmp_path)
    server = StaticServer(http_root, ssl_context=context).start()
    try:
        async with open_store(server.url, limits=FAST, backend="obstore") as store:
            with pytest.raises(
                StoreError,
                match=r"could not connect to 127\.0\.0\.1:\d+ \(its TLS certificate is not trusted: \w+\)",
            ):
                await store.get("data/small.txt")
    finally:
        server.stop()
