"""Credentials the server refuses (a wrong Azure account key, a mistyped SAS, on Azurite):
the 403 said to try ``forbidden_is_missing=True``, which then read everything as missing;
they are refused credentials, whatever that option says, and the message says so."""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import pytest
from servers import AZURITE_KEY
from test_stores26_azure_urls import FAST, _account, image

import ngio_async
from ngio_async import NgioError, PermissionDeniedError

if TYPE_CHECKING:
    from servers import AzuriteServer

__all__ = ["image"]  # (the fixture)
WRONG_KEY = AZURITE_KEY[:-8] + "AAAAAAA="


@pytest.mark.parametrize(
    "credentials",
    [{"account_key": WRONG_KEY}, {"sas_key": "mistyped"}],
    ids=["wrong-key", "wrong-sas"],
)
def test_refused_credentials_say_so(
    azurite: AzuriteServer, image: str, credentials: dict[str, Any]
) -> None:
    if "sas_key" in credentials:
        credentials = {"sas_key": azurite.container_sas("rl").replace("sig=", "sig=AB")}
    for forbidden_is_missing in (False, True):
        with pytest.raises(PermissionDeniedError) as info:
            ngio_async.open(
                image,
                limits=FAST,
                forbidden_is_missing=forbidden_is_missing,
                **_account(azurite),
                **credentials,
            )
        message = str(info.value)
        assert "refused the credentials" in message, message
        assert "forbidden_is_missing" not in message, message
        assert not info.value.missing_credentials
        printed = "".join(traceback.format_exception(info.value))
        assert "sig=" not in printed and WRONG_KEY not in printed, printed


def test_a_mistyped_sas_of_a_blob_url(azurite: AzuriteServer, image: str) -> None:
    """The https form (here Azurite's path-style http one) with a SAS the server refuses."""
    container, _, path = image.removeprefix("az://").partition("/")
    sas = azurite.container_sas("rl").replace("sig=", "sig=AB")
    url = f"{azurite.blob_url(container)}/{path}?{sas}"
    for backend in ("default", "obstore"):
        kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
        with pytest.raises(NgioError) as info:
            ngio_async.open(url, limits=FAST, **kwargs)
        message = str(info.value)
        assert isinstance(info.value, PermissionDeniedError), message
        assert "refused the credentials" in message, message
        assert "sig=" not in message, message
