"""HTTP store URLs signed for one object (a presigned S3 URL pasted for an image's
``zarr.json``): every other key is answered 403, and the message says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pytest
from aiohttp import web
from servers import Faults, StaticServer

import ngio_async
from ngio_async import PermissionDeniedError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SIGNATURE = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0badc0ffee5ecret"
FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


@dataclass
class SignedServer(StaticServer):
    """Serves ``signed`` (a path) to requests carrying ``SIGNATURE``, as S3 serves a
    presigned URL; any other path answers 403 ``SignatureDoesNotMatch``."""

    signed: str = "/img.zarr/zarr.json"

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if path != self.signed or request.query_string != SIGNATURE:
            body = "<Error><Code>SignatureDoesNotMatch</Code></Error>"
            return web.Response(status=403, text=body, content_type="application/xml")
        return await super()._answer(request, path, faults)


@pytest.fixture
def signed_server(http_root: Path) -> Iterator[SignedServer]:
    with ngio_async.create(
        str(http_root / "img.zarr"), shape=(8, 8), dtype="uint8", axes="yx", levels=1
    ) as ds:
        ds.write(np.full((8, 8), 7, "uint8"))
    server = SignedServer(http_root).start()
    try:
        yield server
    finally:
        server.stop()


def _check(message: str) -> None:
    assert "presigned" in message, message
    assert "forbidden_is_missing" not in message, message  # it would read fill values
    assert "0badc0ffee" not in message, message


def test_an_image_url_signed_for_its_document_only_says_why_it_is_denied(
    signed_server: SignedServer,
) -> None:
    """The group's document opens; its first array is refused. The hint was to open it with
    ``forbidden_is_missing=True``: every chunk would then have read as the fill value."""
    url = f"{signed_server.url}img.zarr/zarr.json?{SIGNATURE}"
    with pytest.raises(PermissionDeniedError) as info, ngio_async.open(url) as ds:
        ds.read()
    _check(str(info.value))
    assert "/img.zarr/zarr.json" in {r.path for r in signed_server.requests}


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_a_signed_store_url_refused_for_another_key(
    signed_server: SignedServer, backend: str
) -> None:
    url = f"{signed_server.url}img.zarr?{SIGNATURE}"
    kwargs = {} if backend == "default" else {"backend": backend}
    async with open_store(url, limits=FAST, **kwargs) as store:  # type: ignore[arg-type]
        assert await store.get("zarr.json") is not None
        for ask in (store.get, store.exists, store.size):
            with pytest.raises(PermissionDeniedError) as info:
                await ask("0/zarr.json")
            _check(str(info.value))


async def test_a_plain_url_keeps_the_forbidden_is_missing_hint(http_server: StaticServer) -> None:
    http_server.faults = Faults(status=403, status_times=-1)
    async with open_store(http_server.url, limits=FAST, backend="aiohttp") as store:
        with pytest.raises(PermissionDeniedError, match="forbidden_is_missing=True"):
            await store.get("data/small.txt")
