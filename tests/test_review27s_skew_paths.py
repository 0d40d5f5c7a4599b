"""review27s: every read path meets S3's 403 RequestTimeTooSkewed (this machine's clock off)
as refused credentials with ``forbidden_is_missing=True``: ranges, coalesced ranges, HEADs
aside (a HEAD's 403 has no body to tell), a sharded image's reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_stores27_clock_skew import SkewedProxy

import ngio_async
from ngio_async._limits import Limits
from ngio_async.stores import CredentialsRefusedError, RangeByteRequest, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


@pytest.fixture
def skewed(s3_server: S3Server) -> Iterator[SkewedProxy]:
    proxy = SkewedProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def test_ranges_are_refused(s3_server: S3Server, skewed: SkewedProxy) -> None:
    options: dict[str, Any] = {**s3_server.options(), "endpoint": skewed.url.rstrip("/")}
    url = s3_server.fresh_url()
    async with open_store(url, limits=FAST, forbidden_is_missing=True, **options) as store:
        await store.put("k", bytes(range(200)))
        skewed.skewed = True
        with pytest.raises(CredentialsRefusedError):
            await store.get("k", RangeByteRequest(0, 10))
        with pytest.raises(CredentialsRefusedError):
            await store.get_ranges("k", [(0, 10), (100, 120)])


@pytest.mark.parametrize("shards", [(16, 16), False])
def test_image_reads_are_refused(s3_server: S3Server, skewed: SkewedProxy, shards: Any) -> None:
    options: dict[str, Any] = {**s3_server.options(), "endpoint": skewed.url.rstrip("/")}
    url = s3_server.fresh_url() + "/img.zarr"
    data = np.arange(32 * 32, dtype="uint16").reshape(32, 32) + 1
    with ngio_async.create(
        url,
        shape=(32, 32),
        dtype="uint16",
        axes="yx",
        chunks=(8, 8),
        shards=shards,
        levels=1,
        **options,
    ) as ds:
        ds.write(data)
    with ngio_async.open(url, limits=FAST, forbidden_is_missing=True, **options) as ds:
        np.testing.assert_array_equal(ds.read(), data)
        skewed.skewed = True
        with pytest.raises(CredentialsRefusedError):
            ds[0:8, 0:8]
        with pytest.raises(CredentialsRefusedError):
            ds.read()
