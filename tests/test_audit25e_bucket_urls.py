"""URLs in messages and reprs are shown without credentials, but an S3 or GCS URL keeps all of
its key: a '#' or '?' there is a character of the key (the stores take the URL literally), and
``s3://bucket/run#1/img.zarr`` was shown as ``s3://bucket/run`` (a path the user never gave)."""

from __future__ import annotations

import pytest

from ngio_async.stores._url_utils import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s3://bucket/run#1/img.zarr", "s3://bucket/run#1/img.zarr"),
        ("gs://bucket/a?b/c.zarr", "gs://bucket/a?b/c.zarr"),
        ("s3://key:secret@bucket/p#q", "s3://key@bucket/p#q"),
        ("az://acct:key@box/p?sv=sas", "az://acct@box/p"),
        ("https://u:p@host/a/b.zarr?sig=1#f", "https://host/a/b.zarr"),
    ],
)
def test_what_a_url_shows(url: str, shown: str) -> None:
    assert redact_url(url) == shown
