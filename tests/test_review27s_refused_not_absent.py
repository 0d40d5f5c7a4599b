"""review27s: credentials refused mid-job (this machine's clock drifting off, as S3 answers
403 RequestTimeTooSkewed) are never an absent optional group: ``labels.names()`` said the
image had no labels ([]), and a bioformats2raw container's series ended there, silently,
where every other read raises CredentialsRefusedError (61e7967)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_stores27_clock_skew import SkewedProxy

import ngio_async
from ngio_async._limits import Limits
from ngio_async.images._open import container_series
from ngio_async.stores import CredentialsRefusedError, open_store

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


def _options(s3_server: S3Server, skewed: SkewedProxy) -> dict[str, Any]:
    return {**s3_server.options(), "endpoint": skewed.url.rstrip("/"), "limits": FAST}


async def test_labels_of_refused_credentials_are_no_absent_labels(
    s3_server: S3Server, skewed: SkewedProxy
) -> None:
    url = s3_server.fresh_url() + "/img.zarr"
    options = _options(s3_server, skewed)
    async with ngio_async.create_async(
        url, shape=(8, 8), dtype="uint8", axes="yx", chunks=(8, 8), levels=1, **options
    ) as ds:
        await ds.write(np.ones((8, 8), "uint8"))
        await (await ds.labels.create("cells", dtype="uint8")).aclose()
    async with ngio_async.open_async(url, **options) as ds:
        assert await ds.labels.names() == ["cells"]
        skewed.skewed = True  # (the clock drifts during the job)
        with pytest.raises(CredentialsRefusedError, match="clock of this machine is off"):
            await ds.labels.names()  # (was: [], no labels)


async def test_a_series_does_not_end_at_refused_credentials(
    s3_server: S3Server, skewed: SkewedProxy
) -> None:
    url = s3_server.fresh_url() + "/b2r.zarr"
    options = _options(s3_server, skewed)
    async with ngio_async.create_async(
        url + "/0", shape=(8, 8), dtype="uint8", axes="yx", chunks=(8, 8), levels=1, **options
    ) as ds:
        await ds.write(np.ones((8, 8), "uint8"))
    async with open_store(url, **options) as store:
        assert await container_series(store, "", "0.5") == ["0"]
        skewed.skewed = True
        with pytest.raises(CredentialsRefusedError, match="clock of this machine is off"):
            await container_series(store, "", "0.5")  # (was: [], no images)
