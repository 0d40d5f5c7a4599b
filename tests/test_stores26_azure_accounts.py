"""Azure URLs that name no account, or name it where ``az://`` takes the container: the
messages were obstore's own ("Account must be specified"; "Generic S3 error: URL did not
match any known pattern" for ``az://account.blob.core.windows.net/container/...``); they
now say how to give the account. Nothing is sent (no request is made)."""

from __future__ import annotations

import pytest

from ngio_async import StoreError
from ngio_async.stores import open_store


@pytest.fixture(autouse=True)
def _no_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT", "AZURE_ACCOUNT_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("url", ["az://ctr/img.zarr", "azure://ctr/img.zarr", "adl://ctr/x"])
async def test_no_account(url: str) -> None:
    """(The client is built at the first request, in a worker thread: its error then.)"""
    with pytest.raises(StoreError) as info:
        async with open_store(url, anonymous=True) as store:
            await store.exists("zarr.json")
    message = str(info.value)
    assert "account_name=" in message and "AZURE_STORAGE_ACCOUNT_NAME" in message, message
    assert "abfs://ctr@" in message, message


@pytest.mark.parametrize("kind", ["blob", "dfs"])
def test_the_account_host_in_an_az_url(kind: str) -> None:
    url = f"az://acct.{kind}.core.windows.net/ctr/img.zarr"
    with pytest.raises(ValueError, match="abfs://ctr@acct") as info:
        open_store(url, anonymous=True)
    message = str(info.value)
    assert "'az://ctr/img.zarr'" in message and "account_name='acct'" in message, message
    assert "S3" not in message, message


def test_the_account_forms_that_open() -> None:
    for url in ("abfs://ctr@acct.dfs.core.windows.net/x", "az://ctr/x"):
        open_store(url, anonymous=True, account_name="acct")
