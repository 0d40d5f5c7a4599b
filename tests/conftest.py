"""Shared fixtures: the anyio backend, a moto S3 server and a fault-injecting HTTP server.

All network traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import gc
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from images import upload, write_image
from served import SPECS
from servers import AzuriteServer, S3Server, StaticServer, azurite_missing, start_azurite

from ngio_async.stores import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what the imports made (numpy, zarr, moto, boto: ~270,000 objects) out of the
    collector's reach: every ``gc.collect()`` of a test (the early-exit sweeps call it often)
    and every automatic full collection walked them all, ~0.2-0.6 s each."""
    gc.collect()
    gc.freeze()


@pytest.fixture
def anyio_backend() -> str:
    """obstore and aiohttp are asyncio-only (see STYLE.md 2.7)."""
    return "asyncio"


def _atomic_conditional_puts() -> None:
    """S3 checks a PUT's If-Match / If-None-Match and stores the object as one step; moto checks,
    then stores, while its server threads run other requests: two compare-and-swap writes of
    one object could both pass the check and one be lost (seen once under load in a test of
    concurrent shard writes). One lock around moto's PUT makes it behave as S3 does."""
    import threading

    from moto.s3.responses import S3Response

    put = S3Response.put_object
    if getattr(put, "_ngio_atomic", False):
        return
    lock = threading.Lock()

    def atomic_put(self: Any) -> Any:
        with lock:
            return put(self)

    atomic_put._ngio_atomic = True  # type: ignore[attr-defined]
    S3Response.put_object = atomic_put  # type: ignore[method-assign]


def _quick_moto() -> None:
    """Two costs of moto's server that no test measures, out of its requests' way (they were
    ~30% of its time in the tile sweeps): finding the service of each request by trying the
    URL patterns of every AWS service in turn (the answer for a host never changes: kept), and
    an access-log line formatted for each request (only when the ``werkzeug`` logger takes
    INFO records, as a test asking for them with ``caplog.set_level`` makes it)."""
    import logging

    try:  # moto's internals: a release that moves them leaves its server as it is (slower)
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler

        find = DomainDispatcherApplication.get_backend_for_host
        log_request = MotoRequestHandler.log_request
    except (ImportError, AttributeError):
        return
    if getattr(find, "_ngio_memo", False):
        return
    found: dict[str | None, Any] = {}

    def remembered(self: DomainDispatcherApplication, host: str | None) -> Any:
        try:
            return found[host]
        except KeyError:
            backend = found[host] = find(self, host)
            return backend

    remembered._ngio_memo = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = remembered  # type: ignore[method-assign]

    log = logging.getLogger("werkzeug")
    if log.level == logging.NOTSET:  # werkzeug would set INFO on its first line
        log.setLevel(logging.WARNING)

    def log_if_asked(
        self: MotoRequestHandler, code: int | str = "-", size: int | str = "-"
    ) -> None:
        if log.isEnabledFor(logging.INFO):
            log_request(self, code, size)

    MotoRequestHandler.log_request = log_if_asked  # type: ignore[method-assign,assignment]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with the bucket ``ngio-test``."""
    from moto.server import ThreadedMotoServer

    _atomic_conditional_puts()
    _quick_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = "ngio-test"
        request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        yield S3Server(endpoint=endpoint, bucket=bucket)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's blob service (the Azure emulator) on a free loopback port, with the container
    ``ngio-test``; the tests using it skip, saying why, where node or Azurite is missing."""
    reason = azurite_missing()
    if reason is not None:
        pytest.skip(reason)
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http_root(tmp_path: Path) -> Path:
    """A directory of test objects served by ``http_server``."""
    root = tmp_path / "www"
    (root / "data").mkdir(parents=True)
    (root / "data" / "blob.bin").write_bytes(bytes(range(256)) * 4)  # 1024 bytes
    (root / "data" / "small.txt").write_bytes(b"hello world")
    (root / "data" / "empty.bin").write_bytes(b"")
    return root


@pytest.fixture
def http_server(http_root: Path) -> Iterator[StaticServer]:
    """A static HTTP server on 127.0.0.1 serving ``http_root``, with fault injection."""
    server = StaticServer(http_root).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def http_images(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[StaticServer, dict[str, Any]]]:
    """The images of ``served.SPECS`` on a loopback HTTP server (one per test process: the
    tests only read them, and a test that injects faults clears them at its end)."""
    root = tmp_path_factory.mktemp("served")
    datas = {name: write_image(root / name, spec)[0] for name, spec in SPECS.items()}
    server = StaticServer(root).start()
    try:
        yield server, datas
    finally:
        server.stop()


class _OnS3(dict[str, tuple[str, Any]]):
    """``served.SPECS`` images on moto S3, each uploaded when first asked for (the sweeps read
    only one or two of them there): name -> (url, level-0 data)."""

    def __init__(self, s3: S3Server, root: Path) -> None:
        super().__init__()
        self.s3, self.root = s3, root

    def __missing__(self, name: str) -> tuple[str, Any]:
        s3, src = self.s3, self.root / name
        data = write_image(src, SPECS[name])[0]
        url = s3.fresh_url()

        async def send() -> None:
            async with open_store(url, **s3.options()) as target:
                await upload(src, target)

        with ThreadPoolExecutor(1) as pool:  # asked for inside a test's loop
            pool.submit(partial(anyio.run, send)).result()
        self[name] = (url, data)
        return url, data


@pytest.fixture(scope="session")
def s3_images(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[str, Any]]:
    """The images of ``served.SPECS`` on moto S3: name -> (url, level-0 data), one copy per
    test process, uploaded on first use; the tests only read them."""
    return _OnS3(s3_server, tmp_path_factory.mktemp("s3src"))
