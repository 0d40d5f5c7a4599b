"""A mistyped bucket (or container) is named as missing when an image is opened, sync and
async, on every URL form: ``s3://`` and ``az://`` / ``abfs://`` (obstore's clients read the
404's body), and the http(s) URLs of the same objects (path-style S3, an Azure blob URL with
its SAS), whose 404s the HTTP store read as a missing object: "no OME-Zarr group". No
request more: the GET that found nothing says which is missing, and a successful open makes
the same requests as before."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import anyio
import pytest
from aiohttp import web
from servers import AZURITE_ACCOUNT, AZURITE_KEY, FaultProxy, Faults, StaticServer

import ngio_async
from ngio_async import NotFoundError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from servers import AzuriteServer, S3Server

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


def _s3_http(s3: S3Server, bucket: str) -> str:
    return f"{s3.endpoint}/{bucket}/img.zarr"


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    """A proxy in front of moto, counting requests."""
    from pathlib import Path

    proxy = FaultProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _opened_missing(url: str, options: dict[str, Any]) -> list[NotFoundError]:
    """The errors of opening ``url`` sync and async."""
    errors = []
    with pytest.raises(NotFoundError) as info:
        ngio_async.open(url, limits=FAST, **options)
    errors.append(info.value)

    async def main() -> None:
        with pytest.raises(NotFoundError) as info:
            async with ngio_async.open_async(url, limits=FAST, **options):
                pass
        errors.append(info.value)

    anyio.run(main)
    return errors


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
def test_a_missing_bucket_over_http(s3_proxy: FaultProxy, backend: str) -> None:
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    url = f"{s3_proxy.url}no-such-bucket/img.zarr"
    for err in _opened_missing(url, options):
        message = str(err)
        assert "bucket (or container)" in message and "does not exist" in message, message
        assert "NoSuchBucket" in message and "'zarr.json'" in message, message
    assert s3_proxy.count() == 2  # one GET per open, no request more


def test_a_missing_bucket_by_s3_url(s3_server: S3Server) -> None:
    for err in _opened_missing("s3://no-such-bucket/img.zarr", s3_server.options()):
        assert "s3://no-such-bucket/img.zarr does not exist" in str(err), err


def test_a_missing_image_in_a_bucket_over_http_is_still_no_image(
    s3_proxy: FaultProxy, s3_server: S3Server
) -> None:
    url = f"{s3_proxy.url}{s3_server.bucket}/no-image-here.zarr"
    for err in _opened_missing(url, {}):
        assert "no OME-Zarr group" in str(err) and "bucket" not in str(err), err


@pytest.mark.parametrize("scheme", ["az", "abfs"])
def test_a_missing_container_by_azure_url(azurite: AzuriteServer, scheme: str) -> None:
    for err in _opened_missing(f"{scheme}://no-such-container/img.zarr", azurite.options()):
        message = str(err)
        assert "does not exist" in message and "ContainerNotFound" in message, message


def account_sas(permissions: str = "rl") -> str:
    """An account SAS query string (``sv=...&sig=...``) of Azurite's account: every
    container, the missing ones too (a container SAS of another name is refused: 403)."""
    version, expiry = "2021-08-06", "2099-01-01T00:00:00Z"
    # account, permissions, services, resource types, start, expiry, IP, protocol, version,
    # encryption scope
    fields = [AZURITE_ACCOUNT, permissions, "b", "sco", "", expiry, "", "", version, ""]
    key = base64.b64decode(AZURITE_KEY)
    digest = hmac.new(key, ("\n".join(fields) + "\n").encode(), hashlib.sha256).digest()
    query = {"sv": version, "ss": "b", "srt": "sco", "sp": permissions, "se": expiry}
    return urlencode({**query, "sig": base64.b64encode(digest).decode()})


@pytest.mark.parametrize("backend", ["default", "aiohttp", "obstore"])
def test_a_missing_container_by_blob_url_with_a_sas(azurite: AzuriteServer, backend: str) -> None:
    options: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    sas = account_sas()
    url = f"{azurite.endpoint}/{AZURITE_ACCOUNT}/no-such-container/img.zarr?{sas}"
    for err in _opened_missing(url, options):
        message = str(err)
        assert "does not exist" in message and "ContainerNotFound" in message, message
        assert "sig=" not in message, message
    url = f"{azurite.endpoint}/{AZURITE_ACCOUNT}/{azurite.container}/no-image.zarr?{sas}"
    for err in _opened_missing(url, options):
        assert "no OME-Zarr group" in str(err), err


@pytest.fixture
def azure_proxy(azurite: AzuriteServer) -> Iterator[FaultProxy]:
    """A proxy in front of Azurite, counting requests (they pass unchanged: the SAS holds)."""
    from pathlib import Path

    proxy = FaultProxy(Path("."), target=azurite.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_exists_and_size_of_a_missing_container_over_http(azure_proxy: FaultProxy) -> None:
    """Azure's HEAD answers carry the error code in a header: no request more to tell."""
    url = f"{azure_proxy.url}{AZURITE_ACCOUNT}/no-such-container/img.zarr?{account_sas()}"
    async with open_store(url, limits=FAST) as store:
        for ask in (store.exists, store.size, store.version):
            with pytest.raises(NotFoundError, match=r"does not exist.*ContainerNotFound"):
                await ask("zarr.json")
    assert azure_proxy.count() == azure_proxy.count("HEAD") == 3


@dataclass
class Answers404(StaticServer):
    """Answers every request 404 with ``page`` as its body."""

    page: str = ""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        return web.Response(status=404, text=self.page, content_type="application/xml")


@pytest.mark.parametrize(
    ("page", "missing_bucket"),
    [
        ("<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>", True),
        ("<html><h1>Not here</h1><p>the bucket does not exist, sorry</p></html>", False),
        ("<Error><Code>NoSuchKey</Code></Error>", False),
    ],
)
async def test_a_404_page(http_root: Path, page: str, missing_bucket: bool) -> None:
    """Only an error answer's code says the bucket is missing: a page's words do not (a
    missing chunk of a static server is the fill value, not an error)."""
    server = Answers404(http_root, page=page).start()
    try:
        for backend in ("aiohttp", "obstore"):
            async with open_store(server.url, limits=FAST, backend=backend) as store:
                if missing_bucket:
                    with pytest.raises(NotFoundError, match="NoSuchBucket"):
                        await store.get("data/small.txt")
                else:
                    assert await store.get("data/small.txt") is None, backend
    finally:
        server.stop()
