"""S3 stores and AWS profiles (``AWS_PROFILE``, ``~/.aws/credentials``, ``~/.aws/config``),
read as boto3, s3fs and the AWS CLI read them: obstore reads neither, and asked the instance
metadata for credentials instead (here a closed loopback port: never the real address)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from servers import FaultProxy

from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from aiohttp import web
    from servers import Faults, S3Server

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=0, timeout=10)
SECRET = "pr0f1le-secret-value"


@dataclass
class SigningSpy(FaultProxy):
    """A proxy to moto that keeps each request's ``Authorization`` header."""

    signed: list[str] = field(default_factory=list)

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        self.signed.append(request.headers.get("Authorization", ""))
        return await super()._answer(request, path, faults)


@pytest.fixture
def spy(s3_server: S3Server, tmp_path: Path) -> Iterator[SigningSpy]:
    server = SigningSpy(tmp_path, target=s3_server.endpoint).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment without AWS credentials; the shared files under ``tmp_path``."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # where obstore asks for credentials when it has none
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_METADATA_ENDPOINT", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    return tmp_path


def _profiles(home: Path, endpoint: str) -> None:
    (home / "credentials").write_text(
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = other\n\n"
        f"[work]\naws_access_key_id = AKIAWORK\naws_secret_access_key = {SECRET}\n"
    )
    (home / "config").write_text(
        f"[profile work]\nregion = eu-west-3\nendpoint_url = {endpoint}\n\n"
        "[profile sso]\nsso_session = corp\nregion = eu-west-1\n"
    )


async def test_the_profile_named_by_aws_profile_gives_keys_region_and_endpoint(
    aws_home: Path, spy: SigningSpy, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It failed with 'no credentials' (obstore asked the instance metadata)."""
    _profiles(aws_home, spy.url.rstrip("/"))
    monkeypatch.setenv("AWS_PROFILE", "work")
    url = s3_server.fresh_url()
    async with open_store(url, limits=FAST) as store:
        await store.put("a/b", b"profile")
        assert bytes(await store.get("a/b") or b"") == b"profile"
        assert SECRET not in repr(store) and SECRET not in store.url
    assert spy.signed and all("Credential=AKIAWORK/" in s for s in spy.signed), spy.signed
    assert all("/eu-west-3/s3/aws4_request" in s for s in spy.signed), spy.signed[0]


async def test_the_default_profile_without_aws_profile(
    aws_home: Path, spy: SigningSpy, s3_server: S3Server
) -> None:
    (aws_home / "credentials").write_text(
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s\n"
    )
    async with open_store(s3_server.fresh_url(), limits=FAST, endpoint=spy.url) as store:
        await store.put("k", b"1")
    assert spy.signed and all("Credential=AKIADEFAULT/" in s for s in spy.signed)


async def test_keys_and_settings_given_win_over_the_profile(
    aws_home: Path, spy: SigningSpy, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _profiles(aws_home, "http://127.0.0.1:1")  # the profile's endpoint: nothing there
    monkeypatch.setenv("AWS_PROFILE", "work")
    options = {**s3_server.options(), "endpoint": spy.url, "region": "us-west-2"}
    async with open_store(s3_server.fresh_url(), limits=FAST, **options) as store:
        await store.put("k", b"1")
    assert all(f"Credential={s3_server.access_key_id}/" in s for s in spy.signed)
    assert all("/us-west-2/s3/aws4_request" in s for s in spy.signed)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")  # not needed: not read
    async with open_store(s3_server.fresh_url(), limits=FAST, **options) as store:
        await store.put("k", b"1")


def test_a_profile_that_is_missing_or_not_read_here_is_named(
    aws_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _profiles(aws_home, "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_PROFILE", "nope")
    with pytest.raises(ValueError, match=r"AWS_PROFILE='nope': no such profile in .*credentials"):
        open_store("s3://bucket/x")
    monkeypatch.setenv("AWS_PROFILE", "sso")
    with pytest.raises(ValueError, match=r"'sso' gets its credentials by sso_session.*export"):
        open_store("s3://bucket/x")
    assert open_store("s3://bucket/x", anonymous=True).url == "s3://bucket/x"  # no keys needed
