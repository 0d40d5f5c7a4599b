"""Azure URLs as users paste them, on Azurite: an ``az://`` / ``abfs://`` URL with the SAS
the portal gives appended as its query (it went into the key prefix: nothing was found, and
the message showed the signature)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from servers import AZURITE_ACCOUNT

import ngio_async
from ngio_async._limits import Limits
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from servers import AzuriteServer

FAST = Limits(backoff_base=0.001, backoff_max=0.01, max_retries=1, timeout=10)


@pytest.fixture(scope="module")
def image(azurite: AzuriteServer) -> str:
    """An image's ``az://`` URL on Azurite."""
    url = f"{azurite.fresh_url()}/img.zarr"
    with ngio_async.create(url, shape=(8, 8), dtype="uint8", axes="yx", **azurite.options()):
        pass
    return url


def _account(azurite: AzuriteServer) -> dict[str, Any]:
    """Options naming Azurite's account at its endpoint, without credentials."""
    return {"endpoint": f"{azurite.endpoint}/{AZURITE_ACCOUNT}", "account_name": AZURITE_ACCOUNT}


@pytest.mark.parametrize("scheme", ["az", "abfs"])
def test_a_sas_pasted_into_the_url(azurite: AzuriteServer, image: str, scheme: str) -> None:
    sas = azurite.container_sas("rl")
    url = f"{image.replace('az://', scheme + '://')}?{sas}"
    with ngio_async.open(url, limits=FAST, **_account(azurite)) as ds:
        assert ds.shape == (8, 8)
        assert "sig=" not in ds.url and "?" not in ds.url, ds.url


def test_a_sas_in_the_url_and_in_the_options(azurite: AzuriteServer, image: str) -> None:
    sas = azurite.container_sas("rl")
    with pytest.raises(ValueError, match="sas_key") as info:
        open_store(f"{image}?{sas}", sas_key=sas, **_account(azurite))
    assert "sig=" not in str(info.value)


def test_a_query_that_is_no_sas_stays_in_the_key(azurite: AzuriteServer) -> None:
    """A blob name may hold '?': only a query with a signature is a SAS."""
    store = open_store("az://ngio-test/a?b=1.zarr", **azurite.options())
    assert store.url == "az://ngio-test/a?b=1.zarr"
