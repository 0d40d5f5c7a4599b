"""Store options per side: ``--anonymous`` went to the source and the destination alike, so
"public bucket -> my bucket" failed with 403 on the writes. ``--source-option KEY=VALUE`` /
``--dest-option KEY=VALUE`` go to one side, over the options of both sides."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import boto3  # type: ignore[import-untyped]
import numpy as np
import pytest
import tifffile
from aiohttp import web
from cli_run import run
from servers import FaultProxy

import ngio_async
from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import Faults, S3Server


class PrivateWrites(FaultProxy):
    """A proxy to moto that refuses unsigned writes (403), as a bucket that is public to read
    only; it records whether each request was signed."""

    signed: list[tuple[str, bool]]

    async def _answer(self, request: web.Request, path: str, faults: Faults) -> web.StreamResponse:
        signed = "Authorization" in request.headers
        self.signed.append((request.method, signed))
        if request.method in ("PUT", "POST", "DELETE") and not signed:
            body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return web.Response(status=403, text=body, content_type="application/xml")
        return await super()._answer(request, path, faults)


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[PrivateWrites]:
    server = PrivateWrites(Path("."), target=s3_server.endpoint)
    server.signed = []
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _plane() -> np.ndarray[Any, Any]:
    return (np.arange(24 * 30).reshape(24, 30)).astype(np.uint16)


def _source(s3: S3Server) -> str:
    url = s3.fresh_url()
    buf = io.BytesIO()
    tifffile.imwrite(buf, _plane())

    async def put() -> None:
        async with open_store(url, **s3.options()) as store:
            await store.put("a.tif", buf.getvalue())

    anyio.run(put)
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        region_name=s3.region,
    )  # public to read, as a public bucket's objects
    key = url.removeprefix(f"s3://{s3.bucket}/") + "/a.tif"
    client.put_object_acl(Bucket=s3.bucket, Key=key, ACL="public-read")
    return url


def test_an_anonymous_source_and_a_signed_destination(
    s3_server: S3Server,
    proxy: PrivateWrites,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _source(s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    endpoint = proxy.url.rstrip("/")
    base = ["convert", f"{src}/a.tif", "--endpoint", endpoint, "--region", s3_server.region]
    # --anonymous: both sides unsigned, the writes refused (the old way, still so)
    code, _, err = run([*base, f"{src}/old.ome.zarr", "--anonymous"], capsys)
    assert code != 0 and "permission denied" in err, err
    proxy.signed.clear()
    args = [*base, f"{src}/a.ome.zarr", "--source-option", "anonymous=true"]
    code, stdout, err = run(args, capsys)
    assert code == 0, err
    assert "wrote " in stdout
    reads = {signed for method, signed in proxy.signed if method in ("GET", "HEAD")}
    writes = {signed for method, signed in proxy.signed if method == "PUT"}
    assert writes == {True}, proxy.signed  # the destination: signed
    assert False in reads, proxy.signed  # the source: unsigned
    with ngio_async.open(f"{src}/a.ome.zarr", **s3_server.options()) as ds:
        np.testing.assert_array_equal(ds[...], _plane())
    # the same with the API's src_options / dst_options
    proxy.signed.clear()
    ngio_async.convert_sync(
        f"{src}/a.tif",
        f"{src}/b.ome.zarr",
        src_options={"endpoint": endpoint, "anonymous": True},
        dst_options={**s3_server.options(), "endpoint": endpoint},
    )
    assert {s for m, s in proxy.signed if m == "PUT"} == {True}, proxy.signed


def test_a_dest_option_overrides_the_shared_one(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _source(s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_access_key)
    dead = "http://127.0.0.1:9"  # the shared endpoint: nothing listens there
    args = ["convert", f"{src}/a.tif", f"{src}/c.ome.zarr", "--endpoint", dead]
    args += ["--source-option", f"endpoint={s3_server.endpoint}"]
    args += ["--dest-option", f"endpoint={s3_server.endpoint}", "--region", s3_server.region]
    code, _, err = run(args, capsys)
    assert code == 0, err
    with ngio_async.open(f"{src}/c.ome.zarr", **s3_server.options()) as ds:
        np.testing.assert_array_equal(ds[...], _plane())


def test_side_options_are_checked(
    tmp_path: Path, s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _source(s3_server)
    local = tmp_path / "a.tif"
    tifffile.imwrite(local, _plane())
    code, _, err = run(
        ["convert", str(local), str(tmp_path / "o"), "--dest-option", "anonymous=true"], capsys
    )
    assert code == 2 and "--dest-option: for an s3://" in err, err
    code, _, err = run(
        ["convert", str(local), str(tmp_path / "o"), "--source-option", "anonymous"], capsys
    )
    assert code == 2 and "expected KEY=VALUE" in err, err
    code, _, err = run(
        ["convert", str(local), f"{src}/x.ome.zarr", "--source-option", "anonymous=1"], capsys
    )
    assert code == 2 and "--source-option: for s3://" in err, err
    assert not (tmp_path / "o").exists()
