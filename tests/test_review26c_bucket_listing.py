"""The one listing that names a missing bucket (9594d6d) is made only where an image was asked
for and is missing: a group that is optional and absent (an image without labels: its
``labels`` group; the end of a bioformats2raw container's series, found by reading ``0``,
``1``, ... until one is missing) is no error, and listed the image's folder each time (one
request more per ``labels.names()`` of an image without labels on S3). A listing that fails
(503, 403, a timeout) is made once and leaves the open's own error."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web
from servers import FaultProxy

import ngio_async
from ngio_async import NotFoundError
from ngio_async._limits import Limits

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import Faults, S3Server

FAST = Limits(max_retries=2, backoff_base=0.001, backoff_max=0.002, timeout=2)


@dataclass
class ListingProxy(FaultProxy):
    """A proxy to moto that answers ``listing_status`` to listings of the bucket (after
    ``listing_delay`` seconds) and forwards everything else."""

    listing_status: int | None = None
    listing_delay: float = 0.0

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if request.method == "GET" and "list-type" in request.query and self.listing_status:
            await asyncio.sleep(self.listing_delay)
            return web.Response(status=self.listing_status, text="<Error><Code>X</Code></Error>")
        return await super()._answer(request, path, faults)


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[ListingProxy]:
    proxy = ListingProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _listings(proxy: FaultProxy, bucket: str) -> int:
    return proxy.count(path=f"/{bucket}")


def test_an_image_without_labels_lists_nothing(s3_server: S3Server, s3_proxy: FaultProxy) -> None:
    options = {**s3_server.options(), "endpoint": s3_proxy.url.rstrip("/")}
    url = f"{s3_server.fresh_url()}/img.zarr"
    with ngio_async.create(url, shape=(4, 4), dtype="uint8", axes="yx", **options):
        pass
    with ngio_async.open(url, limits=FAST, **options) as ds:
        s3_proxy.reset()
        assert ds.labels.names() == []
        assert _listings(s3_proxy, s3_server.bucket) == 0, s3_proxy.requests


@pytest.mark.parametrize(("status", "delay"), [(503, 0.0), (403, 0.0), (200, 3.5)])
def test_a_failed_listing_leaves_the_opens_error(
    s3_server: S3Server, s3_proxy: ListingProxy, status: int, delay: float
) -> None:
    options = {**s3_server.options(), "endpoint": s3_proxy.url.rstrip("/")}
    s3_proxy.listing_status, s3_proxy.listing_delay = status, delay  # 3.5 s: past the timeout
    with pytest.raises(NotFoundError, match="no OME-Zarr group"):
        ngio_async.open(f"{s3_server.fresh_url()}/img.zarr", limits=FAST, **options)
    assert _listings(s3_proxy, s3_server.bucket) == 1, s3_proxy.requests  # never retried
