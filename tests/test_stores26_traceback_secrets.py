"""A printed traceback of a store error shows no secret: our messages were cleaned, but the
errors chained to them (aiohttp's, obstore's: ``__cause__``) quoted a redirect's signed
target, the store URL's query (a SAS) or its password as they were. They keep their types
(``isinstance`` and the traceback's name) and their words, without the secrets."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from servers import AzuriteServer, Faults, StaticServer

import ngio_async
from ngio_async import NgioError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)
SECRETS = ("SIGNATURE1", "PASSWORD2", "alice", "SIGNATURE3")


@dataclass
class Presigner(StaticServer):
    """``/loop/...`` redirects to itself with a signature (too many redirects);
    ``/broken/...`` to a presigned-looking URL whose answer is no HTTP at all."""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        kind = path.split("/")[1]
        signed = "X-Amz-Signature" in request.query_string
        if kind == "broken" and signed:
            assert request.transport is not None
            request.transport.write(b"garbage\r\n\r\n")  # not an HTTP answer
            request.transport.close()
            return web.Response()
        target = f"/{kind}/x?X-Amz-Credential=AKIA&X-Amz-Signature=SIGNATURE1"
        return web.Response(status=302, headers={"Location": target})


@pytest.fixture
def presigner(http_root: Path) -> Iterator[Presigner]:
    server = Presigner(http_root).start()
    try:
        yield server
    finally:
        server.stop()


def _printed(err: BaseException) -> str:
    return "".join(traceback.format_exception(err))


def _check(err: BaseException) -> str:
    """The traceback printed for ``err``: no secret in it, the chained error's type kept."""
    printed = _printed(err)
    for secret in SECRETS:
        assert secret not in printed, printed
    assert err.__cause__ is not None
    cause = type(err.__cause__)
    assert f"{cause.__module__}.{cause.__qualname__}: " in printed, printed
    return printed


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
@pytest.mark.parametrize("how", ["plain", "password", "query"])
async def test_redirects_to_signed_urls_that_fail(
    presigner: Presigner, backend: str, how: str
) -> None:
    if how == "password" and backend == "obstore":
        pytest.skip("obstore's HTTP client refuses credentials in the URL")
    url = presigner.url
    if how == "password":
        url = url.replace("http://", "http://alice:PASSWORD2@")
    elif how == "query":
        url = f"{url}?sv=2021&sig=SIGNATURE3"
    kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    failures = 0
    async with open_store(url, limits=FAST, **kwargs) as store:
        for kind in ("loop", "broken"):
            for ask in (store.get, store.exists, store.size):
                try:
                    await ask(f"{kind}/a")
                except NgioError as err:
                    failures += 1
                    _check(err)
    assert failures >= 4, failures  # (a server answer that some client takes as missing)


async def test_a_chained_error_keeps_its_words(presigner: Presigner) -> None:
    """Only the secrets go: the cause still says what failed, with the URL's path."""
    async with open_store(
        f"{presigner.url}?sig=SIGNATURE3", limits=FAST, backend="obstore"
    ) as store:
        with pytest.raises(NgioError) as info:
            await store.get("loop/a")
    printed = _check(info.value)
    assert "redirect" in str(info.value.__cause__), printed
    assert "/loop/a?***" in printed, printed


def test_the_sync_open_of_a_url_with_a_signature(presigner: Presigner) -> None:
    url = f"{presigner.url}loop/img.zarr?sv=2021&sig=SIGNATURE3"
    for backend in ("aiohttp", "obstore"):
        with pytest.raises(NgioError) as info:
            ngio_async.open(url, limits=FAST, backend=backend)
        _check(info.value)


async def test_an_azure_sas_url_on_azurite(azurite: AzuriteServer) -> None:
    """The https form of an Azure URL with its SAS (here path-style, on Azurite), a
    container whose name is mistyped: the 403 obstore's client met quoted the SAS."""
    sas = azurite.container_sas("rl").replace("sig=", "sig=SIGNATURE3")
    url = f"{azurite.blob_url('ngio-tset/img.zarr')}?{sas}"
    for backend in ("default", "obstore"):
        kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
        async with open_store(url, limits=FAST, **kwargs) as store:
            for ask in (store.get, store.exists, store.size):
                with pytest.raises(NgioError) as info:
                    await ask("zarr.json")
                assert "403" in str(info.value)
                _check(info.value)
