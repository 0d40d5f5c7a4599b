"""gs:// bucket names are checked at open against Google Cloud Storage's rules, the error
naming the URL and the rule broken (such a name went to the service, whose answer said
less); every form of a valid name still opens, and an emulator's endpoint keeps its own
rules (fake-gcs-server takes names GCS refuses)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from test_stores_gcs import BUCKET, gcs

import ngio_async
from ngio_async.stores import HTTPStore, ObstoreStore, open_store

if TYPE_CHECKING:
    from test_stores_gcs import GCSServer

__all__ = ["gcs"]  # (the fixture)

DOTTED = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 30])  # 222 characters

BAD = {
    "Images": "has lowercase letters, digits, '-', '_' and '.' only, not 'I'",
    "my bucket": "not ' '",
    "ab": "has 3 to 63 characters (up to 222 with dots), not 2",
    "a" * 64: "not 64",
    DOTTED + "e": "has 3 to 222 characters with dots, not 223",
    "a" * 64 + ".b": "has at most 63 characters between dots, not 64",
    "-lab-data": "starts and ends with a letter or a digit",
    "lab-data_": "starts and ends with a letter or a digit",
    "lab..data": "has no empty part between dots",
    "192.168.5.4": "is no IP address",
}


@pytest.fixture(autouse=True)
def _no_emulator_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_BASE_URL", "STORAGE_EMULATOR_HOST", "GOOGLE_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)


def test_names_gcs_refuses_are_refused_at_open_naming_the_rule() -> None:
    for bucket, rule in BAD.items():
        for scheme in ("gs", "gcs"):
            url = f"{scheme}://{bucket}/img.zarr"
            with pytest.raises(ValueError) as info:
                open_store(url, anonymous=True)
            message = str(info.value)
            assert message.startswith(f"{url}: {bucket!r} is no Google Cloud Storage"), message
            assert rule in message, message
    with pytest.raises(ValueError, match="is no Google Cloud Storage bucket name"):
        ngio_async.open("gs://Images/img.zarr", anonymous=True)


def test_valid_names_open_in_every_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """No request is made: the URLs and options are checked, and the client built."""
    for url in (
        "gs://lab-data/img.zarr",
        "gcs://lab_data.2024/a/b",
        f"gs://{DOTTED}/x",
        "gs://1.2.3.400/x",  # (no IP address)
        "gs://a" + "b" * 62,
    ):
        store = open_store(url, anonymous=True)
        assert isinstance(store, ObstoreStore), url
    https = open_store("https://storage.googleapis.com/lab-data/img.zarr")
    assert isinstance(https, HTTPStore)
    monkeypatch.setenv("GOOGLE_BASE_URL", "https://storage.googleapis.com")
    with pytest.raises(ValueError, match="no Google Cloud Storage bucket name"):
        open_store("gs://Images/x", anonymous=True)  # Google's own endpoint: its rules


async def test_an_emulator_keeps_its_own_rules(
    gcs: GCSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through GOOGLE_BASE_URL and endpoint=, gs:// and gcs://: a valid name reads, and a
    bucket fake-gcs-server made under a name GCS refuses reads too."""
    odd = "goog-emulated"
    body = json.dumps({"name": odd}).encode()
    gcs.request("POST", "/storage/v1/b", body, **{"Content-Type": "application/json"})
    for bucket in (BUCKET, odd):
        gcs.upload_object("p27/k", b"v", bucket=bucket)
        async with open_store(f"gcs://{bucket}/p27", **gcs.options()) as store:
            assert bytes(await store.get("k") or b"") == b"v"
        monkeypatch.setenv("GOOGLE_BASE_URL", gcs.endpoint)
        async with open_store(f"gs://{bucket}/p27", use_emulator=True) as store:
            assert bytes(await store.get("k") or b"") == b"v"
        monkeypatch.delenv("GOOGLE_BASE_URL")
