"""``open_store``: URL schemes, options, environment variables and store roots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from obstore.store import MemoryStore, S3Store

from ngio_async import NotFoundError, PermissionDeniedError, UnsupportedError
from ngio_async._limits import Limits
from ngio_async.stores import HTTPStore, ObstoreStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import S3Server


async def test_plain_path_and_file_url_are_local_and_rooted(tmp_path: Path) -> None:
    for target in (tmp_path, str(tmp_path), f"file://{tmp_path}"):
        async with open_store(target) as store:
            assert isinstance(store, ObstoreStore)
            assert store.url == f"file://{tmp_path}"
            await store.put("image.zarr/zarr.json", b"{}")
    assert (tmp_path / "image.zarr" / "zarr.json").read_bytes() == b"{}"


async def test_memory_url_is_a_fresh_store() -> None:
    async with open_store("memory://") as a, open_store("memory://") as b:
        await a.put("k", b"v")
        assert await b.get("k") is None
        assert a.url == "memory://"


async def test_limits_reach_the_store_and_obstore_retry_config() -> None:
    limits = Limits(max_requests=7, max_retries=3)
    async with open_store("memory://", limits=limits) as store:
        assert store.limits is limits
        assert store.limiter.total_tokens == 7
    async with open_store("s3://bucket/p", limits=limits, anonymous=True) as s3:
        assert isinstance(s3, ObstoreStore)
        assert isinstance(s3.obstore, S3Store)
        retry = s3.obstore.retry_config
        assert retry is not None
        assert retry["max_retries"] == 3


async def test_obstore_store_objects_are_wrapped() -> None:
    raw = MemoryStore()
    async with open_store(raw, limits=Limits(max_requests=2)) as store:
        assert isinstance(store, ObstoreStore)
        assert store.obstore is raw
        assert store.limiter.total_tokens == 2
        await store.put("x", b"1")


async def test_async_store_passes_through() -> None:
    async with open_store("memory://") as store:
        assert open_store(store) is store
        with pytest.raises(ValueError, match="AsyncStore"):
            open_store(store, limits=Limits())


def test_http_urls_default_to_aiohttp() -> None:
    store = open_store("https://example.invalid/data/")
    assert isinstance(store, HTTPStore)
    assert store.url == "https://example.invalid/data"
    assert not store.supports_writes
    assert not store.supports_listing
    obs = open_store("http://example.invalid/data", backend="obstore")
    assert isinstance(obs, ObstoreStore)
    assert obs.url == "http://example.invalid/data"


def test_cloud_urls_build_obstore_stores_without_io() -> None:
    gcs = open_store("gs://bucket/some/prefix", anonymous=True)
    assert isinstance(gcs, ObstoreStore)
    assert gcs.url == "gs://bucket/some/prefix"
    az = open_store("az://container/prefix", account_name="acct", anonymous=True)
    assert isinstance(az, ObstoreStore)
    assert az.url == "az://container/prefix"
    s3 = open_store(
        "s3://bucket/prefix/",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="SECRETSECRET",
        region="eu-west-1",
    )
    assert s3.url == "s3://bucket/prefix"
    assert "SECRET" not in s3.url + repr(s3)


@pytest.mark.parametrize(
    ("target", "kwargs", "error", "match"),
    [
        ("ftp://host/x", {}, UnsupportedError, "unsupported URL scheme"),
        ("s3://bucket/x", {"backend": "aiohttp"}, ValueError, "aiohttp"),
        ("memory://", {"backend": "tensorstore"}, ValueError, "unknown backend"),
        ("memory://", {"colour": "blue"}, ValueError, "unknown options"),
        ("s3://bucket/x", {"not_a_real_option": 1}, ValueError, "unknown store option"),
        ("file://remotehost/x", {}, ValueError, "local path"),
        ("s3://", {}, ValueError, "malformed URL"),
        ("s3:///key", {}, ValueError, "malformed URL"),
        ("s3:bucket/key", {}, ValueError, "expected s3://bucket/path"),
        ("gs://", {}, ValueError, "malformed URL"),
        # a path joined to a URL without its slash: the port is no number (obstore said only
        # "invalid port number")
        ("http://127.0.0.1:8080img.zarr", {}, ValueError, "malformed URL.*8080img.zarr"),
        ("https://host:99999/x", {"backend": "aiohttp"}, ValueError, "malformed URL.*range"),
        ("http:///img.zarr", {"backend": "obstore"}, ValueError, "malformed URL.*no host"),
    ],
)
def test_bad_urls_and_options(
    target: str, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        open_store(target, **kwargs)


async def test_s3_keys_are_relative_to_the_url_prefix(s3_server: S3Server) -> None:
    url = s3_server.fresh_url()
    prefix = url.removeprefix(f"s3://{s3_server.bucket}/")
    async with open_store(url + "/", **s3_server.options()) as store:
        assert store.url == url
        await store.put("image.zarr/zarr.json", b'{"zarr_format": 3}')
        assert await store.list_prefix("") == ["image.zarr/zarr.json"]
    async with open_store(
        f"s3://{s3_server.bucket}",
        endpoint_url=s3_server.endpoint,
        access_key_id="k",
        secret_access_key="s",
    ) as root:
        buf = await root.get(f"{prefix}/image.zarr/zarr.json")
        assert buf is not None
        assert bytes(buf) == b'{"zarr_format": 3}'


@pytest.mark.parametrize("allow_http", ["true", None], ids=["AWS_ALLOW_HTTP", "implied"])
async def test_s3_credentials_from_environment(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, allow_http: str | None
) -> None:
    # an http:// endpoint from the environment implies plain HTTP, as the endpoint= option does
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    if allow_http is None:
        monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    else:
        monkeypatch.setenv("AWS_ALLOW_HTTP", allow_http)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    async with open_store(s3_server.fresh_url()) as store:
        await store.put("a/b", b"env")
        assert bytes(await store.get("a/b") or b"") == b"env"
        assert "testing-secret" not in store.url


async def test_s3_anonymous_read_of_private_object_is_denied(s3_server: S3Server) -> None:
    url = s3_server.fresh_url()
    async with open_store(url, **s3_server.options()) as store:
        await store.put("private.bin", b"secret")
    async with open_store(url, endpoint=s3_server.endpoint, anonymous=True) as anon:
        with pytest.raises(PermissionDeniedError, match=r"private\.bin") as info:
            await anon.get("private.bin")
    assert isinstance(info.value, PermissionError)
    assert info.value.url == url


def test_aiohttp_is_imported_only_for_http_urls() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ngio_async; assert 'aiohttp' not in sys.modules;"
        "from ngio_async.stores import open_store; open_store('http://127.0.0.1:9/x');"
        "assert 'aiohttp' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_a_missing_bucket_is_named_not_read_as_missing_objects(s3_server: S3Server) -> None:
    import ngio_async

    url = "s3://no-such-bucket-here/img.ome.zarr"
    async with open_store(url, **s3_server.options()) as store:
        with pytest.raises(NotFoundError, match=r"bucket .* does not exist"):
            await store.get("zarr.json")
        with pytest.raises(NotFoundError, match=r"bucket .* does not exist"):
            await store.list_prefix("")
    with pytest.raises(NotFoundError, match=r"no-such-bucket-here.* does not exist"):
        await ngio_async.open_async(url, **s3_server.options())
    # a missing object in an existing bucket is still just missing
    async with open_store(s3_server.fresh_url(), **s3_server.options()) as store:
        assert await store.get("nothing/here") is None
        await store.delete("nothing/here")


async def test_deleting_from_a_missing_bucket_is_an_error(s3_server: S3Server) -> None:
    """Deleting a missing key is fine; deleting from a missing bucket (a typo) is not: it
    succeeded silently."""
    async with open_store("s3://no-such-bucket-here/x", **s3_server.options()) as store:
        with pytest.raises(NotFoundError, match=r"bucket .* does not exist"):
            await store.delete("zarr.json")


@pytest.mark.parametrize("name", ["plate #1.zarr", "what?.zarr", "pct%41.zarr", "ü.zarr"])
async def test_s3_url_paths_are_literal_keys_as_in_s3fs(s3_server: S3Server, name: str) -> None:
    """The path of an s3:// URL is the key prefix as written (like keys, and like s3fs): no
    percent-decoding, and '#' or '?' do not cut it short (which put data somewhere else)."""
    base = s3_server.fresh_url()
    async with open_store(f"{base}/{name}/", **s3_server.options()) as store:
        assert store.url == f"{base}/{name}"
        await store.put("zarr.json", b"{}")
    async with open_store(base, **s3_server.options()) as root:
        assert await root.list_prefix("") == [f"{name}/zarr.json"]


def test_cloud_url_paths_are_literal_for_gcs_and_azure() -> None:
    gcs = open_store("gcs://bucket/a%20b/c#d", anonymous=True)
    assert isinstance(gcs, ObstoreStore)
    assert gcs.url == "gs://bucket/a%20b/c#d"
    assert gcs.obstore.prefix == "a%20b/c#d"  # type: ignore[union-attr]
    az = open_store("abfs://cont@acct.dfs.core.windows.net/x?y", anonymous=True)
    assert isinstance(az, ObstoreStore)
    assert az.url == "abfs://cont@acct.dfs.core.windows.net/x?y"
    assert az.obstore.prefix == "x?y"  # type: ignore[union-attr]


async def test_s3_endpoint_from_aws_endpoint_url_s3_implies_plain_http(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boto3's service-specific ``AWS_ENDPOINT_URL_S3`` is read by obstore as the endpoint; an
    http:// one must allow plain HTTP as ``AWS_ENDPOINT_URL`` does (it failed with an opaque
    "HTTP error: builder error")."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    async with open_store(s3_server.fresh_url()) as store:
        await store.put("k", b"v")
        assert bytes(await store.get("k") or b"") == b"v"


@pytest.mark.parametrize("timeout", [100.0, None])
def test_obstore_request_timeout_leaves_limits_in_charge(
    monkeypatch: pytest.MonkeyPatch, timeout: float | None
) -> None:
    """obstore's client cut every request off after its default 30 s, so objects slower than
    that never arrived (retried, cut off again) whatever ``Limits.timeout`` said. Its timeout
    now lies beyond ``Limits.timeout``; client settings from the environment are kept."""
    from datetime import timedelta

    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_PROXY_EXCLUDES", "example.org")
    limits = Limits(timeout=timeout)
    urls = ["s3://bucket/p", "gs://bucket/p", "az://container/p", "http://127.0.0.1:9/p"]
    extra: list[dict[str, Any]] = [
        {"region": "us-east-1"},
        {},
        {"account_name": "acct"},
        {"backend": "obstore"},
    ]
    for url, options in zip(urls, extra, strict=True):
        store = open_store(url, limits=limits, **options)
        assert isinstance(store, ObstoreStore)
        config = store.obstore.client_options or {}  # type: ignore[union-attr]
        seconds = 365 * 86400.0 if timeout is None else 2 * timeout
        expected = S3Store("b", client_options={"timeout": timedelta(seconds=seconds)})
        assert config["timeout"] == (expected.client_options or {})["timeout"], url
    s3 = open_store("s3://bucket/p", limits=limits, region="us-east-1")
    config = s3.obstore.client_options or {}  # type: ignore[attr-defined]
    assert config["allow_http"] == "true"
    assert config["proxy_excludes"] == "example.org"


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_url_is_refused_not_the_current_directory(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty URL (an unset variable) opened the current directory, where ``create``
    then wrote an image."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        open_store(url, mkdir=True)
    assert list(tmp_path.iterdir()) == []
