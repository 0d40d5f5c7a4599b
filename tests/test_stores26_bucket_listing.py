"""Opening an image in a bucket that does not exist, where the GET's 404 does not say why
(fake-gcs-server answers a bare "Not Found"; some S3-compatible servers too): the open said
"no OME-Zarr group". On that not-found path only, one listing (never retried) asks the
bucket: a missing one is named. A missing image in a bucket that exists costs that one
listing more; a successful open, none."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers import FaultProxy
from test_stores_gcs import FAST, gcs

import ngio_async
from ngio_async import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server
    from test_stores_gcs import GCSServer

__all__ = ["gcs"]  # (the fixture)


async def test_a_missing_gcs_bucket_is_named(gcs: GCSServer) -> None:
    url = f"gs://no-such-{uuid.uuid4().hex[:8]}/img.zarr"
    with pytest.raises(NotFoundError) as info:
        await ngio_async.open_async(url, limits=FAST, **gcs.options())
    message = str(info.value)
    assert f"the bucket (or container) of {url} does not exist" in message, message
    with pytest.raises(NotFoundError, match="no OME-Zarr group"):  # the bucket exists
        await ngio_async.open_async(f"{gcs.fresh_url()}/img.zarr", limits=FAST, **gcs.options())


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_one_listing_on_the_not_found_path_only(s3_server: S3Server, s3_proxy: FaultProxy) -> None:
    options = {**s3_server.options(), "endpoint": s3_proxy.url.rstrip("/")}
    url = f"{s3_server.fresh_url()}/img.zarr"
    with pytest.raises(NotFoundError, match="no OME-Zarr group"):
        ngio_async.open(url, limits=FAST, **options)
    bucket = f"/{s3_server.bucket}"
    assert s3_proxy.count(path=bucket) == 1, s3_proxy.requests  # the listing
    with ngio_async.create(url, shape=(4, 4), dtype="uint8", axes="yx", **options):
        pass
    s3_proxy.reset()
    with ngio_async.open(url, limits=FAST, **options) as ds:
        assert ds.shape == (4, 4)
    assert s3_proxy.count(path=bucket) == 0, s3_proxy.requests
