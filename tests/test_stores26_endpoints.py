"""An endpoint written without its scheme (``endpoint="localhost:9000"``, as a MinIO or
emulator address is often given), or that is no URL at all: obstore's S3 and GCS clients
panicked at the first request (``RustPanic: rust future panicked: unknown error``, and a
Rust backtrace on stderr); Azure's said "relative URL without a base". Refused when the
store is opened, saying how to write it. No server is needed: nothing is sent."""

from __future__ import annotations

from typing import Any

import pytest

from ngio_async.stores import open_store

BAD = ["127.0.0.1:9000", "not a url", "http://", "http://127.0.0.1:9000/base path"]
URLS = {"s3": "s3://bkt/x.zarr", "gs": "gs://bkt/x.zarr", "az": "az://ctr/x.zarr"}


@pytest.mark.parametrize("scheme", sorted(URLS))
@pytest.mark.parametrize("endpoint", BAD)
def test_an_endpoint_that_is_no_http_url(scheme: str, endpoint: str) -> None:
    options: dict[str, Any] = {"account_name": "acct"} if scheme == "az" else {}
    with pytest.raises(ValueError, match="endpoint") as info:
        open_store(URLS[scheme], endpoint=endpoint, anonymous=True, **options)
    message = str(info.value)
    assert "http://" in message, message  # how to write it
    if endpoint == BAD[0]:
        assert "'http://127.0.0.1:9000'" in message, message


def test_an_endpoint_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "localhost:9000")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL") as info:
        open_store("s3://bkt/x.zarr", anonymous=True)
    assert "'http://localhost:9000'" in str(info.value)


def test_an_endpoint_with_credentials_is_not_shown() -> None:
    with pytest.raises(ValueError, match="endpoint") as info:
        open_store("s3://bkt/x", endpoint="user:s3cr3t@host:9000/x?sig=s1g", anonymous=True)
    assert "s3cr3t" not in str(info.value) and "s1g" not in str(info.value)


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9000", "https://s3.example.org", "http://[::1]:9000/p/"]
)
def test_good_endpoints_open(endpoint: str) -> None:
    open_store("s3://bkt/x.zarr", endpoint=endpoint, anonymous=True)
    open_store("gs://bkt/x.zarr", endpoint=endpoint, anonymous=True)
