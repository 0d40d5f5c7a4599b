"""An S3 bucket in another region than the one requests are signed for: S3 answers 400
``AuthorizationHeaderMalformed`` with the bucket's region, which the message now keeps (the
server's words, cut to fit, had lost it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from servers import Faults, StaticServer

from ngio_async import StoreError
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=0, timeout=10)
WRONG_REGION = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>'
    "<Message>The authorization header is malformed; the region 'us-east-1' is wrong; "
    "expecting 'eu-west-3'</Message><Region>eu-west-3</Region>"
    "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)


@dataclass
class OtherRegion(StaticServer):
    """Answers every request as S3 answers one signed for the wrong region."""

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        body = "" if request.method == "HEAD" else WRONG_REGION
        return web.Response(status=400, text=body, content_type="application/xml")


@pytest.fixture
def other_region(http_root: Path) -> Iterator[OtherRegion]:
    server = OtherRegion(http_root).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_bucket_of_another_region_is_named_with_its_region(
    other_region: OtherRegion,
) -> None:
    options: dict[str, Any] = {
        "access_key_id": "k",
        "secret_access_key": "s",
        "region": "us-east-1",
    }
    endpoint = other_region.url.rstrip("/")
    async with open_store("s3://bkt/img.zarr", endpoint=endpoint, limits=FAST, **options) as store:
        for write in (False, True):
            with pytest.raises(StoreError) as info:
                await (store.put("zarr.json", b"{}") if write else store.get("zarr.json"))
            message = str(info.value)
            assert "region 'eu-west-3'" in message and "region='eu-west-3'" in message, message
            assert "'zarr.json'" in message and "s3://bkt/img.zarr" in message, message
