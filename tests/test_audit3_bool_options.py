"""Boolean store options as a config file or a command line gives them (audit of issue 3):
``allow_http="false"`` was taken for its truth (``bool("false")``) and allowed plain http;
``anonymous=0`` failed with obstore's "'int' object is not an instance of 'str'", naming
nothing. Strings are read as obstore reads its own (``"true"``, ``"1"``, ``"yes"`` ...; the
others false), numbers as 0 / 1, anything else refused naming the option."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

import ngio_async

if TYPE_CHECKING:
    from servers import S3Server


@pytest.fixture(scope="module")
def image(s3_server: S3Server) -> str:
    url = s3_server.fresh_url()
    with ngio_async.create(url, shape=(8, 8), dtype="uint8", axes="yx", **s3_server.options()):
        pass
    return url


def test_allow_http_false_as_a_string_refuses_plain_http(s3_server: S3Server, image: str) -> None:
    limits = ngio_async.Limits(max_retries=0)
    for value in ("false", "0", "no"):
        with pytest.raises(ngio_async.StoreError, match="plain http:// refused"):
            ngio_async.open(image, allow_http=value, limits=limits, **s3_server.options())
    for allowed in ("true", "1", "yes", True):
        with ngio_async.open(image, allow_http=allowed, **s3_server.options()) as ds:
            assert not ds[...].any()


def test_numbers_and_odd_values_for_boolean_options(s3_server: S3Server, image: str) -> None:
    with ngio_async.open(image, anonymous=0, **s3_server.options()) as ds:
        assert np.array_equal(ds[...], np.zeros((8, 8), np.uint8))
    with pytest.raises(ngio_async.PermissionDeniedError):  # unsigned: moto says 403
        ngio_async.open(image, anonymous=1, **s3_server.options())
    for name in ("allow_http", "anonymous"):
        with pytest.raises(ValueError, match=f"{name}.*'maybe'"):
            ngio_async.open(image, **{**s3_server.options(), name: "maybe"})
        with pytest.raises(ValueError, match=f"{name}.*\\[1\\]"):
            ngio_async.open(image, **{**s3_server.options(), name: [1]})
