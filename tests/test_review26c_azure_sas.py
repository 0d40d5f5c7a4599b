"""Review of d1bd712 on Azurite: a SAS pasted after an az:// URL wins over an account key
of the environment, and works beside use_emulator; blob names holding '?' or 'sig=' text
(no SAS: no 'sv' with it) are written and read back under that very name."""

from __future__ import annotations

import pytest
from servers import AZURITE_ACCOUNT, AzuriteServer
from test_stores26_azure_urls import FAST, image

import ngio_async
from ngio_async.stores import open_store

__all__ = ["image"]


def test_a_pasted_sas_wins_over_the_environments_key(
    azurite: AzuriteServer, image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "d3Jvbmc=")  # a wrong key
    sas = azurite.container_sas("rl")
    options = {"endpoint": f"{azurite.endpoint}/{AZURITE_ACCOUNT}", "account_name": AZURITE_ACCOUNT}
    with ngio_async.open(f"{image}?{sas}", limits=FAST, **options) as ds:
        assert ds.shape == (8, 8)
    with ngio_async.open(f"{image}?{sas}", limits=FAST, **azurite.options()) as ds:
        assert ds.shape == (8, 8)


@pytest.mark.parametrize("name", ["a?b=1.zarr", "run?sig=abc.zarr", "x?y/z?sig=1&v=2"])
async def test_blob_names_with_a_question_mark(azurite: AzuriteServer, name: str) -> None:
    base = azurite.fresh_url()
    async with open_store(f"{base}/{name}", limits=FAST, **azurite.options()) as store:
        await store.put("k", b"v")
    async with open_store(base, limits=FAST, **azurite.options()) as store:
        assert await store.list_prefix() == [f"{name}/k"]
