"""Closing a store over obstore's clients closes their sockets at once (not when the garbage
collector finds the closed store), and it stays closed."""

from __future__ import annotations

import contextlib
import os
import weakref
from typing import TYPE_CHECKING

import anyio
import pytest
from obstore.store import MemoryStore

from ngio_async import ClosedError
from ngio_async._limits import Limits
from ngio_async.stores import AsyncStore, ObstoreStore, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from servers import StaticServer

KEYS = [f"data/c/{i}" for i in range(48)]
LIMITS = Limits(max_requests=32, timeout=30)


def _connected(port: int) -> int:
    """Sockets of this process connected to 127.0.0.1:``port`` (the client side): rows of
    ``/proc/self/net/tcp`` with that remote port whose inode is one of this process's fds."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # an fd closed while listed
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[9] in inodes:
                    count += 1
    return count


async def _closes_to_zero(port: int) -> int:
    """The sockets left connected to ``port``, polled briefly (a client's pool is dropped on
    obstore's runtime threads): 0 as soon as it is, else what is left after ~1 s."""
    left = _connected(port)
    for _ in range(100):
        if not left:
            break
        await anyio.sleep(0.01)
        left = _connected(port)
    return left


@pytest.fixture
def chunks(http_root: Path) -> dict[str, bytes]:
    objects = {key: bytes([i]) * (100 + i) for i, key in enumerate(KEYS)}
    for key, data in objects.items():
        path = http_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return objects


async def _read_concurrently(store: AsyncStore, objects: dict[str, bytes]) -> None:
    """A batch (``get_many``) and single GETs at once: many requests in flight."""
    await store.get(KEYS[0])  # the default HTTP store's first GET is aiohttp's
    got: dict[str, bytes | None] = {}

    async def batch(keys: list[str]) -> None:
        for key, data in zip(keys, await store.get_many(keys), strict=True):
            got[key] = None if data is None else bytes(data)

    async def single(key: str) -> None:
        data = await store.get(key)
        got[key] = None if data is None else bytes(data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(batch, KEYS[:24])
        tg.start_soon(batch, KEYS[24:36])
        for key in KEYS[36:]:
            tg.start_soon(single, key)
    assert got == objects


@pytest.mark.parametrize("backend", ["default", "obstore"])
async def test_http_sockets_closed_at_close(
    http_server: StaticServer, chunks: dict[str, bytes], backend: str
) -> None:
    http_server.faults.delay = 0.02  # the requests overlap: one connection each
    kwargs = {} if backend == "default" else {"backend": backend}
    store = open_store(http_server.url, limits=LIMITS, **kwargs)  # type: ignore[arg-type]
    async with store:
        await _read_concurrently(store, chunks)
        assert _connected(http_server.port) > 1  # the pool holds them while open
    # the closed store is still referenced here: no garbage collection could have closed them
    assert store.closed
    assert await _closes_to_zero(http_server.port) == 0
    with pytest.raises(ClosedError, match="closed"):
        await store.get(KEYS[0])
    with pytest.raises(ClosedError, match="closed"):
        await store.get_many(KEYS[:3])


async def test_closed_store_lets_its_obstore_client_go(tmp_path: Path) -> None:
    """Local and in-memory clients hold no sockets, but are released all the same; every
    use of the closed store (the blocking reads too) is a ``ClosedError``."""
    memory = MemoryStore()
    released = weakref.ref(memory)
    store = ObstoreStore(memory, url="memory://")
    del memory
    async with store:
        await store.put("a/b", b"xyz")
        assert bytes(await store.get("a/b") or b"") == b"xyz"
    assert released() is None  # no reference left but the closed store's, and that went
    for use in (store.get("a/b"), store.put("a/b", b"1"), store.list_prefix()):
        with pytest.raises(ClosedError, match="memory:// is closed"):
            await use
    with pytest.raises(ClosedError, match="closed"):
        store.get_blocking("a/b")
    with pytest.raises(ClosedError, match="closed"):
        _ = store.obstore

    local = open_store(str(tmp_path))
    assert isinstance(local, ObstoreStore)
    async with local:
        await local.put("x", b"1")
    with pytest.raises(ClosedError, match="closed"):
        local.get_blocking("x")
