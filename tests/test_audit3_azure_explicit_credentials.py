"""An explicit Azure credential is the one used (audit of issue 3), against Azurite.

obstore reads every Azure setting not given from the ``AZURE_*`` variables and then picks
a credential by its own order (a bearer token, then an account key, ..., a SAS last), so
``sas_key=`` (or the emulator's account key that ``use_emulator=True`` brings) lost to an
``AZURE_STORAGE_ACCOUNT_KEY`` or ``AZURE_STORAGE_TOKEN`` of the environment: 403, the
credential asked for never sent. The one given now decides (obstore's ``credential_type``);
the environment's credentials are still used when none is given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from servers import AZURITE_ACCOUNT, AZURITE_KEY

import ngio_async

if TYPE_CHECKING:
    from servers import AzuriteServer

# another account's key (base64) and a bearer token, as a shell may hold them
OTHER = {"AZURE_STORAGE_ACCOUNT_KEY": "b3RoZXIta2V5", "AZURE_STORAGE_TOKEN": "other-token"}
DATA = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)


@pytest.fixture(scope="module")
def image(azurite: AzuriteServer) -> str:
    url = azurite.fresh_url()
    with ngio_async.create(url, shape=DATA.shape, dtype="uint8", axes="cyx", **azurite.options()):
        pass
    with ngio_async.open(url, mode="r+", **azurite.options()) as ds:
        ds[...] = DATA
    return url


@pytest.mark.parametrize("variable", sorted(OTHER))
def test_an_explicit_sas_key_wins_over_the_environment(
    azurite: AzuriteServer, image: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, OTHER[variable])
    endpoint = f"{azurite.endpoint}/{AZURITE_ACCOUNT}"
    options: dict[str, Any] = {"account_name": AZURITE_ACCOUNT, "endpoint": endpoint}
    with ngio_async.open(image, sas_key=azurite.container_sas("rl"), **options) as ds:
        assert np.array_equal(ds[...], DATA)  # was: PermissionDeniedError (403)


@pytest.mark.parametrize("variable", sorted(OTHER))
def test_the_emulators_key_wins_over_the_environment(
    azurite: AzuriteServer, image: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, OTHER[variable])
    with ngio_async.open(image, **azurite.options()) as ds:
        assert np.array_equal(ds[...], DATA)


def test_the_environments_key_is_used_when_none_is_given(
    azurite: AzuriteServer, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    with ngio_async.open(image, endpoint=f"{azurite.endpoint}/{AZURITE_ACCOUNT}") as ds:
        assert np.array_equal(ds[...], DATA)
