"""Signed requests the server refuses for their time: this machine's clock off by more than
S3 allows (403 ``RequestTimeTooSkewed``, as a clock drifting during a long job meets it), a
presigned URL past its expiry (403 ``AccessDenied`` "Request has expired"). They said
"access denied ... open it with forbidden_is_missing=True", and with that option an image
read as fill values (every chunk "missing"), its opening as "no OME-Zarr group"; they are
refused credentials now, the message saying why, whatever the option says.

moto and the test server answer no such 403 of their own: a proxy in front of moto, and a
server in front of the files, answer it as S3 does once told to (fault injection)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from aiohttp import web
from servers import FaultProxy, Faults, StaticServer

import ngio_async
from ngio_async._limits import Limits
from ngio_async.stores import CredentialsRefusedError, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)
SKEWED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>RequestTimeTooSkewed</Code>'
    "<Message>The difference between the request time and the current time is too large."
    "</Message><RequestTime>20261129T101010Z</RequestTime><ServerTime>2026-11-29T14:50:00Z"
    "</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>"
    "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)
EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message><X-Amz-Expires>3600</X-Amz-Expires>"
    "<Expires>2026-11-29T13:00:00Z</Expires><ServerTime>2026-11-29T14:50:00Z</ServerTime>"
    "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)
SIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature=0badc0ffee"


def _refused(status: int, body: str, request: web.Request) -> web.Response:
    text = "" if request.method == "HEAD" else body  # (a HEAD's answer has no body)
    return web.Response(status=status, text=text, content_type="application/xml")


@dataclass
class SkewedProxy(FaultProxy):
    """moto, until ``skewed``: then S3's answer to a request signed at a time too far off."""

    skewed: bool = False

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if self.skewed:
            return _refused(403, SKEWED, request)
        return await super()._answer(request, path, faults)


@dataclass
class ExpiringServer(StaticServer):
    """The files, until ``expired``: then S3's answer to a presigned URL past its expiry."""

    expired: bool = False

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        if self.expired:
            return _refused(403, EXPIRED, request)
        return await super()._answer(request, path, faults)


@pytest.fixture
def skewed(s3_server: S3Server) -> Iterator[SkewedProxy]:
    proxy = SkewedProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


DATA = np.arange(24 * 24, dtype="uint16").reshape(24, 24) + 1  # (no fill value in it)


def _image(url: str, **options: Any) -> None:
    with ngio_async.create(
        url, shape=(24, 24), dtype="uint16", axes="yx", chunks=(8, 8), levels=1, **options
    ) as ds:
        ds.write(DATA)


def _check(error: BaseException, why: str) -> None:
    message = str(error)
    assert isinstance(error, CredentialsRefusedError), message
    assert f"the server refused the credentials given: {why}" in message, message
    assert "forbidden_is_missing" not in message and "no image there" not in message, message


@pytest.mark.parametrize("forbidden_is_missing", [False, True])
def test_a_clock_off_is_said_never_read_as_missing(
    s3_server: S3Server, skewed: SkewedProxy, forbidden_is_missing: bool
) -> None:
    options: dict[str, Any] = {**s3_server.options(), "endpoint": skewed.url.rstrip("/")}
    url = s3_server.fresh_url() + "/img.zarr"
    _image(url, **options)
    options.update(limits=FAST, forbidden_is_missing=forbidden_is_missing)
    with ngio_async.open(url, **options) as ds:
        skewed.skewed = True  # (the clock drifts during the job)
        with pytest.raises(CredentialsRefusedError) as info:
            ds.read()  # (was: all fill values with forbidden_is_missing=True)
        _check(info.value, "the clock of this machine is off")
    with pytest.raises(CredentialsRefusedError) as info:
        ngio_async.open(url, **options)  # (was: "no OME-Zarr group")
    _check(info.value, "the clock of this machine is off")


async def test_a_batch_of_gets_is_no_batch_of_misses(
    s3_server: S3Server, skewed: SkewedProxy
) -> None:
    """``get_many`` (obstore's requests started together): each 403 of refused credentials
    was a missing object with ``forbidden_is_missing=True``."""
    options: dict[str, Any] = {**s3_server.options(), "endpoint": skewed.url.rstrip("/")}
    keys = [f"c/{i}" for i in range(6)]
    url = s3_server.fresh_url()
    async with open_store(url, limits=FAST, forbidden_is_missing=True, **options) as store:
        for key in keys:
            await store.put(key, b"abc")
        assert store.gets_together
        assert [bytes(b or b"") for b in await store.get_many(keys)] == [b"abc"] * 6
        skewed.skewed = True
        with pytest.raises(CredentialsRefusedError) as info:
            await store.get_many(keys)
        _check(info.value, "the clock of this machine is off")
        assert info.value.key in keys


@pytest.mark.parametrize("forbidden_is_missing", [False, True])
def test_an_expired_presigned_url_is_said_never_read_as_missing(
    http_root: Path, forbidden_is_missing: bool
) -> None:
    _image(str(http_root / "img.zarr"))
    server = ExpiringServer(http_root).start()
    try:
        url = f"{server.url}img.zarr?{SIGNED}"
        options: dict[str, Any] = {"limits": FAST, "forbidden_is_missing": forbidden_is_missing}
        with ngio_async.open(url, **options) as ds:
            np.testing.assert_array_equal(ds.read(), DATA)
            server.expired = True
            with pytest.raises(CredentialsRefusedError) as info:
                ds.read()
            _check(info.value, "the signature or token has expired")
        with pytest.raises(CredentialsRefusedError) as info:
            ngio_async.open(url, **options)
        _check(info.value, "the signature or token has expired")
        assert "0badc0ffee" not in str(info.value)
    finally:
        server.stop()
