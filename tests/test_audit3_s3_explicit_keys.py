"""Explicit S3 keys are not paired with the environment's session token (audit of issue 3).

obstore reads every S3 setting not given from the ``AWS_*`` variables, so
``open(url, access_key_id=..., secret_access_key=...)`` in a shell holding temporary
credentials (``AWS_SESSION_TOKEN``: SSO, an assumed role) signed with the given keys *and*
sent that token, which belongs to other credentials: S3 refuses such requests (boto3 and
s3fs take explicit keys without a token as keys without a token). A token given
explicitly is still sent, and the environment's credentials, token included, are used whole
when no keys are given or the keys given are the environment's own.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pytest
from aiohttp import web
from servers import keep_loop_complaints

import ngio_async

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server

ENV_TOKEN = "token-of-another-login"


class HeaderServer:
    """A loopback HTTP server that answers 404 to everything and keeps each request's
    ``x-amz-security-token`` header (``None``: not sent) and signing key id."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        keep_loop_complaints(self._loop)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        key = auth.partition("Credential=")[2].partition("/")[0]
        self.seen.append((request.headers.get("x-amz-security-token"), key))
        return web.Response(status=404)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = self._runner.addresses[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def headers(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeaderServer]:
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    with HeaderServer() as server:
        yield server


def _open(server: HeaderServer, **options: Any) -> None:
    with pytest.raises(ngio_async.NotFoundError):
        ngio_async.open(
            "s3://bucket/img.ome.zarr",
            endpoint=f"http://127.0.0.1:{server.port}",
            region="us-east-1",
            **options,
        )


def test_explicit_keys_go_without_the_environments_token(headers: HeaderServer) -> None:
    _open(headers, access_key_id="my-key", secret_access_key="my-secret")
    assert headers.seen
    assert all(seen == (None, "my-key") for seen in headers.seen)  # was: (ENV_TOKEN, ...)


def test_an_explicit_token_and_the_environments_credentials_are_sent(
    headers: HeaderServer,
) -> None:
    _open(headers, access_key_id="my-key", secret_access_key="s", session_token="my-token")
    assert headers.seen and all(seen == ("my-token", "my-key") for seen in headers.seen)
    headers.seen.clear()
    _open(headers)  # the environment's keys and token, together
    assert headers.seen and all(seen == (ENV_TOKEN, "env-key") for seen in headers.seen)
    headers.seen.clear()
    _open(headers, access_key_id="env-key", secret_access_key="env-secret")  # the same keys
    assert headers.seen and all(seen == (ENV_TOKEN, "env-key") for seen in headers.seen)


def test_explicit_keys_read_and_write_with_a_token_in_the_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)
    url = s3_server.fresh_url()
    data = np.arange(2 * 24 * 24, dtype=np.uint16).reshape(2, 24, 24)
    options = s3_server.options()
    with ngio_async.create(url, shape=data.shape, dtype="uint16", axes="cyx", **options) as ds:
        ds.write(data)
    with ngio_async.open(url, **options) as ds:
        assert np.array_equal(ds[...], data)
