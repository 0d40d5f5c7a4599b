"""Endpoints users write still open (review of 3cda8bd), against moto S3, fake-gcs-server
and Azurite: trailing slashes, an upper-case scheme, AWS_ENDPOINT_URL with and without its
slash, an endpoint whose path ends in '/' (GCS's and Azure's clients asked for
``//bucket/key``: every key read as missing, or refused), and an endpoint pasted with a space or a line break around it (refused since
3cda8bd with a message telling to write it as it was written; obstore's clients panicked on
it before): it is used without them. An S3 / GCS endpoint with a query is refused: the
keys went after the query, and moto answered every GET with its bucket listing."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest
from test_stores_gcs import BUCKET, FAST, gcs

from ngio_async import StoreError
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from servers import AzuriteServer, S3Server
    from test_stores_gcs import GCSServer

__all__ = ["gcs"]  # (the fixture)

VALUE = b"v"


def _written(endpoint: str) -> list[str]:
    upper = endpoint.replace("http://", "HTTP://")
    return [endpoint, f"{endpoint}/", upper, f" {endpoint}/\n", f"{endpoint}\r", f"{endpoint}//"]


async def _round_trip(url: str, options: dict[str, Any], ways: list[str]) -> None:
    async with open_store(url, limits=FAST, **options) as store:
        await store.put("k", VALUE)
    for endpoint in ways:
        async with open_store(url, limits=FAST, **{**options, "endpoint": endpoint}) as store:
            got = await store.get("k")
            assert got is not None and bytes(got) == b"v", endpoint


async def test_s3_endpoints(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = s3_server.fresh_url()
    await _round_trip(url, s3_server.options(), _written(s3_server.endpoint))
    keys = {k: v for k, v in s3_server.options().items() if k != "endpoint"}
    for value in (s3_server.endpoint, f"{s3_server.endpoint}/", f"{s3_server.endpoint}\n"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", value)
        async with open_store(url, limits=FAST, **keys) as store:
            got = await store.get("k")
            assert got is not None and bytes(got) == b"v", value


async def test_gcs_endpoints(gcs: GCSServer) -> None:
    key = f"ep-{uuid.uuid4().hex[:8]}"
    gcs.upload_object(f"{key}/k", b"v")
    for endpoint in _written(gcs.endpoint):
        options = {**gcs.options(), "endpoint": endpoint}
        async with open_store(f"gs://{BUCKET}/{key}", limits=FAST, **options) as store:
            got = await store.get("k")
            assert got is not None and bytes(got) == b"v", endpoint


async def test_azure_endpoints(azurite: AzuriteServer) -> None:
    ways = _written(azurite.endpoint)
    account = f"{azurite.endpoint}/devstoreaccount1"  # path-style: the account named
    await _round_trip(azurite.fresh_url(), azurite.options(), [*ways, account, f"{account}/"])


@pytest.mark.parametrize("scheme", ["s3", "gs"])
def test_an_endpoint_with_a_query_is_refused(scheme: str) -> None:
    with pytest.raises(ValueError, match="query") as info:
        open_store(f"{scheme}://bkt/x", endpoint="http://127.0.0.1:9/?sig=S1G", anonymous=True)
    assert "S1G" not in str(info.value)


def test_an_environments_endpoint_is_checked_beside_aws_allow_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With AWS_ALLOW_HTTP set, AWS_ENDPOINT_URL went unchecked: 'localhost:9000' opened, and
    obstore panicked at the first request."""
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:9000")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        open_store("s3://bkt/x.zarr", anonymous=True)


async def test_aws_allow_http_false_is_kept(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_ALLOW_HTTP=false with an http:// AWS_ENDPOINT_URL (a trailing slash to tidy): the
    variable is obeyed (plain http refused), as before."""
    monkeypatch.setenv("AWS_ALLOW_HTTP", "false")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"{s3_server.endpoint}/")
    keys = {k: v for k, v in s3_server.options().items() if k != "endpoint"}
    async with open_store(s3_server.fresh_url(), limits=FAST, **keys) as store:
        with pytest.raises(StoreError, match="plain http:// refused"):
            await store.get("k")
