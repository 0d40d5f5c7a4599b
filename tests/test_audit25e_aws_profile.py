"""AWS profiles read as boto3 reads them: the region of a ``[profile default]`` section of
``~/.aws/config`` (boto3 takes that spelling too; it was ignored), a profile with a role
(``role_arn``) is refused even when the credentials file also has keys under its name (boto3
assumes the role; those keys were used: another identity), and a key id without its secret
is named (the keys were silently skipped, and obstore asked the instance metadata)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from test_audit25c_aws_profile import FAST, SigningSpy, aws_home, spy  # noqa: F401

from ngio_async.stores import open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


async def test_the_region_of_a_profile_default_section(
    aws_home: Path,  # noqa: F811
    spy: SigningSpy,  # noqa: F811
    s3_server: S3Server,
) -> None:
    (aws_home / "credentials").write_text(
        "[default]\naws_access_key_id = AKIADEF\naws_secret_access_key = s\n"
    )
    (aws_home / "config").write_text("[profile default]\nregion = ap-south-2\n")
    async with open_store(s3_server.fresh_url(), limits=FAST, endpoint=spy.url) as store:
        await store.put("k", b"1")
    assert spy.signed and all("/ap-south-2/s3/aws4_request" in s for s in spy.signed)


def test_a_role_profile_with_keys_and_a_key_without_secret_are_refused(
    aws_home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (aws_home / "credentials").write_text(
        "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = s\n\n"
        "[half]\naws_access_key_id = AKIAHALF\n"
    )
    (aws_home / "config").write_text(
        "[profile ops]\nrole_arn = arn:aws:iam::1:role/ops\nsource_profile = base\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "ops")
    with pytest.raises(ValueError, match=r"'ops' gets its credentials by role_arn"):
        open_store("s3://bucket/x")
    monkeypatch.setenv("AWS_PROFILE", "half")
    with pytest.raises(ValueError, match=r"'half' has an aws_access_key_id but no aws_secret"):
        open_store("s3://bucket/x")
