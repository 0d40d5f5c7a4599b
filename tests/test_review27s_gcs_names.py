"""gs:// buckets that exist under names Google reserves for new buckets open (review27s).

The check at open (f784a1e) refused any bucket name starting with 'goog' or holding
'google', but those rules keep others from creating such buckets: Google's own exist and
are read by anyone (the Google Code archive's downloads, gs://google-code-archive-downloads).
Opening makes no request here: the URL and options are checked, the client built."""

from __future__ import annotations

from typing import Any

import pytest

from ngio_async.stores import ObstoreStore, open_store


@pytest.fixture(autouse=True)
def _google_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_BASE_URL", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "url",
    ["gs://google-code-archive-downloads/v2/code.google.com", "gcs://goog-data/img.zarr"],
)
def test_buckets_named_as_google_reserves_open(url: str) -> None:
    store = open_store(url, anonymous=True)  # (was: ValueError "... (reserved)")
    assert isinstance(store, ObstoreStore)
    assert store.url == url.replace("gcs://", "gs://")


def test_a_name_no_bucket_can_have_is_still_refused() -> None:
    with pytest.raises(ValueError, match="'Lab-Data' is no Google Cloud Storage bucket name"):
        open_store("gs://Lab-Data/img.zarr", anonymous=True)


@pytest.mark.parametrize("name", ["google_base_url", "GOOGLE_BASE_URL"])
def test_an_emulator_named_by_obstore_s_own_key_keeps_its_rules(name: str) -> None:
    """obstore takes its ``google_base_url`` config key (any case) for ``base_url``: such an
    endpoint (an emulator) was checked against GCS's rules all the same."""
    endpoint: dict[str, Any] = {name: "http://127.0.0.1:4443"}
    store = open_store("gs://Test_Bucket/x", anonymous=True, **endpoint)
    assert isinstance(store, ObstoreStore)  # (was: ValueError "... is no Google Cloud ...")
