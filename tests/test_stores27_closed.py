"""A store closed while its requests run (another task closes the dataset or the store): each
request it ends raises ``ClosedError`` naming its key, with no secret of the store's URL in
the chain. A request waiting for a slot (``max_requests``) or retrying after a failure
raised a bare "store ... is closed", naming no key."""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from servers import FaultProxy, Faults

from ngio_async import ClosedError
from ngio_async._limits import Limits
from ngio_async.stores import AsyncStore, open_store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers import S3Server, StaticServer

SLOW = Faults(delay=0.3)


@pytest.fixture
def s3_proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    proxy = FaultProxy(Path("."), target=s3_server.endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()


async def _close_under(
    store: AsyncStore, server: StaticServer, keys: list[str]
) -> dict[str, BaseException | None]:
    """GET ``keys`` at once, close ``store`` once the server holds a request; each key's
    error (``None``: it was read)."""
    got: dict[str, BaseException | None] = {}

    async def read(key: str) -> None:
        try:
            await store.get(key)
            got[key] = None
        except Exception as exc:  # noqa: BLE001 - kept for the test's checks
            got[key] = exc

    async with anyio.create_task_group() as tg:
        for key in keys:
            tg.start_soon(read, key)
        while server.in_flight < 1:  # noqa: ASYNC110 - polls the server's counter
            await anyio.sleep(0.005)
        await store.aclose()
    return got


def _check(key: str, error: BaseException | None, secrets: tuple[str, ...]) -> None:
    assert isinstance(error, ClosedError), repr(error)
    assert f"was closed during a request for {key!r}" in str(error), str(error)
    printed = "".join(traceback.format_exception(error))
    for secret in secrets:
        assert secret not in printed, printed


async def test_s3_requests_waiting_for_a_slot_name_their_key(
    s3_server: S3Server, s3_proxy: FaultProxy
) -> None:
    url = s3_server.fresh_url()
    options: dict[str, Any] = {**s3_server.options(), "endpoint": s3_proxy.url.rstrip("/")}
    async with open_store(url, **options) as store:
        for key in ("a", "b", "c"):
            await store.put(key, b"x" * 100)
    s3_proxy.faults = SLOW
    store = open_store(url, limits=Limits(max_requests=1, timeout=10), **options)
    got = await _close_under(store, s3_proxy, ["a", "b", "c"])
    waited = [key for key, error in got.items() if error is not None]
    assert waited, got  # (the one in flight may end: obstore finishes it)
    for key in waited:
        _check(key, got[key], (s3_server.secret_access_key,))


@pytest.mark.parametrize("backend", ["default", "aiohttp"])
async def test_http_requests_closed_under_name_their_key(
    http_server: StaticServer, backend: str
) -> None:
    url = http_server.url.replace("http://", "http://alice:pa55word@") + "data?sig=s3cr3t"
    kwargs: dict[str, Any] = {} if backend == "default" else {"backend": backend}
    http_server.faults = SLOW
    store = open_store(url, limits=Limits(max_requests=1, timeout=10), **kwargs)
    keys = ["small.txt", "blob.bin"]
    got = await _close_under(store, http_server, keys)
    for key in keys:  # aiohttp's connection closed under it, then a retry: both end so
        _check(key, got[key], ("pa55word", "s3cr3t", "alice"))


async def test_an_unmapped_error_of_a_close_is_cleaned(http_server: StaticServer) -> None:
    """Fault injection: the backend raises what no mapping knows (aiohttp has raised an
    AssertionError, a RuntimeError for a closed session) quoting the URL with its secrets."""
    url = http_server.url.replace("http://", "http://alice:pa55word@") + "data?sig=s3cr3t"
    store = open_store(url, backend="aiohttp")

    async def closed_under(*_: object) -> None:
        await store.aclose()
        raise RuntimeError(f"Session is closed (GET {url}&part=small.txt)")

    store._call_mapped = closed_under  # type: ignore[method-assign,assignment]
    with pytest.raises(ClosedError) as info:
        await store.get("small.txt")
    _check("small.txt", info.value, ("pa55word", "s3cr3t", "alice"))
    assert isinstance(info.value.__cause__, RuntimeError)  # what failed, cleaned
    assert "Session is closed" in str(info.value.__cause__)
