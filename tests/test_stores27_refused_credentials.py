"""S3 credentials the server refuses (a wrong secret key, an access key id it does not know,
on moto with its IAM checks on): opening an image says so and names the URL and key, and no
more: it ended "(.zattrs too: not allowed, or no image there; S3 without s3:ListBucket
answers 403 for a missing object)", where the image may well be there. A key without the
permission (an IAM policy denying it) keeps that hint: there a 403 may mean "missing"."""

from __future__ import annotations

import json
import traceback
from typing import TYPE_CHECKING, Any

import boto3  # type: ignore[import-untyped]
import numpy as np
import pytest

import ngio_async
from ngio_async import PermissionDeniedError
from ngio_async._limits import Limits
from ngio_async.stores import CredentialsRefusedError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


def _user(s3: S3Server, name: str, effect: str) -> dict[str, str]:
    """A moto IAM user allowed (or denied) every S3 action; its access key."""
    iam = boto3.client(
        "iam",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        region_name=s3.region,
    )
    iam.create_user(UserName=name)
    rule = {"Effect": effect, "Action": "s3:*", "Resource": "*"}
    policy = {"Version": "2012-10-17", "Statement": [rule]}
    iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


@pytest.fixture(scope="module")
def keyed(s3_server: S3Server) -> tuple[str, dict[str, str], dict[str, str]]:
    """An image on moto, an allowed user's key and a denied user's."""
    url = s3_server.fresh_url() + "/img.zarr"
    with ngio_async.create(
        url, shape=(8, 8), dtype="uint8", axes="yx", levels=1, **s3_server.options()
    ) as ds:
        ds.write(np.full((8, 8), 3, "uint8"))
    suffix = url.rsplit("/", 2)[1]
    return url, _user(s3_server, f"ok-{suffix}", "Allow"), _user(s3_server, f"no-{suffix}", "Deny")


@pytest.fixture
def checked(s3_server: S3Server) -> Iterator[None]:
    """moto checks signatures and IAM policies while the test runs (off by default)."""
    from moto import settings

    before = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = before


def _open(s3: S3Server, url: str, credentials: dict[str, str]) -> PermissionDeniedError:
    options: dict[str, Any] = {"endpoint": s3.endpoint, "region": s3.region, **credentials}
    with pytest.raises(PermissionDeniedError) as info:
        ngio_async.open(url, limits=FAST, **options)
    return info.value


@pytest.mark.usefixtures("checked")
@pytest.mark.parametrize("wrong", ["secret", "key-id"])
def test_refused_credentials_say_so_and_no_more(
    s3_server: S3Server, keyed: tuple[str, dict[str, str], dict[str, str]], wrong: str
) -> None:
    url, allowed, _ = keyed
    with ngio_async.open(url, limits=FAST, endpoint=s3_server.endpoint, **allowed) as ds:
        assert int(ds.read().sum()) == 3 * 64  # (the checks let the right key through)
    if wrong == "secret":
        given = {**allowed, "secret_access_key": "wR0ngSecretKey"}
        what = "check the secret key of the access key id"
    else:
        given = {"access_key_id": "AKIA0UNKNOWN0KEY", "secret_access_key": "wR0ngSecretKey"}
        what = "it knows no such access key id"
    error = _open(s3_server, url, given)
    message = str(error)
    assert isinstance(error, CredentialsRefusedError), message
    assert not error.missing_credentials
    assert f"the server refused the credentials given: {what}" in message, message
    assert f"'zarr.json' at {url}" in message and error.key == "zarr.json", message
    for misleading in (".zattrs too", "no image there", "s3:ListBucket", "forbidden_is_missing"):
        assert misleading not in message, message
    assert "wR0ngSecretKey" not in "".join(traceback.format_exception(error))


@pytest.mark.usefixtures("checked")
def test_a_key_denied_the_reads_keeps_the_missing_hint(
    s3_server: S3Server, keyed: tuple[str, dict[str, str], dict[str, str]]
) -> None:
    url, _, denied = keyed
    error = _open(s3_server, url, denied)
    message = str(error)
    assert not isinstance(error, CredentialsRefusedError), message
    assert "AccessDenied" in message and "refused the credentials" not in message, message
    assert "no image there" in message, message
